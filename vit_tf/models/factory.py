"""Build a ``VisionLanguageModel`` from an ``ExperimentConfig`` through the registries."""

import dataclasses

import vit_tf.layers.projector  # noqa: F401  (registers projectors)
import vit_tf.models.transformer_decoder  # noqa: F401  (registers decoders)
import vit_tf.models.vit  # noqa: F401  (registers image encoders)
from vit_tf.models.vlm import VisionLanguageModel
from vit_tf.registry import DECODERS, IMAGE_ENCODERS, PROJECTORS


def _options(section):
    return {k: v for k, v in dataclasses.asdict(section).items() if k != "name"}


def build_model(config, vocabulary_size, max_text_length=None):
    """Compose encoder, projector and decoder named in ``config.model``.

    ``max_text_length`` defaults to ``config.data.max_text_length``; the decoder's position table
    covers the image tokens plus that many text tokens (plus one for the label shift).
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
    decoder = DECODERS.get(m.decoder.name)(
        vocabulary_size=vocabulary_size,
        max_sequence_length=num_image_tokens + max_text_length + 8,
        name="decoder",
        **_options(m.decoder),
    )
    return VisionLanguageModel(encoder, projector, decoder, image_size, name="vlm")
