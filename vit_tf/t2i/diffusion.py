"""The diffusion baseline: keras.io's DDIM U-Net (Béres, "Denoising Diffusion Implicit Models"),
made small, with cross-attention to the caption tokens and classifier-free guidance.

    noisy_images (B, S, S, 3), noise_variances (B, 1, 1, 1), token_ids (B, L), padding_mask (B, L)
      caption: token + position embeddings -> TransformerEncoder blocks -> (B, 1 + L, C_text),
               a learned null token first (always a key, so "no caption" still has one)
      U-Net (optionally on 2x2 space-to-depth patches, ``patch_size``, the "made small"):
            sinusoidal noise embedding ‖ 1x1 conv; down blocks (residual blocks, avg-pool),
             residual blocks at the bottom, up blocks (bilinear upsampling, skip concat); after
             every residual block at <= ``attention_resolution`` px, cross-attention from the
             pixels to the caption
      -> predicted noise (B, S, S, 3)

Continuous-time cosine schedule between ``max_signal_rate`` and ``min_signal_rate``
(keras.io's), noise-prediction objective with MAE loss. ``diffusion_examples`` noises images
inside ``tf.data`` (seeded, with caption dropout), so ``model.fit`` is stock. Sampling is
``vit_tf.t2i.samplers.ddim_decode``.
"""

import math

import keras
import keras_hub
import tensorflow as tf
from keras import ops

from vit_tf.t2i.samplers import ddim_decode
from vit_tf.t2i.task import TextToImage
from vit_tf.t2i.vqvae import denormalize, normalize, parse_channels


def diffusion_rates(t, min_signal_rate=0.02, max_signal_rate=0.95):
    """(noise_rate, signal_rate) at diffusion time t in [0, 1] (keras.io's cosine schedule)."""
    start, end = math.acos(max_signal_rate), math.acos(min_signal_rate)
    angle = start + tf.cast(t, tf.float32) * (end - start)
    return tf.sin(angle), tf.cos(angle)


def diffusion_examples(dataset, caption_dropout=0.1, seed=0, min_signal_rate=0.02,
                       max_signal_rate=0.95):
    """Map ``(text, images)`` examples (images (S, S, 3) in [0, 255]) to ``(inputs, noise)``:
    a uniform time per example, Gaussian noise, the caption dropped with probability
    ``caption_dropout``; stateless ops on the example's index, so a seed repeats."""

    def transform(index, example):
        text, images = example
        s = tf.stack([tf.cast(seed, tf.int64), index])
        t = tf.random.stateless_uniform([1, 1, 1], seed=s)
        noise = tf.random.stateless_normal(tf.shape(images), seed=s + [0, 1])
        noise_rate, signal_rate = diffusion_rates(t, min_signal_rate, max_signal_rate)
        drop = tf.random.stateless_uniform([], seed=s + [0, 2]) < caption_dropout
        inputs = {"noisy_images": signal_rate * normalize(images) + noise_rate * noise,
                  "noise_variances": noise_rate**2,
                  "token_ids": tf.where(drop, tf.zeros_like(text["token_ids"]),
                                        text["token_ids"]),
                  "padding_mask": tf.logical_and(text["padding_mask"], tf.logical_not(drop))}
        return inputs, noise

    return dataset.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE)


