"""One interface over every reader: ``read_source(format, ...)`` -> ``LlavaDataset``.

Every reader returns the same thing (valid records in the LLaVA shape, a ``ValidationReport``,
a skip count), raises the same ``DataValidationError`` naming file, record id and field, and
honours ``skip_invalid`` the same way. The registry maps a format name to its reader:

    ==============  ===========================================================================
    llava           ``read_llava(json_path, image_root)``
    coco_captions   ``read_coco_captions(json_path, image_root, one_per_caption=False)``
    vqa             ``read_vqa(questions_path, annotations_path, image_root, image_pattern=...)``
    tfds            ``read_tfds(name, split, data_dir=..., image_dir=...)``
    image_folder    ``read_image_folder(folder)``: images with a ``.txt`` caption beside each
    ==============  ===========================================================================

Example:
    >>> data = read_source("coco_captions", "captions_val2017.json", "val2017",
    ...                    skip_invalid=True)
"""

from vit_tf.data.sources.coco import read_coco_captions
from vit_tf.data.sources.image_folder import read_image_folder
from vit_tf.data.sources.llava import read_llava
from vit_tf.data.sources.tfds_source import read_tfds
from vit_tf.data.sources.vqa import read_vqa
from vit_tf.registry import Registry

SOURCES = Registry("data source")
SOURCES.register("llava")(read_llava)
SOURCES.register("coco_captions")(read_coco_captions)
SOURCES.register("vqa")(read_vqa)
SOURCES.register("tfds")(read_tfds)
SOURCES.register("image_folder")(read_image_folder)


def read_source(format, *args, **kwargs):
    """Read data in ``format`` (a name in ``SOURCES``) with that reader's arguments."""
    return SOURCES.get(format)(*args, **kwargs)


def read_data_argument(format, data, image_root, *, annotations=None, tfds_data_dir=None,
                       skip_invalid=False):
    """Read what the command line names: ``--format F --data D --image-root R`` (+ extras).

    ``vqa`` needs ``annotations`` (the answers file); ``tfds`` takes ``data`` as ``NAME:SPLIT``
    (e.g. ``coco_captions:val``), reads it from ``tfds_data_dir`` and writes its images under
    ``image_root``.
    """
    if format == "vqa":
        if not annotations:
            raise ValueError("--format vqa needs --annotations (the answers file)")
        return read_vqa(data, annotations, image_root, skip_invalid=skip_invalid)
    if format == "tfds":
        name, _, split = str(data).partition(":")
        if not (name and split and tfds_data_dir):
            raise ValueError(f"--format tfds needs --data NAME:SPLIT (got {data!r}) and "
                             "--tfds-data-dir")
        return read_tfds(name, split, data_dir=tfds_data_dir, image_dir=image_root,
                         skip_invalid=skip_invalid)
    return read_source(format, data, image_root, skip_invalid=skip_invalid)
