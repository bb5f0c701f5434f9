"""Dataset readers: read a source, check every record, report every problem at once.

``read_llava`` reads the one documented format (LLaVA JSON plus an image folder); the
validation types are shared by all readers.
"""

from vit_tf.data.sources.llava import (
    IMAGE_TOKEN,
    LlavaDataset,
    load_image_rgb,
    read_llava,
    validate_record,
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
    "ValidationReport",
    "check_image_file",
    "load_image_rgb",
    "read_llava",
    "validate_record",
]
