"""Can the relation network answer "is A left of B?" at all? The layer alone, on an idealised task.

16 image tokens on a 4 x 4 grid; 2-3 objects of 18 kinds (random vectors) on distinct cells,
the other tokens noise; the question is an ideal composition of the two names and the relation
(A's kind in one subspace, B's in another, + one of left / right / above / below, as a decoder
would have to build it); the answer is yes / no, asked only of pairs clearly apart on the axis.
The ``RelationNetwork`` layer + a linear readout train on fresh batches; accuracy on 1000
held-out questions. Nothing but the layer's capacity is tested: the decoder, the image encoder
and the language are out of the picture.

Command (~15 s per arm on 2 CPU cores):

    python -m vit_tf.experiments.relation_capacity --heads 0 2

Result (2026-12-07 08:43-09:27 UTC, 2 cores shared with a training job, batch 64; held-out
accuracy every 500 steps; identical runs differ by ~2 points, threaded reductions):

| layer | Adam | relation_dim | 500 | 1000 | 1500 | 2000 | 2500 |
|---|---|---|---|---|---|---|---|
| ``select_heads=0`` (the sixth round's runs) | 3e-3 | 32 | 50.1 | 49.1 | 49.4 | 52.8 | 43.4 |
| ``select_heads=2``, pointers | 3e-3 | 32 | 83.4 | 94.3 | 96.4 | 97.8 | 97.7 |
| ``select_heads=2``, pointers | 1e-3 | 32 | 59.5 | 86.6 | 92.8 | 94.1 | |
| ``select_heads=2``, pointers | 1e-3 | 16 | 60.4 | 83.4 | 89.4 | | |
| raw match scores inside g (commit b6459ee) | 3e-3 | 32 | 49.9 | 57.2 | 95.1 | 98.3 | 98.8 |
| raw match scores inside g (commit b6459ee) | 1e-3 | 32 | 50.0 | 47.5 | 50.8 | 52.8 | 77.1 |

The additive layer cannot answer the question at all; the question's pointers learn it, and
at the quickstart's rate (1e-3) far sooner than raw match scores. See
vit_tf/experiments/README.md, "Sixth round".
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from vit_tf.layers.relation_network import RelationNetwork

WIDTH, GRID, KINDS = 64, 4, 18


class RelationTask:
    """Batches of (image tokens (b, 16, 64), question (b, 1, 64), answer (b, 1) in {0, 1})."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.kinds = rng.normal(size=(KINDS, WIDTH)).astype("float32")
        self.names = rng.normal(size=(2, KINDS, WIDTH)).astype("float32") / 2  # A's, B's words
        self.relations = rng.normal(size=(4, WIDTH)).astype("float32")
        self.rng = rng

    def batch(self, size):
        rng, n_tokens = self.rng, GRID * GRID
        images = rng.normal(scale=0.3, size=(size, n_tokens, WIDTH)).astype("float32")
        questions = np.zeros((size, 1, WIDTH), "float32")
        answers = np.zeros((size, 1), "float32")
        for s in range(size):
            count = rng.integers(2, 4)
            cells = rng.choice(n_tokens, count, replace=False)
            kinds = rng.choice(KINDS, count, replace=False)
            images[s, cells] += self.kinds[kinds]
            gap = 0
            while gap == 0:   # a pair clearly apart on the asked axis
                a, b = rng.choice(count, 2, replace=False)
                relation = rng.integers(4)                 # left, right, above, below
                (ra, ca), (rb, cb) = divmod(cells[a], GRID), divmod(cells[b], GRID)
                gap = (cb - ca, ca - cb, rb - ra, ra - rb)[relation]
            questions[s, 0] = (self.names[0, kinds[a]] + self.names[1, kinds[b]]
                               + self.relations[relation])
            answers[s, 0] = gap > 0
        return images, questions, answers


def train_arm(heads, steps, learning_rate, seed=0, relation_dim=32, log=print):
    """Accuracy (%) on 1000 held-out questions every 500 steps: [(step, accuracy)]."""
    task = RelationTask(seed)
    held_images, held_questions, held_answers = task.batch(1000)
    keras.utils.set_random_seed(seed)
    layer = RelationNetwork(WIDTH, relation_dim, select_heads=heads)
    readout = keras.layers.Dense(1)
    readout(layer(held_questions[:2], held_images[:2]))
    variables = layer.trainable_variables + readout.trainable_variables
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function(jit_compile=True)
    def step(images, questions, answers):
        with tf.GradientTape() as tape:
            logits = readout(layer(questions, images))[:, 0]        # (b, 1)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(answers, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    curve, start = [], time.perf_counter()
    for i in range(1, steps + 1):
        step(*task.batch(64))
        if i % 500 == 0 or i == steps:
            said = np.asarray(readout(layer(held_questions, held_images)))[:, 0, 0] > 0
            curve.append((i, 100 * float(np.mean(said == (held_answers[:, 0] > 0)))))
            log(f"select_heads={heads} step {i}: held-out accuracy {curve[-1][1]:.1f}% "
                f"({time.perf_counter() - start:.0f} s)")
    return curve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--relation-dim", type=int, default=32)
    args = parser.parse_args(argv)
    for heads in args.heads:
        train_arm(heads, args.steps, args.learning_rate, relation_dim=args.relation_dim)


if __name__ == "__main__":
    main()
