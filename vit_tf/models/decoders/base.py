"""The contract every language decoder implements, so the VLM and generation never probe.

A decoder turns text ids, and the projected image tokens through its ``fusion``, into
next-token logits for the text positions, and can do so step by step with a cache:

    decoder(token_ids, image_tokens=None, padding_mask=None)            -> logits
    cache = decoder.init_cache(batch_size, max_length)
    logits, cache = decoder.call_with_cache(token_ids, cache, cache_update_index, ...)

The sequence a decoder runs is ``[fusion prefix ; text]``: the fusion's prefix (the image tokens
for concat, K resampled ones, nothing for the read fusions) followed by the text embeddings.
``num_prefix_tokens(n)`` says how long that prefix is for ``n`` image tokens; cache positions
count it (text position t is cache position ``num_prefix_tokens + t``).

Subclasses: ``TransformerDecoderLM`` (``decoders.transformer``), ``LSTMDecoderLM``
(``decoders.lstm``), ``GemmaDecoderLM`` / ``LlamaDecoderLM`` (``decoders.hub_lm``).

Example (a subclass must implement every method marked "subclasses implement"):
    >>> decoder = DECODERS.get("lstm").from_section(
    ...     DecoderConfig(name="lstm", hidden_dim=16, num_layers=1), vocabulary_size=50,
    ...     max_sequence_length=32, make_fusion=lambda d, n: ConcatFusion(d, n))
    >>> decoder(ops.ones((2, 5), "int32"), image_tokens=ops.zeros((2, 4, 16))).shape
    (2, 5, 50)
"""

import keras
from keras import layers, ops

from vit_tf.layers.fusion import ConcatFusion
from vit_tf.layers.text_embedding import PretrainedTokenEmbedding

ATTENTION_MODES = ("causal", "prefix", "image")


def token_embedding_from_section(text_embedding, hidden_dim, vocabulary_size):
    """The input/output table ``config.model.text_embedding`` names: None for ``learned`` (the
    decoder's own tied table), BERT's token table for ``keras_hub``."""
    if text_embedding is None or text_embedding.name == "learned":
        return None
    return PretrainedTokenEmbedding.from_preset(
        text_embedding.preset, hidden_dim, total_vocabulary_size=vocabulary_size,
        trainable=text_embedding.trainable, name="token_embedding")


