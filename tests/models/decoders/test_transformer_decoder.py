"""Tests for the causal decoder: serialization, causality, the prefix, and KV-cache equivalence."""

import numpy as np
import pytest

from tests.helpers import run_layer_test
from vit_tf.models.decoders.transformer import TransformerDecoderLM

VOCAB, HIDDEN, PREFIX, TEXT = 40, 16, 3, 7


def _decoder(**kwargs):
    args = dict(vocabulary_size=VOCAB, hidden_dim=HIDDEN, num_layers=2, num_heads=2,
                intermediate_dim=32, max_sequence_length=PREFIX + TEXT + 2)
    return TransformerDecoderLM(**{**args, **kwargs})


def _inputs(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, VOCAB, (batch, TEXT)).astype("int32")
    prefix = rng.normal(size=(batch, PREFIX, HIDDEN)).astype("float32")
    return token_ids, prefix


def _np(x):
    return np.asarray(x)


def test_decoder_round_trips_and_outputs_text_logits(tmp_path):
    token_ids, prefix = _inputs()
    padding_mask = np.ones_like(token_ids, bool)
    padding_mask[1, 5:] = False
    inputs = {"token_ids": token_ids, "image_tokens": prefix, "padding_mask": padding_mask}
    out = run_layer_test(_decoder(), inputs, tmp_path, expected_output_shape=(2, TEXT, VOCAB))
    assert out.dtype == np.float32


def test_decoder_without_prefix_outputs_one_logit_row_per_token():
    token_ids, _ = _inputs()
    assert tuple(_decoder()(token_ids).shape) == (2, TEXT, VOCAB)


def test_changing_a_later_token_does_not_change_earlier_logits():
    decoder = _decoder()
    token_ids, prefix = _inputs()
    base = _np(decoder(token_ids, image_tokens=prefix))
    for t in range(1, TEXT):
        changed = token_ids.copy()
        changed[:, t] = (changed[:, t] + 1) % VOCAB
        out = _np(decoder(changed, image_tokens=prefix))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t], atol=1e-6)


def test_changing_the_prefix_changes_the_logits_at_every_position():
    decoder = _decoder()
    token_ids, prefix = _inputs()
    a = _np(decoder(token_ids, image_tokens=prefix))
    other = np.random.default_rng(1).normal(size=prefix.shape).astype("float32")
    b = _np(decoder(token_ids, image_tokens=other))
    assert np.abs(a - b).max(axis=-1).min() > 1e-4


def test_right_padding_does_not_change_the_logits_of_real_tokens():
    decoder = _decoder()
    token_ids, prefix = _inputs(batch=1)
    n = 4
    padded = token_ids.copy()
    padded[:, n:] = 0
    mask = np.arange(TEXT)[None, :] < n
    full = _np(decoder(token_ids[:, :n], image_tokens=prefix))
    out = _np(decoder(padded, image_tokens=prefix, padding_mask=mask))
    np.testing.assert_allclose(out[:, :n], full, atol=1e-5)


