"""resumable_fit: exact resume (weights, optimizer, schedule, data position, epoch metrics) and
atomic checkpoints (a writer killed half-way leaves the previous checkpoint usable)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from vit_tf.training.checkpointing import (AtomicModelCheckpoint, load_state, resumable_fit,
                                           save_state)

STEPS, EPOCHS = 5, 3


def _dataset(seed=0):
    """Repeated, seeded-shuffled toy regression data: every step sees different examples."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.shuffle(40, seed=seed, reshuffle_each_iteration=True).repeat().batch(4)


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.CosineDecay(0.0, STEPS * EPOCHS, warmup_target=0.05,
                                                      warmup_steps=3)
    model.compile(keras.optimizers.AdamW(schedule), "mse", metrics=["mae"])
    return model


class StepLosses(keras.callbacks.Callback):
    """Running epoch-mean loss after every global step; optionally dies at step ``die_at``."""

    def __init__(self, losses, die_at=None):
        super().__init__()
        self.losses, self.die_at = losses, die_at

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.losses[step] = float(logs["loss"])
        if step == self.die_at:
            raise KeyboardInterrupt(f"killed at step {step}")


def _fit(state_dir, losses, die_at=None, every_steps=2):
    return resumable_fit(_model(), _dataset(), str(state_dir), epochs=EPOCHS,
                         steps_per_epoch=STEPS, callbacks=[StepLosses(losses, die_at)],
                         every_steps=every_steps, make_train_ds=_dataset, verbose=0,
                         log=lambda *a: None)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    losses = {}
    history = _fit(tmp_path_factory.mktemp("full"), losses)
    return losses, history


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A state folder of a run that died at step 6 (saves: steps 2, 4, 5 = epoch end)."""
    state_dir = tmp_path_factory.mktemp("interrupted") / "state"
    with pytest.raises(KeyboardInterrupt):
        _fit(state_dir, {}, die_at=6)
    return state_dir


# Saves at steps 2, 4, 5 (epoch end), 6, 8, 10...: dying at 6 resumes from an epoch end (5),
# at 9 from the middle of the second epoch (8).
@pytest.mark.parametrize("die_at", [6, 9])
def test_resume_continues_the_loss_curve_of_an_uninterrupted_run(tmp_path, uninterrupted,
                                                                 interrupted, die_at):
    full_losses, full_history = uninterrupted
    if die_at == 6:
        shutil.copytree(interrupted, tmp_path, dirs_exist_ok=True)
    else:
        with pytest.raises(KeyboardInterrupt):
            _fit(tmp_path, {}, die_at=die_at)
    resumed = {}
    history = _fit(tmp_path, resumed)   # a fresh model: everything comes from the checkpoint
    assert sorted(resumed) == list(range(die_at, STEPS * EPOCHS + 1))   # die_at is redone
    np.testing.assert_allclose([resumed[s] for s in sorted(resumed)],
                               [full_losses[s] for s in sorted(resumed)], rtol=1e-5)
    # Per-epoch history (the interrupted epoch's mean covers all its steps, not just the rest).
    assert set(history) == set(full_history) == {"loss", "mae"}
    np.testing.assert_allclose(history["loss"], full_history["loss"], rtol=1e-5)
    np.testing.assert_allclose(history["mae"], full_history["mae"], rtol=1e-5)


def test_resume_without_the_data_position_would_differ(uninterrupted, interrupted):
    """Guards the test above: restarting the data from the top gives a different curve."""
    full_losses, _ = uninterrupted
    model = _model()
    load_state(model, str(interrupted))      # step 5, the end of epoch 1
    resumed = {}
    model.fit(_dataset(), epochs=EPOCHS, initial_epoch=1, steps_per_epoch=STEPS, verbose=0,
              callbacks=[StepLosses(resumed)])
    assert not np.allclose([resumed[s] for s in sorted(resumed)],
                           [full_losses[s] for s in sorted(resumed)], rtol=1e-3)


def test_kill_while_writing_a_checkpoint_leaves_the_previous_one_usable(tmp_path, monkeypatch,
                                                                      interrupted):
    state_dir = tmp_path / "state"
    shutil.copytree(interrupted, state_dir)
    assert sorted(os.listdir(state_dir)) == ["step_000004", "step_000005"]   # keeps 2

    model = _model()
    load_state(model, str(state_dir))
    real_save_weights = keras.Model.save_weights

    def killed_half_way(self, path, *args, **kwargs):
        real_save_weights(self, path, *args, **kwargs)
        with open(path, "r+b") as f:             # a truncated file, as a kill would leave it
            f.truncate(100)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(keras.Model, "save_weights", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_state(model, str(state_dir), {"global_step": 6, "epoch": 1, "step_in_epoch": 1,
                                           "history": {}})
    monkeypatch.undo()
    assert ".tmp-step_000006" in os.listdir(state_dir)
    restored = _model()
    state = load_state(restored, str(state_dir), log=lambda *a: None)
    assert state["global_step"] == 5 and state["epoch"] == 1
    assert int(restored.optimizer.iterations.numpy()) == 5
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert sorted(os.listdir(state_dir)) == ["step_000004", "step_000005"]   # temp removed


def test_a_damaged_newest_checkpoint_falls_back_to_the_older_one(tmp_path, interrupted):
    state_dir = tmp_path / "state"
    shutil.copytree(interrupted, state_dir)
    with open(state_dir / "step_000005" / "model.weights.h5", "r+b") as f:
        f.truncate(100)
    messages = []
    state = load_state(_model(), str(state_dir), log=messages.append)
    assert state["global_step"] == 4
    assert "step_000005: unusable checkpoint" in messages[0]


def test_atomic_model_checkpoint_never_leaves_a_partial_keras_file(tmp_path):
    model = _model()
    callback = AtomicModelCheckpoint(str(tmp_path))
    callback.set_model(model)
    callback.on_epoch_end(0)
    assert os.listdir(tmp_path / ".tmp") == []

    def killed_half_way(path):
        with open(path, "wb") as f:
            f.write(b"PK partial")
        raise KeyboardInterrupt("killed while writing")

    model.save = killed_half_way
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1)
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".keras")) == ["epoch_001.keras"]
    keras.saving.load_model(tmp_path / "epoch_001.keras")


def test_disk_full_while_checkpointing_names_the_folder_keeps_the_previous_and_resumes(
        tmp_path, monkeypatch, uninterrupted):
    """ENOSPC half-way through a checkpoint: a clear error naming the folder and the intact
    previous checkpoint, nothing half-written left, and once space is back the resume gives
    the uninterrupted run's losses."""
    import errno

    from vit_tf.training.checkpointing import CheckpointWriteError

    state_dir = tmp_path / "state"
    real_save_weights = keras.Model.save_weights

    def disk_full(self, path, *args, **kwargs):
        if "step_000006" in str(path):
            with open(path, "wb") as f:
                f.write(b"\x89HDF partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save_weights(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", disk_full)
    with pytest.raises(CheckpointWriteError) as e:
        _fit(state_dir, {})
    message = str(e.value)
    assert str(state_dir) in message and "no space left on device" in message
    assert f"the previous checkpoint {state_dir / 'step_000005'} is intact" in message
    assert "--resume" in message
    assert sorted(os.listdir(state_dir)) == ["step_000004", "step_000005"]   # no .tmp left
    monkeypatch.undo()                                                        # space is back
    full_losses, full_history = uninterrupted
    resumed = {}
    history = _fit(state_dir, resumed)
    assert min(resumed) == 6
    np.testing.assert_allclose([resumed[s] for s in sorted(resumed)],
                               [full_losses[s] for s in sorted(resumed)], rtol=1e-5)
    np.testing.assert_allclose(history["loss"], full_history["loss"], rtol=1e-5)


