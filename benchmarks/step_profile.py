"""Where a training step goes: ``fit`` vs ``train_on_batch`` vs a bare XLA GradientTape step,
at the issue-16 size (benchmarks/hf_side_by_side.py), alternating in one process.

    PYTHONPATH=$PWD python benchmarks/step_profile.py [--repeats 5] [--steps 8] [--threads 0]

Each variant has its own model (same seed) compiled once and warmed up; each repeat times
--steps steps of every variant in turn (order rotated per repeat); medians in ms/step.
"""

import argparse
import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.hf_side_by_side import BATCH, VOCAB, set_tf_threads, tf_batch, tf_config


def setup(experiment):
    """-> (config, vocabulary, text length, batch size, repeated dataset, one batch)."""
    import tensorflow as tf

    if experiment == "issue16":
        config, vocab, length = tf_config(), VOCAB, 96
        x, y, w = tf_batch()
        ds = tf.data.Dataset.from_tensors((x, y, w)).repeat()
        return config, vocab, length, BATCH, ds, (x, y, w)
    from benchmarks.loss_check import batches
    from vit_tf.experiments import load_experiment

    config = load_experiment(experiment)
    vocab = config.data.vocabulary_size
    data = batches(config, vocab, 16).cache()
    x, y, w = next(iter(data))
    return (config, vocab, config.data.pack_length, config.data.batch_size, data.repeat(),
            tuple(v.numpy() if hasattr(v, "numpy") else {k: t.numpy() for k, t in v.items()}
                  for v in (x, y, w)))


