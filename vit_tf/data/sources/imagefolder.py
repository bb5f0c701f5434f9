"""Read Hugging Face's ``imagefolder`` layout (images + a metadata file) as caption instructions.

The convention of ``datasets.load_dataset("imagefolder", data_dir=...)``: a ``metadata.jsonl``
or ``metadata.csv`` names each image in a ``file_name`` column, relative to the metadata file's
own folder (``images/1.jpg`` reaches into a subfolder), next to a text column::

    photos/train/metadata.jsonl     {"file_name": "images/1.jpg", "text": "A dog on a couch."}
    photos/train/images/1.jpg
    photos/test/metadata.csv        file_name,text
                                    2.png,Two red circles.

Metadata files may sit in nested folders; each row belongs to its own file's folder. The text
column is ``text`` (what the HF docs use for captioning), else ``caption`` or ``captions``
(exactly one of them; ``text_column=`` picks another); a value is a string or a list of
strings. ``id`` and ``category`` are optional columns. Splits are HF's split folder names
(``train``/``training``, ``validation``/``valid``/``val``/``dev``,
``test``/``testing``/``eval``/``evaluation``, at any depth): a folder holding several splits is
read one split at a time (``split="train"``, or point at ``photos/train``).

Records are the COCO reader's caption instructions: one per image, every caption kept as
``references`` (``one_per_caption=True``: one per caption, id ``"<image id>/<k>"``). Ids are
image paths relative to the folder (``train/images/1.jpg``), or the ``id`` column. Every
problem names its file, record and field, and nothing is left out silently: a missing or
corrupt image, a missing or empty text, an image listed twice, an unknown column (record
``*``), an image with no metadata row, an unreadable row::

    photos/train/metadata.jsonl: record 'train/a.png' field text: text is empty

The folder helpers (``walk``, ``caption_records``) serve ``vit_tf.data.sources.sidecar`` too.

Example:
    >>> data = read_imagefolder("photos", split="train")
    >>> data.records[0]["references"]      # every caption of the first image
"""

import csv
import json
import os

from vit_tf.data.sources.coco import CAPTION_PROMPT, caption_record
from vit_tf.data.sources.common import finish_records, is_id, is_text
from vit_tf.data.sources.validation import (
    FILE_LEVEL,
    DataValidationError,
    Problem,
    ValidationReport,
    file_problem,
)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
"""Files counted as images when a folder is scanned (those HF's ImageFolder loads; only PNG and
JPEG pass the image check, the others are reported, not ignored)."""

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
TEXT_COLUMNS = ("text", "caption", "captions")
OPTIONAL_COLUMNS = ("id", "category")
SPLITS = {"train": ("train", "training"),
          "validation": ("validation", "valid", "val", "dev"),
          "test": ("test", "testing", "eval", "evaluation")}


