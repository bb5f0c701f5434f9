"""Before/after in one run: cached generation and the training step of this checkout against
another checkout of vit_tf (e.g. ``git worktree add /tmp/base main``), alternating processes.

    PYTHONPATH=$PWD python benchmarks/checkout_ab.py --baseline /tmp/base [--repeats 2]
        [--measure gen,train] [--out FILE]

Each measurement is a fresh process of this script's ``--worker`` mode with the checkout first
on ``sys.path`` (the same Python environment for both); the checkouts alternate within each
repeat. Measured at the issue-16 size (benchmarks/hf_side_by_side.py):
  * ``gen``: ``Generator`` with the KV cache, XLA, greedy, 64 new tokens after the 64 image +
    12 text prompt tokens, batch 1 and 8: new tokens/s, median of 7 calls after a warm-up;
  * ``train``: ``compile_model`` + ``fit`` of the checkout's shipped training config on one
    repeated batch of 32, 8 steps per call: ms/step, median of 5 calls after a warm-up;
  * ``default``: the same for the default experiment's model on random packed rows
    (benchmarks/loss_check.py), its steps_per_execution, 16 steps per call.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(root, what, batch):
    # This checkout's benchmark helpers (they import vit_tf only inside functions), then the
    # measured checkout first on the path: every vit_tf import below resolves to it.
    sys.path.insert(0, os.path.dirname(HERE))
    from benchmarks.hf_side_by_side import (IMAGE, NEW_TOKENS, PROMPT, VOCAB, tf_batch,
                                            tf_config)
    sys.path.insert(0, root)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import vit_tf
    assert os.path.dirname(os.path.dirname(vit_tf.__file__)) == root, vit_tf.__file__
    from vit_tf.models.factory import build_model
    from vit_tf.training.optim import compile_model

    if what == "default":
        import importlib.util

        spec = importlib.util.spec_from_file_location("ab_loss_check",
                                                      os.path.join(HERE, "loss_check.py"))
        loss_check = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loss_check)         # this checkout's file, root's vit_tf
        batches = loss_check.batches
        from vit_tf.experiments import load_experiment

        config = load_experiment("default")
        keras.utils.set_random_seed(0)
        model = build_model(config, config.data.vocabulary_size,
                            max_text_length=config.data.pack_length)
        compile_model(model, config.train, 10_000,
                      steps_per_execution=config.train.steps_per_execution)
        data, steps = batches(config, config.data.vocabulary_size, 16).cache().repeat(), 16
    else:
        config = tf_config()
        keras.utils.set_random_seed(0)
        model = build_model(config, VOCAB, max_text_length=PROMPT + NEW_TOKENS + 16)
        x, y, w = tf_batch()
        data, steps = tf.data.Dataset.from_tensors((x, y, w)).repeat(), 8
    if what in ("train", "default"):
        if what == "train":
            compile_model(model, config.train, 10_000)
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)            # warm-up
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
            runs.append(1000 * (time.perf_counter() - t) / steps)
        return {"ms_per_step": statistics.median(runs), "runs": runs}
    from tests.helpers import tiny_tokenizer
    from vit_tf.data.preprocessor import VisionLanguagePreprocessor
    from vit_tf.models.generation import Generator

    pre = VisionLanguagePreprocessor(tiny_tokenizer(), "vit_tf", IMAGE, PROMPT + NEW_TOKENS + 16)
    gen = Generator(model, pre, max_new_tokens=NEW_TOKENS, use_cache=True)
    gen.stop_ids = (-1,)                                                     # never stop early
    images = tf_batch()[0]["images"][:batch]
    conversation = [{"from": "human", "value": "What colour is the circle? Is it big"}]
    gen.generate_ids(images, [conversation] * batch)                         # warm-up
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        gen.generate_ids(images, [conversation] * batch)
        runs.append(batch * NEW_TOKENS / (time.perf_counter() - t))
    return {"tokens_per_s": statistics.median(runs), "runs": runs}


def run_worker(root, what, batch):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", root, what,
                          str(batch)], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker {root} {what} {batch} failed:\n{out.stderr[-3000:]}")


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        root, what, batch = sys.argv[2], sys.argv[3], int(sys.argv[4])
        print("RESULT " + json.dumps(worker(root, what, batch)), flush=True)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", required=True, help="another vit_tf checkout (the 'before')")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--measure", default="gen,train,default")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    roots = {"before": os.path.abspath(args.baseline), "after": os.path.dirname(HERE)}
    jobs = [(w, b) for w in args.measure.split(",") for b in ((1, 8) if w == "gen" else (0,))]
    samples = {}
    for r in range(args.repeats):
        order = list(roots.items()) if r % 2 == 0 else list(roots.items())[::-1]
        for what, batch in jobs:
            for name, root in order:
                res = run_worker(root, what, batch)
                value = res.get("tokens_per_s", res.get("ms_per_step"))
                samples.setdefault((what, batch, name), []).append(value)
                print(name, what, batch, f"{value:,.1f}", file=sys.stderr, flush=True)
    rows = ["| measure | unit | before | after | after / before | runs (before; after) |",
            "|---|---|---:|---:|---:|---|"]
    for what, batch in jobs:
        b, a = (samples[(what, batch, n)] for n in ("before", "after"))
        mb, ma = statistics.median(b), statistics.median(a)
        label = {"gen": f"cached generation, batch {batch}", "train": "training step (fit)",
                 "default": "default experiment step (fit)"}[what]
        unit = "new tokens/s" if what == "gen" else "ms/step"
        runs = "; ".join(", ".join(f"{v:,.0f}" for v in vals) for vals in (b, a))
        rows.append(f"| {label} | {unit} | {mb:,.1f} | {ma:,.1f} | {ma / mb:.2f}x | {runs} |")
    text = "\n".join(rows) + (f"\n\nbefore: {roots['before']}; after: {roots['after']}; "
                              f"{args.repeats} alternating repeats, medians of their medians.")
    print(text)
    if args.out:
        sys.path.insert(0, os.path.dirname(HERE))
        from benchmarks._results import write_section
        write_section("checkout_ab", "## Before / after in one run "
                      "(`benchmarks/checkout_ab.py`)\n\n" + text, path=args.out)


if __name__ == "__main__":
    main()
