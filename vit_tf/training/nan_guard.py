"""Stop training at the first non-finite step, before anything is saved from that state.

Two parts, because Keras runs ``train.steps_per_execution`` steps per compiled call and
callbacks only see a call's end:

* ``NonFiniteUpdateGuard`` (an optimizer mixin, in ``PartAdamW``) checks the gradients of every
  step inside the compiled call: from the first step whose gradients are not all finite on, no
  weight moves (the gradients become zeros and the learning rate 0; the guard stays tripped),
  and that step's global step (1-based, counted by the optimizer) is kept in
  ``nonfinite_step``. So no NaN / Inf ever reaches the weights or the Adam moments, whatever
  the call size.
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


def _masked(grad, keep):
    """``grad`` where ``keep``, else zeros (a select: the kept values are exactly the same)."""
    if grad is None:
        return None
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(tf.where(keep, grad.values, tf.zeros_like(grad.values)),
                                grad.indices, grad.dense_shape)
    return tf.where(keep, grad, tf.zeros_like(grad))


class NonFiniteUpdateGuard:
    """Optimizer mixin: no weight moves from the first step with non-finite gradients on.

    ``nonfinite_step`` (int64 variable; 0 = never) holds that step's 1-based global step
    (``iterations + 1`` when it happened). From then on the gradients are replaced by zeros and
    the learning rate (``learning_rate`` property, hence the update and the decoupled weight
    decay) is multiplied by 0, so the weights keep their last finite values; Adam's moments only
    decay. Until then the rate is multiplied by exactly 1.0 and the gradients pass through a
    select, with no conditional around the update. Under ``tf.distribute`` the replicas decide
    together (any replica's non-finite gradient trips the guard everywhere).

    Round-off: under XLA any change to the compiled step moves the float round-off of healthy
    steps (measured: even an unused extra optimizer variable changes the default experiment's
    weights after 64 steps bit-wise). This select form gives the very same bits as a guard that
    only records the step, while a ``tf.cond`` around the update gave other ones.
    """

    def build(self, var_list):
        super().build(var_list)
        self.nonfinite_step = self.add_variable((), initializer="zeros", dtype="int64",
                                                aggregation="only_first_replica",
                                                name="nonfinite_step")

    def _get_current_learning_rate(self):
        rate = super()._get_current_learning_rate()
        guard = getattr(self, "nonfinite_step", None)
        if guard is None:
            return rate
        rate = keras.ops.convert_to_tensor(rate)
        return rate * keras.ops.cast(keras.ops.equal(guard, 0), rate.dtype)

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        ok = _all_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            bad = context.all_reduce("sum", tf.cast(tf.logical_not(ok), tf.float32))
            ok = tf.equal(bad, 0.0)   # a non-finite gradient on any replica
        first = tf.logical_and(tf.logical_not(ok), tf.equal(self.nonfinite_step, 0))
        self.nonfinite_step.assign(tf.where(first, tf.cast(self.iterations, "int64") + 1,
                                            self.nonfinite_step))
        keep = tf.equal(self.nonfinite_step, 0)
        return super().apply([_masked(g, keep) for g in grads], trainable_variables)


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
