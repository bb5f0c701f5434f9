"""Mixed precision: ``train.precision`` = float32 | mixed_bfloat16 | mixed_float16.

Layers take their dtype policy when they are constructed, so the model is *built* inside
``precision_policy(...)``; the global policy is restored on exit, so nothing leaks into code
that runs later (evaluation, other tests). Variables stay float32; matmuls run in
bfloat16 / float16. The logits are computed in float32 (the decoders' tied output projection
has ``reverse_dtype="float32"``), so the softmax cross-entropy is float32 too.
``mixed_float16`` needs loss scaling against underflowing gradients: ``wrap_optimizer`` puts
the optimizer in a ``keras.optimizers.LossScaleOptimizer`` (dynamic scale).

Example:
    >>> with precision_policy("mixed_bfloat16"):
    ...     model = build_model(config, vocabulary_size)
"""

import contextlib

import keras

from vit_tf.config import PRECISIONS, ConfigError


def check_precision(name):
    if name not in PRECISIONS:
        raise ConfigError(f"train.precision={name!r}: expected one of {PRECISIONS}")


@contextlib.contextmanager
def precision_policy(name):
    """Set the global Keras dtype policy to ``name`` inside the block, restore it after."""
    check_precision(name)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer, precision):
    """``LossScaleOptimizer(optimizer)`` for mixed_float16, else ``optimizer``."""
    check_precision(precision)
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer



FLOAT_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def _with_policy(value, name):
    """``value`` (a layer config) with every serialized floating dtype policy set to ``name``
    (integer policies, e.g. token ids' int32, are kept)."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and \
                value.get("config", {}).get("name") in FLOAT_POLICIES:
            return {**value, "config": {**value["config"], "name": name}}
        return {k: _with_policy(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_policy(v, name) for v in value]
    return value


def precision_copy(model, precision):
    """A copy of ``model`` that computes in ``precision``, with the same float32 variables.

    A layer records its dtype policy in its config, so a loaded preset computes in the
    precision it was saved in, whatever the global policy: stage 2 starting from stage 1's
    float32 preset gets a ``mixed_bfloat16`` copy to train, and saves a float32 copy (mixed
    precision is how a stage trains; generation and the LM-retention comparison with the
    original float32 LM then run in one precision). Variables are copied with
    ``save_own_variables`` / ``load_own_variables`` like ``merge_lora``; the preprocessor is
    the same object (its preset tokenizer's vocabulary lives in assets), set to ``precision``.
    """
    check_precision(precision)
    config = model.get_config()
    converted = _with_policy(config, precision)
    if converted == config:
        return model
    with precision_policy(precision):     # layers whose config records no dtype
        copy = model.__class__.from_config(converted)
    from vit_tf.training.lora import _variable_layers

    source, target = _variable_layers(model), _variable_layers(copy)
    if [(type(s), list(v)) for s, v in source] != [(type(t), list(v)) for t, v in target]:
        raise ValueError("precision_copy: the rebuilt model's layers differ from the original's")
    for (_, store), (dst, _) in zip(source, target):
        dst.load_own_variables(store)
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is not None:
        for layer in preprocessor._flatten_layers():
            if layer.dtype_policy.name in FLOAT_POLICIES:
                layer.dtype_policy = precision
        copy.preprocessor = preprocessor
    return copy
