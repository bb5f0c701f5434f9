"""vit_tf vs the PyTorch reference (HF ``LlavaForConditionalGeneration``) at equal size.

    python -m venv /work/venv-bench && /work/venv-bench/bin/pip install \
        -r benchmarks/requirements-bench.txt
    PYTHONPATH=$PWD python benchmarks/hf_side_by_side.py --hf-python /work/venv-bench/bin/python \
        [--repeats 5] [--train-steps 8] [--out benchmarks/results.md]

Each side runs in its own worker processes (TensorFlow and torch never share a process or its
thread pools; vit_tf one process per kind of measure, ``--one-tf-worker`` one for all), new
ones each repeat (``--same-workers``: the same ones for the whole run); the
driver sends both the same measurements in turn, alternating sides within each repeat, so
machine load hits both alike; it reports medians and the vit_tf/HF ratio.

Size (issue 16): 64 px images, patch 8 (64 image tokens), 2-layer ViT width 128 (MLP 512),
MLP projector, 4-layer decoder width 128 (MLP 512), 4 heads, vocabulary 512, 32 text tokens,
batch 32, AdamW (lr 1e-3), every text token trained. HF: CLIP vision tower (its CLS token
dropped: ``vision_feature_select_strategy="default"``) + Llama, torch CPU, 2 threads, eager
(SDPA attention), global gradient clipping 1.0. vit_tf: ``model.fit`` on an in-memory
``tf.data`` stream, ``compile_model`` with the shipped train config (per-variable clipnorm 1.0,
grad_norm telemetry, ``train.jit_compile`` / ``train.xla_update`` as shipped); ``--tf-train``
adds rows with other settings.

Measured:
  * training examples/s of one ``fit`` call of --train-steps steps (HF: that many steps of
    forward + backward + clip + AdamW), after warm-up;
  * generation new tokens/s, 64 new tokens after a 64 image + 16 text token prompt, greedy,
    batch 1 and 8, with and without the KV cache (HF ``generate``; vit_tf ``Generator``, XLA);
  * each side's achieved FLOP/s (analytic matmul FLOPs of its own architecture, training =
    3 x forward) as a fraction of the machine's matmul rate (the best of a 1024^3 float32
    matmul in TF and in torch, measured here);
  * vit_tf only: the shipped training path, the default experiment (packed rows of 96 tokens,
    batch 16, steps_per_execution 16), ms/step.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH, TEXT, IMAGE, PATCH, VOCAB, WIDTH, INTER, HEADS = 32, 32, 64, 8, 512, 128, 512, 4
ENC_LAYERS, DEC_LAYERS, NEW_TOKENS, PROMPT = 2, 4, 64, 16
IMG_TOKENS = (IMAGE // PATCH) ** 2                                   # 64


def forward_flops(side, batch, text, logits_at):
    """Matmul FLOPs (2 x multiply-adds) of one forward pass; attention as computed (full)."""
    d, i, n = WIDTH, INTER, IMG_TOKENS
    enc_n = n + (1 if side == "hf" else 0)                          # CLIP's CLS token
    enc = enc_n * PATCH * PATCH * 3 * d + ENC_LAYERS * (enc_n * (4 * d * d + 2 * d * i)
                                                        + 2 * enc_n * enc_n * d)
    proj = n * 2 * d * d
    t = n + text
    mlp = (3 if side == "hf" else 2) * d * i                        # Llama's gated MLP
    dec = DEC_LAYERS * (t * (4 * d * d + mlp) + 2 * t * t * d) + logits_at * d * VOCAB
    return 2 * batch * (enc + proj + dec)


def gen_flops(side, batch, cache):
    """Matmul FLOPs of generating NEW_TOKENS after a prompt (prefill + steps)."""
    prompt = IMG_TOKENS + PROMPT
    if cache:
        d, mlp = WIDTH, (3 if side == "hf" else 2) * WIDTH * INTER
        steps = sum(DEC_LAYERS * (4 * d * d + mlp + 2 * (prompt + k) * d) + d * VOCAB
                    for k in range(NEW_TOKENS))
        return forward_flops(side, batch, PROMPT, 1) + 2 * batch * steps
    return sum(forward_flops(side, batch, PROMPT + k, 1) for k in range(NEW_TOKENS))


# ----------------------------------------------------------------------------- TF worker

def tf_config():
    """The issue's size as a vit_tf ExperimentConfig."""
    from vit_tf.config import ExperimentConfig, apply_overrides

    return apply_overrides(ExperimentConfig(name="hf_size"), [
        f"data.image_size={IMAGE}", f"data.batch_size={BATCH}", f"data.vocabulary_size={VOCAB}",
        f"model.encoder.patch_size={PATCH}", f"model.encoder.hidden_dim={WIDTH}",
        f"model.encoder.num_layers={ENC_LAYERS}", f"model.encoder.num_heads={HEADS}",
        f"model.encoder.intermediate_dim={INTER}", "model.encoder.conv_stem=false",
        "model.projector.name=mlp", f"model.decoder.hidden_dim={WIDTH}",
        f"model.decoder.num_layers={DEC_LAYERS}", f"model.decoder.num_heads={HEADS}",
        f"model.decoder.intermediate_dim={INTER}"])


