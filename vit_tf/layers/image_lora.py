"""Image-token-only LoRA ("Partial LoRA", InternLM-XComposer2, 2024; CogVLM's visual expert is
the same idea with full weights): an LM projection's low-rank update applies only at the image
positions of the sequence; text positions go through the original, frozen kernel.

Text tokens still see the image: they attend to the image positions' keys and values, which
the adapted projections computed (a deep, image-conditioned prefix). A text-only prompt
computes exactly the original LM, by construction.

How the positions reach the projections: a decoder whose image tokens are a prefix of the
sequence runs its transformer layers inside ``image_prefix(P)`` (P: the prefix length, static);
an adapted Dense / EinsumDense reads it in its call and splits its input on the sequence axis
(axis 1 of every Llama / Gemma projection):

    y = concat([x[:, :P] @ (W + alpha / rank * A @ B),  x[:, P:] @ W], axis=1)

Outside the scope (cached decode steps after the prefill, text-only calls, the bare backbone)
P = 0 and the layer computes exactly what the plain layer computes. ``image_prefix(EVERY)``
adapts every position: the decoder's ``with_image`` scope uses it for a whole sequence that has
an image (its decode steps included), so that the text positions of an image conversation are
adapted too while a text-only sequence still computes the original LM. Splitting, not masking a
delta, costs no extra matmul (a gated delta would be computed at every position) and gives the
factors gradients from the image positions only. The factors have Keras' own LoRA shapes
(``A``: kernel.shape[:-1] + (rank,), ``B``: (rank, kernel.shape[-1]); float32; B zeros).

Why the instance's class is switched (``enable_image_lora``): keras-hub builds the projections
inside its blocks; replacing them would change the layer tree (the saved weights' paths), and a
built layer's tracker refuses new sub-layers. Keras' ``enable_lora`` does not fit: its
``kernel`` merges the update for every token, its save merges it into the kernel (wrong here)
and its load zeroes the factors. The subclasses add only this call, the two factors and a save
/ load that keeps kernel and factors apart. They are never serialized on their own: the owner
(``HubCausalLMDecoder``'s ``image_lora`` config) re-adapts a rebuilt LM before weights load.
The update cannot be merged into the kernel (it is not for every token): ``merge_lora`` keeps it.

Example:
    >>> enable_image_lora(backbone, rank=8, alpha=16)       # -> the adapted layers
    >>> with image_prefix(49):                              # 49 image tokens, then the text
    ...     y = block(x)
"""

import contextlib
import threading

import keras
import tensorflow as tf
from keras import ops

_STATE = threading.local()
EVERY = -1   # image_prefix(EVERY): every position is adapted (a sequence with an image, scope
             # "with_image"; vit_tf.models.decoders.hub_lm)


@contextlib.contextmanager
def image_prefix(length):
    """Adapted projections called inside treat the first ``length`` (a Python int) positions of
    axis 1 as image tokens; 0: none (the plain projection); ``EVERY``: all positions."""
    stack = _STATE.__dict__.setdefault("stack", [])
    stack.append(int(length))
    try:
        yield
    finally:
        stack.pop()


def current_image_prefix():
    stack = getattr(_STATE, "stack", None)
    return stack[-1] if stack else 0