def variants(only, experiment="issue16"):
    import keras
    import tensorflow as tf

    from vit_tf.models.factory import build_model
    from vit_tf.training.optim import compile_model, make_loss, make_optimizer, make_schedule

    config, VOCAB, length, _, ds, (x, y, w) = setup(experiment)

    def model(train=None, **compile_kwargs):
        keras.utils.set_random_seed(0)
        m = build_model(config, VOCAB, max_text_length=length)
        compile_model(m, train or config.train, 10_000, **compile_kwargs)
        return m

    def sliced(k):
        return model(dataclasses.replace(config.train, batch_slices=k))

    def fit(m):
        return lambda n: m.fit(ds, epochs=1, steps_per_epoch=n, verbose=0)

    def on_batch(m):
        def run(n):
            for _ in range(n):
                logs = m.train_on_batch(x, y, sample_weight=w, return_dict=True)
            float(logs["loss"])
        return run

    def bare(jit=True, xla_update=False, slices=1):
        """A bare tape step; ``slices``: the model's ``batch_slices`` (VisionLanguageModel.call)."""
        keras.utils.set_random_seed(0)
        m = build_model(config, VOCAB, max_text_length=length)
        m.batch_slices = slices
        opt, loss_fn = make_optimizer(config.train, 10_000), make_loss()
        opt.build(m.trainable_variables)
        tx, ty, tw = (tf.nest.map_structure(tf.constant, v) for v in (x, y, w))
        apply = opt.apply_gradients
        if xla_update:
            update = tf.function(lambda grads: opt.apply(grads), jit_compile=True)
            apply = lambda pairs: update([g for g, _ in pairs])  # noqa: E731

        @tf.function(jit_compile=jit)
        def step():
            with tf.GradientTape() as tape:
                loss = loss_fn(ty, m(tx, training=True), sample_weight=tw)
            apply(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
            return loss

        def run(n):
            for _ in range(n):
                loss = step()
            float(loss)
        return run

    def plain(clipnorm):
        """Keras's AdamW without the grad_norm telemetry (and, optionally, clipping)."""
        keras.utils.set_random_seed(0)
        m = build_model(config, VOCAB, max_text_length=length)
        t = config.train
        m.compile(keras.optimizers.AdamW(make_schedule(t, 10_000),
                                         weight_decay=t.weight_decay, clipnorm=clipnorm),
                  make_loss(), jit_compile=True)
        return m

    def traced_with(holder, value, run):
        """``run`` whose first call (the trace) sees ``holder[0] = value`` (restored after)."""
        def first(n):
            holder[0], saved = value, holder[0]
            try:
                run(n)
            finally:
                holder[0] = saved
            wrapper.run = run

        def wrapper(n):
            wrapper.run(n)
        wrapper.run = first
        return wrapper

    def keras_hub_blocks(run):
        """``run`` traced with keras-hub's own block calls (before vit_tf.models.blocks)."""
        from vit_tf.models import blocks

        return traced_with(blocks.ENABLED, False, run)

    def sparse_rows_fit():
        from vit_tf.training import grad_norm

        return traced_with(grad_norm.MERGE_ROWS, grad_norm.merged_rows_sparse, fit(model()))

    def trained(jit=None, update=None, precision="float32", per_call=1, hub_blocks=False,
                grad_norm=True):
        """fit of a model compiled by ``compile_model`` with the shipped train config, or with
        ``train.jit_compile`` / ``train.xla_update`` / ``train.precision`` overridden;
        ``per_call`` steps per execution; ``hub_blocks``: keras-hub's own block calls."""
        from vit_tf.training.precision import precision_policy

        t = config.train
        t = dataclasses.replace(t, jit_compile=t.jit_compile if jit is None else jit,
                                xla_update=t.xla_update if update is None else update,
                                precision=precision)
        keras.utils.set_random_seed(0)
        with precision_policy(precision):
            m = build_model(config, VOCAB, max_text_length=length)
        compile_model(m, t, 10_000, steps_per_execution=per_call)
        if not grad_norm:   # the optimizer records nothing (the metric stays at 0)
            m.optimizer._grad_norm_metric = None
        return keras_hub_blocks(fit(m)) if hub_blocks else fit(m)

    spe = config.train.steps_per_execution
    table = {
        "fit": lambda: fit(model()),
        "fit, keras-hub block calls": lambda: trained(hub_blocks=True),
        "fit, optimizer update not compiled": lambda: trained(update=False),
        "fit, no grad_norm telemetry": lambda: trained(grad_norm=False),
        "fit, XLA step": lambda: trained(jit=True),
        "fit, XLA step, keras-hub block calls": lambda: trained(jit=True, hub_blocks=True),
        "fit, mixed_bfloat16": lambda: trained(precision="mixed_bfloat16"),
        "fit, mixed_bfloat16, no XLA": lambda: trained(jit=False, precision="mixed_bfloat16"),
        "fit, shipped steps_per_execution, mixed_bfloat16": lambda: trained(
            per_call=spe, precision="mixed_bfloat16"),
        "fit, shipped steps_per_execution": lambda: trained(per_call=spe),
        "fit, shipped steps_per_execution, keras-hub block calls": lambda: trained(
            per_call=spe, hub_blocks=True),
        "fit, shipped steps_per_execution, XLA step": lambda: trained(jit=True, per_call=spe),
        "fit, shipped steps_per_execution, XLA step, keras-hub block calls": lambda: trained(
            jit=True, per_call=spe, hub_blocks=True),
        "bare tape step, no XLA": lambda: bare(jit=False),
        "bare tape step, no XLA, optimizer update in XLA": lambda: bare(jit=False,
                                                                         xla_update=True),
        "fit, grad_norm rows merged by tf.unique (before)": sparse_rows_fit,
        "fit, XLA step, Keras AdamW (no grad_norm telemetry)": lambda: fit(plain(1.0)),
        "fit, XLA step, Keras AdamW, no clipnorm": lambda: fit(plain(None)),
        "fit, steps_per_execution=8": lambda: fit(model(steps_per_execution=8)),
        "train_on_batch": lambda: on_batch(model()),
        "bare XLA tape step": bare,
        "fit, train.batch_slices=2": lambda: fit(sliced(2)),
        "fit, train.batch_slices=1": lambda: fit(sliced(1)),
        "fit, train.batch_slices=1, keras-hub block calls (the defaults before)": lambda: (
            keras_hub_blocks(fit(sliced(1)))),
        "fit, train.batch_slices=4": lambda: fit(sliced(4)),
        "fit, train.batch_slices=8": lambda: fit(sliced(8)),
        "bare XLA tape step, batch in 2 independent slices": lambda: bare(slices=2),
        "bare XLA tape step, batch in 4 independent slices": lambda: bare(slices=4),
    }
    return {k: v() for k, v in table.items() if not only or k in only}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", default="issue16", help="issue16 (the issue's dims, one "
                   "repeated batch) or an experiment name (its model on random packed rows, "
                   "benchmarks/loss_check.py)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--inter-op", type=int, default=0, help="TensorFlow inter-op threads alone "
                   "(0: TensorFlow's default, one per core)")
    p.add_argument("--only", default="")
    args = p.parse_args(argv)
    set_tf_threads(args.threads)
    if args.inter_op:
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    runs = variants([s for s in args.only.split(";") if s], args.experiment)
    batch = setup(args.experiment)[3] if args.experiment != "issue16" else BATCH
    for run in runs.values():
        run(args.steps)                                              # compile + warm up
    times = {k: [] for k in runs}
    names = list(runs)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            runs[name](args.steps)
            times[name].append(1000 * (time.perf_counter() - t) / args.steps)
    base = statistics.median(times[names[0]])
    print(f"| variant | ms/step (median of {args.repeats}) | examples/s | vs {names[0]} | runs |")
    print("|---|---:|---:|---:|---|")
    for name, ms in times.items():
        m = statistics.median(ms)
        print(f"| {name} | {m:.1f} | {1000 * batch / m:.1f} | {m / base:.2f}x | "
              f"{', '.join(f'{v:.0f}' for v in ms)} |")


if __name__ == "__main__":
    main()