def tf_batch(seed=0):
    """One training batch (inputs, labels, sample_weight): every text token trained."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = {"images": rng.uniform(0, 255, (BATCH, IMAGE, IMAGE, 3)).astype("float32"),
         "token_ids": rng.integers(5, VOCAB, (BATCH, TEXT)).astype("int32"),
         "padding_mask": np.ones((BATCH, TEXT), bool)}
    return x, rng.integers(5, VOCAB, (BATCH, TEXT)).astype("int32"), np.ones((BATCH, TEXT),
                                                                             "float32")


def set_tf_threads(threads):
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def tf_training_model():
    """(model, repeated dataset of ``tf_batch()``, its inputs): the vit_tf model at the dims
    above, built with seed 0 and compiled as ``fit`` runs it (TensorFlow imported here, after
    any ``set_tf_threads``)."""
    import keras
    import tensorflow as tf

    from vit_tf.models.factory import build_model
    from vit_tf.training.optim import compile_model

    config = tf_config()
    keras.utils.set_random_seed(0)
    x, y, w = tf_batch()
    ds = tf.data.Dataset.from_tensors((x, y, w)).repeat()
    model = build_model(config, VOCAB, max_text_length=PROMPT + NEW_TOKENS + 16)
    compile_model(model, config.train, total_steps=10_000,
                  steps_per_execution=config.train.steps_per_execution)
    return model, ds, x


def tf_worker(threads):
    set_tf_threads(threads)
    import keras
    import tensorflow as tf

    from benchmarks.loss_check import batches
    from vit_tf.data.preprocessor import VisionLanguagePreprocessor
    from vit_tf.experiments import load_experiment
    from vit_tf.models.factory import build_model
    from vit_tf.models.generation import Generator
    from vit_tf.training.optim import compile_model

    config = tf_config()
    model, ds, x = tf_training_model()
    variants = {"": model}            # training variants: --tf-train overrides -> model

    def variant(overrides):
        if overrides not in variants:
            from vit_tf.config import apply_overrides

            c = apply_overrides(config, [o for o in overrides.split(",") if o])
            keras.utils.set_random_seed(0)
            m = build_model(c, VOCAB, max_text_length=PROMPT + NEW_TOKENS + 16)
            # train.steps_per_execution is compile's argument, not read from the train config
            # (the 2026-12-07 06:28 run's "steps_per_execution=16" row left it at 1).
            compile_model(m, c.train, total_steps=10_000,
                          steps_per_execution=c.train.steps_per_execution)
            variants[overrides] = m
        return variants[overrides]

    from tests.helpers import tiny_tokenizer
    preprocessor = VisionLanguagePreprocessor(tiny_tokenizer(), "vit_tf", IMAGE,
                                              PROMPT + NEW_TOKENS + 16)
    conversation = [{"from": "human", "value": "What colour is the circle? Is it big"}]
    generators = {}

    default = load_experiment("default")
    default_model = []

    def run(cmd):
        op = cmd["op"]
        if op == "train":
            steps = cmd["steps"]
            m = variant(cmd.get("variant", ""))
            if steps % m.steps_per_execution:
                raise ValueError(f"{steps} training steps are not whole calls of "
                                 f"{m.steps_per_execution} steps (--train-steps)")
            t = time.perf_counter()
            m.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
            return {"seconds": time.perf_counter() - t, "examples": steps * BATCH}
        if op == "gen":
            key = (cmd["batch"], cmd["cache"])
            if key not in generators:
                # Every row gets exactly NEW_TOKENS (HF: min_new_tokens = max_new_tokens).
                gen = Generator(model, preprocessor, max_new_tokens=NEW_TOKENS,
                                use_cache=cmd["cache"], min_new_tokens=NEW_TOKENS)
                generators[key] = gen
            gen = generators[key]
            images = x["images"][:cmd["batch"]]
            t = time.perf_counter()
            out = gen.generate_ids(images, [conversation] * cmd["batch"])
            seconds = time.perf_counter() - t
            assert all(len(ids) == NEW_TOKENS for ids in out)
            return {"seconds": seconds, "tokens": cmd["batch"] * NEW_TOKENS,
                    "prompt": int(gen.encode_prompts([conversation])[2][0])}
        if op == "default":
            if not default_model:
                m = build_model(default, default.data.vocabulary_size,
                                max_text_length=default.data.pack_length)
                compile_model(m, default.train, total_steps=10_000,
                              steps_per_execution=default.train.steps_per_execution)
                default_model.append((m, batches(default, default.data.vocabulary_size, 64)
                                      .repeat()))
            m, data = default_model[0]
            steps = cmd["steps"]
            t = time.perf_counter()
            m.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
            return {"seconds": time.perf_counter() - t, "steps": steps}
        if op == "matmul":
            a = tf.random.normal((1024, 1024))
            f = tf.function(lambda a: tf.linalg.matmul(a, a), jit_compile=True)
            f(a).numpy()
            best = 1e9
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(10):
                    r = f(a)
                r.numpy()
                best = min(best, (time.perf_counter() - t) / 10)
            return {"flops_per_s": 2 * 1024 ** 3 / best}
        raise ValueError(op)

    serve(run)


# ----------------------------------------------------------------------------- HF worker

def hf_worker(threads):
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )
    torch.set_num_threads(threads or 2)
    torch.manual_seed(0)
    image_id = 3
    vision = CLIPVisionConfig(hidden_size=WIDTH, intermediate_size=INTER,
                              num_hidden_layers=ENC_LAYERS, num_attention_heads=HEADS,
                              image_size=IMAGE, patch_size=PATCH, projection_dim=WIDTH)
    text = LlamaConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=INTER,
                       num_hidden_layers=DEC_LAYERS, num_attention_heads=HEADS,
                       num_key_value_heads=HEADS, max_position_embeddings=256, pad_token_id=0)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_id,
                         projector_hidden_act="gelu", vision_feature_select_strategy="default",
                         vision_feature_layer=-1, image_seq_length=IMG_TOKENS)
    model = LlavaForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    ids = torch.cat([torch.full((BATCH, IMG_TOKENS), image_id),
                     torch.randint(5, VOCAB, (BATCH, TEXT))], 1)    # (batch, 64 + 32)
    labels = ids.clone()
    labels[:, :IMG_TOKENS] = -100                                   # every text token trained
    pixels = torch.rand(BATCH, 3, IMAGE, IMAGE)

    def step():
        model.train()
        loss = model(input_ids=ids, pixel_values=pixels, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def run(cmd):
        op = cmd["op"]
        if op == "train":
            t = time.perf_counter()
            for _ in range(cmd["steps"]):
                step()
            return {"seconds": time.perf_counter() - t, "examples": cmd["steps"] * BATCH}
        if op == "gen":
            b = cmd["batch"]
            prompt = torch.cat([torch.full((b, IMG_TOKENS), image_id),
                                torch.randint(5, VOCAB, (b, cmd.get("prompt", PROMPT)))], 1)
            model.eval()
            with torch.no_grad():
                t = time.perf_counter()
                out = model.generate(input_ids=prompt, pixel_values=pixels[:b],
                                     max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                     do_sample=False, use_cache=cmd["cache"], eos_token_id=None,
                                     pad_token_id=0)
                seconds = time.perf_counter() - t
            assert out.shape[1] - prompt.shape[1] == NEW_TOKENS
            return {"seconds": seconds, "tokens": b * NEW_TOKENS}
        if op == "matmul":
            a = torch.randn(1024, 1024)
            torch.mm(a, a)
            best = 1e9
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(10):
                    torch.mm(a, a)
                best = min(best, (time.perf_counter() - t) / 10)
            return {"flops_per_s": 2 * 1024 ** 3 / best}
        raise ValueError(op)

    serve(run)


def serve(run):
    """Answer JSON commands on stdin with 'RESULT {json}' lines on stdout."""
    print("READY", flush=True)
    for line in sys.stdin:
        print("RESULT " + json.dumps(run(json.loads(line))), flush=True)


# ----------------------------------------------------------------------------- driver

class Worker:
    """A worker process of ``script`` (default: this file) answering JSON commands."""

    def __init__(self, python, side, threads, script=None):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [python, script or os.path.abspath(__file__), "--worker", side, "--threads",
             str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self._read("READY")

    def _read(self, prefix):
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise RuntimeError(f"worker exited ({self.proc.wait()})")

    def __call__(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._read("RESULT "))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=("tf", "hf"))
    p.add_argument("--threads", type=int, default=0, help="0: each framework's default "
                   "(TF: all cores; torch is set to 2)")
    p.add_argument("--hf-python", default=sys.executable)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=8)
    p.add_argument("--default-steps", type=int, default=32)
    p.add_argument("--skip", default="", help="comma list of: train,gen,default")
    p.add_argument("--tf-train", default="", help="extra vit_tf training rows, ';'-separated, "
                   "each a comma list of --set overrides of the shipped config "
                   "(e.g. 'train.jit_compile=true')")
    p.add_argument("--out", default="", help="write the table into this results file")
    p.add_argument("--same-workers", dest="fresh_workers", action="store_false",
                   help="one worker process per side for the whole run (default: fresh "
                        "ones each repeat)")
    p.add_argument("--one-tf-worker", action="store_true",
                   help="one vit_tf process for training, generation and the default "
                        "experiment (default: one process each)")
    args = p.parse_args(argv)
    if args.worker == "tf":
        return tf_worker(args.threads)
    if args.worker == "hf":
        return hf_worker(args.threads)

    skip = set(filter(None, args.skip.split(",")))
    gens = [(b, c) for b in (1, 8) for c in (True, False)]
    tf_variants = [v for v in args.tf_train.split(";") if v]
    sides, rate, prompt = {}, 0.0, None

    def matmul_rate():
        """The best 1024^3 matmul rate of the two sides' processes now (FLOP/s)."""
        return max(sides[k](op="matmul")["flops_per_s"] for k in ("vit_tf gen", "hf"))

    def start_workers():
        """Fresh worker processes, warmed up: compilation (XLA, tf.function) and torch's
        first-call costs. Why fresh ones per repeat: a process's state (allocator, thread
        pools) is then a sample among others instead of the whole run's result. The fit
        "slow mode" seen before (a 16-step call at ~320 instead of ~180 ms/step) was tf.data's
        autotuning thread delaying the iterator's teardown, now off in ``Task.fit``
        (``vit_tf.data.pipeline.without_autotune_thread``). The training warm-up runs every
        model twice, in the timed order: a model's first call after another model's first
        call pays a one-time ~1.2 s in its first step (1415 ms against 177 ms, 2026-12-07,
        `fit` with steps_per_execution 1; its cause not traced further),
        which is not the steady state this measures. vit_tf gets one
        process per kind of measure (``--one-tf-worker``: one for all), each holding only
        the models it measures: a worker that also held the generators and the default
        experiment's model ran the same training step at 258-273 ms against 192-199 ms in
        a process of its own (2026-12-07)."""
        nonlocal sides, rate, prompt
        for w in set(sides.values()):
            w.close()
        tf_train = Worker(sys.executable, "tf", args.threads)
        tf_gen = tf_train if args.one_tf_worker else Worker(sys.executable, "tf", args.threads)
        tf_default = tf_train if args.one_tf_worker else Worker(sys.executable, "tf",
                                                                  args.threads)
        sides = {"vit_tf": tf_train, "hf": Worker(args.hf_python, "hf", args.threads),
                 "vit_tf gen": tf_gen, "vit_tf default": tf_default}
        rate = max(rate, matmul_rate())
        prompt = tf_gen(op="gen", batch=1, cache=True)["prompt"]   # also warms up
        for name in ("vit_tf", "hf"):
            if "train" not in skip:
                # warm-up with the timed number of steps: the same calls, so nothing is
                # traced or compiled while timed (a call runs steps_per_execution steps);
                # twice over, for the one-time cost above
                for _ in range(2):
                    sides[name](op="train", steps=args.train_steps)
                    for v in tf_variants * (name == "vit_tf"):
                        sides[name](op="train", steps=args.train_steps, variant=v)
            if "gen" not in skip:
                for b, c in gens:
                    sides[name if name == "hf" else "vit_tf gen"](op="gen", batch=b, cache=c,
                                                                 prompt=prompt)
        if "default" not in skip:
            tf_default(op="default", steps=args.default_steps)

    samples = {}
    for r in range(args.repeats):
        if r == 0 or args.fresh_workers:
            start_workers()
        names = ["vit_tf", "hf"] if r % 2 == 0 else ["hf", "vit_tf"]
        for name in names:
            if "train" not in skip:
                w = sides[name]
                res = w(op="train", steps=args.train_steps)
                samples.setdefault(("train", name), []).append(res["examples"] / res["seconds"])
                for v in tf_variants * (name == "vit_tf"):
                    res = w(op="train", steps=args.train_steps, variant=v)
                    samples.setdefault((f"train {v}", name), []).append(
                        res["examples"] / res["seconds"])
            if "gen" not in skip:
                w = sides["hf" if name == "hf" else "vit_tf gen"]
                for b, c in gens:
                    res = w(op="gen", batch=b, cache=c, prompt=prompt)
                    samples.setdefault((f"gen b{b} {'cache' if c else 'no cache'}", name),
                                       []).append(res["tokens"] / res["seconds"])
        # The machine's rate: the best matmul seen (a loaded machine lowers a single probe).
        rate = max(rate, matmul_rate())
        if "default" not in skip:
            res = sides["vit_tf default"](op="default", steps=args.default_steps)
            samples.setdefault(("default", "vit_tf"), []).append(
                1000 * res["seconds"] / res["steps"])
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    for w in set(sides.values()):
        w.close()

    def med(key):
        return statistics.median(samples[key])

    def flops(what, side):
        if what.startswith("train"):
            logits = TEXT if side == "vit_tf" else IMG_TOKENS + TEXT   # HF: logits everywhere
            return 3 * forward_flops(side, 1, TEXT, logits)            # per example
        b, c = int(what.split()[1][1:]), "no cache" not in what
        return gen_flops(side, b, c) / (b * NEW_TOKENS)               # per new token

    rows = ["| measure | unit | vit_tf | HF | vit_tf / HF | vit_tf FLOP/s share "
            "| HF FLOP/s share |",
            "|---|---|---:|---:|---:|---:|---:|"]
    trains = ["train"] + [f"train {v}" for v in tf_variants]
    for what in trains * ("train" not in skip) + [
            f"gen b{b} {'cache' if c else 'no cache'}" for b, c in gens] * ("gen" not in skip):
        a, h = med((what, "vit_tf")), med((what.split()[0] if what in trains else what, "hf"))
        unit = "examples/s" if what in trains else "new tokens/s"
        label = ("training (fit)" if what == "train" else f"training (fit, {what[6:]})"
                 if what in trains else "generation " + what[4:])
        rows.append(f"| {label} | {unit} | {a:,.1f} | {h:,.1f} | {a / h:.2f}x | "
                    f"{a * flops(what, 'vit_tf') / rate:.1%} | "
                    f"{h * flops(what, 'hf') / rate:.1%} |")
    text = "\n".join(rows)
    if "default" not in skip:
        ms = samples[("default", "vit_tf")]
        text += (f"\n\nShipped training path (default experiment: packed rows of 96, batch 16, "
                 f"steps_per_execution 16, fit): median {statistics.median(ms):.1f} ms/step "
                 f"(runs: {', '.join(f'{v:.1f}' for v in ms)}).")
    spread = "; ".join(f"{k[0]} {k[1]}: " + ", ".join(f"{v:,.0f}" for v in vals)
                       for k, vals in samples.items() if k[0] != "default")
    text += (f"\n\nMachine matmul rate (1024^3 float32, best of TF/torch over all repeats): "
             f"{rate / 1e9:.1f} "
             f"GFLOP/s. Medians of {args.repeats} alternating repeats ({args.train_steps} "
             f"training steps each; generation {NEW_TOKENS} new tokens after {IMG_TOKENS} image "
             f"+ {prompt} text prompt tokens). Runs: {spread}.")
    print(text)
    if args.out:
        sys.path.insert(0, ROOT)
        from benchmarks._results import write_section
        write_section("hf_side_by_side", "## vit_tf vs HF LLaVA at equal size "
                      "(`benchmarks/hf_side_by_side.py`)\n\n" + text, path=args.out)


if __name__ == "__main__":
    main()
