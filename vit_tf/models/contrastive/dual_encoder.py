"""``DualEncoder``: the contrastive (CLIP / SigLIP) task over any image encoder and a text encoder.

keras-hub's ``CLIPBackbone`` / ``SigLIPBackbone`` shape: a vision tower and a text tower, each
followed by a projection into one embedding space, and a head holding the learnable logit scale
(and, for SigLIP, bias). The towers here are ours: the image encoder is any registered
``ImageEncoder`` (its tokens pooled by their mean, or by attention from one learned query as
SigLIP's MAP head), the text encoder ``TextEncoder``. The tokenizer rides along, so the task
embeds raw strings (``encode_texts``) and a saved model is complete.

Inputs of ``call`` / ``fit`` batches:
    images        (batch, S, S, 3) float32 in [0, 255]
    token_ids     (batch, L) int32, padding_mask (batch, L) bool
    image_ids, text_ids  (batch,) int32, optional: pairs sharing one are positives
                  (``vit_tf.models.contrastive.losses``); default: every pair distinct
Output: {"image_embeddings": (batch, embed_dim), "text_embeddings": (batch, embed_dim)}, unit rows.

A preset folder (``save_to_preset`` / ``from_preset``):
    metadata.json        format, loss, scale/bias, SHA-256 of the files
    dual_encoder.keras   the whole task (towers, heads, tokenizer)
    image_encoder/       the image tower alone: an image-encoder preset for
                         ``model.encoder.preset`` (``vit_tf.models.encoders.preset``)

Example:
    >>> task = DualEncoder(image_encoder, TextEncoder(...), tokenizer, embed_dim=64)
    >>> task.compile(optimizer="adam");  task.fit(pair_dataset)
    >>> task.encode_images(images) @ task.encode_texts(["a small red circle."]).T
"""

import json
import math
import os

import keras
import numpy as np
from keras import layers, ops

from vit_tf.digest import file_sha256
from vit_tf.models.contrastive.losses import default_pair_ids, get_loss, logit_scale_value
from vit_tf.models.encoders.preset import save_image_encoder_preset

FORMAT = "vit_tf dual encoder preset v1"
MODEL_FILE = "dual_encoder.keras"
IMAGE_ENCODER_DIR = "image_encoder"
POOLINGS = ("mean", "attention")


def _traced(owner, attr, fn):
    """``owner.attr``: ``fn`` as one ``tf.function`` (reduce_retracing), built on first use and
    kept, so the retrieval monitor and the zero-shot calls reuse one trace per input shape."""
    if not hasattr(owner, attr):
        import tensorflow as tf

        setattr(owner, attr, tf.function(fn, reduce_retracing=True))
    return getattr(owner, attr)

