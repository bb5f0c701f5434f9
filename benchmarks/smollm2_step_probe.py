"""Step time of the SmolLM2 recipe's stages on cached features, per precision and XLA setting.

    python benchmarks/smollm2_step_probe.py PRECISION JIT POLICY STEPS [BATCH] [DATA]

PRECISION float32 | mixed_bfloat16, JIT 0 | 1, POLICY s1 | lora | plora | full (the stage
files' configs, built from the pretrained parts; plora: image-token-only LoRA,
smollm2_stage2_plora), STEPS optimizer steps on up to 200 records per category of
DATA/train.json (default /work/rc/real, `vit-tf data real-images`). Prints the first
call's seconds (tracing / XLA compilation) and seconds per step after it.

Measured 2026-12-06 23:38 on the shared 2 cores (load 0.8 -> 3.3), under the CPU lock:
``mixed_bfloat16 0 lora 8``: first call 107 s, 2.46 s per step of batch 8 (float32 with XLA,
an earlier probe at batch 16: 217 s compilation, 7.3 s per step), peak 5.1 GiB.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vit_tf.experiments import smollm2_stage1, smollm2_stage2_full  # noqa: E402
from vit_tf.experiments import smollm2_stage2_lora, smollm2_stage2_plora  # noqa: E402
from vit_tf.experiments.smollm2_vision import (TRAIN_FILE, feature_cache,  # noqa: E402
                                               fit_widths, new_task, read_split)
from vit_tf.training.feature_training import fit_on_features, peak_memory_gib  # noqa: E402
from vit_tf.training.precision import precision_policy  # noqa: E402


def main(argv):
    prec, jit, pol, steps = argv[0], argv[1] == "1", argv[2], int(argv[3])
    batch = int(argv[4]) if len(argv) > 4 else 8
    data = argv[5] if len(argv) > 5 else "/work/rc/real"
    mod = {"s1": smollm2_stage1, "lora": smollm2_stage2_lora, "plora": smollm2_stage2_plora,
           "full": smollm2_stage2_full}[pol]
    config = mod.get_config()
    config.train.precision, config.train.jit_compile = prec, jit
    t0 = time.perf_counter()
    with precision_policy(prec):
        task = new_task(config)
    print("load", round(time.perf_counter() - t0, 1), flush=True)
    records = read_split(data, TRAIN_FILE, config.train.stage1.categories, 200, 0)
    cache = feature_cache(task, data)
    records, _ = fit_widths(records, task.preprocessor, config.data.pad_widths)
    t = config.train
    s = fit_on_features(task, records, cache, t, t.policy, t.lora, steps=steps, batch_size=batch,
                        max_text_length=config.data.max_text_length,
                        label=f"{prec}/{jit}/{pol}",
                        widths=[int(w) for w in config.data.pad_widths.split(",")],
                        log=lambda m: print(m, flush=True))
    print("RESULT", prec, jit, pol, batch, "first", s["first_call_seconds"], "s/step",
          round(1 / max(s["steps_per_second"], 1e-9), 2), "loss", s["final_loss"], "peak",
          round(peak_memory_gib(), 2), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
