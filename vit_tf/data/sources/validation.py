"""Problems found in a dataset, the report that gathers them, and the error that carries it.

A reader checks every record and collects every problem before deciding anything, so a user
fixes their data in one pass instead of one traceback at a time. Each problem names the file,
the record id and the field, so it can be found in a large JSON file:

    data/train.json: record 'abc' field conversations[2].from: unknown role 'bot' (expected 'human' or 'gpt')

Readers either raise :class:`DataValidationError` (the default) or, when asked to skip invalid
records, hand the :class:`ValidationReport` back so the caller can say what was skipped and why.
The image check here is shared by every reader: the format is judged by content, never by the
file extension.
"""

import collections
import concurrent.futures
import dataclasses
import os

from PIL import Image, UnidentifiedImageError

FILE_LEVEL = "-"
"""``record_id`` and ``field`` of a problem about the whole file (missing, not JSON, ...)."""

ACCEPTED_IMAGE_FORMATS = ("PNG", "JPEG")
"""Pillow format names the pipeline decodes (``tf.io.decode_image`` would read GIF/BMP frames
differently, so they are refused up front rather than surprising anyone later)."""

SKIP_HINT = "pass --skip-invalid (skip_invalid=True) to train on the valid records"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    ``file`` is the JSON file, or the image file when the image itself is at fault;
    ``record_id`` is the record's id, ``f"#{index}"`` (zero-based position in the list) when the
    id is missing or unusable, or ``"-"`` for a problem with the whole file; ``field`` is a path
    such as ``"conversations[3].from"`` (``"-"`` when the whole record or file is at fault);
    ``kind`` is a short category used to count problems in the summary (``"unknown role"``).
    """

    file: str
    record_id: str
    field: str
    message: str
    kind: str = "other"

    def __str__(self):
        where = str(self.file)
        if self.record_id != FILE_LEVEL:
            where += f": record '{self.record_id}'"
        if self.field != FILE_LEVEL:
            where += f" field {self.field}"
        return f"{where}: {self.message}"


@dataclasses.dataclass
class ValidationReport:
    """Every problem found in one dataset file, with record counts.

    ``n_records`` counts the records in the file and ``n_valid`` those with no problem; a
    file-level problem (file missing, not JSON, ...) leaves both at 0.
    """

    problems: list = dataclasses.field(default_factory=list)
    n_records: int = 0
    n_valid: int = 0

    @property
    def ok(self):
        """True when nothing is wrong."""
        return not self.problems

    @property
    def n_invalid(self):
        """Records with at least one problem."""
        return self.n_records - self.n_valid

    def counts_by_kind(self):
        """``{kind: number of problems}``, most frequent first (ties in order of appearance)."""
        return dict(collections.Counter(p.kind for p in self.problems).most_common())

    def summary(self):
        """One line, e.g. ``"3 of 120 records invalid: 2 missing image, 1 unknown role"``."""
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.counts_by_kind().items())
        if self.ok:
            return f"all {self.n_records} records valid"
        if any(p.record_id == FILE_LEVEL for p in self.problems):
            return f"could not read the dataset: {kinds}"
        return f"{self.n_invalid} of {self.n_records} records invalid: {kinds}"

    def format(self, limit=None):
        """Every problem on its own line (the first ``limit`` if given), then the summary."""
        shown = self.problems if limit is None else self.problems[:limit]
        lines = [str(p) for p in shown]
        if len(shown) < len(self.problems):
            lines.append(f"... and {len(self.problems) - len(shown)} more problems")
        lines.append(self.summary())
        return "\n".join(lines)


class DataValidationError(ValueError):
    """Raised by a reader when its data has problems; ``.report`` holds all of them.

    The message lists every problem, the summary, and, when some records are valid and only
    records are at fault, how to train on the valid ones anyway. Skipping cannot help with a
    file-level problem, so the hint is left out there.
    """

    def __init__(self, report):
        self.report = report
        text = report.format()
        if not any(p.record_id == FILE_LEVEL for p in report.problems) and report.n_valid:
            text += "\n" + SKIP_HINT
        super().__init__(text)


def file_problem(file, message, kind):
    """A report holding one problem about a whole file (``record_id`` and ``field`` are "-")."""
    problem = Problem(str(file), FILE_LEVEL, FILE_LEVEL, message, kind)
    return ValidationReport(problems=[problem])


def check_image_files(jobs, num_workers=None):
    """``check_image_file`` for each ``(path or None, record_id)`` job -> a list of problem lists.

    Each distinct path is opened once, in a thread pool of ``num_workers`` threads (Pillow
    releases the GIL while decoding), and its problems are reported under every record that
    uses it: instruction data asks several questions about one image (the shapes world ~8), and
    decoding it again for each took most of the validation time.
    """
    paths = list(dict.fromkeys(str(path) for path, _ in jobs if path))
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        found = dict(zip(paths, pool.map(lambda path: check_image_file(path, ""), paths)))
    return [[dataclasses.replace(p, record_id=record_id) for p in found[str(path)]] if path
            else [] for path, record_id in jobs]


def check_image_file(path, record_id, field="image"):
    """Problems with the image file at ``path``: an empty list when it is a readable PNG/JPEG.

    Checks, stopping at the first failure: the file exists, is not a directory, is an image
    Pillow recognises by its content, is PNG or JPEG, passes ``verify()`` and fully decodes
    with ``load()`` (``verify`` alone misses truncated pixel data). Any mode and any size is
    fine: the pipeline converts to RGB and resizes. Safe to call from several threads.
    """
    path = str(path)

    def problem(message, kind):
        return [Problem(path, record_id, field, message, kind)]

    if not os.path.exists(path):
        return problem("image file not found", "missing image")
    if os.path.isdir(path):
        return problem("image path is a directory, not an image file", "image is a directory")
    try:
        with Image.open(path) as image:
            image_format = image.format
            if image_format not in ACCEPTED_IMAGE_FORMATS:
                accepted = " and ".join(ACCEPTED_IMAGE_FORMATS)
                return problem(
                    f"unsupported image format {image_format} (only {accepted} are accepted)",
                    "unsupported image format",
                )
            image.verify()
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return problem("not an image file (Pillow cannot identify its content)", "not an image")
    except Image.DecompressionBombError as error:
        return problem(f"image too large to decode safely: {error}", "image too large")
    except PermissionError as error:
        return problem(f"cannot read image file: {error.strerror}", "unreadable image")
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        return problem(f"corrupt or truncated image: {error}", "corrupt image")
    return []
