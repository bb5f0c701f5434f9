"""What every reader shares: loading a JSON file, and turning converted records into a dataset.

A reader converts its format into LLaVA-shaped records (``id``, ``image``, ``conversations``,
``category`` and optional extras such as ``answers`` or ``references``), collecting problems
about its *own* fields on the way (``annotations[3].caption``). :func:`finish_records` then
validates every converted record exactly as :func:`~vit_tf.data.sources.llava.read_llava` does
(structure, duplicate ids, images checked in a thread pool) and applies the same
``skip_invalid`` rule, so every source yields the same records and the same reports.
"""

import os

from vit_tf.data.sources.llava import LlavaDataset, read_json_file, validate_record
from vit_tf.data.sources.validation import (
    DataValidationError,
    Problem,
    ValidationReport,
    check_image_files,
    file_problem,
)


def load_json_object(path, required_keys):
    """The top-level JSON object of ``path``, which must hold lists under ``required_keys``."""
    path = str(path)
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise DataValidationError(file_problem(
            path, f"top level must be an object with {', '.join(map(repr, required_keys))}, "
                  f"got {type(data).__name__}", "not an object"))
    for key in required_keys:
        if not isinstance(data.get(key), list):
            message = (f"top-level field {key!r} must be a list" if key in data
                       else f"top-level field {key!r} is missing")
            raise DataValidationError(ValidationReport(problems=[
                Problem(path, "-", key, message, "missing field")]))
    return data


def finish_records(file, converted, image_root, *, skip_invalid=False, check_images=True,
                   num_workers=None, n_records=None, extra_problems=()):
    """Validate converted records and return a :class:`LlavaDataset`, like ``read_llava``.

    ``converted`` is a list of ``(record, problems)`` where ``problems`` are the reader's own
    findings for that record (a record with any is left out). ``n_records`` (default
    ``len(converted)``) is what the report counts as records. ``extra_problems`` are problems
    not tied to one output record (an annotation naming an unknown image); they make the data
    invalid as well. Raises
    :class:`DataValidationError` unless ``skip_invalid``, and always when nothing is valid.
    """
    file = str(file)
    if check_images and not os.path.isdir(image_root):
        raise DataValidationError(
            file_problem(image_root, "image root folder not found", "missing image root"))
    per_record = []
    seen = {}
    for index, (record, problems) in enumerate(converted):
        problems = list(problems)
        if not problems:
            problems = validate_record(record, index, json_path=file, image_root=image_root,
                                       check_images=False)
        record_id = str(record.get("id"))
        if record_id in seen:
            problems.append(Problem(file, record_id, "id", "duplicate id: the record at index "
                                    f"{seen[record_id]} uses it too", "duplicate id"))
        seen.setdefault(record_id, index)
        per_record.append(problems)
    if check_images:
        jobs = [(_image_path(record, image_root), str(record.get("id")))
                if not problems else (None, None)
                for (record, _), problems in zip(converted, per_record)]
        for problems, image_problems in zip(per_record, check_image_files(jobs, num_workers)):
            problems.extend(image_problems)
    records = [{**record, "id": str(record["id"]), "category": record.get("category", ""),
                "image_path": _image_path(record, image_root)}
               for (record, _), problems in zip(converted, per_record) if not problems]
    report = ValidationReport(problems=[*extra_problems,
                                        *(p for problems in per_record for p in problems)],
                              n_records=len(converted) if n_records is None else n_records,
                              n_valid=len(records))
    if not report.ok and (not skip_invalid or not records):
        raise DataValidationError(report)
    return LlavaDataset(records=records, report=report, skipped=report.n_records - len(records))


def _image_path(record, image_root):
    return os.path.abspath(os.path.join(image_root, record["image"]))


def is_id(value):
    """A usable id: a non-empty string or an integer (not a boolean)."""
    return (isinstance(value, (str, int)) and not isinstance(value, bool)
            and bool(str(value).strip()))


def is_text(value):
    """A non-empty string."""
    return isinstance(value, str) and bool(value.strip())
