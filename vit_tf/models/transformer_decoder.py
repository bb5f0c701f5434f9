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
        fusion: a ``vit_tf.layers.fusion.Fusion`` deciding how ``image_tokens`` enter (default
            ``None``: they are a prefix, like ``ConcatFusion``).

    Call: ``token_ids`` (batch, text_len) int32, ``prefix_embeddings`` (batch, prefix_len,
        hidden_dim), ``padding_mask`` (batch, text_len) bool -> logits (batch, text_len, vocab)
        for the text positions only. ``image_tokens`` (batch, image_tokens, hidden_dim) go
        through the fusion (prefix and/or reads after each block) instead.
    """

    def __init__(self, vocabulary_size, hidden_dim, num_layers, num_heads, intermediate_dim,
                 max_sequence_length, dropout=0.0, fusion=None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.dropout = dropout
        self.fusion = fusion
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

    def build(self, token_ids_shape, prefix_embeddings_shape=None, padding_mask_shape=None,
              image_tokens_shape=None):
        self.token_embedding.build(token_ids_shape)
        shape = (None, None, self.hidden_dim)
        if self.fusion is not None and not self.fusion.built:  # built already when deserialized
            self.fusion.build(shape)
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

    def _fuse(self, prefix_embeddings, image_tokens):
        """The prefix to use: ``prefix_embeddings`` or the fusion's prefix of ``image_tokens``."""
        if image_tokens is None:
            return prefix_embeddings
        if prefix_embeddings is not None:
            raise ValueError("pass either prefix_embeddings or image_tokens, not both")
        return image_tokens if self.fusion is None else self.fusion.prefix(image_tokens)

    def _read(self, index, x, image_tokens):
        if image_tokens is None or self.fusion is None:
            return x
        return self.fusion.read(index, x, image_tokens)

    def call(self, token_ids, prefix_embeddings=None, padding_mask=None, image_tokens=None,
             training=None):
        prefix_embeddings = self._fuse(prefix_embeddings, image_tokens)
        prefix_len = 0 if prefix_embeddings is None else prefix_embeddings.shape[1]
        x = self._embed(token_ids, prefix_embeddings)
        mask = None
        if padding_mask is not None:
            mask = ops.cast(padding_mask, "bool")
            if prefix_len:
                ones = ops.ones((ops.shape(mask)[0], prefix_len), "bool")
                mask = ops.concatenate([ones, mask], axis=1)  # (batch, prefix + text)
        for i, block in enumerate(self.blocks):
            x = block(x, decoder_padding_mask=mask, training=training)
            x = self._read(i, x, image_tokens)
        return self._logits(x, prefix_len)

    def init_cache(self, batch_size, max_length):
        """Empty KV cache: (batch, num_layers, 2, max_length, num_heads, head_dim)."""
        shape = (batch_size, self.num_layers, 2, max_length, self.num_heads, self.head_dim)
        return ops.zeros(shape, self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index, prefix_embeddings=None,
                        image_tokens=None, include_prefix=True, padding_mask=None):
        """Run ``token_ids`` (and an optional prefix) at ``cache_update_index``, updating the cache.

        ``image_tokens`` are needed at every step by read fusions; ``include_prefix=False`` runs
        only the text (the fusion's prefix is already in the cache). ``padding_mask`` is unused:
        positions after the prompt are overwritten step by step before they are attended to.
        Returns ``(logits, cache)``: logits (batch, text_len, vocab) for the text positions.
        """
        if include_prefix:
            prefix_embeddings = self._fuse(prefix_embeddings, image_tokens)
        prefix_len = 0 if prefix_embeddings is None else prefix_embeddings.shape[1]
        x = self._embed(token_ids, prefix_embeddings, start_index=cache_update_index)
        caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(
                x, self_attention_cache=cache[:, i], self_attention_cache_update_index=cache_update_index
            )
            x = self._read(i, x, image_tokens)
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
            fusion=None if self.fusion is None else keras.saving.serialize_keras_object(self.fusion),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("fusion") is not None:
            config["fusion"] = keras.saving.deserialize_keras_object(config["fusion"])
        return cls(**config)