def walk(folder):
    """Sorted relative paths (posix) of the files under ``folder``; hidden entries skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                found.append(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return found


def _split_of(relpath):
    """The HF split a path lies in (its first folder named like one), or None."""
    for part in relpath.split("/")[:-1]:
        for split, names in SPLITS.items():
            if part.lower() in names:
                return split
    return None


def check_folder(folder):
    if not os.path.isdir(folder):
        raise DataValidationError(file_problem(folder, "dataset folder not found",
                                               "missing folder"))


def _select_split(folder, files, split):
    """The files of ``split`` (None: the folder must not hold several splits)."""
    splits = sorted({s for s in map(_split_of, files) if s})
    if split is None:
        if len(splits) > 1:
            raise DataValidationError(file_problem(
                folder, f"the folder holds the splits {', '.join(splits)}: read one (split='"
                        f"{splits[0]}', or point at its folder)", "several splits"))
        return files
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    chosen = [f for f in files if _split_of(f) == split]
    if not chosen:
        raise DataValidationError(file_problem(
            folder, f"no {split!r} split (split folders found: {', '.join(splits) or 'none'})",
            "missing split"))
    return chosen


def _captions(value, column):
    """(captions, None) of a text cell (a string or a list of strings), or (None, (field,
    message, kind)) when it is not usable."""
    values = value if isinstance(value, list) else [value]
    if not values:
        return None, (column, f"{column} is an empty list", "empty text")
    for j, v in enumerate(values):
        where = f"{column}[{j}]" if isinstance(value, list) else column
        if not isinstance(v, str):
            return None, (where, f"{where} must be a string (or a list of strings), got "
                                 f"{type(v).__name__}", "bad text")
        if not v.strip():
            return None, (where, f"{where} is empty", "empty text")
    return [v.strip() for v in values], None


def _read_rows(path, prefix=""):
    """(rows [(line number, dict or Problem)], columns in order) of a metadata file; a row that
    cannot be read is a Problem with record id ``"<prefix> line N"``."""
    rows, columns = [], {}

    def bad(line, message):
        rows.append((line, Problem(path, f"{prefix} line {line}".strip(), FILE_LEVEL, message,
                                   "bad row")))

    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            if path.endswith(".csv"):
                reader = csv.DictReader(f)
                columns = dict.fromkeys(reader.fieldnames or [])
                for row in reader:
                    if None in row:
                        bad(reader.line_num, "row has more fields than the header")
                    else:
                        rows.append((reader.line_num,
                                     {k: v for k, v in row.items() if v is not None}))
                return rows, list(columns)
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as e:
                    bad(line, f"not valid JSON: {e.msg} (column {e.colno})")
                    continue
                if not isinstance(row, dict):
                    bad(line, f"a row must be a JSON object, got {type(row).__name__}")
                    continue
                columns.update(dict.fromkeys(row))
                rows.append((line, row))
    except UnicodeDecodeError as e:
        raise DataValidationError(file_problem(path, f"not UTF-8 text ({e.reason} at byte "
                                                     f"{e.start})", "unreadable file")) from None
    except csv.Error as e:
        raise DataValidationError(file_problem(path, f"not a readable CSV file ({e})",
                                               "unreadable file")) from None
    return rows, list(columns)


def _text_column(path, columns, text_column):
    """(the text column, problems, fatal problems) of a metadata file's columns.

    No ``file_name`` or no (or several) text columns is fatal; an unknown column is reported
    under record ``"*"`` (every row), as its values would otherwise be dropped unseen.
    """
    if text_column is not None:
        found = [text_column] if text_column in columns else []
        expected = repr(text_column)
    else:
        found = [c for c in TEXT_COLUMNS if c in columns]
        expected = "one of " + ", ".join(map(repr, TEXT_COLUMNS))
    fatal = []
    if "file_name" not in columns:
        fatal.append(Problem(path, FILE_LEVEL, "file_name", "no 'file_name' column (it names "
                             "each image, relative to this file's folder)", "missing column"))
    if len(found) != 1:
        message = (f"no text column: expected {expected}" if not found else
                   f"several text columns {found}: choose one (text_column=)")
        fatal.append(Problem(path, FILE_LEVEL, FILE_LEVEL, f"{message}; the columns are "
                             f"{columns}", "missing column" if not found else "ambiguous column"))
    known = {"file_name", *OPTIONAL_COLUMNS, *found}
    problems = [Problem(path, "*", str(column), f"unknown column {column!r}: only file_name, "
                        f"the text column ({expected}), id and category are read",
                        "unknown column")
                for column in columns if column not in known]
    return (found[0] if len(found) == 1 else None), problems, fatal


def read_imagefolder(folder, image_root=None, *, split=None, text_column=None,
                     prompt=CAPTION_PROMPT, one_per_caption=False, skip_invalid=False,
                     check_images=True, num_workers=None):
    """Read an HF ``imagefolder`` dataset; returns a ``LlavaDataset`` (records, report, skipped).

    Records' ``image`` is relative to ``image_root`` (default ``folder``). A metadata file
    without a ``file_name`` or a text column, or two metadata files in one folder, make the
    dataset unreadable (raised even with ``skip_invalid``, with every other problem found).
    """
    folder = str(folder)
    image_root = str(image_root or folder)
    check_folder(folder)
    files = _select_split(folder, walk(folder), split)
    metadata = [f for f in files if os.path.basename(f) in METADATA_FILES]
    if not metadata:
        raise DataValidationError(file_problem(
            folder, f"no {' or '.join(METADATA_FILES)} (the imagefolder layout needs one, with "
                    "a file_name and a text column)", "missing metadata"))
    dirs = [os.path.dirname(m) for m in metadata]
    fatal = [Problem(os.path.join(folder, m), FILE_LEVEL, FILE_LEVEL, "another metadata file "
                     "in this folder: keep one of metadata.jsonl and metadata.csv",
                     "duplicate metadata") for m in metadata if dirs.count(os.path.dirname(m)) > 1]
    converted, extra, listed = [], [], {}
    for m in metadata:
        rows, more, file_fatal = _metadata_rows(folder, m, text_column, listed,
                                                single=len(metadata) == 1)
        fatal += file_fatal
        extra += more
        for record_id, rel, captions, category, problems in rows:
            if problems:
                converted.append(({"id": record_id}, problems))
            else:
                converted += caption_records(record_id, os.path.join(folder, rel), image_root,
                                              captions, prompt, one_per_caption, category)
    meta_dirs = sorted(set(dirs))
    for f in files:
        if f.lower().endswith(IMAGE_EXTENSIONS) and f not in listed:
            owner = [d for d in meta_dirs if not d or f.startswith(d + "/")]
            where = (f"in {'/'.join(filter(None, (owner[-1], 'metadata.*')))}" if owner
                     else "in any metadata file (none in its folder or above)")
            converted.append(({"id": f}, [Problem(os.path.join(folder, f), f, "file_name",
                                                  f"image has no row {where}",
                                                  "unlisted image")]))
    if fatal:
        problems = [*fatal, *extra, *(p for _, ps in converted for p in ps)]
        raise DataValidationError(ValidationReport(problems=problems))
    return finish_records(folder, converted, image_root, skip_invalid=skip_invalid,
                          check_images=check_images, num_workers=num_workers,
                          extra_problems=extra)


def _metadata_rows(folder, m, text_column, listed, single):
    """The rows of metadata file ``m`` -> ([(record id, image path relative to ``folder``,
    captions, category, problems)], problems not tied to a row, fatal problems).
    ``listed`` (image path -> where it was first listed) is filled as rows name images."""
    path = os.path.join(folder, m)
    rows, columns = _read_rows(path, "" if single else m)
    text, extra, fatal = _text_column(path, columns, text_column)
    if fatal:
        return [], extra, fatal
    out = []
    for line, row in rows:
        record_id = f"line {line}" if single else f"{m} line {line}"
        if isinstance(row, Problem):
            out.append((record_id, None, None, "", [row]))
            continue
        problems, rel, captions = [], None, None
        name = row.get("file_name")
        if not is_text(name):
            problems.append(Problem(path, record_id, "file_name", "file_name is missing or empty",
                                    "missing file_name"))
        elif os.path.isabs(name):
            problems.append(Problem(path, record_id, "file_name", f"{name!r} must be relative "
                                    "to the metadata file's folder", "bad file_name"))
        else:
            rel = os.path.normpath(os.path.join(os.path.dirname(m), name.strip()))
            rel = rel.replace(os.sep, "/")
            if rel in listed:     # its own id would repeat the first row's: the line names it
                problems.append(Problem(path, record_id, "file_name", f"{name!r} is listed again "
                                        f"(first at {listed[rel]}); put all its captions in "
                                        "one row, as a list", "duplicate file"))
            else:
                record_id = str(row["id"]) if is_id(row.get("id")) else rel
                listed[rel] = f"{m} line {line}"
        if text not in row:
            problems.append(Problem(path, record_id, text, f"{text} is missing", "missing text"))
        else:
            captions, bad = _captions(row[text], text)
            if bad:
                problems.append(Problem(path, record_id, *bad))
        category = row.get("category", "")
        if not isinstance(category, str):
            problems.append(Problem(path, record_id, "category", "category must be a string",
                                    "bad category"))
        out.append((record_id, rel, captions, category, problems))
    return out, extra, fatal


def caption_records(record_id, image_path, image_root, captions, prompt, one_per_caption,
                    category=""):
    """[(record, [])] of one image's captions (the COCO reader's records; ``image`` relative to
    ``image_root``)."""
    image = os.path.relpath(image_path, image_root)
    if one_per_caption:
        records = [caption_record(f"{record_id}/{k}", image, c, captions, prompt)
                   for k, c in enumerate(captions)]
    else:
        records = [caption_record(record_id, image, captions[0], captions, prompt)]
    for r in records:
        r["category"] = category or r["category"]
    return [(r, []) for r in records]
