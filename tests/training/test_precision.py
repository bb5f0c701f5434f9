"""Mixed precision: bfloat16 compute with float32 logits and loss; float16 with loss scaling."""

import keras
import numpy as np
import pytest

from tests.training.conftest import make_model
from vit_tf.config import ConfigError
from vit_tf.training.optim import compile_model
from vit_tf.training.precision import precision_policy


def _build(precision):
    with precision_policy(precision):
        model, config = make_model(train__precision=precision)
    assert keras.config.dtype_policy().name == "float32"  # nothing leaks out
    compile_model(model, config.train, 10)
    return model


def test_mixed_bfloat16_trains_a_step_with_float32_logits_and_weights(batch):
    model = _build("mixed_bfloat16")
    assert model.decoder.blocks[0].compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.trainable_weights)
    assert model(batch[0]).dtype == "float32"
    before = model.projector.weights[0].numpy().copy()
    loss = model.train_on_batch(*batch, return_dict=True)["loss"]
    assert np.isfinite(loss)
    assert not np.array_equal(before, model.projector.weights[0].numpy())


def test_mixed_float16_uses_a_loss_scale_optimizer_and_trains_a_step(batch):
    model = _build("mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model(batch[0]).dtype == "float32"
    assert np.isfinite(model.train_on_batch(*batch, return_dict=True)["loss"])


def test_policy_is_restored_after_an_error_and_bad_names_are_refused():
    with pytest.raises(RuntimeError):
        with precision_policy("mixed_bfloat16"):
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ConfigError, match="train.precision='float8'"):
        with precision_policy("float8"):
            pass


def test_mixed_bfloat16_computes_in_bfloat16_with_a_float32_head(batch):
    """Not just dtypes: the blocks really compute in bfloat16 (the logits move by ~1e-3 against
    the same weights in float32, no more than bfloat16 rounding explains), and the tied output
    head is a float32 product of the last hidden states with the table."""
    from tests.layers.test_text_embedding import _captured_reverse

    mixed = _build("mixed_bfloat16")
    full = _build("float32")
    full.set_weights(mixed.get_weights())
    seen = _captured_reverse(mixed.decoder.token_embedding)
    logits = np.asarray(mixed(batch[0]))
    reference = np.asarray(full(batch[0]))
    difference = np.abs(logits - reference).max()
    assert 1e-5 < difference < 0.05 * np.abs(reference).max()
    table = np.asarray(mixed.decoder.token_embedding.embeddings, np.float32)
    np.testing.assert_allclose(logits, seen[0].astype(np.float64) @ table.T, rtol=1e-4, atol=1e-5)
