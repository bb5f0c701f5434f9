"""Relation-network fusion: every pair of image tokens, compared under the question (Santoro et al.
2017), read by the text after the decoder's last block; the image tokens are also the prefix.

A relation question ("Is the red circle left of the blue square?") needs two objects found and
compared. A causal decoder does that in steps (compose each name, find each object, compare),
which two blocks barely have; a relation network looks at every pair of image tokens at once,
conditioned on what the text asks.

Example:
    >>> fusion = RelationNetworkFusion(hidden_dim=16, num_layers=2, relation_dim=8)
    >>> fusion.build((None, None, 16))
    >>> fusion.read(1, keras.ops.zeros((2, 5, 16)), keras.ops.ones((2, 4, 16))).shape
    (2, 5, 16)
"""

import math

import keras
import numpy as np
from keras import layers, ops

from vit_tf.layers.fusion import ConcatFusion
from vit_tf.registry import FUSIONS


def grid_coordinates(num_tokens):
    """(num_tokens, 2) float32 (row, column) in [-1, 1] of image tokens laid out row-major on a
    square grid (the ViT's patches, the CNN's feature map); a lone token sits at (0, 0)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"the relation network places image tokens on a square grid; "
                         f"{num_tokens} tokens are not one")
    steps = np.linspace(-1.0, 1.0, side) if side > 1 else np.zeros(1)
    rows, cols = np.meshgrid(steps, steps, indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=-1).astype("float32")  # (N, 2)


@keras.saving.register_keras_serializable(package="vit_tf")
class RelationNetwork(layers.Layer):
    """A shared MLP over all pairs of image tokens, conditioned on each text state, summed.

    For text state x_t and image tokens o_i with grid coordinates c_i (``grid_coordinates``):
        g_ijt = relu(W_a [o_i; c_i] + W_b [o_j; c_j] + W_q LN(x_t) + b)   (relation_dim)
        r_t   = mean over the N x N pairs (i, j) of g_ijt
        out_t = x_t + f(r_t),   f = Dense(relation_dim, relu) -> Dense(hidden_dim)
    g is one ReLU layer on the concatenation [o_i; o_j; q] (written as three projections, so
    the pair tensor is formed once, already relation_dim wide): a unit fires for a pair that
    matches two named objects in a given arrangement (the coordinates enter linearly), which is
    what left-of / above / closest need. A second layer of g would cost N^2 x text positions
    matrix products per step; this costs only adds and a mean there, which XLA fuses.

    Call: ``x`` (batch, text_len, hidden_dim), ``image_tokens`` (batch, N, hidden_dim), N a
        square -> (batch, text_len, hidden_dim).
    """

    def __init__(self, hidden_dim, relation_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.relation_dim = relation_dim
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.first = layers.Dense(relation_dim, name="first")            # W_a, b
        self.second = layers.Dense(relation_dim, use_bias=False, name="second")  # W_b
        self.query = layers.Dense(relation_dim, use_bias=False, name="query")    # W_q
        self.hidden = layers.Dense(relation_dim, activation="relu", name="hidden")
        self.out = layers.Dense(hidden_dim, name="out")

    def build(self, x_shape, image_tokens_shape=None):
        token_shape = (None, None, self.hidden_dim + 2)
        self.norm.build(x_shape)
        self.first.build(token_shape)
        self.second.build(token_shape)
        self.query.build(x_shape)
        self.hidden.build((None, None, self.relation_dim))
        self.out.build((None, None, self.relation_dim))
        self.built = True

    def call(self, x, image_tokens):
        image_tokens = ops.cast(image_tokens, x.dtype)
        n = image_tokens.shape[1]
        coords = ops.cast(grid_coordinates(n), x.dtype)[None]             # (1, N, 2)
        coords = ops.broadcast_to(coords, (ops.shape(image_tokens)[0], n, 2))
        objects = ops.concatenate([image_tokens, coords], axis=-1)        # (batch, N, hidden + 2)
        pairs = self.first(objects)[:, :, None] + self.second(objects)[:, None]  # (b, N, N, r)
        pairs = ops.reshape(pairs, (-1, 1, n * n, self.relation_dim))     # (batch, 1, N*N, r)
        query = self.query(self.norm(x))[:, :, None]                      # (batch, text, 1, r)
        relations = ops.mean(ops.relu(pairs + query), axis=2)             # (batch, text, r)
        return x + self.out(self.hidden(relations))

    def compute_output_shape(self, x_shape, image_tokens_shape=None):
        return x_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim,
                "relation_dim": self.relation_dim}


@FUSIONS.register("relation_network")
@keras.saving.register_keras_serializable(package="vit_tf")
class RelationNetworkFusion(ConcatFusion):
    """The image tokens are the prefix (``concat``, LLaVA) and, after the last decoder block,
    every text state reads a ``RelationNetwork`` over them (a read fusion as well).

    Args: ``hidden_dim``, ``num_layers`` (decoder blocks), ``relation_dim`` (width of the pair
        MLP; ``model.fusion.relation_dim``).
    """

    uses_prefix = True
    uses_reads = True

    def __init__(self, hidden_dim, num_layers, relation_dim=32, **kwargs):
        super().__init__(hidden_dim, num_layers, **kwargs)
        self.relation_dim = relation_dim
        self.relations = RelationNetwork(hidden_dim, relation_dim, name="relations")

    @classmethod
    def from_section(cls, section, *, hidden_dim, num_layers, name="fusion"):
        """``section`` fields: relation_dim."""
        return cls(hidden_dim, num_layers, relation_dim=section.relation_dim, name=name)

    def build(self, image_tokens_shape=None):
        shape = (None, None, self.hidden_dim)
        self.relations.build(shape, shape)
        self.built = True

    def read(self, index, x, image_tokens):
        if index != self.num_layers - 1:
            return x
        return self.relations(x, image_tokens)

    def call(self, image_tokens):
        # Standalone call (tests): the image tokens read their own relations.
        return self.relations(image_tokens, image_tokens)

    def get_config(self):
        return {**super().get_config(), "relation_dim": self.relation_dim}
