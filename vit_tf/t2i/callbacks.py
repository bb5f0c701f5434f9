"""TensorBoard callbacks of text-to-image training (``RUN/logs``).

    tokenizer/   epoch_loss (reconstruction MSE + commitment), codebook/usage (fraction of
                 rows in use), codebook/perplexity, an image grid of reconstructions
    generator/   epoch_loss, epoch_token_accuracy (masked positions) or the diffusion loss,
                 learning rate, and ``samples``: one grid of ``log_prompts`` (seed 0) per epoch

An "epoch" is ``log_every_steps`` training steps (the data repeats), so these appear at a
fixed step interval. ``StepBudget`` sizes a stage to its ``max_seconds`` after measuring its
first steps (``SizedCosine`` is the schedule it resizes) and stops it there.
"""

import time

import keras
import numpy as np
import tensorflow as tf


def image_grid(images, columns=None):
    """(n, S, S, 3) uint8 -> one (rows * S, columns * S, 3) uint8 grid (1-px gaps)."""
    images = np.asarray(images)
    n, s = len(images), images.shape[1]
    columns = columns or n
    rows = -(-n // columns)
    grid = np.full((rows * (s + 1) - 1, columns * (s + 1) - 1, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (s + 1):r * (s + 1) + s, c * (s + 1):c * (s + 1) + s] = image
    return grid


class CodebookUsage(keras.callbacks.Callback):
    """Codebook usage and reconstructions of fixed images, each epoch."""

    def __init__(self, log_dir, images, every=1):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.images = np.asarray(images[:8])
        self.steps = 0
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        usage, perplexity = self.model.quantizer.codebook_usage()
        recon = np.asarray(self.model.decode(self.model.encode(self.images.astype(np.float32))))
        grid = image_grid(np.concatenate([self.images, np.round(recon).astype(np.uint8)]), 8)
        with self.writer.as_default(step=epoch + 1):
            tf.summary.scalar("codebook/usage", usage)
            tf.summary.scalar("codebook/perplexity", perplexity)
            tf.summary.image("reconstructions", grid[None])
        if logs is not None:
            logs["codebook_usage"], logs["codebook_perplexity"] = usage, perplexity


class SampleGrid(keras.callbacks.Callback):
    """Images of fixed prompts (seed 0), one grid per epoch, and the prompts once as text."""

    def __init__(self, task, log_dir, prompts, seeds=2):
        super().__init__()
        self.task, self.prompts, self.seeds = task, list(prompts), seeds
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_train_begin(self, logs=None):
        with self.writer.as_default(step=0):
            tf.summary.text("samples/prompts", "\n\n".join(
                f"row {i}: {p}" for i, p in enumerate(self.prompts)))

    def on_epoch_end(self, epoch, logs=None):
        prompts = [p for p in self.prompts for _ in range(self.seeds)]
        # traced without XLA: no compilation inside the training budget for a few images
        images = self.task.generate(prompts, seed=0, jit_compile=False)
        with self.writer.as_default(step=epoch + 1):
            tf.summary.image("samples", image_grid(images, self.seeds)[None])


@keras.saving.register_keras_serializable(package="vit_tf")
class SizedCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``learning_rate``, then cosine decay to ``min_ratio`` of it at
    ``total_steps`` — a variable, so ``StepBudget`` can size the run after measuring its first
    steps (the compiled optimizer reads the new value)."""

    def __init__(self, learning_rate, warmup_steps, total_steps, min_ratio=0.05):
        self.learning_rate, self.warmup_steps = float(learning_rate), int(warmup_steps)
        self.min_ratio = float(min_ratio)
        self.total_steps = tf.Variable(float(total_steps), trainable=False, name="total_steps")

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.learning_rate * step / max(self.warmup_steps, 1)
        span = tf.maximum(self.total_steps - self.warmup_steps, 1.0)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = self.learning_rate * (self.min_ratio + (1 - self.min_ratio) * 0.5 * (
            1.0 + tf.cos(np.pi * progress)))
        return tf.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                "total_steps": float(self.total_steps.numpy()), "min_ratio": self.min_ratio}


class StepBudget(keras.callbacks.Callback):
    """Size a run to a time budget: after ``measure_calls`` compiled calls (the first, which
    compiles, excluded) take the median seconds per step, and set the schedule's total to the
    steps that fit in what is left of ``max_seconds`` (at most ``max_steps``); stop there.

    With ``max_seconds`` = 0 the run is ``max_steps`` long. ``plan`` records the measurement.
    """

    def __init__(self, schedule, max_steps, max_seconds, measure_calls=4):
        super().__init__()
        self.schedule, self.max_steps, self.max_seconds = schedule, int(max_steps), max_seconds
        self.measure_calls = measure_calls
        self.times, self.start, self.plan = [], None, None
        schedule.total_steps.assign(float(max_steps))

    def on_train_batch_begin(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()
        self._call_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        step = int(self.model.optimizer.iterations.numpy())
        self.times.append((now - self._call_start, step))
        if self.plan is None and self.max_seconds and len(self.times) > self.measure_calls:
            timed = self.times[1:]
            per_step = float(np.median([t / max(s1 - s0, 1) for (t, s1), (_, s0)
                                        in zip(timed, self.times[:len(timed)])]))
            left = self.max_seconds - (now - self.start)
            total = min(self.max_steps, step + int(0.97 * left / per_step))
            self.schedule.total_steps.assign(float(total))
            self.plan = {"measured_seconds_per_step": round(per_step, 4), "after_steps": step,
                         "elapsed_seconds": round(now - self.start, 1), "total_steps": total}
        total = int(self.schedule.total_steps.numpy())
        if step >= total or (self.max_seconds and now - self.start > self.max_seconds):
            self.model.stop_training = True
