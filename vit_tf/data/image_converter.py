"""Images of any kind -> the model's ``images`` input, in TF ops (one path for every caller).

Accepted: encoded bytes (PNG, JPEG, GIF, BMP), file paths, uint8 arrays, float arrays in
[0, 255]; one image or a batch; any size; grayscale, palette and RGBA become RGB (alpha dropped,
as PIL's ``convert("RGB")``). Output: (S, S, 3) or (batch, S, S, 3) float32 in [0, 255],
resized with antialiasing. The same ops run in ``tf.data``, in ``generate`` and inside the
exported SavedModel, so pixels are identical on every path (pinned in tests).

Example:
    >>> convert_images(tf.constant(["scene.png"]), 64).shape        # a path
    TensorShape([1, 64, 64, 3])
    >>> convert_images(tf.constant(open("scene.png", "rb").read()), 64).shape   # bytes
    TensorShape([64, 64, 3])
"""

import numpy as np
import tensorflow as tf

# Magic numbers of the formats tf.io.decode_image reads.
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def is_encoded_image(data):
    """() string -> () bool: the bytes start like a PNG, JPEG, GIF or BMP file."""
    return tf.reduce_any(tf.stack(
        [tf.equal(tf.strings.substr(data, 0, len(m)), tf.constant(m)) for m in IMAGE_MAGIC]))


def _is_image_bytes(data):
    """Encoded image bytes rather than a path: an image's magic number and a NUL byte (every
    PNG, JPEG and BMP header has one; a path never does) or more bytes than a path can have."""
    raw = tf.io.decode_raw(data, tf.uint8)
    return tf.logical_and(is_encoded_image(data), tf.logical_or(
        tf.reduce_any(tf.equal(raw, 0)), tf.strings.length(data) > 4096))


def resize(image, image_size):
    """(H, W, 3) or (B, H, W, 3) numbers -> float32 in [0, 255] at (S, S)."""
    image = tf.cast(image, tf.float32)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_image(data, image_size, name=None, kind="auto", index=None):
    """Encoded bytes or a file path -> (S, S, 3) float32.

    ``kind``: "bytes", "path", or "auto" (bytes when they look like an image, else a path).
    ``name`` (a string tensor, e.g. the record id) is put in the error for bad bytes; else the
    error names the file, or the bytes' size (and ``index``, the image's place in its batch).
    """
    source = data
    is_bytes = {"bytes": tf.constant(True), "path": tf.constant(False)}.get(kind)
    if is_bytes is None:
        is_bytes = _is_image_bytes(data)
    data = tf.cond(is_bytes, lambda: data, lambda: tf.io.read_file(data))
    if name is None:   # the error names the file, or the size of the bytes
        size = tf.strings.join(["(", tf.strings.as_string(tf.strings.length(source)), " bytes)"])
        if index is not None:
            size = tf.strings.join(["image ", tf.strings.as_string(index), " of the batch ", size])
        name = tf.where(is_bytes, size, source)
    label = name
    check = tf.debugging.Assert(is_encoded_image(data), [
        "not a PNG, JPEG, GIF or BMP image:", tf.strings.substr(label, 0, 200)])
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return resize(image, image_size)


def _to_rgb(images):
    """(..., H, W, C) with C in {1, 3, 4} -> (..., H, W, 3)."""
    channels = images.shape[-1]
    if channels == 3:
        return images
    if channels == 1:
        return tf.repeat(images, 3, axis=-1)
    if channels == 4:
        return images[..., :3]
    raise ValueError(f"an image array needs 1, 3 or 4 channels, got shape {images.shape}")


def convert_images(images, image_size, kind="auto"):
    """Any accepted images -> float32 (S, S, 3), or (batch, S, S, 3) for a batch. ``kind``
    for string tensors: "bytes", "path" or "auto" (see ``decode_image``)."""
    if isinstance(images, bytes):   # Python bytes are never a path
        return decode_image(tf.constant(images), image_size, kind="bytes")
    if isinstance(images, str):
        return decode_image(tf.constant(images), image_size, kind="path")
    elif isinstance(images, (list, tuple)) and images and isinstance(images[0], (str, bytes)):
        kinds = {type(i) for i in images}
        if len(kinds) > 1 or not kinds <= {str, bytes}:   # mixed: each as what it is
            return tf.stack([convert_images(i, image_size) for i in images])
        kind = "bytes" if kinds == {bytes} else "path"
        images = tf.constant(list(images))
    elif isinstance(images, (list, tuple)):
        images = [np.asarray(i) for i in images]
        if len({i.shape for i in images}) > 1:  # several sizes: resize each, then stack
            return tf.stack([convert_images(i, image_size) for i in images])
        images = tf.constant(np.stack(images))
    elif not tf.is_tensor(images):
        images = tf.constant(np.asarray(images))
    if images.dtype == tf.string:
        if images.shape.rank == 0:
            return decode_image(images, image_size, kind=kind)
        index = tf.range(tf.shape(images)[0])
        return tf.map_fn(lambda a: decode_image(a[0], image_size, kind=kind, index=a[1]),
                         (images, index),
                         fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))
    if images.shape.rank not in (3, 4):
        raise ValueError(f"image arrays must be (H, W, C) or (batch, H, W, C), got {images.shape}")
    if images.shape.rank == 3 and images.shape[-1] not in (1, 3, 4):   # (H, W) grayscale batch?
        raise ValueError(f"an image array needs 1, 3 or 4 channels, got shape {images.shape}")
    return resize(_to_rgb(images), image_size)
