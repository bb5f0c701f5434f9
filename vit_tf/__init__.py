"""vit_tf: visual instruction tuning in Keras 3 / TensorFlow.

Data flow: ``vit_tf.data`` (sources -> preprocessor -> tf.data) -> ``vit_tf.models`` (image
encoder -> projector -> decoder, and the task around them) -> ``vit_tf.training``
(model.fit) -> ``vit_tf.inference`` / ``vit_tf.eval`` / ``vit_tf.export``.

The public names, imported on first use (``import vit_tf`` stays cheap for the CLI)::

    import vit_tf
    pre = vit_tf.VisionLanguagePreprocessor(tokenizer, "vit_tf", image_size=64, max_text_length=160)
    task = vit_tf.build_task(config, pre)          # or vit_tf.VisionLanguageModel.from_preset(dir)
"""

__version__ = "0.1.0"

_PUBLIC = {
    "ExperimentConfig": "vit_tf.config",
    "apply_overrides": "vit_tf.config",
    "VisionLanguagePreprocessor": "vit_tf.data.preprocessor",
    "train_tokenizer": "vit_tf.data.tokenizer",
    "prepare_training_data": "vit_tf.data.training_data",
    "VisionLanguageModel": "vit_tf.models.vlm",
    "build_model": "vit_tf.models.factory",
    "build_task": "vit_tf.models.factory",
    "Generator": "vit_tf.models.generation",
    "load_task": "vit_tf.runs",
    "train": "vit_tf.training.train",
    "export_model": "vit_tf.export.saved_model",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vit_tf' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
