"""An independent plain-numpy forward of a GGUF Llama, for the converter's parity tests.

It reads nothing of ``vit_tf.models.pretrained.gguf_llama`` but the tensors of
``read_gguf_llama`` (GGUF layout: ``(out, in)`` matrices) and works as llama.cpp does: q/k stay
in GGUF's permuted row order and rotary embedding turns adjacent pairs ``(2i, 2i + 1)`` of each
head (so the converter's un-permutation is checked, not reused). RMSNorm, grouped-query
attention with a causal mask, SwiGLU feed-forward, output = ``output.weight`` or the embedding
table (tied). A KV cache makes greedy decoding cheap.
"""

import contextlib
import ctypes

import numpy as np


@contextlib.contextmanager
def one_blas_thread():
    """numpy's OpenBLAS on one thread meanwhile: on a busy 2-core machine its threads spin
    against TensorFlow's and other processes' (a 30-layer decode step: 0.7 s -> 0.07 s).
    A no-op where numpy's BLAS is not the bundled scipy-openblas."""
    lib = None
    try:
        with open("/proc/self/maps") as f:
            path = next((line.split()[-1] for line in f if "scipy_openblas" in line), None)
        lib = ctypes.CDLL(path) if path else None
        before = lib.scipy_openblas_get_num_threads64_() if lib else None
    except (OSError, AttributeError):
        lib = None
    if lib:
        lib.scipy_openblas_set_num_threads64_(1)
    try:
        yield
    finally:
        if lib:
            lib.scipy_openblas_set_num_threads64_(before)


def _rms(x, scale, eps):
    x64 = x.astype(np.float64)
    return (x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + eps) * scale).astype(
        np.float32)


def _rope_pairs(x, positions, base):
    """x (len, heads, head_dim): adjacent pairs (2i, 2i+1) rotated by position * base^(-2i/hd)."""
    hd = x.shape[-1]
    inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)      # (hd/2,)
    angle = positions[:, None].astype(np.float64) * inv[None, :]      # (len, hd/2)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    x0, x1 = x[..., 0::2].astype(np.float64), x[..., 1::2].astype(np.float64)
    out = np.empty(x.shape, np.float64)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out.astype(np.float32)


class NumpyLlama:
    """``NumpyLlama(hparams, tensors)(ids, cache)`` -> (logits (len, vocab), cache)."""

    def __init__(self, hparams, tensors):
        self.hp, self.t = hparams, tensors
        self.heads, self.kv = hparams["num_query_heads"], hparams["num_key_value_heads"]
        self.hd = hparams["hidden_dim"] // self.heads
        self.out = tensors.get("output.weight", tensors["token_embd.weight"])

    def __call__(self, ids, cache=None):
        hp, t, hd = self.hp, self.t, self.hd
        eps, base = hp["layer_norm_epsilon"], hp["rope_max_wavelength"]
        cache = cache or [None] * hp["num_layers"]
        start = 0 if cache[0] is None else cache[0][0].shape[0]
        ids = np.asarray(ids)
        n = len(ids)
        pos = np.arange(start, start + n)
        x = t["token_embd.weight"][ids].astype(np.float32)               # (n, d)
        new_cache = []
        for i in range(hp["num_layers"]):
            b = f"blk.{i}."
            h = _rms(x, t[b + "attn_norm.weight"], eps)
            q = (h @ t[b + "attn_q.weight"].T).reshape(n, self.heads, hd)
            k = (h @ t[b + "attn_k.weight"].T).reshape(n, self.kv, hd)
            v = (h @ t[b + "attn_v.weight"].T).reshape(n, self.kv, hd)
            q, k = _rope_pairs(q, pos, base), _rope_pairs(k, pos, base)
            if cache[i] is not None:
                k = np.concatenate([cache[i][0], k])
                v = np.concatenate([cache[i][1], v])
            new_cache.append((k, v))
            total = k.shape[0]
            group = self.heads // self.kv
            kk = np.repeat(k, group, axis=1)                               # (total, heads, hd)
            vv = np.repeat(v, group, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, kk) / np.sqrt(hd)
            allowed = np.arange(total)[None, :] <= pos[:, None]           # causal
            scores = np.where(allowed[None], scores, -np.inf)
            scores = scores - scores.max(-1, keepdims=True)
            p = np.exp(scores)
            p /= p.sum(-1, keepdims=True)
            att = np.einsum("hqk,khd->qhd", p, vv).reshape(n, self.heads * hd)
            x = x + att @ t[b + "attn_output.weight"].T
            h = _rms(x, t[b + "ffn_norm.weight"], eps)
            gate = h @ t[b + "ffn_gate.weight"].T
            up = h @ t[b + "ffn_up.weight"].T
            x = x + ((gate / (1 + np.exp(-gate))) * up) @ t[b + "ffn_down.weight"].T
        x = _rms(x, t["output_norm.weight"], eps)
        return x @ self.out.T, new_cache

    def greedy(self, ids, max_new_tokens, stop_ids=()):
        """Greedy continuation of ``ids`` -> the new ids (stops after a stop id)."""
        with one_blas_thread():
            logits, cache = self(ids)
            out = []
            for _ in range(max_new_tokens):
                nxt = int(np.argmax(logits[-1]))
                out.append(nxt)
                if nxt in stop_ids:
                    break
                logits, cache = self([nxt], cache)
        return out