def test_prefill_with_cache_at_index_0_equals_the_uncached_call():
    decoder = _decoder()
    token_ids, prefix = _inputs()
    full = _np(decoder(token_ids, image_tokens=prefix))
    cache = decoder.init_cache(2, PREFIX + TEXT)
    # Per block (keys, values), each (batch, heads, length, head_dim).
    assert [[tuple(t.shape) for t in pair] for pair in cache] == [
        [(2, 2, PREFIX + TEXT, HIDDEN // 2)] * 2] * 2
    logits, cache = decoder.call_with_cache(token_ids, cache, 0, image_tokens=prefix)
    np.testing.assert_allclose(_np(logits), full, rtol=0, atol=1e-5)
    for t in (t for pair in cache for t in pair):                  # every slot was written
        assert np.abs(_np(t)).min(axis=(0, 1, 3)).min() > 0


def _keras_hub_cached_steps(decoder, token_ids, prefix, prefill):
    """The decoder's cached logits through keras-hub's own cached block call (the path before
    vit_tf.models.decoders.kv_cache): prefill ``prefill`` tokens, then one token per step."""
    from keras import ops

    batch, length = token_ids.shape[0], PREFIX + TEXT
    caches = [ops.zeros((batch, 2, length, 2, HIDDEN // 2)) for _ in decoder.blocks]
    out, index = [], 0
    for ids, image in [(token_ids[:, :prefill], prefix)] + [
            (token_ids[:, t : t + 1], None) for t in range(prefill, TEXT)]:
        x, prefix_len = decoder.embed_with_prefix(ids, image)
        x = decoder._add_positions(x, start_index=index)
        for i, block in enumerate(decoder.blocks):
            x, caches[i] = block(x, self_attention_cache=caches[i],
                                 self_attention_cache_update_index=index)
        out.append(_np(decoder._logits(x, prefix_len)))
        index += x.shape[1]
    return np.concatenate(out, axis=1)


def test_cached_logits_equal_keras_hubs_own_cached_block_calls():
    decoder = _decoder()
    token_ids, prefix = _inputs()
    expected = _keras_hub_cached_steps(decoder, token_ids, prefix, prefill=3)
    cache = decoder.init_cache(2, PREFIX + TEXT)
    logits, cache = decoder.call_with_cache(token_ids[:, :3], cache, 0, image_tokens=prefix)
    steps = [_np(logits)]
    for t in range(3, TEXT):
        logits, cache = decoder.call_with_cache(token_ids[:, t : t + 1], cache, PREFIX + t)
        steps.append(_np(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), expected, rtol=0, atol=1e-5)


def test_step_by_step_cached_logits_equal_the_full_call_at_every_position():
    decoder = _decoder()
    token_ids, prefix = _inputs()
    full = _np(decoder(token_ids, image_tokens=prefix))
    cache = decoder.init_cache(2, PREFIX + TEXT)
    logits, cache = decoder.call_with_cache(token_ids[:, :1], cache, 0, image_tokens=prefix)
    steps = [_np(logits)[:, 0]]
    for t in range(1, TEXT):
        logits, cache = decoder.call_with_cache(token_ids[:, t : t + 1], cache, PREFIX + t)
        assert tuple(logits.shape) == (2, 1, VOCAB)
        steps.append(_np(logits)[:, 0])
    np.testing.assert_allclose(np.stack(steps, axis=1), full, rtol=0, atol=1e-5)


def test_decoder_uses_tied_input_and_output_embeddings():
    decoder = _decoder(num_layers=1)
    decoder(_inputs()[0])
    names = [w.path for w in decoder.weights if "token_embedding" in w.path]
    assert len(names) == 1, names


# Prefix-LM attention: token 4 closes the bidirectional prefix.
END_OF_PREFIX = 4


def _prefix_inputs():
    token_ids, prefix = _inputs()
    token_ids[:, [2, 4]] = 5             # no stray prefix ends
    token_ids[0, 2] = END_OF_PREFIX      # row 0: prefix = image + 3 text tokens
    token_ids[1, 4] = END_OF_PREFIX      # row 1: prefix = image + 5 text tokens
    return token_ids, prefix


def test_prefix_attention_round_trips_with_its_options(tmp_path):
    token_ids, prefix = _prefix_inputs()
    decoder = _decoder(attention="prefix", prefix_end_token_id=END_OF_PREFIX)
    inputs = {"token_ids": token_ids, "image_tokens": prefix}
    run_layer_test(decoder, inputs, tmp_path, expected_output_shape=(2, TEXT, VOCAB))
    assert decoder.get_config()["attention"] == "prefix"


def test_prefix_lengths_count_image_tokens_and_text_up_to_the_first_prefix_end():
    token_ids, _ = _prefix_inputs()
    token_ids[0, 5] = END_OF_PREFIX  # a second occurrence does not move the boundary
    decoder = _decoder(attention="prefix", prefix_end_token_id=END_OF_PREFIX)
    assert _np(decoder.prefix_lengths(token_ids, PREFIX)).tolist() == [PREFIX + 3, PREFIX + 5]
    token_ids[1, :] = 5
    assert _np(decoder.prefix_lengths(token_ids, PREFIX)).tolist()[1] == PREFIX


def test_prefix_tokens_see_later_prefix_tokens_but_the_rest_stays_causal():
    decoder = _decoder(attention="prefix", prefix_end_token_id=END_OF_PREFIX)
    token_ids, prefix = _prefix_inputs()
    base = _np(decoder(token_ids, image_tokens=prefix))
    inside = token_ids.copy()
    inside[:, 1] = (inside[:, 1] + 1) % VOCAB   # text position 1 is in both rows' prefix
    out = _np(decoder(inside, image_tokens=prefix))
    assert np.abs(out[:, 0] - base[:, 0]).max(axis=-1).min() > 1e-5  # seen by position 0
    after = token_ids.copy()
    after[:, 6] = (after[:, 6] + 1) % VOCAB     # after both prefixes: causal from here
    out = _np(decoder(after, image_tokens=prefix))
    np.testing.assert_allclose(out[:, :6], base[:, :6], atol=1e-6)


@pytest.mark.parametrize("attention, prefill", [("prefix", 5), ("image", 3)])
def test_bidirectional_attention_cached_steps_equal_the_full_call(attention, prefill):
    decoder = _decoder(attention=attention, prefix_end_token_id=END_OF_PREFIX)
    token_ids, prefix = _prefix_inputs()
    full = _np(decoder(token_ids, image_tokens=prefix))
    cache = decoder.init_cache(2, PREFIX + TEXT)
    # Prefill the first text tokens (with "prefix", both prefixes end by token 5), then step
    # one token at a time.
    logits, cache = decoder.call_with_cache(token_ids[:, :prefill], cache, 0,
                                            image_tokens=prefix)
    steps = [_np(logits)]
    lengths = decoder.prefix_lengths(token_ids[:, :prefill], PREFIX)
    for t in range(prefill, TEXT):
        logits, cache = decoder.call_with_cache(token_ids[:, t : t + 1], cache, PREFIX + t,
                                                prefix_lengths=lengths)
        steps.append(_np(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-5)


def test_image_attention_lets_image_tokens_see_later_ones_and_keeps_the_text_causal(tmp_path):
    token_ids, prefix = _inputs()
    decoder = _decoder(attention="image")
    run_layer_test(decoder, {"token_ids": token_ids, "image_tokens": prefix}, tmp_path,
                   expected_output_shape=(2, TEXT, VOCAB))
    assert _np(decoder.prefix_lengths(token_ids, PREFIX)).tolist() == [PREFIX, PREFIX]
    base = _np(decoder(token_ids, image_tokens=prefix))
    causal = _decoder(attention="causal")
    causal(token_ids, image_tokens=prefix)
    causal.set_weights(decoder.get_weights())
    # The same weights, causal: image token 0 no longer reads tokens 1-2, so every logit moves.
    moved = np.abs(_np(causal(token_ids, image_tokens=prefix)) - base).max(axis=-1)
    assert moved.min() > 1e-5
    after = token_ids.copy()
    after[:, 4] = (after[:, 4] + 1) % VOCAB
    out = _np(decoder(after, image_tokens=prefix))
    np.testing.assert_allclose(out[:, :4], base[:, :4], atol=1e-6)      # text stays causal
    assert np.abs(out[:, 4] - base[:, 4]).max() > 1e-5


def test_prefix_attention_without_its_end_token_id_is_refused():
    with pytest.raises(ValueError, match="prefix_end_token_id"):
        _decoder(attention="prefix")
    with pytest.raises(ValueError, match="attention must be one of"):
        _decoder(attention="bidirectional")
