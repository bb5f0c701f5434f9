"""Which image patches each generated token depended on: gradient x input relevance maps.

Method: for a generated answer, the model is run once on the prompt plus the answer (teacher
forcing) and, for every generated token t (its ``<|end|>`` included), we take the gradient of
``log p(token_t)`` with respect to the input pixels. The relevance of patch P to token t is

    R[t, P] = | sum over pixels i in P of  d log p(token_t) / d x_i * (x_i - 127.5) |

the first-order (Taylor) estimate of how much the token's log-probability changes when the
patch is replaced by mid-grey, computed for every patch and token with one Jacobian.

Why gradients and not attention rollout: rollout needs the attention weights of every layer
(keras-hub's decoder blocks do not return them), assumes information only mixes through
attention (ignoring MLPs, the projector and the residual stream's scaling) and is defined for
prefix-concatenation fusion only; gradient x input measures the sensitivity of the actual output
to the actual pixels, through whatever encoder, projector or fusion the config chose. Its known
weaknesses: it is a local, linear estimate (saturated units under-report), and black/grey
regions get little relevance because of the grey baseline.

Example (works in a notebook):
    >>> result = explain(task, "scene.png", "What colour is the circle?")
    >>> result.answer, result.tokens, result.relevance.shape    # (tokens, grid, grid)
    >>> render_overlay(result).save("relevance.png")
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw


BASELINE = 127.5


@dataclass
class Explanation:
    image: np.ndarray        # (S, S, 3) float32 in [0, 255]
    prompt: str
    answer: str
    tokens: list             # generated tokens (as vocabulary strings), <|end|> last if produced
    token_ids: list
    relevance: np.ndarray    # (tokens, grid, grid) >= 0
    patch_size: int


def default_patch_size(model):
    """The image encoder's patch size when it has one, else 8 pixels."""
    return int(model.image_encoder.patch_size or 8)


def patch_relevance(model, image, prompt_ids, answer_ids, patch_size, baseline=BASELINE):
    """(S, S, 3) image, prompt and answer ids -> (len(answer_ids), grid, grid) relevance."""
    size = image.shape[0]
    if size % patch_size:
        raise ValueError(f"image size {size} is not a multiple of the patch size {patch_size}")
    ids = tf.constant([list(prompt_ids) + list(answer_ids)], tf.int32)
    n, t = len(prompt_ids), len(answer_ids)
    x = tf.constant(np.asarray(image, np.float32)[None])                      # (1, S, S, 3)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        logits = model({"images": x, "token_ids": ids, "padding_mask": tf.ones_like(ids, tf.bool)},
                       training=False)                                         # (1, L, vocab)
        log_probs = tf.nn.log_softmax(logits[0, n - 1 : n - 1 + t])           # (t, vocab)
        chosen = tf.gather(log_probs, answer_ids, batch_dims=1)               # (t,)
    jacobian = tape.jacobian(chosen, x, experimental_use_pfor=False)[:, 0]    # (t, S, S, 3)
    contribution = jacobian.numpy() * (np.asarray(image, np.float32) - baseline)
    g = size // patch_size
    per_patch = contribution.reshape(t, g, patch_size, g, patch_size, 3).sum(axis=(2, 4, 5))
    return np.abs(per_patch)                                                   # (t, grid, grid)


def explain(model, image, prompt, max_new_tokens=16, generator=None, patch_size=None):
    """Generate a greedy answer to ``prompt`` about ``image`` (any image the preprocessor
    accepts) and explain each of its tokens."""
    generator = generator or model.generator(max_new_tokens, jit_compile=False)
    conversation = [{"from": "human", "value": prompt}]
    image = generator.pixels([image])[0]                                      # (S, S, 3)
    answer_ids = generator.generate_ids(image[None], [conversation])[0]
    prompt_ids = generator.prompt_ids([conversation])[0]
    explained = list(answer_ids)
    if len(answer_ids) < generator.max_new_tokens:
        explained.append(generator.preprocessor.stop_id)  # the answer stopped: explain it too
    patch_size = patch_size or default_patch_size(model)
    relevance = patch_relevance(model, image, prompt_ids, explained, patch_size)
    tokens = [generator.preprocessor.id_to_token(int(i)) for i in explained]
    return Explanation(image, prompt, generator.detokenize(answer_ids), tokens, explained,
                       relevance, patch_size)


def _heat(values):
    """(H, W) in [0, 1] -> (H, W, 3) uint8, black -> red -> yellow -> white."""
    v = np.clip(values, 0, 1)[..., None]
    rgb = np.concatenate([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1)
    return (rgb * 255).astype(np.uint8)


def _panel(image, relevance, scale, alpha=0.6):
    size = image.shape[0] * scale
    base = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize((size, size), Image.NEAREST)
    if relevance is None:
        return base
    norm = relevance / relevance.max() if relevance.max() > 0 else relevance
    heat = Image.fromarray(_heat(norm)).resize((size, size), Image.NEAREST)
    return Image.blend(base, heat, alpha)


def render_overlay(explanation, scale=4, max_tokens=12):
    """One PNG-ready image: the input, the mean map, then one overlay per generated token.

    Each map is normalised to its own maximum (brightest = most relevant patch for that token).
    """
    e = explanation
    panels = [("image", None), ("all tokens", e.relevance.mean(axis=0))]
    panels += list(zip(e.tokens[:max_tokens], e.relevance[:max_tokens]))
    side = e.image.shape[0] * scale
    label_h = 14
    canvas = Image.new("RGB", (len(panels) * (side + 4), side + 2 * label_h + 4), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((2, side + label_h + 2), f"Q: {e.prompt}  A: {e.answer}"[:160], fill="black")
    for i, (label, rel) in enumerate(panels):
        x = i * (side + 4)
        canvas.paste(_panel(e.image, rel, scale), (x, 0))
        draw.text((x + 2, side + 1), label[:14], fill="black")
    return canvas


def relevance_summary(name, explanation, step, scale=4):
    """Write ``render_overlay`` as a TensorBoard image (inside ``writer.as_default()``)."""
    picture = np.asarray(render_overlay(explanation, scale=scale))[None]      # (1, H, W, 3)
    return tf.summary.image(name, picture, step=step)
