"""Callbacks of the contrastive stage: held-out retrieval each epoch, the similarity matrix of a
fixed batch as a TensorBoard image, and a wall-clock budget.

``RetrievalMonitor`` adds ``val_i2t_r1``, ``val_i2t_r5``, ``val_t2i_r1``, ``val_t2i_r5`` to
the epoch logs (so they reach the history and, placed before ``TensorBoard``, the scalars) and
writes ``similarity/fixed_batch`` (rows: images, columns: their texts, bright = similar; a
trained model shows a bright diagonal) under ``LOG_DIR/similarity``.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from vit_tf.models.contrastive.retrieval import positives_from_ids, recall_at_k, similarity_image


class RetrievalMonitor(keras.callbacks.Callback):
    """Args: ``images`` (n, S, S, 3), ``texts`` (n,) held-out pairs (their ``image_ids`` (n,)
    mark pairs of one image), ``log_dir`` for the image, ``matrix_size`` pairs in the picture."""

    def __init__(self, images, texts, image_ids, log_dir=None, matrix_size=32):
        super().__init__()
        self.images = np.asarray(images)
        self.texts = list(texts)
        self.positives = positives_from_ids(image_ids, self.texts)
        self.matrix_size = min(matrix_size, len(self.texts))
        self.writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        x = self.model.encode_images(self.images)
        y = self.model.encode_texts(self.texts)
        similarity = x @ y.T                                    # (n, n)
        metrics = recall_at_k(similarity, self.positives, (1, 5))
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in metrics.items()})
        if self.writer is not None:
            k = self.matrix_size
            with self.writer.as_default(), tf.summary.record_if(True):
                tf.summary.image("similarity/fixed_batch",
                                 similarity_image(similarity[:k, :k])[None], step=epoch)
                for name, value in metrics.items():
                    tf.summary.scalar(f"retrieval/{name}", value, step=epoch)
            self.writer.flush()


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the first epoch end past ``max_seconds`` of training: ``spent`` seconds
    before this process (a resumed run's finished epochs) plus those since the first ``fit``
    it saw (a resume from mid-epoch runs two)."""

    def __init__(self, max_seconds, spent=0.0):
        super().__init__()
        self.max_seconds = max_seconds
        self.spent = spent
        self.stopped_at = None
        self._start = None

    def on_train_begin(self, logs=None):
        if self._start is None:
            self._start = time.perf_counter() - self.spent

    def on_epoch_end(self, epoch, logs=None):
        if self.max_seconds and time.perf_counter() - self._start >= self.max_seconds:
            self.model.stop_training = True
            self.stopped_at = epoch + 1
