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
