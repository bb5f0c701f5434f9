"""LLaVA stage 1 on SmolLM2-135M-Instruct + EfficientNet-Lite0: align the projector alone
(encoder and LM frozen) on real captioned images (emoji with their Unicode names, easy-VQA
shapes "a blue rectangle"; ``vit-tf data real-images``), from cached encoder tokens.

Command (see ``vit_tf.experiments.smollm2_vision`` for the data and feature steps):

    python -m vit_tf.experiments.smollm2_stage1 --data data/real --out runs/s1
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s1

Result reached: 140 steps of batch 8 (1,120 of 1,896 captions) in 300 s + 94 s compilation,
loss 6.47 -> 3.99, token accuracy 44%, peak 4.33 GiB (2 cores, under the CPU lock, load
2.9-5.3). Evaluated (``eval --no-xla``, 274 s, load 2.3): held-out emoji captions CIDEr-D 0.053,
ROUGE-L 33.6, names the object 8.5%; scikit-image photos CIDEr-D 0.018, names 0%; easy-VQA
(120 test questions) 1.7%; LM retention 20/20 prompts as the original, perplexity 12.99 (the LM
is frozen). Table and commands: vit_tf/experiments/README.md, "SmolLM2 learns to see".
"""

from vit_tf.experiments.smollm2_vision import _policy, get_config as base_config
from vit_tf.experiments.smollm2_vision import stage_config, stage_main


def get_config():
    config = stage_config(base_config(), steps=300, learning_rate=2e-3, warmup_steps=10,
                          policy=_policy(projector="full", decoder="frozen"),
                          categories="caption")
    config.data.pad_widths = "40"   # one width: one XLA compilation (1.5-3.5 min)
    config.name = "smollm2_stage1"
    return config


if __name__ == "__main__":
    stage_main(get_config, "smollm2_stage1")
