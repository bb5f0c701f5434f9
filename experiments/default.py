"""Default experiment: the quickstart model on the built-in shapes world.

A conv-stem ViT (64x64 images, 16 image tokens, 2 layers, width 64) -> 2-layer MLP projector ->
2-layer causal Transformer decoder (width 64), trained from scratch for 18 epochs. Width 64
was chosen over 128 because on 2 CPU cores a fixed time budget buys ~2x more epochs, and
grounding (attribute / position / existence) improves with epochs far more than with width:
at equal wall time (~14 min) width 128 / 6 epochs reached 56.3% overall exact match, width 64 /
12 epochs 65.6%.

Command (the main job of the README's quickstart):

    vit-tf quickstart            # shapes world 2000 train / 200 test scenes, seed 0

or step by step:

    vit-tf data shapes --out data/shapes --train 2000 --test 200 --seed 0
    vit-tf train --data data/shapes/train.json --image-root data/shapes --out runs/default
    vit-tf eval --model runs/default --data data/shapes/test.json --image-root data/shapes

Result reached (fresh clone, 2 CPU cores, 13.7 min end to end; exact match on the test split,
majority-answer baseline in brackets): attribute 73.0 (19.0), position 74.0 (27.6), existence
80.5 (50.0), counting 76.0 (52.0), relation 48.6 (42.0), conversation turns 60.9 (20.4); overall
short answers 67.1 (30.3). Captions BLEU-4 0.69 / CIDEr-D 7.53, descriptions 0.70 / 6.66.
Below the 90% target on attribute / position / existence; see experiments/README.md.
"""

from vit_tf.config import ExperimentConfig


def get_config():
    config = ExperimentConfig(name="default")
    config.data.image_size = 64
    config.data.batch_size = 32
    enc = config.model.encoder
    enc.patch_size = 16       # 16 image tokens: 4x cheaper than patch 8, no worse at 3 epochs
    enc.conv_stem = True
    enc.stem_norm = True      # BatchNorm in the stem: +10 points attribute at 8 epochs (see README)
    enc.hidden_dim = 64
    enc.intermediate_dim = 128
    dec = config.model.decoder
    dec.hidden_dim = 64
    dec.intermediate_dim = 256
    config.train.epochs = 15      # BatchNorm costs ~10% per step; 15 epochs keep the 15 min
    config.train.learning_rate = 1e-3
    return config
