"""Build a ``VisionLanguageModel`` from an ``ExperimentConfig`` through the registries.

Each registered part builds itself from its config section with a classmethod that names the
fields it reads (no signature introspection here):

    IMAGE_ENCODERS[name].from_section(config.model.encoder, image_size=...)
        (or a trained encoder's preset folder, ``model.encoder.preset``: models/encoders/preset.py)
    DECODERS[name].from_section(config.model.decoder, vocabulary_size=..., max_sequence_length=...,
                                make_fusion=..., text_embedding=..., special_token_ids=...)
    FUSIONS[name].from_section(config.model.fusion, hidden_dim=..., num_layers=...)
    PROJECTORS[name].from_section(config.model.projector, hidden_dim=...)

The decoder comes before the fusion and the projector because a pretrained LM decides the width
(``hidden_dim``) and depth they are built for; it calls ``make_fusion(hidden_dim, num_layers)``.
"""

import vit_tf.layers.attention_pooling  # noqa: F401  (registers fusions)
import vit_tf.layers.cross_attention  # noqa: F401
import vit_tf.layers.fusion  # noqa: F401
import vit_tf.layers.projector  # noqa: F401  (registers projectors)
import vit_tf.layers.relation_network  # noqa: F401
import vit_tf.layers.resampler  # noqa: F401
import vit_tf.models.decoders  # noqa: F401  (registers decoders)
import vit_tf.models.encoders  # noqa: F401  (registers image encoders)
from vit_tf.config import ConfigError
from vit_tf.models.compat import check_model_config
from vit_tf.models.encoders.preset import build_image_encoder
from vit_tf.models.vlm import VisionLanguageModel
from vit_tf.registry import DECODERS, FUSIONS, PROJECTORS

# Fusions whose attention heads split the decoder width.
_HEADED_FUSIONS = ("cross_attention", "resampler")


def build_model(config, vocabulary_size, max_text_length=None, special_token_ids=None):
    """Compose encoder, projector, fusion and decoder named in ``config.model``.

    ``max_text_length`` defaults to ``config.data.max_text_length``; the decoder's position table
    covers the fusion's prefix (image tokens or resampled queries) plus that many text tokens
    (plus 8).
    ``special_token_ids`` (``tokenizer.special_ids``) defaults to the reserved ids our trained
    tokenizers use (the order of ``SPECIAL_TOKENS``).
    Combinations that make no sense raise ``ConfigError`` before anything is built; an unknown
    part name raises the registry's ``KeyError``.
    """
    check_model_config(config)
    m = config.model
    image_size = config.data.image_size
    max_text_length = max_text_length or config.data.max_text_length
    encoder = build_image_encoder(m.encoder, image_size)   # a vit_tf preset folder, or new
    decoder_cls = DECODERS.get(m.decoder.name)
    fusion_cls = FUSIONS.get(m.fusion.name)
    projector_cls = PROJECTORS.get(m.projector.name)

    def make_fusion(hidden_dim, num_layers):
        if m.fusion.name in _HEADED_FUSIONS and hidden_dim % m.fusion.num_heads:
            raise ConfigError(f"model.fusion.num_heads={m.fusion.num_heads} must divide the "
                              f"decoder's hidden_dim={hidden_dim} for the {m.fusion.name} fusion")
        return fusion_cls.from_section(m.fusion, hidden_dim=hidden_dim, num_layers=num_layers)

    # Construction order fixes the initializers' seeds (keras draws one per layer as it is
    # made): encoder, projector, fusion, decoder, as the experiments' results were reached;
    # a pretrained LM sets the width first, so there the projector comes last.
    width = decoder_cls.width_from_section(m.decoder)
    projector = (None if width is None
                 else projector_cls.from_section(m.projector, hidden_dim=width))
    # The position table covers the fusion's prefix (the image tokens, or a resampler's
    # queries, which may be more) + the text + 8; never less than image tokens + text, as
    # every model was sized before the resampler's prefix was counted.
    prefix = max(encoder.num_tokens, fusion_cls.prefix_length(m.fusion, encoder.num_tokens))
    decoder = decoder_cls.from_section(
        m.decoder, vocabulary_size=vocabulary_size,
        max_sequence_length=prefix + max_text_length + 8,
        make_fusion=make_fusion, text_embedding=m.text_embedding,
        special_token_ids=special_token_ids,
    )
    if projector is None:
        projector = projector_cls.from_section(m.projector, hidden_dim=decoder.hidden_dim)
    return VisionLanguageModel(encoder, projector, decoder, image_size, name="vlm")


def build_task(config, preprocessor):
    """``build_model`` sized for ``preprocessor`` (vocabulary, chat markers, text context),
    with the preprocessor attached: a task that takes raw inputs."""
    if preprocessor.image_size != config.data.image_size:
        raise ConfigError(f"data.image_size={config.data.image_size} but the preprocessor makes "
                          f"{preprocessor.image_size}px images")
    model = build_model(config, preprocessor.vocabulary_size,
                        max_text_length=preprocessor.max_text_length,
                        special_token_ids=preprocessor.special_ids())
    model.preprocessor = preprocessor
    return model
