"""The vit_tf Vision Transformer image encoder: pixels -> a sequence of image tokens."""

import keras
import keras_hub
from keras import layers

from vit_tf.layers.patch_embedding import PatchEmbedding
from vit_tf.models.blocks import block_forward, fast_path_supported
from vit_tf.models.encoders.base import ImageEncoder
from vit_tf.registry import IMAGE_ENCODERS


@IMAGE_ENCODERS.register("vit")
@keras.saving.register_keras_serializable(package="vit_tf")
class ViTEncoder(ImageEncoder):
    """Patch embedding (optional conv stem) + pre-norm Transformer encoder blocks.

    Blocks are keras-hub ``TransformerEncoder`` layers (bidirectional self-attention).

    Args follow keras-hub names: ``image_size``, ``patch_size``, ``hidden_dim``, ``num_layers``,
    ``num_heads``, ``intermediate_dim``, ``dropout``; ``conv_stem``,
    ``stem_layers``, ``stem_norm`` and ``sincos_positions`` as in ``PatchEmbedding``.

    Call: ``images`` (batch, image_size, image_size, 3) float32 in [0, 255]
        -> (batch, num_tokens, hidden_dim), num_tokens = (image_size / patch_size) ** 2

    Example:
        >>> encoder = ViTEncoder(image_size=32, patch_size=8, hidden_dim=16, num_layers=1,
        ...                      num_heads=2, intermediate_dim=32)
        >>> encoder(keras.ops.zeros((2, 32, 32, 3))).shape
        (2, 16, 16)
    """

    def __init__(self, image_size, patch_size, hidden_dim, num_layers, num_heads,
                 intermediate_dim, conv_stem=False, stem_layers=0, sincos_positions=False, dropout=0.0,
                 stem_norm=False, **kwargs):
        super().__init__(image_size, **kwargs)
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.conv_stem = conv_stem
        self.stem_layers = stem_layers
        self.sincos_positions = sincos_positions
        self.stem_norm = stem_norm
        self.dropout = dropout
        self.patch_embedding = PatchEmbedding(
            image_size, patch_size, hidden_dim, conv_stem=conv_stem, stem_layers=stem_layers,
            sincos_positions=sincos_positions, stem_norm=stem_norm, name="patch_embedding"
        )
        self.num_tokens = self.patch_embedding.num_patches
        self.blocks = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim, num_heads, dropout=dropout, activation="gelu",
                normalize_first=True, name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = layers.LayerNormalization(epsilon=1e-6, name="final_norm")

    @classmethod
    def from_section(cls, section, *, image_size, name="image_encoder"):
        """``section`` fields: patch_size, hidden_dim, num_layers, num_heads, intermediate_dim,
        conv_stem, stem_layers, sincos_positions, stem_norm, dropout (random initialisation)."""
        return cls(image_size=image_size, patch_size=section.patch_size,
                   hidden_dim=section.hidden_dim, num_layers=section.num_layers,
                   num_heads=section.num_heads, intermediate_dim=section.intermediate_dim,
                   conv_stem=section.conv_stem, stem_layers=section.stem_layers,
                   sincos_positions=section.sincos_positions, dropout=section.dropout,
                   stem_norm=section.stem_norm, name=name)

    def build(self, input_shape):
        self.patch_embedding.build(input_shape)
        shape = (input_shape[0], self.num_tokens, self.hidden_dim)
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.built = True

    def call(self, images, training=None):
        x = self.patch_embedding(images, training=training)  # (batch, num_tokens, hidden_dim)
        for block in self.blocks:  # the block's math, faster where vit_tf.models.blocks can
            x = (block_forward(block, x) if fast_path_supported(block, training)
                 else block(x, training=training))
        return self.final_norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            patch_size=self.patch_size,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            conv_stem=self.conv_stem,
            stem_layers=self.stem_layers,
            sincos_positions=self.sincos_positions,
            stem_norm=self.stem_norm,
            dropout=self.dropout,
        )
        return config
