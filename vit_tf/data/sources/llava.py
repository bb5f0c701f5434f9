"""Read and validate LLaVA-format instruction data: one JSON file, images under a root folder.

The format, the one we document for users' own data::

    [
      {"id": "abc", "image": "shapes/000001.png", "category": "counting",
       "conversations": [
         {"from": "human", "value": "<image>\\nHow many circles are there?"},
         {"from": "gpt", "value": "There are two circles."}]}
    ]

``id`` is a string or integer, unique in the file; ``image`` is a path relative to the image
root; turns alternate ``human``, ``gpt``, ..., ending with ``gpt``; ``<image>`` appears exactly
once, in the first human turn; ``category`` is optional. :func:`read_llava` checks all of it for
every record and reports every problem at once::

    data = read_llava("data/train.json", "data/images", skip_invalid=True)
    if data.skipped:
        print(f"skipped {data.skipped} of {data.report.n_records} records: {data.report.summary()}")
"""

import dataclasses
import json
import os

import numpy as np
from PIL import Image

from vit_tf.data.sources.validation import (
    FILE_LEVEL,
    DataValidationError,
    Problem,
    ValidationReport,
    check_image_file,
    check_image_files,
    file_problem,
)

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")
_FIELD_ORDER = ("-", "id", "image", "conversations", "category")


@dataclasses.dataclass
class LlavaDataset:
    """The valid records of a file, the report on all of them, and how many were skipped.

    Each record is a shallow copy of the JSON record with ``id`` as a string, ``image_path`` the
    absolute image path and ``category`` (``""`` when absent).
    """

    records: list
    report: ValidationReport
    skipped: int


def read_llava(json_path, image_root, *, skip_invalid=False, max_length=None, length_fn=None,
               check_images=True, num_workers=None):
    """Read ``json_path``, check every record, and return the valid ones.

    Raises :class:`DataValidationError` listing every problem unless ``skip_invalid`` is set,
    in which case invalid records are left out and counted in ``skipped``; it raises even then
    when the file itself can't be read or no record at all is valid. With ``max_length`` and
    ``length_fn`` (``length_fn(record) -> tokens including image tokens``, called on the
    normalised copy of each otherwise-valid record), a record longer than the context is a
    problem too. Images are checked in a thread pool of ``num_workers`` threads (Pillow
    releases the GIL while decoding); problems keep record order.
    """
    if (max_length is None) != (length_fn is None):
        raise ValueError("max_length and length_fn must be given together")
    json_path = str(json_path)
    data = _load_json_list(json_path)
    if check_images and not os.path.isdir(image_root):
        raise DataValidationError(
            file_problem(image_root, "image root folder not found", "missing image root"))

    per_record = [validate_record(r, i, json_path=json_path, image_root=image_root,
                                  check_images=False) for i, r in enumerate(data)]
    for index, problem in _duplicate_ids(data, json_path):
        per_record[index].append(problem)
    if check_images:
        jobs = [(_image_path(r, image_root), _record_id(r, i)) for i, r in enumerate(data)]
        for problems, image_problems in zip(per_record, check_image_files(jobs, num_workers)):
            problems.extend(image_problems)

    records = []
    for index, (record, problems) in enumerate(zip(data, per_record)):
        if not problems:
            record = _normalised(record, index, image_root)
            if max_length is not None:
                problems.extend(_length_problems(record, json_path, max_length, length_fn))
        problems.sort(key=_field_rank)
        if not problems:
            records.append(record)

    report = ValidationReport(
        problems=[p for problems in per_record for p in problems],
        n_records=len(data),
        n_valid=len(records),
    )
    if not report.ok and (not skip_invalid or not records):
        raise DataValidationError(report)
    return LlavaDataset(records=records, report=report, skipped=report.n_invalid)


