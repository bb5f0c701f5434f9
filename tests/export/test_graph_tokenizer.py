"""The core-TF WordPiece gives the ids and text of the keras-hub tokenizer and Generator."""

import numpy as np
import tensorflow as tf

from tests.helpers import tiny_config, tiny_tokenizer
from vit_tf.export.graph_tokenizer import GraphWordPiece
from vit_tf.inference.generate import Generator
from vit_tf.models.factory import build_model

TEXTS = ["What colour is the circle?", "The circle is RED.", "  how   many squares, are there!!",
         "", "café naïve", "xyzzy qqq", "a" * 150, "red-ish (big)   squares's", "汉字 and #hash",
         "tab\tnew\nline", "IS IT BIG?the"]


def _ids(out):
    return out.to_list() if hasattr(out, "to_list") else [list(map(int, r)) for r in out]


def test_graph_wordpiece_gives_the_keras_hub_token_ids():
    tok = tiny_tokenizer()
    expected = _ids(tok(tf.constant(TEXTS)))
    assert GraphWordPiece(tok.get_vocabulary()).tokenize(tf.constant(TEXTS)).to_list() == expected
    assert any(1 in ids for ids in expected) and any(len(ids) > 3 for ids in expected)


def test_graph_detokenize_gives_the_generator_text():
    tok = tiny_tokenizer()
    gen = Generator(build_model(tiny_config(), tok.vocabulary_size(), 32), tok, jit_compile=False)
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, tok.vocabulary_size(), n).tolist() for n in (1, 5, 9, 12)]
    rows += _ids(tok(tf.constant(TEXTS[:3])))
    got = GraphWordPiece(tok.get_vocabulary()).detokenize(tf.ragged.constant(rows)).numpy()
    assert [t.decode() for t in got] == [gen.detokenize(r) for r in rows]
