"""The image tokenizer: a VQ-VAE with an EMA codebook (van den Oord et al. 2017; EMA updates as
in its appendix and Razavi et al. 2019, dead codes restarted from the batch as in Jukebox).

    images (B, S, S, 3) float [0, 255]
      -> patches (B, g, g, p * p * 3), g = S / patch_size
      -> encoder: Dense(width), residual blocks (3x3 convs on the code grid), Dense(code_dim)
      -> VectorQuantizer: nearest of num_codes codebook rows -> indices (B, g, g) int32
      -> decoder: Dense(width), residual blocks, then either
         "patch": a per-code MLP unprojecting each code's p x p patch, or
         "conv":  log2(p) stride-2 4x4 transposed convs (channels halving from width) and a
                  3x3 conv to RGB, so neighbouring codes shape every pixel of an edge
      -> (B, S, S, 3) in [-1, 1]

A 64-px shapes-world scene becomes 8x8 = 64 codes with ``patch_size=8``. The ``conv`` decoder
draws edges with the same small kernels at every offset, where the ``patch`` unprojection learns
each pixel of a patch on its own; on the shapes world the patch decoder's corners blur (squares
and triangles read back as circles, ``vit_tf/experiments/t2i_shapes.py``). The codebook is not
trained by gradients: each training call moves every row towards the mean of the encoder
outputs assigned to it (exponential moving averages of counts and sums, Laplace smoothed), and
a row whose average count falls below ``dead_threshold`` is restarted at a random encoder output
of the batch. The encoder is pulled towards its codes by the commitment loss (``add_loss``); the
decoder's gradient reaches the encoder straight through the quantizer. ``ema_counts`` doubles as
the codebook-usage record (``codebook_usage``).

Training is ``model.fit`` with Keras's stock step: ``x`` = images in [0, 255], ``y`` =
``normalize(images)``, loss MSE (the commitment loss is added by the quantizer).

Example::

    vq = VQVAE(image_size=64, patch_size=8, width=128, code_dim=16, num_codes=512,
               decoder="conv")
    vq.compile(optimizer="adam", loss="mse"); vq.fit(ds, epochs=5)
    codes = vq.encode(images)          # (B, 8, 8) int32
    pixels = vq.decode(codes)          # (B, 64, 64, 3) float32 in [0, 255]
"""

import keras
import numpy as np
from keras import ops

from vit_tf.t2i.config import VQ_DECODERS as DECODERS, VQ_RESTARTS as RESTARTS  # one list each


def normalize(images):
    """[0, 255] -> [-1, 1]."""
    return ops.cast(images, "float32") / 127.5 - 1.0


def denormalize(x):
    """[-1, 1] -> [0, 255], clipped."""
    return ops.clip((x + 1.0) * 127.5, 0.0, 255.0)


def parse_channels(channels):
    """"32,64,128" (or a list) -> [32, 64, 128]; ValueError naming the value otherwise."""
    values = channels.split(",") if isinstance(channels, str) else list(channels)
    try:
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"channels must be comma-separated ints, got {channels!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"channels must be positive ints, got {channels!r}")
    return values


