"""A faster full-sequence forward pass through keras-hub's pre-norm Transformer blocks.

The encoders and decoders keep keras-hub ``TransformerEncoder`` / ``TransformerDecoder`` layers
(their weights, configs and saved files are unchanged); ``encoder_block`` and ``decoder_block``
compute the same function from those layers' own sublayers and variables, faster on CPU:

* one matmul for the query, key and value projections (their kernels side by side:
  ``(hidden, 3 * heads * head_dim)``) instead of three, on ``(batch * length, hidden)`` rows
  instead of a batched 3-D product: oneDNN's kernels are far more efficient on one wider
  matrix (at width 128 a 128-column product ran at about half the rate of a 512-column one);
* the attention in (batch, heads, length, head_dim) layout with plain batched matmuls;
* the elementwise chains (layer norms, GELU, the masked softmax) as small functions of plain
  ops: XLA fuses them inside a compiled step (the default) and in the decoding loop. (They
  were XLA "islands" inside non-XLA steps until 2026-12-07: on an idle machine that gained
  nothing, 277 vs 272 ms per step at the issue-16 size, benchmarks/results.md
  "step_profile", and every new input shape cost an XLA compilation, which the test suite and
  short runs paid many times over.)

Same math as the keras-hub call (logits scaled after the matmul, masked with keras' large
negative, soft-maxed in float32; GELU exact; layer norms as ``keras.ops.layer_normalization``);
``tests/models/test_blocks.py`` checks both against each other (values and gradients, with
masks). Blocks it does not cover (post-norm, cross-attention) keep their own ``call``, and so
do blocks with dropout, and every block in a training step that XLA does not compile: callers
check ``fast_path_supported`` first.

XLA-compiled training steps too (the default), since 2026-12-07 (second half of the day): the
earlier "gains nothing under XLA" (272 vs 277 ms) was measured while tf.data's autotuning
thread stalled every other ``fit`` call (``vit_tf.data.pipeline.without_autotune_thread``);
without the stall the fused path trains 3-4% faster (176 vs 182 ms per step at the issue-16
size, 38.6 vs 40.4 ms for the default experiment, ``benchmarks/step_profile.py``). Its
other summation order moves a training run's numbers by rounding (the quickstart's
first-epoch loss changed in its sixth digit), so results before and after differ by
run-to-run noise, not by the math. Decoding gains most (1.7-2.1x cached tokens/s).
"""

import keras
import tensorflow as tf
from keras import ops

_LARGE_NEGATIVE = -0.7 * 3.38953e38       # keras' value for float32 masked logits
ENABLED = [True]   # benchmarks/step_profile.py turns it off to time keras-hub's own calls


def _layer_norm(x, gamma, beta, epsilon):
    # The last axis by its positive index: with -1, keras reshapes gamma to x's static shape,
    # which is unknown when the step is traced for varying lengths.
    return ops.layer_normalization(x, gamma, beta, axis=len(x.shape) - 1, epsilon=epsilon)


def _bias_gelu(x, bias):
    return ops.gelu(x + bias, approximate=False)


def _masked_softmax(logits, mask, scale):
    """float32 softmax of ``logits * scale`` over the keys, masked keys at keras' large negative;
    ``mask`` (batch, 1, queries, keys) bool or None."""
    logits = ops.cast(logits, "float32") * scale
    if mask is not None:
        logits = ops.where(mask, logits, _LARGE_NEGATIVE)
    return ops.softmax(logits, axis=-1)


def norm(layer, x):
    """keras ``LayerNormalization`` ``layer`` of ``x``, computed in float32."""
    gamma, beta = (ops.cast(v, "float32") for v in (layer.gamma, layer.beta))  # tensors
    return ops.cast(_layer_norm(ops.cast(x, "float32"), gamma, beta,
                                float(layer.epsilon)), layer.compute_dtype)


