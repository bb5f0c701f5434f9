"""TensorBoard callbacks of text-to-image training (``RUN/logs``).

    tokenizer/   epoch_loss (reconstruction MSE + commitment), codebook/usage (fraction of
                 rows in use), codebook/perplexity, an image grid of reconstructions
    generator/   epoch_loss, epoch_token_accuracy (masked positions) or the diffusion loss,
                 learning rate, and ``samples``: one grid of ``log_prompts`` (seed 0) per epoch

An "epoch" is ``log_every_steps`` training steps (the data repeats), so these appear at a
fixed step interval. ``TimeBudget`` stops a stage that has used its ``max_seconds``.
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
        images = self.task.generate(prompts, seed=0)
        with self.writer.as_default(step=epoch + 1):
            tf.summary.image("samples", image_grid(images, self.seeds * 1)[None]
                             if len(self.prompts) == 1 else
                             image_grid(images, self.seeds)[None])


class TimeBudget(keras.callbacks.Callback):
    """Stop training once ``max_seconds`` have passed since its first step (0: never)."""

    def __init__(self, max_seconds):
        super().__init__()
        self.max_seconds = max_seconds
        self.start = None
        self.stopped_at = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.max_seconds and time.perf_counter() - self.start > self.max_seconds:
            self.model.stop_training = True
            self.stopped_at = self.model.optimizer.iterations.numpy().item()
