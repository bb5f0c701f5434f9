"""``vit-tf compare``: the reports (``metrics.json``) of several runs side by side.

Every report has the schema of ``vit_tf.eval.evaluate``; ``flatten_metrics`` turns one into
``{row name: value}`` rows ("<benchmark>/<category or setting>/<metric>"), pins included
(dataset and model SHA-256, decoding, chat format), and ``compare_runs`` puts one column per
run and marks a pinned setting that differs between runs.

Example:
    >>> print(compare_runs(["runs/a", "runs/b"]))
"""

import json
import os


def _metrics_files(path):
    """``[(label, metrics.json)]`` for a run folder, an eval folder or a metrics.json file."""
    if os.path.isfile(path):
        return [("", path)]
    found = []
    for folder in (path, os.path.join(path, "eval")):
        if os.path.isfile(os.path.join(folder, "metrics.json")):
            found.append(("", os.path.join(folder, "metrics.json")))
        if os.path.isdir(folder):
            for sub in sorted(os.listdir(folder)):
                candidate = os.path.join(folder, sub, "metrics.json")
                if os.path.isfile(candidate):
                    found.append((sub, candidate))
    if not found:
        raise FileNotFoundError(f"{path}: no metrics.json (run `vit-tf eval` on it first)")
    return found


def flatten_metrics(report, label=""):
    """``{row name: value}`` for every number in one report (pinned settings included)."""
    prefix = f"{report.get('benchmark') or label or 'eval'}"
    rows = {}
    for setting, m in report.get("settings", {}).items():
        for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
            rows[f"{prefix}/{setting}/{key}"] = m[key]
    for kind, m in report.get("negatives_by_kind", {}).items():
        rows[f"{prefix}/false yes, absent shares {kind}"] = m["false_yes_rate"]
    for category, m in report.get("categories", {}).items():
        for key in ("exact_match", "vqa_accuracy", "bleu4", "cider_d", "rouge_l",
                    "names_object"):
            if m.get(key) is not None:
                rows[f"{prefix}/{category}/{key}"] = m[key]
    lm = report.get("lm", {})   # vit_tf.eval.lm_retention
    for key in ("same_as_original", "perplexity"):
        if key in lm:
            rows[f"{prefix}/{key}"] = lm[key]
    overall = report.get("overall", {})
    if overall.get("exact_match") is not None:
        rows[f"{prefix}/overall/exact_match"] = overall["exact_match"]
    if "dataset" in report:
        rows[f"{prefix}/dataset sha256"] = report["dataset"]["sha256"][:12]
    if (report.get("model") or {}).get("sha256"):
        rows[f"{prefix}/model sha256"] = report["model"]["sha256"][:12]
    decoding = report.get("decoding", {})
    rows[f"{prefix}/decoding"] = (f"{decoding.get('strategy', '?')} "
                                  f"max{decoding.get('max_new_tokens', '?')}")
    if "chat_format" in report.get("prompt", {}):
        rows[f"{prefix}/chat format"] = report["prompt"]["chat_format"]
    return rows


def compare_runs(paths):
    """One table: a row per metric, a column per run. Text rows show pins that must agree."""
    columns = []
    for path in paths:
        rows = {}
        for label, file in _metrics_files(path):
            try:
                with open(file, encoding="utf-8") as f:
                    rows.update(flatten_metrics(json.load(f), label))
            except json.JSONDecodeError as error:
                raise ValueError(f"{file}: not valid JSON: {error}") from None
        columns.append((path, rows))
    names = []
    for _, rows in columns:
        names += [n for n in rows if n not in names]
    width = max(len(n) for n in names) + 2
    col = max(15, *(len(os.path.basename(os.path.normpath(p))) + 2 for p, _ in columns))
    header = "metric".ljust(width) + "".join(
        os.path.basename(os.path.normpath(p)).rjust(col) for p, _ in columns)
    lines = [header]
    for n in names:
        cells = []
        for _, rows in columns:
            value = rows.get(n)
            if value is None:
                cells.append("-".rjust(col))
            elif isinstance(value, str):
                cells.append(value.rjust(col))
            elif n.endswith(("cider_d", "perplexity")):
                cells.append(f"{value:.3f}".rjust(col))
            else:
                cells.append(f"{100 * value:.1f}".rjust(col))
        values = [rows.get(n) for _, rows in columns]
        pinned = all(isinstance(v, str) for v in values)   # a setting every run recorded
        mark = "  <- differs" if pinned and len(set(values)) > 1 else ""
        lines.append(n.ljust(width) + "".join(cells) + mark)
    lines.append("numbers are percentages except CIDEr-D and perplexity; '-' = not evaluated "
                 "in that run")
    return "\n".join(lines)
