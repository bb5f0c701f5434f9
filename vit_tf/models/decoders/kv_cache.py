"""KV-cached decoding through keras-hub ``TransformerDecoder`` blocks, without copying the cache.

``TransformerDecoderLM`` trains with keras-hub's blocks as they are; this module runs the same
blocks (their own sublayers and weights, so every saved model decodes unchanged) one token at a
time against a cache laid out for the attention's matmuls:

    cache = ((keys_0, values_0), (keys_1, values_1), ...)     # one pair per block
    keys_i, values_i: (batch, num_heads, max_length, head_dim)

Why not keras-hub's cached call: its cache is one (batch, 2, length, heads, head_dim) tensor per
block, and the decoder stacked those into (batch, layers, 2, length, heads, head_dim). Every
generated token then sliced each block's keys and values out of the stack, stacked them back,
and transposed them to (batch, heads, length, head_dim) for the attention's batched matmul: at
batch 8 those copies took more time than the decoder's matmuls (TensorBoard profile of
``Generator``, benchmarks/results.md). Here the new keys and values are written in place
(``slice_update`` of a loop-carried buffer) and the matmuls read the cache as it lies.

The math is keras-hub's (pre-norm block, ``normalize_first=True``), computed by the pieces of
``vit_tf.models.blocks`` (inlined into the XLA-compiled decoding loop);
``tests/models/decoders/test_transformer_decoder.py`` checks it against keras-hub's own cached
call.
"""

from keras import ops

from vit_tf.models.blocks import (attention_probs, feedforward, norm, output_projection,
                                  qkv_projection)


def init_kv_cache(batch_size, num_layers, num_heads, max_length, head_dim, dtype):
    """Zero keys and values, one (batch, num_heads, max_length, head_dim) pair per block."""
    shape = (batch_size, num_heads, max_length, head_dim)
    return tuple((ops.zeros(shape, dtype), ops.zeros(shape, dtype)) for _ in range(num_layers))


def cached_attention_mask(batch_size, query_length, key_length, start_index):
    """(batch, queries, keys) bool: key j is visible from query t if j <= start_index + t."""
    keys = ops.arange(key_length)[None, None, :]                                # (1, 1, keys)
    queries = ops.cast(start_index, "int32") + ops.arange(query_length)[None, :, None]
    return ops.broadcast_to(keys <= queries, (batch_size, query_length, key_length))


def cached_block(block, x, cache, start_index, attention_mask):
    """keras-hub ``TransformerDecoder`` ``block`` (decoder-only, pre-norm) on ``x``.

    x (batch, T, hidden_dim) at cache positions start_index .. start_index + T - 1;
    cache (keys, values) each (batch, heads, max_length, head_dim); attention_mask (batch, T,
    max_length) bool. Returns (x, (keys, values)) with the T new positions written. The
    projections, norms and feed-forward are ``vit_tf.models.blocks``' (one q/k/v matmul).
    """
    attention = block._self_attention_layer
    h = norm(block._self_attention_layer_norm, x)
    query, key, value = qkv_projection(attention, h)               # (batch, heads, T, head_dim)
    keys, values = cache
    start = [0, 0, start_index, 0]
    keys = ops.slice_update(keys, start, ops.cast(key, keys.dtype))
    values = ops.slice_update(values, start, ops.cast(value, values.dtype))
    probs = attention_probs(attention, query, keys, attention_mask)  # (batch, heads, T, keys)
    context = ops.matmul(ops.cast(probs, values.dtype), values)    # (batch, heads, T, head_dim)
    x = x + output_projection(attention, context, x.dtype)
    x = x + feedforward(block, norm(block._feedforward_layer_norm, x))
    return x, (keys, values)
