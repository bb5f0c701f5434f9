"""CNN image encoders from ``keras.applications`` (the design's ResNet50 / VGG16): the last
feature map becomes a sequence of image tokens."""

import keras
from keras import ops

from vit_tf.models.encoders.base import ImageEncoder
from vit_tf.registry import IMAGE_ENCODERS

# keras.applications' "caffe" preprocessing for ResNet50 and VGG16: RGB -> BGR, minus the mean.
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


class KerasApplicationEncoder(ImageEncoder):
    """Base for CNN encoders: (batch, S, S, 3) in [0, 255] -> (batch, (S/32)^2, channels).

    Args:
        image_size: input side S (>= 32; the feature map is S/32 on a side).
        weights: ``""`` (random initialisation, the default) or a local weights file for the
            headless network (``include_top=False``). Nothing is downloaded. The weights file is
            read when the encoder is created from config; a saved ``.keras`` model carries the
            weights itself and does not need the file again.
        trainable: ``False`` freezes the CNN (it then runs in inference mode).
    """

    application = None  # set by subclasses: a keras.applications constructor
    channels = None

    def __init__(self, image_size, weights="", trainable=True, **kwargs):
        if image_size < 32:
            raise ValueError(f"{type(self).__name__} needs image_size >= 32, got {image_size}")
        super().__init__(image_size, trainable=trainable, **kwargs)
        self.hidden_dim = self.channels
        self.weights_path = weights
        self.network = self.application(
            include_top=False, weights=weights or None, input_shape=(image_size, image_size, 3)
        )
        self.network.trainable = trainable
        self.grid = self.network.output_shape[1]
        self.num_tokens = self.grid * self.network.output_shape[2]

    @classmethod
    def from_section(cls, section, *, image_size, name="image_encoder"):
        """``section`` fields: weights (a local file, or "" for random) and trainable."""
        return cls(image_size, weights=section.weights, trainable=section.trainable, name=name)

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=None):
        bgr = ops.flip(ops.cast(images, self.compute_dtype), axis=-1)
        x = bgr - ops.convert_to_tensor(_CAFFE_BGR_MEAN, self.compute_dtype)
        features = self.network(x, training=training if self.trainable else False)  # (b, h, w, C)
        return ops.reshape(features, (-1, self.num_tokens, self.channels))  # (batch, h*w, C)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "weights": self.weights_path}

    @classmethod
    def from_config(cls, config):
        # A reloaded model takes its weights from the .keras file, not from ``weights``.
        return cls(**{**config, "weights": ""})


@IMAGE_ENCODERS.register("resnet50")
@keras.saving.register_keras_serializable(package="vit_tf")
class ResNet50Encoder(KerasApplicationEncoder):
    """``keras.applications.ResNet50`` without its head: 2048-d tokens, one per 32x32 pixels."""

    application = staticmethod(keras.applications.ResNet50)
    channels = 2048


@IMAGE_ENCODERS.register("vgg16")
@keras.saving.register_keras_serializable(package="vit_tf")
class VGG16Encoder(KerasApplicationEncoder):
    """``keras.applications.VGG16`` without its head: 512-d tokens, one per 32x32 pixels."""

    application = staticmethod(keras.applications.VGG16)
    channels = 512