@keras.saving.register_keras_serializable(package="vit_tf")
class NullToken(keras.layers.Layer):
    """Prepends a learned vector to a sequence and True to its mask: (B, L, C) -> (B, 1 + L, C)."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros",
                                     name="token")

    def call(self, x, mask):
        batch = ops.shape(x)[0]
        token = ops.broadcast_to(ops.cast(self.token, x.dtype), (batch, 1, ops.shape(x)[-1]))
        return (ops.concatenate([token, x], axis=1),
                ops.concatenate([ops.ones((batch, 1), "bool"), mask], axis=1))

    def compute_output_spec(self, x, mask):
        shape = (x.shape[0], None if x.shape[1] is None else x.shape[1] + 1, x.shape[2])
        return (keras.KerasTensor(shape, x.dtype),
                keras.KerasTensor((x.shape[0], shape[1]), "bool"))


@keras.saving.register_keras_serializable(package="vit_tf")
class SinusoidalEmbedding(keras.layers.Layer):
    """(B, 1, 1, 1) noise variance -> (B, 1, 1, dim) sin/cos features (keras.io's)."""

    def __init__(self, dim=32, max_frequency=1000.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.max_frequency = int(dim), float(max_frequency)

    def call(self, x):
        frequencies = ops.exp(ops.linspace(0.0, math.log(self.max_frequency), self.dim // 2))
        angles = 2.0 * math.pi * frequencies * ops.cast(x, "float32")
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "max_frequency": self.max_frequency}


def _residual_block(x, width, name):
    residual = x if x.shape[-1] == width else keras.layers.Conv2D(width, 1, name=f"{name}_skip")(x)
    x = keras.layers.GroupNormalization(groups=8, center=False, scale=False, name=f"{name}_norm")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="swish", name=f"{name}_c1")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_c2")(x)
    return keras.layers.Add(name=f"{name}_add")([x, residual])


def _cross_attention(x, context, context_mask, num_heads, name):
    """Pixels attend to the caption: (B, h, w, C) -> same shape, residual."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    q = keras.layers.Reshape((h * w, c), name=f"{name}_flat")(x)                # (B, hw, C)
    q = keras.layers.LayerNormalization(epsilon=1e-5, name=f"{name}_norm")(q)
    mask = ops.expand_dims(context_mask, 1)                                     # (B, 1, 1 + L)
    a = keras.layers.MultiHeadAttention(num_heads, c // num_heads, name=f"{name}_mha")(
        q, context, attention_mask=mask)
    a = keras.layers.Reshape((h, w, c), name=f"{name}_grid")(a)
    return keras.layers.Add(name=f"{name}_add")([x, a])


@keras.saving.register_keras_serializable(package="vit_tf")
class DiffusionUNet(keras.Model):
    """The noise-prediction network (see the module docstring); a functional model.

    Args: image_size, widths ("32,64,96": one down/up level per width but the last, which is
    the bottom), patch_size (p > 1: space-to-depth first, so the U-Net runs at S/p pixels a
    side on p*p*3 channels, and depth-to-space at the end), block_depth (residual blocks per level), vocabulary_size, max_text_length,
    text_dim / text_layers / num_heads (caption encoder and attention), attention_resolution
    (cross-attention at feature maps of at most this many pixels a side), embedding_dim.
    """

    def __init__(self, image_size, vocabulary_size, max_text_length, widths="32,64,96",
                 block_depth=1, text_dim=128, text_layers=2, num_heads=4,
                 attention_resolution=32, embedding_dim=32, patch_size=1, **kwargs):
        levels = parse_channels(widths)
        if image_size % (patch_size * 2 ** (len(levels) - 1)):
            raise ValueError(f"image_size {image_size} is not divisible by patch_size "
                             f"{patch_size} x 2**{len(levels) - 1} (widths {widths!r})")
        noisy = keras.Input((image_size, image_size, 3), name="noisy_images")
        variances = keras.Input((1, 1, 1), name="noise_variances")
        token_ids = keras.Input((max_text_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((max_text_length,), dtype="bool", name="padding_mask")
        context = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size, max_text_length, text_dim, name="text_embedding")(token_ids)
        for i in range(text_layers):
            context = keras_hub.layers.TransformerEncoder(
                2 * text_dim, num_heads, activation="gelu", normalize_first=True,
                name=f"text_block{i}")(context, padding_mask=padding_mask)
        context, context_mask = NullToken(name="null_token")(context, padding_mask)  # (B, 1+L, C)

        grid, p = image_size // patch_size, patch_size
        e = SinusoidalEmbedding(embedding_dim, name="noise_embedding")(variances)
        e = keras.layers.UpSampling2D(grid, name="noise_broadcast")(e)
        x = noisy
        if p > 1:   # space-to-depth: the U-Net runs on (S/p, S/p, 3 p^2), p x fewer pixels a side
            x = keras.layers.Reshape((grid, p, grid, p, 3), name="patch_split")(x)
            x = keras.layers.Permute((1, 3, 2, 4, 5), name="patch_order")(x)
            x = keras.layers.Reshape((grid, grid, p * p * 3), name="patches")(x)
        x = keras.layers.Conv2D(levels[0], 1, name="stem")(x)
        x = keras.layers.Concatenate(name="with_noise")([x, e])

        def attend(x, name):
            if x.shape[1] <= attention_resolution:
                return _cross_attention(x, context, context_mask, num_heads, name)
            return x

        skips = []
        for level, width in enumerate(levels[:-1]):
            for d in range(block_depth):
                x = _residual_block(x, width, f"down{level}_{d}")
                x = attend(x, f"down{level}_{d}_xattn")
                skips.append(x)
            x = keras.layers.AveragePooling2D(2, name=f"down{level}_pool")(x)
        for d in range(block_depth):
            x = _residual_block(x, levels[-1], f"mid_{d}")
            x = attend(x, f"mid_{d}_xattn")
        for level, width in reversed(list(enumerate(levels[:-1]))):
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_up")(x)
            for d in range(block_depth):
                x = keras.layers.Concatenate(name=f"up{level}_{d}_cat")([x, skips.pop()])
                x = _residual_block(x, width, f"up{level}_{d}")
                x = attend(x, f"up{level}_{d}_xattn")
        out = keras.layers.Conv2D(3 * p * p, 1, kernel_initializer="zeros", dtype="float32",
                                  name="to_noise")(x)
        if p > 1:   # depth-to-space back to (S, S, 3)
            out = keras.layers.Reshape((grid, grid, p, p, 3), name="unpatch_split")(out)
            out = keras.layers.Permute((1, 3, 2, 4, 5), name="unpatch_order")(out)
            out = keras.layers.Reshape((image_size, image_size, 3), name="unpatched")(out)
        super().__init__(inputs={"noisy_images": noisy, "noise_variances": variances,
                                 "token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=out, **kwargs)
        self.image_size, self.vocabulary_size = image_size, vocabulary_size
        self.max_text_length, self.widths = max_text_length, ",".join(map(str, levels))
        self.block_depth, self.text_dim, self.text_layers = block_depth, text_dim, text_layers
        self.num_heads, self.attention_resolution = num_heads, attention_resolution
        self.embedding_dim, self.patch_size = embedding_dim, patch_size

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_size": self.image_size,
                "vocabulary_size": self.vocabulary_size, "max_text_length": self.max_text_length,
                "widths": self.widths, "block_depth": self.block_depth, "text_dim": self.text_dim,
                "text_layers": self.text_layers, "num_heads": self.num_heads,
                "attention_resolution": self.attention_resolution,
                "embedding_dim": self.embedding_dim, "patch_size": self.patch_size}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="vit_tf")
class DiffusionTextToImage(TextToImage):
    """Args: network (``DiffusionUNet``), preprocessor, num_steps / guidance_scale (defaults),
    min_signal_rate / max_signal_rate (the schedule)."""

    def __init__(self, network, preprocessor=None, num_steps=20, guidance_scale=3.0,
                 min_signal_rate=0.02, max_signal_rate=0.95, **kwargs):
        super().__init__(preprocessor=preprocessor, num_steps=num_steps,
                         guidance_scale=guidance_scale, **kwargs)
        self.network = network
        self.min_signal_rate, self.max_signal_rate = float(min_signal_rate), float(max_signal_rate)
        self.built = True   # every part is built at construction

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compile(self, optimizer="adamw", loss="mae", learning_rate=1e-3, weight_decay=1e-4,
                jit_compile=True, **kwargs):
        """AdamW and keras.io's MAE noise loss by default."""
        if optimizer == "adamw":
            optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay,
                                               global_clipnorm=1.0)
        super().compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile, **kwargs)

    def rates(self, t):
        return diffusion_rates(t, self.min_signal_rate, self.max_signal_rate)

    def sample(self, token_ids, padding_mask, negative_ids, negative_mask, seeds,
               guidance_scale, num_steps):
        images = ddim_decode(self.network, self.rates, token_ids, padding_mask, negative_ids,
                             negative_mask, seeds, guidance_scale, num_steps,
                             self.network.image_size)
        return denormalize(images)

    def get_config(self):
        return {**super().get_config(), "network": keras.saving.serialize_keras_object(self.network),
                "min_signal_rate": self.min_signal_rate, "max_signal_rate": self.max_signal_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**cls.deserialize_parts(config, "network"))
