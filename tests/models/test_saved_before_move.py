"""``.keras`` files written before models/ was split into encoders/ and decoders/ still load.

The files in ``tests/models/data`` were saved by the code of commit 64498e1 (module paths
``vit_tf.models.transformer_decoder`` etc., decoders built with ``fusion`` passed or not) with
``tests/models/data/make_pre_move_models.py``; the logits they gave then are stored beside them.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

from vit_tf.models.decoders import LanguageDecoder
from vit_tf.models.encoders import ImageEncoder
from vit_tf.models.vlm import VisionLanguageModel

DATA = Path(__file__).parent / "data"
NAMES = ("transformer_concat_prefix", "lstm_attention_pooling", "transformer_cross_attention")


@pytest.mark.parametrize("name", NAMES)
def test_model_saved_before_the_move_loads_and_gives_the_same_logits(name):
    import vit_tf.models.factory  # noqa: F401  (registers the model's layers)

    saved = np.load(DATA / f"{name}.npz")
    model = keras.saving.load_model(DATA / f"{name}.keras")
    assert isinstance(model, VisionLanguageModel)
    assert isinstance(model.decoder, LanguageDecoder)
    assert isinstance(model.image_encoder, ImageEncoder)
    inputs = {k: saved[k] for k in ("images", "token_ids", "padding_mask")}
    np.testing.assert_allclose(np.asarray(model(inputs)), saved["logits"], rtol=0, atol=1e-5)
