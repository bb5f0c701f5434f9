"""Planner estimates vs measurements: step time and peak memory for three configs.

    nice -n 19 python benchmarks/plan_check.py [--steps 10] [--recalibrate]

Configs (all at the default experiment's batch, 16 rows, and text length ``--text-length`` (96:
the default's packed rows, ``data.pack_length``; 160 = data.max_text_length costs ~2x more to
compile and run), XLA on):
  * ``default``  : the default experiment (width 64, patch 16 -> 16 image tokens);
  * ``width128`` : default with encoder and decoder width 128 (intermediate 256 / 512);
  * ``patch8``   : default with patch 8 (64 image tokens).
None of them is a calibration model (those are widths 32 and 96,
``vit_tf.planning.planner.calibration_configs``).

Each measurement runs in a fresh process (``vit_tf.planning.measure``): median wall and CPU
seconds over ``--steps`` steps after two warm-up steps, and the resident-memory high-water mark
during those steps minus the process's resident memory after importing TensorFlow. Prints a
markdown table and writes it into the ``plan_check`` section of benchmarks/results.md with the
machine's load (``uptime``) before and after: the machine is shared, wall-clock numbers move with
its load.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks._results import write_section  # noqa: E402
from vit_tf.config import apply_overrides  # noqa: E402
from vit_tf.experiments import load_experiment  # noqa: E402
from vit_tf.planning.measure import measure_in_subprocess  # noqa: E402
from vit_tf.planning.planner import calibrated, make_plan  # noqa: E402

CONFIGS = {
    "default": [],
    "width128": ["model.encoder.hidden_dim=128", "model.encoder.intermediate_dim=256",
                 "model.decoder.hidden_dim=128", "model.decoder.intermediate_dim=512"],
    "patch8": ["model.encoder.patch_size=8"],
}


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def error(estimate, measured):
    return f"{100 * (estimate - measured) / measured:+.0f}%"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--text-length", type=int, default=96)
    p.add_argument("--recalibrate", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)

    load_before = uptime()
    calibration = calibrated(load_experiment("default"), True, recalibrate=args.recalibrate,
                             steps=args.steps)
    mib = 2.0**20
    lines = ["| config | GFLOP/step | est. step s (wall) | measured (median) | error | "
             "est. CPU-s | measured | error | est. peak MiB | measured | error |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, sets in CONFIGS.items():
        config = apply_overrides(load_experiment("default"), sets)
        plan = make_plan(config, text_length=args.text_length, calibration=calibration)
        m = measure_in_subprocess(config, plan.text_length, args.steps)
        row = (f"| {name} | {plan.flops_per_step / 1e9:.2f} | {plan.step_seconds:.3f} | "
               f"{m['wall']:.3f} | {error(plan.step_seconds, m['wall'])} | "
               f"{plan.step_cpu_seconds:.3f} | {m['cpu']:.3f} | "
               f"{error(plan.step_cpu_seconds, m['cpu'])} | {plan.peak_bytes / mib:.0f} | "
               f"{m['peak_bytes'] / mib:.0f} | {error(plan.peak_bytes, m['peak_bytes'])} |")
        lines.append(row)
        print(row, flush=True)
    c = calibration
    points = "; ".join(f"{q['flops'] / 1e9:.2f} GFLOP -> {q['wall']:.3f} s wall, {q['cpu']:.3f} "
                       f"CPU-s, +{q['peak_bytes'] / mib:.0f} MiB" for q in c["points"])
    text = "\n".join([
        "## Planner check (`python benchmarks/plan_check.py`)", "",
        *lines, "",
        f"Calibration (widths 32 and 96, cached): {c['wall_flops'] / 1e9:.2f} GFLOP/s + "
        f"{c['wall_overhead'] * 1e3:.0f} ms per step wall, {c['cpu_flops'] / 1e9:.2f} GFLOP/CPU-s + "
        f"{c['cpu_overhead'] * 1e3:.0f} CPU-ms; runtime memory {c['runtime_bytes'] / mib:.0f} MiB "
        f"({points}).",
        f"Batch {load_experiment('default').data.batch_size}, text length {args.text_length}, "
        f"XLA, {args.steps} timed steps per config (median), each config in a fresh process.",
        f"load before: `{load_before}`", f"load after: `{uptime()}`"])
    print(text)
    if not args.no_write:
        write_section("plan_check", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
