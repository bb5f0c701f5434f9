"""Writes the ``.keras`` files of tests/models/test_saved_before_move.py with the code as it
was before the models/ split into encoders/ and decoders/ (commit 64498e1).

Run from a checkout of that commit: ``PYTHONPATH=. python tests/models/data/make_pre_move_models.py OUT``.
Each model gets ``OUT/<name>.keras`` and ``OUT/<name>.npz`` (inputs and the logits it gave).
"""

import sys

import keras
import numpy as np

from tests.helpers import tiny_config
from vit_tf.models.factory import build_model

VOCAB, TEXT = 40, 10
MODELS = {
    # name: overrides of tests.helpers.tiny_config
    "transformer_concat_prefix": {"model__decoder__attention": "prefix"},
    "lstm_attention_pooling": {"model__decoder__name": "lstm",
                               "model__fusion__name": "attention_pooling",
                               "model__projector__name": "linear"},
    "transformer_cross_attention": {"model__fusion__name": "cross_attention",
                                    "model__fusion__num_heads": 2,
                                    "model__fusion__gated": "false"},
}


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((2, TEXT), bool)
    mask[1, 7:] = False
    return {"images": rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32"),
            "token_ids": rng.integers(5, VOCAB, (2, TEXT)).astype("int32"),
            "padding_mask": mask}


if __name__ == "__main__":
    out = sys.argv[1]
    for name, overrides in MODELS.items():
        keras.utils.set_random_seed(0)
        model = build_model(tiny_config(**overrides), VOCAB, max_text_length=TEXT)
        x = inputs()
        model.save(f"{out}/{name}.keras")
        np.savez(f"{out}/{name}.npz", logits=np.asarray(model(x)), **x)
