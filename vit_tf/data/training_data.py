"""Everything ``train()`` needs from the data, behind one call: records -> preprocessed tf.data.

``prepare_training_data`` reads and validates the source (LLaVA JSON + image root, or a
TFRecord shard folder), builds or reuses the preprocessor (our WordPiece is trained on the valid
records' texts), checks every record against the text context, splits off the
``data.validation_fraction`` slice and returns a ``TrainingData`` whose methods make the
datasets: in memory (tokenized once, optionally packed by image, images decoded once) or
streamed from the shards (the preprocessor runs inside the graph). Both give the same batches
(tested).

Example:
    >>> data = prepare_training_data(config, "shapes/train.json", "shapes")
    >>> train_ds = data.train_dataset()        # repeated, shuffled, full batches
    >>> model = build_task(config, data.preprocessor)
"""

import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from vit_tf.config import ConfigError
from vit_tf.data.packing import pack_by_image
from vit_tf.data.pipeline import cached_image_bytes, encode_records, make_dataset, parse_widths
from vit_tf.data.prepare import check_lengths, prepare_records
from vit_tf.data.preset_tokenizer import preprocessor_for_config
from vit_tf.data.shards import (is_shard_source, parse_example, read_shard_records, shard_dataset,
                                shard_files)
from vit_tf.data.sources import DataValidationError, ValidationReport
from vit_tf.data.tokenizer import conversation_texts
from vit_tf.digest import file_sha256


def split_records(records, fraction, seed):
    """(training, validation) records: a seeded random ``fraction`` held out (at least one)."""
    if fraction <= 0:
        return records, []
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = max(1, int(round(fraction * len(records))))
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def prepare_shard_records(source, *, max_text_length, preprocessor=None, make_preprocessor=None,
                          skip_invalid=False):
    """Like ``prepare_records`` for shards: -> (text records, preprocessor, report).

    One pass over the shards reads the conversations (not the images, which stay on disk).
    The records carry no ``image_path``; training streams images from the shards.
    """
    records = list(read_shard_records(source))
    if preprocessor is None:
        preprocessor = make_preprocessor(conversation_texts(records))
    report = ValidationReport(n_records=len(records))
    kept = check_lengths(records, preprocessor, max_text_length, report, source)
    if not kept or (not report.ok and not skip_invalid):
        raise DataValidationError(report)
    return kept, preprocessor, report


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


