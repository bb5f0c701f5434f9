"""Resampler fusion: N image tokens -> K learned queries (Perceiver Resampler / Q-Former style)."""

import keras
from keras import layers, ops

from vit_tf.layers.fusion import Fusion
from vit_tf.registry import FUSIONS


@keras.saving.register_keras_serializable(package="vit_tf")
class Resampler(layers.Layer):
    """K learned queries cross-attend to the image tokens, ``num_layers`` times.

    Each layer: ``q = q + MHA(LN(q), LN([image_tokens ; q]))``; ``q = q + MLP(LN(q))``
    (Flamingo's Perceiver Resampler attends to the image tokens and the queries together).

    Call: (batch, image_tokens, hidden_dim) -> (batch, num_queries, hidden_dim).
    """

    def __init__(self, hidden_dim, num_queries, num_heads=4, num_layers=1, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_queries = num_queries
        self.num_heads = num_heads
        self.num_layers = num_layers
        head_dim = max(hidden_dim // num_heads, 1)
        self.query_norms = [layers.LayerNormalization(epsilon=1e-6, name=f"query_norm_{i}")
                            for i in range(num_layers)]
        self.context_norms = [layers.LayerNormalization(epsilon=1e-6, name=f"context_norm_{i}")
                              for i in range(num_layers)]
        self.attentions = [layers.MultiHeadAttention(num_heads, head_dim, name=f"attention_{i}")
                           for i in range(num_layers)]
        self.mlp_norms = [layers.LayerNormalization(epsilon=1e-6, name=f"mlp_norm_{i}")
                          for i in range(num_layers)]
        self.mlps_in = [layers.Dense(4 * hidden_dim, activation="gelu", name=f"mlp_in_{i}")
                        for i in range(num_layers)]
        self.mlps_out = [layers.Dense(hidden_dim, name=f"mlp_out_{i}") for i in range(num_layers)]
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def build(self, input_shape):
        self.queries = self.add_weight(
            name="queries", shape=(self.num_queries, self.hidden_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        q = (None, self.num_queries, self.hidden_dim)
        ctx = (None, None, self.hidden_dim)
        for i in range(self.num_layers):
            self.query_norms[i].build(q)
            self.context_norms[i].build(ctx)
            self.attentions[i].build(q, ctx)
            self.mlp_norms[i].build(q)
            self.mlps_in[i].build(q)
            self.mlps_out[i].build((None, self.num_queries, 4 * self.hidden_dim))
        self.final_norm.build(q)
        self.built = True

    def call(self, image_tokens, training=None):
        batch = ops.shape(image_tokens)[0]
        q = ops.cast(self.queries, image_tokens.dtype)[None]
        q = ops.broadcast_to(q, (batch, self.num_queries, self.hidden_dim))  # (batch, K, hidden)
        for i in range(self.num_layers):
            context = ops.concatenate([image_tokens, q], axis=1)  # (batch, N + K, hidden_dim)
            q = q + self.attentions[i](self.query_norms[i](q), self.context_norms[i](context),
                                       training=training)
            q = q + self.mlps_out[i](self.mlps_in[i](self.mlp_norms[i](q)))
        return self.final_norm(q)  # (batch, K, hidden_dim)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_queries, self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim,
                "num_queries": self.num_queries, "num_heads": self.num_heads,
                "num_layers": self.num_layers}


@FUSIONS.register("resampler")
@keras.saving.register_keras_serializable(package="vit_tf")
class ResamplerFusion(Fusion):
    """Concatenation of ``num_queries`` resampled tokens before the text (instead of all N).

    ``num_layers`` here is the decoder's; ``resampler_layers`` the resampler's own depth.
    """

    uses_prefix = True

    def __init__(self, hidden_dim, num_layers, num_queries=8, num_heads=4, resampler_layers=1,
                 **kwargs):
        super().__init__(hidden_dim, num_layers, **kwargs)
        self.num_queries = num_queries
        self.num_heads = num_heads
        self.resampler_layers = resampler_layers
        self.resampler = Resampler(hidden_dim, num_queries, num_heads, resampler_layers,
                                   name="resampler")

    @classmethod
    def from_section(cls, section, *, hidden_dim, num_layers, name="fusion"):
        """``section`` fields: num_queries, num_heads, resampler_layers."""
        return cls(hidden_dim, num_layers, num_queries=section.num_queries,
                   num_heads=section.num_heads, resampler_layers=section.resampler_layers,
                   name=name)

    def build(self, image_tokens_shape=None):
        self.resampler.build(image_tokens_shape or (None, None, self.hidden_dim))
        self.built = True

    @classmethod
    def prefix_length(cls, section, num_image_tokens):
        return section.num_queries

    def prefix(self, image_tokens):
        return self.resampler(image_tokens)  # (batch, num_queries, hidden_dim)

    def get_config(self):
        return {**super().get_config(), "num_queries": self.num_queries,
                "num_heads": self.num_heads, "resampler_layers": self.resampler_layers}
