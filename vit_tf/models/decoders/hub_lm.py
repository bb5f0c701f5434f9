"""keras-hub causal LMs (Gemma, Llama) as decoders: image tokens spliced into their embeddings.

The LLaVA recipe on a real pretrained LM, done as keras-hub's ``PaliGemmaBackbone`` does for
Gemma: text ids go through the backbone's own ``token_embedding`` (Gemma scales them by
sqrt(hidden_dim), the image tokens are not scaled), the fusion's prefix (the projected image
tokens) is concatenated before them, and the backbone's ``transformer_layers`` run on the joint
sequence with their own KV cache (as the family's ``CausalLM.call_with_cache``); the final norm
and the (tied or separate) output embedding give the logits. Positions are rotary, so image and
text positions are simply 0..N-1 of the joint sequence. Read fusions (cross_attention,
attention_pooling) update the text states after each transformer layer, as in our decoders.

Layout of one example (concat fusion), as PaliGemma:
    [image tokens] <bos> <start_of_turn>user\\n ... <end_of_turn>\\n <start_of_turn>model\\n ...

Example:
    >>> backbone = keras_hub.models.Backbone.from_preset("/models/gemma_tiny")
    >>> decoder = GemmaDecoderLM(backbone, max_sequence_length=64)
    >>> decoder(ops.ones((2, 5), "int32"), image_tokens=ops.zeros((2, 4, backbone.hidden_dim)))
"""

import keras
import keras_hub
from keras import ops

from vit_tf.config import ConfigError
from vit_tf.layers.image_lora import EVERY, enable_image_lora, image_prefix
from vit_tf.models.decoders.base import LanguageDecoder
from vit_tf.pretrained import resolve_preset
from vit_tf.registry import DECODERS


def load_lm_backbone(name, preset):
    """The keras-hub backbone of a preset (name, local folder, or ``pretrained:NAME``: converted
    once by ``vit_tf.pretrained``), checked to be of family ``name``."""
    cls = DECODERS.get(name)
    backbone = keras_hub.models.Backbone.from_preset(resolve_preset(preset))
    if not isinstance(backbone, cls.backbone_class):
        raise ValueError(f"model.decoder.preset={preset!r} holds a {type(backbone).__name__}, not a "
                         f"{cls.backbone_class.__name__} (model.decoder.name={name})")
    return backbone


