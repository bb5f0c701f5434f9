"""Causal Transformer language decoder that accepts a prefix of (image) embeddings."""

import keras
import keras_hub
from keras import layers, ops

from vit_tf.config import ConfigError
from vit_tf.data.template import ASSISTANT, SPECIAL_TOKENS
from vit_tf.models.blocks import block_forward, combined_mask, fast_path_supported
from vit_tf.models.decoders.base import (ATTENTION_MODES, LanguageDecoder,
                                         token_embedding_from_section)
from vit_tf.models.decoders.kv_cache import cached_attention_mask, cached_block, init_kv_cache
from vit_tf.registry import DECODERS


@DECODERS.register("transformer")
@keras.saving.register_keras_serializable(package="vit_tf")
class TransformerDecoderLM(LanguageDecoder):
    """Token embedding + learned positions + pre-norm causal blocks + tied output head.

    Blocks are keras-hub ``TransformerDecoder`` layers in decoder-only mode; cached generation
    runs the same blocks against a per-block key/value cache (``decoders.kv_cache``). The
    fusion's prefix (for concat: the projected image tokens) is concatenated before the text
    embeddings.

    Attention over the sequence is one of:
        ``"causal"``: every position sees itself and earlier ones (LLaVA);
        ``"prefix"``: prefix-LM (PaliGemma). The image tokens and the first user turn, up to and
            including the first ``prefix_end_token_id`` (``<|assistant|>``), attend to each other
            in both directions; everything after is causal. The image tokens can then pick out
            what the question asks about in every layer, instead of being encoded blind to it.
            The boundary is read from the token ids, so training, prefill and cached decoding
            agree on it.
        ``"image"``: the image tokens (the fusion's prefix) attend to each other in both
            directions in every block; the text is causal. Unlike ``"prefix"`` the boundary
            is the same for every row and every packed sequence, so it also trains on packed
            rows (``vit_tf.data.packing``): with causal attention image token i never sees
            tokens after it, so a relation between two objects can only be formed at the text
            positions; here every image token can hold it.

    Args:
        vocabulary_size, hidden_dim, num_layers, num_heads, intermediate_dim, dropout: as keras-hub.
        max_sequence_length: prefix tokens + text tokens the position table covers.
        attention: ``"causal"``, ``"prefix"`` or ``"image"``.
        prefix_end_token_id: the token that closes the bidirectional prefix (needed for
            ``"prefix"``).
        fusion: a ``vit_tf.layers.fusion.Fusion`` deciding how ``image_tokens`` enter (default
            ``None``: ``ConcatFusion``, they are the prefix).
        token_embedding: a reversible layer replacing the learned, tied embedding (e.g.
            ``vit_tf.layers.text_embedding.PretrainedTokenEmbedding``: BERT's token table).

    Call: ``token_ids`` (batch, text_len) int32, ``image_tokens`` (batch, image_tokens,
        hidden_dim) through the fusion (prefix and/or reads after each block), ``padding_mask``
        (batch, text_len) bool -> logits (batch, text_len, vocab) for the text positions only.
        A padded position inside a row separates packed sequences that share the prefix
        (``_segments``).
    """

    def __init__(self, vocabulary_size, hidden_dim, num_layers, num_heads, intermediate_dim,
                 max_sequence_length, dropout=0.0, attention="causal", prefix_end_token_id=None,
                 fusion=None, token_embedding=None, **kwargs):
        super().__init__(vocabulary_size, hidden_dim, num_layers, max_sequence_length,
                         fusion=fusion, attention=attention, **kwargs)
        if attention == "prefix" and prefix_end_token_id is None:
            raise ValueError("attention='prefix' needs prefix_end_token_id (the <|assistant|> id)")
        self.prefix_end_token_id = prefix_end_token_id
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        # A pretrained table (vit_tf.layers.text_embedding) or our own, tied with the output head
        # (float32 logits under mixed precision).
        self.custom_embedding = token_embedding is not None
        self.token_embedding = token_embedding or keras_hub.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=True, reverse_dtype="float32",
            name="token_embedding"
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

    @classmethod
    def from_section(cls, section, *, vocabulary_size, max_sequence_length, make_fusion,
                     text_embedding=None, special_token_ids=None, name="decoder"):
        """``section`` fields: hidden_dim, num_layers, num_heads, intermediate_dim, dropout,
        attention (``"prefix"`` ends the prefix at ``special_token_ids[ASSISTANT]``, by default
        the id our trained tokenizers give it); ``text_embedding.name="keras_hub"`` replaces the
        learned table by a pretrained one."""
        if section.attention not in ATTENTION_MODES:
            raise ConfigError(f"model.decoder.attention={section.attention!r}: expected one of "
                              f"{ATTENTION_MODES}")
        prefix_end_token_id = None
        if section.attention == "prefix":
            ids = special_token_ids or {t: i for i, t in enumerate(SPECIAL_TOKENS)}
            prefix_end_token_id = int(ids[ASSISTANT])
        return cls(
            vocabulary_size=vocabulary_size, hidden_dim=section.hidden_dim,
            num_layers=section.num_layers, num_heads=section.num_heads,
            intermediate_dim=section.intermediate_dim, max_sequence_length=max_sequence_length,
            dropout=section.dropout, attention=section.attention,
            prefix_end_token_id=prefix_end_token_id,
            fusion=make_fusion(section.hidden_dim, section.num_layers),
            token_embedding=token_embedding_from_section(text_embedding, section.hidden_dim,
                                                         vocabulary_size),
            name=name,
        )

    def build(self, token_ids_shape, image_tokens_shape=None, padding_mask_shape=None):
        if not self.token_embedding.built:  # a pretrained table comes built
            self.token_embedding.build(token_ids_shape)
        shape = (None, None, self.hidden_dim)
        self.build_fusion()
        self.position_embedding.build(shape)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def embed_tokens(self, token_ids):
        return self.token_embedding(token_ids)  # (batch, text_len, hidden_dim)

    def _add_positions(self, x, start_index=0, positions=None):
        """x (batch, prefix + text, hidden_dim) plus learned positions from ``start_index``, or
        at ``positions`` (batch, prefix + text) int32 (packed rows restart them)."""
        if positions is not None:   # packed rows: positions restart in every example
            table = ops.cast(self.position_embedding.position_embeddings, x.dtype)
            return x + ops.take(table, positions, axis=0)
        length = x.shape[1]
        if (isinstance(start_index, int) and length is not None
                and start_index + length > self.max_sequence_length):
            # Under XLA a slice past the table clamps silently to its last rows.
            raise ValueError(f"{start_index + length} positions (prefix + text) do not fit the "
                             f"decoder's position table of {self.max_sequence_length}")
        return x + self.position_embedding(x, start_index=start_index)

    @staticmethod
    def _segments(text_mask, prefix_len):
        """Packed rows: positions and attention of independent sequences sharing one image.

        A padded position *inside* a row separates two sequences (``vit_tf.data.pipeline``
        ``pack_by_image``): tokens after it see the prefix (the image) and their own sequence
        only, and their positions restart, so each packed sequence is computed exactly as if it
        were alone in its row. Right padding (the usual batch) changes nothing for real tokens.

        ``text_mask`` (batch, text_len) bool -> positions (batch, prefix + text) int32 and
        attention (batch, prefix + text, prefix + text) bool (ANDed with the causal mask).
        """
        pad = ops.logical_not(text_mask)                              # (batch, text)
        length = ops.shape(text_mask)[1]
        index = ops.arange(length, dtype="int32")
        segment = ops.cumsum(ops.cast(pad, "int32"), axis=1)          # (batch, text)
        # Start of each token's sequence: one past the last pad at or before it.
        earlier = index[None, None, :] <= index[None, :, None]        # (1, text, text)
        starts = ops.max(ops.where(ops.logical_and(pad[:, None, :], earlier),
                                   index[None, None, :] + 1, 0), axis=-1)  # (batch, text)
        text_positions = ops.maximum(index[None, :] - starts, 0) + prefix_len
        batch = ops.shape(text_mask)[0]
        prefix_positions = ops.broadcast_to(ops.arange(prefix_len, dtype="int32")[None],
                                            (batch, prefix_len))
        positions = ops.concatenate([prefix_positions, text_positions], axis=1)
        segment = ops.concatenate([ops.full((batch, prefix_len), -1, "int32"), segment], axis=1)
        same = ops.equal(segment[:, :, None], segment[:, None, :])    # (batch, P+T, P+T)
        to_prefix = (ops.arange(prefix_len + length) < prefix_len)[None, None, :]
        return positions, ops.logical_or(same, to_prefix)

    def _logits(self, x, prefix_len):
        x = self.final_norm(x)[:, prefix_len:]  # (batch, text_len, hidden_dim)
        return ops.cast(self.token_embedding(x, reverse=True), "float32")

    def call(self, token_ids, image_tokens=None, padding_mask=None, training=None):
        x, prefix_len = self.embed_with_prefix(token_ids, image_tokens)  # (batch, P + T, d)
        mask = positions = attention_mask = None
        if padding_mask is not None:
            positions, attention_mask = self._segments(ops.cast(padding_mask, "bool"), prefix_len)
            mask = self.with_prefix_mask(padding_mask, prefix_len)  # (batch, prefix + text)
        x = self._add_positions(x, positions=positions)
        if self.attention != "causal":
            length = ops.shape(x)[1]
            prefix_mask = self._prefix_mask(
                self._prefix_lengths(token_ids, prefix_len), ops.arange(length), length
            )
            attention_mask = prefix_mask if attention_mask is None else ops.logical_and(
                prefix_mask, attention_mask)
        causal = self.attention == "causal"
        fast = all(fast_path_supported(block, training) for block in self.blocks)
        if fast:  # the blocks' math, faster (vit_tf.models.blocks); the masks combined once
            attention_mask = combined_mask(x, attention_mask, mask, causal)
        for i, block in enumerate(self.blocks):
            if fast:
                x = block_forward(block, x, attention_mask)
            else:
                x = block(x, decoder_padding_mask=mask, decoder_attention_mask=attention_mask,
                          use_causal_mask=causal, training=training)
            x = self.fused_read(i, x, image_tokens)
        return self._logits(x, prefix_len)

    def prefix_lengths(self, token_ids, num_prefix_tokens=0):
        """(batch,) int32 with ``attention="prefix"``: ``num_prefix_tokens`` + text tokens up to
        the first ``prefix_end_token_id`` (rows without it: the prefix embeddings only); with
        ``"image"``: ``num_prefix_tokens``. None with causal attention."""
        if self.attention == "causal":
            return None
        return self._prefix_lengths(token_ids, num_prefix_tokens)

    def _prefix_lengths(self, token_ids, prefix_len):
        if self.attention == "image":
            return ops.full((ops.shape(token_ids)[0],), prefix_len, "int32")
        is_end = ops.cast(ops.equal(token_ids, self.prefix_end_token_id), "int32")
        first = ops.cast(ops.argmax(is_end, axis=1), "int32")       # first occurrence (or 0)
        found = ops.cast(ops.max(is_end, axis=1), "int32")
        return prefix_len + found * (first + 1)

    @staticmethod
    def _prefix_mask(prefix_lengths, query_positions, key_length):
        """(batch, queries, keys) bool: key j is visible from query i if j <= i or j < prefix."""
        keys = ops.arange(key_length)[None, None, :]                 # (1, 1, keys)
        causal = keys <= ops.cast(query_positions, "int32")[None, :, None]
        in_prefix = keys < prefix_lengths[:, None, None]             # (batch, 1, keys)
        return ops.logical_or(causal, in_prefix)

    def init_cache(self, batch_size, max_length):
        """Empty KV cache: per block, keys and values (batch, num_heads, max_length, head_dim)
        (``vit_tf.models.decoders.kv_cache``: written in place, read without copies)."""
        return init_kv_cache(batch_size, self.num_layers, self.num_heads, max_length,
                             self.head_dim, self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index, image_tokens=None,
                        include_prefix=True, padding_mask=None, prefix_lengths=None):
        """Run ``token_ids`` (and the fusion's prefix) at ``cache_update_index``, updating the cache.

        ``image_tokens`` are needed at every step by read fusions; ``include_prefix=False`` runs
        only the text (the fusion's prefix is already in the cache). ``padding_mask`` is unused:
        positions after the prompt are overwritten step by step before they are attended to.
        With ``attention="prefix"``, ``prefix_lengths`` (batch,) gives each row's bidirectional
        prefix (``prefix_lengths()`` of the prompt); when None it is read from ``token_ids``,
        which then must hold the whole prompt (the prefill).
        Returns ``(logits, cache)``: logits (batch, text_len, vocab) for the text positions.
        """
        x, prefix_len = self.embed_with_prefix(token_ids,
                                               image_tokens if include_prefix else None)
        x = self._add_positions(x, start_index=cache_update_index)  # (batch, P + T, hidden_dim)
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        cache_length = ops.shape(cache[0][0])[2]
        if self.attention != "causal":
            if prefix_lengths is None:
                prefix_lengths = self._prefix_lengths(token_ids, prefix_len)
            queries = cache_update_index + ops.arange(length)
            attention_mask = self._prefix_mask(prefix_lengths, queries, cache_length)
        else:
            attention_mask = cached_attention_mask(batch, length, cache_length,
                                                   cache_update_index)
        caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = cached_block(block, x, cache[i], cache_update_index, attention_mask)
            x = self.fused_read(i, x, image_tokens)
            caches.append(layer_cache)
        return self._logits(x, prefix_len), tuple(caches)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            attention=self.attention,
            prefix_end_token_id=self.prefix_end_token_id,
            token_embedding=(keras.saving.serialize_keras_object(self.token_embedding)
                             if self.custom_embedding else None),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("token_embedding") is not None:
            config["token_embedding"] = keras.saving.deserialize_keras_object(
                config["token_embedding"])
        return super().from_config(config)