def test_resume_with_other_data_or_config_is_refused_saying_what_changed(tmp_path, interrupted):
    from vit_tf.training.fingerprint import ResumeMismatchError, check_fingerprint

    def fit(fingerprint, state_dir):
        return resumable_fit(_model(), _dataset(), str(state_dir), epochs=EPOCHS,
                             steps_per_epoch=STEPS, every_steps=2, make_train_ds=_dataset,
                             verbose=0, log=lambda *a: None, fingerprint=fingerprint)

    first = {"config": {"train": {"learning_rate": 0.05}}, "data": {"records": 40, "text": "ab"}}
    state_dir = tmp_path / "state"
    with pytest.raises(KeyboardInterrupt):
        resumable_fit(_model(), _dataset(), str(state_dir), epochs=EPOCHS, steps_per_epoch=STEPS,
                      every_steps=2, make_train_ds=_dataset, verbose=0, log=lambda *a: None,
                      callbacks=[StepLosses({}, die_at=3)], fingerprint=first)
    assert json.loads((state_dir / "step_000002" / "state.json").read_text())[
        "fingerprint"] == first
    changed = {"config": {"train": {"learning_rate": 0.1}}, "data": {"records": 39, "text": "cd"}}
    with pytest.raises(ResumeMismatchError) as e:
        fit(changed, state_dir)
    message = str(e.value)
    assert str(state_dir) in message and "3 change(s)" in message
    for change in ("config.train.learning_rate: 0.05 -> 0.1", "data.records: 40 -> 39",
                   'data.text: "ab" -> "cd"'):
        assert change in message
    check_fingerprint(str(state_dir), first)   # the same inputs resume (no error)


def test_checkpoints_that_all_fail_to_load_are_refused_not_restarted_from_step_0(tmp_path,
                                                                               interrupted):
    from vit_tf.training.checkpointing import CheckpointLoadError

    state_dir = tmp_path / "state"
    shutil.copytree(interrupted, state_dir)
    for step in ("step_000004", "step_000005"):
        with open(state_dir / step / "model.weights.h5", "r+b") as f:
            f.truncate(100)
    with pytest.raises(CheckpointLoadError, match="no checkpoint could be loaded"):
        load_state(_model(), str(state_dir), log=lambda *a: None)
    # An optimizer state that does not fit (Keras would skip it with a warning) is unusable too.
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    other.compile(keras.optimizers.SGD(momentum=0.9), "mse")
    shutil.rmtree(state_dir)
    shutil.copytree(interrupted, state_dir)
    with pytest.raises(CheckpointLoadError, match="Skipping variable loading"):
        load_state(other, str(state_dir), log=lambda *a: None)
