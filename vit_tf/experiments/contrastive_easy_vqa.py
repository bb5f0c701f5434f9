"""Contrastive (SigLIP) pretraining on easy-VQA's question-answer pairs, and zero-shot colour and
shape of its held-out images by prompts.

easy-VQA (the PyPI package ``easy-vqa``, installed by ``requirements-weights.txt``) is
question-only, so the pair texts are the question-answer pairs themselves
(``pretrain.texts=questions``: "what color is the shape? teal", "is there not a circle? no").
The shapes world's encoder is not reused: the images do not match (easy-VQA draws one shape of
continuous size on a light, tinted background, 8 colours of which 4 are the shapes world's, and
rectangles; the shapes world draws 1-3 shapes of two sizes on dark grey, 6 colours, squares), nor
do the words. The image tower is the default experiment's (64x64, conv-stem ViT, patch 16,
width 64, 2 layers), the text tower the contrastive stage's default.

Command:

    vit-tf data easy-vqa --out data/easy_vqa
    vit-tf pretrain --experiment contrastive_easy_vqa --data data/easy_vqa/train.json \
        --image-root data/easy_vqa --val-data data/easy_vqa/test.json --out runs/siglip_easy_vqa \
        --easy-vqa data/easy_vqa

Result reached (2026-12-06, the shared 2-core machine under the CPU lock, load 3.6 -> 3.5):
5 epochs of 150 steps of 256 pairs (all 38,575 training question-answer pairs: colour 5,166,
shape 5,002, yes/no 28,407) in 407 s of training, 414 s in all. Zero-shot on easy-VQA's 984
held-out test images (one question-answer prompt set per class): **colour 100.0%** (chance
12.5%), **shape 51.0%** (chance 33.3%). Retrieval of the 9,673 held-out question texts: image->text
R@1 30.0 / R@5 30.0, text->image R@1 15.1 / R@5 41.4 (most texts are yes/no questions that
several images share, so retrieval is not the measure here). As on the shapes world's
question-answer texts, these pairs teach colour (one word of the answer names it) far better than
shape: 73% of the pairs are yes/no answers whose text says little about the image alone.
"""

from vit_tf.experiments.default import get_config as default_config


def get_config():
    config = default_config()
    config.name = "contrastive_easy_vqa"
    config.model.decoder.num_layers = 2  # the default's before it took 3: the result above
    p = config.pretrain
    p.loss = "siglip"
    p.texts = "questions"              # question-only data: every record's question + answer
    p.batch_size = 256
    p.epochs = 5                       # 150 steps of 256 of the 38575 training pairs each
    p.max_seconds = 480.0              # stops at the first epoch end past it: <= 10 minutes
    p.learning_rate = 2e-3
    p.warmup_steps = 100
    config.train.steps_per_execution = 8
    return config