class _ImageLora:
    """Mixin of the adapted Dense / EinsumDense (the base class' ``_project_with`` computes the
    layer with another kernel)."""

    image_lora_enabled = True

    def _add_factors(self, rank, alpha):
        kernel_shape = tuple(self._kernel.shape)
        self._tracker.unlock()
        self.lora_kernel_a = self.add_weight(name="lora_kernel_a",
                                             shape=kernel_shape[:-1] + (rank,),
                                             initializer="he_uniform", dtype="float32")
        self.lora_kernel_b = self.add_weight(name="lora_kernel_b",
                                             shape=(rank, kernel_shape[-1]),
                                             initializer="zeros", dtype="float32")
        self._tracker.lock()
        self._kernel.trainable = False
        self.image_lora_rank, self.image_lora_alpha = int(rank), float(alpha)

    def adapted_kernel(self):
        """W + alpha / rank * A @ B, in the compute dtype (as Keras' own LoRA merges it)."""
        delta = ops.matmul(self.lora_kernel_a, self.lora_kernel_b)       # kernel's shape
        scale = self.image_lora_alpha / self.image_lora_rank
        return ops.cast(ops.add(self._kernel, scale * delta), self.compute_dtype)

    def call(self, inputs, training=None):
        prefix = current_image_prefix()
        if not prefix:
            return super().call(inputs, training=training)
        if prefix == EVERY:
            return self._project_with(inputs, self.adapted_kernel())
        # One split, not two slices: the gradient of a slice is a zero-filled tensor of the
        # whole input's shape (two per projection, 210 in SmolLM2), a split's is one concat.
        image, text = tf.split(inputs, [prefix, -1], axis=1)        # (b, P, ...), (b, T, ...)
        image = self._project_with(image, self.adapted_kernel())
        text = super().call(text, training=training)
        return ops.concatenate([image, text], axis=1)                # (b, P + T, ...)

    def _finish(self, y):
        if self.bias is not None:
            y = ops.add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

    def _own_variables(self):
        bias = [] if self.bias is None else [self.bias]
        return [self._kernel, *bias, self.lora_kernel_a, self.lora_kernel_b]

    def save_own_variables(self, store):
        """kernel[, bias], A, B as they are (never merged)."""
        if not self.built:
            return
        for i, variable in enumerate(self._own_variables()):
            store[str(i)] = variable

    def load_own_variables(self, store):
        variables = self._own_variables()
        if len(store.keys()) != len(variables):
            raise ValueError(
                f"layer {self.name!r} has image-token LoRA (kernel[, bias], lora_kernel_a, "
                f"lora_kernel_b: {len(variables)} variables) but the saved weights hold "
                f"{len(store.keys())}: weights saved without the same LoRA")
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])


class ImageLoraDense(_ImageLora, keras.layers.Dense):
    def _project_with(self, x, kernel):
        return self._finish(ops.matmul(x, kernel))


class ImageLoraEinsumDense(_ImageLora, keras.layers.EinsumDense):
    def _project_with(self, x, kernel):
        return self._finish(ops.einsum(self.equation, x, kernel))


_ADAPTED = {keras.layers.Dense: ImageLoraDense, keras.layers.EinsumDense: ImageLoraEinsumDense}


def _check_target(layer):
    if type(layer) not in _ADAPTED:
        raise TypeError(f"image-token LoRA: {layer.name!r} is a {type(layer).__name__}; only "
                        "plain Dense / EinsumDense layers can be adapted")
    if not layer.built:
        raise ValueError(f"image-token LoRA: {layer.name!r} is not built")
    if layer.lora_enabled or layer.quantization_mode is not None:
        raise ValueError(f"image-token LoRA: {layer.name!r} already has Keras LoRA or is "
                         "quantized")
    if isinstance(layer, keras.layers.EinsumDense):
        inputs, output = layer.equation.split("->")
        first = inputs.split(",")[0]
        if len(first) < 2 or first[:2] != output[:2]:
            raise ValueError(f"image-token LoRA: {layer.name!r} ({layer.equation}) does not "
                             "keep (batch, sequence) as its first two axes")


def image_lora_targets(layer):
    """The image-token LoRA layers inside ``layer``."""
    return [sub for sub in layer._flatten_layers() if getattr(sub, "image_lora_enabled", False)]


def enable_image_lora(layer, rank, alpha):
    """Adapt every Dense / EinsumDense inside ``layer`` (built) with image-token LoRA of
    ``rank`` (update scaled by ``alpha / rank``); returns the adapted layers. Layers already
    adapted are kept as they are."""
    if rank < 1:
        raise ValueError(f"train.lora.rank must be >= 1, got {rank}")
    targets = [sub for sub in layer._flatten_layers()
               if isinstance(sub, (keras.layers.Dense, keras.layers.EinsumDense))]
    if not targets:
        raise ValueError(f"{layer.name}: no Dense / EinsumDense layers to put LoRA on")
    for target in targets:
        if isinstance(target, _ImageLora):
            continue
        _check_target(target)
        target.__class__ = _ADAPTED[type(target)]
        target._add_factors(rank, alpha)
    return targets
