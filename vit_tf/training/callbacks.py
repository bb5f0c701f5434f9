"""Callbacks: generated sample answers in TensorBoard, epoch timing."""

import time

import keras
import numpy as np
import tensorflow as tf


class SampleAnswers(keras.callbacks.Callback):
    """Each epoch, answer the first human turn of a few fixed records and log them as text.

    Logged to ``<log_dir>/samples`` under the tag ``samples``: prompt, reference, generated.
    The model's own ``generate`` (and preprocessor) answers, from the records' image files.
    """

    def __init__(self, records, log_dir, max_new_tokens=32):
        super().__init__()
        self.records = records
        self.writer = tf.summary.create_file_writer(log_dir)
        self.max_new_tokens = max_new_tokens

    def on_epoch_end(self, epoch, logs=None):
        prompts = [r["conversations"][:1] for r in self.records]
        # No XLA here: compiling the loop would cost more than generating a few answers.
        answers = self.model.generate({"images": [r["image_path"] for r in self.records],
                                       "conversations": prompts},
                                      max_new_tokens=self.max_new_tokens, jit_compile=False)
        rows = ["| id | prompt | reference | generated |", "|---|---|---|---|"]
        for r, answer in zip(self.records, answers):
            prompt = r["conversations"][0]["value"].replace("<image>", "").strip()
            rows.append(f"| {r['id']} | {prompt} | {r['conversations'][1]['value']} | {answer} |")
        with self.writer.as_default(), tf.summary.record_if(True):  # see telemetry.TensorBoard
            tf.summary.text("samples", "\n".join(rows), step=epoch + 1)
        self.writer.flush()


class EpochTimer(keras.callbacks.Callback):
    """Adds ``epoch_seconds`` to the logs (so it reaches TensorBoard and the history)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class AnswerAccuracy(keras.callbacks.Callback):
    """Per-category answer accuracy on held-out records, each epoch, in one forward pass.

    A record counts as correct when every trained token (each assistant answer and its
    ``<|end|>``) is the argmax prediction given the true history (teacher forcing). For a
    single-turn record that is exactly when greedy decoding reproduces the reference answer
    token for token, at the cost of one batched forward pass instead of a decoding loop.

    Adds ``val_answer_match`` (all records) and ``val_answer_match/<category>`` to the epoch logs,
    so they reach the history, ``train_summary.json`` and TensorBoard.

    Args:
        examples: ``EncodedExamples`` of the held-out records.
        categories: one category name per example (``"all"`` when records have none).
        image_size: the model's input size.
        batch_size: examples per forward pass (the last batch is padded: one compiled shape).
    """

    def __init__(self, examples, categories, image_size, batch_size=64):
        super().__init__()
        from vit_tf.data.pipeline import decode_images

        self.examples = examples
        self.categories = np.asarray(categories)
        paths, self.image_index = np.unique(examples.image_paths, return_inverse=True)
        self.images = decode_images(paths, image_size)              # (distinct, S, S, 3) uint8
        self.batch_size = batch_size

    def _correct(self):
        ex, n, b = self.examples, len(self.examples), self.batch_size
        token_ids = ex.token_ids[:, :-1]                            # (N, L) inputs
        labels, trained = ex.token_ids[:, 1:], ex.trained[:, 1:]   # (N, L) targets, loss mask
        mask = np.arange(token_ids.shape[1])[None, :] < ex.lengths[:, None]
        correct = np.zeros(n, bool)
        for start in range(0, n, b):
            idx = np.arange(start, start + b) % n                   # pad the last batch
            # predict, not predict_on_batch: under a strategy, predict_on_batch gives every
            # replica the whole batch and returns the replicas' outputs stacked (R x b rows).
            logits = self.model.predict({
                "images": self.images[self.image_index[idx]].astype("float32"),
                "token_ids": token_ids[idx],
                "padding_mask": mask[idx],
            }, batch_size=b, verbose=0)
            hit = (np.argmax(logits, axis=-1) == labels[idx]) | ~trained[idx]
            correct[idx[: min(b, n - start)]] = hit.all(axis=1)[: min(b, n - start)]
        return correct

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        correct = self._correct()
        logs["val_answer_match"] = float(correct.mean())
        for category in sorted(set(self.categories)):
            logs[f"val_answer_match/{category}"] = float(correct[self.categories == category].mean())
