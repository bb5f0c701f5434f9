"""LLaVA stage 2 on SmolLM2-135M-Instruct + EfficientNet-Lite0 with image-token-only LoRA
("Partial LoRA", InternLM-XComposer2, 2024; CogVLM's visual expert is the same idea with full
weights): from stage 1's preset, tune the projector and LoRA factors of every LM projection
that apply at the image tokens' positions only (``train.lora.tokens=image``,
``vit_tf.layers.image_lora``). Text tokens go through the original frozen weights and see the
image through attention to the adapted image positions' keys and values, so a text-only prompt
computes exactly the original LM: retention holds by construction, and the question is how much
of easy-VQA and captioning the image positions alone can learn.

Text-only chat rows (``--text-chat``) are left out: no trained weight acts at a text-only
row's positions (its image prefix is masked), so they would train nothing;
``fit_on_features`` refuses them. Rank 16 (alpha 32, the same alpha / rank = 2 as the LoRA
run) and a learning rate of 2e-3 (1e-3 there): the factors see only the image positions'
share of the gradient.

Command (the same data and budget as stage 2 LoRA's best run, smollm2_stage2_lora):

    python -m vit_tf.experiments.smollm2_stage2_plora --data data/real --init runs/s1 \\
        --out runs/s2_plora --minutes 20 --max-per-category 2000 \\
        --set train.steps_per_epoch=1500 --set data.pad_widths=48,96
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s2_plora \\
        --no-xla

Result reached: (filled in below after the run)
Table: vit_tf/experiments/README.md, "SmolLM2 learns to see".
"""

from vit_tf.experiments.smollm2_stage2_lora import get_config as lora_config
from vit_tf.experiments.smollm2_vision import stage_main


def get_config():
    config = lora_config()
    config.train.lora.tokens = "image"
    config.train.lora.rank, config.train.lora.alpha = 16, 32.0
    config.train.learning_rate = 2e-3
    config.name = "smollm2_stage2_plora"
    return config


if __name__ == "__main__":
    stage_main(get_config, "smollm2_stage2_plora", needs_init=True, max_per_category=1000)
