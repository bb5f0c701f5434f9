"""Contrastive (SigLIP) pretraining of the default experiment's image encoder on the shapes world.

The image tower is exactly the default experiment's (conv-stem ViT, 64x64 images, patch 16,
width 64, 2 layers, BatchNorm stem), so its preset drops into the VLM with
``--set model.encoder.preset=RUN/image_encoder``; the text tower is a 2-layer width-64
Transformer over a WordPiece vocabulary trained on the pair texts.

Command (RESULTS PENDING: filled in below once measured):

    vit-tf data shapes --out data/shapes --train 4000 --test 200 --seed 0 \\
        --train-questions position=4,attribute=2,existence=3
    vit-tf data shapes --out data/shapes_eval --train 1000 --test 1000 --seed 1
    vit-tf pretrain --experiment contrastive_shapes --data data/shapes/train.json \\
        --image-root data/shapes --val-data data/shapes/test.json --out runs/siglip_shapes \\
        --shapes data/shapes_eval
"""

from vit_tf.experiments.default import get_config as default_config


def get_config():
    config = default_config()
    config.name = "contrastive_shapes"
    p = config.pretrain
    p.loss = "siglip"
    p.texts = "caption,description"   # with ",questions": 6x the pairs, worse (README)
    p.batch_size = 256
    p.epochs = 24                      # 744 steps: ~8.5 min on the shared 2-core machine
    p.max_seconds = 560.0              # and never past the 10 minutes
    p.learning_rate = 2e-3
    p.warmup_steps = 100
    config.train.steps_per_execution = 8
    return config
