"""The issue-16 model under XLA_FLAGS variants: training ms per step in ``fit`` and cached
generation tokens/s at batch 1 and 8, each variant in fresh worker processes, the variants
alternating (XLA reads XLA_FLAGS once per process, so a variant cannot change inside one).

    PYTHONPATH=$PWD python benchmarks/xla_flags.py --repeats 2 -- '' \
        '--xla_cpu_use_thunk_runtime=false' '--xla_cpu_use_xnnpack=true'

Results, 2 CPU cores, alone under the CPU lock, medians of 2 repeats (runs in brackets).
This script, 2026-12-07 21:46-21:52 UTC, main e75d346:

| XLA_FLAGS | train ms/step | b1 cached tokens/s | b8 cached tokens/s |
|---|---:|---:|---:|
| (none) | 201.7 (222.7, 180.6) | 2,273 (2,135, 2,412) | 5,801 (5,260, 6,342) |
| `--xla_cpu_use_thunk_runtime=false` | 197.3 (208.1, 186.5) | 2,372 (2,305, 2,439) | 6,143 (6,107, 6,180) |

Its first version (21:38-21:44, the same model and lengths, generation ended by disabled stop
tokens instead of ``min_new_tokens``, three variants alternating):

| XLA_FLAGS | train ms/step | b1 cached tokens/s | b8 cached tokens/s |
|---|---:|---:|---:|
| (none) | 198.4 (194.6, 202.2) | 2,339 (2,207, 2,471) | 5,731 (5,592, 5,871) |
| `--xla_cpu_use_thunk_runtime=false` | 204.2 (200.2, 208.2) | 2,351 (2,424, 2,278) | 6,229 (6,435, 6,023) |
| `--xla_cpu_use_xnnpack=true` | 208.7 (192.0, 225.4) | 2,052 (2,099, 2,005) | 5,748 (5,624, 5,871) |

The legacy (non-thunk) XLA:CPU runtime ran batch-8 cached generation faster in 3 of 4
alternating pairs (+6% and +9% in the medians; the decoding loop is small-op bound,
``benchmarks/results.md``, ``hf_side_by_side``), the training step no worse; the repeats
spread 10-20% on this shared machine, so more repeats would be needed to pin the gain. Not
adopted: XLA_FLAGS is process-wide (a library cannot set it for generation alone, and must
not override a user's), and +6-9% leaves batch-8 cached generation under issue 16's 3x
(2.55x in the last side-by-side run).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker():
    """One process: the measures under this process's XLA_FLAGS, printed as a JSON line."""
    sys.path.insert(0, ROOT)
    from benchmarks.hf_side_by_side import IMAGE, NEW_TOKENS, PROMPT, tf_training_model
    from tests.helpers import tiny_tokenizer
    from vit_tf.data.preprocessor import VisionLanguagePreprocessor
    from vit_tf.models.generation import Generator

    model, ds, x = tf_training_model()
    for _ in range(2):                                   # warm-up: compile, first-call costs
        model.fit(ds, epochs=1, steps_per_epoch=16, verbose=0)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        model.fit(ds, epochs=1, steps_per_epoch=16, verbose=0)
        times.append((time.perf_counter() - start) / 16)
    out = {"train_ms": 1000 * statistics.median(times)}
    preprocessor = VisionLanguagePreprocessor(tiny_tokenizer(), "vit_tf", IMAGE,
                                              PROMPT + NEW_TOKENS + 16)
    conversation = [{"from": "human", "value": "What colour is the circle? Is it big"}]
    for batch in (1, 8):
        generator = Generator(model, preprocessor, max_new_tokens=NEW_TOKENS,
                              min_new_tokens=NEW_TOKENS, use_cache=True)
        images = x["images"][:batch]
        generator.generate_ids(images, [conversation] * batch)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            generator.generate_ids(images, [conversation] * batch)
            times.append(time.perf_counter() - start)
        out[f"gen_b{batch}"] = batch * NEW_TOKENS / statistics.median(times)
    print("RESULT " + json.dumps(out), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="XLA_FLAGS values ('' for none), after '--'")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    results = {}
    for r in range(args.repeats):
        for flags in args.variants if r % 2 == 0 else args.variants[::-1]:
            env = dict(os.environ, XLA_FLAGS=flags, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"],
                                  env=env, capture_output=True, text=True, cwd=ROOT)
            line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if proc.returncode or not line:
                raise SystemExit(f"variant {flags!r} failed:\n{proc.stderr[-2000:]}")
            results.setdefault(flags, []).append(json.loads(line[0][len("RESULT "):]))
            print(repr(flags), {k: round(v, 1) for k, v in results[flags][-1].items()},
                  flush=True)
    print("| XLA_FLAGS | train ms/step | b1 cached tokens/s | b8 cached tokens/s |")
    print("|---|---:|---:|---:|")
    for flags, runs in results.items():
        med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        print(f"| `{flags or '(none)'}` | {med['train_ms']:.1f} | {med['gen_b1']:,.0f} "
              f"| {med['gen_b8']:,.0f} |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
