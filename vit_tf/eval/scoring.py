"""Scoring answers per category, and the table ``vit-tf eval`` prints.

Metrics per ``category``:

    exact match   VQA answer normalisation (case, punctuation, articles, number words)
    majority      the same split's most common normalised answer of that category, as a baseline
    BLEU-4, CIDEr-D, ROUGE-L  for free-form categories (mean reference length > 3 words),
                  against every reference caption when the item carries ``references``
    VQA accuracy  soft accuracy over the human ``answers`` when the item carries them (VQA)
    names object  share of predictions containing one of the item's ``object_words`` (the
                  content words of the object's name: "a red apple" -> red, apple), when
                  items carry them (the real-image captions of ``vit_tf.data.real_images``)

"overall" accuracy and baseline cover the short-answer categories only (captions are judged by
BLEU-4 / CIDEr-D, where exact match means little). POPE's yes/no settings are scored by
``vit_tf.eval.pope.score_pope``.

Example:
    >>> metrics = score([{"category": "counting", "reference": "2", "prediction": "two"}])
    >>> metrics["overall"]["exact_match"]
    1.0
"""

import collections

import numpy as np

from vit_tf.eval.metrics import (
    cider_d,
    corpus_bleu,
    exact_match,
    normalize_answer,
    rouge_l,
    vqa_accuracy,
)

FREE_FORM_MIN_WORDS = 3


def score(items):
    """-> {"categories": {name: {...}}, "overall": {...}} from predicted items.

    Marks every item with ``correct`` (and ``vqa_accuracy`` when it has human answers).
    """
    by_cat = collections.defaultdict(list)
    for it in items:
        it["correct"] = exact_match(it["prediction"], it["reference"])
        if it.get("object_words"):
            said = set(normalize_answer(it["prediction"]).split())
            it["names_object"] = bool(said & set(it["object_words"]))
        if len(it.get("answers", ())) >= 2:
            it["vqa_accuracy"] = vqa_accuracy(it["prediction"], it["answers"])
        by_cat[it["category"]].append(it)
    categories = {}
    short_total = short_correct = short_baseline = 0
    for name in sorted(by_cat):
        group = by_cat[name]
        answers = collections.Counter(normalize_answer(it["reference"]) for it in group)
        majority, _ = answers.most_common(1)[0]
        baseline = float(np.mean([normalize_answer(it["reference"]) == majority for it in group]))
        accuracy = float(np.mean([it["correct"] for it in group]))
        mean_words = float(np.mean([len(it["reference"].split()) for it in group]))
        row = {"n": len(group), "exact_match": accuracy, "majority_baseline": baseline,
               "majority_answer": majority, "free_form": mean_words > FREE_FORM_MIN_WORDS}
        with_answers = [it["vqa_accuracy"] for it in group if "vqa_accuracy" in it]
        if with_answers:
            row["vqa_accuracy"] = float(np.mean(with_answers))
        named = [it["names_object"] for it in group if "names_object" in it]
        if named:
            row["names_object"] = float(np.mean(named))
        if row["free_form"]:
            preds = [it["prediction"] for it in group]
            refs = [it.get("references") or [it["reference"]] for it in group]
            row["bleu4"] = corpus_bleu(preds, refs)
            row["cider_d"] = cider_d(preds, refs) if len(group) > 1 else None
            row["rouge_l"] = rouge_l(preds, refs)
        else:
            short_total += len(group)
            short_correct += accuracy * len(group)
            short_baseline += baseline * len(group)
        categories[name] = row
    overall = {
        "n": short_total,
        "exact_match": short_correct / short_total if short_total else None,
        "majority_baseline": short_baseline / short_total if short_total else None,
    }
    return {"categories": categories, "overall": overall}


def format_table(metrics):
    """The per-category table (percentages; BLEU-4, CIDEr-D and ROUGE-L as fractions); a
    ``named%`` column when some category has ``names_object``."""
    def pct(x):
        return "   -  " if x is None else f"{100 * x:6.1f}"

    def num(x, scale=1.0):
        return "   -  " if x is None else f"{scale * x:6.2f}"

    named = any("names_object" in row for row in metrics["categories"].values())
    lines = [f"{'category':<14} {'n':>6} {'exact%':>7} {'major%':>7} {'BLEU-4':>7} {'CIDEr-D':>7}"
             f" {'ROUGE-L':>7} {'VQA%':>6}" + (f" {'named%':>6}" if named else "")]
    for name, row in metrics["categories"].items():
        lines.append(
            f"{name:<14} {row['n']:>6} {pct(row['exact_match']):>7} "
            f"{pct(row['majority_baseline']):>7} {num(row.get('bleu4')):>7} "
            f"{num(row.get('cider_d')):>7} {num(row.get('rouge_l')):>7} "
            f"{pct(row.get('vqa_accuracy')):>6}"
            + (f" {pct(row.get('names_object')):>6}" if named else "")
        )
    o = metrics["overall"]
    lines.append(f"{'overall (short)':<14} {o['n']:>5} {pct(o['exact_match']):>7} "
                 f"{pct(o['majority_baseline']):>7}")
    return "\n".join(lines)
