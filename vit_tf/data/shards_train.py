"""Training from TFRecord shards: the text pass, the id split and the streamed datasets.

``vit_tf.training.train`` uses these when ``--data`` is a shard folder (or ``*.tfrecord``
pattern): one pass reads only the conversations (to train the tokenizer, check lengths and split
off validation records by id), then training and validation batches stream from the shards.
"""

import os

import tensorflow as tf

from vit_tf.data.pipeline import parse_widths
from vit_tf.data.shards import parse_example, read_shard_records, shard_dataset, shard_files


def prepare_shard_records(source, *, max_text_length, tokenizer=None, vocabulary_size=None,
                          skip_invalid=False):
    """Like ``prepare_records`` for shards: -> (text records, tokenizer, report).

    One pass over the shards reads the conversations (not the images, which stay on disk): the
    tokenizer is trained on them unless given, and every record is checked against the context
    length. The records carry no ``image_path``; training streams images from the shards.
    """
    from vit_tf.data.pipeline import text_length_fn
    from vit_tf.data.sources import DataValidationError, Problem, ValidationReport
    from vit_tf.data.tokenizer import conversation_texts, train_tokenizer

    records = list(read_shard_records(source))
    if tokenizer is None:
        tokenizer = train_tokenizer(conversation_texts(records), vocabulary_size)
    length = text_length_fn(tokenizer)
    report, kept = ValidationReport(n_records=len(records)), []
    for record in records:
        n = length(record)
        if n > max_text_length:
            report.problems.append(Problem(str(source), record["id"], "conversations",
                                           f"text is {n} tokens, longer than the context "
                                           f"(data.max_text_length={max_text_length})",
                                           "text too long"))
        else:
            kept.append(record)
    report.n_valid = len(kept)
    if not kept or (not report.ok and not skip_invalid):
        raise DataValidationError(report)
    return kept, tokenizer, report


def extract_images(source, records, out_dir):
    """Write the images of ``records`` (by id) from the shards to ``out_dir``; sets image_path.

    Used for the few records whose answers are logged during training.
    """
    wanted = {r["id"]: r for r in records}
    os.makedirs(out_dir, exist_ok=True)
    ds = tf.data.TFRecordDataset(shard_files(source)).map(parse_example)
    for ex in ds.as_numpy_iterator():
        record = wanted.get(ex["id"].decode())
        if record is not None and "image_path" not in record:
            suffix = ".jpg" if ex["image"][:2] == b"\xff\xd8" else ".png"
            path = os.path.join(out_dir, f"{len(os.listdir(out_dir)):06d}{suffix}")
            with open(path, "wb") as f:
                f.write(ex["image"])
            record["image_path"] = path
    return records


def shard_training_data(source, tokenizer, data_config, train_records, val_records, seed):
    """-> (train_ds, val_ds or None) streamed from the shards, split by record id; the same
    batching as the in-memory path (repeated full training batches, bucketed widths)."""
    d = data_config
    train_ds = shard_dataset(source, tokenizer, d.image_size, d.batch_size, d.max_text_length,
                             shuffle=True, seed=seed, repeat=True, drop_remainder=True,
                             shuffle_buffer=d.shuffle_buffer,
                             ids=[r["id"] for r in train_records],
                             widths=parse_widths(d.pad_widths, d.max_text_length))
    val_ds = None
    if val_records:
        val_ds = shard_dataset(source, tokenizer, d.image_size, d.batch_size, d.max_text_length,
                               ids=[r["id"] for r in val_records])
    return train_ds, val_ds
