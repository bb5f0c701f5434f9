"""LoRA on a part's Dense / EinsumDense layers, and merging it into the base weights for export.

Keras 3's own ``layer.enable_lora(rank, lora_alpha)`` fits what we need, so it is used as is:
it freezes the kernel, adds float32 ``lora_kernel_a`` (d_in, rank) and ``lora_kernel_b``
(rank, d_out, zeros at start) and computes ``x @ W + (alpha / rank) * x @ A @ B``. Its
``save_own_variables`` already writes the *merged* kernel, so a ``.keras`` file of a LoRA model
is a plain model; ``merge_lora`` does the same in memory and returns a model without LoRA.

Image-token-only LoRA (``train.lora.tokens=image``, ``vit_tf.layers.image_lora``) is not
Keras' LoRA: its update is not for every token, so it cannot be merged into the kernel.
``merge_lora`` keeps it (the copy's decoder re-makes the adapters from its config and the factors
are copied); ``lora_variables`` lists its factors too.

Example:
    >>> n = enable_lora(model.decoder, rank=8, alpha=16)   # -> number of layers adapted
    >>> plain = merge_lora(model)                          # same outputs, no LoRA weights
"""

import keras

from vit_tf.layers.image_lora import image_lora_targets

LORA_TYPES = (keras.layers.Dense, keras.layers.EinsumDense)


def lora_targets(layer, skip=None):
    """The Dense / EinsumDense layers inside ``layer`` (``layer`` included), minus those in ``skip``."""
    skipped = set() if skip is None else {id(s) for s in skip._flatten_layers()}
    return [sub for sub in layer._flatten_layers()
            if isinstance(sub, LORA_TYPES) and id(sub) not in skipped]


def enable_lora(layer, rank, alpha, skip=None):
    """Enable LoRA (``rank``, scale ``alpha / rank``) on every target of ``layer`` not yet adapted.

    Returns the list of adapted layers. The targets must be built (build the model first).
    """
    if rank < 1:
        raise ValueError(f"train.lora.rank must be >= 1, got {rank}")
    targets = lora_targets(layer, skip)
    if not targets:
        raise ValueError(f"{layer.name}: no Dense / EinsumDense layers to put LoRA on")
    for target in targets:
        if not target.lora_enabled:
            target.enable_lora(rank, lora_alpha=alpha)
    return targets


def lora_variables(layer):
    """The LoRA factors (A and B of every adapted layer, Keras' or image-token) inside ``layer``."""
    keras_lora = [sub for sub in layer._flatten_layers() if getattr(sub, "lora_enabled", False)]
    return [v for sub in keras_lora + image_lora_targets(layer)
            for v in (sub.lora_kernel_a, sub.lora_kernel_b)]


def has_lora(model):
    """Whether ``model`` has Keras LoRA (mergeable; image-token LoRA is not counted)."""
    return any(getattr(sub, "lora_enabled", False) for sub in model._flatten_layers())


def _variable_layers(model):
    """[(layer, its own variables as ``save_own_variables`` writes them: a LoRA layer's kernel
    merged)] for the layers of ``model`` that own variables."""
    out = []
    for layer in model._flatten_layers():
        store = {}
        layer.save_own_variables(store)
        if store:
            out.append((layer, store))
    return out


def merge_lora(model):
    """A copy of ``model`` without LoRA whose kernels are ``W + (alpha / rank) * A @ B``.

    The copy is built from ``model.get_config()`` (our layers rebuild their Dense layers from
    their own arguments, so the copy has no LoRA) and each layer's variables are copied with
    Keras's own ``save_own_variables`` / ``load_own_variables``, the path a ``.keras`` file takes,
    which merges the factors into the kernel. A model without LoRA is returned unchanged.
    Image-token LoRA is kept as it is (it cannot be merged): the copy's decoder re-makes it.
    """
    if not has_lora(model):
        return model
    merged = model.__class__.from_config(model.get_config())
    # Only the layers that own variables are paired: a preprocessor re-attached to a copy
    # (``precision_copy``) stays tracked beside the one rebuilt from the config, and owns none.
    source, target = _variable_layers(model), _variable_layers(merged)
    if [(type(s), list(v)) for s, v in source] != [(type(t), list(v)) for t, v in target]:
        raise ValueError("merge_lora: the rebuilt model's layers differ from the original's")
    for (_, store), (dst, _) in zip(source, target):
        dst.load_own_variables(store)
    if getattr(model, "preprocessor", None) is not None:
        # The same preprocessor: one rebuilt from the config would lack a preset tokenizer's
        # vocabulary, which lives in assets (BPE / SentencePiece), not in the config.
        merged.preprocessor = model.preprocessor
    return merged
