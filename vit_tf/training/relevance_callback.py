"""A callback that writes relevance maps (``vit_tf.inference.explain``) to TensorBoard each epoch.

``train()`` adds it for the first ``train.relevance_maps`` sample records (default 1: it costs
one generation and one Jacobian per record each epoch); or pass it to ``model.fit`` yourself:

    >>> cb = RelevanceMaps(records[:2], tokenizer, image_size=64, log_dir="runs/x/logs/relevance")
    >>> model.fit(ds, epochs=3, callbacks=[cb])      # TensorBoard: IMAGES tab, tag relevance/<id>
"""

import keras
import numpy as np
import tensorflow as tf

from vit_tf.data.pipeline import load_image
from vit_tf.data.template import strip_image_placeholder


class RelevanceMaps(keras.callbacks.Callback):
    """Each epoch, explain the model's answer to the first question of a few records."""

    def __init__(self, records, tokenizer, image_size, log_dir, max_new_tokens=8):
        super().__init__()
        self.records = records
        self.tokenizer = tokenizer
        self.images = [load_image(r["image_path"], image_size).numpy() for r in records]
        self.writer = tf.summary.create_file_writer(log_dir)
        self.max_new_tokens = max_new_tokens

    def on_epoch_end(self, epoch, logs=None):
        from vit_tf.inference.explain import explain, relevance_summary

        with self.writer.as_default(), tf.summary.record_if(True):  # see telemetry.TensorBoard
            for record, image in zip(self.records, self.images):
                prompt = strip_image_placeholder(record["conversations"][0]["value"])
                result = explain(self.model, self.tokenizer, np.asarray(image), prompt,
                                 self.max_new_tokens)
                relevance_summary(f"relevance/{record['id']}", result, step=epoch + 1)
        self.writer.flush()
