"""The task surface of ``VisionLanguageModel`` (keras-hub ``CausalLM`` style).

With its ``VisionLanguagePreprocessor`` attached, the model takes raw inputs everywhere:

    task.compile()                              # AdamW + warmup/cosine, masked mean loss, XLA
    task.fit(raw_ds)                            # tf.data of raw {images, roles/values | prompts/responses}
    task.generate({"images": ["cat.png"], "prompts": ["What is it?"]}, max_new_tokens=16)
    for piece in task.generate_stream("cat.png", "Describe it."): print(piece, end="")
    task.save_to_preset("my_model");  VisionLanguageModel.from_preset("my_model")

A preset folder (also the run folder ``vit-tf train`` writes):

    metadata.json        format, versions, decoding defaults, SHA-256 of every file below
    task.json            the task's Keras config (encoder, projector, decoder, preprocessor)
    task.weights.h5      its weights (no optimizer state)
    preprocessor.json    the preprocessor alone (loadable without the model)
    assets/tokenizer/    the tokenizer's vocabulary (and merges / SentencePiece proto)

``from_preset`` checks every file against ``metadata.json`` before loading, so a missing,
truncated or swapped file is named instead of loading a half-matching model.
"""

import dataclasses
import json
import os

import keras

from vit_tf.digest import check_file_digests, file_sha256

PRESET_FORMAT = "vit_tf preset v1"
METADATA_FILE = "metadata.json"
TASK_FILE = "task.json"
WEIGHTS_FILE = "task.weights.h5"


def masked_mean_loss():
    """Token cross-entropy averaged over trained tokens: sum(loss * w) / sum(w) per batch (the
    preprocessor's sample_weight is 1 on the assistant's tokens and their end marker)."""
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight")


def warmup_cosine(learning_rate=1e-3, warmup_steps=100, decay_steps=None, min_learning_rate=0.0):
    """Linear warmup to ``learning_rate``; then cosine decay over ``decay_steps`` to
    ``min_learning_rate`` (constant when ``decay_steps`` is None)."""
    if not decay_steps:
        decay_steps, alpha = 10**12, 1.0
    else:
        alpha = min_learning_rate / learning_rate
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(int(decay_steps), 1), alpha=alpha,
        warmup_target=learning_rate, warmup_steps=int(warmup_steps))


def _preset_files(preset_dir):
    files = [TASK_FILE, WEIGHTS_FILE, "preprocessor.json"]
    assets = os.path.join(preset_dir, "assets")
    for root, _, names in os.walk(assets):
        files += sorted(os.path.relpath(os.path.join(root, n), preset_dir) for n in names)
    return files


class PresetError(ValueError):
    """A preset folder that cannot be loaded: the message names the folder and the file."""


