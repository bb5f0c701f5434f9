"""train.steps_per_execution: several steps per compiled call, the same training as one step per
call, never past an epoch's end (also when resuming mid-epoch), TensorBoard at true steps."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from vit_tf.config import ConfigError
from vit_tf.training.checkpointing import resumable_fit
from vit_tf.training.optim import epoch_steps, set_steps_per_execution, steps_per_call
from vit_tf.training.telemetry import TensorBoard

STEPS, EPOCHS = 6, 2


def test_steps_per_call_divides_the_epoch_and_the_checkpoint_interval():
    assert steps_per_call(16, 640) == 16
    assert steps_per_call(16, 100) == 10          # 16 does not divide 100
    assert steps_per_call(16, 7) == 7              # prime: one call per epoch
    assert steps_per_call(16, 13, every_steps=0) == 13
    assert steps_per_call(16, 640, every_steps=50) == 10
    assert steps_per_call(8, 640, profile=True) == 1
    assert steps_per_call(1, 640) == 1
    with pytest.raises(ConfigError, match="steps_per_execution must be >= 1"):
        steps_per_call(0, 640)


def test_a_pass_over_the_data_is_rounded_down_to_whole_calls():
    assert epoch_steps(0, 12376, 16, 16) == 768          # 773 batches: 48 calls of 16
    assert epoch_steps(0, 12376, 16, 1) == 773
    assert epoch_steps(0, 100, 16, 16) == 6              # fewer batches than one call
    assert epoch_steps(0, 3, 16, 16) == 1
    assert epoch_steps(50, 12376, 16, 16) == 50          # set explicitly: kept (k divides it)
    assert steps_per_call(16, epoch_steps(0, 12376, 16, 16)) == 16


def _dataset():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.shuffle(48, seed=0, reshuffle_each_iteration=True).repeat().batch(4)


def _model(per_call):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="gelu"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.AdamW(0.02), "mse", steps_per_execution=per_call)
    return model


class Calls(keras.callbacks.Callback):
    """Records the optimizer step after each call and, optionally, dies at a step."""

    def __init__(self, die_at=None):
        super().__init__()
        self.steps, self.die_at = [], die_at

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(int(self.model.optimizer.iterations.numpy()))
        if self.die_at is not None and self.steps[-1] >= self.die_at:
            raise KeyboardInterrupt


def _fit(model, state_dir, calls, every_steps=0):
    return resumable_fit(model, _dataset(), str(state_dir), epochs=EPOCHS, steps_per_epoch=STEPS,
                         callbacks=[calls], every_steps=every_steps, make_train_ds=_dataset,
                         verbose=0, log=lambda *a: None)


def test_several_steps_per_call_train_exactly_like_one(tmp_path):
    one, three = _model(1), _model(3)
    calls_one, calls_three = Calls(), Calls()
    history_one = _fit(one, tmp_path / "one", calls_one)
    history_three = _fit(three, tmp_path / "three", calls_three)
    assert calls_one.steps == list(range(1, STEPS * EPOCHS + 1))
    assert calls_three.steps == [3, 6, 9, 12]           # 2 calls per epoch, none past its end
    for a, b in zip(one.get_weights(), three.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history_one["loss"], history_three["loss"], rtol=1e-5)


def test_a_mid_epoch_resume_that_is_not_a_whole_number_of_calls_stops_at_the_epoch_end(tmp_path):
    """A checkpoint at step 8 (every 2 steps, 1 step per call), resumed at 3 steps per call: the
    4 steps left in epoch 2 are not a whole number of calls, so they run one per call."""
    full = _model(1)
    _fit(full, tmp_path / "full", Calls())
    with pytest.raises(KeyboardInterrupt):
        _fit(_model(1), tmp_path / "state", Calls(die_at=9), every_steps=2)
    resumed, calls = _model(3), Calls()
    _fit(resumed, tmp_path / "state", calls)
    assert calls.steps == [9, 10, 11, 12]
    assert int(resumed.optimizer.iterations.numpy()) == STEPS * EPOCHS
    assert resumed.steps_per_execution == 3                  # restored after that epoch
    for a, b in zip(full.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_set_steps_per_execution_rebuilds_the_train_function():
    model = _model(2)
    model.fit(_dataset(), epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    assert model.train_function is not None
    set_steps_per_execution(model, 2)
    assert model.train_function is not None                  # unchanged: kept
    set_steps_per_execution(model, 1)
    assert model.steps_per_execution == 1 and model.train_function is None


def test_tensorboard_batch_summaries_carry_the_true_global_step(tmp_path):
    model = _model(3)
    model.fit(_dataset(), epochs=EPOCHS, steps_per_epoch=STEPS, verbose=0, shuffle=False,
              callbacks=[TensorBoard(str(tmp_path), update_freq=3)])
    steps = set()
    folder = tmp_path / "train"
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
            steps.update(event.step for v in event.summary.value if v.tag == "batch_loss")
    assert steps == {3, 6, 9, 12}     # Keras alone would count calls: 1, 2, 3, 4


def _batch_loss_steps(folder):
    """The ``batch_loss`` summaries' steps in the order they were written (by wall time: event
    file names carry an unpadded per-process counter, so their sorted order is not the order
    of writing once it reaches 10)."""
    events = []
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
            events += [(event.wall_time, event.step) for v in event.summary.value
                       if v.tag == "batch_loss"]
    return [step for _, step in sorted(events)]


def test_tensorboard_batch_steps_continue_after_a_resume(tmp_path):
    """Keras' TensorBoard restarts its counter in every fit: a resumed run (and the second fit
    of a mid-epoch resume) would write its batch summaries over steps 1, 2, ... again."""
    state = tmp_path / "state"
    with pytest.raises(KeyboardInterrupt):
        resumable_fit(_model(3), _dataset(), str(state), epochs=EPOCHS, steps_per_epoch=STEPS,
                      every_steps=3, make_train_ds=_dataset, verbose=0, log=lambda *a: None,
                      callbacks=[TensorBoard(str(tmp_path / "logs"), update_freq=3),
                                 Calls(die_at=6)])
    resumable_fit(_model(3), _dataset(), str(state), epochs=EPOCHS, steps_per_epoch=STEPS,
                  every_steps=3, make_train_ds=_dataset, verbose=0, log=lambda *a: None,
                  callbacks=[TensorBoard(str(tmp_path / "logs"), update_freq=3)])
    assert _batch_loss_steps(tmp_path / "logs" / "train") == [3, 6, 9, 12]


def test_nan_guard_under_several_steps_per_call_names_the_exact_step_and_applies_no_update():
    """With 4 steps per compiled call the callbacks see only every 4th step: the optimizer's
    guard still skips the NaN step (step 6) and every step after it in the call, and NanGuard
    names step 6, not the call's last (8). The weights are exactly those after step 5."""
    from vit_tf.training.nan_guard import NanGuard, NonFiniteLossError
    from vit_tf.training.optim import PartAdamW

    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    y = np.ones((32, 1), "float32")
    x[11] = np.nan                                     # batch 6 (batches of 2) -> step 6

    def model(per_call):
        keras.utils.set_random_seed(3)
        m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
        m.compile(PartAdamW(learning_rate=0.1), "mse", steps_per_execution=per_call)
        return m

    guarded = model(4)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2).repeat()
    with pytest.raises(NonFiniteLossError,
                       match=r"became nan at step 6 \(epoch 2, batch 2\); no update was applied"):
        guarded.fit(data, epochs=3, steps_per_epoch=4, verbose=0,
                    callbacks=[NanGuard(steps_per_epoch=4)])
    five = model(1)
    five.fit(data, epochs=1, steps_per_epoch=5, verbose=0)
    for a, b in zip(guarded.get_weights(), five.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(v.numpy()).all() for v in guarded.optimizer.variables)
