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

Result reached (2026-12-07 09:20-09:46 UTC, main ed75237 in a frozen copy, under the CPU lock,
load 1.8-2.4): 5,704 examples (the plora mix), all 850 steps of batch 8 in 1,310 s after a
109 s first call (0.55 -> 0.70 steps/s), final loss 0.716, peak 7.25 GiB; the command 1,363 s.
Evaluated (``eval --no-xla``, 157 s): easy-VQA **85.0%** (target 90%: missed): present-object
yes/no questions still **0 of 12**, absent 73 of 73, open 29 of 35 (red read as brown 6
times); held-out emoji CIDEr-D **0.25** (names the object 15.8%) and photos **0.15** (11.8%),
the best captions of any stage-2 run; retention **20/20**, perplexity **12.99** (a text-only
prompt runs the original weights). Adapting the text positions of an image conversation did
not teach presence in 850 steps of the natural mix either.

With complementary presence pairs (``--pair-presence``: each easy-VQA yes/no question of the
sample plus the same question about the other case, 1,380 added, 7,084 examples; the command
above plus ``--pair-presence``, ``--out runs/s2_wilora_pair``; 2026-12-07 17:59-18:30 UTC, main
9f29fbc in a frozen copy, alone under the CPU lock): 850 steps in 1,429 s, final loss 0.708,
peak 7.25 GiB. easy-VQA **61.7%** (present 7/12, absent 36/73, open 31/35), emoji CIDEr-D
0.15, photos 0.14, retention 20/20, perplexity 12.99. ``smollm2_vision presence``: within a
question form the margin log P(yes) - log P(no) separates present from absent with an AUC of
0.379 (positive form) and 0.568 (negated): it answers "yes" to nearly everything. With the
wording cue taken away, nothing from the image replaced it in 850 steps.
Table: vit_tf/experiments/README.md, "SmolLM2 learns to see".
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
