"""Build a ``VisionLanguageModel`` from an ``ExperimentConfig`` through the registries."""

import dataclasses

import vit_tf.layers.projector  # noqa: F401  (registers projectors)
import vit_tf.models.transformer_decoder  # noqa: F401  (registers decoders)
import vit_tf.models.vit  # noqa: F401  (registers image encoders)
from vit_tf.config import ConfigError
from vit_tf.data.template import ASSISTANT, SPECIAL_TOKENS
from vit_tf.models.transformer_decoder import ATTENTION_MODES
from vit_tf.models.vlm import VisionLanguageModel
from vit_tf.registry import DECODERS, IMAGE_ENCODERS, PROJECTORS


def _options(section):
    return {k: v for k, v in dataclasses.asdict(section).items() if k != "name"}


def build_model(config, vocabulary_size, max_text_length=None, special_token_ids=None):
    """Compose encoder, projector and decoder named in ``config.model``.

    ``max_text_length`` defaults to ``config.data.max_text_length``; the decoder's position table
    covers the image tokens plus that many text tokens (plus one for the label shift).
    ``special_token_ids`` (``tokenizer.special_ids``) defaults to the reserved ids our trained
    tokenizers use (the order of ``SPECIAL_TOKENS``).
    """
    m = config.model
    image_size = config.data.image_size
    max_text_length = max_text_length or config.data.max_text_length
    encoder = IMAGE_ENCODERS.get(m.encoder.name)(
        image_size=image_size, name="image_encoder", **_options(m.encoder)
    )
    num_image_tokens = encoder.compute_output_shape((None, image_size, image_size, 3))[1]
    projector = PROJECTORS.get(m.projector.name)(
        hidden_dim=m.decoder.hidden_dim, name="projector", **_options(m.projector)
    )
    decoder_options = _options(m.decoder)
    if decoder_options.get("attention") not in ATTENTION_MODES:
        raise ConfigError(
            f"model.decoder.attention={m.decoder.attention!r}: expected one of {ATTENTION_MODES}"
        )
    if decoder_options["attention"] == "prefix":
        ids = special_token_ids or {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        decoder_options["prefix_end_token_id"] = int(ids[ASSISTANT])
    decoder = DECODERS.get(m.decoder.name)(
        vocabulary_size=vocabulary_size,
        max_sequence_length=num_image_tokens + max_text_length + 8,
        name="decoder",
        **decoder_options,
    )
    return VisionLanguageModel(encoder, projector, decoder, image_size, name="vlm")
