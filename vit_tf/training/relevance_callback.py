"""A callback that writes relevance maps (``vit_tf.models.explain``) to TensorBoard each epoch.

``train()`` adds it for the first ``train.relevance_maps`` sample records (default 1: it costs
one generation and one Jacobian per record each epoch); or pass it to ``model.fit`` yourself:

    >>> cb = RelevanceMaps(records[:2], log_dir="runs/x/logs/relevance")
    >>> model.fit(ds, epochs=3, callbacks=[cb])      # TensorBoard: IMAGES tab, tag relevance/<id>
"""

import keras
import tensorflow as tf

from vit_tf.data.template import strip_image_placeholder


class RelevanceMaps(keras.callbacks.Callback):
    """Each epoch, explain the model's answer to the first question of a few records."""

    def __init__(self, records, log_dir, max_new_tokens=8):
        super().__init__()
        self.records = records
        self.writer = tf.summary.create_file_writer(log_dir)
        self.max_new_tokens = max_new_tokens

    def on_epoch_end(self, epoch, logs=None):
        from vit_tf.models.explain import explain, relevance_summary

        with self.writer.as_default(), tf.summary.record_if(True):  # see telemetry.TensorBoard
            for record in self.records:
                prompt = strip_image_placeholder(record["conversations"][0]["value"])
                result = explain(self.model, record["image_path"], prompt, self.max_new_tokens)
                relevance_summary(f"relevance/{record['id']}", result, step=epoch + 1)
        self.writer.flush()
