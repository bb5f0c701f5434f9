"""Stop training at the first non-finite step, before anything is saved from that state.

Two parts, because Keras runs ``train.steps_per_execution`` steps per compiled call and
callbacks only see a call's end:

* ``NonFiniteUpdateGuard`` (an optimizer mixin, in ``PartAdamW``) checks the gradients of every
  step inside the compiled call: a step whose gradients are not all finite applies no update,
  nor does any step after it (the guard stays tripped), and its global step (1-based, counted
  by the optimizer) is kept in ``nonfinite_step``. So no NaN / Inf ever reaches the weights or
  the Adam moments, whatever the call size.
* ``NanGuard`` (a callback) reads that step after each call, and also checks the running loss;
  it raises ``NonFiniteLossError`` naming the exact step (epoch, batch), so ``model.fit`` ends
  inside the epoch: the checkpoint callbacks never see the broken state and the newest
  checkpoint in the run folder is the last good one. (Keras's ``TerminateOnNaN`` only sets
  ``stop_training``, after which the epoch still ends and a NaN checkpoint is written.)

Under ``train.precision=mixed_float16`` the ``LossScaleOptimizer`` already skips steps with
non-finite (scaled) gradients and lowers its scale; the guard then only sees finite ones, and
a loss that stays non-finite is caught by ``NanGuard`` from the logs.

Example:
    >>> model.fit(ds, epochs=3, callbacks=[NanGuard(checkpoint_dir="runs/x/checkpoints"), ...])
"""

import math
import os

import keras
import tensorflow as tf


class NonFiniteLossError(RuntimeError):
    """The training loss (or a step's gradients) became NaN or Inf."""


def _all_finite(grads):
    checks = [tf.reduce_all(tf.math.is_finite(g.values if isinstance(g, tf.IndexedSlices) else g))
              for g in grads if g is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


class NonFiniteUpdateGuard:
    """Optimizer mixin: skip every update from the first step with non-finite gradients on.

    ``nonfinite_step`` (int64 variable; 0 = never) holds that step's 1-based global step
    (``iterations + 1`` when it happened). Under ``tf.distribute`` all replicas decide together
    (any replica's non-finite gradient skips the step everywhere), following the pattern of
    Keras' ``LossScaleOptimizer`` (a cross-replica ``cond`` when the strategy needs merge calls).
    """

    def build(self, var_list):
        super().build(var_list)
        self.nonfinite_step = self.add_variable((), initializer="zeros", dtype="int64",
                                                name="nonfinite_step")

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        apply_update = super().apply

        def update():
            apply_update(grads, trainable_variables)

        def skip():
            first = tf.where(self.nonfinite_step == 0, tf.cast(self.iterations, "int64") + 1,
                             self.nonfinite_step)
            self.nonfinite_step.assign(first)

        context = tf.distribute.get_replica_context()
        if context is None or tf.__internal__.distribute.strategy_supports_no_merge_call():
            ok = _all_finite(grads)
            if context is not None and context.num_replicas_in_sync > 1:
                ok = context.all_reduce("min", tf.cast(ok, tf.float32)) > 0
            tf.cond(tf.logical_and(ok, self.nonfinite_step == 0), update, skip)
            return

        def cross_replica(strategy, grads, trainable_variables):
            per_replica = strategy.extended.call_for_each_replica(_all_finite, args=(grads,))
            ok = tf.reduce_all(tf.stack(strategy.experimental_local_results(per_replica)))

            def update_all():
                strategy.extended.call_for_each_replica(apply_update,
                                                        args=(grads, trainable_variables))

            tf.cond(tf.logical_and(ok, self.nonfinite_step == 0), update_all, skip)

        context.merge_call(cross_replica, args=(grads, trainable_variables))


def nonfinite_step(optimizer):
    """The guard's first non-finite global step (0 = none), or None without a guard."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    variable = getattr(inner, "nonfinite_step", None)
    return None if variable is None else int(keras.ops.convert_to_numpy(variable))


class NanGuard(keras.callbacks.Callback):
    """Raise ``NonFiniteLossError`` at the first non-finite step (see the module docstring).

    Args:
        checkpoint_dir: where the run's checkpoints are (named in the message), or None.
        stage: a label for the message (e.g. ``"stage 1"``), or "".
        steps_per_epoch: the stage's steps per epoch (default: the fit's), to turn the guard's
            global step into (epoch, batch).
    """

    def __init__(self, checkpoint_dir=None, stage="", steps_per_epoch=None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.stage = stage
        self.steps_per_epoch = steps_per_epoch
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
        bad_step = nonfinite_step(self.model.optimizer)
        if not bad_step and (loss is None or math.isfinite(float(loss))):
            return
        steps = self.steps_per_epoch or self.params.get("steps") or 0
        if bad_step:
            what = ("gradients became non-finite" if loss is None or math.isfinite(float(loss))
                    else f"training loss became {float(loss)}")
            epoch, in_epoch = divmod(bad_step - 1, steps) if steps else (self._epoch, bad_step - 1)
            where = (f"step {bad_step} (epoch {epoch + 1}, batch {in_epoch + 1}); no update was "
                     "applied from that step on")
        else:   # finite gradients but a non-finite loss (the guard did not trip)
            per_call = getattr(self.model, "steps_per_execution", 1)
            what = f"training loss became {float(loss)}"
            step = self._epoch * steps + batch + 1
            where = (f"step {step} (epoch {self._epoch + 1}, batch {batch + 1})" if per_call == 1
                     else f"a step of the call ending at step {step} (epoch {self._epoch + 1}, "
                          f"batches {batch + 2 - per_call}-{batch + 1})")
        last = self._last_checkpoint()
        label = f"{self.stage}: " if self.stage else ""
        kept = (f"the last good checkpoint is {last}" if last
                else "no checkpoint had been written yet")
        raise NonFiniteLossError(
            f"{label}{what} at {where}; stopped before saving anything from that state; {kept}. "
            "Try a lower train.learning_rate, train.clipnorm, or train.precision=float32."
        )
