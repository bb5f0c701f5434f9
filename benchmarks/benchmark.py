"""Throughput on this machine: training, generation (cache/XLA/batch/length), tf.data.

    nice -n 19 python benchmarks/benchmark.py [--experiment default] [--repeats 3] [--grid full]

Prints a markdown table (and writes it into the ``benchmark`` section of --out, default
benchmarks/results.md). The machine's load average (``uptime``) is recorded before and after:
on a shared machine absolute numbers move with the load, the ratios much less.

What is measured (model: the experiment's architecture with random weights; speed does not
depend on the weights):
  * training: ``model.fit`` steps on the experiment's own training input (packed rows when it
    packs, its batch size and steps per call, XLA as the config says; the row label says
    which); rows/s and text tokens/s (non-padding tokens) after the first (compiled) call;
  * generation: ``Generator.generate_ids`` with ``min_new_tokens`` = ``max_new_tokens``, so
    every run gives exactly ``max_new_tokens`` per row; new tokens/s = batch x max_new_tokens
    / seconds, median of ``--repeats`` runs after one warm-up (compilation) run;
  * tf.data: ``make_dataset`` (decode PNG, resize, bucket, pad, batch) examples/s.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from vit_tf.config import apply_overrides  # noqa: E402
from vit_tf.data.pipeline import encode_records, make_dataset  # noqa: E402
from vit_tf.data.prepare import prepare_records  # noqa: E402
from vit_tf.data.preset_tokenizer import preprocessor_for_config  # noqa: E402
from vit_tf.data.shapes import write_shapes_world  # noqa: E402
from vit_tf.data.training_data import prepare_training_data  # noqa: E402
from vit_tf.experiments import load_experiment  # noqa: E402
from vit_tf.models.factory import build_task  # noqa: E402
from vit_tf.models.generation import Generator  # noqa: E402
from vit_tf.training.optim import compile_model, steps_per_call  # noqa: E402


class Timer:
    """Wall-clock and process CPU seconds (all threads) of a block.

    On a shared machine the wall clock measures the share of the cores this process got; the
    CPU time measures the work, so throughput per CPU-second is the steadier number.
    """

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def prepare(config, scenes, workdir):
    data = os.path.join(workdir, "shapes")
    write_shapes_world(data, scenes, 8, seed=0)
    records, preprocessor, _ = prepare_records(
        os.path.join(data, "train.json"), data, max_text_length=config.data.max_text_length,
        make_preprocessor=lambda texts: preprocessor_for_config(config, texts))
    return data, records, preprocessor


def bench_data(config, records, preprocessor, batches):
    examples = encode_records(records, preprocessor, config.data.max_text_length)
    ds = make_dataset(examples, config.data.image_size, config.data.batch_size, shuffle=True,
                      repeat=True, drop_remainder=True)
    it = iter(ds)
    next(it)
    n = 0
    with Timer() as t:
        for _ in range(batches):
            n += int(next(it)[0]["images"].shape[0])
    return n / t.wall, n / t.cpu


def bench_train(config, data_dir, steps):
    """Steps of the experiment's own training input: ``prepare_training_data`` (packed rows
    when ``data.pack_by_image``), its batch size and ``train.steps_per_execution`` (as far as
    it divides ``steps``), as ``vit-tf train`` runs it. -> ((rows/s wall, per CPU-s),
    (text tokens/s wall, per CPU-s), the setting as a label)."""
    data = prepare_training_data(config, os.path.join(data_dir, "train.json"), data_dir,
                                 log=lambda m: None)
    _, ds = data.train_dataset()
    per_call = steps_per_call(config.train.steps_per_execution, steps)
    model = build_task(config, data.preprocessor)
    compile_model(model, config.train, 3 * steps, steps_per_execution=per_call)
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)  # compile + warm up
    tokens = 0
    for inputs, _, _ in ds.take(steps):
        tokens += int(np.asarray(inputs["padding_mask"]).sum())
    with Timer() as t:
        model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    rows = steps * config.data.batch_size
    d = config.data
    label = (f"{f'packed rows of {d.pack_length}' if d.pack_by_image else 'unpacked'}, "
             f"batch {d.batch_size}, {per_call} steps/call, "
             f"{'XLA' if config.train.jit_compile else 'no XLA'}")
    return (rows / t.wall, rows / t.cpu), (tokens / t.wall, tokens / t.cpu), label


def bench_generate(model, images, batch, new_tokens, use_cache, xla, repeats):
    # never stop early: every row generates exactly new_tokens
    gen = Generator(model, max_new_tokens=new_tokens, use_cache=use_cache, jit_compile=xla,
                    min_new_tokens=new_tokens)
    prompts = [[{"from": "human", "value": "What objects are in this image? Describe each one."}]] * batch
    imgs = images[:batch]
    gen.generate_ids(imgs, prompts)  # compile / trace
    walls, cpus = [], []
    for _ in range(repeats):
        with Timer() as t:
            out = gen.generate_ids(imgs, prompts)
        walls.append(t.wall)
        cpus.append(t.cpu)
        assert all(len(ids) == new_tokens for ids in out), [len(i) for i in out]
    n = batch * new_tokens
    return n / statistics.median(walls), n / statistics.median(cpus)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="default")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=32)
    p.add_argument("--quick", action="store_true", help="fewer settings (a smoke run)")
    p.add_argument("--grid", choices=("compact", "full"), default="compact",
                   help="compact: vary one factor at a time around (cache, XLA, batch 1, 64 new); "
                        "full: all 16 combinations")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.md"))
    args = p.parse_args(argv)

    config = apply_overrides(load_experiment(args.experiment), args.overrides)
    keras.utils.set_random_seed(0)
    load_before = uptime()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        data, records, preprocessor = prepare(config, 60 if args.quick else 300, workdir)
        rows.append(("tf.data pipeline", "decode+resize+bucket+batch", "examples/s",
                     bench_data(config, records, preprocessor, 5 if args.quick else 30)))
        print(f"  tf.data: {rows[-1][3][0]:.1f} examples/s wall, {rows[-1][3][1]:.1f} per CPU-s", flush=True)
        ex_s, tok_s, setting = bench_train(config, data, 3 if args.quick else args.train_steps)
        rows.append(("training", setting, "rows/s", ex_s))
        rows.append(("training", setting, "text tokens/s", tok_s))
        print(f"  training: {ex_s[0]:.1f} rows/s wall ({ex_s[1]:.1f} per CPU-s), "
              f"{tok_s[0]:.1f} tokens/s wall ({tok_s[1]:.1f} per CPU-s)", flush=True)
        model = build_task(config, preprocessor)
        # Converted once, outside the timed calls (float32 batches pass through the generator).
        images = np.asarray(preprocessor.convert_images([r["image_path"] for r in records[:8]]))
        settings = [(c, x, b, n) for c in (True, False) for x in (True, False)
                    for b in (1, 8) for n in (16, 64)]
        if args.grid == "compact":
            settings = [(True, True, 1, 64), (False, True, 1, 64), (True, False, 1, 64),
                        (True, True, 8, 64), (False, True, 8, 64), (True, True, 1, 16),
                        (False, True, 1, 16)]
        if args.quick:
            settings = [(c, True, b, 16) for c in (True, False) for b in (1, 8)]
        gen = {}
        for cache, xla_, batch, new in settings:
            gen[(cache, xla_, batch, new)] = v = bench_generate(
                model, images, batch, new, cache, xla_, args.repeats)
            label = f"{'cache' if cache else 'no cache'}, {'XLA' if xla_ else 'no XLA'}, batch {batch}, {new} new"
            rows.append(("generation", label, "new tokens/s", v))
            print(f"  {label}: {v[0]:.1f} tokens/s wall, {v[1]:.1f} per CPU-s", flush=True)
    load_after = uptime()

    lines = ["| what | setting | unit | per wall-clock second | per CPU second |", "|---|---|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {v[0]:,.1f} | {v[1]:,.1f} |" for a, b, c, v in rows]

    def ratio(a, b):
        return f"{gen[a][0] / gen[b][0]:.1f}x wall, {gen[a][1] / gen[b][1]:.1f}x CPU"

    ratios = []
    for xla_ in (True, False):
        for b in (1, 8):
            for n in (16, 64):
                if (True, xla_, b, n) in gen and (False, xla_, b, n) in gen:
                    ratios.append(f"cache / no cache ({'XLA' if xla_ else 'no XLA'}, batch {b}, {n} new): "
                                  f"{ratio((True, xla_, b, n), (False, xla_, b, n))}")
    if (True, True, 1, 64) in gen and (True, False, 1, 64) in gen:
        ratios.append(f"XLA / no XLA (cache, batch 1, 64 new): {ratio((True, True, 1, 64), (True, False, 1, 64))}")
    for cache in (True, False):
        for xla_ in (True, False):
            for n in (16, 64):
                if (cache, xla_, 8, n) in gen and (cache, xla_, 1, n) in gen:
                    ratios.append(f"batch 8 / batch 1 ({'cache' if cache else 'no cache'}, "
                                  f"{'XLA' if xla_ else 'no XLA'}, {n} new): "
                                  f"{ratio((cache, xla_, 8, n), (cache, xla_, 1, n))}")
    text = "\n".join(lines + ["", *[f"- {r}" for r in ratios], "",
                              f"experiment `{args.experiment}` {' '.join(args.overrides)}",
                              f"load before: `{load_before}`", f"load after: `{load_after}`"])
    print(text)
    write_section("benchmark", text, args.out)  # keeps the pipeline / plan_check sections
    return 0


if __name__ == "__main__":
    sys.exit(main())
