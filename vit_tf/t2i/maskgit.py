"""The masked-token generator (MaskGIT, Chang et al. 2022; text-conditioned as in Muse, Chang et
al. 2023): a bidirectional transformer over the image's codes with the caption as a prefix.

    token_ids (B, L) + padding_mask (B, L)      the caption (all padding: no caption)
    image_tokens (B, N)                         VQ codes, ``num_codes`` (= MASK) where masked
      -> [text embeddings + positions ; code embeddings + positions]     (B, L + M, hidden_dim)
      -> num_layers keras-hub TransformerEncoder blocks (pre-norm; padded text is never a key)
      -> the M image positions -> (ungroup) -> LayerNorm -> Dense     logits (B, N, num_codes)

``group_size`` g > 1 lets one transformer position carry a g x g block of the code grid
(M = N / g^2): the block's code embeddings are concatenated and projected to ``hidden_dim``
on the way in, and each position's output is projected back to g^2 code states on the way out.
Masking, the loss and decoding still act on single codes. Why: a 16x16 code grid makes 256 + L
positions, and on a CPU the attention over them and the blocks' width cost most of a training
step; 2x2 groups cut the sequence to 64 + L at the same code grid (the tokenizer keeps its
4x4-pixel patches, which the shapes' corners need). g = 1 is the plain MaskGIT (old presets).

Every image position attends to every caption token and to every other position, so "red"
binds to "circle" through attention, not through a pooled sentence vector. Training (MaskGIT's
recipe): per example draw r ~ U(0, 1), mask ceil(cos(pi r / 2) * N) random positions, predict
them (loss on masked positions only); with probability ``caption_dropout`` the caption is
dropped (all padding), which teaches the unconditional model that classifier-free guidance
needs. ``masked_examples`` does this inside ``tf.data``, seeded, so ``model.fit`` is stock.
Decoding is ``vit_tf.t2i.samplers.maskgit_decode``.
"""

import math

import keras
import keras_hub
import tensorflow as tf
from keras import ops


def mask_ratio(r):
    """MaskGIT's cosine schedule: the fraction of tokens masked at progress r in [0, 1]
    (1 at r = 0, 0 at r = 1). Training draws r uniformly; decoding step t of T uses (t+1)/T."""
    return ops.cos(math.pi / 2 * ops.cast(r, "float32"))


def training_mask(seed, num_tokens):
    """(N,) bool: ceil(mask_ratio(r) * N) positions, r ~ U(0, 1), chosen uniformly; at least 1.

    ``seed``: a stateless seed (2,) int; the same seed gives the same mask.
    """
    r = tf.random.stateless_uniform([], seed=seed)
    count = tf.clip_by_value(tf.cast(tf.math.ceil(mask_ratio(r) * num_tokens), tf.int32),
                             1, num_tokens)
    scores = tf.random.stateless_uniform([num_tokens], seed=seed + [0, 1])
    rank = tf.argsort(tf.argsort(scores))                 # a uniformly random permutation
    return rank < count


def masked_examples(dataset, num_tokens, mask_id, caption_dropout=0.1, seed=0):
    """Map ``(text, codes)`` examples (``text`` = {"token_ids", "padding_mask"}, ``codes`` (N,)
    int) to ``(inputs, codes, sample_weight)`` for ``model.fit``: masked positions carry
    ``mask_id`` in ``inputs["image_tokens"]`` and weight 1; the caption is dropped with
    probability ``caption_dropout``. Deterministic for a ``seed`` (stateless ops on the
    example's index), so a rerun trains on the same masks."""

    def transform(index, example):
        text, codes = example
        example_seed = tf.stack([tf.cast(seed, tf.int64), index])
        mask = training_mask(example_seed, num_tokens)
        drop = tf.random.stateless_uniform([], seed=example_seed + [0, 2]) < caption_dropout
        token_ids = tf.where(drop, tf.zeros_like(text["token_ids"]), text["token_ids"])
        padding_mask = tf.logical_and(text["padding_mask"], tf.logical_not(drop))
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask,
                  "image_tokens": tf.where(mask, tf.cast(mask_id, codes.dtype), codes)}
        return inputs, codes, tf.cast(mask, tf.float32)

    return dataset.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE)


