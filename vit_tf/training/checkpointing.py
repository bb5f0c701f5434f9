"""Exact, crash-safe resume of one ``model.fit`` call, and atomic ``.keras`` checkpoints.

``resumable_fit(model, train_ds, state_dir, ...)`` is ``model.fit`` on a repeated training
dataset plus a training-state checkpoint in ``state_dir`` at every epoch end (and every
``every_steps`` steps). Called again with the same arguments after the process was killed
(``kill -9`` included), it continues from the newest complete checkpoint with:

- weights and optimizer state (Adam moments, ``optimizer.iterations``, hence the step counter
  and the learning-rate schedule, which is a function of it), from ``model.weights.h5``;
- the epoch, the step inside it and the history of the finished epochs, from ``state.json``;
- the running epoch metrics (the loss tracker's sum and count...), so the resumed epoch's mean
  loss covers the whole epoch, not only the steps after the restart;
- the data position: ``train_ds`` is deterministic (seeded shuffle, ordered ``map``), so the
  resumed run reads ``train_ds.skip(global_step)`` and sees exactly the batches the
  uninterrupted run would have seen. Keras 3's ``fit`` owns its iterator, so the iterator
  itself cannot be checkpointed (``tf.train.Checkpoint(iterator)``) without leaving the stock
  engine; the skip works under every ``tf.distribute`` strategy, costs no model compute (only
  the input pipeline runs for the skipped batches) and needs no extra state on disk (an
  iterator checkpoint would also store the shuffle buffer).

Atomicity: a checkpoint is written into ``state_dir/.tmp-step_N`` and then renamed to
``state_dir/step_N`` with ``os.replace`` (atomic on POSIX), so a ``step_*`` folder is always
complete; a kill while writing leaves only a ``.tmp-*`` folder, ignored and removed on the next
start, and the previous checkpoint (the newest ``keep`` are kept) is used. Keras'
``BackupAndRestore`` was not enough: it overwrites ``latest.weights.h5`` in place (a kill while
writing corrupts the only copy), restores only the epoch (a mid-epoch save resumes at the start
of the epoch with weights already advanced) and not the data position.

A failed write (disk full, quota, I/O error) removes its temporary folder and raises
``CheckpointWriteError`` naming the folder and the previous, intact checkpoint; once the cause
is gone, ``--resume`` continues from that one.

What was trained on is recorded too: ``fingerprint`` (the caller's dict, e.g. the training
config and a digest of the data) is stored in every ``state.json``, and a resume whose
fingerprint differs is refused with ``ResumeMismatchError`` listing what changed (continuing
on other data or another config would silently mix two runs).

Layout::

    state_dir/step_000120/model.weights.h5   weights + optimizer variables
    state_dir/step_000120/state.json         {"global_step", "epoch", "step_in_epoch",
                                              "history", "metrics", "fingerprint"}
"""

import errno
import json
import math
import os
import shutil
import warnings

import keras
import numpy as np

from vit_tf.training.fingerprint import ResumeMismatchError, check_fingerprint
from vit_tf.training.optim import set_steps_per_execution

STATE_FILE = "state.json"
WEIGHTS_FILE = "model.weights.h5"


class CheckpointLoadError(ValueError):
    """Checkpoints exist but none of them can be loaded."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, quota, I/O error); nothing half-written
    is left where a resume would read it, and the previous checkpoint is untouched."""


