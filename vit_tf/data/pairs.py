"""Image-text pairs for the contrastive stage, from the records every reader returns.

Which text a record gives (``texts``, e.g. ``"caption,description,questions"``):
    a category named in ``texts``   the record's answers (a caption, a description)
    ``questions``                   any other record: its whole conversation, each question
                                    followed by its answer ("what colour is the square? red")
Question-only data (no captions) thus still gives pairs: the questions and answers
themselves. A record without ``category`` counts as "questions". Text is lowercased, with
``<image>`` removed.

Images are decoded once (the training pipeline's own ``decode_image``, so pixels match the VLM's)
and kept as uint8 in memory; each pair points at its image (``image_index``), and pairs that
share an image or an identical text carry the same ``image_ids`` / ``text_ids``, which the
losses treat as positives.

Example:
    >>> pairs = build_pairs(records, "caption,description,questions", image_size=64)
    >>> len(pairs), pairs.texts[0]
    (70120, 'a large red circle.')
"""

import dataclasses

import numpy as np

from vit_tf.data.template import strip_image_placeholder

QUESTIONS = "questions"


@dataclasses.dataclass
class PairSet:
    images: np.ndarray          # (n_images, S, S, 3) uint8
    image_paths: list           # (n_images,)
    image_index: np.ndarray     # (n_pairs,) int32: which image each pair shows
    texts: list                 # (n_pairs,) str
    text_ids: np.ndarray        # (n_pairs,) int32: same id = identical text
    categories: list            # (n_pairs,) the record's category ("" when none)
    record_ids: list            # (n_pairs,)

    def __len__(self):
        return len(self.texts)

    def subset(self, keep):
        """The pairs at indices ``keep`` (images shared, not copied)."""
        keep = np.asarray(keep, dtype=np.int64)
        return dataclasses.replace(
            self, image_index=self.image_index[keep], texts=[self.texts[i] for i in keep],
            text_ids=self.text_ids[keep], categories=[self.categories[i] for i in keep],
            record_ids=[self.record_ids[i] for i in keep])


def parse_text_kinds(texts):
    kinds = {k.strip() for k in texts.split(",") if k.strip()}
    if not kinds:
        raise ValueError("pretrain.texts is empty; name categories (caption,description) "
                         "and/or 'questions'")
    return kinds


def record_text(record, kinds):
    """The pair text of one record, or None when ``kinds`` does not take it."""
    category = record.get("category") or ""
    turns = record["conversations"]
    if category and category in kinds:
        text = " ".join(t["value"] for t in turns if t["from"] == "gpt")
    elif QUESTIONS in kinds:
        text = " ".join(strip_image_placeholder(t["value"]) for t in turns)
    else:
        return None
    return " ".join(text.lower().split())


def decode_images(paths, image_size):
    """Image files -> (n, S, S, 3) uint8, decoded and resized as the VLM pipeline does."""
    import tensorflow as tf

    from vit_tf.data.image_converter import decode_image

    ds = tf.data.Dataset.from_tensor_slices(list(paths)).map(
        lambda p: tf.cast(tf.round(decode_image(p, image_size, kind="path")), tf.uint8),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)
    return np.concatenate([b.numpy() for b in ds]) if paths else \
        np.zeros((0, image_size, image_size, 3), np.uint8)


def build_pairs(records, texts, image_size, text_index=None):
    """``PairSet`` of ``records`` (``image_path`` set by the readers). ``text_index``
    ({text: id}) is extended in place, so several sets can share text ids."""
    kinds = parse_text_kinds(texts)
    text_index = {} if text_index is None else text_index
    image_of, paths = {}, []
    image_index, pair_texts, categories, ids = [], [], [], []
    for record in records:
        text = record_text(record, kinds)
        if not text:
            continue
        path = record["image_path"]
        if path not in image_of:
            image_of[path] = len(paths)
            paths.append(path)
        image_index.append(image_of[path])
        pair_texts.append(text)
        categories.append(record.get("category") or "")
        ids.append(record["id"])
    if not pair_texts:
        present = sorted({r.get("category") or "(none)" for r in records})
        raise ValueError(f"pretrain.texts={texts!r} takes no record (categories present: "
                         f"{', '.join(present)}); add 'questions' to use question-answer pairs")
    text_ids = np.array([text_index.setdefault(t, len(text_index)) for t in pair_texts],
                        np.int32)
    return PairSet(images=decode_images(paths, image_size), image_paths=paths,
                   image_index=np.array(image_index, np.int32), texts=pair_texts,
                   text_ids=text_ids, categories=categories, record_ids=ids)


def ids_function(tokenizer, sequence_length):
    """A traced (n,) strings -> (n, L) int32 ids function (right-padded with 0, cut at L).
    Callers that tokenize many times (the dual encoder) keep one: each new ``tf.function``
    traces again."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def ids_of(batch):
        tokens = tokenizer(batch)
        if not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.RaggedTensor.from_tensor(tokens)
        return tf.cast(tokens, tf.int32).to_tensor(shape=(None, sequence_length))

    return ids_of


def tokenize_pairs(tokenizer, texts, sequence_length, ids_of=None):
    """(n,) strings -> (n, L) int32 ids, right-padded with 0 and cut at L. (Eagerly keras-hub
    returns Python lists, so the tokenizer runs inside a traced function, as in tf.data;
    ``ids_of``: one from ``ids_function`` to reuse its trace.)"""
    import tensorflow as tf

    ids_of = ids_of or ids_function(tokenizer, sequence_length)
    texts = list(texts)
    out = [ids_of(tf.constant(texts[i:i + 4096])).numpy() for i in range(0, len(texts), 4096)]
    return np.concatenate(out) if out else np.zeros((0, sequence_length), np.int32)


def pair_dataset(pairs, token_ids, batch_size, seed=0, repeat=True):
    """Shuffled batches of {"images", "token_ids", "padding_mask", "image_ids", "text_ids"}
    (drop_remainder: every step has the full set of in-batch negatives)."""
    import tensorflow as tf

    images = tf.constant(pairs.images)     # (n_images, S, S, 3) uint8, held once in memory
    ds = tf.data.Dataset.from_tensor_slices({
        "image_index": pairs.image_index, "token_ids": token_ids, "text_ids": pairs.text_ids})
    if repeat:
        ds = ds.repeat()
    ds = ds.shuffle(min(len(pairs), 100_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)

    def to_inputs(b):
        return {"images": tf.cast(tf.gather(images, b["image_index"]), tf.float32),
                "token_ids": b["token_ids"], "padding_mask": b["token_ids"] != 0,
                "image_ids": b["image_index"], "text_ids": b["text_ids"]}

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
