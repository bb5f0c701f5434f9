"""The design's "pretrained language model" text embedding: a BERT-family token table.

Our decoders are causal: position t may only see tokens <= t. BERT's *contextual* outputs mix
every token of the sentence into every position (bidirectional attention), so feeding them to a
causal decoder would leak the answer into its own input (training would learn to copy it). Only
BERT's token embedding table is used: each id's pretrained vector, context-free, projected to
the decoder width. BERT's absolute positions are left out too; the decoder adds its own
positions over the image prefix + text (BERT's table stops at 512 and knows nothing of images).

The tokenizer is the preset's (WordPiece of the BERT vocabulary); our chat markers
``<|user|>``, ``<|assistant|>``, ``<|end|>`` are appended as ``num_added`` new ids, whose rows are
learned (``vit_tf.data.preset_tokenizer``, chat format ``bert``). The layer is reversible like
keras-hub's ``ReversibleEmbedding``: ``reverse=True`` maps decoder states back to logits over
the same table (a learned projection to BERT's width, then the transposed table), so the output
head shares the pretrained vectors.

Example:
    >>> emb = PretrainedTokenEmbedding.from_preset("/models/bert_tiny", 64, total_vocabulary_size=V + 3)
    >>> emb = PretrainedTokenEmbedding.from_preset("pretrained:all_minilm_l6_v2", 64)   # MiniLM
    >>> emb(ops.ones((2, 5), "int32")).shape          # (2, 5, 64)
    >>> emb(ops.zeros((2, 5, 64)), reverse=True).shape  # (2, 5, V + 3)
"""

import keras
import keras_hub
from keras import layers, ops

from vit_tf.pretrained import resolve_preset


@keras.saving.register_keras_serializable(package="vit_tf")
class PretrainedTokenEmbedding(layers.Layer):
    """Pretrained token rows (frozen unless ``pretrained_trainable``) + added rows + projections.

    Args:
        vocabulary_size: rows of the pretrained table (the preset's vocabulary).
        embedding_dim: the pretrained width (BERT's hidden_dim).
        hidden_dim: the decoder width.
        num_added: extra learned rows after the pretrained ones (our chat markers).
        pretrained_trainable: False freezes the pretrained rows (the added rows and the
            projections are always trained).
        preset: where the rows came from (informative; ``from_preset`` loads them, a ``.keras``
            file restores them without it).

    Call: ids (batch, L) int -> (batch, L, hidden_dim); ``reverse=True``: (batch, L, hidden_dim)
        -> logits (batch, L, vocabulary_size + num_added), float32 under every dtype policy.
    """

    def __init__(self, vocabulary_size, embedding_dim, hidden_dim, num_added=0,
                 pretrained_trainable=True, preset="", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_added = num_added
        self.pretrained_trainable = pretrained_trainable
        self.preset = preset
        self.projection = layers.Dense(hidden_dim, use_bias=False, name="projection")
        # The output head (projection + transposed table) runs in float32 under mixed
        # precision, as keras's ReversibleEmbedding(reverse_dtype="float32") does for the
        # learned table: bfloat16 logits would round every score to ~3 significant digits.
        # Like keras's Embedding, the tables are read unrounded (no autocast); the input
        # projection still computes in the layer's dtype (it casts its input).
        self.autocast = False
        self.output_projection = layers.Dense(embedding_dim, use_bias=False, dtype="float32",
                                              name="output_projection")

    @classmethod
    def from_preset(cls, preset, hidden_dim, total_vocabulary_size=None, trainable=True,
                    **kwargs):
        """Copy the token table of a keras-hub text backbone (BERT, RoBERTa, ...) preset.

        ``total_vocabulary_size``: the tokenizer's ids (preset vocabulary + our markers); the
        rows past the preset's vocabulary are added (default: none).
        """
        backbone = keras_hub.models.Backbone.from_preset(resolve_preset(preset))
        table = getattr(backbone, "token_embedding", None)
        if table is None:
            raise ValueError(f"model.text_embedding.preset={preset!r}: {type(backbone).__name__} "
                             "has no token_embedding")
        weights = ops.convert_to_numpy(table.embeddings)  # (vocabulary_size, embedding_dim)
        num_added = (total_vocabulary_size or weights.shape[0]) - weights.shape[0]
        if num_added < 0:
            raise ValueError(f"model.text_embedding.preset={preset!r} has {weights.shape[0]} "
                             f"tokens, fewer than the tokenizer's {total_vocabulary_size}")
        layer = cls(weights.shape[0], weights.shape[1], hidden_dim, num_added=num_added,
                    pretrained_trainable=trainable, preset=preset, **kwargs)
        layer.build((None, None))
        layer.pretrained.assign(weights)
        return layer

    def build(self, input_shape=None):
        self.pretrained = self.add_weight(
            shape=(self.vocabulary_size, self.embedding_dim), initializer="zeros",
            trainable=self.pretrained_trainable, name="pretrained_embeddings")
        self.added = self.add_weight(
            shape=(self.num_added, self.embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02), name="added_embeddings")
        self.projection.build((None, None, self.embedding_dim))
        self.output_projection.build((None, None, self.hidden_dim))
        self.built = True

    def table(self):
        return ops.concatenate([self.pretrained, self.added], axis=0)  # (vocab + added, emb_dim)

    def call(self, inputs, reverse=False):
        if reverse:
            x = self.output_projection(ops.cast(inputs, "float32"))  # (batch, L, embedding_dim)
            return ops.matmul(x, ops.transpose(ops.cast(self.table(), "float32")))  # (batch, L, V)
        x = ops.take(self.table(), ops.cast(inputs, "int32"), axis=0)  # (batch, L, embedding_dim)
        return self.projection(x)  # (batch, L, hidden_dim)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return (*input_shape[:-1], self.vocabulary_size + self.num_added)
        return (*input_shape, self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim,
                "num_added": self.num_added, "pretrained_trainable": self.pretrained_trainable,
                "preset": self.preset}
