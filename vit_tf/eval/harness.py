"""The evaluation harness: a named benchmark or a data file -> a pinned, comparable report.

Benchmarks (``BENCHMARKS``):

    shapes   every answer of the shapes world's test split (``IMAGE_ROOT/test.json``), scored
             per category (exact match, BLEU-4 / CIDEr-D / ROUGE-L for free-form answers)
    pope     POPE-style yes/no object hallucination questions generated from the shapes
             world's test scenes (``vit_tf.eval.pope``)

or a file in any reader's format (``llava``, ``coco_captions``, ``vqa`` with its annotations
file); VQA files add soft accuracy, caption files score against all references.

The report (``OUT/metrics.json``) pins what determines the numbers: the chat template and the
prompt template, the decoding settings, the model file (and its SHA-256), and a SHA-256 of the
dataset (every
item's id, prompt and references, and the bytes of every image it uses), so two reports are
comparable exactly when these agree. ``OUT/predictions.jsonl`` holds every answer and
``OUT/report.txt`` the printed table. :func:`compare_runs` puts several runs side by side.

Example:
    >>> report = run_benchmark("runs/default", benchmark="pope", image_root="data/shapes")
    >>> print(compare_runs(["runs/a", "runs/b"]))
"""

import hashlib
import json
import os

from vit_tf.data.chat_format import describe
from vit_tf.eval.evaluate import expand_turns, format_table, predict, score

BENCHMARKS = ("shapes", "pope")
FORMATS = ("llava", "coco_captions", "vqa", "tfds")


def _sha256_file(path, cache):
    if path not in cache:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        cache[path] = digest.hexdigest()
    return cache[path]


