"""Stop training at the first non-finite loss, before anything is saved from that state.

``NanGuard`` checks the running loss after every batch. On NaN / Inf it raises
``NonFiniteLossError`` naming the global step, so ``model.fit`` ends inside the epoch: the
epoch-end callbacks (``ModelCheckpoint``, ``BackupAndRestore``) never see the broken weights and
the newest checkpoint in the run folder is the last good one. (Keras's ``TerminateOnNaN`` only
sets ``stop_training``, after which the epoch still ends and a NaN checkpoint is written.)

Example:
    >>> model.fit(ds, epochs=3, callbacks=[NanGuard(checkpoint_dir="runs/x/checkpoints"), ...])
"""

import math
import os

import keras


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf."""


class NanGuard(keras.callbacks.Callback):
    """Raise ``NonFiniteLossError`` when ``logs["loss"]`` is not finite.

    Args:
        checkpoint_dir: where the run's checkpoints are (named in the message), or None.
        stage: a label for the message (e.g. ``"stage 1"``), or "".
    """

    def __init__(self, checkpoint_dir=None, stage=""):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.stage = stage
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _last_checkpoint(self):
        if not self.checkpoint_dir or not os.path.isdir(self.checkpoint_dir):
            return None
        files = sorted(f for f in os.listdir(self.checkpoint_dir) if f.endswith(".keras"))
        return os.path.join(self.checkpoint_dir, files[-1]) if files else None

    def on_train_batch_end(self, batch, logs=None):
        loss = None if logs is None else logs.get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        steps = self.params.get("steps") or 0
        step = self._epoch * steps + batch + 1
        last = self._last_checkpoint()
        where = f"{self.stage}: " if self.stage else ""
        kept = (f"the last good checkpoint is {last}" if last
                else "no checkpoint had been written yet")
        raise NonFiniteLossError(
            f"{where}training loss became {float(loss)} at step {step} (epoch {self._epoch + 1}, "
            f"batch {batch + 1}); stopped before saving anything from that state; {kept}. "
            "Try a lower train.learning_rate, train.clipnorm, or train.precision=float32."
        )
