"""The LanguageDecoder contract: every registered decoder implements it and behaves the same
through it (shapes, fusion, prefix, cache == no cache, config round trip); a decoder that
leaves a method out fails loudly, naming itself."""

import keras
import numpy as np
import pytest
from keras import ops

import vit_tf.models.factory  # noqa: F401  (registers every part)
from tests.hub_presets import gemma_preset
from vit_tf.config import DecoderConfig
from vit_tf.layers.fusion import ConcatFusion
from vit_tf.models.decoders import ATTENTION_MODES, LanguageDecoder
from vit_tf.registry import DECODERS

VOCAB, HIDDEN, N, TEXT, BATCH = 40, 16, 3, 6, 2


@pytest.fixture(scope="module")
def gemma_folder(tmp_path_factory):
    return gemma_preset(tmp_path_factory.mktemp("gemma"))[0]


def _concat(hidden_dim, num_layers):
    return ConcatFusion(hidden_dim, num_layers, name="fusion")


def _decoder(name, gemma_folder=None):
    section = DecoderConfig(name=name, hidden_dim=HIDDEN, num_layers=2, num_heads=2,
                            intermediate_dim=32, preset=gemma_folder or "")
    return DECODERS.get(name).from_section(section, vocabulary_size=VOCAB,
                                           max_sequence_length=N + TEXT + 2, make_fusion=_concat)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(5, VOCAB, (BATCH, TEXT)).astype("int32"),
            rng.normal(size=(BATCH, N, HIDDEN)).astype("float32"))


def test_every_registered_decoder_is_a_language_decoder_with_its_own_from_section():
    assert DECODERS.names() == ["gemma", "llama", "lstm", "transformer"]
    for name in DECODERS.names():
        cls = DECODERS.get(name)
        assert issubclass(cls, LanguageDecoder), name
        assert cls.from_section.__func__ is not LanguageDecoder.from_section.__func__, name


@pytest.mark.parametrize("name", ["transformer", "lstm", "gemma"])
def test_decoder_through_the_contract_only_cache_equals_full_call_and_round_trips(name,
                                                                                  request):
    folder = request.getfixturevalue("gemma_folder") if name == "gemma" else None
    decoder = _decoder(name, folder)
    ids, img = _inputs()
    assert isinstance(decoder, LanguageDecoder) and decoder.attention in ATTENTION_MODES
    assert isinstance(decoder.fusion, ConcatFusion)
    assert decoder.num_prefix_tokens(N) == N
    assert decoder.prefix_lengths(ids, N) is None  # causal
    assert decoder.max_sequence_length == N + TEXT + 2
    full = np.asarray(decoder(ids, image_tokens=img))
    assert full.shape == (BATCH, TEXT, decoder.vocabulary_size) and full.dtype == np.float32

    # Prefill image prefix + 2 tokens, then one token per step at cache position N + t.
    cache = decoder.init_cache(BATCH, N + TEXT)
    logits, cache = decoder.call_with_cache(ids[:, :2], cache, 0, image_tokens=img,
                                            padding_mask=np.ones((BATCH, 2), bool))
    steps = [np.asarray(logits)]
    for t in range(2, TEXT):
        logits, cache = decoder.call_with_cache(ops.convert_to_tensor(ids[:, t : t + 1]), cache,
                                                N + t, image_tokens=img, include_prefix=False)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-5)

    config = keras.saving.serialize_keras_object(decoder)
    assert config["registered_name"] == f"vit_tf>{type(decoder).__name__}"
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(decoder) and isinstance(clone.fusion, ConcatFusion)
    clone(ids, image_tokens=img)
    clone.set_weights(decoder.get_weights())
    np.testing.assert_allclose(np.asarray(clone(ids, image_tokens=img)), full, atol=1e-6)


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_fusion_defaults_to_concat_and_is_always_serialized(name):
    cls = DECODERS.get(name)
    kwargs = {"num_heads": 2, "intermediate_dim": 32} if name == "transformer" else {}
    decoder = cls(vocabulary_size=VOCAB, hidden_dim=HIDDEN, num_layers=1,
                  max_sequence_length=20, **kwargs)
    assert isinstance(decoder.fusion, ConcatFusion)
    assert (decoder.fusion.hidden_dim, decoder.fusion.num_layers) == (HIDDEN, 1)
    assert decoder.get_config()["fusion"]["class_name"] == "ConcatFusion"
    # A config of a file saved when the fusion could be None loads with the default.
    clone = cls.from_config({**decoder.get_config(), "fusion": None})
    assert isinstance(clone.fusion, ConcatFusion)


def test_prefix_lm_decoder_declares_prefix_attention_and_gives_prefix_lengths():
    section = DecoderConfig(hidden_dim=HIDDEN, num_layers=1, num_heads=2, intermediate_dim=32,
                            attention="prefix")
    decoder = DECODERS.get("transformer").from_section(
        section, vocabulary_size=VOCAB, max_sequence_length=20, make_fusion=_concat,
        special_token_ids={"<|assistant|>": 7})
    assert decoder.attention == "prefix" and decoder.prefix_end_token_id == 7
    ids = np.array([[9, 7, 9, 9], [9, 9, 9, 9]], "int32")
    assert np.asarray(decoder.prefix_lengths(ids, N)).tolist() == [N + 2, N]


class _OnlyEmbeds(LanguageDecoder):
    """Implements the embedding alone: the rest of the contract is missing."""

    def embed_tokens(self, token_ids):
        return ops.zeros((*ops.shape(token_ids), self.hidden_dim))


def test_decoder_missing_a_method_fails_loudly_naming_its_class():
    decoder = _OnlyEmbeds(VOCAB, HIDDEN, 1, 20)
    ids, img = _inputs()
    assert tuple(decoder.embed_with_prefix(ids, img)[0].shape) == (BATCH, N + TEXT, HIDDEN)
    with pytest.raises(NotImplementedError, match="_OnlyEmbeds does not implement "
                                                  "LanguageDecoder.init_cache"):
        decoder.init_cache(BATCH, 10)
    with pytest.raises(NotImplementedError, match="_OnlyEmbeds .*call_with_cache"):
        decoder.call_with_cache(ids, None, 0)
    with pytest.raises(NotImplementedError, match="_OnlyEmbeds .*LanguageDecoder.call"):
        decoder(ids)
    with pytest.raises(NotImplementedError, match="_OnlyEmbeds .*from_section"):
        _OnlyEmbeds.from_section(DecoderConfig(), vocabulary_size=VOCAB, max_sequence_length=20,
                                 make_fusion=_concat)
    with pytest.raises(NotImplementedError, match="LanguageDecoder.embed_tokens"):
        LanguageDecoder(VOCAB, HIDDEN, 1, 20).embed_tokens(ids)


def test_causal_decoder_refuses_prefix_lengths_in_cached_calls():
    decoder = _decoder("lstm")
    ids, img = _inputs()
    with pytest.raises(ValueError, match="LSTMDecoderLM attends causally"):
        decoder.call_with_cache(ids, decoder.init_cache(BATCH, N + TEXT), 0, image_tokens=img,
                                prefix_lengths=np.zeros((BATCH,), "int32"))


def test_unknown_attention_mode_is_refused():
    with pytest.raises(ValueError, match="attention must be one of"):
        _OnlyEmbeds(VOCAB, HIDDEN, 1, 20, attention="bidirectional")
