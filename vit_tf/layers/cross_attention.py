"""Cross-attention fusion: every decoder block attends to the image tokens (Flamingo)."""

import keras
from keras import layers, ops

from vit_tf.layers.fusion import Fusion
from vit_tf.registry import FUSIONS


@keras.saving.register_keras_serializable(package="vit_tf")
class GatedCrossAttention(layers.Layer):
    """``x + tanh(gate) * MHA(LN(x), image_tokens)``; ``gate`` starts at 0 (Flamingo).

    With ``gated=False`` the residual is added ungated. Unlike Flamingo there is no gated
    feed-forward after the attention (the decoder block that follows has one).

    Call: ``x`` (batch, text_len, hidden_dim), ``image_tokens`` (batch, image_tokens, hidden_dim)
        -> (batch, text_len, hidden_dim).
    """

    def __init__(self, hidden_dim, num_heads, gated=True, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.gated = gated
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.attention = layers.MultiHeadAttention(
            num_heads, max(hidden_dim // num_heads, 1), name="attention"
        )

    def build(self, x_shape, image_tokens_shape=None):
        image_tokens_shape = image_tokens_shape or x_shape
        self.norm.build(x_shape)
        self.attention.build(x_shape, image_tokens_shape)
        if self.gated:
            self.gate = self.add_weight(name="gate", shape=(), initializer="zeros")
        self.built = True

    def call(self, x, image_tokens):
        image_tokens = ops.cast(image_tokens, x.dtype)
        update = self.attention(self.norm(x), image_tokens)  # (batch, text_len, hidden_dim)
        if self.gated:
            update = ops.tanh(ops.cast(self.gate, x.dtype)) * update
        return x + update

    def compute_output_shape(self, x_shape, image_tokens_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads, "gated": self.gated}


@FUSIONS.register("cross_attention")
@keras.saving.register_keras_serializable(package="vit_tf")
class CrossAttentionFusion(Fusion):
    """One ``GatedCrossAttention`` after every decoder block; no image prefix.

    Args: ``hidden_dim``, ``num_layers`` (decoder blocks), ``num_heads``, ``gated``.
    """

    uses_reads = True

    def __init__(self, hidden_dim, num_layers, num_heads=4, gated=True, **kwargs):
        super().__init__(hidden_dim, num_layers, **kwargs)
        self.num_heads = num_heads
        self.gated = gated
        self.cross_attentions = [
            GatedCrossAttention(hidden_dim, num_heads, gated, name=f"cross_attention_{i}")
            for i in range(num_layers)
        ]

    @classmethod
    def from_section(cls, section, *, hidden_dim, num_layers, name="fusion"):
        """``section`` fields: num_heads, gated."""
        return cls(hidden_dim, num_layers, num_heads=section.num_heads, gated=section.gated,
                   name=name)

    def build(self, image_tokens_shape=None):
        shape = (None, None, self.hidden_dim)
        for layer in self.cross_attentions:
            layer.build(shape, shape)
        self.built = True

    def read(self, index, x, image_tokens):
        return self.cross_attentions[index](x, image_tokens)

    def call(self, image_tokens):
        # Standalone call (for tests): the image tokens read themselves through every layer.
        x = image_tokens
        for i in range(self.num_layers):
            x = self.read(i, x, image_tokens)
        return x

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "gated": self.gated}
