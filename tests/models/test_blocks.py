"""The fast forward of keras-hub's blocks (vit_tf.models.blocks) equals their own call."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from vit_tf.models.blocks import block_forward, combined_mask, fast_path_supported

HIDDEN, HEADS, INTER, LENGTH = 16, 2, 32, 9


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(3, LENGTH, HIDDEN)).astype("float32")


def _masks():
    """Keys' padding (rows of 9, 6 and 4 real positions) and a block-diagonal attention mask."""
    padding = np.arange(LENGTH)[None, :] < np.array([9, 6, 4])[:, None]
    segment = (np.arange(LENGTH) >= 5).astype(int)
    attention = np.broadcast_to(segment[:, None] == segment[None, :], (3, LENGTH, LENGTH))
    return padding, np.ascontiguousarray(attention)


def _values_and_grads(fn, block, x):
    """Outputs, and gradients of a weighted sum of them for the input and every weight."""
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(7).normal(size=x.shape).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        loss = tf.reduce_sum(y * weights)
    grads = tape.gradient(loss, [x, *block.trainable_variables])
    return [np.asarray(y)] + [np.asarray(tf.convert_to_tensor(g)) for g in grads]


def _assert_close(expected, got):
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_encoder_block_fast_forward_equals_keras_hubs_call():
    keras.utils.set_random_seed(0)
    block = keras_hub.layers.TransformerEncoder(INTER, HEADS, activation="gelu",
                                                normalize_first=True)
    block.build((None, LENGTH, HIDDEN))
    assert fast_path_supported(block, training=False)
    x = _x()
    _assert_close(_values_and_grads(lambda t: block(t, training=True), block, x),
           _values_and_grads(lambda t: block_forward(block, t), block, x))


@pytest.mark.parametrize("causal", [True, False])
def test_decoder_block_fast_forward_equals_keras_hubs_call_with_masks(causal):
    keras.utils.set_random_seed(0)
    block = keras_hub.layers.TransformerDecoder(INTER, HEADS, activation="gelu",
                                                normalize_first=True)
    block.build((None, LENGTH, HIDDEN))
    padding, attention = _masks()
    x = _x(1)

    def reference(t):
        return block(t, decoder_padding_mask=padding, decoder_attention_mask=attention,
                     use_causal_mask=causal, training=True)

    def fast(t):
        return block_forward(block, t, combined_mask(t, attention, padding, causal))

    _assert_close(_values_and_grads(reference, block, x), _values_and_grads(fast, block, x))


def test_blocks_the_fast_path_does_not_cover_are_left_to_their_own_call():
    post_norm = keras_hub.layers.TransformerEncoder(INTER, HEADS, normalize_first=False)
    dropout = keras_hub.layers.TransformerEncoder(INTER, HEADS, dropout=0.1,
                                                  normalize_first=True)
    assert not fast_path_supported(post_norm, training=False)
    assert not fast_path_supported(dropout, training=True)
    assert fast_path_supported(dropout, training=False)       # dropout is off in inference
    # without dropout, XLA-compiled training steps take the fused path too (same values and
    # gradients); steps without XLA keep keras-hub's call
    plain = keras_hub.layers.TransformerEncoder(INTER, HEADS, normalize_first=True)
    assert not fast_path_supported(plain, training=True)
    assert fast_path_supported(plain, training=None)
    seen = []

    def traced(x):
        seen.append(fast_path_supported(plain, training=True))
        return x

    tf.function(traced, jit_compile=True)(tf.constant(0.0))
    tf.function(traced)(tf.constant(0.0))
    assert seen == [True, False]
