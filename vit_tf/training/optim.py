"""Optimizer, schedule, loss and metrics for ``model.compile``."""

import keras
import tensorflow as tf

from vit_tf.config import ConfigError
from vit_tf.training.compiled_update import CompiledUpdate
from vit_tf.training.grad_norm import GradNormTelemetry, track_grad_norm
from vit_tf.training.nan_guard import NonFiniteUpdateGuard


def make_schedule(train_config, total_steps):
    """Linear warmup to ``learning_rate``, then cosine decay to ``min_learning_rate``."""
    t = train_config
    warmup = min(t.warmup_steps, max(total_steps - 1, 0))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(total_steps - warmup, 1),
        alpha=t.min_learning_rate / t.learning_rate,
        warmup_target=t.learning_rate,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="vit_tf")
class PartAdamW(CompiledUpdate, GradNormTelemetry, NonFiniteUpdateGuard, keras.optimizers.AdamW):
    """AdamW whose learning rate is multiplied per variable: ``lr_multipliers`` {variable path: m}.

    It also records the global gradient norm for the ``grad_norm`` log
    (``vit_tf.training.grad_norm``) and applies no update from the first step with non-finite
    gradients on (``vit_tf.training.nan_guard``); without multipliers it steps exactly like
    ``AdamW``. With ``compile_update`` set, its update (guard and telemetry included) runs as
    one XLA computation (``vit_tf.training.compiled_update``).

    Why this shape: Keras compiles one optimizer, and scaling *gradients* would not change
    Adam's step (it is invariant to the gradient's scale), so the multiplier is applied where the
    step is taken: ``update_step`` receives the learning rate per variable. Decoupled weight
    decay (``lr * wd * w``) is scaled the same way, so a part at multiplier m moves exactly m
    times as far. Variables not listed use the schedule's rate (multiplier 1).
    """

    def __init__(self, lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self.lr_multipliers = dict(lr_multipliers or {})

    def build(self, var_list):
        super().build(var_list)
        self._multipliers = [self.lr_multipliers.get(v.path, 1.0) for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        m = self._multipliers[self._get_variable_index(variable)]
        super().update_step(gradient, variable, learning_rate if m == 1.0 else learning_rate * m)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self.lr_multipliers:
            return super()._apply_weight_decay(variables)
        groups = {}
        for v in variables:
            groups.setdefault(self._multipliers[self._get_variable_index(v)], []).append(v)
        weight_decay = self.weight_decay
        try:  # weight decay is lr * wd * w: scaling wd scales it per group (at trace time)
            for m, group in groups.items():
                self.weight_decay = weight_decay * m
                super()._apply_weight_decay(group)
        finally:
            self.weight_decay = weight_decay

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}


def make_optimizer(train_config, total_steps, lr_multipliers=None):
    """``PartAdamW`` (AdamW, with per-part learning-rate multipliers when given); biases, norms
    and embeddings/position tables are not weight-decayed. Clipping: ``train.clipnorm`` (per
    variable, the default) or ``train.global_clipnorm`` (all gradients together; set at most
    one). ``train.precision=mixed_float16`` wraps it in a ``LossScaleOptimizer``
    (``vit_tf.training.precision``). With ``train.jit_compile=false`` and ``train.xla_update``
    its update is one XLA computation (``vit_tf.training.compiled_update``)."""
    from vit_tf.training.precision import wrap_optimizer

    kwargs = dict(
        learning_rate=make_schedule(train_config, total_steps),
        weight_decay=train_config.weight_decay,
        clipnorm=train_config.clipnorm or None,
        global_clipnorm=train_config.global_clipnorm or None,
    )
    if kwargs["clipnorm"] and kwargs["global_clipnorm"]:
        raise ConfigError("train.clipnorm and train.global_clipnorm are both set: clip per "
                          "variable or globally (set the other to 0)")
    optimizer = PartAdamW(lr_multipliers, **kwargs)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings"])
    # A step that XLA does not compile still gets its update compiled (train.xla_update).
    optimizer.compile_update = train_config.xla_update and not train_config.jit_compile
    return wrap_optimizer(optimizer, train_config.precision)


def make_loss():
    """Token cross-entropy averaged over trained tokens: sum(loss * w) / sum(w) per batch.

    The pipeline's sample_weight is 1 on assistant tokens (and their <|end|>), 0 elsewhere, so
    every trained token counts the same however long its example is (pinned in a test).
    """
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )


def steps_per_call(requested, steps_per_epoch, every_steps=0, profile=False):
    """``train.steps_per_execution`` as run: the largest k <= ``requested`` dividing the epoch's
    steps (and ``every_steps``, the mid-epoch checkpoint interval, when set); 1 when profiling.

    Why: Keras runs ``steps_per_execution`` steps per call inside one ``tf.function`` (less
    Python and dispatch per step: ~11% faster steps for the default experiment on 2 CPU
    cores), but its loop only stops early when the data runs out. On a repeated dataset a call
    that starts near the end of an epoch would run past it, so k must divide the epoch; the
    checkpoint and resume points (``resumable_fit``) then fall on call boundaries too.
    Callbacks see one batch per call, so the profiler's step window needs k = 1.
    """
    if requested < 1:
        raise ConfigError(f"train.steps_per_execution must be >= 1, got {requested}")
    if profile:
        return 1
    return max(k for k in range(1, min(requested, steps_per_epoch) + 1)
               if steps_per_epoch % k == 0 and (not every_steps or every_steps % k == 0))


def epoch_steps(explicit, examples, batch_size, steps_per_execution=1):
    """Steps per epoch: ``explicit`` when set, else one pass over ``examples`` rounded down to
    whole calls of ``steps_per_execution`` steps. The training data repeats without a break, so
    the few batches an epoch leaves out open the next one: nothing is skipped."""
    if explicit:
        return explicit
    steps = max(examples // batch_size, 1)
    return steps - steps % min(max(steps_per_execution, 1), steps)


def batch_slices(train_config):
    """``train.batch_slices`` resolved: 0 (auto) -> 2 on CPU, 1 with a GPU or TPU (where
    smaller kernels would cost more than the parallel chains gain). Measured on 2 CPU cores
    (``benchmarks/step_profile.py``, 2026-12-07): 2 slices 165 vs 180 ms per ``fit`` step at
    the issue-16 size, 36.8 vs 40.4 ms for the default experiment; 4 and 8 gained no more."""
    k = train_config.batch_slices
    if k < 0:
        raise ConfigError(f"train.batch_slices must be >= 0 (0: auto), got {k}")
    if k:
        return k
    accelerated = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    return 1 if accelerated else 2


def compile_model(model, train_config, total_steps, lr_multipliers=None, steps_per_execution=1):
    """Compile with Keras's stock train step: ``make_optimizer``, ``make_loss``, token accuracy
    and the optimizer's ``grad_norm`` (``vit_tf.training.grad_norm``)."""
    optimizer = make_optimizer(train_config, total_steps, lr_multipliers)
    if hasattr(model, "batch_slices"):
        model.batch_slices = batch_slices(train_config)
    model.compile(
        optimizer=optimizer,
        loss=make_loss(),
        metrics=[track_grad_norm(optimizer)],
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
        jit_compile=train_config.jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def set_steps_per_execution(model, k):
    """Change a compiled model's steps per call (its train function is rebuilt on next fit)."""
    if model.steps_per_execution != k:
        model.steps_per_execution = k
        model.train_function = None
