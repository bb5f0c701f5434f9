"""Saving and loading a preprocessor in a preset folder: ``preprocessor.json`` (its Keras config)
and ``assets/tokenizer/`` (the tokenizer's vocabulary / model files).

One owner for both preprocessors that live in presets (the VLM's ``VisionLanguagePreprocessor``
and text-to-image's ``TextToImagePreprocessor``): each inherits ``PreprocessorPresetMixin`` and
names what a folder of its kind is in ``PRESET_WHAT`` (for the errors), and may check the
loaded object further in ``_check_loaded``.

Example:
    >>> preprocessor.save_to_preset("my_model")
    >>> VisionLanguagePreprocessor.from_preset("my_model")
"""

import json
import os

import keras

PREPROCESSOR_FILE = "preprocessor.json"
ASSETS_DIR = os.path.join("assets", "tokenizer")


class PreprocessorPresetMixin:
    """``save_to_preset`` / ``from_preset`` for a Keras layer that owns a ``tokenizer`` with
    ``save_assets`` / ``load_assets``. Errors name the missing or bad file."""

    PRESET_WHAT = "vit_tf preset"   # "is DIR a <this>?" in the errors

    def save_to_preset(self, preset_dir):
        """Write ``preprocessor.json`` and the tokenizer's assets into ``preset_dir``."""
        assets = os.path.join(preset_dir, ASSETS_DIR)
        os.makedirs(assets, exist_ok=True)
        self.tokenizer.save_assets(assets)
        with open(os.path.join(preset_dir, PREPROCESSOR_FILE), "w") as f:
            json.dump(keras.saving.serialize_keras_object(self), f, indent=2)

    @classmethod
    def from_preset(cls, preset_dir):
        """The preprocessor saved in ``preset_dir``, its tokenizer assets loaded."""
        path = os.path.join(preset_dir, PREPROCESSOR_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no preprocessor (is {preset_dir} a "
                                    f"{cls.PRESET_WHAT}?)")
        try:
            with open(path) as f:
                preprocessor = keras.saving.deserialize_keras_object(json.load(f))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a {cls.__name__} config ({e})") from None
        if not isinstance(preprocessor, cls):
            raise ValueError(f"{path}: holds a {type(preprocessor).__name__}, not a {cls.__name__}")
        assets = os.path.join(preset_dir, ASSETS_DIR)
        try:
            preprocessor.tokenizer.load_assets(assets)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"{assets}: tokenizer assets missing or unreadable "
                                    f"({e})") from None
        preprocessor._check_loaded()
        return preprocessor

    def _check_loaded(self):
        """Further checks once the assets are loaded (none by default)."""