class HubCausalLMDecoder(LanguageDecoder):
    """Base class: a keras-hub causal-LM backbone with a prefix of image embeddings.

    ``hidden_dim``, ``num_layers`` and ``vocabulary_size`` are the backbone's; attention is
    causal. Subclasses (one per family) set ``backbone_class`` and implement ``_layer``.

    Args:
        backbone: the keras-hub backbone (``load_lm_backbone``); serialized by ``get_config``,
            so a ``.keras`` file rebuilds it without the preset (weights come from the file).
        max_sequence_length: prefix + text tokens generation may use (``Generator`` reads it).
        fusion: a ``vit_tf.layers.fusion.Fusion`` (width ``backbone.hidden_dim``) or None
            (``ConcatFusion``: the image tokens are the prefix).
        trainable: False freezes the LM (the fusion stays trainable).
        image_lora: None, or ``{"rank": r, "alpha": a}``: the LM's projections carry
            image-token-only LoRA (``vit_tf.layers.image_lora``; ``enable_image_lora``), re-made
            when the decoder is rebuilt from its config so a saved file loads the factors.

    Call: ``token_ids`` (batch, text_len) int32, ``image_tokens`` (batch, N, hidden_dim),
        ``padding_mask`` (batch, text_len) -> logits (batch, text_len, vocabulary_size) float32.
    """

    backbone_class = None
    scale_embeddings = False

    def __init__(self, backbone, max_sequence_length, fusion=None, trainable=True,
                 image_lora=None, **kwargs):
        super().__init__(backbone.vocabulary_size, backbone.hidden_dim, backbone.num_layers,
                         max_sequence_length, fusion=fusion, **kwargs)
        self.backbone = backbone
        self.backbone.trainable = trainable
        self.lm_trainable = trainable
        self.image_lora = None
        if image_lora:
            self.enable_image_lora(image_lora["rank"], image_lora["alpha"],
                                   image_lora.get("scope", "image"))

    def enable_image_lora(self, rank, alpha, scope="image"):
        """Image-conditioned LoRA on every projection of the LM. ``scope="image"``
        (``train.lora.tokens=image``): the update applies at the image prefix's positions only;
        ``"with_image"`` (``train.lora.tokens=with_image``): at every position of a sequence that
        has an image, its decode steps included. Either way a text-only input computes the
        original LM exactly. Concat fusion only (the image must be the prefix)."""
        if scope not in ("image", "with_image"):
            raise ConfigError(f"image-conditioned LoRA scope {scope!r}: expected 'image' or "
                              "'with_image'")
        if self.fusion.uses_reads:
            raise ConfigError(f"train.lora.tokens={scope!r} needs the concat fusion (the image "
                              f"as the LM's prefix), not the {type(self.fusion).__name__}")
        wanted = {"rank": int(rank), "alpha": float(alpha), "scope": scope}
        if self.image_lora is not None and self.image_lora != wanted:
            raise ConfigError(f"the LM already has image-token LoRA {self.image_lora}; "
                              f"asked for {wanted}")
        enable_image_lora(self.backbone, wanted["rank"], wanted["alpha"])
        self.image_lora = wanted

    def _image_scope(self, prefix_len, has_image=None):
        """The scope the transformer layers run in: the adapted projections' image positions
        are the prefix's (none without image-conditioned LoRA or without a prefix); with scope
        ``with_image``, every position when the sequence has an image (``has_image``; default:
        a prefix is present)."""
        if not self.image_lora:
            return image_prefix(0)
        if self.needs_image_tokens_each_step:
            has_image = prefix_len > 0 if has_image is None else has_image
            return image_prefix(EVERY if has_image else 0)
        return image_prefix(prefix_len)

    @property
    def needs_image_tokens_each_step(self):
        """Cached decode steps must be told the sequence has an image (``image_tokens``): LoRA
        with scope ``with_image`` (``self.image_lora`` always holds its scope)."""
        return bool(self.image_lora) and self.image_lora["scope"] == "with_image"

    @classmethod
    def width_from_section(cls, section):
        return None   # the preset's backbone sets it

    @classmethod
    def from_section(cls, section, *, vocabulary_size, max_sequence_length, make_fusion,
                     text_embedding=None, special_token_ids=None, name="decoder"):
        """``section`` fields: preset (loaded with ``load_lm_backbone``; it sets the width and
        depth the fusion is made for) and trainable. The LM must have a row for every id of
        the tokenizer (``vocabulary_size``); it embeds text with its own table."""
        backbone = load_lm_backbone(section.name, section.preset)
        if vocabulary_size > backbone.vocabulary_size:
            raise ConfigError(f"model.decoder.preset={section.preset!r}: the tokenizer has "
                              f"{vocabulary_size} ids but the LM only {backbone.vocabulary_size}")
        return cls(backbone, max_sequence_length=max_sequence_length,
                   fusion=make_fusion(backbone.hidden_dim, backbone.num_layers),
                   trainable=section.trainable, name=name)

    def build(self, token_ids_shape, image_tokens_shape=None, padding_mask_shape=None):
        self.build_fusion()
        self.built = True

    # ----- family specifics -----

    def _layer(self, block, x, padding_mask=None, cache=None, index=None):
        """One transformer layer of the family: ``x`` (batch, len, hidden_dim) -> x, or with
        ``cache`` -> (x, updated layer cache)."""
        raise self._abstract("_layer (a HubCausalLMDecoder family method)")

    @property
    def logit_soft_cap(self):
        """Logits are ``tanh(logits / cap) * cap`` when set (Gemma 2); None: uncapped."""
        return None

    @property
    def head_dim(self):
        return self.backbone.hidden_dim // self.backbone.num_query_heads

    # ----- shared -----

    def embed_tokens(self, token_ids):
        x = self.backbone.token_embedding(token_ids)  # (batch, text_len, hidden_dim)
        if self.scale_embeddings:  # the text only: the image tokens are not scaled
            x = x * ops.cast(ops.sqrt(self.hidden_dim), x.dtype)
        return x

    def _logits(self, x, prefix_len):
        x = self.backbone.layer_norm(x)[:, prefix_len:]  # (batch, text_len, hidden_dim)
        logits = self.backbone.token_embedding(x, reverse=True)
        cap = self.logit_soft_cap
        if cap:
            logits = ops.tanh(logits / cap) * cap
        return ops.cast(logits, "float32")

    # Text-only rows in a batch with images (LLaVA-1.5's text-only chat in stage 2): call's
    # ``image_present`` masks their image prefix out of attention (``feature_model``).
    masks_image_prefix = True

    def call(self, token_ids, image_tokens=None, padding_mask=None, training=None,
             image_present=None):
        """``image_present`` (batch,) bool, optional: rows where it is False see no image
        token (their prefix is masked out of attention; with rotary positions the text then
        computes what it computes without a prefix). Concat fusion only."""
        x, prefix_len = self.embed_with_prefix(token_ids, image_tokens)  # (batch, P + T, d)
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(token_ids), "bool")
        if image_present is not None and self.fusion.uses_reads:
            raise ValueError(f"image_present needs the concat fusion; the "
                             f"{type(self.fusion).__name__} reads the image at every layer")
        mask = self.with_prefix_mask(padding_mask, prefix_len, "int32",
                                     image_present)                    # (batch, prefix + text)
        with self._image_scope(prefix_len):
            for i, block in enumerate(self.backbone.transformer_layers):
                x = self._layer(block, x, padding_mask=mask)
                x = self.fused_read(i, x, image_tokens)
        return self._logits(x, prefix_len)

    def init_cache(self, batch_size, max_length):
        """Empty KV cache: (batch, num_layers, 2, max_length, num_key_value_heads, head_dim)."""
        shape = (batch_size, self.num_layers, 2, max_length,
                 self.backbone.num_key_value_heads, self.head_dim)
        return ops.zeros(shape, self.compute_dtype)

    def call_with_cache(self, token_ids, cache, cache_update_index, image_tokens=None,
                        include_prefix=True, padding_mask=None, prefix_lengths=None):
        """As ``TransformerDecoderLM.call_with_cache``: the prefix (unless ``include_prefix`` is
        False) and ``token_ids`` at ``cache_update_index``. ``padding_mask`` is unused (a KV
        cache is position-indexed); ``prefix_lengths`` is not supported (causal only).
        Returns ``(logits (batch, text_len, vocab), cache)``."""
        self._check_causal(prefix_lengths)
        x, prefix_len = self.embed_with_prefix(token_ids, image_tokens if include_prefix else None)
        caches = []
        # decode steps: no prefix, so the plain projections (scope "image"), or the adapted
        # ones when the sequence has an image (scope "with_image": image_tokens passed)
        with self._image_scope(prefix_len, has_image=image_tokens is not None):
            for i, block in enumerate(self.backbone.transformer_layers):
                x, layer_cache = self._layer(block, x, cache=cache[:, i],
                                             index=cache_update_index)
                x = self.fused_read(i, x, image_tokens)
                caches.append(layer_cache)
        return self._logits(x, prefix_len), ops.stack(caches, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=keras.saving.serialize_keras_object(self.backbone),
            trainable=self.lm_trainable,
            image_lora=self.image_lora,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return super().from_config(config)


@DECODERS.register("gemma")
@keras.saving.register_keras_serializable(package="vit_tf")
class GemmaDecoderLM(HubCausalLMDecoder):
    """Gemma / Gemma 2 (``keras_hub.models.GemmaBackbone``); chat format ``gemma``."""

    backbone_class = keras_hub.models.GemmaBackbone
    scale_embeddings = True

    @property
    def head_dim(self):
        return self.backbone.head_dim

    @property
    def logit_soft_cap(self):
        return self.backbone.final_logit_soft_cap

    def _layer(self, block, x, padding_mask=None, cache=None, index=None):
        if cache is None:
            return block(x, padding_mask=padding_mask)
        return block(x, cache=cache, cache_update_index=index)


@DECODERS.register("llama")
@keras.saving.register_keras_serializable(package="vit_tf")
class LlamaDecoderLM(HubCausalLMDecoder):
    """Llama / Llama 3 (``keras_hub.models.LlamaBackbone`` and ``Llama3Backbone``); chat format
    ``llama3``, or the preset's ``chat_format.json`` (SmolLM2: ``chatml``)."""

    backbone_class = keras_hub.models.LlamaBackbone

    def _layer(self, block, x, padding_mask=None, cache=None, index=None):
        if cache is None:
            return block(x, decoder_padding_mask=padding_mask)
        return block(x, self_attention_cache=cache, self_attention_cache_update_index=index)