def _in_xla():
    """True while tracing inside an XLA-compiled function (``jit_compile=True``)."""
    try:   # TensorFlow's own check (private module; absent: answer False, keras-hub's call)
        from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
    except ImportError:
        return False
    return bool(GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def fast_path_supported(block, training):
    """True when ``block_forward`` should replace ``block``'s call: a pre-norm block without
    cross-attention, in inference (``training`` falsy) or, without dropout, in a training step
    XLA compiles (where it was measured faster; without XLA its extra ops slowed the tiny
    models of the test suite)."""
    return (ENABLED[0] and (not training or (not block.dropout and _in_xla()))
            and block.normalize_first
            and getattr(block, "_cross_attention_layer", None) is None
            and keras.backend.backend() == "tensorflow")


def qkv_projection(attention, x):
    """keras ``MultiHeadAttention`` ``attention``'s query, key and value of ``x`` (batch, length,
    hidden), each (batch, heads, length, head_dim), from one matmul of the three kernels."""
    batch, length, hidden = ops.shape(x)[0], ops.shape(x)[1], x.shape[-1]
    q, k, v = attention._query_dense, attention._key_dense, attention._value_dense
    heads, head_dim = q.kernel.shape[1], q.kernel.shape[2]
    width = heads * head_dim
    kernel = ops.concatenate([ops.reshape(d.kernel, (hidden, width)) for d in (q, k, v)],
                             axis=1)                                     # (hidden, 3 * width)
    bias = ops.concatenate([ops.reshape(d.bias, (width,)) for d in (q, k, v)], axis=0)
    rows = ops.reshape(x, (-1, hidden))                                  # (batch * length, d)
    qkv = ops.matmul(rows, ops.cast(kernel, x.dtype)) + ops.cast(bias, x.dtype)
    qkv = ops.reshape(qkv, (batch, length, 3, heads, head_dim))
    qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))                # (3, batch, heads, length, hd)
    # unstack, not qkv[i]: the gradient of each slice would be a zero-filled (3, ...) tensor
    # (StridedSliceGrad: 15% of the default experiment's step in its profile), unstack's is one
    # stack.
    query, key, value = tf.unstack(qkv, num=3, axis=0)
    return query, key, value


def attention_probs(attention, query, keys, mask):
    """float32 attention weights (batch, heads, queries, keys) of ``query`` over ``keys`` (both
    (batch, heads, length, head_dim)); ``mask`` (batch, queries, keys) bool or None."""
    logits = tf.linalg.matmul(query, keys, transpose_b=True)
    return _masked_softmax(logits, None if mask is None else mask[:, None],
                           float(attention._inverse_sqrt_key_dim))


def output_projection(attention, context, dtype):
    """``context`` (batch, heads, length, head_dim) through the attention's output dense."""
    batch, heads, length, head_dim = (ops.shape(context)[0], context.shape[1],
                                      ops.shape(context)[2], context.shape[3])
    out = attention._output_dense
    hidden = out.kernel.shape[-1]
    rows = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (-1, heads * head_dim))
    y = ops.matmul(rows, ops.cast(ops.reshape(out.kernel, (heads * head_dim, hidden)), dtype))
    return ops.reshape(y + ops.cast(out.bias, dtype), (batch, length, hidden))


def _attention(attention, x, mask):
    """keras ``MultiHeadAttention`` self-attention of ``x`` (batch, length, hidden)."""
    query, key, value = qkv_projection(attention, x)
    probs = attention_probs(attention, query, key, mask)
    context = ops.matmul(ops.cast(probs, value.dtype), value)       # (batch, heads, T, hd)
    return output_projection(attention, context, x.dtype)


def feedforward(block, x):
    """The block's GELU feed-forward of ``x`` (batch, length, hidden)."""
    inner, outer = block._feedforward_intermediate_dense, block._feedforward_output_dense
    hidden = x.shape[-1]
    rows = ops.reshape(x, (-1, hidden))                                  # (batch * length, d)
    h = _bias_gelu(ops.matmul(rows, ops.cast(inner.kernel, x.dtype)),
                   ops.cast(inner.bias, x.dtype))
    y = ops.matmul(h, ops.cast(outer.kernel, x.dtype)) + ops.cast(outer.bias, x.dtype)
    return ops.reshape(y, ops.shape(x))


def block_forward(block, x, mask=None):
    """Pre-norm self-attention + feed-forward of keras-hub ``block`` (a ``TransformerEncoder``
    or decoder-only ``TransformerDecoder`` for which ``fast_path_supported``), each with its
    residual. x (batch, length, hidden); mask (batch, length, length) bool or None (all)."""
    x = x + _attention(block._self_attention_layer, norm(block._self_attention_layer_norm, x),
                       mask)
    return x + feedforward(block, norm(block._feedforward_layer_norm, x))


def combined_mask(x, attention_mask=None, padding_mask=None, use_causal_mask=True):
    """(batch, length, length) bool, what keras-hub's decoder block attends to (or None):
    ``attention_mask`` (batch, length, length) AND the keys' ``padding_mask`` (batch, length)
    AND, with ``use_causal_mask``, the causal mask."""
    length = ops.shape(x)[1]
    mask = None if attention_mask is None else ops.cast(attention_mask, "bool")
    if padding_mask is not None:
        keys = ops.cast(padding_mask, "bool")[:, None, :]                 # (batch, 1, keys)
        mask = keys if mask is None else ops.logical_and(mask, keys)
    if use_causal_mask:
        causal = ops.arange(length)[None, :] <= ops.arange(length)[:, None]
        mask = causal[None] if mask is None else ops.logical_and(mask, causal[None])
    if mask is None:
        return None
    return ops.broadcast_to(mask, (ops.shape(x)[0], length, length))
