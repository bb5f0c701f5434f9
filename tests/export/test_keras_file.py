"""save_run -> load_run: the reloaded .keras model generates exactly what the live one did."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config, tiny_tokenizer
from vit_tf.export.keras_file import load_run, save_run
from vit_tf.inference.generate import Generator
from vit_tf.models.factory import build_model


def test_saved_and_reloaded_run_generates_the_same_tokens(tmp_path):
    keras.utils.set_random_seed(6)
    config = tiny_config()
    model = build_model(config, tiny_tokenizer().vocabulary_size())
    images = np.random.default_rng(6).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    prompts = [[{"from": "human", "value": "is it big"}], [{"from": "human", "value": "what colour"}]]
    live = Generator(model, tiny_tokenizer(), 6, jit_compile=False).generate_ids(images, prompts)
    save_run(str(tmp_path / "run"), model, tiny_tokenizer(), config)
    model2, tokenizer2, config2 = load_run(str(tmp_path / "run"))
    assert config2 == config and tokenizer2.get_vocabulary() == tiny_tokenizer().get_vocabulary()
    assert Generator(model2, tokenizer2, 6, jit_compile=False).generate_ids(images, prompts) == live
    with pytest.raises(FileExistsError):
        save_run(str(tmp_path / "run"), model, tiny_tokenizer(), config)
