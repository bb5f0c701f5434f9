"""LLaVA stage 2 on SmolLM2-135M-Instruct + EfficientNet-Lite0 with LoRA on every position of a
sequence that has an image (``train.lora.tokens=with_image``, ``vit_tf.layers.image_lora``):
the text of an image conversation is adapted too, so the LM's text positions can learn to
compare what a question names with the image; a text-only sequence still runs the original
weights, so retention holds by construction, as with image-token-only LoRA.

Why (smollm2_stage2_plora's docstring): with the update at the image positions only, the
model answered every yes/no question about a present colour or shape with "absent" (0 of 12
in the easy-VQA test sample; easy-VQA's prior), and a presence-balanced sample only moved its
bias (63.3%). LoRA at every position of every sequence (smollm2_stage2_lora) loses retention.

Command (stage 2's budget and mix as smollm2_stage2_plora's runs):

    python -m vit_tf.experiments.smollm2_stage2_wilora --data data/real --init runs/s1 \\
        --out runs/s2_wilora --minutes 25 --max-per-category 2000 \\
        --set train.steps_per_epoch=850 --set data.pad_widths=48,96 \\
        --set train.min_learning_rate=1e-4
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s2_wilora \\
        --no-xla

Result reached: see vit_tf/experiments/README.md, "SmolLM2 learns to see".
"""

from vit_tf.experiments.smollm2_stage2_plora import get_config as plora_config
from vit_tf.experiments.smollm2_vision import stage_main


def get_config():
    config = plora_config()
    config.train.lora.tokens = "with_image"
    config.train.learning_rate = 1e-3   # every position adapted: the LoRA run's rate
    config.name = "smollm2_stage2_wilora"
    return config


if __name__ == "__main__":
    stage_main(get_config, "smollm2_stage2_wilora", needs_init=True, max_per_category=1000)
