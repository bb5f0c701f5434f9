"""The vision-language model: image encoder -> projector -> language decoder -> logits."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vit_tf")
class VisionLanguageModel(keras.Model):
    """A Keras functional model composed of three parts passed as objects.

    Projected image tokens are concatenated before the text embeddings (LLaVA's fusion) and the
    decoder predicts the next text token at every text position.

    Inputs (dict):
        images        (batch, image_size, image_size, 3) float32 in [0, 255]
        token_ids     (batch, text_len) int32
        padding_mask  (batch, text_len) bool
    Output: logits (batch, text_len, vocabulary_size) float32.

    Example:
        >>> model = build_model(ExperimentConfig(), vocabulary_size=100, max_text_length=32)
        >>> model.save("model.keras"); keras.saving.load_model("model.keras")
    """

    def __init__(self, image_encoder, projector, decoder, image_size, **kwargs):
        images = keras.Input((image_size, image_size, 3), name="images")
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
        image_tokens = projector(image_encoder(images))  # (batch, image_tokens, hidden_dim)
        logits = decoder(token_ids, prefix_embeddings=image_tokens, padding_mask=padding_mask)
        super().__init__(
            inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
            outputs=logits,
            **kwargs,
        )
        self.image_encoder = image_encoder
        self.projector = projector
        self.decoder = decoder
        self.image_size = image_size

    @property
    def num_image_tokens(self):
        return self.image_encoder.compute_output_shape((None, self.image_size, self.image_size, 3))[1]

    def encode_images(self, images, training=False):
        """(batch, S, S, 3) -> projected image tokens (batch, image_tokens, hidden_dim)."""
        return self.projector(self.image_encoder(images, training=training))

    def prefill(self, images, token_ids, cache):
        """Fill the cache with image tokens + ``token_ids``; returns (logits, cache)."""
        return self.decoder.call_with_cache(
            token_ids, cache, 0, prefix_embeddings=self.encode_images(images)
        )

    def prefix_lengths(self, prompt_ids):
        """(batch,) bidirectional prefix of each prompt (image tokens included), or None when
        the decoder attends causally; pass it to ``call_with_cache`` after the prefill."""
        if getattr(self.decoder, "attention", "causal") != "prefix":
            return None
        return self.decoder.prefix_lengths(prompt_ids, self.num_image_tokens)

    def call_with_cache(self, token_ids, cache, text_index, prefix_lengths=None):
        """Logits of ``token_ids`` (batch, 1) at text position ``text_index``, updating the cache.

        ``prefix_lengths``: ``prefix_lengths(prompt_ids)`` for a prefix-LM decoder.
        """
        kwargs = {} if prefix_lengths is None else {"prefix_lengths": prefix_lengths}
        return self.decoder.call_with_cache(
            token_ids, cache, text_index + self.num_image_tokens, **kwargs
        )

    def init_cache(self, batch_size, text_length):
        return self.decoder.init_cache(batch_size, self.num_image_tokens + text_length)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "projector": keras.saving.serialize_keras_object(self.projector),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "image_size": self.image_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "projector", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def count_params(layer):
    return int(sum(ops.size(w) for w in layer.weights))
