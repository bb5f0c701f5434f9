"""Causal Transformer language decoder that accepts a prefix of (image) embeddings."""

import keras
import keras_hub
from keras import layers, ops

from vit_tf.registry import DECODERS


@DECODERS.register("transformer")
@keras.saving.register_keras_serializable(package="vit_tf")
class TransformerDecoderLM(layers.Layer):
    """Token embedding + learned positions + pre-norm causal blocks + tied output head.

    Blocks are keras-hub ``TransformerDecoder`` layers in decoder-only mode, whose self-attention
    cache gives KV-cached generation. The prefix (projected image tokens) is concatenated before
    the text embeddings and attended to causally, as in LLaVA.

    Args:
        vocabulary_size, hidden_dim, num_layers, num_heads, intermediate_dim, dropout: as keras-hub.
        max_sequence_length: prefix tokens + text tokens the position table covers.

    Call: ``token_ids`` (batch, text_len) int32, ``prefix_embeddings`` (batch, prefix_len,
        hidden_dim), ``padding_mask`` (batch, text_len) bool -> logits (batch, text_len, vocab)
        for the text positions only.
    """

    def __init__(self, vocabulary_size, hidden_dim, num_layers, num_heads, intermediate_dim,
                 max_sequence_length, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=True, name="token_embedding"
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            max_sequence_length, name="position_embedding"
        )
        self.blocks = [
            keras_hub.layers.TransformerDecoder(
                intermediate_dim, num_heads, dropout=dropout, activation="gelu",
                normalize_first=True, name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    def build(self, token_ids_shape, prefix_embeddings_shape=None, padding_mask_shape=None):
        self.token_embedding.build(token_ids_shape)
        shape = (None, None, self.hidden_dim)
        self.position_embedding.build(shape)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def _embed(self, token_ids, prefix_embeddings, start_index=0):
        x = self.token_embedding(token_ids)  # (batch, text_len, hidden_dim)
        if prefix_embeddings is not None:
            prefix_embeddings = ops.cast(prefix_embeddings, x.dtype)
            x = ops.concatenate([prefix_embeddings, x], axis=1)  # (batch, prefix + text, hidden)
        return x + self.position_embedding(x, start_index=start_index)

    def _logits(self, x, prefix_len):
        x = self.final_norm(x)[:, prefix_len:]  # (batch, text_len, hidden_dim)
        return ops.cast(self.token_embedding(x, reverse=True), "float32")

    def call(self, token_ids, prefix_embeddings=None, padding_mask=None, training=None):
        prefix_len = 0 if prefix_embeddings is None else prefix_embeddings.shape[1]
        x = self._embed(token_ids, prefix_embeddings)
        mask = None
        if padding_mask is not None:
            mask = ops.cast(padding_mask, "bool")
            if prefix_len:
                ones = ops.ones((ops.shape(mask)[0], prefix_len), "bool")
                mask = ops.concatenate([ones, mask], axis=1)  # (batch, prefix + text)
        for block in self.blocks:
            x = block(x, decoder_padding_mask=mask, training=training)
        return self._logits(x, prefix_len)

    def init_cache(self, batch_size, max_length):
        """Empty KV cache: (batch, num_layers, 2, max_length, num_heads, head_dim)."""
        shape = (batch_size, self.num_layers, 2, max_length, self.num_heads, self.head_dim)
        return ops.zeros(shape, self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index, prefix_embeddings=None):
        """Run ``token_ids`` (and an optional prefix) at ``cache_update_index``, updating the cache.

        Returns ``(logits, cache)``: logits (batch, text_len, vocab) for the text positions.
        """
        prefix_len = 0 if prefix_embeddings is None else prefix_embeddings.shape[1]
        x = self._embed(token_ids, prefix_embeddings, start_index=cache_update_index)
        caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(
                x, self_attention_cache=cache[:, i], self_attention_cache_update_index=cache_update_index
            )
            caches.append(layer_cache)
        cache = ops.stack(caches, axis=1)
        return self._logits(x, prefix_len), cache

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            max_sequence_length=self.max_sequence_length,
            dropout=self.dropout,
        )
        return config
