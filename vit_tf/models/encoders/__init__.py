"""Image encoders: images (batch, S, S, 3) in [0, 255] -> image tokens (batch, tokens, dim).

Every encoder is an ``ImageEncoder`` (``base``); importing this package registers them in
``vit_tf.registry.IMAGE_ENCODERS``: ``vit``, ``resnet50``, ``vgg16``, ``efficientnet_lite0``,
``clip``, ``siglip``, ``saved_model``.
"""

from vit_tf.models.encoders.base import ImageEncoder
from vit_tf.models.encoders.cnn import KerasApplicationEncoder, ResNet50Encoder, VGG16Encoder
from vit_tf.models.encoders.efficientnet_lite import EfficientNetLite0Encoder
from vit_tf.models.encoders.hub_vision import (CLIPImageEncoder, KerasHubVisionEncoder,
                                               SigLIPImageEncoder)
from vit_tf.models.encoders.saved_model import SavedModelImageEncoder
from vit_tf.models.encoders.vit import ViTEncoder

__all__ = ["CLIPImageEncoder", "EfficientNetLite0Encoder", "ImageEncoder",
           "KerasApplicationEncoder", "KerasHubVisionEncoder", "ResNet50Encoder",
           "SavedModelImageEncoder", "SigLIPImageEncoder", "VGG16Encoder", "ViTEncoder"]
