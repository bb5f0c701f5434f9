"""tf.data pipeline: records -> ({"images", "token_ids", "padding_mask"}, labels, sample_weight).

Tokenization happens once, in bulk, before ``tf.data`` (texts are tiny next to images, and
packing rows by image needs the ids), through the preprocessor's TF ops
(``VisionLanguagePreprocessor.encode_conversations``); image decoding and resizing run in
parallel inside ``tf.data`` with the preprocessor's image converter.

Shapes (B = batch, L = text length, S = image size):
    images        (B, S, S, 3) float32 in [0, 255]
    token_ids     (B, L) int32, right-padded with [PAD] (id 0) to the bucket width L
    padding_mask  (B, L) bool
    labels        (B, L) int32, token_ids shifted left by one (position t predicts t + 1)
    sample_weight (B, L) float32, 1.0 where the label is an assistant token or its <|end|>
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from vit_tf.config import ConfigError
from vit_tf.data.image_converter import decode_image


@dataclass
class EncodedExamples:
    """Tokenized records, ready for ``make_dataset``."""

    image_paths: np.ndarray   # (N,) str
    token_ids: np.ndarray     # (N, L) int32
    trained: np.ndarray       # (N, L) bool: token t is in the loss
    lengths: np.ndarray       # (N,) int32, unpadded text length
    record_ids: list
    walls: np.ndarray = None  # (N, L) bool: separators between packed examples (data/packing.py)

    def __len__(self):
        return len(self.record_ids)


def round_up(n, multiple=8):
    return int(-(-n // multiple) * multiple)


def text_lengths(preprocessor, records):
    """(N,) int32: text tokens of each record's conversation as trained."""
    pairs = preprocessor.encode_conversations([r["conversations"] for r in records])
    return np.array([len(ids) - 1 for ids, _ in pairs], np.int32)


def encode_records(records, preprocessor, max_text_length):
    """Tokenize records (``preprocessor.encode_conversations``); raise naming the record if one
    is too long."""
    pairs = preprocessor.encode_conversations([r["conversations"] for r in records])
    lengths = np.array([len(ids) - 1 for ids, _ in pairs], np.int32)   # without the final [PAD]
    too_long = np.flatnonzero(lengths > max_text_length)
    if too_long.size:
        i = int(too_long[0])
        raise ValueError(
            f"record {records[i]['id']!r} field conversations: {lengths[i]} text tokens exceed "
            f"data.max_text_length={max_text_length} ({too_long.size} records too long; validate "
            "with `vit-tf data validate` or raise data.max_text_length)"
        )
    width = min(round_up(int(lengths.max()) + 1), max_text_length + 1) if len(pairs) else 8
    token_ids = np.full((len(pairs), width), preprocessor.pad_id, np.int32)
    trained = np.zeros((len(pairs), width), bool)
    for i, (ids, mask) in enumerate(pairs):
        token_ids[i, : len(ids)] = ids
        trained[i, : len(mask)] = mask
    paths = np.array([r["image_path"] for r in records])
    return EncodedExamples(paths, token_ids, trained, lengths, [r["id"] for r in records])


def bucket_widths(max_width, smallest=16):
    """Padded text widths: 16, 24, 40, 64, 96, 144, ... (x1.5, rounded up to 8) up to
    ``max_width`` (one XLA shape each)."""
    widths, w = [], smallest
    while w < max_width:
        widths.append(w)
        w = round_up(int(w * 1.5), 8)
    return widths + [max_width]


