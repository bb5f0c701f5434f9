"""Build a ``VisionLanguageModel`` from an ``ExperimentConfig`` through the registries."""

import dataclasses
import inspect

import vit_tf.layers.attention_pooling  # noqa: F401  (registers fusions)
import vit_tf.layers.cross_attention  # noqa: F401
import vit_tf.layers.fusion  # noqa: F401
import vit_tf.layers.projector  # noqa: F401  (registers projectors)
import vit_tf.layers.resampler  # noqa: F401
import vit_tf.models.encoders.cnn  # noqa: F401  (registers image encoders)
import vit_tf.models.decoders.hub_lm  # noqa: F401  (registers gemma, llama)
import vit_tf.models.encoders.hub_vision  # noqa: F401
import vit_tf.models.decoders.lstm  # noqa: F401  (registers decoders)
import vit_tf.models.encoders.saved_model  # noqa: F401
import vit_tf.models.decoders.transformer  # noqa: F401
import vit_tf.models.encoders.vit  # noqa: F401
from vit_tf.layers.text_embedding import PretrainedTokenEmbedding
from vit_tf.models.compat import check_model_config
from vit_tf.models.decoders.hub_lm import HubCausalLMDecoder, load_lm_backbone
from vit_tf.config import ConfigError
from vit_tf.data.template import ASSISTANT, SPECIAL_TOKENS
from vit_tf.models.decoders.transformer import ATTENTION_MODES
from vit_tf.models.vlm import VisionLanguageModel
from vit_tf.registry import DECODERS, FUSIONS, IMAGE_ENCODERS, PROJECTORS


def _options(section, cls=None):
    """The section's fields except ``name``; with ``cls``, only those its constructor takes
    (the LSTM decoder has no heads, a CNN encoder no patch size)."""
    options = {k: v for k, v in dataclasses.asdict(section).items() if k != "name"}
    if cls is None:
        return options
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in options.items() if k in params}


def build_model(config, vocabulary_size, max_text_length=None, special_token_ids=None):
    """Compose encoder, projector, fusion and decoder named in ``config.model``.

    ``max_text_length`` defaults to ``config.data.max_text_length``; the decoder's position table
    covers the image tokens plus that many text tokens (plus one for the label shift).
    ``special_token_ids`` (``tokenizer.special_ids``) defaults to the reserved ids our trained
    tokenizers use (the order of ``SPECIAL_TOKENS``).
    Combinations that make no sense raise ``ConfigError`` before anything is built.
    """
    check_model_config(config)
    m = config.model
    image_size = config.data.image_size
    max_text_length = max_text_length or config.data.max_text_length
    encoder_cls = IMAGE_ENCODERS.get(m.encoder.name)
    encoder = encoder_cls(image_size=image_size, name="image_encoder",
                          **_options(m.encoder, encoder_cls))
    num_image_tokens = encoder.compute_output_shape((None, image_size, image_size, 3))[1]
    decoder_cls = DECODERS.get(m.decoder.name)
    hidden_dim, num_layers = m.decoder.hidden_dim, m.decoder.num_layers
    backbone = None
    if issubclass(decoder_cls, HubCausalLMDecoder):  # a pretrained LM sets the width and depth
        backbone = load_lm_backbone(m.decoder.name, m.decoder.preset)
        hidden_dim, num_layers = backbone.hidden_dim, backbone.num_layers
        if vocabulary_size > backbone.vocabulary_size:
            raise ConfigError(f"model.decoder.preset={m.decoder.preset!r}: the tokenizer has "
                              f"{vocabulary_size} ids but the LM only {backbone.vocabulary_size}")
        if m.fusion.name in ("cross_attention", "resampler") and hidden_dim % m.fusion.num_heads:
            raise ConfigError(f"model.fusion.num_heads={m.fusion.num_heads} must divide the LM's "
                              f"hidden_dim={hidden_dim} for the {m.fusion.name} fusion")
    projector = PROJECTORS.get(m.projector.name)(
        hidden_dim=hidden_dim, name="projector", **_options(m.projector)
    )
    fusion_cls = FUSIONS.get(m.fusion.name)
    fusion = fusion_cls(hidden_dim=hidden_dim, num_layers=num_layers,
                        name="fusion", **_options(m.fusion, fusion_cls))
    if backbone is not None:
        decoder = decoder_cls(backbone, max_sequence_length=num_image_tokens + max_text_length + 8,
                              fusion=fusion, trainable=m.decoder.trainable, name="decoder")
        return VisionLanguageModel(encoder, projector, decoder, image_size, name="vlm")
    decoder_options = _options(m.decoder, decoder_cls)
    if m.decoder.attention not in ATTENTION_MODES:
        raise ConfigError(
            f"model.decoder.attention={m.decoder.attention!r}: expected one of {ATTENTION_MODES}"
        )
    if m.decoder.attention == "prefix":
        ids = special_token_ids or {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        decoder_options["prefix_end_token_id"] = int(ids[ASSISTANT])
    if m.text_embedding.name == "keras_hub":  # BERT's token table as the input embedding
        decoder_options["token_embedding"] = PretrainedTokenEmbedding.from_preset(
            m.text_embedding.preset, hidden_dim, total_vocabulary_size=vocabulary_size,
            trainable=m.text_embedding.trainable, name="token_embedding")
    decoder = decoder_cls(
        vocabulary_size=vocabulary_size,
        max_sequence_length=num_image_tokens + max_text_length + 8,
        fusion=fusion,
        name="decoder",
        **decoder_options,
    )
    return VisionLanguageModel(encoder, projector, decoder, image_size, name="vlm")
