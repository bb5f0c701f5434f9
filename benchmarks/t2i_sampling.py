"""Sampling speed of the text-to-image generators: images per second at batch 1 and 16.

    python benchmarks/t2i_sampling.py RUN [RUN ...] [--repeats 3] [--num-steps N]

For each model (a ``vit-tf t2i train`` run or preset): the default ``num_steps`` and
``guidance_scale`` of the preset (classifier-free guidance on: every step runs the model on
2B sequences / images), XLA, one warm-up call per batch size (compilation excluded), then the
median of ``--repeats`` timed calls. Wall-clock and CPU time (process CPU seconds, all
threads) are both reported, with the load average before and after; run it under the CPU lock.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def measure(task, batch, repeats, num_steps):
    prompts = ["there are 2 objects. a large red circle on the left. a small blue square at the "
               "top right."] * batch
    task.generate(prompts, seed=0, num_steps=num_steps, batch_size=batch)       # compile
    walls, cpus = [], []
    for r in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        task.generate(prompts, seed=r + 1, num_steps=num_steps, batch_size=batch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"batch": batch, "images_per_second": batch / statistics.median(walls),
            "images_per_cpu_second": batch / statistics.median(cpus),
            "median_seconds": statistics.median(walls)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-steps", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    from vit_tf.t2i.task import load_text_to_image

    load = os.getloadavg()
    rows = []
    for run in args.runs:
        task = load_text_to_image(run)
        for batch in (1, 16):
            row = {"model": run, "generator": type(task).__name__,
                   "num_steps": args.num_steps or task.num_steps,
                   "guidance_scale": task.guidance_scale,
                   **measure(task, batch, args.repeats, args.num_steps)}
            rows.append(row)
            print(f"{row['generator']:22s} steps {row['num_steps']:3d} batch {batch:2d}: "
                  f"{row['images_per_second']:7.2f} images/s, "
                  f"{row['images_per_cpu_second']:7.2f} images/CPU-s", flush=True)
    print(f"load average before {load}, after {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "load_before": load, "load_after": os.getloadavg()}, f,
                      indent=1)


if __name__ == "__main__":
    main()