def _no_space(error):
    """ENOSPC / EDQUOT, also as h5py reports it (errno in the message, not in ``.errno``)."""
    text = str(error)
    return (getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left" in text or "errno = 28" in text or "Disk quota" in text)


def _write_failed(error, what, folder, previous):
    cause = "no space left on device" if _no_space(error) else f"{type(error).__name__}: {error}"
    kept = (f"the previous checkpoint {previous} is intact" if previous
            else "no earlier checkpoint exists")
    return CheckpointWriteError(
        f"{folder}: could not write {what} ({cause}); {kept}. Free space (or fix the cause) "
        "and continue the run with --resume.")


def _fsync_tree(folder):
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            os.fsync(f.fileno())


def atomic_save(write, final_path):
    """Call ``write(tmp_path)`` then move ``tmp_path`` onto ``final_path`` in one rename.

    ``tmp_path`` is ``<dirname>/.tmp/<basename>`` (same file system, same suffix, so Keras'
    file-name checks pass); a crash leaves at most a stale file under ``.tmp``.
    """
    folder = os.path.dirname(final_path) or "."
    tmp_dir = os.path.join(folder, ".tmp")
    tmp_path = os.path.join(tmp_dir, os.path.basename(final_path))
    try:
        os.makedirs(tmp_dir, exist_ok=True)
        write(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
    except OSError as e:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        kept = sorted(n for n in os.listdir(folder) if n.endswith(os.path.splitext(final_path)[1]))
        raise _write_failed(e, os.path.basename(final_path), folder,
                            os.path.join(folder, kept[-1]) if kept else None) from e
    os.replace(tmp_path, final_path)
    return final_path


class AtomicModelCheckpoint(keras.callbacks.Callback):
    """Save the whole model as ``folder/epoch_XXX.keras`` after each epoch, atomically."""

    def __init__(self, folder, pattern="epoch_{epoch:03d}.keras"):
        super().__init__()
        self.folder = folder
        self.pattern = pattern

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, self.pattern.format(epoch=epoch + 1))
        atomic_save(self.model.save, path)


def _step_dirs(state_dir):
    """Complete checkpoint folders, oldest first: [(global_step, path)]."""
    if not os.path.isdir(state_dir):
        return []
    found = []
    for name in os.listdir(state_dir):
        if name.startswith("step_") and name[5:].isdigit():
            found.append((int(name[5:]), os.path.join(state_dir, name)))
    return sorted(found)


def _metric_variables(model):
    """{path: variable} of the running epoch metrics (the loss tracker's total and count...)."""
    return {v.path: v for m in model.metrics for v in m.variables}


def save_state(model, state_dir, state, keep=2):
    """Write one checkpoint atomically; keep the newest ``keep`` and drop stale temp folders.

    A failed write (``OSError``: disk full...) removes the temporary folder and raises
    ``CheckpointWriteError`` naming ``state_dir`` and the previous checkpoint."""
    name = f"step_{state['global_step']:06d}"
    tmp = os.path.join(state_dir, f".tmp-{name}")
    state = dict(state, metrics={k: np.asarray(v).tolist()
                                 for k, v in _metric_variables(model).items()})
    try:
        os.makedirs(state_dir, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        model.save_weights(os.path.join(tmp, WEIGHTS_FILE))
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump(state, f)
        _fsync_tree(tmp)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)   # free what it took; never read anyway
        previous = _step_dirs(state_dir)
        raise _write_failed(e, f"the checkpoint {name}", state_dir,
                            previous[-1][1] if previous else None) from e
    final = os.path.join(state_dir, name)
    shutil.rmtree(final, ignore_errors=True)   # the same step saved again (after a resume)
    os.replace(tmp, final)
    for _, old in _step_dirs(state_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_state(model, state_dir, log=print, fingerprint=None):
    """Restore the newest usable checkpoint into ``model``; -> its state dict, or None.

    A checkpoint that fails to load (damaged disk, a partial copy made by hand, an optimizer
    state that does not fit the model's: Keras would skip it with a warning) is reported and
    the next older one is tried; when none loads, ``CheckpointLoadError`` (never a silent start
    from step 0). ``fingerprint``: refuse (``ResumeMismatchError``) a checkpoint written with
    another one.
    """
    for name in os.listdir(state_dir) if os.path.isdir(state_dir) else []:
        if name.startswith(".tmp-"):   # a checkpoint whose writer was killed
            shutil.rmtree(os.path.join(state_dir, name), ignore_errors=True)
    problems = []
    for step, folder in reversed(_step_dirs(state_dir)):
        try:
            with open(os.path.join(folder, STATE_FILE)) as f:
                state = json.load(f)
            check_fingerprint(state_dir, fingerprint, state, log)
            with model.distribute_strategy.scope():
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.load_weights(os.path.join(folder, WEIGHTS_FILE))
            skipped = [str(w.message) for w in caught if "Skipping variable loading" in
                       str(w.message)]
            if skipped:
                raise ValueError(skipped[0])
        except ResumeMismatchError:
            raise
        except (OSError, ValueError, KeyError) as e:
            log(f"{folder}: unusable checkpoint ({e}); trying an older one")
            problems.append(f"{os.path.basename(folder)}: {e}")
            continue
        return state
    if problems:
        raise CheckpointLoadError(
            f"{state_dir}: no checkpoint could be loaded ({'; '.join(problems)}); refusing to "
            "start again from step 0 over them: move the folder away to start afresh")
    return None


class StateCheckpoint(keras.callbacks.Callback):
    """Saves the training state (see module doc) at epoch ends and every ``every_steps`` steps.

    Put it LAST in the callback list, so the epoch logs it stores in the history already hold
    what the other callbacks add (validation accuracy, timings).
    """

    def __init__(self, state_dir, steps_per_epoch, every_steps=0, history=None, keep=2,
                 fingerprint=None):
        super().__init__()
        self.fingerprint = fingerprint
        self.state_dir = state_dir
        self.steps_per_epoch = steps_per_epoch
        self.every_steps = every_steps
        self.history = {k: list(v) for k, v in (history or {}).items()}
        self.keep = keep
        self.offset = 0          # steps already done in the first epoch of this fit (a resume)
        self.metrics = None      # metric values to restore at that epoch's start
        self.epoch = 0

    def _restore_metrics(self, add):
        """Put the saved metric sums back: fit reset them at the epoch start. Compiled metrics
        of a fresh model only exist after its first step; their sums are then added (Keras
        metric states are sums), so that step's own batch logs miss them, the epoch's do not."""
        variables = _metric_variables(self.model)
        for path in [p for p in self.metrics if p in variables]:
            value = np.asarray(self.metrics.pop(path), dtype=variables[path].dtype)
            (variables[path].assign_add if add else variables[path].assign)(value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.metrics:
            self._restore_metrics(add=False)

    def _state(self, epoch, step_in_epoch):
        state = {"global_step": epoch * self.steps_per_epoch + step_in_epoch, "epoch": epoch,
                 "step_in_epoch": step_in_epoch, "history": self.history}
        if self.fingerprint is not None:
            state["fingerprint"] = self.fingerprint
        return state

    def on_train_batch_end(self, batch, logs=None):
        if self.metrics:
            self._restore_metrics(add=True)
            self.metrics = None
        step_in_epoch = self.offset + batch + 1
        global_step = self.epoch * self.steps_per_epoch + step_in_epoch
        if (self.every_steps and global_step % self.every_steps == 0
                and step_in_epoch < self.steps_per_epoch):   # the epoch end saves anyway
            save_state(self.model, self.state_dir, self._state(self.epoch, step_in_epoch),
                       self.keep)

    def on_epoch_end(self, epoch, logs=None):
        self.offset = 0
        for key, value in (logs or {}).items():
            if np.ndim(value) == 0:
                self.history.setdefault(key, []).append(float(value))
        save_state(self.model, self.state_dir, self._state(epoch + 1, 0), self.keep)


def resumable_fit(model, train_ds, state_dir, *, epochs, steps_per_epoch, callbacks=(),
                  validation_data=None, every_steps=0, save_dir=None, make_train_ds=None,
                  verbose=2, log=print, fingerprint=None):
    """``model.fit`` that checkpoints into, and resumes from, ``state_dir``; -> history dict.

    ``train_ds`` must be repeated and deterministic: a freshly built copy yields the same
    batches in the same order. ``make_train_ds()`` builds such a fresh copy; it is needed only
    to resume from the middle of an epoch, where the interrupted epoch and the rest are two
    ``fit`` calls, each with its own iterator, and a second iterator over the SAME dataset
    object draws new seeds for a ``reshuffle_each_iteration`` shuffle (another order).
    ``save_dir`` (default ``state_dir``): where checkpoints are written, e.g. a temporary
    folder on a non-chief multi-worker task that still resumes from the chief's ``state_dir``.
    One call per training stage, each with its own ``state_dir``. ``fingerprint`` (a JSON-able
    dict: what the stage trains on, e.g. its config and a digest of its data) is saved with
    every checkpoint; resuming with a different one raises ``ResumeMismatchError``.
    """
    if every_steps < 0:
        raise ValueError(f"train.checkpoint_every_steps must be >= 0, got {every_steps}")
    if fingerprint is not None:
        fingerprint = json.loads(json.dumps(fingerprint))   # as state.json will hold it
    state = load_state(model, state_dir, log, fingerprint=fingerprint)
    checkpoint = StateCheckpoint(save_dir or state_dir, steps_per_epoch, every_steps,
                                 state["history"] if state else None, fingerprint=fingerprint)
    epoch, step, done = 0, 0, 0
    if state:
        epoch, step, done = state["epoch"], state["step_in_epoch"], state["global_step"]
        log(f"resuming from {state_dir} at step {done} (epoch {epoch + 1}, step {step} in it)")
        if step:
            checkpoint.offset, checkpoint.metrics = step, state["metrics"]
    callbacks = [*callbacks, checkpoint]
    fit = dict(validation_data=validation_data, callbacks=callbacks, verbose=verbose,
               shuffle=False)
    if step and epoch < epochs:   # finish the interrupted epoch, then run the rest
        if make_train_ds is None:
            raise ValueError(f"{state_dir}: resuming in the middle of an epoch needs "
                             "make_train_ds (a fresh copy of the training data)")
        per_call = model.steps_per_execution
        # A checkpoint from a run with another train.steps_per_execution (or every_steps) may
        # leave a remainder that is not a whole number of calls: never run past the epoch.
        set_steps_per_execution(model, math.gcd(per_call, steps_per_epoch - step))
        model.fit(train_ds.skip(done), epochs=epoch + 1, initial_epoch=epoch,
                  steps_per_epoch=steps_per_epoch - step, **fit)
        set_steps_per_execution(model, per_call)
        epoch, done = epoch + 1, (epoch + 1) * steps_per_epoch
        train_ds = make_train_ds()
    if epoch < epochs and not (step and getattr(model, "stop_training", False)):
        model.fit(train_ds.skip(done) if done else train_ds, epochs=epochs, initial_epoch=epoch,
                  steps_per_epoch=steps_per_epoch, **fit)
    return checkpoint.history
