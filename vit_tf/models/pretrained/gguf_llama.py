"""A llama.cpp GGUF Llama -> a keras-hub Llama preset (backbone, BPE tokenizer, chat format).

``read_gguf_llama`` gives the architecture (``hparams``) and every tensor dequantized to
float32 numpy under its GGUF name, in GGUF's own layout: ``(out, in)`` matrices, and the q/k
projections still permuted for llama.cpp's interleaved rotary embedding (within each head,
rows ``2i`` and ``2i + 1`` form rotary pair ``i``). keras-hub's Llama rotates the two halves of
each head (pair ``i`` is rows ``i`` and ``i + head_dim / 2``), so ``convert`` undoes that
permutation (``unpermute_rotary``) while it copies the weights in. A tied GGUF (no
``output.weight``, as SmolLM2) gets an untied backbone whose output projection starts as a copy
of the embedding table: keras-hub 0.32 does not keep ``tie_word_embeddings`` in the backbone's
config, so a tied preset would not reload.

``convert_smollm2(source_path, out_dir)`` (the ``smollm2_135m_instruct`` converter of
``vit_tf.pretrained``) writes a keras-hub preset folder: ``config.json`` +
``model.weights.h5`` (a float32 ``LlamaBackbone``), ``tokenizer.json`` + ``assets/tokenizer``
(a byte-level ``BytePairTokenizer`` with the GGUF's vocabulary and merges, its control tokens
unsplittable) and ``chat_format.json`` (format ``chatml``, the GGUF's Jinja chat template and
special tokens; see ``vit_tf.data.chat_format.write_preset_chat_format``).

Example:
    >>> hparams, tensors = read_gguf_llama("SmolLM2-135M-Instruct.Q4_1.gguf")
    >>> hparams["num_layers"], tensors["blk.0.attn_q.weight"].shape
    (30, (576, 576))
"""

import os

import numpy as np

from vit_tf.data.chat_format import write_preset_chat_format

CONTROL = 3        # llama.cpp token type of control tokens (<|im_start|> ...)
USER_DEFINED = 4   # token type of user-defined added tokens


class GGUFError(ValueError):
    """The GGUF file cannot be converted; the message names the file and what is wrong."""


def _reader(path):
    import gguf

    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # a bad magic, a truncated file ...
        raise GGUFError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from e


def _field(reader, path, key, default=KeyError):
    field = reader.get_field(key)
    if field is None:
        if default is KeyError:
            raise GGUFError(f"{path}: metadata {key!r} is missing")
        return default
    return field.contents()


def _hparams(reader, path):
    arch = _field(reader, path, "general.architecture")
    if arch != "llama":
        raise GGUFError(f"{path}: general.architecture is {arch!r}, not 'llama'")
    names = {t.name for t in reader.tensors}
    heads = int(_field(reader, path, "llama.attention.head_count"))
    hidden = int(_field(reader, path, "llama.embedding_length"))
    tokens = reader.get_field("tokenizer.ggml.tokens")
    vocab = _field(reader, path, "llama.vocab_size", None)
    if vocab is None:
        if tokens is None:
            raise GGUFError(f"{path}: neither llama.vocab_size nor tokenizer.ggml.tokens is set")
        vocab = len(tokens.data)
    hp = {
        "vocabulary_size": int(vocab),
        "num_layers": int(_field(reader, path, "llama.block_count")),
        "hidden_dim": hidden,
        "intermediate_dim": int(_field(reader, path, "llama.feed_forward_length")),
        "num_query_heads": heads,
        "num_key_value_heads": int(_field(reader, path, "llama.attention.head_count_kv", heads)),
        "rope_max_wavelength": float(_field(reader, path, "llama.rope.freq_base", 10000.0)),
        "layer_norm_epsilon": float(_field(reader, path, "llama.attention.layer_norm_rms_epsilon")),
        "context_length": int(_field(reader, path, "llama.context_length", 0)),
        "tie_word_embeddings": "output.weight" not in names,
    }
    head_dim = hidden // heads
    rope_dim = int(_field(reader, path, "llama.rope.dimension_count", head_dim))
    if hidden % heads or rope_dim != head_dim:
        raise GGUFError(f"{path}: rotary dimension {rope_dim} with width {hidden} and {heads} "
                        "heads is not supported (keras-hub's Llama rotates whole heads)")
    scaling = _field(reader, path, "llama.rope.scaling.type", None)
    if scaling not in (None, "", "none"):
        raise GGUFError(f"{path}: rope scaling {scaling!r} is not supported")
    if "rope_freqs.weight" in names:
        raise GGUFError(f"{path}: rope_freqs.weight (Llama 3.1 rope scaling) is not supported")
    return hp