def validate_record(record, index, *, json_path, image_root, check_images=True):
    """Every problem with one record (``index`` is its zero-based position in the file).

    Checks the record on its own: duplicate ids and the context length need the whole file
    and are checked by :func:`read_llava`.
    """
    json_path = str(json_path)
    record_id = _record_id(record, index)

    def problem(field, message, kind):
        return Problem(json_path, record_id, field, message, kind)

    if not isinstance(record, dict):
        return [problem(FILE_LEVEL, f"record must be a JSON object, got {_type(record)}",
                        "record not an object")]
    problems = _id_problems(record, problem)
    problems += _image_field_problems(record, problem)
    problems += _conversation_problems(record, problem)
    if "category" in record and not isinstance(record["category"], str):
        problems.append(problem("category", "category must be a string, got "
                                f"{_type(record['category'])}", "bad category"))
    image_path = _image_path(record, image_root)
    if check_images and image_path:
        problems += check_image_file(image_path, record_id)
    return sorted(problems, key=_field_rank)


def load_image_rgb(path):
    """Decode an image file to a ``(height, width, 3)`` uint8 array.

    Grayscale, palette, CMYK and other modes are converted to RGB; an alpha channel is
    dropped (not composited), which matches ``tf.io.decode_image(..., channels=3)`` and
    LLaVA's ``Image.open(path).convert("RGB")``. 16-bit grayscale is scaled to 8 bits. EXIF
    orientation is not applied, again like ``tf.io``. Raises ``ValueError`` naming the file
    when it can't be read.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I;16"):
                gray = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
                return np.repeat(gray[:, :, None], 3, axis=2)
            if image.mode == "P" and "transparency" in image.info:
                image = image.convert("RGBA")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        raise ValueError(f"cannot read image {path}: {error}") from error


def read_json_file(path):
    """Parse the JSON file ``path``; a missing, unreadable or invalid file raises
    DataValidationError naming it (shared by every reader)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataValidationError(file_problem(path, "file not found", "file missing"))
    except json.JSONDecodeError as error:
        message = f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        raise DataValidationError(file_problem(path, message, "invalid JSON"))
    except UnicodeDecodeError as error:
        raise DataValidationError(file_problem(path, f"not UTF-8 text: {error}", "invalid JSON"))
    except OSError as error:
        message = f"cannot read file: {error.strerror or error}"
        raise DataValidationError(file_problem(path, message, "unreadable file"))


def _load_json_list(json_path):
    """The top-level list of ``json_path``; any failure raises DataValidationError."""
    data = read_json_file(json_path)
    if not isinstance(data, list):
        message = f"top level must be a list of records, got {_type(data)}"
        raise DataValidationError(file_problem(json_path, message, "not a list"))
    return data


def _id_problems(record, problem):
    if "id" not in record:
        return [problem("id", "record has no 'id'", "missing id")]
    if record["id"] is None:
        return [problem("id", "id is null", "missing id")]
    record_id = record["id"]
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)):
        return [problem("id", f"id must be a string or integer, got {_type(record_id)}",
                        "bad id")]
    if not str(record_id).strip():
        return [problem("id", "id is empty", "empty id")]
    return []


def _duplicate_ids(data, json_path):
    """``(index, Problem)`` for every record whose id an earlier record already used."""
    first_index = {}
    for index, record in enumerate(data):
        if not _has_usable_id(record):
            continue
        record_id = str(record["id"])
        if record_id in first_index:
            message = f"duplicate id: the record at index {first_index[record_id]} uses it too"
            yield index, Problem(json_path, record_id, "id", message, "duplicate id")
        else:
            first_index[record_id] = index


def _image_field_problems(record, problem):
    if "image" not in record:
        return [problem("image", "record has no 'image'", "missing image field")]
    if not isinstance(record["image"], str):
        return [problem("image", f"image must be a path string, got {_type(record['image'])}",
                        "bad image field")]
    if not record["image"].strip():
        return [problem("image", "image path is empty", "bad image field")]
    return []


def _conversation_problems(record, problem):
    if "conversations" not in record:
        return [problem("conversations", "record has no 'conversations'",
                        "missing conversations")]
    turns = record["conversations"]
    if not isinstance(turns, list):
        return [problem("conversations", f"conversations must be a list of turns, got "
                        f"{_type(turns)}", "bad conversations")]
    if not turns:
        return [problem("conversations", "conversations is empty", "empty conversations")]
    problems = []
    for i, turn in enumerate(turns):
        problems += _turn_problems(turn, f"conversations[{i}]", problem)
    return problems + _order_problems(turns, problem) + _image_token_problems(turns, problem)