def _group(x, s, g, h):
    """(B, N, h) codes in raster order on an (s g) x (s g) grid -> (B, s*s, g*g*h): each g x g
    block of the grid in one row, blocks in raster order."""
    x = keras.layers.Reshape((s, g, s, g, h))(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x)                          # (B, s, s, g, g, h)
    return keras.layers.Reshape((s * s, g * g * h))(x)


def _ungroup(x, s, g, h):
    """The inverse of ``_group``: (B, s*s, g*g*h) -> (B, N, h) in raster order."""
    x = keras.layers.Reshape((s, s, g, g, h))(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x)                          # (B, s, g, s, g, h)
    return keras.layers.Reshape((s * g * s * g, h))(x)


@keras.saving.register_keras_serializable(package="vit_tf")
class MaskGITBackbone(keras.Model):
    """The transformer (see the module docstring); a functional model.

    Args:
        vocabulary_size: caption token ids. max_text_length: L. num_codes: K (MASK = K).
        num_image_tokens: N (a square grid when g > 1). hidden_dim, num_layers, num_heads,
        intermediate_dim, dropout: of the transformer blocks. group_size: g, codes per
        transformer position along each axis (see the module docstring).
    """

    def __init__(self, vocabulary_size, max_text_length, num_codes, num_image_tokens,
                 hidden_dim=256, num_layers=4, num_heads=4, intermediate_dim=1024, dropout=0.0,
                 group_size=1, **kwargs):
        side = math.isqrt(num_image_tokens)
        if group_size > 1 and (side * side != num_image_tokens or side % group_size):
            raise ValueError(f"group_size={group_size} must divide the side of a square code "
                             f"grid; num_image_tokens={num_image_tokens}")
        g, s = group_size, side // group_size          # s: used only when g > 1
        token_ids = keras.Input((max_text_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input((max_text_length,), dtype="bool", name="padding_mask")
        image_tokens = keras.Input((num_image_tokens,), dtype="int32", name="image_tokens")
        text = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size, max_text_length, hidden_dim, name="text_embedding")(token_ids)
        if g == 1:
            image = keras_hub.layers.TokenAndPositionEmbedding(
                num_codes + 1, num_image_tokens, hidden_dim, name="code_embedding")(image_tokens)
        else:
            codes = keras.layers.Embedding(num_codes + 1, hidden_dim, name="code_embedding")(
                image_tokens)                                                 # (B, N, H)
            image = keras.layers.Dense(hidden_dim, name="group_in")(
                _group(codes, s, g, hidden_dim))                              # (B, M, H)
            image = keras_hub.layers.PositionEmbedding(s * s, name="group_position")(image) + image
        x = keras.layers.Concatenate(axis=1, name="prefix")([text, image])    # (B, L + M, H)
        mask = keras.layers.Concatenate(axis=1, name="prefix_mask")(
            [padding_mask, ops.ones_like(image[..., 0], dtype="bool")])      # (B, L + M)
        for i in range(num_layers):
            x = keras_hub.layers.TransformerEncoder(
                intermediate_dim, num_heads, dropout=dropout, activation="gelu",
                normalize_first=True, name=f"block{i}")(x, padding_mask=mask)
        x = x[:, max_text_length:]                                            # (B, M, H)
        if g > 1:
            x = _ungroup(keras.layers.Dense(g * g * hidden_dim, name="group_out")(x), s, g,
                         hidden_dim)                                          # (B, N, H)
        x = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")(x)
        logits = keras.layers.Dense(num_codes, name="logits", dtype="float32")(x)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask,
                                 "image_tokens": image_tokens}, outputs=logits, **kwargs)
        self.vocabulary_size, self.max_text_length = vocabulary_size, max_text_length
        self.num_codes, self.num_image_tokens = num_codes, num_image_tokens
        self.hidden_dim, self.num_layers, self.num_heads = hidden_dim, num_layers, num_heads
        self.intermediate_dim, self.dropout = intermediate_dim, dropout
        self.group_size = group_size

    @property
    def mask_id(self):
        return self.num_codes

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "vocabulary_size": self.vocabulary_size, "max_text_length": self.max_text_length,
                "num_codes": self.num_codes, "num_image_tokens": self.num_image_tokens,
                "hidden_dim": self.hidden_dim, "num_layers": self.num_layers,
                "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout, "group_size": self.group_size}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
