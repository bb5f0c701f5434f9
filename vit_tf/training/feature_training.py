"""Training a task on cached frozen-encoder tokens (``vit_tf.models.image_features``).

``fit_on_features`` is one stage of LLaVA's recipe with the image encoder frozen: the records
are tokenized by the task's preprocessor (``encode_records``, the same ids and masks as
``vit-tf train``), batched by text length like ``make_dataset`` (``bucket_batch``), and each
example's image is a row of the feature cache instead of pixels. The stage's policy
(``vit_tf.training.policy``: projector alone, or projector + LoRA / full LM) is applied to the
task, and the ``feature_model`` sharing the task's layers is compiled (``compile_model``: the
same optimizer, loss and metrics) and fitted, printing progress with an ETA. The task itself is
what comes out: ``merge_lora`` then ``save_to_preset`` give a plain preset that takes pixels.

Text-only records (``image_path == ""``, ``vit_tf.data.text_chat``: LLaVA-1.5's text-only chat
in stage 2) train beside image ones through the same preprocessor: their batch rows carry
``image_present=False``, so the decoder masks their image prefix out of attention and loss
(``feature_model(task, text_only_rows=True)``) and their text is computed as without an image.

Example:
    >>> cache = ImageFeatureCache.build(task, [r["image_path"] for r in records], "features")
    >>> summary = fit_on_features(task, records, cache, config.train, policy, steps=200)
"""

import resource
import time

import keras
import numpy as np
import tensorflow as tf

from vit_tf.config import ConfigError
from vit_tf.data.pipeline import bucket_batch, encode_records
from vit_tf.data.template import END
from vit_tf.data.text_chat import untrain_unfinished_ends
from vit_tf.models.image_features import feature_model
from vit_tf.training.optim import compile_model, steps_per_call
from vit_tf.training.policy import apply_policy, trainable_counts, trains_text_positions


def feature_dataset(examples, cache, batch_size, *, shuffle=True, seed=0, repeat=True,
                    drop_remainder=True, widths=None, text_only_rows=False):
    """(inputs with ``image_features``, labels, sample_weight) batches; the image of each
    example is its cached token row. ``text_only_rows``: examples with an empty image path are
    text-only (``vit_tf.data.text_chat``): their row is a placeholder (row 0) and the inputs get
    ``image_present`` (False for them) for ``feature_model(task, text_only_rows=True)``."""
    paths = np.asarray(examples.image_paths, str)
    present = paths != ""
    if not text_only_rows and not present.all():
        raise ValueError(f"{int((~present).sum())} examples have no image (first: record "
                         f"{examples.record_ids[int(np.argmin(present))]!r}); text-only examples "
                         "need text_only_rows=True")
    if not present.any():
        raise ValueError("every example is text-only: no image to train the projector on")
    rows = np.zeros(len(paths), np.int32)
    rows[present] = cache.indices(list(paths[present]))
    table = tf.constant(cache.features)                     # (images, tokens, channels)
    ds = tf.data.Dataset.from_tensor_slices(
        (rows, present, examples.token_ids, examples.trained, examples.lengths))
    if shuffle:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def to_example(row, has_image, ids, trained, length):
        inputs = {"image_features": tf.gather(table, row),   # (tokens, channels)
                  "token_ids": ids[:length], "padding_mask": tf.ones([length], tf.bool)}
        if text_only_rows:
            inputs["image_present"] = has_image
        return inputs, ids[1:length + 1], tf.cast(trained[1:length + 1], tf.float32)

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return bucket_batch(ds, examples.token_ids.shape[1] - 1, batch_size, drop_remainder, widths)