def _turn_problems(turn, field, problem):
    if not isinstance(turn, dict):
        return [problem(field, f"turn must be an object with 'from' and 'value', got "
                        f"{_type(turn)}", "bad turn")]
    problems = []
    if "from" not in turn:
        problems.append(problem(f"{field}.from", "turn has no 'from'", "missing role"))
    elif turn["from"] not in ROLES:
        problems.append(problem(f"{field}.from", f"unknown role {turn['from']!r} "
                                "(expected 'human' or 'gpt')", "unknown role"))
    value = turn.get("value")
    if "value" not in turn:
        problems.append(problem(f"{field}.value", "turn has no 'value'", "missing value"))
    elif not isinstance(value, str):
        problems.append(problem(f"{field}.value", f"value must be a string, got {_type(value)}",
                                "bad value"))
    elif not value.strip():
        problems.append(problem(f"{field}.value", "value is empty", "empty value"))
    return problems


def _order_problems(turns, problem):
    """Turns must go human, gpt, human, ..., gpt; turns with a bad role are reported already."""
    roles = [_role(turn) for turn in turns]
    problems = []
    for i, role in enumerate(roles):
        expected = ROLES[i % 2]
        if role is not None and role != expected:
            message = (f"turn {i} is {role!r} but should be {expected!r} (turns alternate "
                       "'human', 'gpt', ... starting with 'human')")
            problems.append(problem(f"conversations[{i}].from", message, "turns not alternating"))
            break
    if roles[-1] == "human":
        problems.append(problem(
            f"conversations[{len(turns) - 1}].from",
            "the last turn is 'human'; it must be 'gpt' (the answer that is trained on)",
            "turns not alternating"))
    return problems


def _image_token_problems(turns, problem):
    """``<image>`` exactly once, in the first human turn; every other occurrence is reported."""
    counts = [_value(turn).count(IMAGE_TOKEN) for turn in turns]
    total = sum(counts)
    first_human = next((i for i, turn in enumerate(turns) if _role(turn) == "human"), None)
    problems = []
    if first_human is not None and counts[first_human] == 0:
        problems.append(problem(f"conversations[{first_human}].value",
                                f"the first human turn must contain {IMAGE_TOKEN!r}",
                                "missing <image>"))
    for i, count in enumerate(counts):
        extra = count - 1 if i == first_human else count
        if extra > 0:
            message = (f"{extra} extra {IMAGE_TOKEN!r} here ({total} in the record); it must "
                       "appear exactly once, in the first human turn")
            problems.append(problem(f"conversations[{i}].value", message, "extra <image>"))
    return problems


def _length_problems(record, json_path, max_length, length_fn):
    length = int(length_fn(record))
    if length <= max_length:
        return []
    message = (f"conversation is {length} tokens (including image tokens), longer than "
               f"max_length {max_length}")
    return [Problem(json_path, record["id"], "conversations", message, "too long")]


def _normalised(record, index, image_root):
    """A copy with ``id`` as str, the absolute ``image_path`` and ``category`` defaulting to ""."""
    return {**record, "id": _record_id(record, index), "category": record.get("category", ""),
            "image_path": _image_path(record, image_root)}


def _image_path(record, image_root):
    """Absolute image path, or None when the record has no usable ``image`` field."""
    if not isinstance(record, dict) or not isinstance(record.get("image"), str):
        return None
    if not record["image"].strip():
        return None
    return os.path.abspath(os.path.join(image_root, record["image"]))


def _has_usable_id(record):
    if not isinstance(record, dict):
        return False
    value = record.get("id")
    return (isinstance(value, (str, int)) and not isinstance(value, bool)
            and bool(str(value).strip()))


def _record_id(record, index):
    return str(record["id"]) if _has_usable_id(record) else f"#{index}"


def _role(turn):
    role = turn.get("from") if isinstance(turn, dict) else None
    return role if role in ROLES else None


def _value(turn):
    value = turn.get("value") if isinstance(turn, dict) else None
    return value if isinstance(value, str) else ""


def _field_rank(problem):
    head = problem.field.split("[")[0].split(".")[0]
    return _FIELD_ORDER.index(head) if head in _FIELD_ORDER else len(_FIELD_ORDER)


def _type(value):
    """The JSON name of a value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
