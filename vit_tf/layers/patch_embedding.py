"""Patch embedding: image -> sequence of patch vectors with positions (learned or 2D sin-cos)."""

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="vit_tf")
class PatchEmbedding(layers.Layer):
    """Split an image into patches and embed them, optionally through a small conv stem.

    The conv stem (two stride-2 3x3 convolutions, then a patch convolution for the rest of the
    stride) trains much faster than a bare linear patchify on small data (Xiao et al. 2021,
    "Early convolutions help transformers see better").

    Args:
        image_size: input side in pixels.
        patch_size: side of one patch; ``image_size`` must be divisible by it.
        hidden_dim: output width.
        conv_stem: use the conv stem (needs ``patch_size`` divisible by 4).
        sincos_positions: fixed 2D sine-cosine positions (MAE / big_vision's ``sincos2d``)
            instead of a learned table: a strong spatial signal from the first step.
        stem_layers: extra stride-1 3x3 convolutions at the end of the stem (wider receptive
            field per token, so an object split across patch borders is still seen whole).
        stem_norm: batch-normalize every stem convolution (conv -> BatchNorm -> GELU, as in
            ResNets): the stem's features keep a stable scale while the encoder learns.

    Call: ``images`` (batch, image_size, image_size, 3) float32 in [0, 255]
        -> (batch, (image_size / patch_size) ** 2, hidden_dim)
    """

    def __init__(self, image_size, patch_size, hidden_dim, conv_stem=False, stem_layers=0,
                 sincos_positions=False, stem_norm=False, **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        if conv_stem and patch_size % 4:
            raise ValueError(f"conv_stem needs patch_size divisible by 4, got {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.conv_stem = conv_stem
        self.stem_layers = stem_layers
        self.sincos_positions = sincos_positions
        self.stem_norm = stem_norm
        if (stem_layers or stem_norm) and not conv_stem:
            raise ValueError("stem_layers and stem_norm need conv_stem=True")
        self.num_patches = (image_size // patch_size) ** 2
        self.rescale = layers.Rescaling(2.0 / 255.0, offset=-1.0, name="rescale")
        self.stem = []
        stride = patch_size
        if conv_stem:
            width = max(hidden_dim // 4, 8)
            specs = [(width, 2), (2 * width, 2)] + [(2 * width, 1)] * stem_layers
            for i, (filters, strides) in enumerate(specs):
                self.stem.append(layers.Conv2D(
                    filters, 3, strides=strides, padding="same", use_bias=not stem_norm,
                    activation=None if stem_norm else "gelu", name=f"stem_{i}",
                ))
                if stem_norm:
                    self.stem.append(layers.BatchNormalization(name=f"stem_norm_{i}"))
                    self.stem.append(layers.Activation("gelu", name=f"stem_act_{i}"))
            stride = patch_size // 4
        self.patchify = layers.Conv2D(hidden_dim, stride, strides=stride, name="patchify")
        self.position_embedding = None
        if not sincos_positions:
            self.position_embedding = layers.Embedding(self.num_patches, hidden_dim, name="positions")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.stem:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.patchify.build(shape)
        if self.position_embedding is not None:
            self.position_embedding.build((self.num_patches,))
        self.built = True

    def call(self, images, training=None):
        x = self.rescale(images)
        for layer in self.stem:
            x = layer(x, training=training) if self.stem_norm else layer(x)
        x = self.patchify(x)                                   # (batch, grid, grid, hidden_dim)
        x = ops.reshape(x, (-1, self.num_patches, self.hidden_dim))  # (batch, patches, hidden_dim)
        if self.position_embedding is None:
            positions = ops.convert_to_tensor(sincos_2d(self.image_size // self.patch_size,
                                                        self.hidden_dim), dtype=x.dtype)
        else:
            positions = self.position_embedding(ops.arange(self.num_patches))
        return x + positions[None]  # (batch, patches, hidden_dim)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_patches, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_dim=self.hidden_dim,
            conv_stem=self.conv_stem,
            stem_layers=self.stem_layers,
            sincos_positions=self.sincos_positions,
            stem_norm=self.stem_norm,
        )
        return config


def sincos_2d(grid, dim, temperature=10000.0):
    """Fixed 2D sine-cosine position table, (grid * grid, dim); a quarter of dim per sin/cos x/y."""
    if dim % 4:
        raise ValueError(f"sincos positions need hidden_dim divisible by 4, got {dim}")
    y, x = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    omega = 1.0 / temperature ** (np.arange(dim // 4) / (dim // 4 - 1 or 1))
    y = y.reshape(-1)[:, None] * omega[None]
    x = x.reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1).astype("float32")
