"""The ``TextToImage`` task surface (keras-hub's shape) and its presets.

    task.generate("a large red circle.", seed=0)                         # (S, S, 3) uint8
    task.generate({"prompts": ["a small blue square.", "a large red circle."],
                   "negative_prompts": ["a blue circle.", ""]},
                  num_steps=12, guidance_scale=3.0, seed=0)               # (2, S, S, 3) uint8
    task.save_to_preset("t2i_model");  TextToImage.from_preset("t2i_model")

``seed``: image i of a call uses seed ``seed + i`` (``None``: a random seed), and its noise
depends on that seed alone, so a fixed seed repeats exactly. ``num_steps`` / ``guidance_scale``
default to the task's own settings (recorded in its config and preset). Each setting is traced
once per batch shape (``jit_compile``: XLA, the default).

A preset folder holds what a VLM preset holds (``vit_tf.models.task``: ``metadata.json`` with
the SHA-256 of every file, ``task.json``, ``task.weights.h5``, ``preprocessor.json``,
``assets/tokenizer/``), in the same format, checked the same way before loading.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from vit_tf.models.task import load_task_preset, save_task_preset
from vit_tf.t2i.preprocessor import TextToImagePreprocessor


def prompt_lists(inputs):
    """(prompts, negative_prompts, single) from a string, a list, or {"prompts",
    "negative_prompts"}; a missing or one-element negative list applies to every prompt."""
    negatives = None
    if isinstance(inputs, dict):
        unknown = set(inputs) - {"prompts", "negative_prompts"}
        if unknown or "prompts" not in inputs:
            raise ValueError(f"generate({{...}}) takes 'prompts' and optional "
                             f"'negative_prompts'; got keys {sorted(inputs)}")
        negatives = inputs.get("negative_prompts")
        inputs = inputs["prompts"]
    single = isinstance(inputs, str)
    prompts = [inputs] if single else list(inputs)
    if not prompts:
        raise ValueError("generate needs at least one prompt")
    if isinstance(negatives, str):
        negatives = [negatives]
    negatives = [""] * len(prompts) if negatives is None else list(negatives)
    if len(negatives) == 1:
        negatives = negatives * len(prompts)
    if len(negatives) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(negatives)} negative_prompts")
    for name, values in (("prompts", prompts), ("negative_prompts", negatives)):
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise ValueError(f"{name}[{i}] must be a string, got {type(value).__name__}")
    return prompts, negatives, single


class TextToImage(keras.Model):
    """Base of the text-to-image tasks: ``generate``, presets. A subclass implements
    ``sample(token_ids, padding_mask, negative_ids, negative_mask, seeds, guidance_scale,
    num_steps) -> (B, S, S, 3) float images in [0, 255]`` in TF ops."""

    def __init__(self, preprocessor=None, num_steps=12, guidance_scale=3.0, **kwargs):
        super().__init__(**kwargs)
        if preprocessor is not None and not isinstance(preprocessor, TextToImagePreprocessor):
            raise ValueError(f"preprocessor must be a TextToImagePreprocessor, got "
                             f"{type(preprocessor).__name__}")
        self.preprocessor = preprocessor
        self.num_steps = int(num_steps)
        self.guidance_scale = float(guidance_scale)

    def sample(self, token_ids, padding_mask, negative_ids, negative_mask, seeds,
               guidance_scale, num_steps):
        raise NotImplementedError

    def traced_settings(self):
        """Attributes ``sample`` reads as Python values (a subclass lists its own)."""
        return ()

    def sample_function(self, num_steps, jit_compile=True):
        """The traced ``sample`` for ``num_steps`` (kept, so a setting is traced once)."""
        cache = self.__dict__.setdefault("_vit_tf_samplers", {})
        # sampling settings that are Python attributes are baked into the trace: in the key, so
        # that changing one (e.g. ``task.temperature = 0.5``) traces anew instead of going stale
        key = (int(num_steps), bool(jit_compile), *self.traced_settings())
        if key not in cache:
            length = self.preprocessor.max_text_length
            text = [tf.TensorSpec([None, length], tf.int32), tf.TensorSpec([None, length], tf.bool)]
            # one trace for every batch size (XLA still compiles per concrete shape)
            cache[key] = tf.function(
                lambda ids, mask, nids, nmask, seeds, scale: self.sample(
                    ids, mask, nids, nmask, seeds, scale, int(num_steps)),
                jit_compile=jit_compile,
                input_signature=[*text, *text, tf.TensorSpec([None], tf.int64),
                                 tf.TensorSpec([], tf.float32)])
        return cache[key]

    def generate(self, inputs, num_steps=None, guidance_scale=None, seed=None,
                 batch_size=16, jit_compile=True):
        """Images for prompts: uint8 (S, S, 3) for one string, else (B, S, S, 3).

        ``inputs``: a prompt, a list of prompts, or ``{"prompts": [...], "negative_prompts":
        [...]}``. ``batch_size``: images per compiled call.
        """
        if self.preprocessor is None:
            raise ValueError("generate needs the task's preprocessor: build it with "
                             "preprocessor=TextToImagePreprocessor(...) or load a preset")
        prompts, negatives, single = prompt_lists(inputs)
        num_steps = self.num_steps if num_steps is None else int(num_steps)
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        scale = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - len(prompts)))
        ids, mask = self.preprocessor.tokenize(prompts)
        negative_ids, negative_mask = self.preprocessor.tokenize(negatives)
        seeds = tf.range(len(prompts), dtype=tf.int64) + int(seed)
        fn = self.sample_function(num_steps, jit_compile)
        images = []
        for start in range(0, len(prompts), batch_size):
            part = slice(start, start + batch_size)
            images.append(fn(ids[part], mask[part], negative_ids[part], negative_mask[part],
                             seeds[part], tf.constant(scale, tf.float32)))
        images = np.concatenate([to_uint8(x) for x in images])
        return images[0] if single else images

    # ----- serialization -----

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "preprocessor": keras.saving.serialize_keras_object(self.preprocessor)
                if self.preprocessor is not None else None,
                "num_steps": self.num_steps, "guidance_scale": self.guidance_scale}

    @classmethod
    def deserialize_parts(cls, config, *names):
        config = dict(config)
        for name in ("preprocessor", *names):
            if config.get(name) is not None:
                config[name] = keras.saving.deserialize_keras_object(config[name])
        return config

    def save_to_preset(self, preset_dir, extra_metadata=None):
        """Write the task as a preset folder (the VLM's format); the folder may exist (a run
        folder) but must not hold a preset yet."""
        if self.preprocessor is None:
            raise ValueError("save_to_preset needs the task's preprocessor")
        return save_task_preset(self, preset_dir, {
            "generate": {"num_steps": self.num_steps, "guidance_scale": self.guidance_scale},
            **(extra_metadata or {})})

    @classmethod
    def from_preset(cls, preset_dir):
        """Load a text-to-image preset (or a finished ``vit-tf t2i train`` run folder)."""
        _register_classes()
        return load_task_preset(cls, preset_dir, TextToImagePreprocessor)


def to_uint8(images):
    """Float images in [0, 255] -> uint8 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(images, np.float32)), 0, 255).astype(np.uint8)


def _register_classes():
    """Import every module whose classes a saved task names (a fresh process knows none)."""
    import vit_tf.t2i.diffusion  # noqa: F401
    import vit_tf.t2i.generator  # noqa: F401
    import vit_tf.t2i.maskgit  # noqa: F401
    import vit_tf.t2i.vqvae  # noqa: F401


def load_text_to_image(path):
    """A text-to-image task from a preset / run folder or a ``.keras`` file."""
    if str(path).endswith(".keras"):
        _register_classes()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such model file")
        task = keras.saving.load_model(path, compile=False, safe_mode=True)
        if not isinstance(task, TextToImage) or task.preprocessor is None:
            raise ValueError(f"{path}: not a vit_tf text-to-image task with its preprocessor")
        return task
    return TextToImage.from_preset(path)
