"""Evaluate a trained model on LLaVA-format data: predictions (JSONL), metrics (JSON), a table.

Every assistant turn is one evaluation item, answered with the ground-truth history before it
(teacher-forced history), greedy decoding. Metrics per ``category``:

    exact match   VQA answer normalisation (case, punctuation, articles, number words)
    majority      the same split's most common normalised answer of that category, as a baseline
    BLEU-4, CIDEr-D, ROUGE-L  for free-form categories (mean reference length > 3 words),
                  against every reference caption when the record carries ``references``
    VQA accuracy  soft accuracy over the human ``answers`` when the record carries them (VQA)

"overall" accuracy and baseline cover the short-answer categories only (captions are judged by
BLEU-4 / CIDEr-D, where exact match means little).
"""

import collections
import json
import os

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


def expand_turns(records):
    """One item per assistant turn: prompt = the conversation up to that turn's question.

    A record's ``answers`` (VQA human answers) and ``references`` (all captions) belong to its
    last answer and are copied onto that turn's item.
    """
    items = []
    for r in records:
        conv = r["conversations"]
        for k in range(1, len(conv), 2):
            extra = {key: r[key] for key in ("answers", "references")
                     if key in r and k == len(conv) - 1}
            items.append({
                **extra,
                "id": f"{r['id']}#{k // 2}",
                "record_id": r["id"],
                "turn": k // 2,
                "category": r.get("category") or "uncategorized",
                "image_path": r["image_path"],
                "prompt": conv[:k],
                "reference": conv[k]["value"],
            })
    return items


def predict(generator, items, batch_size, progress=None):
    """Fill ``item["prediction"]`` for every item, batch by batch (each image converted once,
    by the model's preprocessor)."""
    images = {}
    order = sorted(range(len(items)), key=lambda i: len(items[i]["prompt"]))
    for start in range(0, len(order), batch_size):
        batch = [items[i] for i in order[start:start + batch_size]]
        for it in batch:
            if it["image_path"] not in images:
                images[it["image_path"]] = generator.pixels([it["image_path"]])[0]
        pixels = np.stack([images[it["image_path"]] for it in batch])
        for it, answer in zip(batch, generator.generate(pixels, [it["prompt"] for it in batch])):
            it["prediction"] = answer
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return items


def score(items):
    """-> {"categories": {name: {...}}, "overall": {...}} from predicted items."""
    by_cat = collections.defaultdict(list)
    for it in items:
        it["correct"] = exact_match(it["prediction"], it["reference"])
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
    def pct(x):
        return "   -  " if x is None else f"{100 * x:6.1f}"

    def num(x, scale=1.0):
        return "   -  " if x is None else f"{scale * x:6.2f}"

    lines = [f"{'category':<14} {'n':>6} {'exact%':>7} {'major%':>7} {'BLEU-4':>7} {'CIDEr-D':>7}"
             f" {'ROUGE-L':>7} {'VQA%':>6}"]
    for name, row in metrics["categories"].items():
        lines.append(
            f"{name:<14} {row['n']:>6} {pct(row['exact_match']):>7} "
            f"{pct(row['majority_baseline']):>7} {num(row.get('bleu4')):>7} "
            f"{num(row.get('cider_d')):>7} {num(row.get('rouge_l')):>7} "
            f"{pct(row.get('vqa_accuracy')):>6}"
        )
    o = metrics["overall"]
    lines.append(f"{'overall (short)':<14} {o['n']:>5} {pct(o['exact_match']):>7} "
                 f"{pct(o['majority_baseline']):>7}")
    return "\n".join(lines)


def evaluate(task, records, out_dir, *, batch_size=64, max_new_tokens=48, jit_compile=True,
             progress=None):
    """Predict and score ``records``; writes predictions.jsonl and metrics.json to ``out_dir``."""
    generator = task.generator(max_new_tokens, jit_compile=jit_compile)
    items = predict(generator, expand_turns(records), batch_size, progress)
    metrics = score(items)
    metrics["decoding"] = {"strategy": "greedy", "max_new_tokens": max_new_tokens,
                           "history": "ground truth",
                           "chat_format": task.preprocessor.chat_format}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "predictions.jsonl"), "w") as f:
        for it in items:
            row = {k: v for k, v in it.items() if k != "image_path"}
            f.write(json.dumps(row) + "\n")
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics, items
