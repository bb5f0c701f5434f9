"""Per-part training policy: ``frozen`` / ``full`` / ``lora`` and a learning-rate multiplier.

The parts are the VLM's ``image_encoder``, ``projector``, ``decoder`` and the decoder's
``fusion`` (when it has weights; it is left out of the decoder's policy). A stage applies its
``PolicyConfig`` before it compiles:

    >>> multipliers = apply_policy(model, config.train.policy, config.train.lora)
    >>> compile_model(model, config.train, total_steps, lr_multipliers=multipliers)

``frozen`` sets ``layer.trainable = False`` (BatchNorm then also runs in inference mode);
``lora`` adapts the part's Dense / EinsumDense layers (``vit_tf.training.lora``) and trains only
the LoRA factors; ``full`` trains every variable. Per-part learning rates are applied by
``PartAdamW`` (``vit_tf.training.optim``) from the returned ``{variable path: multiplier}``.
"""

import dataclasses
import math

import keras

from vit_tf.config import PART_MODES, ConfigError
from vit_tf.training.lora import enable_lora, lora_variables

PARTS = ("image_encoder", "projector", "decoder", "fusion")


def part_layers(model):
    """{part name: layer}; ``fusion`` only when the decoder has one with weights."""
    parts = {"image_encoder": model.image_encoder, "projector": model.projector,
             "decoder": model.decoder}
    fusion = model.decoder.fusion                  # always set (LanguageDecoder contract)
    if fusion.weights:
        parts["fusion"] = fusion
    return parts


def check_policy(policy, where="train.policy"):
    for part in PARTS:
        mode = getattr(policy, part)
        if mode not in PART_MODES:
            raise ConfigError(f"{where}.{part}={mode!r}: expected one of {PART_MODES}")
        lr = getattr(policy, f"{part}_lr")
        if lr < 0:
            raise ConfigError(f"{where}.{part}_lr={lr}: a learning-rate multiplier must be >= 0")


def resolve_policy(policy, model_config):
    """``policy``, with the image encoder frozen when ``model.encoder.trainable=false`` (a frozen
    pretrained encoder stays frozen whatever the stage's policy says)."""
    if model_config.encoder.trainable or policy.image_encoder == "frozen":
        return policy
    return dataclasses.replace(policy, image_encoder="frozen")


def _weights(layer, skip):
    skipped = set() if skip is None else {id(v) for v in skip.weights}
    return [v for v in layer.weights if id(v) not in skipped]


def _apply(layer, mode, lora, skip):
    """Set one part's trainable state; ``skip`` (the fusion inside the decoder) is left alone."""
    if mode == "frozen" and skip is None:
        layer.trainable = False
        return
    layer.trainable = True
    if mode == "full" and skip is None:
        return
    keep = set()
    if mode == "lora":
        enable_lora(layer, lora.rank, lora.alpha, skip=skip)
        keep = {id(v) for v in lora_variables(layer)}
        for sub in layer._flatten_layers():  # no moving statistics update in an adapted part
            if isinstance(sub, keras.layers.BatchNormalization):
                sub.trainable = False
    for v in _weights(layer, skip):
        v.trainable = mode == "full" or id(v) in keep


def apply_policy(model, policy, lora, where="train.policy"):
    """Freeze / adapt / unfreeze the parts of ``model``; returns ``{variable path: lr multiplier}``
    for the variables whose multiplier is not 1.

    Call it once per stage, before compiling (trainable variables are read at compile time).
    LoRA is enabled once and stays: a part cannot go from ``lora`` back to ``full``.
    """
    check_policy(policy, where)
    parts = part_layers(model)
    model.trainable = True  # start from a clean state (a previous stage may have frozen parts)
    for name, layer in parts.items():
        adapted = [s for s in layer._flatten_layers() if getattr(s, "lora_enabled", False)]
        if adapted and name != "fusion" and getattr(policy, name) != "lora":
            raise ConfigError(f"{where}.{name}={getattr(policy, name)!r}: the {name} already has "
                              "LoRA from an earlier stage; it can only stay 'lora'")
        for sub in adapted:
            sub._kernel.trainable = False  # the reset above made the base kernels trainable
    for name, layer in parts.items():
        skip = parts.get("fusion") if name == "decoder" else None
        _apply(layer, getattr(policy, name), lora, skip)
    multipliers = {}
    for name, layer in parts.items():  # the fusion comes last: its multiplier wins over the decoder's
        for v in layer.weights:
            multipliers[v.path] = float(getattr(policy, f"{name}_lr"))
    return {path: m for path, m in multipliers.items() if m != 1.0}


def trainable_counts(model):
    """{part: trainable parameter count} (after ``apply_policy``), for logs and the summary."""
    counts = {}
    for name, layer in part_layers(model).items():
        trainable = layer.trainable_weights if layer.trainable else []
        counts[name] = int(sum(math.prod(v.shape) for v in trainable))
    return counts