@keras.saving.register_keras_serializable(package="vit_tf")
class AttentionPool(layers.Layer):
    """One learned query attends over the tokens (SigLIP's MAP head without its MLP):
    (batch, tokens, dim) -> (batch, dim)."""

    def __init__(self, hidden_dim, num_heads=4, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.attention = layers.MultiHeadAttention(num_heads, max(hidden_dim // num_heads, 1),
                                                   name="attention")

    def build(self, input_shape):
        self.probe = self.add_weight(shape=(1, 1, self.hidden_dim), name="probe",
                                     initializer="glorot_uniform")
        self.attention.build((input_shape[0], 1, self.hidden_dim), input_shape)
        self.built = True

    def call(self, tokens):
        probe = ops.tile(ops.cast(self.probe, tokens.dtype), (ops.shape(tokens)[0], 1, 1))
        return self.attention(probe, tokens)[:, 0]          # (batch, dim)

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "num_heads": self.num_heads}


def _unit(x):
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


@keras.saving.register_keras_serializable(package="vit_tf")
class DualEncoder(keras.Model):
    """Image tower + text tower + projections + logit scale / bias, trained contrastively.

    Args:
        image_encoder: an ``ImageEncoder`` (tokens (batch, n, d)).
        text_encoder: a ``TextEncoder`` (one vector per text).
        tokenizer: a keras-hub tokenizer (``[PAD]`` = 0) for ``encode_texts``.
        embed_dim: width of the shared space.
        sequence_length: tokens per text (longer texts are cut).
        pooling: "mean" or "attention" over the image tokens.
        loss: "siglip" or "clip" (``vit_tf.models.contrastive.losses``).
        scale_init, bias_init: initial exp(t) and b (SigLIP: 10, -10; CLIP: 1/0.07, unused b).
        learn_scale: train t and b.
    """

    def __init__(self, image_encoder, text_encoder, tokenizer, embed_dim=64, sequence_length=48,
                 pooling="mean", loss="siglip", scale_init=10.0, bias_init=-10.0,
                 learn_scale=True, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pretrain.pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.embed_dim = embed_dim
        self.sequence_length = sequence_length
        self.pooling = pooling
        self.loss_name = loss
        self.contrastive_loss = get_loss(loss)
        self.scale_init = scale_init
        self.bias_init = bias_init
        self.learn_scale = learn_scale
        self.image_pool = (AttentionPool(image_encoder.hidden_dim, name="image_pool")
                           if pooling == "attention" else None)
        self.image_projection = layers.Dense(embed_dim, use_bias=False, name="image_projection")
        self.text_projection = layers.Dense(embed_dim, use_bias=False, name="text_projection")
        self.logit_scale = self.add_weight(
            shape=(), name="logit_scale", trainable=learn_scale,
            initializer=keras.initializers.Constant(math.log(scale_init)))
        self.logit_bias = self.add_weight(
            shape=(), name="logit_bias", trainable=learn_scale and loss == "siglip",
            initializer=keras.initializers.Constant(bias_init if loss == "siglip" else 0.0))

    def build(self, input_shape):
        size = self.image_encoder.image_size
        text_shape = (None, self.sequence_length)
        parts = [(self.image_encoder, (None, size, size, 3)),
                 (self.image_projection, (None, self.image_encoder.hidden_dim)),
                 (self.text_encoder, {"token_ids": text_shape, "padding_mask": text_shape}),
                 (self.text_projection, (None, self.text_encoder.hidden_dim))]
        if self.image_pool is not None:
            parts.append((self.image_pool, (None, self.image_encoder.num_tokens,
                                            self.image_encoder.hidden_dim)))
        for layer, shape in parts:   # a deserialized tower arrives built
            if not layer.built:
                layer.build(shape)
        self.built = True

    def get_build_config(self):
        return {"input_shape": None}       # the sizes come from the towers themselves

    def build_from_config(self, config):
        self.build(None)

    # ----- the towers -----

    def image_features(self, images, training=None):
        """(batch, S, S, 3) -> pooled image features (batch, encoder width), before projection."""
        tokens = self.image_encoder(images, training=training)    # (batch, n, d)
        if self.image_pool is not None:
            return self.image_pool(tokens)
        return ops.mean(tokens, axis=1)

    def embed_images(self, images, training=None):
        return _unit(self.image_projection(self.image_features(images, training=training)))

    def embed_texts(self, token_ids, padding_mask, training=None):
        padding_mask = ops.cast(padding_mask, "bool")   # int32 under tf.distribute (distributable)
        pooled = self.text_encoder({"token_ids": token_ids, "padding_mask": padding_mask},
                                   training=training)
        return _unit(self.text_projection(pooled))

    def call(self, inputs, training=None):
        return {"image_embeddings": self.embed_images(inputs["images"], training=training),
                "text_embeddings": self.embed_texts(inputs["token_ids"], inputs["padding_mask"],
                                                    training=training)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        batch = ops.shape(x["images"])[0]
        ids = default_pair_ids(batch)
        y_true = {"image_ids": x.get("image_ids", ids), "text_ids": x.get("text_ids", ids)}
        y_pred = {**y_pred, "logit_scale": self.logit_scale, "logit_bias": self.logit_bias}
        loss = self.contrastive_loss(y_true, y_pred, sample_weight)
        for extra in self.losses:
            loss = loss + extra
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return {**super().compute_metrics(x, y, y_pred, sample_weight),
                "logit_scale": logit_scale_value(self.logit_scale),
                "logit_bias": ops.convert_to_tensor(self.logit_bias)}

    # ----- raw inputs -----

    def tokenize(self, texts):
        """Strings -> (token_ids (n, L) int32, padding_mask (n, L) bool), cut at L."""
        from vit_tf.data.pairs import ids_function, tokenize_pairs

        if getattr(self, "_ids_of", None) is None:   # traced once, not at every call
            self._ids_of = ids_function(self.tokenizer, self.sequence_length)
        ids = tokenize_pairs(self.tokenizer, texts, self.sequence_length, self._ids_of)
        return ids, ids != 0

    def encode_texts(self, texts, batch_size=512):
        """Strings -> unit embeddings (n, embed_dim) numpy."""
        token_ids, mask = self.tokenize(texts)
        out = [np.asarray(self._embed_texts_fn(token_ids[i:i + batch_size],
                                               mask[i:i + batch_size]))
               for i in range(0, len(token_ids), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), "float32")

    def encode_images(self, images, batch_size=256, features=False):
        """(n, S, S, 3) [0, 255] -> unit embeddings (n, embed_dim) numpy, or the pooled
        features before the projection (``features=True``: the linear probe's input)."""
        fn = self._image_features_fn if features else self._embed_images_fn
        out = [np.asarray(fn(np.asarray(images[i:i + batch_size], "float32")))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out)

    @property
    def _embed_texts_fn(self):
        return _traced(self, "_texts_fn", lambda t, m: self.embed_texts(t, m, training=False))

    @property
    def _embed_images_fn(self):
        return _traced(self, "_images_fn", lambda x: self.embed_images(x, training=False))

    @property
    def _image_features_fn(self):
        return _traced(self, "_features_fn", lambda x: self.image_features(x, training=False))

    # ----- serialization and presets -----

    def get_config(self):
        return {**super().get_config(),
                "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
                "text_encoder": keras.saving.serialize_keras_object(self.text_encoder),
                "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
                "embed_dim": self.embed_dim, "sequence_length": self.sequence_length,
                "pooling": self.pooling, "loss": self.loss_name, "scale_init": self.scale_init,
                "bias_init": self.bias_init, "learn_scale": self.learn_scale}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("image_encoder", "text_encoder", "tokenizer"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    def save_to_preset(self, preset_dir, extra_metadata=None):
        """Write the task and its image tower (an image-encoder preset) into ``preset_dir``."""
        os.makedirs(preset_dir, exist_ok=True)
        self.save(os.path.join(preset_dir, MODEL_FILE))
        info = {"loss": self.loss_name, "logit_scale": float(logit_scale_value(self.logit_scale)),
                "logit_bias": float(self.logit_bias.numpy()), **(extra_metadata or {})}
        save_image_encoder_preset(self.image_encoder, os.path.join(preset_dir, IMAGE_ENCODER_DIR),
                                  {"pretraining": {"task": "contrastive", **info}})
        metadata = {"format": FORMAT, **info,
                    "files": {MODEL_FILE: file_sha256(os.path.join(preset_dir, MODEL_FILE))}}
        path = os.path.join(preset_dir, "metadata.json")   # last, and whole: it marks the preset
        with open(path + ".tmp", "w") as f:
            json.dump(metadata, f, indent=2)
        os.replace(path + ".tmp", path)
        return metadata

    @classmethod
    def from_preset(cls, preset_dir):
        path = os.path.join(preset_dir, "metadata.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{preset_dir}: not a dual-encoder preset (no metadata.json; "
                                    "vit-tf pretrain writes one)")
        with open(path) as f:
            metadata = json.load(f)
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}")
        model_file = os.path.join(preset_dir, MODEL_FILE)
        if not os.path.isfile(model_file):
            raise FileNotFoundError(f"{model_file}: missing from the dual-encoder preset")
        if file_sha256(model_file) != metadata["files"][MODEL_FILE]:
            raise ValueError(f"{model_file}: does not match {path} (changed after saving)")
        import vit_tf.models.encoders  # noqa: F401  (registers the image encoders)

        model = keras.saving.load_model(model_file, compile=False)
        if not isinstance(model, cls):
            raise ValueError(f"{model_file}: holds a {type(model).__name__}, not a DualEncoder")
        return model
