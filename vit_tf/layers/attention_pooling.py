"""The design's attention pooling: S = v_i^T v_t, alpha = softmax(S), v_it = sum_i alpha_i v_i."""

import math

import keras
from keras import layers, ops

from vit_tf.layers.fusion import Fusion
from vit_tf.registry import FUSIONS


@keras.saving.register_keras_serializable(package="vit_tf")
class AttentionPooling(layers.Layer):
    """Pool the image tokens with the text state as the query, then combine the two.

    For every text position t with state v_t (after a LayerNorm):
        S_i = v_i . v_t / sqrt(hidden_dim)          scores over image tokens i
        alpha = softmax(S)                          (batch, text_len, image_tokens)
        v_it = sum_i alpha_i v_i                     fused image vector (batch, text_len, hidden)
        out  = v_t + tanh(W [v_t ; v_it] + b)       combined with the text state (Luong-style)
    Single head and no key/value projections, as in the design (Show-Attend-Tell style); the
    1/sqrt(hidden_dim) scale only keeps the softmax from saturating at initialisation.

    Call: ``x`` (batch, text_len, hidden_dim), ``image_tokens`` (batch, image_tokens, hidden_dim)
        -> (batch, text_len, hidden_dim); ``return_scores=True`` also returns alpha.
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.combine = layers.Dense(hidden_dim, activation="tanh", name="combine")

    def build(self, x_shape, image_tokens_shape=None):
        self.norm.build(x_shape)
        self.combine.build((*x_shape[:-1], 2 * self.hidden_dim))
        self.built = True

    def call(self, x, image_tokens, return_scores=False):
        image_tokens = ops.cast(image_tokens, x.dtype)
        query = self.norm(x)
        scores = ops.einsum("btd,bnd->btn", query, image_tokens) / math.sqrt(self.hidden_dim)
        alpha = ops.softmax(scores, axis=-1)  # (batch, text_len, image_tokens)
        pooled = ops.einsum("btn,bnd->btd", alpha, image_tokens)  # (batch, text_len, hidden_dim)
        out = x + self.combine(ops.concatenate([query, pooled], axis=-1))  # (batch, text_len, hidden)
        return (out, alpha) if return_scores else out

    def compute_output_shape(self, x_shape, image_tokens_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}


@FUSIONS.register("attention_pooling")
@keras.saving.register_keras_serializable(package="vit_tf")
class AttentionPoolingFusion(Fusion):
    """``AttentionPooling`` on the last decoder block's states, at every text step; no prefix."""

    uses_reads = True

    def __init__(self, hidden_dim, num_layers, **kwargs):
        super().__init__(hidden_dim, num_layers, **kwargs)
        self.pooling = AttentionPooling(hidden_dim, name="pooling")

    @classmethod
    def from_section(cls, section, *, hidden_dim, num_layers, name="fusion"):
        """No fields of ``section`` (single head, as in the design)."""
        return cls(hidden_dim, num_layers, name=name)

    def build(self, image_tokens_shape=None):
        shape = (None, None, self.hidden_dim)
        self.pooling.build(shape, shape)
        self.built = True

    def read(self, index, x, image_tokens):
        if index != self.num_layers - 1:
            return x
        return self.pooling(x, image_tokens)

    def call(self, image_tokens):
        return self.pooling(image_tokens, image_tokens)
