"""Tests for the name -> class registries: unknown names and duplicates fail loudly."""

import pytest

import vit_tf.models.factory  # noqa: F401  (registers the built-in parts)
from vit_tf.registry import DECODERS, IMAGE_ENCODERS, PROJECTORS, Registry


def test_unknown_name_raises_key_error_listing_known_names():
    registry = Registry("widget")
    registry.register("alpha")(object)
    registry.register("beta")(dict)
    with pytest.raises(KeyError) as info:
        registry.get("gamma")
    message = str(info.value)
    assert "widget" in message and "'gamma'" in message
    assert "alpha" in message and "beta" in message


def test_registered_name_returns_its_class():
    registry = Registry("widget")

    @registry.register("alpha")
    class Alpha:
        pass

    assert registry.get("alpha") is Alpha
    assert "alpha" in registry and "beta" not in registry
    assert registry.names() == ["alpha"]


def test_duplicate_registration_raises_and_keeps_the_first_entry():
    registry = Registry("widget")
    registry.register("alpha")(object)
    with pytest.raises(ValueError, match="alpha"):
        registry.register("alpha")(dict)
    assert registry.get("alpha") is object


def test_builtin_registries_know_the_default_parts():
    assert "vit" in IMAGE_ENCODERS
    assert {"linear", "mlp"} <= set(PROJECTORS.names())
    assert "transformer" in DECODERS
