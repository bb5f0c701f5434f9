"""Tests for the LSTM decoder: shapes, causality, the state cache, serialization."""

import numpy as np
from keras import ops

from tests.helpers import run_layer_test
from vit_tf.layers.attention_pooling import AttentionPoolingFusion
from vit_tf.layers.fusion import ConcatFusion
from vit_tf.models.decoders.lstm import LSTMDecoderLM

VOCAB, HIDDEN, TEXT, N = 30, 8, 7, 4


def _decoder(fusion=None):
    return LSTMDecoderLM(VOCAB, HIDDEN, num_layers=2, max_sequence_length=N + TEXT + 2,
                         fusion=fusion, name="lstm_decoder")


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(1, VOCAB, (2, TEXT)).astype("int32"),
            rng.normal(size=(2, N, HIDDEN)).astype("float32"))


def test_lstm_decoder_round_trips_with_each_fusion(tmp_path):
    ids, img = _inputs()
    for fusion in (ConcatFusion(HIDDEN, 2, name="concat"), AttentionPoolingFusion(HIDDEN, 2)):
        decoder = _decoder(fusion)
        run_layer_test(decoder, {"token_ids": ids, "image_tokens": img}, tmp_path,
                       expected_output_shape=(2, TEXT, VOCAB))


def test_lstm_decoder_is_causal_and_reads_the_image():
    ids, img = _inputs()
    decoder = _decoder(AttentionPoolingFusion(HIDDEN, 2))
    base = np.asarray(decoder(ids, image_tokens=img))
    later = ids.copy()
    later[:, 4:] = (later[:, 4:] + 1) % VOCAB
    np.testing.assert_allclose(np.asarray(decoder(later, image_tokens=img))[:, :4], base[:, :4],
                               atol=1e-6)
    assert not np.allclose(np.asarray(decoder(ids, image_tokens=img + 1.0)), base, atol=1e-5)


def test_step_by_step_state_cache_equals_the_full_call():
    ids, img = _inputs(seed=1)
    for fusion in (None, AttentionPoolingFusion(HIDDEN, 2)):
        decoder = _decoder(fusion)
        full = np.asarray(decoder(ids, image_tokens=img))
        # Prefill the image prefix and the first 3 tokens (the rest masked), then one at a time.
        mask = np.arange(TEXT)[None, :].repeat(2, 0) < 3
        logits, cache = decoder.call_with_cache(ids, decoder.init_cache(2), 0, image_tokens=img,
                                                padding_mask=mask)
        np.testing.assert_allclose(np.asarray(logits)[:, :3], full[:, :3], atol=1e-5)
        assert tuple(cache.shape) == (2, 2, 2, HIDDEN)
        for t in range(3, TEXT):
            step, cache = decoder.call_with_cache(ops.convert_to_tensor(ids[:, t : t + 1]), cache,
                                                  None, image_tokens=img, include_prefix=False)
            np.testing.assert_allclose(np.asarray(step)[:, 0], full[:, t], atol=1e-5)
