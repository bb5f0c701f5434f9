"""Tests for the projectors: serialization, output width, registry names."""

import numpy as np
import pytest

from tests.helpers import run_layer_test
from vit_tf.layers.projector import LinearProjector, MLPProjector
from vit_tf.registry import PROJECTORS


def _tokens():
    return np.random.default_rng(0).normal(size=(2, 4, 12)).astype("float32")


@pytest.mark.parametrize("cls", [LinearProjector, MLPProjector], ids=["linear", "mlp"])
def test_projector_round_trips_and_maps_tokens_to_hidden_dim(tmp_path, cls):
    layer = cls(hidden_dim=20)
    run_layer_test(layer, _tokens(), tmp_path, expected_output_shape=(2, 4, 20))
    assert layer.compute_output_shape((2, 4, 12)) == (2, 4, 20)


def test_linear_projector_is_affine_and_mlp_projector_is_not():
    x = _tokens()
    for cls, affine in [(LinearProjector, True), (MLPProjector, False)]:
        layer = cls(hidden_dim=8)
        f = lambda v: np.asarray(layer(v))  # noqa: E731
        mid = f((x + 3 * x) / 2)
        assert np.allclose(mid, (f(x) + f(3 * x)) / 2, atol=1e-5) == affine


def test_mlp_projector_has_two_dense_layers_and_linear_one():
    linear, mlp = LinearProjector(hidden_dim=8), MLPProjector(hidden_dim=8)
    linear(_tokens()), mlp(_tokens())
    assert len(linear.weights) == 2  # kernel, bias
    assert len(mlp.weights) == 4


def test_projector_registry_names_map_to_the_classes():
    assert PROJECTORS.get("linear") is LinearProjector
    assert PROJECTORS.get("mlp") is MLPProjector
