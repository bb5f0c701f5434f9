"""Generation speed of the converted SmolLM2-135M-Instruct (keras-hub LlamaCausalLM) on this CPU.

    nice -n 19 python benchmarks/lm_generation_speed.py [--preset pretrained:smollm2_135m_instruct]
        [--new-tokens 32] [--batches 1,8] [--repeats 3]

Prints a markdown table and writes it into the ``lm_generation_speed`` section of --out
(default benchmarks/results.md). ``LlamaCausalLM.generate`` (keras-hub's KV cache, greedy
sampler, stop tokens disabled so every row gets exactly ``--new-tokens``) on a fixed ChatML
prompt repeated ``batch`` times, with XLA (``jit_compile``) on and off; new tokens/s =
batch x new tokens / seconds, median of ``--repeats`` runs after one warm-up (tracing /
compiling) run, whose seconds are reported too. Wall-clock and process-CPU rates as in
benchmarks/benchmark.py; the load average is recorded before and after.

Measured 2026-12-04 on the shared 2-core machine (load average 0.5-1.7 during the runs),
``python benchmarks/lm_generation_speed.py --preset /tmp/smol_preset`` (a folder written by
``vit_tf.models.pretrained.gguf_llama.convert_smollm2``, float32), prompt 16 tokens, 32 new
tokens, median of 3; new tokens/s per wall-clock second (warm-up seconds), two runs ~2 min apart:

    setting            run 1 (21:15)       run 2 (21:18, in results.md)
    XLA, batch 1        12.4  (30.1 s)      18.6  (20.8 s)
    XLA, batch 8        86.0  (32.7 s)     108.7  (20.6 s)
    no XLA, batch 1     17.1  (17.5 s)      20.0  (14.9 s)
    no XLA, batch 8     79.0  (17.6 s)      80.8  (15.2 s)

XLA does not help at batch 1 here (the step is probably bound by reading the 0.5 GB of float32 weights,
~50-80 ms per token, not by op dispatch as in the small default model of benchmark.py); at
batch 8 it is 1.1-1.3x faster. Batch 8 gives 4-7x the tokens/s of batch 1. Greedy answer:
'The capital of France is Paris.'
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._results import write_section  # noqa: E402
from benchmarks.benchmark import Timer  # noqa: E402
from vit_tf.pretrained import resolve_preset  # noqa: E402

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_lm(preset):
    path = resolve_preset(preset)
    backbone = keras_hub.models.LlamaBackbone.from_preset(path)
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(path)
    lm = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    lm.compile(sampler="greedy")
    return lm, tokenizer


def measure(lm, prompt_ids, batch, new_tokens, xla, repeats):
    """-> (warm-up seconds, median Timer, generated ids of row 0)."""
    lm.jit_compile = xla
    lm.generate_function = None          # rebuilt with this jit_compile
    length = len(prompt_ids) + new_tokens
    ids = np.zeros((batch, length), "int32")
    mask = np.zeros((batch, length), bool)
    ids[:, :len(prompt_ids)], mask[:, :len(prompt_ids)] = prompt_ids, True
    inputs = {"token_ids": ids, "padding_mask": mask}
    with Timer() as warm:
        out = lm.generate(inputs, stop_token_ids=None)
    runs = []
    for _ in range(repeats):
        with Timer() as t:
            out = lm.generate(inputs, stop_token_ids=None)
        runs.append(t)
    runs.sort(key=lambda t: t.wall)
    return warm.wall, runs[len(runs) // 2], np.asarray(out["token_ids"][0, len(prompt_ids):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="pretrained:smollm2_135m_instruct",
                   help="a keras-hub Llama preset folder or pretrained:NAME (converted once)")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results.md"))
    args = p.parse_args(argv)
    before = uptime()
    lm, tokenizer = load_lm(args.preset)
    prompt_ids = np.asarray(tokenizer(PROMPT)).astype("int32")
    im_end = tokenizer.token_to_id("<|im_end|>")
    rows, answer = [], None
    for xla in (True, False):
        for batch in (int(b) for b in args.batches.split(",")):
            warm, t, row0 = measure(lm, prompt_ids, batch, args.new_tokens, xla, args.repeats)
            n = batch * args.new_tokens
            rows.append((f"{'XLA' if xla else 'no XLA'}, batch {batch}", n / t.wall, n / t.cpu,
                         t.wall, warm))
            if answer is None:   # up to the first <|im_end|> (stop tokens are off)
                row0 = row0.tolist()
                answer = tokenizer.detokenize(row0[:row0.index(im_end)] if im_end in row0
                                              else row0)
            print(rows[-1], flush=True)
    text = "\n".join([
        f"## SmolLM2-135M-Instruct generation (`python benchmarks/lm_generation_speed.py`)\n",
        f"keras-hub `LlamaCausalLM.generate`, KV cache, greedy, float32, prompt "
        f"{len(prompt_ids)} tokens, {args.new_tokens} new tokens per row, median of "
        f"{args.repeats} after a warm-up run.\n",
        "| setting | new tokens/s (wall) | new tokens/s (CPU) | seconds per call | warm-up s |",
        "|---|---:|---:|---:|---:|",
        *[f"| {name} | {wall:,.1f} | {cpu:,.1f} | {sec:.2f} | {warm:.1f} |"
          for name, wall, cpu, sec, warm in rows],
        "",
        f"greedy answer (row 0): {answer!r}  ",
        f"load before: `{before}`  ",
        f"load after: `{uptime()}`",
    ])
    print(text)
    write_section("lm_generation_speed", text, args.out)


if __name__ == "__main__":
    main()