def _tensors(reader, path):
    from gguf.quants import dequantize

    out = {}
    for t in reader.tensors:
        try:
            array = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        except Exception as e:
            raise GGUFError(f"{path}: tensor {t.name!r} of type {t.tensor_type.name} cannot be "
                            f"dequantized ({type(e).__name__}: {e})") from e
        shape = tuple(int(n) for n in reversed(t.shape))   # GGUF lists dimensions innermost first
        if array.shape != shape:
            array = array.reshape(shape)
        out[t.name] = array
    return out


def read_gguf_llama(path):
    """-> (hparams dict, {GGUF tensor name: float32 numpy array}) of a GGUF Llama.

    ``hparams``: vocabulary_size, num_layers, hidden_dim, intermediate_dim, num_query_heads,
    num_key_value_heads, rope_max_wavelength, layer_norm_epsilon, context_length and
    tie_word_embeddings (no ``output.weight``). Tensors keep GGUF's layout (``(out, in)``,
    q/k rows permuted for interleaved rotary)."""
    reader = _reader(path)
    return _hparams(reader, path), _tensors(reader, path)


def read_gguf_tokenizer(path, reader=None):
    """The GGUF's tokenizer metadata: tokens, merges, token_types, the special token ids
    (bos, eos, unk, pad; None where unset) and chat_template (None where unset)."""
    reader = reader or _reader(path)
    model = _field(reader, path, "tokenizer.ggml.model")
    if model != "gpt2":
        raise GGUFError(f"{path}: tokenizer.ggml.model is {model!r}, not 'gpt2' (byte-level BPE)")
    tokens = list(_field(reader, path, "tokenizer.ggml.tokens"))
    types = _field(reader, path, "tokenizer.ggml.token_type", None)
    special = {}
    for name in ("bos", "eos", "unk", "padding"):
        value = _field(reader, path, f"tokenizer.ggml.{name}_token_id", None)
        special[name if name != "padding" else "pad"] = None if value is None else int(value)
    return {
        "tokens": tokens,
        "merges": list(_field(reader, path, "tokenizer.ggml.merges")),
        "token_types": [1] * len(tokens) if types is None else [int(t) for t in types],
        "special_ids": special,
        "pre": _field(reader, path, "tokenizer.ggml.pre", None),
        "chat_template": _field(reader, path, "tokenizer.chat_template", None),
    }


def unpermute_rotary(weight, num_heads):
    """GGUF (interleaved-rotary) q/k rows -> the half-split order: ``(heads * head_dim, in)``,
    row ``h * head_dim + 2i + j`` -> ``h * head_dim + j * head_dim / 2 + i``."""
    rows, cols = weight.shape
    head_dim = rows // num_heads
    return (weight.reshape(num_heads, head_dim // 2, 2, cols).swapaxes(1, 2)
            .reshape(rows, cols))


class _Tensors:
    """GGUF tensors taken once each by name: a missing one names the file."""

    def __init__(self, tensors, path):
        self.tensors, self.path, self.used = tensors, path, set()

    def __call__(self, name, shape):
        if name not in self.tensors:
            raise GGUFError(f"{self.path}: tensor {name!r} is missing")
        array = self.tensors[name]
        if array.shape != tuple(shape):
            raise GGUFError(f"{self.path}: tensor {name!r} has shape {array.shape}, "
                            f"expected {tuple(shape)}")
        self.used.add(name)
        return array

    def check_all_used(self):
        left = sorted(set(self.tensors) - self.used)
        if left:
            raise GGUFError(f"{self.path}: tensors not mapped onto the Llama backbone: "
                            f"{', '.join(left[:8])}{' ...' if len(left) > 8 else ''}")


def _assign(variable, value, what):
    if tuple(variable.shape) != value.shape:
        raise GGUFError(f"{what}: shape {value.shape} does not fit {variable.path} "
                        f"{tuple(variable.shape)}")
    variable.assign(value)


def build_backbone(hparams, tensors, path="<tensors>"):
    """A float32 ``keras_hub.models.LlamaBackbone`` holding the GGUF tensors (q/k un-permuted);
    its output projection is its own variable even where the GGUF ties it to the embedding."""
    import keras_hub

    hp = hparams
    d, heads, kv = hp["hidden_dim"], hp["num_query_heads"], hp["num_key_value_heads"]
    hd, ffn, vocab = d // heads, hp["intermediate_dim"], hp["vocabulary_size"]
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=vocab, num_layers=hp["num_layers"], num_query_heads=heads,
        hidden_dim=d, intermediate_dim=ffn, num_key_value_heads=kv,
        rope_max_wavelength=hp["rope_max_wavelength"],
        layer_norm_epsilon=hp["layer_norm_epsilon"],
        tie_word_embeddings=False, dtype="float32")
    take = _Tensors(tensors, path)
    emb = backbone.token_embedding
    table = take("token_embd.weight", (vocab, d))
    _assign(emb.embeddings, table, "token_embd.weight")
    # Always untied: keras-hub 0.32's LlamaBackbone.get_config drops tie_word_embeddings, so a
    # tied backbone reloads (from_preset, or a .keras file holding it) as an untied one and
    # its weights no longer fit. A tied GGUF's output matrix is the embedding table, copied.
    out = table if hp["tie_word_embeddings"] else take("output.weight", (vocab, d))
    rev = emb.reverse_embeddings
    _assign(rev, np.ascontiguousarray(out.T) if tuple(rev.shape) == (d, vocab) else out,
            "output.weight")
    _assign(backbone.layer_norm.scale, take("output_norm.weight", (d,)), "output_norm.weight")
    for i, layer in enumerate(backbone.transformer_layers):
        b = f"blk.{i}."
        att = layer._self_attention_layer
        q = unpermute_rotary(take(b + "attn_q.weight", (heads * hd, d)), heads)
        k = unpermute_rotary(take(b + "attn_k.weight", (kv * hd, d)), kv)
        v = take(b + "attn_v.weight", (kv * hd, d))
        o = take(b + "attn_output.weight", (d, heads * hd))
        pairs = [
            (layer._self_attention_layernorm.scale, take(b + "attn_norm.weight", (d,)),
             "attn_norm"),
            (att._query_dense.kernel, q.reshape(heads, hd, d).transpose(2, 0, 1), "attn_q"),
            (att._key_dense.kernel, k.reshape(kv, hd, d).transpose(2, 0, 1), "attn_k"),
            (att._value_dense.kernel, v.reshape(kv, hd, d).transpose(2, 0, 1), "attn_v"),
            (att._output_dense.kernel, o.T.reshape(heads, hd, d), "attn_output"),
            (layer._feedforward_layernorm.scale, take(b + "ffn_norm.weight", (d,)), "ffn_norm"),
            (layer._feedforward_gate_dense.kernel, take(b + "ffn_gate.weight", (ffn, d)).T,
             "ffn_gate"),
            (layer._feedforward_intermediate_dense.kernel, take(b + "ffn_up.weight", (ffn, d)).T,
             "ffn_up"),
            (layer._feedforward_output_dense.kernel, take(b + "ffn_down.weight", (d, ffn)).T,
             "ffn_down"),
        ]
        for variable, value, name in pairs:
            _assign(variable, np.ascontiguousarray(value), f"{path}: {b}{name}")
    take.check_all_used()
    return backbone


