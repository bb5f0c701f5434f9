"""Shared fixtures for the training tests: a tiny model and one fixed training batch."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config
from vit_tf.models.factory import build_model

VOCAB = 40


@pytest.fixture
def batch():
    """(inputs, labels, sample_weight) of 4 examples, 16x16 images, 12 text tokens."""
    rng = np.random.default_rng(0)
    inputs = {
        "images": rng.uniform(0, 255, (4, 16, 16, 3)).astype("float32"),
        "token_ids": rng.integers(1, VOCAB, (4, 12)).astype("int32"),
        "padding_mask": np.ones((4, 12), bool),
    }
    labels = rng.integers(1, VOCAB, (4, 12)).astype("int32")
    weights = np.ones((4, 12), "float32")
    return inputs, labels, weights


def make_model(seed=0, **overrides):
    """A tiny VLM (seeded, so two calls give the same weights) and its config."""
    config = tiny_config(train__warmup_steps=0, **overrides)
    keras.utils.set_random_seed(seed)
    return build_model(config, VOCAB), config


def snapshot(layer):
    return {v.path: np.array(v.numpy()) for v in layer.weights}


def changed(before, layer):
    """Paths of ``layer``'s variables that differ from ``before``."""
    return {v.path for v in layer.weights
            if v.path in before and not np.array_equal(before[v.path], v.numpy())}