def dataset_sha256(items):
    """SHA-256 over every item's id, prompt, reference(s) and the bytes of its image."""
    digest, cache = hashlib.sha256(), {}
    for it in items:
        row = {"id": it["id"], "prompt": it["prompt"], "reference": it["reference"],
               "answers": it.get("answers"), "references": it.get("references"),
               "image": _sha256_file(it["image_path"], cache)}
        digest.update(json.dumps(row, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def _records_from_file(data, data_format, image_root, annotations, preprocessor, max_text_length,
                       skip_invalid, log, tfds_data_dir=None):
    from vit_tf.data.pipeline import text_lengths
    from vit_tf.data.prepare import prepare_records
    from vit_tf.data.sources import DataValidationError, Problem
    from vit_tf.data.sources.readers import read_data_argument

    if data_format not in FORMATS:
        raise ValueError(f"unknown data format {data_format!r}; known: {', '.join(FORMATS)}")
    if data_format == "llava":
        records, _, report = prepare_records(data, image_root, max_text_length=max_text_length,
                                             preprocessor=preprocessor,
                                             skip_invalid=skip_invalid)
    else:
        dataset = read_data_argument(data_format, data, image_root, annotations=annotations,
                                     tfds_data_dir=tfds_data_dir, skip_invalid=True)
        report, records = dataset.report, []
        for record, n in zip(dataset.records, text_lengths(preprocessor, dataset.records)):
            if n > max_text_length:
                report.problems.append(Problem(str(data), record["id"], "conversations",
                                               f"text is {n} tokens, longer than the context "
                                               f"(data.max_text_length={max_text_length})",
                                               "text too long"))
            else:
                records.append(record)
        report.n_valid = len(records)
        if not records or (not report.ok and not skip_invalid):
            raise DataValidationError(report)
    if not report.ok:
        log(f"skipped {report.n_invalid} invalid records: {report.summary()}")
    return records


def _model_pin(path):
    """Where the evaluated model came from and a SHA-256 of its weights."""
    weights = path if str(path).endswith(".keras") else os.path.join(path, "task.weights.h5")
    return {"run": os.path.abspath(path), "file": os.path.abspath(weights),
            "sha256": _sha256_file(weights, {})}


def run_benchmark(model_dir, *, image_root, benchmark=None, data=None, data_format="llava",
                  annotations=None, tfds_data_dir=None, out=None, limit=None, seed=0,
                  skip_invalid=False,
                  max_new_tokens=None, batch_size=None, jit_compile=None, log=print):
    """Evaluate the run in ``model_dir`` on ``benchmark`` or on ``data``; returns the report.

    ``jit_compile`` (XLA for the decoding loop) defaults to the run's ``train.jit_compile``;
    it is recorded with the other decoding settings.
    """
    from vit_tf.runs import generate_defaults, load_task, run_config

    if (benchmark is None) == (data is None):
        raise ValueError("give either a benchmark (--benchmark shapes|pope) or a data file "
                         "(--data), not both")
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    task = load_task(model_dir)
    g, config = generate_defaults(model_dir), run_config(model_dir)
    max_new_tokens = max_new_tokens or g.max_new_tokens
    if jit_compile is None:
        jit_compile = config.train.jit_compile if config is not None else g.jit_compile
    batch_size = batch_size or g.batch_size
    max_text_length = task.preprocessor.max_text_length
    name = benchmark or os.path.splitext(os.path.basename(str(data)))[0].replace(":", "_")
    prompt_template = "the dataset's own questions"
    if benchmark == "pope":
        from vit_tf.eval.pope import POPE_PROMPT, pope_items

        items = pope_items(image_root, "test", seed=seed)
        prompt_template = POPE_PROMPT
        files = [os.path.join(image_root, "shapes_world.json")]
    else:
        if benchmark == "shapes":
            data = os.path.join(image_root, "test.json")
            data_format = "llava"
        records = _records_from_file(data, data_format, image_root, annotations,
                                     task.preprocessor, max_text_length, skip_invalid, log,
                                     tfds_data_dir)
        items = expand_turns(records)
        files = [str(data)] + ([str(annotations)] if annotations else [])
        if data_format == "tfds":
            files = [f"tfds:{data} in {os.path.abspath(tfds_data_dir)}"]
        if records and all("references" in r for r in records):  # made into caption prompts
            from vit_tf.data.sources.coco import CAPTION_PROMPT

            prompt_template = CAPTION_PROMPT
    items = items[:limit] if limit else items
    if not items:
        raise ValueError(f"{name}: nothing to evaluate")
    generator = task.generator(max_new_tokens, jit_compile=jit_compile)
    predict(generator, items, batch_size)
    if benchmark == "pope":
        from vit_tf.eval.pope import format_pope_table, score_pope

        metrics = score_pope(items)
        table = format_pope_table(metrics)
    else:
        metrics = score(items)
        table = format_table(metrics)
    report = {
        "benchmark": name,
        "model": _model_pin(model_dir),
        "dataset": {
            "files": [f if f.startswith("tfds:") else os.path.abspath(f) for f in files],
            "format": "shapes world" if benchmark == "pope" else data_format,
            "n_items": len(items), "limit": limit, "seed": seed if benchmark == "pope" else None,
            "sha256": dataset_sha256(items),
        },
        "prompt": {"chat_template": describe(task.preprocessor.chat_format), "prompt_template": prompt_template,
                   "history": "ground truth"},
        "decoding": {"strategy": "greedy", "max_new_tokens": max_new_tokens,
                     "use_cache": True, "jit_compile": jit_compile, "batch_size": batch_size,
                     "image_size": task.preprocessor.image_size,
                     "history": "ground truth", "chat_format": task.preprocessor.chat_format},
        **metrics,
    }
    out = out or os.path.join(model_dir, "eval", name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "predictions.jsonl"), "w") as f:
        for it in items:
            f.write(json.dumps({k: v for k, v in it.items() if k != "image_path"}) + "\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(table + "\n")
    log(table)
    log(f"predictions: {os.path.join(out, 'predictions.jsonl')}  metrics: "
        f"{os.path.join(out, 'metrics.json')}")
    return report


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
        for key in ("exact_match", "vqa_accuracy", "bleu4", "cider_d", "rouge_l"):
            if m.get(key) is not None:
                rows[f"{prefix}/{category}/{key}"] = m[key]
    overall = report.get("overall", {})
    if overall.get("exact_match") is not None:
        rows[f"{prefix}/overall/exact_match"] = overall["exact_match"]
    if "dataset" in report:
        rows[f"{prefix}/dataset sha256"] = report["dataset"]["sha256"][:12]
    if "sha256" in report.get("model", {}):
        rows[f"{prefix}/model sha256"] = report["model"]["sha256"][:12]
    decoding = report.get("decoding", {})
    rows[f"{prefix}/decoding"] = (f"{decoding.get('strategy', '?')} "
                                  f"max{decoding.get('max_new_tokens', '?')}")
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
            elif n.endswith(("cider_d",)):
                cells.append(f"{value:.3f}".rjust(col))
            else:
                cells.append(f"{100 * value:.1f}".rjust(col))
        values = [rows.get(n) for _, rows in columns]
        pinned = all(isinstance(v, str) for v in values)   # a setting every run recorded
        mark = "  <- differs" if pinned and len(set(values)) > 1 else ""
        lines.append(n.ljust(width) + "".join(cells) + mark)
    lines.append("numbers are percentages except CIDEr-D; '-' = not evaluated in that run")
    return "\n".join(lines)
