"""LLaVA stage 2 on SmolLM2-135M-Instruct + EfficientNet-Lite0, full: from stage 1's preset,
tune the projector and every LM weight on the instruction mix, encoder frozen (LLaVA-1.5's
stage 2; its rate 2e-5).

Command:

    python -m vit_tf.experiments.smollm2_stage2_full --data data/real --init runs/s1 \\
        --out runs/s2_full
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s2_full

Result reached (2026-12-07 12:19-12:48 UTC, the CPU lock, nothing else running, a frozen copy
of main at 6bcc3a2): 600 steps of batch 8 (5,653 examples: `--max-per-category 2000`, 0.85
epoch) in 1,464 s after a 92 s first call, 0.44 steps/s, cosine 5e-5 -> 5e-6, final loss 0.78
(image-token LoRA: 0.92), peak 7.83 GiB:

    python -m vit_tf.experiments.smollm2_stage2_full --data data/real --init runs/s1 \\
        --out runs/s2_full --minutes 25 --max-per-category 2000 \\
        --set train.steps_per_epoch=600 --set train.min_learning_rate=5e-6
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s2_full --no-xla

easy-VQA 85.8% (yes/no about a present thing 0 of 12, about an absent one 73 of 73, open
questions 30 of 35: the same prior as every LoRA run), held-out captions CIDEr-D 0.16 on emoji
and 0.05 on photos, and the LM's own answers **0 of 20** (perplexity 13.86 against the
original's 12.99): tuning every weight at this rate for 600 steps overwrote what the LM said
on its own and taught it nothing the image-token LoRA did not. Not the recipe to keep on this
budget; a lower rate or the text-only chat mix (smollm2_stage2_lora's `--text-chat`) are the
untried levers.
"""

from vit_tf.experiments.smollm2_vision import _policy, get_config as base_config
from vit_tf.experiments.smollm2_vision import stage_config, stage_main


def get_config():
    config = stage_config(base_config(), steps=300, learning_rate=5e-5, warmup_steps=10,
                          policy=_policy(projector="full", decoder="full"), categories="")
    config.data.pad_widths = "48"   # one width: one XLA compilation (1.5-3.5 min)
    config.name = "smollm2_stage2_full"
    return config


if __name__ == "__main__":
    stage_main(get_config, "smollm2_stage2_full", needs_init=True,
               max_per_category=1000)
