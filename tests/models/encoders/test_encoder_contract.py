"""The ImageEncoder contract and the parts' ``from_section``: every registered encoder, fusion
and projector builds itself from its config section (the factory introspects nothing)."""

import numpy as np
import pytest
from keras import ops

import vit_tf.models.factory  # noqa: F401  (registers every part)
from vit_tf.config import EncoderConfig, FusionConfig, ProjectorConfig
from vit_tf.layers.fusion import Fusion
from vit_tf.models.encoders import ImageEncoder
from vit_tf.registry import FUSIONS, IMAGE_ENCODERS, PROJECTORS


def test_every_registered_encoder_is_an_image_encoder_with_its_own_from_section():
    assert IMAGE_ENCODERS.names() == ["clip", "efficientnet_lite0", "resnet50", "saved_model",
                                      "siglip", "vgg16", "vit"]
    for name in IMAGE_ENCODERS.names():
        cls = IMAGE_ENCODERS.get(name)
        assert issubclass(cls, ImageEncoder), name
        assert cls.from_section.__func__ is not ImageEncoder.from_section.__func__, name


def test_vit_from_section_reads_its_fields_and_states_tokens_and_patch_size():
    section = EncoderConfig(patch_size=4, hidden_dim=12, num_layers=1, num_heads=2,
                            intermediate_dim=24, conv_stem=False)
    encoder = IMAGE_ENCODERS.get("vit").from_section(section, image_size=16)
    assert (encoder.image_size, encoder.patch_size, encoder.num_tokens) == (16, 4, 16)
    assert encoder.compute_output_shape((2, 16, 16, 3)) == (2, 16, 12)
    assert tuple(encoder(ops.zeros((2, 16, 16, 3))).shape) == (2, 16, 12)
    assert encoder.name == "image_encoder" and not encoder.conv_stem


def test_cnn_encoder_states_its_tokens_and_has_no_patch_size():
    encoder = IMAGE_ENCODERS.get("vgg16").from_section(EncoderConfig(name="vgg16"), image_size=64)
    assert (encoder.num_tokens, encoder.hidden_dim, encoder.patch_size) == (4, 512, None)


class _NoTokens(ImageEncoder):
    def call(self, images, training=None):
        return images


def test_encoder_that_does_not_state_its_tokens_fails_loudly():
    encoder = _NoTokens(image_size=8)
    with pytest.raises(NotImplementedError, match="_NoTokens must set num_tokens"):
        encoder.compute_output_shape((1, 8, 8, 3))
    with pytest.raises(NotImplementedError, match="_NoTokens does not implement"):
        _NoTokens.from_section(EncoderConfig(), image_size=8)


@pytest.mark.parametrize("name, prefix", [("concat", 5), ("cross_attention", 0),
                                          ("attention_pooling", 0), ("resampler", 3)])
def test_every_fusion_builds_from_its_section(name, prefix):
    section = FusionConfig(name=name, num_heads=2, gated=False, num_queries=3, resampler_layers=2)
    cls = FUSIONS.get(name)
    assert cls.from_section.__func__ is not Fusion.from_section.__func__
    fusion = cls.from_section(section, hidden_dim=8, num_layers=2)
    assert (fusion.hidden_dim, fusion.num_layers, fusion.name) == (8, 2, "fusion")
    assert fusion.num_prefix_tokens(5) == prefix
    for field in ("num_heads", "gated", "num_queries", "resampler_layers"):
        if field in fusion.get_config():
            assert fusion.get_config()[field] == getattr(section, field), field


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_every_projector_builds_from_its_section(name):
    projector = PROJECTORS.get(name).from_section(ProjectorConfig(name=name), hidden_dim=6)
    out = projector(np.zeros((2, 4, 10), "float32"))
    assert tuple(out.shape) == (2, 4, 6) and projector.name == "projector"
