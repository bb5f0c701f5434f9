"""Read a TensorFlow Datasets dataset from a local ``data_dir`` as instruction records.

No download is ever attempted: the dataset must already be prepared under ``data_dir`` (or, for
builders that generate their data, such as ``vit_tf_shapes``, ``prepare=True`` builds it
locally). Two kinds of dataset are understood, by their features:

- ``captions``: an ``image`` and ``captions/text`` (``coco_captions``); records as
  :func:`~vit_tf.data.sources.coco.read_coco_captions` makes them (one per image with all
  captions as ``references``, or one per caption), ids from ``image/id`` when present.
- ``conversations``: an ``image``, ``id``, ``conversations/{from,value}`` and optional
  ``category`` (``vit_tf_shapes``): the LLaVA records themselves.

Images are written once, losslessly as PNG, to ``image_dir/<name>/<split>/<index>.png``, so
the records point at files like every other source's and go through the same image checks.
(Copying tfds' encoded bytes as they are would keep JPEGs smaller, but tfds' mock data, which
the tests rely on, cannot produce them for sequence features.)

Example:
    >>> data = read_tfds("coco_captions", "val", data_dir="~/tfds", image_dir="/tmp/coco_imgs")
"""

import os

from PIL import Image

from vit_tf.data.sources.coco import CAPTION_PROMPT, caption_record
from vit_tf.data.sources.common import finish_records
from vit_tf.data.sources.validation import DataValidationError, Problem, file_problem

def read_tfds(name, split, *, data_dir, image_dir, builder_kwargs=None, prepare=False,
              one_per_caption=False, prompt=CAPTION_PROMPT, limit=None, skip_invalid=False,
              num_workers=None):
    """Read ``split`` of tfds dataset ``name`` from ``data_dir``; returns a ``LlavaDataset``."""
    import tensorflow_datasets as tfds

    import vit_tf.data.tfds_shapes  # noqa: F401  (registers vit_tf_shapes)

    source = f"tfds:{name}/{split} in {data_dir}"
    try:
        builder = tfds.builder(name, data_dir=data_dir, **(builder_kwargs or {}))
        if prepare:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
        features = builder.info.features
        kind = _kind(features)
        if kind is None:
            raise DataValidationError(file_problem(
                source, f"features {sorted(features.keys())} are neither an image with "
                        "captions/text nor an image with conversations", "unknown features"))
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except DataValidationError:
        raise
    except Exception as error:  # tfds raises DatasetNotFoundError, AssertionError, ValueError...
        raise DataValidationError(file_problem(
            source, f"cannot load the dataset (it must be prepared in data_dir; nothing is "
                    f"downloaded): {error}", "dataset not found")) from error
    if limit:
        ds = ds.take(limit)
    folder = os.path.join(image_dir, name, split)
    os.makedirs(folder, exist_ok=True)
    converted = []
    for index, example in enumerate(tfds.as_numpy(ds)):
        converted.append(_convert(example, index, kind, source, split, folder, image_dir,
                                  one_per_caption, prompt))
    converted = [item for items in converted for item in items]
    return finish_records(source, converted, image_dir, skip_invalid=skip_invalid,
                          num_workers=num_workers)


def _kind(features):
    keys = set(features.keys())
    if "image" not in keys:
        return None
    if "captions" in keys and "text" in features["captions"].feature.keys():
        return "captions"
    if "conversations" in keys and "id" in keys:
        return "conversations"
    return None


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _convert(example, index, kind, source, split, folder, image_dir, one_per_caption, prompt):
    """-> [(record, problems)] for one tfds example (several with ``one_per_caption``)."""
    if kind == "conversations":
        record_id = _text(example["id"])
    else:
        record_id = str(int(example["image/id"])) if "image/id" in example else f"{split}-{index}"
    pixels = example["image"]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3):
        return [({"id": record_id}, [Problem(source, record_id, "image",
                                             f"image must be (height, width, 1 or 3), got "
                                             f"shape {pixels.shape}", "bad image")])]
    path = os.path.join(folder, f"{index:08d}.png")
    Image.fromarray(pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels).save(path)
    image = os.path.relpath(path, image_dir)
    if kind == "conversations":
        turns = [{"from": _text(r), "value": _text(v)}
                 for r, v in zip(example["conversations"]["from"],
                                 example["conversations"]["value"])]
        record = {"id": record_id, "image": image, "conversations": turns,
                  "category": _text(example.get("category", b""))}
        return [(record, [])]
    captions = [_text(t).strip() for t in example["captions"]["text"]]
    empty = [i for i, c in enumerate(captions) if not c]
    if empty or not captions:
        field = f"captions/text[{empty[0]}]" if empty else "captions/text"
        return [({"id": record_id}, [Problem(source, record_id, field,
                                             "caption is empty" if empty else "no captions",
                                             "empty caption")])]
    if one_per_caption:
        return [(caption_record(f"{record_id}/{i}", image, c, captions, prompt), [])
                for i, c in enumerate(captions)]
    return [(caption_record(record_id, image, captions[0], captions, prompt), [])]
