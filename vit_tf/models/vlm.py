"""The vision-language model: image encoder -> projector -> language decoder -> logits."""

import keras
import tensorflow as tf
from keras import ops

from vit_tf.models.task import TaskMixin

# Metrics of training only, dropped from evaluation logs (no ``val_grad_norm``): the
# optimizer's ``grad_norm`` (vit_tf.training.grad_norm) and the ``StepCounts`` sums.
TRAIN_ONLY_METRICS = ("grad_norm", "examples", "text_tokens", "padded_tokens")


@keras.saving.register_keras_serializable(package="vit_tf")
class VisionLanguageModel(TaskMixin, keras.Model):
    """A Keras functional model composed of three parts passed as objects, and the task around
    it: with a ``preprocessor`` (``vit_tf.data.preprocessor.VisionLanguagePreprocessor``) it
    trains on raw examples, generates from raw images and prompts and saves as a preset
    (``vit_tf.models.task``).

    ``image_encoder`` is a ``vit_tf.models.encoders.ImageEncoder`` and ``decoder`` a
    ``vit_tf.models.decoders.LanguageDecoder``: their contracts are all this class relies on.
    The decoder receives the projected image tokens and its fusion decides how they enter:
    concatenated before the text embeddings (LLaVA, the default), resampled, cross-attended or
    attention-pooled (``vit_tf.layers.fusion``). It predicts the next text token at every text
    position.

    Inputs (dict):
        images        (batch, image_size, image_size, 3) float32 in [0, 255]
        token_ids     (batch, text_len) int32
        padding_mask  (batch, text_len) bool
    Output: logits (batch, text_len, vocabulary_size) float32.

    Example:
        >>> task = build_model(config, preprocessor=preprocessor)
        >>> task.compile(); task.fit(raw_ds.batch(16), epochs=1)
        >>> task.generate("scene.png", "What colour is the circle?")
        >>> task.save_to_preset("my_model"); VisionLanguageModel.from_preset("my_model")
    """

    def __init__(self, image_encoder, projector, decoder, image_size, preprocessor=None,
                 **kwargs):
        images = keras.Input((image_size, image_size, 3), name="images")
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
        image_tokens = projector(image_encoder(images))  # (batch, image_tokens, hidden_dim)
        logits = decoder(token_ids, image_tokens=image_tokens, padding_mask=padding_mask)
        super().__init__(
            inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
            outputs=logits,
            **kwargs,
        )
        self.image_encoder = image_encoder
        self.projector = projector
        self.decoder = decoder
        self.image_size = image_size
        if preprocessor is not None and preprocessor.image_size != image_size:
            raise ValueError(f"the preprocessor makes {preprocessor.image_size}px images but the "
                             f"model takes {image_size}px")
        self.preprocessor = preprocessor
        self.step_counts = StepCounts(name="step_counts")
        self.token_loss = TokenWeightedLoss(name="loss")
        # A training setting, not part of the model (train.batch_slices; compile_model sets it)
        self.batch_slices = 1

    def call(self, inputs, training=None, mask=None):
        """The functional graph. In training with ``batch_slices`` k > 1 and a static batch
        divisible by k, the batch runs as k independent slices whose logits are concatenated:
        the same values and gradients, but XLA gets k independent chains of smaller ops to
        run side by side on the cores (the issue-16 ``fit`` step on 2 CPU cores: 182 -> 165 ms
        with 2 slices, ``benchmarks/step_profile.py``). Other batches run whole."""
        k = self.batch_slices
        batch = inputs["images"].shape[0] if isinstance(inputs, dict) else None
        if not training or k <= 1 or batch is None or batch % k:
            return super().call(inputs, training=training, mask=mask)
        n = batch // k
        parts = [{name: value[i * n:(i + 1) * n] for name, value in inputs.items()}
                 for i in range(k)]                            # k x (batch / k, ...)
        return ops.concatenate([super(VisionLanguageModel, self).call(
            part, training=training, mask=mask) for part in parts], axis=0)   # (batch, T, V)

    # Training uses Keras's stock train_step (vit_tf.training.optim.compile_model adds the
    # optimizer's grad_norm as a compiled metric); only these public hooks are overridden.
    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras's metrics plus ``StepCounts`` of the batch's ``padding_mask``."""
        self.step_counts.update_state(x["padding_mask"])
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras's loss; also adds it to ``TokenWeightedLoss``, which reports the logs' ``loss``.

        Keras's own tracker weights each batch's mean by its number of ROWS, so an epoch's
        ``loss`` would be the mean of batch means; weighted by the batch's trained tokens (the
        sum of ``sample_weight``) it is the mean over every trained token of the epoch, the
        quantity each batch's loss is a mean of. The gradients are unchanged.
        """
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if loss is not None and y is not None:
            tokens = (ops.sum(ops.cast(sample_weight, "float32")) if sample_weight is not None
                      else ops.cast(ops.size(y), "float32"))
            # Per replica; Keras scaled the loss by 1/replicas for the gradient sum: undo it.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self.token_loss.update_state(ops.cast(loss, "float32") * replicas, tokens)
        return loss

    @property
    def metrics(self):
        """Keras's metrics with ``token_loss`` in the place of its row-weighted loss tracker."""
        metrics = super().metrics
        tracker = getattr(self, "_loss_tracker", None)
        if tracker is None or not any(m is tracker for m in metrics):
            return metrics
        return [self.token_loss if m is tracker else m for m in metrics
                if m is not self.token_loss]

    def test_step(self, data):
        """Keras's test step; the training-only metrics are left out (no ``val_grad_norm``)."""
        logs = super().test_step(data)
        return {k: v for k, v in logs.items() if k not in TRAIN_ONLY_METRICS}

    @property
    def num_image_tokens(self):
        return self.image_encoder.num_tokens

    def encode_images(self, images, training=False):
        """(batch, S, S, 3) -> projected image tokens (batch, image_tokens, hidden_dim)."""
        return self.projector(self.image_encoder(images, training=training))

    @property
    def num_prefix_tokens(self):
        """Embeddings placed before the text: the image tokens, the resampled ones, or none."""
        return self.decoder.num_prefix_tokens(self.num_image_tokens)

    def prefill(self, images, token_ids, cache, image_tokens=None, padding_mask=None):
        """Fill the cache with the image prefix + ``token_ids``; returns (logits, cache).

        ``image_tokens`` (from ``encode_images``) avoid encoding twice; ``padding_mask`` marks
        the prompt tokens to consume (state-based caches such as the LSTM's stop there).
        """
        if image_tokens is None:
            image_tokens = self.encode_images(images)
        return self.decoder.call_with_cache(
            token_ids, cache, 0, image_tokens=image_tokens, padding_mask=padding_mask
        )

    def prefix_lengths(self, prompt_ids):
        """(batch,) bidirectional prefix of each prompt (prefix embeddings included), or None
        when the decoder attends causally; pass it to ``call_with_cache`` after the prefill."""
        return self.decoder.prefix_lengths(prompt_ids, self.num_prefix_tokens)

    def call_with_cache(self, token_ids, cache, text_index, image_tokens=None,
                        prefix_lengths=None):
        """Logits of ``token_ids`` (batch, 1) at text position ``text_index``, updating the cache.

        Read fusions (cross_attention, attention_pooling) need ``image_tokens`` at every step;
        a prefix-LM decoder needs ``prefix_lengths(prompt_ids)``.
        """
        fusion = self.decoder.fusion
        if image_tokens is None and fusion.uses_reads:
            raise ValueError(f"the {type(fusion).__name__} decoder reads the image tokens at every "
                             "step: pass image_tokens=model.encode_images(images)")
        if image_tokens is None and getattr(self.decoder, "needs_image_tokens_each_step", False):
            raise ValueError("the decoder's LoRA applies to every position of a sequence with an "
                             "image (train.lora.tokens=with_image): pass image_tokens at every "
                             "step")
        index = text_index + self.num_prefix_tokens
        return self.decoder.call_with_cache(token_ids, cache, index, image_tokens=image_tokens,
                                            include_prefix=False, prefix_lengths=prefix_lengths)

    def init_cache(self, batch_size, text_length):
        return self.decoder.init_cache(batch_size, self.num_prefix_tokens + text_length)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "projector": keras.saving.serialize_keras_object(self.projector),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "image_size": self.image_size,
            "preprocessor": (None if self.preprocessor is None
                             else keras.saving.serialize_keras_object(self.preprocessor)),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "projector", "decoder", "preprocessor"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


