"""Image-encoder presets: one folder holding a trained encoder, consumed by
``model.encoder.preset`` for any registered encoder (keras-hub's preset shape).

A folder (written by ``save_image_encoder_preset``, e.g. by the contrastive stage
``vit-tf pretrain`` into ``RUN/image_encoder``):

    metadata.json       format, the registered encoder name, image size, tokens, width,
                        how it was trained, and the SHA-256 of the two files below
    config.json         the encoder's Keras config (``keras.saving.serialize_keras_object``)
    model.weights.h5    its weights

``build_image_encoder(config.model.encoder, image_size)`` (the factory's entry) loads such a
folder when ``model.encoder.preset`` names one, checking that it holds the encoder
``model.encoder.name`` names at the configured image size; ``model.encoder.trainable=false`` (or
``train.policy.image_encoder=frozen``) freezes it. The clip / siglip encoders keep reading
keras-hub presets through the same key.

Example:
    >>> save_image_encoder_preset(encoder, "runs/clip/image_encoder", {"loss": "siglip"})
    >>> cfg = apply_overrides(load_experiment("default"),
    ...                       ["model.encoder.preset=runs/clip/image_encoder"])
    >>> build_model(cfg, vocabulary_size=300).image_encoder      # the pretrained ViT
"""

import json
import os

import keras

from vit_tf.digest import check_file_digests, file_sha256
from vit_tf.registry import IMAGE_ENCODERS

FORMAT = "vit_tf image encoder preset v1"
METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
HUB_PRESET_ENCODERS = ("clip", "siglip")   # their preset is a keras-hub preset


def _wrapped(encoder):
    """A functional model around the encoder (Keras saves weights of models)."""
    images = keras.Input((encoder.image_size, encoder.image_size, 3), name="images")
    return keras.Model(images, encoder(images), name="image_encoder_preset")


def registered_name(encoder):
    """The ``IMAGE_ENCODERS`` name of ``encoder``'s class."""
    for name in IMAGE_ENCODERS.names():
        if IMAGE_ENCODERS.get(name) is type(encoder):
            return name
    raise ValueError(f"{type(encoder).__name__} is not a registered image encoder")


def is_image_encoder_preset(path):
    return bool(path) and os.path.isfile(os.path.join(path, METADATA_FILE)) and \
        os.path.isfile(os.path.join(path, CONFIG_FILE))


def save_image_encoder_preset(encoder, folder, extra_metadata=None):
    """Write ``encoder`` (built) into ``folder``; returns the metadata dict."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, CONFIG_FILE), "w") as f:
        json.dump(keras.saving.serialize_keras_object(encoder), f, indent=1)
    _wrapped(encoder).save_weights(os.path.join(folder, WEIGHTS_FILE))
    metadata = {
        "format": FORMAT, "encoder": registered_name(encoder), "class": type(encoder).__name__,
        "image_size": encoder.image_size, "num_tokens": encoder.num_tokens,
        "hidden_dim": encoder.hidden_dim, "keras_version": keras.__version__,
        "files": {name: file_sha256(os.path.join(folder, name)) for name in (CONFIG_FILE,
                                                                          WEIGHTS_FILE)},
        **(extra_metadata or {}),
    }
    with open(os.path.join(folder, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2)
    return metadata


def read_image_encoder_metadata(folder):
    """``metadata.json`` after checking the format and every file's SHA-256."""
    path = os.path.join(folder, METADATA_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: not an image-encoder preset (no {METADATA_FILE}; "
                                "vit-tf pretrain writes one into RUN/image_encoder)")
    try:
        with open(path) as f:
            metadata = json.load(f)
        files = metadata["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable image-encoder preset metadata ({e})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}")
    check_file_digests(folder, files, path)
    return metadata


def load_image_encoder_preset(folder, *, encoder_name=None, image_size=None, trainable=True,
                              name="image_encoder"):
    """The encoder of a preset folder; ``encoder_name`` / ``image_size`` (the config's) must
    match what the folder holds."""
    metadata = read_image_encoder_metadata(folder)
    if encoder_name is not None and metadata["encoder"] != encoder_name:
        raise ValueError(f"model.encoder.preset={folder!r} holds a {metadata['encoder']!r} "
                         f"encoder but model.encoder.name={encoder_name!r}")
    if image_size is not None and metadata["image_size"] != image_size:
        raise ValueError(f"model.encoder.preset={folder!r} was trained on "
                         f"{metadata['image_size']}px images but data.image_size={image_size}")
    with open(os.path.join(folder, CONFIG_FILE)) as f:
        config = json.load(f)
    config["config"]["name"] = name
    encoder = keras.saving.deserialize_keras_object(config)
    _wrapped(encoder).load_weights(os.path.join(folder, WEIGHTS_FILE))
    encoder.trainable = trainable
    return encoder


def build_image_encoder(section, image_size, name="image_encoder"):
    """The encoder of ``config.model.encoder``: from a vit_tf preset folder when
    ``section.preset`` names one, else built by its registered class (clip / siglip read their
    keras-hub preset themselves)."""
    if section.preset and section.name not in HUB_PRESET_ENCODERS:
        return load_image_encoder_preset(section.preset, encoder_name=section.name,
                                         image_size=image_size, trainable=section.trainable,
                                         name=name)
    return IMAGE_ENCODERS.get(section.name).from_section(section, image_size=image_size,
                                                         name=name)
