"""TFRecord shards: write validated records once, stream them into training with parallel reads.

``write_shards`` stores each record as a ``tf.train.Example`` in one of N files
(``data-00000-of-00004.tfrecord`` ...) plus a ``manifest.json``. Images are stored as the encoded
file bytes (PNG/JPEG, never re-encoded), conversations as parallel string lists::

    id             bytes       record id
    image          bytes       the image file's bytes
    roles          bytes list  "human" / "gpt" per turn
    values         bytes list  the text of each turn
    category       bytes
    extras         bytes       JSON of any other fields (VQA ``answers``, caption ``references``)

``shard_examples`` reads them back with ``interleave`` over the files (parallel, or in record
order when ``deterministic``), runs the preprocessor on each record *inside* the graph
(``VisionLanguagePreprocessor``: the same template, tokenizer and image converter as every
other path, so the loss mask is exact) and yields exactly the examples
``vit_tf.data.pipeline.make_dataset`` makes from the same records; ``shard_dataset`` adds
shuffling, repetition and the same length bucketing. Nothing is held in memory, so data far
larger than RAM streams. Under ``tf.distribute``, pass the ``tf.distribute.InputContext`` (as
``strategy.distribute_datasets_from_function`` does) and each input pipeline reads its own
files; without one, the dataset's auto-shard policy is ``FILE``.

Example:
    >>> write_shards(read_llava("train.json", "images").records, "shards/", num_shards=8)
    >>> ds = shard_dataset("shards/", preprocessor, batch_size=32, max_text_length=160,
    ...                    shuffle=True, repeat=True)
"""

import glob
import json
import os

import tensorflow as tf

from vit_tf.data.pipeline import bucket_batch

MANIFEST = "manifest.json"
_CORE_FIELDS = ("id", "image", "image_path", "conversations", "category")


def shard_name(index, num_shards, prefix="data"):
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.tfrecord"


def _bytes(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def record_to_example(record):
    """One record (with ``image_path``) -> serialized ``tf.train.Example`` bytes."""
    with open(record["image_path"], "rb") as f:
        image = f.read()
    extras = {k: v for k, v in record.items() if k not in _CORE_FIELDS}
    feature = {
        "id": _bytes([str(record["id"]).encode()]),
        "image": _bytes([image]),
        "roles": _bytes([t["from"].encode() for t in record["conversations"]]),
        "values": _bytes([t["value"].encode() for t in record["conversations"]]),
        "category": _bytes([(record.get("category") or "").encode()]),
        "extras": _bytes([json.dumps(extras, sort_keys=True).encode()]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_shards(records, out_dir, num_shards, *, source=None):
    """Write ``records`` round-robin into ``num_shards`` files; returns the manifest dict.

    Record i goes to shard ``i % num_shards``, so reading the shards back with a deterministic
    interleave gives the records in their original order.
    """
    if num_shards < 1:
        raise ValueError(f"--shards must be >= 1, got {num_shards}")
    if len(records) < num_shards:
        raise ValueError(f"{len(records)} records cannot fill {num_shards} shards; use fewer")
    os.makedirs(out_dir, exist_ok=True)
    existing = glob.glob(os.path.join(out_dir, "*.tfrecord"))
    if existing:
        raise FileExistsError(f"{out_dir} already holds shards ({len(existing)} .tfrecord "
                              "files); choose an empty --out")
    names = [shard_name(i, num_shards) for i in range(num_shards)]
    counts = [0] * num_shards
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, n)) for n in names]
    try:
        for i, record in enumerate(records):
            writers[i % num_shards].write(record_to_example(record))
            counts[i % num_shards] += 1
    finally:
        for w in writers:
            w.close()
    manifest = {"format": "vit_tf shards v1", "num_shards": num_shards,
                "num_records": len(records), "files": names, "records_per_shard": counts,
                "source": source}
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def is_shard_source(path):
    """True for a folder with a shard manifest or a glob/path of ``.tfrecord`` files."""
    path = str(path)
    return (os.path.isfile(os.path.join(path, MANIFEST)) or path.endswith(".tfrecord")
            or path.endswith("*"))


def shard_files(source):
    """Sorted shard files of a shard folder (its manifest) or of a glob pattern."""
    source = str(source)
    manifest = os.path.join(source, MANIFEST)
    if os.path.isfile(manifest):
        with open(manifest) as f:
            names = json.load(f)["files"]
        files = [os.path.join(source, n) for n in names]
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise FileNotFoundError(f"{manifest}: field files: {missing[0]} not found "
                                    f"({len(missing)} of {len(files)} missing)")
        return files
    files = sorted(glob.glob(source))
    if not files:
        raise FileNotFoundError(f"{source}: no shard files match")
    return files


_FEATURES = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
    "roles": tf.io.VarLenFeature(tf.string),
    "values": tf.io.VarLenFeature(tf.string),
    "category": tf.io.FixedLenFeature([], tf.string),
    "extras": tf.io.FixedLenFeature([], tf.string),
}