class ProgressETA(keras.callbacks.Callback):
    """Logs step, loss, steps/s and the stage's ETA every ``every`` seconds (the rate leaves
    out the first call, which includes the XLA compilation)."""

    def __init__(self, total_steps, steps_per_call=1, label="training", log=print, every=30.0):
        super().__init__()
        self.total, self.k, self.label, self.log, self.every = (total_steps, steps_per_call,
                                                                 label, log, every)

    def on_train_begin(self, logs=None):
        self.done, self.t0, self.start = 0, None, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.done += self.k
        now = time.perf_counter()
        loss = float((logs or {}).get("loss", np.nan))
        if self.t0 is None:
            self.t0, self.d0, self.last = now, self.done, now
            self.first_seconds = now - self.start
            self.log(f"{self.label}: step {self.done}/{self.total} loss {loss:.4f} (first call, "
                     f"tracing and compilation: {now - self.start:.0f} s)")
            return
        if now - self.last < self.every and self.done < self.total:
            return
        self.last = now
        rate = (self.done - self.d0) / max(now - self.t0, 1e-9)
        self.steps_per_second = rate
        eta = (self.total - self.done) / max(rate, 1e-9)
        self.log(f"{self.label}: step {self.done}/{self.total} loss {loss:.4f} {rate:.2f} "
                 f"steps/s, {now - self.start:.0f} s, ETA {int(eta // 60)}:{int(eta % 60):02d}")


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the call during which ``seconds`` have passed since the first
    call ended (compilation excluded): a run sized by wall-clock time on a shared machine.
    ``steps`` counts the optimizer steps actually taken."""

    def __init__(self, seconds, steps_per_call=1):
        super().__init__()
        self.seconds, self.k = seconds, steps_per_call

    def on_train_begin(self, logs=None):
        self.steps, self.t0 = 0, None

    def on_train_batch_end(self, batch, logs=None):
        self.steps += self.k
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        elif now - self.t0 >= self.seconds:
            self.model.stop_training = True


def peak_memory_gib():
    """This process's peak resident memory so far (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def fit_on_features(task, records, cache, train_config, policy, lora=None, *, steps,
                    batch_size, max_text_length, label="stage", log=print, widths=None,
                    max_seconds=None):
    """Train ``task`` in place for ``steps`` optimizer steps on ``records`` with image tokens
    from ``cache``; returns a summary (examples, steps, seconds, losses, trainable parts,
    peak memory). ``policy``: a ``PolicyConfig`` whose image encoder must be frozen.
    ``max_seconds``: stop early once this much time has passed after the first (compiling)
    call; the summary's ``steps`` are those taken (``planned_steps`` those asked for)."""
    if policy.image_encoder != "frozen":
        raise ConfigError(f"{label}: cached image features need a frozen image encoder "
                          f"(policy.image_encoder={policy.image_encoder!r})")
    lora = lora or train_config.lora
    text_only = sum(1 for r in records if not r["image_path"])
    if text_only and not trains_text_positions(policy, lora):
        raise ConfigError(f"{label}: {text_only} text-only examples would train nothing "
                          f"(policy.decoder={policy.decoder!r}, lora.tokens={lora.tokens!r}: "
                          "no trained weight acts at a text-only example's positions); leave "
                          "them out")
    multipliers = apply_policy(task, policy, lora, where=f"{label} policy")
    examples = encode_records(records, task.preprocessor, max_text_length)
    if text_only:   # vit_tf.data.text_chat: answers cut by the token limit did not end there
        end = len(task.preprocessor.chat.markers[END])
        cut = untrain_unfinished_ends(examples, records, end)
        log(f"{label}: {text_only} text-only examples (image prefix masked), {cut} of them "
            "cut at the token limit (end marker not trained)")
    model = feature_model(task, text_only_rows=bool(text_only))
    per_call = steps_per_call(train_config.steps_per_execution, steps)
    compile_model(model, train_config, steps, lr_multipliers=multipliers,
                  steps_per_execution=per_call)
    counts = trainable_counts(task)
    log(f"{label}: {len(examples)} examples, {steps} steps of batch {batch_size} "
        f"({steps * batch_size / max(len(examples), 1):.2f} epochs); trainable {counts}")
    ds = feature_dataset(examples, cache, batch_size, seed=train_config.seed, widths=widths,
                         text_only_rows=bool(text_only))
    start = time.perf_counter()
    budget = TimeBudget(max_seconds or float("inf"), per_call)
    progress = ProgressETA(steps, per_call, label, log)
    history = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0,
                        callbacks=[progress, budget])
    seconds = time.perf_counter() - start
    if budget.steps < steps:
        log(f"{label}: stopped by the time budget ({max_seconds:.0f} s) after {budget.steps} "
            f"of {steps} steps")
    losses = [float(x) for x in history.history.get("loss", [])]
    done = budget.steps
    return {"examples": len(examples), "text_only_examples": text_only, "steps": done, "planned_steps": steps,
            "examples_seen": done * batch_size, "batch_size": batch_size,
            "epochs": round(done * batch_size / max(len(examples), 1), 3),
            "seconds": round(seconds, 1),
            "first_call_seconds": round(getattr(progress, "first_seconds", 0.0), 1),
            "steps_per_second": round(getattr(progress, "steps_per_second", 0.0), 4),
            "final_loss": losses[-1] if losses else None,
            "token_accuracy": float(history.history.get("token_accuracy", [np.nan])[-1]),
            "trainable_parameters": counts, "peak_memory_gib": round(peak_memory_gib(), 2)}
