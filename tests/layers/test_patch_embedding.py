"""Tests for PatchEmbedding: shapes, serialization, argument checks, positions added."""

import numpy as np
import pytest

from tests.helpers import run_layer_test
from vit_tf.layers.patch_embedding import PatchEmbedding


def _images(batch=2, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("conv_stem", [False, True], ids=["linear_patchify", "conv_stem"])
def test_patch_embedding_round_trips_and_outputs_patches_by_hidden_dim(tmp_path, conv_stem):
    layer = PatchEmbedding(image_size=16, patch_size=8, hidden_dim=12, conv_stem=conv_stem)
    run_layer_test(layer, _images(), tmp_path, expected_output_shape=(2, 4, 12))
    assert layer.num_patches == 4
    assert len(layer.stem) == (2 if conv_stem else 0)


def test_patch_embedding_output_shape_for_small_patches(tmp_path):
    layer = PatchEmbedding(image_size=32, patch_size=4, hidden_dim=8, conv_stem=True)
    out = layer(_images(size=32))
    assert tuple(out.shape) == (2, 64, 8)
    assert layer.compute_output_shape((2, 32, 32, 3)) == (2, 64, 8)


def test_image_size_not_divisible_by_patch_size_raises_value_error():
    with pytest.raises(ValueError, match="not divisible"):
        PatchEmbedding(image_size=30, patch_size=8, hidden_dim=8)


def test_conv_stem_with_patch_size_not_divisible_by_4_raises_value_error():
    with pytest.raises(ValueError, match="divisible by 4"):
        PatchEmbedding(image_size=18, patch_size=6, hidden_dim=8, conv_stem=True)


def test_identical_patches_get_different_embeddings_from_positions():
    layer = PatchEmbedding(image_size=16, patch_size=8, hidden_dim=8)
    out = np.asarray(layer(np.full((1, 16, 16, 3), 100.0, "float32")))
    patches = {tuple(np.round(row, 6)) for row in out[0]}
    assert len(patches) == 4


def test_each_patch_token_sees_only_its_own_patch_without_conv_stem():
    layer = PatchEmbedding(image_size=16, patch_size=8, hidden_dim=8)
    images = _images(batch=1)
    changed = images.copy()
    changed[:, 8:, 8:, :] = 0.0  # bottom-right patch (token 3, row-major)
    a, b = np.asarray(layer(images)), np.asarray(layer(changed))
    np.testing.assert_array_equal(a[0, :3], b[0, :3])
    assert not np.allclose(a[0, 3], b[0, 3])


def test_stem_layers_and_sincos_positions_round_trip(tmp_path):
    layer = PatchEmbedding(image_size=16, patch_size=8, hidden_dim=12, conv_stem=True,
                           stem_layers=1, sincos_positions=True)
    run_layer_test(layer, _images(), tmp_path, expected_output_shape=(2, 4, 12))
    assert len(layer.stem) == 3
    assert not any("positions" in w.path for w in layer.weights)  # fixed, not learned


def test_sincos_positions_differ_per_patch_and_are_fixed():
    from vit_tf.layers.patch_embedding import sincos_2d

    table = sincos_2d(4, 16)
    assert table.shape == (16, 16)
    assert len({tuple(np.round(r, 6)) for r in table}) == 16
    np.testing.assert_array_equal(table, sincos_2d(4, 16))


def test_stem_layers_without_conv_stem_raises_value_error():
    with pytest.raises(ValueError, match="stem_layers and stem_norm need conv_stem"):
        PatchEmbedding(image_size=16, patch_size=8, hidden_dim=8, stem_layers=1)
    with pytest.raises(ValueError, match="stem_layers and stem_norm need conv_stem"):
        PatchEmbedding(image_size=16, patch_size=8, hidden_dim=8, stem_norm=True)


def test_stem_norm_round_trips_and_normalizes_with_batch_statistics_only_in_training(tmp_path):
    layer = PatchEmbedding(image_size=16, patch_size=8, hidden_dim=12, conv_stem=True,
                           stem_norm=True)
    images = _images()
    run_layer_test(layer, images, tmp_path, expected_output_shape=(2, 4, 12))
    assert sum("stem_norm" in w.path for w in layer.weights) == 8  # 2 norms x gamma/beta/mean/var
    trained = np.asarray(layer(images, training=True))
    inferred = np.asarray(layer(images, training=False))
    assert not np.allclose(trained, inferred, atol=1e-4)  # batch vs moving statistics
