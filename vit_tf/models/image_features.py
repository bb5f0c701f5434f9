"""Frozen-encoder image tokens computed once per image and cached, and the model that trains
on them in place of pixels.

With a frozen image encoder (LLaVA's both stages) every epoch would encode each image again for
the same tokens; on 2 CPU cores EfficientNet-Lite0 at 224 px costs about as much per image as a
short training example of the 135M LM. ``ImageFeatureCache.build`` runs the task's own
preprocessor (the one owner of pixels: decoding, resizing) and its image encoder once per
distinct image and keeps the tokens on disk, pinned to the encoder (its config and a SHA-256 of
its weights) and to each image file's SHA-256. ``feature_model(task)`` is a Keras model that
shares the task's projector and decoder layers and takes the cached tokens instead of pixels:
training it trains the task, whose ``generate`` / ``save_to_preset`` / export still take pixels.

Files (``CACHE/``): ``features.npy`` (N, tokens, channels) float32 and ``index.json``
({"encoder": fingerprint, "images": [{"path", "sha256"}], "shape"}).

Example:
    >>> cache = ImageFeatureCache.build(task, image_paths, "data/real/features")
    >>> model = feature_model(task)        # inputs image_features, token_ids, padding_mask
    >>> model(cache.inputs_for(paths), ...)
"""

import hashlib
import json
import os
import time

import keras
import numpy as np

from vit_tf.digest import file_sha256

INDEX_FILE = "index.json"
FEATURES_FILE = "features.npy"


class FeatureCacheError(ValueError):
    """A cache that does not match the encoder or the images; the message names the file."""


def encoder_fingerprint(task):
    """What the cached tokens depend on: the encoder's config, its weights and the image size."""
    encoder = task.image_encoder
    h = hashlib.sha256()
    for w in encoder.weights:
        h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    config = {k: v for k, v in encoder.get_config().items() if k not in ("name", "weights",
                                                                         "trainable", "dtype")}
    return {"class": type(encoder).__name__, "config": config, "weights_sha256": h.hexdigest(),
            "image_size": task.preprocessor.image_size}


class ImageFeatureCache:
    """Image path -> its encoder tokens (``tokens``, ``channels``) float32."""

    def __init__(self, folder, paths, features, fingerprint):
        self.folder = folder
        self.paths = list(paths)
        self.features = features                       # (N, tokens, channels)
        self.fingerprint = fingerprint
        self.index = {p: i for i, p in enumerate(self.paths)}

    @property
    def num_tokens(self):
        return self.features.shape[1]

    def indices(self, paths):
        """Row of each path; ``FeatureCacheError`` naming the first path the cache lacks."""
        missing = [p for p in paths if p not in self.index]
        if missing:
            raise FeatureCacheError(f"{os.path.join(self.folder, INDEX_FILE)}: no features for "
                                    f"{missing[0]!r} ({len(missing)} images missing); rebuild the "
                                    "cache with these images")
        return np.array([self.index[p] for p in paths], np.int32)

    @classmethod
    def load(cls, folder, task=None, paths=None):
        """Read a cache; with ``task`` check its encoder, with ``paths`` check those images are
        cached unchanged (SHA-256). Mismatches raise ``FeatureCacheError`` naming the file."""
        index_path = os.path.join(folder, INDEX_FILE)
        try:
            with open(index_path) as f:
                index = json.load(f)
            features = np.load(os.path.join(folder, FEATURES_FILE), mmap_mode=None)
        except (OSError, ValueError, json.JSONDecodeError) as e:
            raise FeatureCacheError(f"{folder}: unreadable feature cache ({e})") from None
        if list(features.shape) != index.get("shape"):
            raise FeatureCacheError(
                f"{os.path.join(folder, FEATURES_FILE)}: shape {list(features.shape)} != "
                f"{index.get('shape')} in {INDEX_FILE} (truncated or replaced)")
        if task is not None and index["encoder"] != encoder_fingerprint(task):
            raise FeatureCacheError(f"{index_path}: made by another encoder (config or weights "
                                    "differ); rebuild it")
        cache = cls(folder, [e["path"] for e in index["images"]], features, index["encoder"])
        if paths is not None:
            digests = {e["path"]: e["sha256"] for e in index["images"]}
            for p in dict.fromkeys(paths):
                if p not in digests:
                    raise FeatureCacheError(f"{index_path}: no features for {p!r}")
                if file_sha256(p) != digests[p]:
                    raise FeatureCacheError(f"{p}: changed since its features were cached in "
                                            f"{folder}; rebuild the cache")
        return cache

    @classmethod
    def build(cls, task, paths, folder, batch_size=32, log=print):
        """Encode each distinct image of ``paths`` once (the task's preprocessor converts the
        pixels, its encoder makes the tokens, XLA-compiled) and write the cache; a valid
        existing cache with every image is reused."""
        paths = list(dict.fromkeys(str(p) for p in paths))
        if os.path.exists(os.path.join(folder, INDEX_FILE)):
            try:
                cache = cls.load(folder, task, paths)
                log(f"feature cache {folder}: {len(cache.paths)} images, reused")
                return cache
            except FeatureCacheError as e:
                log(f"feature cache {folder}: rebuilding ({e})")
        import tensorflow as tf

        # Not XLA: XLA on CPU runs depthwise convolutions ~30x slower than oneDNN (1.4 vs
        # ~40 images/s for EfficientNet-Lite0 at 224 px on 2 cores).
        encode = tf.function(lambda x: task.image_encoder(x, training=False), jit_compile=False)
        chunks, start = [], time.perf_counter()
        progress = Progress(len(paths), "encoding images", log)
        for i in range(0, len(paths), batch_size):
            batch = paths[i:i + batch_size]
            pixels = task.preprocessor.convert_images(tf.constant(batch), kind="path")
            if len(batch) < batch_size:   # one XLA shape: pad the last batch
                pad = tf.zeros((batch_size - len(batch), *pixels.shape[1:]), pixels.dtype)
                pixels = tf.concat([pixels, pad], 0)
            chunks.append(np.asarray(encode(pixels))[: len(batch)].astype(np.float32))
            progress.update(i + len(batch))
        features = np.concatenate(chunks) if chunks else np.zeros((0, 1, 1), np.float32)
        fingerprint = encoder_fingerprint(task)
        tmp = folder.rstrip("/") + ".tmp"
        os.makedirs(tmp, exist_ok=True)
        np.save(os.path.join(tmp, FEATURES_FILE), features)
        with open(os.path.join(tmp, INDEX_FILE), "w") as f:
            json.dump({"encoder": fingerprint, "shape": list(features.shape),
                       "images": [{"path": p, "sha256": file_sha256(p)} for p in paths]}, f)
        if os.path.exists(folder):
            import shutil
            shutil.rmtree(folder)
        os.replace(tmp, folder)      # nothing half-written is ever read as a cache
        log(f"feature cache {folder}: {len(paths)} images encoded in "
            f"{time.perf_counter() - start:.1f} s, tokens {features.shape[1:]}")
        return cls(folder, paths, features, fingerprint)