def build_tokenizer(info, path="<tokenizer>"):
    """A ``keras_hub.tokenizers.BytePairTokenizer`` of the GGUF vocabulary and merges; control
    and user-defined tokens are unsplittable (``<|im_start|>`` is one id, never BPE'd)."""
    import keras_hub

    tokens = info["tokens"]
    vocabulary = {t: i for i, t in enumerate(tokens)}
    if len(vocabulary) != len(tokens):
        raise GGUFError(f"{path}: tokenizer.ggml.tokens holds duplicate tokens")
    special = [t for t, kind in zip(tokens, info["token_types"]) if kind in (CONTROL, USER_DEFINED)]
    try:
        return keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=vocabulary, merges=info["merges"], unsplittable_tokens=special)
    except Exception as e:   # a merge whose parts or result are not in the vocabulary ...
        raise GGUFError(f"{path}: the BPE tokenizer cannot be built "
                        f"({type(e).__name__}: {e})") from e


def convert(source_path, out_dir, chat_format):
    """GGUF Llama at ``source_path`` -> a keras-hub preset folder ``out_dir`` (see the module
    docstring) whose conversations are written in ``chat_format``."""
    reader = _reader(source_path)
    hparams = _hparams(reader, source_path)
    info = read_gguf_tokenizer(source_path, reader)
    if len(info["tokens"]) != hparams["vocabulary_size"]:
        raise GGUFError(f"{source_path}: {len(info['tokens'])} tokens but llama.vocab_size "
                        f"{hparams['vocabulary_size']}")
    backbone = build_backbone(hparams, _tensors(reader, source_path), source_path)
    tokenizer = build_tokenizer(info, source_path)
    os.makedirs(out_dir, exist_ok=True)
    backbone.save_to_preset(out_dir)
    tokenizer.save_to_preset(out_dir)
    names = {"bos": "bos_token", "eos": "eos_token", "unk": "unk_token", "pad": "pad_token"}
    special = {names[k]: {"id": i, "token": info["tokens"][i]}
               for k, i in info["special_ids"].items() if i is not None}
    write_preset_chat_format(out_dir, chat_format, template=info["chat_template"],
                             special_tokens=special, source=os.path.basename(source_path))
    return out_dir


def convert_smollm2(source_path, out_dir):
    """SmolLM2-135M-Instruct (Q4_1 GGUF) -> a Llama preset with its BPE tokenizer, ChatML."""
    return convert(source_path, out_dir, chat_format="chatml")
