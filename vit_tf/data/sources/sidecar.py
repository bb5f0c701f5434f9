"""Read images with a caption file beside each (``photo.png`` + ``photo.txt``) as captions.

The layout of many fine-tuning scripts: every image under a folder (at any depth) has a text
file of the same name next to it, and each non-blank line of that file is one caption. Records
are the caption instructions of ``vit_tf.data.sources.imagefolder`` (the COCO reader's): one per
image with every caption as ``references`` (``one_per_caption=True``: one per caption, id
``"<image>/<k>"``); ids are image paths relative to the folder. Reported with file, record and
field, never skipped silently: an image without a caption file, an empty or non-UTF-8 caption
file, two images sharing one caption file (``photo.png`` and ``photo.jpg``), a caption file with
no image, and every image problem::

    pics/cat.txt: record 'cat.txt' field caption: caption file has no image beside it (...)

Example:
    >>> data = read_sidecar_captions("pics")
    >>> data.records[0]["references"]      # the lines of pics/<first image>.txt
"""

import os

from vit_tf.data.sources.coco import CAPTION_PROMPT
from vit_tf.data.sources.common import finish_records
from vit_tf.data.sources.imagefolder import (
    IMAGE_EXTENSIONS,
    caption_records,
    check_folder,
    walk,
)
from vit_tf.data.sources.validation import DataValidationError, Problem, file_problem


def read_sidecar_captions(folder, image_root=None, *, caption_extension=".txt",
                          prompt=CAPTION_PROMPT, one_per_caption=False, skip_invalid=False,
                          check_images=True, num_workers=None):
    """Read images with caption files beside them; returns a ``LlavaDataset``.

    Each non-blank line of ``photo<caption_extension>`` is one caption of ``photo.*``.
    Records' ``image`` is relative to ``image_root`` (default ``folder``).
    """
    folder = str(folder)
    image_root = str(image_root or folder)
    check_folder(folder)
    files = walk(folder)
    images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not images:
        raise DataValidationError(file_problem(folder, "no image files (" + ", ".join(
            IMAGE_EXTENSIONS) + ") under this folder", "no images"))
    caption_files = {f for f in files if f.endswith(caption_extension)}
    converted, claimed = [], {}
    for image in images:
        stem = os.path.splitext(image)[0]
        caption_file = stem + caption_extension
        path = os.path.join(folder, caption_file)

        def problem(message, kind, file=path, field="caption"):
            converted.append(({"id": image}, [Problem(file, image, field, message, kind)]))

        if caption_file in claimed:
            problem(f"{caption_file} is also the caption file of {claimed[caption_file]}: "
                    "give the images different names", "duplicate file",
                    file=os.path.join(folder, image), field="image")
            continue
        if caption_file not in caption_files:
            problem("caption file not found", "missing text")
            continue
        claimed[caption_file] = image
        try:
            with open(path, encoding="utf-8-sig") as f:
                captions = [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError as e:
            problem(f"caption file is not UTF-8 text ({e.reason} at byte {e.start})",
                    "unreadable text")
            continue
        if not captions:
            problem("caption file is empty", "empty text")
            continue
        converted += caption_records(image, os.path.join(folder, image), image_root, captions,
                                      prompt, one_per_caption)
    for caption_file in sorted(caption_files - set(claimed)):
        if any(os.path.splitext(i)[0] + caption_extension == caption_file for i in images):
            continue   # its image is already reported (a duplicate name)
        converted.append(({"id": caption_file}, [Problem(
            os.path.join(folder, caption_file), caption_file, "caption",
            "caption file has no image beside it (" + ", ".join(IMAGE_EXTENSIONS) + ")",
            "orphan caption")]))
    return finish_records(folder, converted, image_root, skip_invalid=skip_invalid,
                          check_images=check_images, num_workers=num_workers)