def feature_model(task, text_only_rows=False):
    """A Keras model sharing ``task``'s projector and decoder that takes cached encoder tokens:
    inputs ``image_features`` (batch, tokens, channels), ``token_ids``, ``padding_mask`` ->
    logits (batch, text_len, vocabulary_size); training it updates the task's weights.

    ``text_only_rows``: one more input, ``image_present`` (batch,) bool; a row where it is
    False is a text-only example (its ``image_features`` row is a placeholder): the decoder
    masks its image prefix out of attention, so its text sees no image and no gradient reaches
    the projector from it. Needs a decoder with ``masks_image_prefix`` (the keras-hub LMs)."""
    encoder = task.image_encoder
    features = keras.Input((encoder.num_tokens, encoder.hidden_dim), name="image_features")
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
    inputs = {"image_features": features, "token_ids": token_ids, "padding_mask": padding_mask}
    image_tokens = task.projector(features)          # (batch, image_tokens, hidden_dim)
    if not text_only_rows:
        logits = task.decoder(token_ids, image_tokens=image_tokens, padding_mask=padding_mask)
        return keras.Model(inputs, logits, name="vlm_on_features")
    if not getattr(task.decoder, "masks_image_prefix", False) or task.decoder.fusion.uses_reads:
        raise ValueError(f"text-only examples need a decoder that can mask its image prefix "
                         f"(llama, gemma with a prefix fusion); this task has a "
                         f"{type(task.decoder).__name__} with {type(task.decoder.fusion).__name__}")
    inputs["image_present"] = keras.Input((), dtype="bool", name="image_present")
    logits = task.decoder(token_ids, image_tokens=image_tokens, padding_mask=padding_mask,
                          image_present=inputs["image_present"])
    return keras.Model(inputs, logits, name="vlm_on_features")


class Progress:
    """Prints ``label: done/total (rate/s, ETA m:ss)`` at most every ``every`` seconds."""

    def __init__(self, total, label, log=print, every=15.0):
        self.total, self.label, self.log, self.every = total, label, log, every
        self.start = self.last = time.perf_counter()

    def update(self, done):
        now = time.perf_counter()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate else 0.0
        self.log(f"{self.label}: {done}/{self.total} ({rate:.2f}/s, {now - self.start:.0f} s, "
                 f"ETA {int(eta // 60)}:{int(eta % 60):02d})")
