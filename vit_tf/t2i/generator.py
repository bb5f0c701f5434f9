"""``MaskGITTextToImage``: the masked-token generator as a task (VQ-VAE + MaskGIT + prompts).

    caption -> TextToImagePreprocessor -> MaskGITBackbone (decoded by maskgit_decode) -> codes
            -> VQVAE.decode -> image

Training (``model.fit``, Keras's stock step) sees the backbone only: inputs ``{"token_ids",
"padding_mask", "image_tokens"}`` (``vit_tf.t2i.maskgit.masked_examples``), labels the codes,
sample weights the masked positions; the image tokenizer is trained before, frozen here, and
saved with the task so that a preset generates images on its own.

Example::

    task = MaskGITTextToImage(backbone, vqvae, preprocessor)
    task.compile(); task.fit(masked_examples(ds, 64, backbone.mask_id).batch(64))
    task.generate("a large red circle.", num_steps=12, guidance_scale=3.0, seed=0)
"""

import keras

from vit_tf.t2i.samplers import maskgit_decode
from vit_tf.t2i.task import TextToImage


def masked_token_loss():
    """Cross-entropy over masked positions only: sum(loss * w) / sum(w)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                      reduction="mean_with_sample_weight")


@keras.saving.register_keras_serializable(package="vit_tf")
class MaskGITTextToImage(TextToImage):
    """Args: backbone (``MaskGITBackbone``), image_tokenizer (``VQVAE``), preprocessor,
    num_steps / guidance_scale (generation defaults), temperature (code sampling),
    randomness (annealed Gumbel noise on the confidence that orders the reveals)."""

    def __init__(self, backbone, image_tokenizer, preprocessor=None, num_steps=12,
                 guidance_scale=3.0, temperature=1.0, randomness=4.5, **kwargs):
        super().__init__(preprocessor=preprocessor, num_steps=num_steps,
                         guidance_scale=guidance_scale, **kwargs)
        if backbone.num_codes != image_tokenizer.num_codes:
            raise ValueError(f"the backbone predicts {backbone.num_codes} codes but the image "
                             f"tokenizer has {image_tokenizer.num_codes}")
        if backbone.num_image_tokens != image_tokenizer.num_tokens:
            raise ValueError(f"the backbone takes {backbone.num_image_tokens} image tokens but "
                             f"the image tokenizer makes {image_tokenizer.num_tokens}")
        self.backbone = backbone
        self.image_tokenizer = image_tokenizer
        self.image_tokenizer.trainable = False
        self.temperature, self.randomness = float(temperature), float(randomness)
        self.built = True   # every part is built at construction

    def call(self, inputs, training=False):
        return self.backbone(inputs, training=training)

    def compile(self, optimizer="adamw", loss="auto", learning_rate=1e-3, weight_decay=0.01,
                jit_compile=True, **kwargs):
        """AdamW (global clipnorm 1) and the masked-token loss by default."""
        if optimizer == "adamw":
            optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay,
                                               global_clipnorm=1.0)
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings"])
        if loss == "auto":
            loss = masked_token_loss()
        kwargs.setdefault("weighted_metrics", [keras.metrics.SparseCategoricalAccuracy(
            name="token_accuracy")])
        super().compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile, **kwargs)

    def traced_settings(self):
        return (self.temperature, self.randomness)

    def sample(self, token_ids, padding_mask, negative_ids, negative_mask, seeds,
               guidance_scale, num_steps):
        codes = maskgit_decode(self.backbone, token_ids, padding_mask, negative_ids,
                               negative_mask, seeds, guidance_scale, num_steps,
                               self.temperature, self.randomness)             # (B, N)
        return self.image_tokenizer.decode(codes)                             # (B, S, S, 3)

    def get_config(self):
        return {**super().get_config(),
                "backbone": keras.saving.serialize_keras_object(self.backbone),
                "image_tokenizer": keras.saving.serialize_keras_object(self.image_tokenizer),
                "temperature": self.temperature, "randomness": self.randomness}

    @classmethod
    def from_config(cls, config):
        return cls(**cls.deserialize_parts(config, "backbone", "image_tokenizer"))
