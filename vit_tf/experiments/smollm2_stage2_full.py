"""LLaVA stage 2 on SmolLM2-135M-Instruct + EfficientNet-Lite0, full: from stage 1's preset,
tune the projector and every LM weight on the instruction mix, encoder frozen (LLaVA-1.5's
stage 2; its rate 2e-5).

Command:

    python -m vit_tf.experiments.smollm2_stage2_full --data data/real --init runs/s1 \\
        --out runs/s2_full
    python -m vit_tf.experiments.smollm2_vision eval --data data/real --model runs/s2_full

Result reached: not yet measured. In this session the shared CPU lock did not come free in
time (waited from 20:47 to the session's end behind up to 16 other jobs); only the compute probe
ran (vit_tf/experiments/README.md, "SmolLM2 learns to see"). The recipe itself ran end to
end on the tiny stand-in LM (tests/smollm2_tiny.py).
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
