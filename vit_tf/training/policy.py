"""Per-part training policy: ``frozen`` / ``full`` / ``lora`` and a learning-rate multiplier.

The parts are the VLM's ``image_encoder``, ``projector``, ``decoder`` and the decoder's
``fusion`` (when it has weights; it is left out of the decoder's policy). A stage applies its
``PolicyConfig`` before it compiles:

    >>> multipliers = apply_policy(model, config.train.policy, config.train.lora)
    >>> compile_model(model, config.train, total_steps, lr_multipliers=multipliers)

``frozen`` sets ``layer.trainable = False`` (BatchNorm then also runs in inference mode);
``lora`` adapts the part's Dense / EinsumDense layers (``vit_tf.training.lora``) and trains only
the LoRA factors (the decoder's at the image prefix's positions only with ``lora.tokens=image``:
``vit_tf.layers.image_lora``; the other parts see image tokens only, so their LoRA is as is);
``full`` trains every variable. Per-part learning rates are applied by
``PartAdamW`` (``vit_tf.training.optim``) from the returned ``{variable path: multiplier}``.
"""

import dataclasses
import math

import keras

from vit_tf.config import LORA_TOKENS, PART_MODES, ConfigError
from vit_tf.layers.image_lora import image_lora_targets
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


def check_lora(lora, where="train.lora"):
    if lora.rank < 1:
        raise ConfigError(f"{where}.rank={lora.rank}: must be >= 1")
    if lora.tokens not in LORA_TOKENS:
        raise ConfigError(f"{where}.tokens={lora.tokens!r}: expected one of {LORA_TOKENS}")


def _image_lora_decoder(decoder, where):
    if not hasattr(decoder, "enable_image_lora"):
        raise ConfigError(f"{where}: lora.tokens='image' / 'with_image' needs a decoder whose "
                          f"image tokens are "
                          f"the prefix of a keras-hub LM (gemma, llama), not a "
                          f"{type(decoder).__name__}")
    return decoder


def trains_text_positions(policy, lora):
    """Whether a stage with this policy trains anything a text-only example reaches: the LM's
    weights at text positions (not when the LM is frozen or has image-conditioned LoRA: with
    ``tokens=with_image`` a text-only sequence runs the original weights at inference, so
    training the adapter on one would teach it what it never does)."""
    return policy.decoder == "full" or (policy.decoder == "lora" and lora.tokens == "all")


def resolve_policy(policy, model_config):
    """``policy``, with the image encoder frozen when ``model.encoder.trainable=false`` (a frozen
    pretrained encoder stays frozen whatever the stage's policy says)."""
    if model_config.encoder.trainable or policy.image_encoder == "frozen":
        return policy
    return dataclasses.replace(policy, image_encoder="frozen")


def _weights(layer, skip):
    skipped = set() if skip is None else {id(v) for v in skip.weights}
    return [v for v in layer.weights if id(v) not in skipped]


def _apply(layer, mode, lora, skip, image_tokens_only=False, where="train.policy"):
    """Set one part's trainable state; ``skip`` (the fusion inside the decoder) is left alone.
    ``image_tokens_only``: the decoder's LoRA is image-token-only (``lora.tokens=image``)."""
    if mode == "frozen" and skip is None:
        layer.trainable = False
        return
    layer.trainable = True
    if mode == "full" and skip is None:
        return
    keep = set()
    if mode == "lora" and image_tokens_only:
        _image_lora_decoder(layer, where).enable_image_lora(lora.rank, lora.alpha, lora.tokens)
    elif mode == "lora":
        enable_lora(layer, lora.rank, lora.alpha, skip=skip)
    if mode == "lora":
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
    check_lora(lora, where.replace("policy", "lora"))
    parts = part_layers(model)
    image_only = lora.tokens in ("image", "with_image")   # image-conditioned LoRA
    model.trainable = True  # start from a clean state (a previous stage may have frozen parts)
    for name, layer in parts.items():
        adapted = [s for s in layer._flatten_layers() if getattr(s, "lora_enabled", False)]
        image_adapted = image_lora_targets(layer)
        if (adapted or image_adapted) and name != "fusion" and getattr(policy, name) != "lora":
            raise ConfigError(f"{where}.{name}={getattr(policy, name)!r}: the {name} already has "
                              "LoRA from an earlier stage; it can only stay 'lora'")
        if name == "decoder" and policy.decoder == "lora" and (
                (adapted and image_only) or (image_adapted and not image_only)):
            raise ConfigError(f"{where.replace('policy', 'lora')}.tokens={lora.tokens!r}: the "
                              "decoder already has the other kind of LoRA from an earlier stage")
        for sub in adapted + image_adapted:
            sub._kernel.trainable = False  # the reset above made the base kernels trainable
    for name, layer in parts.items():
        skip = parts.get("fusion") if name == "decoder" else None
        _apply(layer, getattr(policy, name), lora, skip,
               image_tokens_only=image_only and name == "decoder", where=where)
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
