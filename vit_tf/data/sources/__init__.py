"""Dataset readers: read a source, check every record, report every problem at once.

``read_llava`` reads the one documented format (LLaVA JSON plus an image folder);
``read_coco_captions``, ``read_vqa``, ``read_tfds``, ``read_imagefolder`` (Hugging Face's
``imagefolder`` layout) and ``read_sidecar_captions`` (``photo.png`` + ``photo.txt``) turn other
formats into the same records,
validated the same way, and ``read_source(format, ...)`` picks a reader by name. The validation
types are shared by all readers.
"""

from vit_tf.data.sources.llava import (
    IMAGE_TOKEN,
    LlavaDataset,
    load_image_rgb,
    read_llava,
    validate_record,
)
from vit_tf.data.sources.readers import (
    SOURCES,
    read_coco_captions,
    read_imagefolder,
    read_sidecar_captions,
    read_source,
    read_tfds,
    read_vqa,
)
from vit_tf.data.sources.validation import (
    ACCEPTED_IMAGE_FORMATS,
    DataValidationError,
    Problem,
    ValidationReport,
    check_image_file,
)

__all__ = [
    "ACCEPTED_IMAGE_FORMATS",
    "DataValidationError",
    "IMAGE_TOKEN",
    "LlavaDataset",
    "Problem",
    "SOURCES",
    "ValidationReport",
    "check_image_file",
    "load_image_rgb",
    "read_coco_captions",
    "read_imagefolder",
    "read_llava",
    "read_source",
    "read_sidecar_captions",
    "read_tfds",
    "read_vqa",
    "validate_record",
]