def decode_images(paths, image_size):
    """Decode and resize each path once, in parallel: (N, S, S, 3) uint8 (rounded)."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths)).map(
        lambda path: tf.cast(tf.round(decode_image(path, image_size)), tf.uint8),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    batches = [batch.numpy() for batch in ds.batch(256)]
    return np.concatenate(batches) if batches else np.zeros((0, image_size, image_size, 3), np.uint8)


def cached_image_bytes(examples, image_size):
    """Memory ``make_dataset(cache_images=True)`` needs for the decoded images."""
    return len(np.unique(examples.image_paths)) * image_size * image_size * 3


def make_dataset(examples, image_size, batch_size, *, shuffle=False, seed=0, repeat=False,
                 drop_remainder=False, cache_images=False, widths=None):
    """Batched, prefetched dataset over encoded examples.

    Examples are grouped into buckets of similar text length (``bucket_widths``) and padded to
    the bucket's width, so short answers don't pay for the longest conversation's padding,
    while XLA sees only a handful of shapes. ``widths`` (e.g. ``[96]``) replaces those widths:
    each one is an XLA compilation of the training step (~15 s on 2 CPU cores for the default
    model), which can cost more than the padding it saves.

    ``cache_images``: decode every distinct image once into memory (uint8,
    ``cached_image_bytes``) instead of every time an example uses it. Instruction data asks many
    questions about each image (the shapes world ~8), and on a CPU the decoding competes with
    the training step for the same cores. Values equal the streamed ones up to rounding to
    integers (exactly equal when no resize is needed).
    """
    if cache_images:
        paths, image_index = np.unique(examples.image_paths, return_inverse=True)
        decoded = tf.constant(decode_images(paths, image_size))   # (distinct images, S, S, 3)
        images = image_index.astype(np.int32)
    else:
        images = examples.image_paths
    walls = examples.walls if examples.walls is not None else np.zeros_like(examples.trained)
    ds = tf.data.Dataset.from_tensor_slices(
        (images, examples.token_ids, examples.trained, examples.lengths, walls)
    )
    if shuffle:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def to_example(image, ids, trained, length, walls):
        if cache_images:
            image = tf.cast(tf.gather(decoded, image), tf.float32)   # (S, S, 3)
        else:
            image = decode_image(image, image_size)
        inputs = {
            "images": image,
            "token_ids": ids[:length],                               # (length,)
            # False on padding: a wall inside a row separates packed examples (data/packing.py)
            "padding_mask": tf.logical_not(walls[:length]),
        }
        labels = ids[1 : length + 1]                                 # position t predicts t + 1
        weights = tf.cast(trained[1 : length + 1], tf.float32)       # 1 on trained labels
        return inputs, labels, weights

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return bucket_batch(ds, examples.token_ids.shape[1] - 1, batch_size, drop_remainder, widths)


def without_autotune_thread(ds):
    """``ds`` with tf.data's autotuning model off, unless its options already say otherwise.

    Why: a ``fit`` (or ``evaluate``) call ends by destroying its iterator, and TensorFlow 2.21
    then waits for the autotuning thread's next tick, which comes at doubling intervals
    (10 ms, 20 ms, ... up to a minute) after the iterator's start; nothing runs meanwhile. On
    2 CPU cores a ``fit`` call of 16 steps (2.9 s of work) then took 5.1 s in about half the
    calls: the "slow mode" of ``benchmarks/fit_modes.py``, seen by gdb as the main thread
    waiting in ``~RootDataset::Iterator`` while the model thread slept in ``OptimizeLoop``.
    Without the model, ``num_parallel_calls=AUTOTUNE`` maps run on as many threads as there
    are cores and ``prefetch(AUTOTUNE)`` sizes its buffer by itself (its own tuner).
    """
    if ds.options().autotune.enabled is not None:   # the user's explicit choice stands
        return ds
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def parse_widths(text, max_width):
    """``"64,96"`` -> [64, 96] (sorted, last >= ``max_width`` longest text); "" -> None."""
    if not text.strip():
        return None
    try:
        widths = sorted(int(w) for w in text.split(","))
    except ValueError:
        raise ConfigError(f"data.pad_widths={text!r}: expected comma-separated integers, e.g. '64,96'")
    if widths[0] < 1 or widths[-1] < max_width:
        raise ConfigError(f"data.pad_widths={text!r}: widths must be >= 1 and the largest must fit the "
                          f"longest text ({max_width} tokens)")
    return widths


def bucket_batch(ds, max_width, batch_size, drop_remainder=False, widths=None):
    """Batch (inputs, labels, weights) examples by text length, padded to ``widths`` (default
    ``bucket_widths(max_width)``)."""
    widths = widths or bucket_widths(max_width)
    ds = ds.bucket_by_sequence_length(
        lambda inputs, labels, weights: tf.shape(inputs["token_ids"])[0],
        bucket_boundaries=[w + 1 for w in widths],
        bucket_batch_sizes=[batch_size] * (len(widths) + 1),
        pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )
    return without_autotune_thread(ds.prefetch(tf.data.AUTOTUNE))
