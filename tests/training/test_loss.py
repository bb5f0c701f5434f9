"""Tests for the training objective: mean over trained tokens, and the warmup + cosine schedule."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config
from vit_tf.config import ConfigError
from vit_tf.models.factory import build_model
from vit_tf.training.optim import compile_model, make_optimizer, make_schedule

VOCAB, TEXT = 30, 10


def _batch(seed=0):
    """Three rows with 1, 4 and 7 trained tokens (different answer lengths)."""
    rng = np.random.default_rng(seed)
    x = {
        "images": rng.uniform(0, 255, (3, 16, 16, 3)).astype("float32"),
        "token_ids": rng.integers(5, VOCAB, (3, TEXT)).astype("int32"),
        "padding_mask": np.ones((3, TEXT), bool),
    }
    y = rng.integers(0, VOCAB, (3, TEXT)).astype("int32")
    w = np.zeros((3, TEXT), "float32")
    w[0, 8:9] = 1
    w[1, 5:9] = 1
    w[2, 2:9] = 1
    return x, y, w


def _token_cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    picked = np.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
    return log_z - picked  # (batch, text_len)


@pytest.fixture(scope="module")
def compiled():
    keras.utils.set_random_seed(0)
    config = tiny_config()
    model = build_model(config, VOCAB, max_text_length=TEXT)
    return compile_model(model, config.train, total_steps=10)


def test_loss_is_the_mean_cross_entropy_over_trained_tokens(compiled):
    x, y, w = _batch()
    y_pred = compiled(x)
    loss = float(compiled.compute_loss(x, y, y_pred, sample_weight=w, training=False))
    ce = _token_cross_entropy(np.asarray(y_pred), y)
    expected = (ce * w).sum() / w.sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_loss_differs_from_per_example_mean_and_from_mean_over_all_positions(compiled):
    x, y, w = _batch()
    y_pred = compiled(x)
    loss = float(compiled.compute_loss(x, y, y_pred, sample_weight=w, training=False))
    ce = _token_cross_entropy(np.asarray(y_pred), y)
    per_example = ((ce * w).sum(1) / w.sum(1)).mean()
    over_all_positions = (ce * w).sum() / w.size
    assert abs(per_example - (ce * w).sum() / w.sum()) > 1e-3  # the batch tells them apart
    assert abs(loss - per_example) > 1e-3
    assert abs(loss - over_all_positions) > 1e-3


def test_evaluate_reports_the_mean_over_trained_tokens(compiled):
    x, y, w = _batch(seed=1)
    logs = compiled.evaluate(x, y, sample_weight=w, batch_size=3, verbose=0, return_dict=True)
    ce = _token_cross_entropy(np.asarray(compiled(x)), y)
    np.testing.assert_allclose(logs["loss"], (ce * w).sum() / w.sum(), rtol=1e-5)


def test_untrained_tokens_do_not_change_the_loss(compiled):
    x, y, w = _batch()
    y_pred = compiled(x)
    other = y.copy()
    other[w == 0] = (other[w == 0] + 1) % VOCAB
    a = float(compiled.compute_loss(x, y, y_pred, sample_weight=w, training=False))
    b = float(compiled.compute_loss(x, other, y_pred, sample_weight=w, training=False))
    assert a == b


def _schedule(**overrides):
    config = tiny_config(train__learning_rate=1e-3, train__min_learning_rate=1e-5,
                         train__warmup_steps=10, **overrides)
    return make_schedule(config.train, total_steps=110), config.train


def test_schedule_starts_at_zero():
    schedule, _ = _schedule()
    assert float(schedule(0)) == 0.0


def test_schedule_reaches_the_peak_at_the_end_of_warmup():
    schedule, t = _schedule()
    np.testing.assert_allclose(float(schedule(t.warmup_steps)), t.learning_rate, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(t.warmup_steps // 2)), t.learning_rate / 2, rtol=1e-5)


def test_schedule_decays_to_min_learning_rate_at_the_last_step():
    schedule, t = _schedule()
    np.testing.assert_allclose(float(schedule(110)), t.min_learning_rate, rtol=1e-4)
    assert float(schedule(60)) < t.learning_rate
    values = [float(schedule(s)) for s in range(10, 111, 10)]
    assert values == sorted(values, reverse=True)


def test_clipping_is_per_variable_by_default_and_global_when_asked():
    per_variable = make_optimizer(tiny_config().train, 10)
    assert (per_variable.clipnorm, per_variable.global_clipnorm) == (1.0, None)
    overall = make_optimizer(tiny_config(train__clipnorm=0, train__global_clipnorm=0.5).train, 10)
    assert (overall.clipnorm, overall.global_clipnorm) == (None, 0.5)
    with pytest.raises(ConfigError, match="train.clipnorm and train.global_clipnorm"):
        make_optimizer(tiny_config(train__global_clipnorm=0.5).train, 10)


def test_epoch_loss_weights_each_batch_by_its_trained_tokens_not_its_rows():
    """Keras's own loss tracker weights a batch by its rows: over batches of 1, 4 and 7 trained
    tokens the epoch loss would be the mean of the three batch means. Ours is the mean over
    all 12 trained tokens, in evaluate and in fit (a zero learning rate keeps the weights)."""
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config(), VOCAB, max_text_length=TEXT)
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
    x, y, w = _batch(seed=2)
    ce = _token_cross_entropy(np.asarray(model(x)), y)
    token_mean = (ce * w).sum() / w.sum()
    batch_means = ((ce * w).sum(1) / w.sum(1)).mean()
    assert abs(token_mean - batch_means) > 1e-2
    logs = model.evaluate(x, y, sample_weight=w, batch_size=1, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], token_mean, rtol=1e-5)
    history = model.fit(x, y, sample_weight=w, batch_size=1, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], token_mean, rtol=1e-5)
    assert [m.name for m in model.metrics].count("loss") == 1