@keras.saving.register_keras_serializable(package="vit_tf")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-codebook-row quantization with EMA codebook updates and dead-code restarts.

    Args:
        num_codes: codebook rows (K). code_dim: their width (D).
        decay: EMA decay of counts and sums. commitment: weight of ||z - sg(q)||^2.
        dead_threshold: a row whose EMA count (assignments per call) is below this restarts.
        restart: where a dead row restarts: "random" (a uniformly drawn encoder output of the
            batch, Jukebox) or "error" (drawn with probability proportional to the output's
            squared distance from its code, as k-means++ seeds: outputs the codebook already
            fits well, e.g. the plain background most patches are, are rarely drawn).
        epsilon: Laplace smoothing of the counts. seed: restart draws.
    """

    def __init__(self, num_codes, code_dim, decay=0.99, commitment=0.25, dead_threshold=0.01,
                 epsilon=1e-5, seed=0, restart="random", **kwargs):
        super().__init__(**kwargs)
        if restart not in RESTARTS:
            raise ValueError(f"restart must be one of {', '.join(RESTARTS)}, got {restart!r}")
        self.restart = restart
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.decay, self.commitment = float(decay), float(commitment)
        self.dead_threshold, self.epsilon, self.seed = float(dead_threshold), float(epsilon), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        init = keras.initializers.RandomUniform(-1.0 / self.num_codes, 1.0 / self.num_codes,
                                                seed=self.seed)
        self.codebook = self.add_weight(shape=(self.num_codes, self.code_dim), initializer=init,
                                        trainable=False, name="codebook")
        # counts start at 0: every row restarts at an encoder output of the first batch
        self.ema_counts = self.add_weight(shape=(self.num_codes,), initializer="zeros",
                                          trainable=False, name="ema_counts")
        self.ema_sums = self.add_weight(shape=(self.num_codes, self.code_dim), trainable=False,
                                        initializer="zeros", name="ema_sums")
        self.ema_sums.assign(ops.convert_to_tensor(self.codebook))

    def indices(self, z):
        """(..., D) -> (...) int32 index of the nearest codebook row."""
        flat = ops.reshape(z, (-1, self.code_dim))                                  # (N, D)
        distance = (ops.sum(flat**2, axis=1, keepdims=True)
                    - 2.0 * ops.matmul(flat, ops.transpose(self.codebook))
                    + ops.sum(self.codebook**2, axis=1)[None, :])                  # (N, K)
        idx = ops.cast(ops.argmin(distance, axis=-1), "int32")
        return ops.reshape(idx, ops.shape(z)[:-1])

    def lookup(self, idx):
        """(...) int -> (..., D) codebook rows."""
        return ops.take(self.codebook, ops.cast(idx, "int32"), axis=0)

    def call(self, z, training=False):
        idx = self.indices(z)
        q = self.lookup(idx)
        if training:
            self._ema_update(ops.reshape(z, (-1, self.code_dim)), ops.reshape(idx, (-1,)))
            self.add_loss(self.commitment * ops.mean((z - ops.stop_gradient(q)) ** 2))
        return z + ops.stop_gradient(q - z)   # straight-through estimator

    def _ema_update(self, flat, idx):
        flat = ops.stop_gradient(flat)
        onehot = ops.one_hot(idx, self.num_codes, dtype="float32")                 # (N, K)
        counts = self.decay * self.ema_counts + (1 - self.decay) * ops.sum(onehot, axis=0)
        sums = self.decay * self.ema_sums + (1 - self.decay) * ops.matmul(ops.transpose(onehot), flat)
        total = ops.sum(counts)
        smoothed = (counts + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        codebook = sums / smoothed[:, None]
        # dead rows restart at random encoder outputs of this batch
        dead = (counts < self.dead_threshold)[:, None]
        if self.restart == "error":
            # inverse-CDF draws: keras.random.categorical under XLA draws N x K Gumbel noises
            # (1.6 s per call at N = 16384, K = 1024 on one core); this is K binary searches
            error = ops.sum((flat - ops.take(self.codebook, idx, axis=0)) ** 2, axis=1)  # (N,)
            cdf = ops.cumsum(error)
            u = keras.random.uniform((self.num_codes,), seed=self.seed_generator) * cdf[-1]
            pick = ops.minimum(ops.searchsorted(cdf, u, side="right"), ops.shape(flat)[0] - 1)
        else:
            pick = keras.random.randint((self.num_codes,), 0, ops.shape(flat)[0],
                                        seed=self.seed_generator)
        fresh = ops.take(flat, pick, axis=0)                                       # (K, D)
        self.codebook.assign(ops.where(dead, fresh, codebook))
        self.ema_sums.assign(ops.where(dead, fresh, sums))
        self.ema_counts.assign(ops.where(dead[:, 0], 1.0, counts))

    def codebook_usage(self, threshold=None):
        """(fraction of rows in use, perplexity of the EMA assignment distribution)."""
        counts = np.asarray(ops.convert_to_numpy(self.ema_counts), np.float64)
        threshold = self.dead_threshold if threshold is None else threshold
        p = counts / counts.sum()
        perplexity = float(np.exp(-(p * np.log(p + 1e-12)).sum()))
        return float((counts >= threshold).mean()), perplexity

    def get_config(self):
        return {**super().get_config(), "num_codes": self.num_codes, "code_dim": self.code_dim,
                "decay": self.decay, "commitment": self.commitment,
                "dead_threshold": self.dead_threshold, "epsilon": self.epsilon, "seed": self.seed,
                "restart": self.restart}


@keras.saving.register_keras_serializable(package="vit_tf")
class ResidualBlock(keras.layers.Layer):
    """x + conv1x1(relu(conv3x3(relu(x)))), width preserved (the VQ-VAE paper's block)."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.conv3 = keras.layers.Conv2D(width, 3, padding="same", name="conv3")
        self.conv1 = keras.layers.Conv2D(width, 1, name="conv1")

    def build(self, input_shape):
        self.conv3.build(input_shape)
        self.conv1.build((*input_shape[:-1], self.width))

    def call(self, x):
        return x + self.conv1(ops.relu(self.conv3(ops.relu(x))))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


@keras.saving.register_keras_serializable(package="vit_tf")
class VQVAE(keras.Model):
    """The image tokenizer (see the module docstring).

    Args:
        image_size: square input side; a multiple of ``patch_size``.
        patch_size: pixels a side per code (8: a 64-px image is 8x8 codes).
        width: channels of the residual trunk on the code grid.
        code_dim, num_codes: codebook width and size. num_res_blocks: per side.
        decay, commitment, dead_threshold, restart: of the ``VectorQuantizer``.
        decoder: "patch" (a per-code MLP unprojects each patch) or "conv" (stride-2
            transposed convs up to the pixels; ``patch_size`` a power of 2).
    """

    def __init__(self, image_size=64, patch_size=8, width=128, code_dim=16, num_codes=512,
                 num_res_blocks=2, decay=0.99, commitment=0.25, dead_threshold=0.01, seed=0,
                 decoder="patch", restart="random", **kwargs):
        super().__init__(**kwargs)
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size "
                             f"{patch_size}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        if decoder == "conv" and patch_size & (patch_size - 1):
            raise ValueError(f"the conv decoder needs patch_size a power of 2, got {patch_size}")
        self.decoder_kind, self.restart = decoder, restart
        self.image_size, self.patch_size, self.width = int(image_size), int(patch_size), int(width)
        self.code_dim, self.num_codes, self.num_res_blocks = code_dim, num_codes, num_res_blocks
        self.decay, self.commitment, self.dead_threshold, self.seed = (
            decay, commitment, dead_threshold, seed)
        self.grid_size = image_size // patch_size
        patch_values = patch_size * patch_size * 3
        self.encoder = keras.Sequential(
            [keras.layers.Dense(width, name="patch_in")]
            + [ResidualBlock(width, name=f"res{i}") for i in range(num_res_blocks)]
            + [keras.layers.Activation("relu"), keras.layers.Dense(code_dim, name="to_code")],
            name="encoder")
        self.quantizer = VectorQuantizer(num_codes, code_dim, decay, commitment, dead_threshold,
                                         seed=seed, restart=restart, name="quantizer")
        self.decoder = keras.Sequential(
            [keras.layers.Dense(width, name="from_code")]
            + [ResidualBlock(width, name=f"res{i}") for i in range(num_res_blocks)]
            + [keras.layers.Activation("relu")] + self._head_layers(width, patch_values),
            name="decoder")
        grid = self.grid_size
        self.encoder.build((None, grid, grid, patch_values))
        self.quantizer.build((None, grid, grid, code_dim))
        self.decoder.build((None, grid, grid, code_dim))

    def _head_layers(self, width, patch_values):
        """The decoder's way from the code grid to pixels (see ``decoder``)."""
        if self.decoder_kind == "patch":       # (B, g, g, width) -> (B, g, g, p * p * 3)
            return [keras.layers.Dense(2 * width, activation="relu", name="hidden"),
                    keras.layers.Dense(patch_values, name="patch_out")]
        layers, channels = [], width           # each stage: (B, h, h, c) -> (B, 2h, 2h, c / 2)
        for i in range(self.patch_size.bit_length() - 1):
            channels = max(16, channels // 2)
            layers.append(keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                                       activation="relu", name=f"up{i}"))
        return layers + [keras.layers.Conv2D(3, 3, padding="same", name="to_rgb")]

    def _decode(self, q):
        """(B, g, g, code_dim) quantized -> (B, S, S, 3) in [-1, 1] (unclipped)."""
        x = self.decoder(q)
        return self._pixels(x) if self.decoder_kind == "patch" else x

    @property
    def num_tokens(self):
        return self.grid_size**2

    def _patches(self, images):
        """(B, S, S, 3) -> (B, g, g, p * p * 3): each code position sees its own patch."""
        g, p = self.grid_size, self.patch_size
        x = ops.reshape(normalize(images), (-1, g, p, g, p, 3))
        return ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, g, g, p * p * 3))

    def _pixels(self, patches):
        """(B, g, g, p * p * 3) -> (B, S, S, 3), the inverse of ``_patches``."""
        g, p = self.grid_size, self.patch_size
        x = ops.reshape(patches, (-1, g, g, p, p, 3))
        return ops.reshape(ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, g * p, g * p, 3))

    def call(self, images, training=False):
        """(B, S, S, 3) [0, 255] -> reconstruction (B, S, S, 3) in [-1, 1]."""
        z = self.encoder(self._patches(images))                   # (B, g, g, code_dim)
        return self._decode(self.quantizer(z, training=training))

    def encode(self, images):
        """(B, S, S, 3) [0, 255] -> codes (B, g, g) int32."""
        return self.quantizer.indices(self.encoder(self._patches(images)))

    def decode(self, codes):
        """codes (B, g, g) or (B, g * g) -> images (B, S, S, 3) float32 in [0, 255]."""
        codes = ops.reshape(codes, (-1, self.grid_size, self.grid_size))
        return denormalize(self._decode(self.quantizer.lookup(codes)))

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "patch_size": self.patch_size, "width": self.width, "code_dim": self.code_dim,
                "num_codes": self.num_codes, "num_res_blocks": self.num_res_blocks,
                "decay": self.decay, "commitment": self.commitment,
                "dead_threshold": self.dead_threshold, "seed": self.seed,
                "decoder": self.decoder_kind, "restart": self.restart}
