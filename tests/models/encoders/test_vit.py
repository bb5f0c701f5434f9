"""Tests for the ViT image encoder: serialization, shapes, argument checks, global attention."""

import numpy as np
import pytest

from tests.helpers import run_layer_test
from vit_tf.models.encoders.vit import ViTEncoder
from vit_tf.registry import IMAGE_ENCODERS


def _encoder(**kwargs):
    args = dict(image_size=16, patch_size=8, hidden_dim=16, num_layers=1, num_heads=2,
                intermediate_dim=32)
    return ViTEncoder(**{**args, **kwargs})


def _images(batch=2, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("conv_stem", [False, True], ids=["linear_patchify", "conv_stem"])
def test_vit_round_trips_and_outputs_tokens_by_hidden_dim(tmp_path, conv_stem):
    encoder = _encoder(conv_stem=conv_stem, num_layers=2)
    run_layer_test(encoder, _images(), tmp_path, expected_output_shape=(2, 4, 16))
    assert encoder.compute_output_shape((None, 16, 16, 3)) == (None, 4, 16)


def test_vit_output_shape_for_32px_images_and_4px_patches():
    encoder = _encoder(image_size=32, patch_size=4)
    assert tuple(encoder(_images(size=32)).shape) == (2, 64, 16)
    assert encoder.num_tokens == 64


def test_vit_image_size_not_divisible_by_patch_size_raises_value_error():
    with pytest.raises(ValueError, match="not divisible"):
        _encoder(image_size=20, patch_size=8)


def test_vit_conv_stem_with_patch_size_not_divisible_by_4_raises_value_error():
    with pytest.raises(ValueError, match="divisible by 4"):
        _encoder(image_size=12, patch_size=6, conv_stem=True)


def test_vit_first_token_attends_to_the_last_patch():
    encoder = _encoder()
    images = _images(batch=1)
    changed = images.copy()
    changed[:, 8:, 8:, :] = 255.0 - changed[:, 8:, 8:, :]  # only the last patch
    a, b = np.asarray(encoder(images)), np.asarray(encoder(changed))
    assert not np.allclose(a[0, 0], b[0, 0], atol=1e-6)


def test_vit_is_registered_as_vit():
    assert IMAGE_ENCODERS.get("vit") is ViTEncoder
