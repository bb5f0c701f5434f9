"""Patch embedding: image -> sequence of patch vectors with learned positions."""

import keras
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

    Call: ``images`` (batch, image_size, image_size, 3) float32 in [0, 255]
        -> (batch, (image_size / patch_size) ** 2, hidden_dim)
    """

    def __init__(self, image_size, patch_size, hidden_dim, conv_stem=False, **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        if conv_stem and patch_size % 4:
            raise ValueError(f"conv_stem needs patch_size divisible by 4, got {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.conv_stem = conv_stem
        self.num_patches = (image_size // patch_size) ** 2
        self.rescale = layers.Rescaling(2.0 / 255.0, offset=-1.0, name="rescale")
        self.stem = []
        stride = patch_size
        if conv_stem:
            width = max(hidden_dim // 4, 8)
            self.stem = [
                layers.Conv2D(width, 3, strides=2, padding="same", activation="gelu", name="stem_0"),
                layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="gelu", name="stem_1"),
            ]
            stride = patch_size // 4
        self.patchify = layers.Conv2D(hidden_dim, stride, strides=stride, name="patchify")
        self.position_embedding = layers.Embedding(self.num_patches, hidden_dim, name="positions")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.stem:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.patchify.build(shape)
        self.position_embedding.build((self.num_patches,))
        self.built = True

    def call(self, images):
        x = self.rescale(images)
        for layer in self.stem:
            x = layer(x)
        x = self.patchify(x)                                   # (batch, grid, grid, hidden_dim)
        x = ops.reshape(x, (-1, self.num_patches, self.hidden_dim))  # (batch, patches, hidden_dim)
        return x + self.position_embedding(ops.arange(self.num_patches))[None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_patches, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_dim=self.hidden_dim,
            conv_stem=self.conv_stem,
        )
        return config
