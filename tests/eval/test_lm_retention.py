"""vit_tf.models.text_lm + vit_tf.eval.lm_retention on the tiny GGUF-converted Llama: batched
greedy answers equal one-at-a-time ones, perplexity equals a numpy computation from the
backbone's logits, and the retention report compares a tuned LM with the original's answers."""

import json

import numpy as np
import pytest

from tests.smollm2_tiny import tiny_llama_preset, tiny_preprocessor
from vit_tf.eval.compare import flatten_metrics
from vit_tf.eval.lm_retention import evaluate_retention

PROMPTS = ("hello", "where is the user?", "as is", "hell or user")


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from vit_tf.models.decoders.hub_lm import load_lm_backbone
    from vit_tf.models.text_lm import TextLM

    preset = tiny_llama_preset(tmp_path_factory.mktemp("retention"))
    backbone, pre = load_lm_backbone("llama", preset), tiny_preprocessor(preset)
    return backbone, pre, TextLM(backbone, pre, max_new_tokens=5, batch_size=3, jit_compile=False)


def test_batched_answers_equal_single_ones_and_perplexity_is_exp_mean_nll(lm):
    backbone, pre, text_lm = lm
    conversations = [[{"from": "human", "value": p}] for p in PROMPTS]
    batched = text_lm.answer_ids(conversations)          # 2 batches of 3, the last padded
    alone = [text_lm.answer_ids([c])[0] for c in conversations[1:3]]   # with repeated rows
    assert batched[1:3] == alone and all(len(a) <= 5 for a in batched)
    ids = np.asarray(pre.tokenizer("hello user"), np.int32)[None]
    hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    logits = np.asarray(backbone.token_embedding(hidden, reverse=True))[0].astype(np.float64)
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                                                              keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = np.exp(-np.mean(logp[np.arange(ids.shape[1] - 1), ids[0, 1:]]))
    assert text_lm.perplexity("hello user") == pytest.approx(expected, rel=1e-4)


def test_retention_report_against_the_original_answers(lm, tmp_path):
    backbone, pre, text_lm = lm
    reference = text_lm.answer([[{"from": "human", "value": p}] for p in PROMPTS])
    same = evaluate_retention(backbone, pre, reference, str(tmp_path / "same"), prompts=PROMPTS,
                              text="hello user", text_lm=text_lm, log=lambda m: None)
    assert same["lm"]["same_as_original"] == 1.0 and same["benchmark"] == "lm_retention"
    changed = evaluate_retention(backbone, pre, ["not an answer"] * 4, str(tmp_path / "diff"),
                                 prompts=PROMPTS, text="hello user", text_lm=text_lm,
                                 log=lambda m: None)
    assert changed["lm"]["same_as_original"] == 0.0
    lines = (tmp_path / "diff" / "predictions.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["original"] == "not an answer"
    rows = flatten_metrics(same)
    assert rows["lm_retention/same_as_original"] == 1.0
    assert rows["lm_retention/perplexity"] == same["lm"]["perplexity"]
    with pytest.raises(ValueError, match="3 reference answers for 4 prompts"):
        evaluate_retention(backbone, pre, ["a"] * 3, str(tmp_path / "x"), prompts=PROMPTS)
