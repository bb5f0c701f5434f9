"""The global gradient norm, measured where the update is taken: the optimizer.

Why this shape: the model trains with Keras's stock ``train_step`` (no private Keras API), and
the only place that sees every step's gradients after loss scaling is undone and before
clipping is the optimizer's public ``apply(grads, variables)``: ``LossScaleOptimizer`` divides
by its scale before calling its inner optimizer's ``apply``, and Keras clips inside ``apply``
(``clipnorm`` per variable, or ``global_clipnorm``). ``GradNormTelemetry`` (an optimizer mixin,
used by ``PartAdamW``) records the norm there into a ``GradNorm`` metric, which
``compile_model`` passes to ``compile(metrics=...)`` so it is logged as ``grad_norm`` (epoch
mean) like any compiled metric.

Example:
    >>> optimizer = PartAdamW(learning_rate=1e-3)
    >>> model.compile(optimizer, loss, metrics=[track_grad_norm(optimizer)])
"""

import keras
import tensorflow as tf
from keras import ops


def merged_rows(grad):
    """A gradient with the repeated rows of an ``IndexedSlices`` summed (one row per index).

    An embedding's gradient holds one row per use of a token or position; its norm is that of
    the summed rows, which ``tf.linalg.global_norm`` (squares of ``.values``) does not do.
    The rows are summed into the variable's dense shape (a scatter-add, as XLA compiles it):
    Keras's Adam/AdamW update every row of the table densely anyway, so this costs no more than
    the update, while ``tf.unique`` (the sparse alternative) sorts the indices every step.
    """
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    return tf.math.unsorted_segment_sum(grad.values, grad.indices, grad.dense_shape[0])


def merged_rows_sparse(grad):
    """``merged_rows`` kept sparse with ``tf.unique`` (the earlier way; for benchmarks)."""
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    unique, position = tf.unique(grad.indices)
    return tf.math.unsorted_segment_sum(grad.values, position, tf.shape(unique)[0])


MERGE_ROWS = [merged_rows]   # benchmarks/step_profile.py swaps in merged_rows_sparse to compare


def global_gradient_norm(grads):
    """L2 norm of all ``grads`` of the global batch: under ``tf.distribute`` the replicas'
    gradients are summed first (each replica holds its part of the batch's gradient)."""
    grads = [tf.cast(g, "float32") for g in grads if g is not None]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        grads = context.all_reduce("sum", grads)               # the global batch's gradient
    merge = MERGE_ROWS[0]
    return tf.linalg.global_norm([merge(g) for g in grads])


@keras.saving.register_keras_serializable(package="vit_tf")
class GradNorm(keras.metrics.Metric):
    """Epoch mean of the global gradient norm that an optimizer ``record``s once per step.

    A compiled metric whose ``update_state`` (called by Keras with labels and predictions) does
    nothing: the value comes from ``GradNormTelemetry.apply``. It is a training-only metric;
    ``VisionLanguageModel.test_step`` leaves it out of evaluation logs.
    """

    def __init__(self, name="grad_norm", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total", dtype="float32")
        self.count = self.add_variable((), initializer="zeros", name="count", dtype="float32")

    def update_state(self, *args, **kwargs):
        """Keras' per-batch call with (y_true, y_pred): the norm is recorded by the optimizer."""

    def record(self, norm):
        self.total.assign_add(ops.cast(norm, "float32"))
        self.count.assign_add(1.0)

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


class GradNormTelemetry:
    """Optimizer mixin: ``apply`` records the global norm of the gradients it receives.

    Those are the global batch's gradients (summed over replicas) with mixed-precision loss
    scaling undone and before clipping; ``IndexedSlices`` rows are merged. A step that
    ``LossScaleOptimizer`` skips (non-finite gradients) never reaches ``apply`` and is not
    counted. Nothing is recorded until ``track_grad_norm`` attaches a metric.
    """

    _grad_norm_metric = None

    def apply(self, grads, trainable_variables=None):
        if self._grad_norm_metric is not None and len(grads):
            norm = global_gradient_norm(grads)
            if self.loss_scale_factor:                              # Keras' static loss scale
                norm = norm / self.loss_scale_factor
            self._grad_norm_metric.record(norm)
        return super().apply(grads, trainable_variables)


def track_grad_norm(optimizer, metric=None):
    """Attach a ``GradNorm`` metric to ``optimizer`` (or its ``LossScaleOptimizer``'s inner
    one) and return it, for ``compile(metrics=[...])``."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not isinstance(inner, GradNormTelemetry):
        raise TypeError(f"{type(inner).__name__} does not record gradient norms: use an "
                        "optimizer with the GradNormTelemetry mixin (e.g. PartAdamW)")
    metric = metric or GradNorm()
    inner._grad_norm_metric = metric
    return metric
