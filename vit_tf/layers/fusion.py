"""Fusion: how a language decoder sees the (projected) image tokens, behind one interface.

A decoder runs ``x = block_i(x)`` for ``i = 0 .. num_layers - 1``. A fusion layer decides

* ``prefix(image_tokens)``: embeddings placed before the text (LLaVA), or ``None``;
* ``read(i, x, image_tokens)``: an update of the text states ``x`` after block ``i``
  (cross-attention in every block, attention pooling after the last one), identity otherwise.

Reads are position-wise in the text (each text state queries the image tokens), so cached
generation only needs the image tokens at every step, not a cache of their own.

Registered fusions (``model.fusion.name``): ``concat``, ``resampler`` (prefix fusions),
``cross_attention``, ``attention_pooling`` (read fusions) and ``relation_network`` (both: the
image tokens as prefix, and a relation network over their pairs read after the last block).

Example:
    >>> fusion = ConcatFusion(hidden_dim=16, num_layers=2)
    >>> fusion.prefix(keras.ops.zeros((2, 4, 16))).shape
    (2, 4, 16)
"""

import keras
from keras import layers

from vit_tf.registry import FUSIONS


class Fusion(layers.Layer):
    """Base class. ``hidden_dim``: decoder width; ``num_layers``: decoder blocks.

    Subclasses set ``uses_prefix`` / ``uses_reads`` and override ``prefix`` / ``read``.
    """

    uses_prefix = False
    uses_reads = False

    def __init__(self, hidden_dim, num_layers, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers

    @classmethod
    def from_section(cls, section, *, hidden_dim, num_layers, name="fusion"):
        """Subclasses implement: the fusion of ``config.model.fusion`` (``section``, a
        ``FusionConfig``; each fusion reads the fields it uses) for a decoder of width
        ``hidden_dim`` with ``num_layers`` blocks."""
        raise NotImplementedError(f"{cls.__name__} does not implement Fusion.from_section")

    def build(self, image_tokens_shape=None):
        self.built = True

    def num_prefix_tokens(self, num_image_tokens):
        """How many prefix embeddings ``num_image_tokens`` image tokens become."""
        return self.prefix_length(self, num_image_tokens)

    @classmethod
    def prefix_length(cls, section, num_image_tokens):
        """``num_prefix_tokens`` before the fusion is built, from its config ``section`` (a
        ``FusionConfig``, or the fusion itself: the same field names): the factory sizes the
        decoder's position table with it."""
        return 0

    def prefix(self, image_tokens):
        """(batch, image_tokens, hidden_dim) -> (batch, prefix_len, hidden_dim) or None."""
        return None

    def read(self, index, x, image_tokens):
        """Text states after block ``index``: (batch, text_len, hidden_dim) -> same shape."""
        return x

    def call(self, image_tokens):
        # A fusion is driven by its decoder through ``prefix`` and ``read``; calling it directly
        # returns the prefix (used to build it in isolation).
        return self.prefix(image_tokens)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "num_layers": self.num_layers}


@FUSIONS.register("concat")
@keras.saving.register_keras_serializable(package="vit_tf")
class ConcatFusion(Fusion):
    """LLaVA: the projected image tokens are the prefix of the text embeddings (no weights)."""

    uses_prefix = True

    @classmethod
    def from_section(cls, section, *, hidden_dim, num_layers, name="fusion"):
        """No fields of ``section`` (no weights, no options)."""
        return cls(hidden_dim, num_layers, name=name)

    @classmethod
    def prefix_length(cls, section, num_image_tokens):
        return num_image_tokens

    def prefix(self, image_tokens):
        return image_tokens  # (batch, image_tokens, hidden_dim)
