"""TensorBoard telemetry: the gradient norm of the train step, step counts, every logged tag."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config, tiny_task, tiny_tokenizer
from vit_tf.config import ConfigError
from vit_tf.models.factory import build_model
from vit_tf.models.vlm import TRAIN_ONLY_METRICS
from vit_tf.training.grad_norm import GradNormTelemetry, track_grad_norm
from vit_tf.training.optim import PartAdamW, compile_model, make_loss
from vit_tf.training.telemetry import flat_config, parse_profile_steps


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(10)[None, :] < np.array([10, 7, 4])[:, None]           # (3, 10)
    x = {"images": rng.uniform(0, 255, (3, 16, 16, 3)).astype("float32"),
         "token_ids": (rng.integers(1, 50, (3, 10)) * mask).astype("int32"),
         "padding_mask": mask}
    return x, rng.integers(1, 50, (3, 10)).astype("int32"), mask.astype("float32")


def _expected_grad_norm(model, x, y, w):
    with tf.GradientTape() as tape:
        loss = make_loss()(y, model(x, training=True), sample_weight=w)
    grads = tape.gradient(loss, model.trainable_weights)
    # Dense: an embedding's IndexedSlices gradient repeats a row for every use of a token or
    # position, and those repeats must be summed before squaring.
    assert any(isinstance(g, tf.IndexedSlices) for g in grads)
    return float(tf.linalg.global_norm([tf.convert_to_tensor(g) for g in grads]))


@pytest.mark.parametrize("loss_scaled", [False, True])
def test_train_step_logs_the_global_gradient_norm_and_token_counts(loss_scaled):
    model, _ = tiny_task(seed=0)
    x, y, w = _batch()
    expected = _expected_grad_norm(model, x, y, w)
    optimizer = PartAdamW(learning_rate=0.0)   # weights stay put: same gradient
    if loss_scaled:  # mixed precision's optimizer: gradients arrive scaled by 2**15
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=make_loss(), jit_compile=False,
                  metrics=[track_grad_norm(optimizer)])
    logs = model.fit(x, y, sample_weight=w, batch_size=3, epochs=1, verbose=0).history
    assert math.isfinite(logs["grad_norm"][0]) and logs["grad_norm"][0] > 0
    np.testing.assert_allclose(logs["grad_norm"][0], expected, rtol=1e-4)
    assert (logs["examples"][0], logs["text_tokens"][0], logs["padded_tokens"][0]) == (3, 21, 30)


class RecordingSGD(GradNormTelemetry, keras.optimizers.SGD):
    pass


def test_grad_norm_is_taken_before_clipping_and_per_step():
    """Two steps of SGD with per-variable clipping: the logged norm is the epoch mean of the
    unclipped norms (clipping to 1e-3 would make it tiny), one record per step."""
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config(), tiny_tokenizer().vocabulary_size())
    x, y, w = _batch()
    expected = _expected_grad_norm(model, x, y, w)
    optimizer = RecordingSGD(learning_rate=0.0, clipnorm=1e-3)
    metric = track_grad_norm(optimizer)
    model.compile(optimizer=optimizer, loss=make_loss(), jit_compile=False, metrics=[metric])
    model.fit(x, y, sample_weight=w, batch_size=3, epochs=1, steps_per_epoch=1, verbose=0)
    np.testing.assert_allclose(float(metric.result()), expected, rtol=1e-4)
    assert float(metric.count) == 1.0


def test_track_grad_norm_refuses_an_optimizer_that_cannot_record_it():
    with pytest.raises(TypeError, match="GradNormTelemetry"):
        track_grad_norm(keras.optimizers.SGD())


def test_compile_model_evaluates_without_training_only_metrics():
    model = build_model(tiny_config(), tiny_tokenizer().vocabulary_size())
    compile_model(model, tiny_config().train, total_steps=2)
    x, y, w = _batch()
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "token_accuracy"}


def test_evaluation_logs_carry_no_training_only_metrics():
    model, _ = tiny_task()
    optimizer = PartAdamW(learning_rate=0.0)      # as compile_model: grad_norm is recorded
    model.compile(optimizer=optimizer, loss=make_loss(), jit_compile=False,  # + token_accuracy
                  metrics=[track_grad_norm(optimizer)])
    x, y, w = _batch()
    train_logs = model.fit(x, y, sample_weight=w, batch_size=3, epochs=1, verbose=0).history
    assert set(TRAIN_ONLY_METRICS) <= set(train_logs)   # the train step does log them
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "token_accuracy"}
    assert not set(TRAIN_ONLY_METRICS) & set(logs)


def test_profile_steps_parse_to_keras_profile_batch_and_reject_bad_values():
    assert parse_profile_steps("") == 0
    assert parse_profile_steps("7") == 7
    assert parse_profile_steps(" 10,20 ") == (10, 20)
    for bad in ("10-20", "0", "5,2", "1,2,3", "a"):
        with pytest.raises(ConfigError, match="train.profile_steps"):
            parse_profile_steps(bad)


def test_flat_config_has_dotted_keys_with_plain_values():
    flat = flat_config(tiny_config())
    assert flat["model.encoder.hidden_dim"] == 16 and flat["train.jit_compile"] is False
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


def _events(folder):
    """{tag: [(step, value or None)]} of the event files directly in ``folder``."""
    tags = {}
    for name in os.listdir(folder):
        if "tfevents" not in name:
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for v in event.summary.value:
                value = None
                if v.metadata.plugin_data.plugin_name == "scalars" or v.HasField("simple_value"):
                    value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                tags.setdefault(v.tag, []).append((event.step, value))
    return tags


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from vit_tf.data.shapes import write_shapes_world
    from vit_tf.training.train import train

    tmp = tmp_path_factory.mktemp("telemetry")
    write_shapes_world(str(tmp / "shapes"), 8, 1, seed=0)
    config = tiny_config(data__image_size=32, data__batch_size=8, data__max_text_length=96,
                         data__vocabulary_size=200, data__validation_fraction=0.25,
                         train__epochs=2, train__steps_per_epoch=2, train__num_samples_to_log=1,
                         train__relevance_maps=1, train__profile_steps="2,3")
    train(config, str(tmp / "shapes" / "train.json"), str(tmp / "shapes"), str(tmp / "run"),
          log=lambda *_: None)
    return tmp / "run" / "logs"


def test_tensorboard_logs_hold_every_telemetry_tag(run):
    train_tags = _events(run / "train")
    for tag in ("epoch_loss", "epoch_token_accuracy", "epoch_grad_norm", "epoch_learning_rate",
                "epoch_examples_per_second", "epoch_tokens_per_second", "epoch_padding_fraction"):
        assert len(train_tags[tag]) == 2, tag                       # one per epoch
    grad_norms = [v for _, v in train_tags["epoch_grad_norm"]]
    assert all(math.isfinite(g) and g > 0 for g in grad_norms)
    assert all(v > 0 for _, v in train_tags["epoch_examples_per_second"])
    assert all(0 <= v < 1 for _, v in train_tags["epoch_padding_fraction"])
    val_tags = _events(run / "validation")
    assert "epoch_loss" in val_tags and "epoch_answer_match" in val_tags
    assert any(t.startswith("epoch_answer_match/") for t in val_tags)  # per category
    assert not any("grad_norm" in t for t in val_tags)
    assert "samples" in _events(run / "samples")
    assert any(t.startswith("relevance/") for t in _events(run / "relevance"))
    root = _events(run)
    assert "_hparams_/session_start_info" in root and "_hparams_/experiment" in root
    assert root["final/loss"][0][1] > 0 and "final/grad_norm" in root
    profiles = [f for _, _, fs in os.walk(run / "train" / "plugins" / "profile") for f in fs]
    assert any(f.endswith(".xplane.pb") for f in profiles)
