"""Evaluation items, per-category scoring, the majority baseline and the chat-format pin."""

import pytest

from vit_tf.data.chat_format import CHAT_FORMATS, describe
from vit_tf.eval.items import expand_turns
from vit_tf.eval.scoring import format_table, score


def _record(rid, category, turns):
    conv = []
    for q, a in turns:
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    conv[0]["value"] = "<image>\n" + conv[0]["value"]
    return {"id": rid, "category": category, "image_path": "x.png", "conversations": conv}


def test_expand_turns_gives_one_item_per_answer_with_history_up_to_its_question():
    r = _record("r1", "conversation", [("is there a circle?", "yes"), ("what colour is it?", "red")])
    items = expand_turns([r])
    assert [it["id"] for it in items] == ["r1#0", "r1#1"]
    assert items[1]["prompt"] == r["conversations"][:3]
    assert items[1]["prompt"][-1]["from"] == "human"
    assert items[1]["reference"] == "red"


def test_score_exact_match_and_majority_baseline_per_category():
    items = []
    for i, (ref, pred) in enumerate([("yes", "Yes."), ("yes", "no"), ("no", "no"), ("yes", "yes")]):
        items.append({"category": "existence", "reference": ref, "prediction": pred})
    items.append({"category": "counting", "reference": "2", "prediction": "two"})
    metrics = score(items)
    ex = metrics["categories"]["existence"]
    assert ex["exact_match"] == pytest.approx(0.75)
    assert ex["majority_answer"] == "yes"
    assert ex["majority_baseline"] == pytest.approx(0.75)
    assert metrics["categories"]["counting"]["exact_match"] == 1.0  # number words normalised
    assert metrics["overall"]["n"] == 5
    assert metrics["overall"]["exact_match"] == pytest.approx(4 / 5)


def test_free_form_categories_get_bleu_and_cider_and_stay_out_of_overall():
    caps = ["a large red circle and a small blue square.", "a small green triangle on the left."]
    items = [{"category": "caption", "reference": c, "prediction": c} for c in caps]
    items.append({"category": "attribute", "reference": "red", "prediction": "blue"})
    metrics = score(items)
    cap = metrics["categories"]["caption"]
    assert cap["free_form"] and cap["bleu4"] > 0.99 and cap["cider_d"] > 0
    assert metrics["overall"]["n"] == 1 and metrics["overall"]["exact_match"] == 0.0
    assert "caption" in format_table(metrics)


def test_format_table_keeps_its_columns():
    metrics = score([{"category": "counting", "reference": "2", "prediction": "two"}])
    lines = format_table(metrics).split("\n")
    assert lines[0] == "category            n  exact%  major%  BLEU-4 CIDEr-D ROUGE-L   VQA%"
    assert lines[1] == "counting            1   100.0   100.0     -       -       -      -  "
    assert lines[2] == "overall (short)     1   100.0   100.0"


def test_the_chat_template_pin_is_rendered_from_the_chat_format():
    assert describe("vit_tf") == "<|user|> {human} <|end|> <|assistant|> {gpt} <|end|>"
    assert describe("gemma") == ("<bos><start_of_turn>user\n{human}<end_of_turn>\n"
                                 "<start_of_turn>model\n{gpt}<end_of_turn>\n")
    for chat_format in CHAT_FORMATS:
        template = describe(chat_format)
        assert "{human}" in template and "{gpt}" in template