def read_preset_metadata(preset_dir):
    """``metadata.json`` of a preset, after checking every listed file exists and matches."""
    if not os.path.isdir(preset_dir):
        raise FileNotFoundError(f"{preset_dir}: no such preset folder")
    path = os.path.join(preset_dir, METADATA_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not a vit_tf preset (no {METADATA_FILE}; a run that has "
                                "not finished training has none: its checkpoints are "
                                f"{os.path.join(preset_dir, 'checkpoints')}/*.keras)")
    try:
        with open(path) as f:
            metadata = json.load(f)
        files = metadata["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise PresetError(f"{path}: unreadable preset metadata ({e})") from None
    if metadata.get("format") != PRESET_FORMAT:
        raise PresetError(f"{path}: format {metadata.get('format')!r}, expected {PRESET_FORMAT!r}")
    check_file_digests(preset_dir, files, path, error=PresetError)
    return metadata


def save_task_preset(task, preset_dir, metadata):
    """Write ``task`` (with its preprocessor) as a preset folder: the preprocessor's files,
    ``task.json`` (no training optimizer: a preset is for using the model, and the optimizer may
    be vit_tf.training's, which a serving process neither has nor needs; compile() again to
    train further), the weights, and last, atomically, ``metadata.json`` (format, versions, the
    task's class, ``metadata``'s entries and a SHA-256 of every file: its presence means the
    preset is complete). The folder may exist (a run folder) but must not hold a preset yet.
    The one writer of the VLM's and text-to-image's presets."""
    from vit_tf import __version__

    if os.path.exists(os.path.join(preset_dir, METADATA_FILE)):
        raise FileExistsError(f"{preset_dir} already holds a preset; choose another folder")
    os.makedirs(preset_dir, exist_ok=True)
    task.preprocessor.save_to_preset(preset_dir)
    config = keras.saving.serialize_keras_object(task)
    config.pop("compile_config", None)
    with open(os.path.join(preset_dir, TASK_FILE), "w") as f:
        json.dump(config, f, indent=2)
    task.save_weights(os.path.join(preset_dir, WEIGHTS_FILE))
    metadata = {"format": PRESET_FORMAT, "vit_tf_version": __version__,
                "keras_version": keras.__version__, "task": type(task).__name__,
                "image_size": task.preprocessor.image_size, **metadata,
                "files": {name: file_sha256(os.path.join(preset_dir, name))
                          for name in _preset_files(preset_dir)}}
    tmp = os.path.join(preset_dir, METADATA_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(metadata, f, indent=2)
    os.replace(tmp, os.path.join(preset_dir, METADATA_FILE))
    return preset_dir


def load_task_preset(cls, preset_dir, preprocessor_class):
    """The task of class ``cls`` saved in ``preset_dir`` (its files checked against
    ``metadata.json``): rebuilt from ``task.json`` in safe mode with the preprocessor that
    ``preprocessor_class.from_preset`` loads (with its vocabulary), then its weights. The one
    loader of the VLM's and text-to-image's presets; errors name the file."""
    read_preset_metadata(preset_dir)
    path = os.path.join(preset_dir, TASK_FILE)
    with open(path) as f:
        config = json.load(f)
    preprocessor = preprocessor_class.from_preset(preset_dir)
    config["config"]["preprocessor"] = None   # the loaded one (with its vocabulary) instead
    try:
        task = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except (TypeError, ValueError) as e:
        raise PresetError(f"{path}: cannot rebuild the task ({e})") from None
    if not isinstance(task, cls):
        raise PresetError(f"{path}: holds a {type(task).__name__}, not a {cls.__name__}")
    task.preprocessor = preprocessor
    try:
        task.load_weights(os.path.join(preset_dir, WEIGHTS_FILE))
    except ValueError as e:
        raise PresetError(f"{os.path.join(preset_dir, WEIGHTS_FILE)}: does not fit "
                          f"{path} ({e})") from None
    return task


class TaskMixin:
    """Raw-input ``compile`` / ``fit`` / ``generate`` and presets for ``VisionLanguageModel``."""

    # ----- training -----

    def compile(self, optimizer="auto", loss="auto", *, weighted_metrics="auto", jit_compile=True,
                learning_rate=1e-3, warmup_steps=100, decay_steps=None, weight_decay=0.01,
                **kwargs):
        """Keras ``compile`` with defaults for instruction tuning.

        ``"auto"``: AdamW (``weight_decay``, global gradient clipping at 1.0; no decay on
        biases, norms and embeddings) on ``warmup_cosine(learning_rate, warmup_steps,
        decay_steps)``, the masked mean token loss, token accuracy, XLA. Anything else is
        passed to Keras unchanged.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                learning_rate=warmup_cosine(learning_rate, warmup_steps, decay_steps),
                weight_decay=weight_decay, global_clipnorm=1.0)
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings"])
        if loss == "auto":
            loss = masked_mean_loss()
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")]
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics,
                        jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """As Keras' own, which skips a custom ``compile`` (a saved compile config holds every
        argument explicitly, so it passes through ours unchanged)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _preprocessed(self, data, batch_size=32):
        """A tf.data of raw examples -> (inputs, labels, sample_weight) batches; anything else
        (already preprocessed data, arrays) unchanged."""
        import tensorflow as tf

        if not isinstance(data, tf.data.Dataset) or not isinstance(data.element_spec, dict):
            return data
        spec = data.element_spec
        if not ({"roles", "values"} <= set(spec) or {"prompts", "responses"} <= set(spec)):
            return data
        if self.preprocessor is None:
            raise ValueError("raw examples need a preprocessor: build the model with "
                             "preprocessor=VisionLanguagePreprocessor(...)")
        image_rank = spec["images"].shape.rank
        batched = image_rank == (1 if spec["images"].dtype == tf.string else 4)
        if batched:
            return data.map(self.preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        data = data.map(self.preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        return data.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def _for_keras(self, data, batch_size):
        """``_preprocessed``, and a ``tf.data`` without the autotuning thread whose wait ends
        every ``fit``/``evaluate`` call (``vit_tf.data.pipeline.without_autotune_thread``)."""
        import tensorflow as tf

        from vit_tf.data.pipeline import without_autotune_thread

        data = self._preprocessed(data, batch_size)
        return without_autotune_thread(data) if isinstance(data, tf.data.Dataset) else data

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, **kwargs):
        """Keras ``fit``; a ``tf.data`` of raw examples goes through the preprocessor first
        (batched datasets as they are, unbatched ones in batches of ``batch_size`` or 32).
        Any ``tf.data`` runs without tf.data's autotuning thread unless its options set it."""
        x = self._for_keras(x, batch_size or 32)
        validation_data = self._for_keras(validation_data, batch_size or 32)
        if x is not None and hasattr(x, "element_spec"):
            batch_size = None  # Keras refuses batch_size with a dataset
        return super().fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        x = self._for_keras(x, batch_size or 32)
        if x is not None and hasattr(x, "element_spec"):
            batch_size = None
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    # ----- generation -----

    def generator(self, max_new_tokens=48, sampler="greedy", use_cache=True, jit_compile=True,
                  stop_tokens=(), min_new_tokens=0):
        """The ``vit_tf.models.generation.Generator`` for these settings (kept and reused, so
        each setting is traced once); ``min_new_tokens``: no stop token before that many."""
        from vit_tf.models.generation import Generator

        sampler_key = sampler if isinstance(sampler, str) else id(sampler)
        key = (max_new_tokens, sampler_key, use_cache, jit_compile, tuple(stop_tokens),
               min_new_tokens)
        cache = self.__dict__.setdefault("_vit_tf_generators", {})
        if key not in cache:
            cache[key] = Generator(self, self.preprocessor, max_new_tokens=max_new_tokens,
                                   use_cache=use_cache, jit_compile=jit_compile, sampler=sampler,
                                   stop_tokens=stop_tokens, min_new_tokens=min_new_tokens)
        return cache[key]

    @staticmethod
    def _raw_inputs(inputs, prompts):
        """(images list, conversations list, single?) from the accepted ``generate`` inputs."""
        if isinstance(inputs, dict):
            images = inputs["images"]
            prompts = inputs.get("prompts", inputs.get("conversations"))
            if prompts is None:
                raise ValueError("generate({...}) needs 'images' and 'prompts' (or "
                                 "'conversations')")
        else:
            images = inputs
        if prompts is None:
            raise ValueError("generate needs prompts: generate(images, prompts) or "
                             "generate({'images': ..., 'prompts': ...})")
        single = isinstance(prompts, str) or (
            isinstance(prompts, list) and prompts and isinstance(prompts[0], dict))
        if single:
            prompts = [prompts]
        if isinstance(images, (str, bytes)) or (hasattr(images, "ndim") and images.ndim == 3):
            images = [images]
        conversations = [[{"from": "human", "value": p}] if isinstance(p, str) else list(p)
                         for p in prompts]
        if len(images) == 1 and len(conversations) > 1:
            images = list(images) * len(conversations)
        if len(images) != len(conversations):
            raise ValueError(f"{len(images)} images but {len(conversations)} prompts")
        return images, conversations, single

    def generate(self, inputs, prompts=None, max_new_tokens=48, sampler="greedy", **kwargs):
        """Answers to prompts about images, batched; raw inputs in, text out.

        ``inputs``: ``{"images": ..., "prompts": [...]}`` (or ``"conversations"``: lists of
        ``{"from", "value"}`` turns ending with a human turn), or images with ``prompts`` given
        separately. Images: paths, encoded bytes, uint8 or float arrays. ``sampler``: "greedy",
        "beam", "top_k", "top_p" or a keras-hub sampler. One prompt -> one string; a list -> a
        list. ``kwargs``: ``use_cache``, ``jit_compile``, ``stop_tokens``.
        """
        images, conversations, single = self._raw_inputs(inputs, prompts)
        answers = self.generator(max_new_tokens, sampler, **kwargs).generate(images, conversations)
        return answers[0] if single else answers

    def generate_stream(self, inputs, prompts=None, max_new_tokens=48, sampler="greedy",
                        **kwargs):
        """As ``generate``, yielding ``StreamEvent``s (one per step: each row's new token and
        text delta); for one prompt, yields its text pieces instead."""
        images, conversations, single = self._raw_inputs(inputs, prompts)
        events = self.generator(max_new_tokens, sampler, **kwargs).stream(images, conversations)
        if not single:
            yield from events
            return
        for event in events:
            if event.text_deltas[0]:
                yield event.text_deltas[0]

    # ----- presets -----

    def save_to_preset(self, preset_dir, generate_config=None, extra_metadata=None):
        """Write the task as a preset folder (see the module docstring); the folder may exist
        (a run folder) but must not hold a preset yet. ``generate_config``: decoding defaults
        (a ``GenerateConfig``) recorded for the commands."""
        from vit_tf.config import GenerateConfig

        if self.preprocessor is None:
            raise ValueError("save_to_preset needs the model's preprocessor (tokenizer, chat "
                             "format, image size): build it with preprocessor=...")
        return save_task_preset(self, preset_dir, {
            "chat_format": self.preprocessor.chat_format,
            "generate": dataclasses.asdict(generate_config or GenerateConfig()),
            **(extra_metadata or {})})

    @classmethod
    def from_preset(cls, preset_dir):
        """Load a task saved with ``save_to_preset`` (or a finished run folder)."""
        import vit_tf.models.factory  # noqa: F401  (registers every part for deserialization)
        from vit_tf.data.preprocessor import VisionLanguagePreprocessor

        return load_task_preset(cls, preset_dir, VisionLanguagePreprocessor)

