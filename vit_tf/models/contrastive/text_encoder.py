"""A small text Transformer for the contrastive stage: token ids -> one vector per text.

keras-hub's ``CLIPTextEncoder`` pools at the end-of-text token by taking the argmax of the
token ids (CLIP's BPE puts that token last in its vocabulary), and ``SigLIPTextEncoder`` takes
the last position: both assume their own tokenizer. Ours reads any tokenizer's ids with a
padding mask, so it is built from keras-hub's layers instead (``TokenAndPositionEmbedding``,
pre-norm ``TransformerEncoder`` blocks, bidirectional) and pools by the masked mean of the
final states, which needs no special token.

Example:
    >>> encoder = TextEncoder(vocabulary_size=100, max_sequence_length=16, hidden_dim=32,
    ...                       num_layers=1, num_heads=2, intermediate_dim=64)
    >>> encoder({"token_ids": ids, "padding_mask": mask}).shape      # ids (2, 16)
    (2, 32)
"""

import keras
import keras_hub
from keras import layers, ops


@keras.saving.register_keras_serializable(package="vit_tf")
class TextEncoder(layers.Layer):
    """Call: {"token_ids": (batch, L) int, "padding_mask": (batch, L) bool}
    -> (batch, hidden_dim), the mean of the non-padded final states."""

    def __init__(self, vocabulary_size, max_sequence_length, hidden_dim, num_layers, num_heads,
                 intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.max_sequence_length = max_sequence_length
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size, max_sequence_length, hidden_dim, name="embedding")
        self.blocks = [keras_hub.layers.TransformerEncoder(
            intermediate_dim, num_heads, dropout=dropout, activation="gelu",
            normalize_first=True, name=f"block_{i}") for i in range(num_layers)]
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def build(self, input_shape):
        shape = input_shape["token_ids"] if isinstance(input_shape, dict) else input_shape
        self.embedding.build(shape)
        hidden = (*shape, self.hidden_dim)
        for block in self.blocks:
            block.build(hidden)
        self.final_norm.build(hidden)
        self.built = True

    def call(self, inputs, training=None):
        token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
        x = self.embedding(token_ids)                       # (batch, L, hidden_dim)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, training=training)
        x = self.final_norm(x)
        weights = ops.cast(padding_mask, x.dtype)[..., None]   # (batch, L, 1)
        return ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        shape = input_shape["token_ids"] if isinstance(input_shape, dict) else input_shape
        return (shape[0], self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "max_sequence_length": self.max_sequence_length, "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers, "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim, "dropout": self.dropout}
