"""The evaluation pipeline: items -> predictions -> scores -> one report, for every evaluation.

``vit-tf eval --data FILE [--format F]``, ``vit-tf eval --benchmark shapes|pope``, the
quickstart's step 3 and the experiment scripts all run :func:`evaluate_run` (a run folder) or
:func:`evaluate` (a model in memory); ``vit-tf compare`` reads what they write
(``vit_tf.eval.compare``).

1. items        ``vit_tf.eval.items.eval_set``: a benchmark or a data file -> an ``EvalSet``
2. predictions  :func:`predict`: greedy decoding, batch by batch, each turn answered with the
                ground-truth history before it
3. scores       per category (``vit_tf.eval.scoring``) or per POPE setting (``vit_tf.eval.pope``)
4. report       ``OUT/metrics.json`` (below), ``OUT/predictions.jsonl`` (every item with its
                prediction, without the image path) and ``OUT/report.txt`` (the printed table)

``metrics.json`` has one schema, whichever path wrote it. It pins everything that determines
the numbers, so two reports are comparable exactly when their pins agree::

    {
      "schema_version": 1,
      "benchmark": "shapes" | "pope" | the data file's name,
      "model": {"run": run folder | null, "file": model file | null, "sha256": of the file | null},
      "dataset": {"files": [absolute paths, or "tfds:NAME:SPLIT in DIR"],
                  "format": "llava" | "coco_captions" | "vqa" | "tfds" | "shapes world",
                  "n_items": N, "limit": N | null, "seed": POPE's draw | null,
                  "sha256": SHA-256 of every item's id, prompt, references and image bytes},
      "prompt": {"chat_format": the preprocessor's ("vit_tf" for the trained WordPiece;
                                "gemma", "llama3", "chatml", "bert" for preset tokenizers),
                 "chat_template": one exchange as the model reads it, "{human}" / "{gpt}"
                                  standing for the turns,
                 "prompt_template": the question template ("Is there {a} in the image?",
                                    the caption prompt) or "the dataset's own questions",
                 "history": "ground truth"},
      "decoding": {"strategy": "greedy", "max_new_tokens", "use_cache", "jit_compile",
                   "batch_size", "image_size"},
      answers:  "categories": {name: {"n", "exact_match", "majority_baseline",
                                       "majority_answer", "free_form", ["vqa_accuracy"],
                                       free-form only: "bleu4", "cider_d", "rouge_l"}},
                "overall": {"n", "exact_match", "majority_baseline"}   (short answers only)
      pope:     "settings": {random|popular|adversarial: {"n", "accuracy", "precision",
                                                          "recall", "f1", "yes_ratio",
                                                          "unparsed"}},
                "negatives_by_kind": {kind: {"n", "false_yes_rate"}}
    }

Example:
    >>> report, items = evaluate_run("runs/default", benchmark="pope", image_root="data/shapes")
    >>> report, items = evaluate(task, eval_set(...), "out/")          # a task in memory
    >>> report["settings"]["adversarial"]["f1"]
"""

import json
import os

import numpy as np

from vit_tf.data.chat_format import describe
from vit_tf.eval.items import check_source, dataset_sha256, eval_set, sha256_file
from vit_tf.eval.scoring import format_table, score

SCHEMA_VERSION = 1
HISTORY = "ground truth"


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


def score_items(items, kind):
    """-> (metrics, printed table) for ``kind`` "answers" (per category) or "pope"."""
    if kind == "pope":
        from vit_tf.eval.pope import format_pope_table, score_pope

        metrics = score_pope(items)
        return metrics, format_pope_table(metrics)
    metrics = score(items)
    return metrics, format_table(metrics)


def make_report(evalset, metrics, *, preprocessor, decoding, model=None):
    """The ``metrics.json`` dict (the module docstring's schema)."""
    chat_format = preprocessor.chat_format
    template = describe(chat_format)
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": evalset.name,
        "model": {"run": None, "file": None, "sha256": None, **(model or {})},
        "dataset": {"files": list(evalset.files), "format": evalset.format,
                    "n_items": len(evalset.items), "limit": evalset.limit, "seed": evalset.seed,
                    "sha256": dataset_sha256(evalset.items)},
        "prompt": {"chat_format": chat_format, "chat_template": template,
                   "prompt_template": evalset.prompt_template, "history": HISTORY},
        "decoding": dict(decoding),
        **metrics,
    }