class LanguageDecoder(layers.Layer):
    """Base class of the decoders: what the VLM, training and generation may rely on.

    Attributes (set by ``__init__``):
        vocabulary_size: rows of the output logits.
        hidden_dim: width of the embeddings, the image tokens and the fusion.
        num_layers: decoder blocks (the fusion reads after each, ``Fusion.read``).
        max_sequence_length: prefix + text positions the decoder supports.
        fusion: a ``vit_tf.layers.fusion.Fusion``; always set (``ConcatFusion`` by default).
        attention: ``"causal"`` (every position sees itself and earlier ones) or ``"prefix"``
            (prefix-LM: see ``prefix_lengths``).

    Args: the attributes above; ``fusion=None`` gives ``ConcatFusion(hidden_dim, num_layers)``.
    """

    def __init__(self, vocabulary_size, hidden_dim, num_layers, max_sequence_length, fusion=None,
                 attention="causal", **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.max_sequence_length = max_sequence_length
        self.attention = attention
        self.fusion = fusion if fusion is not None else ConcatFusion(hidden_dim, num_layers,
                                                                     name="fusion")

    def _abstract(self, method):
        return NotImplementedError(f"{type(self).__name__} does not implement "
                                   f"LanguageDecoder.{method}")

    # ----- built from config (vit_tf.models.factory) -----

    @classmethod
    def width_from_section(cls, section):
        """The decoder's ``hidden_dim`` as its config section gives it, or None when the decoder
        decides it itself (a pretrained LM). The factory builds the projector first when it is
        known, so layers are constructed, and their initializers seeded, in a fixed order."""
        return section.hidden_dim

    @classmethod
    def from_section(cls, section, *, vocabulary_size, max_sequence_length, make_fusion,
                     text_embedding=None, special_token_ids=None, name="decoder"):
        """Subclasses implement: the decoder of ``config.model.decoder`` (``section``).

        Args:
            section: the ``DecoderConfig``; each decoder reads the fields it uses by name.
            vocabulary_size: the tokenizer's ids (a pretrained LM checks it has as many rows).
            max_sequence_length: image prefix + text positions to support.
            make_fusion: ``(hidden_dim, num_layers) -> Fusion``; called once the decoder knows
                its width and depth (a pretrained LM reads them from its backbone).
            text_embedding: ``config.model.text_embedding`` (decoders with their own table).
            special_token_ids: ``{token: id}`` of the tokenizer (the prefix-LM boundary).
        """
        raise NotImplementedError(f"{cls.__name__} does not implement "
                                  "LanguageDecoder.from_section")

    # ----- the forward pass -----

    def embed_tokens(self, token_ids):
        """Subclasses implement: (batch, text_len) int32 -> (batch, text_len, hidden_dim)."""
        raise self._abstract("embed_tokens")

    def call(self, token_ids, image_tokens=None, padding_mask=None, training=None):
        """Subclasses implement: logits (batch, text_len, vocabulary_size) float32.

        ``token_ids`` (batch, text_len) int32; ``image_tokens`` (batch, image_tokens,
        hidden_dim) enter through the fusion; ``padding_mask`` (batch, text_len) bool marks
        real tokens (right padding; the Transformer also separates packed sequences by it).
        """
        raise self._abstract("call")

    # ----- the prefix -----

    def num_prefix_tokens(self, num_image_tokens):
        """Embeddings the fusion places before the text for ``num_image_tokens`` image tokens."""
        return self.fusion.num_prefix_tokens(num_image_tokens)

    def prefix_lengths(self, token_ids, num_prefix_tokens=0):
        """(batch,) int32 bidirectional prefix per row (prefix embeddings included) for a
        prefix-LM, else None (causal decoders, the default)."""
        return None

    def embed_with_prefix(self, token_ids, image_tokens):
        """-> (x, prefix_len): ``[fusion prefix ; token embeddings]`` (batch, prefix + text,
        hidden_dim) and the prefix length (0 without ``image_tokens``)."""
        x = self.embed_tokens(token_ids)                         # (batch, text_len, hidden_dim)
        prefix = None if image_tokens is None else self.fusion.prefix(image_tokens)
        if prefix is None:
            return x, 0
        x = ops.concatenate([ops.cast(prefix, x.dtype), x], axis=1)  # (batch, prefix + text, d)
        return x, prefix.shape[1]

    def fused_read(self, index, x, image_tokens):
        """Text states after block ``index`` updated by the fusion (unchanged without images)."""
        if image_tokens is None:
            return x
        return self.fusion.read(index, x, ops.cast(image_tokens, x.dtype))

    @staticmethod
    def with_prefix_mask(padding_mask, prefix_len, dtype="bool", image_present=None):
        """(batch, text_len) -> (batch, prefix_len + text_len): the prefix is real, or with
        ``image_present`` (batch,) bool, real only in the rows where it is True (a text-only
        row's prefix is masked: its text attends to no image token)."""
        mask = ops.cast(padding_mask, dtype)
        if not prefix_len:
            return mask
        prefix = ops.ones((ops.shape(mask)[0], prefix_len), dtype)    # (batch, prefix_len)
        if image_present is not None:
            prefix = prefix * ops.cast(image_present, dtype)[:, None]
        return ops.concatenate([prefix, mask], axis=1)

    def build_fusion(self):
        """Builds the fusion at the decoder's width (a deserialized one comes built)."""
        if not self.fusion.built:
            self.fusion.build((None, None, self.hidden_dim))

    # ----- cached generation -----

    def init_cache(self, batch_size, max_length):
        """Subclasses implement: an empty cache for ``max_length`` prefix + text positions."""
        raise self._abstract("init_cache")

    def call_with_cache(self, token_ids, cache, cache_update_index, image_tokens=None,
                        include_prefix=True, padding_mask=None, prefix_lengths=None):
        """Subclasses implement: run ``token_ids`` at ``cache_update_index``; -> (logits, cache).

        Args:
            token_ids: (batch, len) int32: the whole prompt (prefill) or one token per step.
            cache: from ``init_cache`` or the previous call.
            cache_update_index: cache position of ``token_ids[:, 0]`` (the prefix counts).
            image_tokens: (batch, image_tokens, hidden_dim); read fusions need them every step.
            include_prefix: False runs only the text (the fusion's prefix is already cached).
            padding_mask: (batch, len) bool prompt tokens to consume (state caches stop there).
            prefix_lengths: (batch,) from ``prefix_lengths`` (prefix-LM decoders only).
        Returns: logits (batch, len, vocabulary_size) float32 and the updated cache.
        """
        raise self._abstract("call_with_cache")

    def _check_causal(self, prefix_lengths):
        if prefix_lengths is not None:
            raise ValueError(f"{type(self).__name__} attends causally; prefix_lengths is not "
                             "supported")

    # ----- serialization -----

    def get_config(self):
        """Layer config + ``max_sequence_length`` and the serialized ``fusion``; subclasses add
        their own constructor arguments."""
        return {**super().get_config(), "max_sequence_length": self.max_sequence_length,
                "fusion": keras.saving.serialize_keras_object(self.fusion)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("fusion") is not None:  # files saved before fusion was always set: None
            config["fusion"] = keras.saving.deserialize_keras_object(config["fusion"])
        return cls(**config)
