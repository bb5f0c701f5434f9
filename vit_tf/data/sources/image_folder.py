"""Read a folder of images with captions beside them (``NAME.png`` + ``NAME.txt``).

The layout text-to-image trainers commonly take::

    folder/cat.jpg   folder/cat.txt      one caption per line (blank lines ignored)
    folder/sub/dog.png   folder/sub/dog.txt

Every PNG / JPEG under the folder (recursively, sorted) becomes one caption record in the LLaVA
shape, as the COCO reader makes them: the first caption is the answer, all are ``references``,
the id is the image's path relative to the folder. An image without its ``.txt``, or with an
empty one, is a problem naming the caption file and the record; with ``skip_invalid`` such
images are left out and counted, as in every reader.

Example:
    >>> data = read_image_folder("my_pictures")          # image_root defaults to the folder
    >>> data.records[0]["references"]
"""

import os

from vit_tf.data.sources.coco import CAPTION_PROMPT, caption_record
from vit_tf.data.sources.common import finish_records
from vit_tf.data.sources.validation import DataValidationError, Problem, file_problem

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
CAPTION_EXTENSION = ".txt"


def read_image_folder(folder, image_root=None, *, skip_invalid=False, prompt=CAPTION_PROMPT,
                      check_images=True, num_workers=None):
    """Read ``folder``; returns a ``LlavaDataset`` (records, report, skipped)."""
    folder = str(folder)
    if image_root is not None and os.path.abspath(image_root) != os.path.abspath(folder):
        raise ValueError(f"an image folder is its own image root: got --data {folder} and "
                         f"--image-root {image_root}")
    if not os.path.isdir(folder):
        raise DataValidationError(file_problem(folder, "image folder not found", "missing folder"))
    images = sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder) for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise DataValidationError(file_problem(
            folder, f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder", "no images"))
    converted = []
    for image in images:
        caption_file = os.path.join(folder, os.path.splitext(image)[0] + CAPTION_EXTENSION)
        if not os.path.isfile(caption_file):
            converted.append(({"id": image}, [Problem(
                caption_file, image, "caption", f"caption file missing (expected "
                f"{os.path.basename(caption_file)} beside the image)", "missing caption")]))
            continue
        with open(caption_file, encoding="utf-8", errors="replace") as f:
            captions = [line.strip() for line in f if line.strip()]
        if not captions:
            converted.append(({"id": image}, [Problem(
                caption_file, image, "caption", "caption file is empty", "empty caption")]))
            continue
        converted.append((caption_record(image, image, captions[0], captions, prompt), []))
    return finish_records(folder, converted, folder, skip_invalid=skip_invalid,
                          check_images=check_images, num_workers=num_workers)