def write_report(out, report, items, table):
    """Write ``metrics.json``, ``predictions.jsonl`` and ``report.txt`` into ``out``."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "predictions.jsonl"), "w") as f:
        for it in items:
            f.write(json.dumps({k: v for k, v in it.items() if k != "image_path"}) + "\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(table + "\n")


def evaluate(task, evalset, out, *, batch_size=64, max_new_tokens=48, jit_compile=True,
             model_info=None, log=print, progress=None):
    """Predict, score and report ``evalset`` (``vit_tf.eval.items.eval_set``) with a task in
    memory; writes the report into ``out`` and returns ``(report, items)``.

    ``model_info``: the report's ``model`` pins (``run``, ``file``, ``sha256``) when known.
    """
    generator = task.generator(max_new_tokens, jit_compile=jit_compile)
    image_size = task.preprocessor.image_size
    items = predict(generator, evalset.items, batch_size, progress)
    metrics, table = score_items(items, evalset.kind)
    decoding = {"strategy": "greedy", "max_new_tokens": max_new_tokens,
                "use_cache": generator.use_cache, "jit_compile": jit_compile,
                "batch_size": batch_size, "image_size": image_size}
    report = make_report(evalset, metrics, preprocessor=task.preprocessor, decoding=decoding,
                         model=model_info)
    write_report(out, report, items, table)
    log(table)
    log(f"predictions: {os.path.join(out, 'predictions.jsonl')}  metrics: "
        f"{os.path.join(out, 'metrics.json')}")
    return report, items


def evaluate_run(model_dir, *, image_root, benchmark=None, data=None, data_format="llava",
                 annotations=None, tfds_data_dir=None, out=None, limit=None, seed=0,
                 skip_invalid=False, max_new_tokens=None, batch_size=None, jit_compile=None,
                 log=print):
    """Evaluate the run in ``model_dir`` on ``benchmark`` or on ``data``; ``(report, items)``.

    ``model_dir``: a preset, a run folder or a ``.keras`` file (``vit_tf.runs.load_task``).
    The report goes to ``out`` (default ``RUN/eval/<benchmark or data name>``). Decoding
    settings default to the preset's recorded ``generate.max_new_tokens`` /
    ``generate.batch_size``; ``jit_compile`` (XLA for the decoding loop) to the run's
    ``train.jit_compile`` (a preset without a run config: its ``generate.jit_compile``).
    """
    from vit_tf.runs import generate_defaults, load_task, run_config

    check_source(benchmark, data, data_format)   # before the model loads
    task = load_task(model_dir)
    g = generate_defaults(model_dir)
    config = None if str(model_dir).endswith(".keras") else run_config(model_dir)
    if jit_compile is None:
        jit_compile = config.train.jit_compile if config is not None else g.jit_compile
    evalset = eval_set(image_root=image_root, preprocessor=task.preprocessor,
                       max_text_length=task.preprocessor.max_text_length, benchmark=benchmark,
                       data=data, data_format=data_format, annotations=annotations,
                       tfds_data_dir=tfds_data_dir, limit=limit, seed=seed,
                       skip_invalid=skip_invalid, log=log)
    model_file = os.path.abspath(model_dir if str(model_dir).endswith(".keras")
                                 else os.path.join(model_dir, "task.weights.h5"))
    folder = os.path.dirname(model_dir) if str(model_dir).endswith(".keras") else model_dir
    return evaluate(
        task, evalset, out or os.path.join(folder, "eval", evalset.name),
        batch_size=batch_size or g.batch_size,
        max_new_tokens=max_new_tokens or g.max_new_tokens, jit_compile=jit_compile,
        model_info={"run": os.path.abspath(model_dir), "file": model_file,
                    "sha256": sha256_file(model_file)}, log=log)
