"""The two speeds of one ``fit`` step at the issue-16 size (benchmarks/hf_side_by_side.py):
time --rounds calls of ``fit`` (--steps steps each, one step per call) on --models identical
models in one process, with TensorFlow's intra-/inter-op threads as given (0: its default).

    PYTHONPATH=$PWD python benchmarks/fit_modes.py [--models 1] [--rounds 6] [--intra 0] [--inter 0]

Result (2026-12-07 10:00-10:10 UTC, 2 cores, idle, one process per line): default threads
319, 319, 185, 185, 185, 319 and 183, 181, 301, 311, 296, 202 ms/step per call; --intra 1:
319, 307, 311, 314, 314, 307 and 319, 308, 310, 305, 306, 304; --inter 1: 320, 319, 320, 320,
189, 189 and 190, 185, 195, 320, 187, 187; --models 3 --rounds 5: each model switched (269-319
vs 183-194).

The cause (found 11:00-11:10 UTC): in a slow call the process was idle ~40% of the time (no
thread runnable, per-thread /proc sampling); gdb showed the main thread in
``~RootDataset::Iterator`` waiting for tf.data's autotuning thread, asleep in
``Model::OptimizeLoop`` until its next tick. A dataset without autotuning ran 10 of 10 calls
at 181-189 ms/step. ``Task.fit`` now hands Keras its datasets without the autotuning thread
(``vit_tf.data.pipeline.without_autotune_thread``); this script, about 11:12 UTC,
``--rounds 8``: 179, 180, 174, 175, 178, 179, 175, 175 (median 176). ``--intra 1`` is a
genuinely slower one-thread step that happened to land near the stalled calls' time.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=int, default=1)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--intra", type=int, default=0)
    p.add_argument("--inter", type=int, default=0)
    args = p.parse_args(argv)
    import tensorflow as tf

    if args.intra:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    if args.inter:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    import keras

    from benchmarks.hf_side_by_side import NEW_TOKENS, PROMPT, VOCAB, tf_batch, tf_config
    from vit_tf.models.factory import build_model
    from vit_tf.training.optim import compile_model

    config = tf_config()
    ds = tf.data.Dataset.from_tensors(tf_batch()).repeat()
    models = []
    for _ in range(args.models):
        keras.utils.set_random_seed(0)
        m = build_model(config, VOCAB, max_text_length=PROMPT + NEW_TOKENS + 16)
        compile_model(m, config.train, total_steps=10_000)
        m.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)     # compile, warm up
        models.append(m)
    times = [[] for _ in models]
    for r in range(args.rounds):
        order = range(len(models)) if r % 2 == 0 else reversed(range(len(models)))
        for i in order:
            t = time.perf_counter()
            models[i].fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
            times[i].append(1000 * (time.perf_counter() - t) / args.steps)
    for i, ms in enumerate(times):
        print(f"model {i} (intra={args.intra}, inter={args.inter}): median "
              f"{statistics.median(ms):.0f} ms/step; calls " + ", ".join(f"{v:.0f}" for v in ms))


if __name__ == "__main__":
    main()
