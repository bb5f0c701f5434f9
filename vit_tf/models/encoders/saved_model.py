"""A TensorFlow SavedModel (e.g. a downloaded TF-Hub module) as an image encoder, Keras 3 style."""

import os

import keras
from keras import layers, ops

from vit_tf.models.encoders.base import ImageEncoder
from vit_tf.registry import IMAGE_ENCODERS


@IMAGE_ENCODERS.register("saved_model")
@keras.saving.register_keras_serializable(package="vit_tf")
class SavedModelImageEncoder(ImageEncoder):
    """Wraps ``keras.layers.TFSMLayer`` around a SavedModel folder (a TF-Hub handle must be
    downloaded first: nothing is fetched at run time).

    The endpoint must take float images (batch, S, S, 3) and return image features: a sequence
    (batch, tokens, dim), a feature map (batch, h, w, dim) that is flattened to tokens, or a
    pooled vector (batch, dim) that becomes one token. A dict output needs ``output_key``.

    Args:
        image_size: input side S.
        handle: local SavedModel folder. It must still exist when a saved ``.keras`` model is
            loaded (``TFSMLayer`` reloads the graph; the weights come from the ``.keras`` file).
        endpoint: serving endpoint name (``"serving_default"`` for ``tf.saved_model.save``
            exports, ``"serve"`` for ``model.export``).
        output_key: which output of a dict-returning endpoint to use.
        scale: images are multiplied by this first (1/255 for encoders expecting [0, 1]).
        trainable: whether the SavedModel's variables are trained.
    """

    def __init__(self, image_size, handle="", endpoint="serving_default", output_key="",
                 scale=1.0 / 255.0, trainable=True, **kwargs):
        super().__init__(image_size, trainable=trainable, **kwargs)
        if not handle:
            raise ValueError("the saved_model image encoder needs model.encoder.handle "
                             "(a local SavedModel folder)")
        if not os.path.isdir(handle) or not os.path.exists(os.path.join(handle, "saved_model.pb")):
            raise FileNotFoundError(f"model.encoder.handle {handle!r}: not a SavedModel folder "
                                    "(no saved_model.pb); download TF-Hub handles first")
        self.handle = handle
        self.endpoint = endpoint
        self.output_key = output_key
        self.scale = scale
        self.saved = layers.TFSMLayer(handle, call_endpoint=endpoint, trainable=trainable,
                                      name="saved_model")
        probe = self._tokens(self.saved(ops.zeros((1, image_size, image_size, 3))))
        self.num_tokens, self.hidden_dim = int(probe.shape[1]), int(probe.shape[2])

    @classmethod
    def from_section(cls, section, *, image_size, name="image_encoder"):
        """``section`` fields: handle, endpoint, output_key, trainable (images scaled to [0, 1])."""
        return cls(image_size, handle=section.handle, endpoint=section.endpoint,
                   output_key=section.output_key, trainable=section.trainable, name=name)

    def _tokens(self, out):
        if isinstance(out, dict):
            if self.output_key not in out:
                raise ValueError(f"SavedModel {self.handle!r} endpoint {self.endpoint!r} returns "
                                 f"{sorted(out)}; set model.encoder.output_key to one of them")
            out = out[self.output_key]
        if len(out.shape) == 2:
            return out[:, None, :]  # pooled vector -> one token (batch, 1, dim)
        if len(out.shape) == 4:
            return ops.reshape(out, (-1, out.shape[1] * out.shape[2], out.shape[3]))  # (b, h*w, d)
        return out

    def build(self, input_shape):
        self.built = True

    def call(self, images):
        return self._tokens(self.saved(ops.cast(images, "float32") * self.scale))

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "handle": self.handle,
                "endpoint": self.endpoint, "output_key": self.output_key, "scale": self.scale}
