"""Per-step losses of the default experiment for a fixed seed: a before/after check for changes
to the training step (they must keep the numerics).

    PYTHONPATH=$PWD python benchmarks/loss_check.py [--steps 8] [--json out.json]

Random weights (seed 0) and random batches shaped like the default experiment's packed rows
(batch 16, 96 text tokens, 64 px images), compiled by ``compile_model`` with the default
experiment's train config (clipnorm, AdamW, steps_per_execution reduced to divide --steps,
XLA). Prints one loss per step and the final grad_norm / step counts.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from vit_tf.experiments import load_experiment
from vit_tf.models.factory import build_model
from vit_tf.training.optim import compile_model, steps_per_call


def batches(config, vocab, n, seed=0):
    """n batches of (inputs, labels, sample_weight) with variable row lengths and padding."""
    d = config.data
    rng = np.random.default_rng(seed)
    b, t = d.batch_size, d.pack_length if d.pack_by_image else d.max_text_length
    lengths = rng.integers(t // 3, t + 1, (n, b))
    mask = np.arange(t)[None, None, :] < lengths[..., None]                  # (n, batch, text)
    images = rng.uniform(0, 255, (n, b, d.image_size, d.image_size, 3)).astype("float32")
    ids = (rng.integers(5, vocab, (n, b, t)) * mask).astype("int32")
    labels = (rng.integers(5, vocab, (n, b, t)) * mask).astype("int32")
    weights = (mask & (rng.uniform(size=mask.shape) < 0.4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(
        ({"images": images, "token_ids": ids, "padding_mask": mask}, labels, weights))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--experiment", default="default")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    config = load_experiment(args.experiment)
    vocab = config.data.vocabulary_size
    keras.utils.set_random_seed(config.train.seed)
    model = build_model(config, vocab, max_text_length=config.data.pack_length)
    k = steps_per_call(config.train.steps_per_execution, args.steps)
    compile_model(model, config.train, total_steps=100, steps_per_execution=k)
    losses = []
    logger = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    model.steps_per_execution = 1          # one loss per step (k only for the timing runs)
    history = model.fit(batches(config, vocab, args.steps), epochs=1, verbose=0,
                        callbacks=[logger]).history
    result = {"losses": losses, **{k: history[k][0] for k in
                                   ("grad_norm", "examples", "text_tokens", "padded_tokens")}}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