class StepCounts(keras.metrics.Metric):
    """Epoch sums of examples, real text tokens and padded text positions (from padding_mask),
    for ``vit_tf.training.telemetry.StepTelemetry``'s throughput."""

    def __init__(self, name="step_counts", **kwargs):
        super().__init__(name=name, **kwargs)
        self.counts = {k: self.add_variable((), initializer="zeros", name=k, dtype="float32")
                       for k in ("examples", "text_tokens", "padded_tokens")}

    def update_state(self, padding_mask):
        mask = ops.cast(padding_mask, "float32")                   # (batch, text_len)
        self.counts["examples"].assign_add(ops.cast(ops.shape(mask)[0], "float32"))
        self.counts["text_tokens"].assign_add(ops.sum(mask))
        self.counts["padded_tokens"].assign_add(ops.cast(ops.size(mask), "float32"))

    def result(self):
        return {k: v * 1.0 for k, v in self.counts.items()}  # values, not variable references

    def reset_state(self):
        for v in self.counts.values():
            v.assign(0.0)


class TokenWeightedLoss(keras.metrics.Metric):
    """Epoch mean of the loss with each batch weighted by its trained tokens (named ``loss``:
    it is the logs' ``loss`` and ``val_loss``)."""

    def __init__(self, name="loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total", dtype="float32")
        self.count = self.add_variable((), initializer="zeros", name="count", dtype="float32")

    def update_state(self, loss, tokens):
        self.total.assign_add(loss * tokens)
        self.count.assign_add(tokens)

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


def count_params(layer):
    return int(sum(ops.size(w) for w in layer.weights))