@dataclass
class TrainingData:
    """Validated records, their preprocessor, and the datasets ``train()`` fits on."""

    source: str
    data_config: object
    seed: int
    preprocessor: object
    report: object
    train_records: list
    val_records: list
    log: object = print
    examples: object = None            # EncodedExamples (in memory), None for shards
    packed_from: int = 0               # examples before packing (0: not packed)
    _cache: dict = field(default_factory=dict)

    @property
    def streamed(self):
        return is_shard_source(self.source)

    @property
    def num_examples(self):
        """Training rows per pass (packed rows when packing)."""
        return len(self.train_records) if self.examples is None else len(self.examples)

    def _widths(self, longest):
        return parse_widths(self.data_config.pad_widths, longest)

    def train_dataset(self, records=None):
        """Repeated, shuffled, full batches (the main run; ``records``: a subset, e.g. stage 1's
        captions, batched the same way). Returns (rows per pass, dataset)."""
        d = self.data_config
        if self.streamed:
            chosen = records if records is not None else self.train_records
            ds = shard_dataset(self.source, self.preprocessor, d.batch_size, d.max_text_length,
                               shuffle=True, seed=self.seed, repeat=True, drop_remainder=True,
                               shuffle_buffer=d.shuffle_buffer, ids=[r["id"] for r in chosen],
                               widths=self._widths(d.max_text_length))
            return len(chosen), ds
        examples = self.examples if records is None else encode_records(
            records, self.preprocessor, d.max_text_length)
        cache = d.cache_images
        need = cached_image_bytes(examples, d.image_size)
        if cache and need > d.cache_images_max_gb * 2**30:
            self.log(f"decoded images would take {need / 2**30:.1f} GiB > "
                     f"data.cache_images_max_gb={d.cache_images_max_gb}; streaming them from disk")
            cache = False
        # Repeated, full batches only: every step has one of a few XLA shapes, and an "epoch" is
        # a fixed number of steps (the data position simply carries on into the next one).
        widths = self._widths(int(np.max(examples.lengths, initial=1)))
        return len(examples), make_dataset(
            examples, d.image_size, d.batch_size, shuffle=True, seed=self.seed, repeat=True,
            drop_remainder=True, cache_images=cache, widths=widths)

    def validation_dataset(self):
        """Batches of the validation slice (one pass), or None."""
        if not self.val_records:
            return None
        d = self.data_config
        if self.streamed:
            return shard_dataset(self.source, self.preprocessor, d.batch_size, d.max_text_length,
                                 ids=[r["id"] for r in self.val_records])
        return make_dataset(encode_records(self.val_records, self.preprocessor,
                                           d.max_text_length), d.image_size, d.batch_size)

    def fingerprint(self, records=None):
        """What ``train_dataset(records)`` trains on, for a resume to check it is unchanged:
        ``{"records": n, "text": SHA-256 of every record's id, category and conversation in
        order, "images": SHA-256 of the image bytes}`` (JSON source: each record's image file;
        shards: the shard files, which hold the images). The source's path is left out:
        moving the data does not change it."""
        records = self.train_records if records is None else records
        text = hashlib.sha256()
        for r in records:
            row = {"id": r["id"], "category": r.get("category"),
                   "conversations": r["conversations"]}
            text.update(json.dumps(row, sort_keys=True).encode("utf-8") + b"\n")
        images, seen = hashlib.sha256(), {}
        files = (shard_files(self.source) if self.streamed
                 else [r["image_path"] for r in records])
        for path in files:
            if path not in seen:
                seen[path] = file_sha256(path)
            images.update(seen[path].encode())
        return {"records": len(records), "text": text.hexdigest(), "images": images.hexdigest()}

    def with_images(self, records, out_dir):
        """``records`` with an ``image_path`` each (shard images extracted to ``out_dir``)."""
        if not self.streamed:
            return records
        return extract_images(self.source, [dict(r) for r in records], out_dir)


def prepare_training_data(config, source, image_root=None, *, preprocessor=None, log=print):
    """Read, validate and tokenize ``source`` for ``config``; see the module docstring.

    ``preprocessor``: reuse one (resume); else the config's preset tokenizer or a WordPiece
    trained on the valid records. Invalid records raise ``DataValidationError`` (every problem
    listed) unless ``data.skip_invalid``.
    """
    d = config.data
    make = lambda texts: preprocessor_for_config(config, texts)  # noqa: E731
    if is_shard_source(source):
        if d.pack_by_image:
            raise ConfigError(f"{source}: data.pack_by_image needs a LLaVA JSON source, not "
                              "TFRecord shards")
        records, preprocessor, report = prepare_shard_records(
            source, max_text_length=d.max_text_length, preprocessor=preprocessor,
            make_preprocessor=make, skip_invalid=d.skip_invalid)
    else:
        records, preprocessor, report = prepare_records(
            source, image_root, max_text_length=d.max_text_length, preprocessor=preprocessor,
            make_preprocessor=make, skip_invalid=d.skip_invalid)
    train_records, val_records = split_records(records, d.validation_fraction, config.train.seed)
    data = TrainingData(str(source), d, config.train.seed, preprocessor, report, train_records,
                        val_records, log)
    if not data.streamed:
        data.examples = encode_records(train_records, preprocessor, d.max_text_length)
        if d.pack_by_image:  # one row per image, examples walled off (vit_tf.data.packing)
            data.packed_from = len(data.examples)
            data.examples = pack_by_image(data.examples, d.pack_length, config.train.seed)
            log(f"packed {data.packed_from} examples into {len(data.examples)} rows by image "
                "(data.pack_by_image)")
    return data
