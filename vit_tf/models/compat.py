"""Which model parts go together: nonsensical combinations are refused before building.

Example:
    >>> check_model_config(apply_overrides(ExperimentConfig(), ["model.fusion.num_queries=0"]))
    Traceback (most recent call last):
    ConfigError: model.fusion.num_queries must be >= 1 for the resampler fusion, got 0
"""

from vit_tf.config import ConfigError
from vit_tf.data.preset_tokenizer import HUB_LM_CHAT_FORMATS
from vit_tf.models.encoders.preset import is_image_encoder_preset


def check_model_config(config):
    """Raise ``ConfigError`` naming the key if ``config.model`` cannot be built sensibly."""
    m = config.model
    # Unknown part names are left to the registries (KeyError listing the known names).
    if m.decoder.num_layers < 1:
        raise ConfigError(f"model.decoder.num_layers must be >= 1, got {m.decoder.num_layers}")
    if m.fusion.name == "resampler":
        if m.fusion.num_queries < 1:
            raise ConfigError("model.fusion.num_queries must be >= 1 for the resampler fusion, "
                              f"got {m.fusion.num_queries}")
        if m.fusion.resampler_layers < 1:
            raise ConfigError("model.fusion.resampler_layers must be >= 1 for the resampler "
                              f"fusion, got {m.fusion.resampler_layers}")
    if m.fusion.name == "relation_network" and m.fusion.relation_heads < 0:
        raise ConfigError("model.fusion.relation_heads must be >= 0 for the relation_network "
                          f"fusion, got {m.fusion.relation_heads}")
    if m.fusion.name == "relation_network" and m.fusion.relation_dim < 1:
        raise ConfigError("model.fusion.relation_dim must be >= 1 for the relation_network "
                          f"fusion, got {m.fusion.relation_dim}")
    if (m.fusion.name in ("cross_attention", "resampler") and m.decoder.name not in HUB_LM_CHAT_FORMATS
            and m.decoder.hidden_dim % m.fusion.num_heads):
        raise ConfigError(
            f"model.fusion.num_heads={m.fusion.num_heads} must divide model.decoder.hidden_dim="
            f"{m.decoder.hidden_dim} for the {m.fusion.name} fusion"
        )
    _check_pretrained_text(config)
    if m.decoder.attention != "causal" and m.decoder.name != "transformer":
        raise ConfigError(f"model.decoder.attention={m.decoder.attention} needs the transformer "
                          f"decoder; model.decoder.name={m.decoder.name} reads its input in order")
    if config.data.pack_by_image and (m.decoder.name != "transformer"
                                      or m.decoder.attention == "prefix"):
        raise ConfigError("data.pack_by_image needs the transformer decoder with causal "
                          f"or image attention (got model.decoder.name={m.decoder.name}, "
                          f"attention={m.decoder.attention}): packed examples are walled off "
                          "by the attention mask, which a recurrent decoder does not use, and "
                          "a prefix-LM's prefix would hold the first packed question only")
    if m.decoder.name == "transformer" and m.decoder.hidden_dim % m.decoder.num_heads:
        raise ConfigError(f"model.decoder.num_heads={m.decoder.num_heads} must divide "
                          f"model.decoder.hidden_dim={m.decoder.hidden_dim}")
    e = m.encoder
    for field, names in (("preset", ("clip", "siglip")), ("handle", ("saved_model",)),
                         ("weights", ("resnet50", "vgg16", "efficientnet_lite0"))):
        value = getattr(e, field)
        if field == "preset" and value and e.name not in names:
            if is_image_encoder_preset(value):   # a trained encoder's folder, checked on load
                continue
            raise ConfigError(f"model.encoder.preset={value!r} is not an image-encoder preset "
                              f"folder (vit-tf pretrain writes one: RUN/image_encoder), and "
                              f"model.encoder.name={e.name} does not use it as a keras-hub "
                              f"preset (that is for {', '.join(names)})")
        if e.name in names and field != "weights" and not value:
            raise ConfigError(f"model.encoder.name={e.name} needs model.encoder.{field}")
        if value and e.name not in names:
            raise ConfigError(f"model.encoder.{field} is set but model.encoder.name={e.name} does "
                              f"not use it (it is for {', '.join(names)})")
    if e.name in ("resnet50", "vgg16") and config.data.image_size < 32:
        raise ConfigError(f"model.encoder.name={e.name} needs data.image_size >= 32 "
                          f"(one token per 32x32 pixels), got {config.data.image_size}")
    if not e.trainable and e.name == "vit" and not e.preset:
        raise ConfigError("model.encoder.trainable=false freezes a pretrained encoder; the vit "
                          "encoder starts from random weights and must be trained")


def _check_pretrained_text(config):
    """keras-hub LM decoders (gemma, llama) and the pretrained text embedding (keras_hub)."""
    m = config.model
    d, t = m.decoder, m.text_embedding
    hub_lm = d.name in HUB_LM_CHAT_FORMATS
    if hub_lm and not d.preset:
        raise ConfigError(f"model.decoder.name={d.name} needs model.decoder.preset (a keras-hub "
                          "preset name or a local preset folder)")
    if d.preset and not hub_lm:
        raise ConfigError(f"model.decoder.preset is set but model.decoder.name={d.name} does not "
                          f"use it (it is for {', '.join(HUB_LM_CHAT_FORMATS)})")
    if not d.trainable and not hub_lm:
        raise ConfigError(f"model.decoder.trainable=false freezes a pretrained LM; "
                          f"model.decoder.name={d.name} starts from random weights")
    if t.name not in ("learned", "keras_hub"):
        raise ConfigError(f"model.text_embedding.name={t.name!r}: expected learned or keras_hub")
    if t.name == "keras_hub":
        if not t.preset:
            raise ConfigError("model.text_embedding.name=keras_hub needs model.text_embedding.preset "
                              "(a BERT-family keras-hub preset name or local folder)")
        if hub_lm:
            raise ConfigError(f"model.text_embedding.name=keras_hub cannot be combined with "
                              f"model.decoder.name={d.name}: a pretrained LM embeds text with its "
                              "own token embedding and tokenizer")
    else:
        if t.preset:
            raise ConfigError("model.text_embedding.preset is set but model.text_embedding.name="
                              "learned does not use it (set name=keras_hub)")
        if not t.trainable:
            raise ConfigError("model.text_embedding.trainable=false freezes a pretrained embedding; "
                              "the learned one starts from random weights")
