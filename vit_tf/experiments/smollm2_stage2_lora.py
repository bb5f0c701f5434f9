"""LLaVA stage 2 on SmolLM2-135M-Instruct + EfficientNet-Lite0, LoRA: from stage 1's preset,
tune the projector and LoRA factors (rank 8) of every LM projection on the instruction mix
(captions, easy-VQA questions, two-turn conversations, shapes-world questions), encoder frozen.

Command:

    python -m vit_tf.experiments.smollm2_stage2_lora --data data/real --init runs/s1 \\
        --out runs/s2_lora
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s2_lora

Result reached: not yet measured. In this session the shared CPU lock did not come free in
time (waited from 20:47 to the session's end behind up to 16 other jobs); only the compute probe
ran (vit_tf/experiments/README.md, "SmolLM2 learns to see"). The recipe itself ran end to
end on the tiny stand-in LM (tests/smollm2_tiny.py).
"""

from vit_tf.experiments.smollm2_vision import _policy, get_config as base_config
from vit_tf.experiments.smollm2_vision import stage_config, stage_main


def get_config():
    config = stage_config(base_config(), steps=300, learning_rate=1e-3, warmup_steps=10,
                          policy=_policy(projector="full", decoder="lora"), categories="")
    config.train.lora.rank, config.train.lora.alpha = 8, 16.0
    config.data.pad_widths = "48"   # one width: one graph to build
    # This CPU has AMX-BF16: a LoRA step of batch 8 took 2.46 s in bfloat16 without XLA
    # (107 s first call) against ~3.6 s in float32 with XLA (217 s compilation).
    config.train.precision, config.train.jit_compile = "mixed_bfloat16", False
    config.name = "smollm2_stage2_lora"
    return config


if __name__ == "__main__":
    stage_main(get_config, "smollm2_stage2_lora", needs_init=True,
               max_per_category=1000)
