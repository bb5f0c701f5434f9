"""The pretrained (BERT) token embedding as the decoders' text embedding, from a tiny local preset."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hub

from tests.helpers import tiny_config
from tests.hub_presets import bert_preset
from vit_tf.config import ConfigError
from vit_tf.data.preprocessor import VisionLanguagePreprocessor
from vit_tf.data.preset_tokenizer import preprocessor_for_config, preset_tokenizer
from vit_tf.data.template import ASSISTANT, END, PAD, USER
from vit_tf.layers.text_embedding import PretrainedTokenEmbedding
from vit_tf.models.factory import build_model, build_task
from vit_tf.models.generation import Generator
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
    tok, chat_format = preset_tokenizer(config)
    assert isinstance(tok, keras_hub.tokenizers.BertTokenizer) and chat_format == "bert"
    pre = preprocessor_for_config(config)  # no texts needed: the preset brings its vocabulary
    assert pre.chat_format == "bert" and type(pre.tokenizer) is type(tok)
    vocab = table.shape[0]  # BERT's vocabulary; our 3 markers are appended after it
    assert tok.vocabulary_size() == vocab and pre.vocabulary_size == vocab + 3
    assert pre.chat.added == {USER: vocab, ASSISTANT: vocab + 1, END: vocab + 2}
    assert [pre.special_ids()[t] for t in (USER, ASSISTANT, END)] == [vocab, vocab + 1, vocab + 2]
    assert pre.stop_id == vocab + 2 and pre.special_ids()[PAD] == 0
    keras.utils.set_random_seed(0)
    model = build_task(config, pre)
    emb = model.decoder.token_embedding
    assert isinstance(emb, PretrainedTokenEmbedding) and emb.num_added == 3
    np.testing.assert_array_equal(emb.pretrained.numpy(), table)

    ids, trained = pre.encode_conversations([CONVERSATION] * 2)[0]
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
        cached = Generator(model, max_new_tokens=4, jit_compile=False).generate_ids(images, PROMPTS)
        assert cached == Generator(model, max_new_tokens=4, use_cache=False,
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


def test_bert_chat_format_appends_the_markers_and_trains_only_the_answer(bert):
    pre = VisionLanguagePreprocessor(keras_hub.tokenizers.Tokenizer.from_preset(bert[0]), "bert",
                                     image_size=16, max_text_length=32)
    vocab = bert[1].shape[0]
    ids, trained = pre.encode_conversations([CONVERSATION])[0]
    pieces = [pre.id_to_token(i) for i in ids]
    assert pieces == [USER, "what", "colour", "is", "the", "circle", "?", END,
                      ASSISTANT, "the", "circle", "is", "red", ".", END, "[PAD]"]  # no <image>
    assert [int(i) for i in ids if i >= vocab] == [vocab, vocab + 2, vocab + 1, vocab + 2]
    answer = [p for p, t in zip(pieces, trained) if t]
    assert answer == ["the", "circle", "is", "red", ".", END]   # the answer and its end only
    prompt, _ = pre.encode_conversations([CONVERSATION[:1]], add_generation_prompt=True)[0]
    assert [pre.id_to_token(i) for i in prompt] == pieces[:9]   # open <|assistant|> marker


def test_run_folder_keeps_the_bert_tokenizer_and_its_markers(bert, tmp_path):
    pre = VisionLanguagePreprocessor(keras_hub.tokenizers.Tokenizer.from_preset(bert[0]), "bert",
                                     image_size=16, max_text_length=32)
    pre.save_to_preset(str(tmp_path / "run"))
    again = VisionLanguagePreprocessor.from_preset(str(tmp_path / "run"))
    assert isinstance(again.tokenizer, keras_hub.tokenizers.BertTokenizer)
    assert again.chat_format == "bert" and again.chat.added == pre.chat.added
    assert again.vocabulary_size == pre.vocabulary_size
    (ids, trained), = again.encode_conversations([CONVERSATION])
    (ids0, trained0), = pre.encode_conversations([CONVERSATION])
    np.testing.assert_array_equal(ids, ids0)
    np.testing.assert_array_equal(trained, trained0)
    # Markers (past BERT's vocabulary) are dropped; BERT's text keeps its spaces.
    assert again.detokenize(ids[:-1]) == "what colour is the circle ? the circle is red ."
    text = again.detokenize_graph(tf.ragged.constant([ids[:-1].tolist()]))[0].numpy().decode()
    assert text == "what colour is the circle ? the circle is red ."


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


def _captured_reverse(layer):
    """Wrap ``layer.call`` to keep the hidden states it maps to logits (``reverse=True``)."""
    seen = []
    call = layer.call

    def spy(inputs, reverse=False):
        if reverse:
            seen.append(np.asarray(inputs, np.float32))
        return call(inputs, reverse=reverse)

    layer.call = spy
    return seen


def test_bert_output_head_runs_in_float32_under_mixed_bfloat16(bert):
    """The logits are the float32 product of the decoder's last states with the projection and
    the table (a bfloat16 head would be ~1e-2 off), whatever the compute dtype."""
    from vit_tf.training.precision import precision_policy

    folder, _ = bert
    config = tiny_config(model__text_embedding__name="keras_hub",
                         model__text_embedding__preset=folder,
                         train__precision="mixed_bfloat16")
    with precision_policy("mixed_bfloat16"):
        task = build_task(config, preprocessor_for_config(config))
    embedding = task.decoder.token_embedding
    assert task.decoder.blocks[0].compute_dtype == "bfloat16"
    seen = _captured_reverse(embedding)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, task.preprocessor.vocabulary_size, (2, 6)).astype("int32")
    logits = np.asarray(task({"images": rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32"),
                              "token_ids": ids, "padding_mask": np.ones((2, 6), bool)}))
    assert logits.dtype == np.float32 and len(seen) == 1
    table = np.asarray(embedding.table(), np.float32)
    kernel = np.asarray(embedding.output_projection.kernel, np.float32)
    expected = (seen[0].astype(np.float64) @ kernel) @ table.T
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
