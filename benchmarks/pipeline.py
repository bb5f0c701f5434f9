"""Does the tf.data pipeline keep up with training, and how much padding does bucketing leave?

    nice -n 19 python benchmarks/pipeline.py [--experiment default] [--scenes 300] [--steps 30]

On the shapes world (``--scenes`` training scenes, seed 0) with the experiment's config:

1. Padding: the fraction of text positions that are padding in one epoch of ``make_dataset``
   batches, with length bucketing (what training uses) and without it (every batch padded to
   the longest example, what a plain ``padded_batch`` would do).
2. Input alone: seconds per batch of ``make_dataset`` (decoded-image cache on, as training
   uses by default, and off: PNG decoding in the pipeline), median over ``--steps`` batches.
3. Starvation: the training step's time fed by the real pipeline vs fed by the same batches
   already in memory (``take(n).cache()``, no input work at all). Equal medians mean the model
   never waits for data. Per-step times come from a callback; medians resist the other jobs of
   this shared machine, and the load (``uptime``) is recorded.

Writes its table into the ``pipeline`` section of benchmarks/results.md.
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

from benchmarks._results import write_section  # noqa: E402
from vit_tf.config import apply_overrides  # noqa: E402
from vit_tf.data.pipeline import encode_records, make_dataset  # noqa: E402
from vit_tf.data.prepare import prepare_records  # noqa: E402
from vit_tf.data.shapes import write_shapes_world  # noqa: E402
from vit_tf.experiments import load_experiment  # noqa: E402
from vit_tf.models.factory import build_model  # noqa: E402
from vit_tf.training.optim import compile_model  # noqa: E402


class StepTimes(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)

    def on_train_begin(self, logs=None):
        self.times = []


def padding_fractions(examples, image_size, batch_size):
    """(bucketed, unbucketed) padding fraction over one epoch of batches."""
    real = padded = 0
    for inputs, _, _ in make_dataset(examples, image_size, batch_size, cache_images=True):
        mask = inputs["padding_mask"].numpy()
        real, padded = real + mask.sum(), padded + mask.size
    longest = int(examples.lengths.max())
    return 1 - real / padded, 1 - examples.lengths.sum() / (len(examples) * longest)


def input_seconds(examples, d, steps, cache_images):
    ds = make_dataset(examples, d.image_size, d.batch_size, shuffle=True, repeat=True,
                      drop_remainder=True, cache_images=cache_images)
    it = iter(ds)
    next(it)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_seconds(config, examples, tokenizer, steps):
    """(median step s fed by the pipeline, median step s fed from memory, their means)."""
    d = config.data
    ds = make_dataset(examples, d.image_size, d.batch_size, shuffle=True, repeat=True,
                      drop_remainder=True, cache_images=d.cache_images)
    in_memory = ds.take(steps).cache().repeat()
    model = build_model(config, tokenizer.vocabulary_size())
    compile_model(model, config.train, 10 * steps)
    timer = StepTimes()
    model.fit(in_memory, epochs=2, steps_per_epoch=steps, verbose=0)  # compile every shape
    results = {}
    for name, data in (("pipeline", ds), ("memory", in_memory), ("pipeline again", ds)):
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        results[name] = (statistics.median(timer.times), statistics.mean(timer.times))
    return results


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="default")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--scenes", type=int, default=300)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    config = apply_overrides(load_experiment(args.experiment), args.overrides)
    d = config.data
    keras.utils.set_random_seed(0)
    load_before = uptime()
    with tempfile.TemporaryDirectory() as tmp:
        write_shapes_world(tmp, args.scenes, 1, seed=0)
        records, tokenizer, _ = prepare_records(
            os.path.join(tmp, "train.json"), tmp, max_text_length=d.max_text_length,
            vocabulary_size=d.vocabulary_size)
        examples = encode_records(records, tokenizer, d.max_text_length)
        bucketed, unbucketed = padding_fractions(examples, d.image_size, d.batch_size)
        print(f"padding: {bucketed:.1%} bucketed, {unbucketed:.1%} padded to the longest", flush=True)
        cached = input_seconds(examples, d, args.steps, True)
        streamed = input_seconds(examples, d, args.steps, False)
        print(f"input alone: {cached * 1e3:.1f} ms/batch cached, {streamed * 1e3:.1f} streamed",
              flush=True)
        steps = step_seconds(config, examples, tokenizer, args.steps)
        print(f"steps: {steps}", flush=True)
    ms = 1e3
    text = "\n".join([
        "## Input pipeline (`python benchmarks/pipeline.py`)", "",
        f"Shapes world, {args.scenes} scenes ({len(examples)} examples), experiment "
        f"`{args.experiment}` {' '.join(args.overrides)}: batch {d.batch_size}, XLA "
        f"{config.train.jit_compile}, decoded-image cache {d.cache_images}.", "",
        "| measure | value |", "|---|---:|",
        f"| padding fraction, length-bucketed batches (training) | {bucketed:.1%} |",
        f"| padding fraction, batches padded to the longest example | {unbucketed:.1%} |",
        f"| input pipeline alone, decoded-image cache (ms/batch, median) | {cached * ms:.1f} |",
        f"| input pipeline alone, PNG decoding in tf.data (ms/batch, median) | {streamed * ms:.1f} |",
        *[f"| training step fed by {k} (ms, median / mean) | {v[0] * ms:.1f} / {v[1] * ms:.1f} |"
          for k, v in steps.items()],
        "", f"{args.steps} batches / steps each. load before: `{load_before}`; "
        f"load after: `{uptime()}`"])
    print(text)
    if not args.no_write:
        write_section("pipeline", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
