"""The pretrained (BERT) token embedding as the decoders' text embedding, from a tiny local preset."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config
from tests.hub_presets import bert_preset
from vit_tf.config import ConfigError
from vit_tf.data.preset_tokenizer import PresetTokenizer, tokenizer_for_config
from vit_tf.data.template import ASSISTANT, END, USER, conversation_segments
from vit_tf.data.tokenizer import SegmentEncoder, special_ids
from vit_tf.inference.generate import Generator
from vit_tf.layers.text_embedding import PretrainedTokenEmbedding
from vit_tf.models.factory import build_model
from vit_tf.training.optim import compile_model

CONVERSATION = [{"from": "human", "value": "<image>\nWhat colour is the circle?"},
                {"from": "gpt", "value": "The circle is red."}]
PROMPTS = [[{"from": "human", "value": "What colour is the circle?"}],
           [{"from": "human", "value": "Is it big"}]]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return bert_preset(tmp_path_factory.mktemp("bert") / "bert")


def test_bert_embedding_trains_generates_with_cache_and_round_trips(bert, tmp_path):
    folder, table = bert
    decoder, trainable = "transformer", False
    config = tiny_config(model__decoder__name=decoder, model__text_embedding__name="keras_hub",
                         model__text_embedding__preset=folder,
                         model__text_embedding__trainable=str(trainable))
    tok = tokenizer_for_config(config)
    assert isinstance(tok, PresetTokenizer) and tok.chat_format == "bert"
    vocab = table.shape[0]  # BERT's vocabulary; our 3 markers are appended after it
    assert tok.vocabulary_size() == vocab + 3
    assert [special_ids(tok)[t] for t in (USER, ASSISTANT, END)] == [vocab, vocab + 1, vocab + 2]
    keras.utils.set_random_seed(0)
    model = build_model(config, tok.vocabulary_size(), special_token_ids=special_ids(tok))
    emb = model.decoder.token_embedding
    assert isinstance(emb, PretrainedTokenEmbedding) and emb.num_added == 3
    np.testing.assert_array_equal(emb.pretrained.numpy(), table)

    ids, trained = SegmentEncoder(tok).encode([conversation_segments(CONVERSATION)] * 2)[0]
    ids = np.array([ids, ids], "int32")
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    inputs = {"images": images, "token_ids": ids[:, :-1], "padding_mask": np.ones_like(ids[:, :-1], bool)}
    logits = np.asarray(model(inputs))
    assert logits.shape[-1] == vocab + 3  # the output head covers the markers too
    # Context-free token vectors keep the decoder causal: a later token changes no earlier logit.
    changed = dict(inputs, token_ids=np.concatenate([ids[:, :-2], ids[:, :1]], axis=1))
    np.testing.assert_allclose(np.asarray(model(changed))[:, :-1], logits[:, :-1], atol=1e-5)

    compile_model(model, config.train, total_steps=4)
    before = {w.path: w.numpy().copy() for w in emb.weights}
    model.run_eagerly = True
    weights = np.array([trained[1:]] * 2, "float32")
    for _ in range(2):  # the warmup starts at a learning rate of 0
        model.train_on_batch(inputs, ids[:, 1:], sample_weight=weights)
    moved = {w.path.split("/")[-1]: not np.array_equal(before[w.path], w.numpy()) for w in emb.weights}
    assert not moved["pretrained_embeddings"]  # trainable=false freezes BERT's rows
    assert moved["added_embeddings"] and moved["kernel"]  # markers and projections always learn

    tf.config.run_functions_eagerly(True)
    try:
        cached = Generator(model, tok, max_new_tokens=4, jit_compile=False).generate_ids(images, PROMPTS)
        assert cached == Generator(model, tok, max_new_tokens=4, use_cache=False,
                                   jit_compile=False).generate_ids(images, PROMPTS)
    finally:
        tf.config.run_functions_eagerly(False)

    live = np.asarray(model(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(inputs)), live)
    assert reloaded.decoder.token_embedding.pretrained.trainable == trainable  # still frozen


def test_lstm_decoder_takes_the_bert_table_trainable(bert):
    folder, table = bert
    config = tiny_config(model__decoder__name="lstm", model__text_embedding__name="keras_hub",
                         model__text_embedding__preset=folder)
    model = build_model(config, table.shape[0] + 3)
    emb = model.decoder.token_embedding
    assert emb.pretrained.trainable and emb.num_added == 3
    np.testing.assert_array_equal(emb.pretrained.numpy(), table)
    logits = model({"images": np.zeros((1, 16, 16, 3), "float32"),
                    "token_ids": np.array([[table.shape[0], 9, 10]], "int32"),
                    "padding_mask": np.ones((1, 3), bool)})
    assert logits.shape == (1, 3, table.shape[0] + 3)


def test_run_folder_keeps_the_bert_tokenizer_and_its_markers(bert, tmp_path):
    from vit_tf.data.tokenizer import load_tokenizer, save_tokenizer

    tok = PresetTokenizer.from_preset(bert[0], "bert")
    save_tokenizer(tok, tmp_path / "tokenizer")
    again = load_tokenizer(str(tmp_path / "tokenizer"))
    assert isinstance(again, PresetTokenizer)
    segments = [conversation_segments(CONVERSATION)]
    assert SegmentEncoder(again).encode(segments) == SegmentEncoder(tok).encode(segments)
    ids = SegmentEncoder(again).encode(segments)[0][0]
    text = again.detokenize(tf.constant([ids]))[0]
    text = text.numpy().decode() if hasattr(text, "numpy") else text
    assert text == "what colour is the circle ? the circle is red ."  # markers dropped


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model__text_embedding__name": "keras_hub"}, "needs model.text_embedding.preset"),
        ({"model__text_embedding__preset": "/x"}, "set name=keras_hub"),
        ({"model__text_embedding__trainable": "false"}, "starts from random weights"),
        ({"model__text_embedding__name": "bert"}, "expected learned or keras_hub"),
    ],
)
def test_senseless_text_embedding_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(tiny_config(**overrides), 50)