def parse_example(serialized):
    """-> {"id", "image" (encoded bytes), "roles" (T,), "values" (T,), "category", "extras"}."""
    parsed = tf.io.parse_single_example(serialized, _FEATURES)
    parsed["roles"] = tf.sparse.to_dense(parsed["roles"])
    parsed["values"] = tf.sparse.to_dense(parsed["values"])
    return parsed


def read_shard_records(source):
    """Yield the records of the shards (id, conversations, category, extras) without images,
    in the order they were written."""
    files = shard_files(source)
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), block_length=1).map(parse_example)
    for ex in ds.as_numpy_iterator():
        record = {"id": ex["id"].decode(), "category": ex["category"].decode(),
                  "conversations": [{"from": r.decode(), "value": v.decode()}
                                    for r, v in zip(ex["roles"], ex["values"])]}
        record.update(json.loads(ex["extras"].decode()))
        yield record


def _file_dataset(source, input_context, shuffle, seed):
    files = shard_files(source)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) < input_context.num_input_pipelines:
            raise ValueError(f"{source}: {len(files)} shard files for "
                             f"{input_context.num_input_pipelines} input pipelines; write at "
                             "least one shard per worker")
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ds, len(files)


def shard_examples(source, preprocessor, *, ids=None, input_context=None,
                   shuffle_files=False, shuffle_buffer=0, seed=0, deterministic=True):
    """Unbatched ``(inputs, labels, sample_weight)`` examples streamed from the shards.

    Shapes (L = unpadded text length): ``images`` (S, S, 3) float32, ``token_ids`` (L,) int32,
    ``padding_mask`` (L,) bool, labels (L,) int32, sample_weight (L,) float32: exactly what
    ``make_dataset`` builds for the same record before padding. With ``ids`` (a collection of
    record ids) only those records are read, e.g. a training or validation split. A
    ``shuffle_buffer`` shuffles records while their images are still encoded (a PNG of the
    shapes world is ~300 bytes, the decoded float image 48 KB), so a large buffer stays cheap.
    Too long conversations are left for ``shard_dataset`` to check (it names the source).
    """
    files, n_files = _file_dataset(source, input_context, shuffle_files, seed)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=n_files, block_length=1,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    ds = ds.with_options(options).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE,
                                      deterministic=deterministic)
    if ids is not None:
        keys = tf.constant(sorted(str(i) for i in ids) or [""], tf.string)
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int32)), 0)
        ds = ds.filter(lambda ex: table.lookup(ex["id"]) > 0)
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    # The length check is shard_dataset's (skip or fail, naming the source).
    return ds.map(lambda ex: preprocessor.preprocess(
        {"images": ex["image"], "roles": ex["roles"], "values": ex["values"], "id": ex["id"]},
        check_length=False), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def shard_dataset(source, preprocessor, batch_size, max_text_length, *, shuffle=False,
                  seed=0, repeat=False, drop_remainder=False, shuffle_buffer=1024,
                  input_context=None, skip_too_long=False, ids=None, widths=None):
    """Batched, bucketed, prefetched training data streamed from shards (see ``make_dataset``;
    ``widths`` as there).

    An example longer than ``max_text_length`` tokens raises at run time naming its record,
    unless ``skip_too_long``. With ``input_context`` the batch size is per replica
    (``input_context.get_per_replica_batch_size`` is the caller's job, as in tf.distribute).
    """
    # deterministic even when shuffled: the order is the seeded shuffles', never the order in
    # which parallel reads and decodes finish, so a fresh copy repeats the stream exactly
    # (resumable_fit resumes by skipping the batches already trained on).
    ds = shard_examples(source, preprocessor, ids=ids, input_context=input_context,
                        shuffle_files=shuffle, shuffle_buffer=shuffle_buffer if shuffle else 0,
                        seed=seed, deterministic=True)
    too_long = lambda inputs, labels, weights: tf.shape(labels)[0] > max_text_length  # noqa: E731
    if skip_too_long:
        ds = ds.filter(lambda *ex: tf.logical_not(too_long(*ex)))
    else:
        def check(inputs, labels, weights):
            tf.debugging.assert_less_equal(
                tf.shape(labels)[0], max_text_length,
                message=f"{source}: a record's conversation is longer than "
                        f"data.max_text_length={max_text_length} tokens")
            return inputs, labels, weights

        ds = ds.map(check)
    if repeat:
        ds = ds.repeat()
    return bucket_batch(ds, max_text_length, batch_size, drop_remainder, widths)


def distributed_shard_dataset(strategy, source, preprocessor, global_batch_size,
                              max_text_length, **kwargs):
    """``strategy.distribute_datasets_from_function`` over :func:`shard_dataset`: each input
    pipeline reads its own shard files, with the per-replica batch size."""
    def dataset_fn(input_context):
        batch = input_context.get_per_replica_batch_size(global_batch_size)
        return shard_dataset(source, preprocessor, batch, max_text_length,
                             input_context=input_context, **kwargs)

    return strategy.distribute_datasets_from_function(dataset_fn)

