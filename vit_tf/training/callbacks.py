"""Callbacks: generated sample answers in TensorBoard, epoch timing."""

import time

import keras
import numpy as np
import tensorflow as tf

from vit_tf.data.pipeline import load_image


class SampleAnswers(keras.callbacks.Callback):
    """Each epoch, answer the first human turn of a few fixed records and log them as text.

    Logged to ``<log_dir>/samples`` under the tag ``samples``: prompt, reference, generated.
    """

    def __init__(self, records, tokenizer, image_size, log_dir, max_new_tokens=32):
        super().__init__()
        self.records = records
        self.tokenizer = tokenizer
        self.images = np.stack([load_image(r["image_path"], image_size).numpy() for r in records])
        self.writer = tf.summary.create_file_writer(log_dir)
        self.max_new_tokens = max_new_tokens
        self.generator = None

    def on_epoch_end(self, epoch, logs=None):
        from vit_tf.inference.generate import Generator

        if self.generator is None:
            # No XLA here: compiling the loop would cost more than generating a few answers.
            self.generator = Generator(self.model, self.tokenizer, self.max_new_tokens,
                                       jit_compile=False)
        prompts = [r["conversations"][:1] for r in self.records]
        answers = self.generator.generate(self.images, prompts)
        rows = ["| id | prompt | reference | generated |", "|---|---|---|---|"]
        for r, answer in zip(self.records, answers):
            prompt = r["conversations"][0]["value"].replace("<image>", "").strip()
            rows.append(f"| {r['id']} | {prompt} | {r['conversations'][1]['value']} | {answer} |")
        with self.writer.as_default():
            tf.summary.text("samples", "\n".join(rows), step=epoch + 1)
        self.writer.flush()


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` to the logs (so it reaches TensorBoard and the history)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start
