"""Projectors: image-encoder tokens -> language-model embedding space (LLaVA)."""

import keras
from keras import layers

from vit_tf.registry import PROJECTORS


@PROJECTORS.register("linear")
@keras.saving.register_keras_serializable(package="vit_tf")
class LinearProjector(layers.Layer):
    """One dense layer (LLaVA-1). Call: (batch, tokens, in_dim) -> (batch, tokens, hidden_dim)."""

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.dense = layers.Dense(hidden_dim, name="dense")

    @classmethod
    def from_section(cls, section, *, hidden_dim, name="projector"):
        """No fields of ``section``; ``hidden_dim`` is the decoder's."""
        return cls(hidden_dim, name=name)

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, image_tokens):
        return self.dense(image_tokens)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}


@PROJECTORS.register("mlp")
@keras.saving.register_keras_serializable(package="vit_tf")
class MLPProjector(layers.Layer):
    """Dense -> GELU -> Dense (LLaVA-1.5's "mlp2x_gelu").

    Call: (batch, tokens, in_dim) -> (batch, tokens, hidden_dim).
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.dense_in = layers.Dense(hidden_dim, activation="gelu", name="dense_in")
        self.dense_out = layers.Dense(hidden_dim, name="dense_out")

    @classmethod
    def from_section(cls, section, *, hidden_dim, name="projector"):
        """No fields of ``section``; ``hidden_dim`` is the decoder's."""
        return cls(hidden_dim, name=name)

    def build(self, input_shape):
        self.dense_in.build(input_shape)
        self.dense_out.build((*input_shape[:-1], self.hidden_dim))
        self.built = True

    def call(self, image_tokens):
        return self.dense_out(self.dense_in(image_tokens))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
