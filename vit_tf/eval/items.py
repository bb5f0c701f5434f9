"""What an evaluation asks: a benchmark or a data file -> an ``EvalSet`` of items.

Sources (``eval_set``):

    shapes   every answer of the shapes world's test split (``IMAGE_ROOT/test.json``)
    pope     POPE-style yes/no object hallucination questions generated from the shapes
             world's test scenes (``vit_tf.eval.pope``)
    a file   in any reader's format (``FORMATS``: ``llava``, ``coco_captions``, ``vqa`` with
             its annotations file, ``tfds`` as ``NAME:SPLIT``, ``imagefolder`` and
             ``sidecar_captions`` folders)

Every assistant turn of a record is one item (``expand_turns``), answered with the ground-truth
history before it. An item: ``id`` ("<record>#<turn>"), ``record_id``, ``turn``, ``category``,
``image_path``, ``prompt`` (the conversation up to the question), ``reference``, and, on a
record's last answer, the VQA human ``answers`` and all caption ``references`` when the record
has them (and ``object_words``, the content words of the object a caption should name).
``dataset_sha256`` pins the items and the bytes of their images.
"""

import dataclasses
import hashlib
import json
import os

from vit_tf.digest import file_sha256

BENCHMARKS = ("shapes", "pope")
FORMATS = ("llava", "coco_captions", "vqa", "tfds", "imagefolder", "sidecar_captions")
OWN_QUESTIONS = "the dataset's own questions"


@dataclasses.dataclass
class EvalSet:
    """The items of one evaluation and what pins them (see ``vit_tf.eval.evaluate``'s schema)."""

    name: str                    # "shapes", "pope" or the data file's name; RUN/eval/<name>
    items: list
    kind: str = "answers"        # "answers": scored per category; "pope": per yes/no setting
    files: list = dataclasses.field(default_factory=list)
    format: str = "llava"        # a reader's format, or "shapes world" for POPE
    prompt_template: str = OWN_QUESTIONS
    seed: int | None = None      # the POPE question draw
    limit: int | None = None


def expand_turns(records):
    """One item per assistant turn: prompt = the conversation up to that turn's question.

    A record's ``answers`` (VQA human answers) and ``references`` (all captions) belong to its
    last answer and are copied onto that turn's item.
    """
    items = []
    for r in records:
        conv = r["conversations"]
        for k in range(1, len(conv), 2):
            extra = {key: r[key] for key in ("answers", "references", "object_words")
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


def sha256_file(path, cache=None):
    """SHA-256 of a file's bytes (``cache``: path -> digest, filled as it goes)."""
    cache = {} if cache is None else cache
    if path not in cache:
        cache[path] = file_sha256(path)
    return cache[path]


def dataset_sha256(items):
    """SHA-256 over every item's id, prompt, reference(s) and the bytes of its image."""
    digest, cache = hashlib.sha256(), {}
    for it in items:
        row = {"id": it["id"], "prompt": it["prompt"], "reference": it["reference"],
               "answers": it.get("answers"), "references": it.get("references"),
               "image": sha256_file(it["image_path"], cache)}
        digest.update(json.dumps(row, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def read_records(data, data_format, image_root, *, preprocessor, max_text_length,
                 annotations=None, tfds_data_dir=None, skip_invalid=False, log=print):
    """Validated records of a data file; records longer than the context are problems too."""
    from vit_tf.data.prepare import check_lengths, prepare_records
    from vit_tf.data.sources import DataValidationError
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
        report = dataset.report
        records = check_lengths(dataset.records, preprocessor, max_text_length, report, data)
        if not records or (not report.ok and not skip_invalid):
            raise DataValidationError(report)
    if not report.ok:
        log(f"skipped {report.n_invalid} invalid records: {report.summary()}")
    return records


def check_source(benchmark, data, data_format="llava"):
    """Raise ``ValueError`` unless exactly one of a known benchmark and a data file is given."""
    if (benchmark is None) == (data is None):
        raise ValueError("give either a benchmark (--benchmark shapes|pope) or a data file "
                         "(--data), not both")
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    if data is not None and data_format not in FORMATS:
        raise ValueError(f"unknown data format {data_format!r}; known: {', '.join(FORMATS)}")


def eval_set(*, image_root, preprocessor, max_text_length, benchmark=None, data=None,
             data_format="llava", annotations=None, tfds_data_dir=None, limit=None, seed=0,
             skip_invalid=False, log=print):
    """The ``EvalSet`` of ``benchmark`` (``BENCHMARKS``) or of the file ``data``.

    ``preprocessor`` and ``max_text_length`` (the model's context) decide which records fit;
    ``limit`` keeps the first N items; ``seed`` draws POPE's questions.
    """
    check_source(benchmark, data, data_format)
    name = benchmark or os.path.splitext(os.path.basename(str(data)))[0].replace(":", "_")
    if benchmark == "pope":
        from vit_tf.eval.pope import POPE_PROMPT, pope_items

        result = EvalSet(name, pope_items(image_root, "test", seed=seed), kind="pope",
                         files=[os.path.abspath(os.path.join(image_root, "shapes_world.json"))],
                         format="shapes world", prompt_template=POPE_PROMPT, seed=seed)
    else:
        if benchmark == "shapes":
            data, data_format = os.path.join(image_root, "test.json"), "llava"
        records = read_records(data, data_format, image_root, preprocessor=preprocessor,
                               max_text_length=max_text_length, annotations=annotations,
                               tfds_data_dir=tfds_data_dir, skip_invalid=skip_invalid, log=log)
        if data_format == "tfds":
            where = os.path.abspath(tfds_data_dir) if tfds_data_dir else "tfds's default data_dir"
            files = [f"tfds:{data} in {where}"]
        else:
            files = [os.path.abspath(f) for f in [str(data)] + ([str(annotations)]
                                                                if annotations else [])]
        prompt_template = OWN_QUESTIONS
        if records and all("references" in r for r in records):  # made into caption prompts
            from vit_tf.data.sources.coco import CAPTION_PROMPT

            prompt_template = CAPTION_PROMPT
        result = EvalSet(name, expand_turns(records), files=files, format=data_format,
                         prompt_template=prompt_template)
    result.items = result.items[:limit] if limit else result.items
    result.limit = limit
    if not result.items:
        raise ValueError(f"{name}: nothing to evaluate")
    return result
