"""``train``: LLaVA JSON + image root (or a TFRecord shard folder) + config -> a trained run.

Example:
    >>> from vit_tf.config import load_experiment
    >>> train(load_experiment("default"), "shapes/train.json", "shapes", "runs/default")
"""

import json
import os
import time
from functools import partial

import keras
import numpy as np

from vit_tf.config import save_config, load_config, to_dict
from vit_tf.data.pipeline import cached_image_bytes, encode_records, make_dataset
from vit_tf.data.prepare import prepare_records
from vit_tf.data.shards import is_shard_source
from vit_tf.data.shards_train import extract_images, prepare_shard_records, shard_training_data
from vit_tf.data.tokenizer import load_tokenizer, save_tokenizer, special_ids
from vit_tf.models.factory import build_model
from vit_tf.models.vlm import count_params
from vit_tf.training.callbacks import AnswerAccuracy, EpochTimer, SampleAnswers
from vit_tf.training.checkpointing import AtomicModelCheckpoint, resumable_fit
from vit_tf.training.distribute import (defer_symbolic_build, discard, distributable,
                                         make_strategy, write_folder)
from vit_tf.training.optim import compile_model
from vit_tf.training.relevance_callback import RelevanceMaps
from vit_tf.training.run_dir import paths


def _split(records, fraction, seed):
    if fraction <= 0:
        return records, []
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = max(1, int(round(fraction * len(records))))
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]]


def _in_memory_data(train_ex, val_records, tokenizer, d, seed, log):
    """(train, validation or None) datasets from encoded examples and image files."""
    cache = d.cache_images
    if cache and cached_image_bytes(train_ex, d.image_size) > d.cache_images_max_gb * 2**30:
        log(f"decoded images would take {cached_image_bytes(train_ex, d.image_size) / 2**30:.1f} "
            f"GiB > data.cache_images_max_gb={d.cache_images_max_gb}; streaming them from disk")
        cache = False
    # Repeated, full batches only: every step has one of a few XLA shapes, and an "epoch" is a
    # fixed number of steps (the data position simply carries on into the next one).
    train_ds = make_dataset(train_ex, d.image_size, d.batch_size, shuffle=True, seed=seed,
                            repeat=True, drop_remainder=True, cache_images=cache)
    val_ds = None
    if val_records:
        val_ds = make_dataset(encode_records(val_records, tokenizer, d.max_text_length),
                              d.image_size, d.batch_size)
    return train_ds, val_ds


def _answer_accuracy(val_json, image_root, tokenizer, d):
    records, _, report = prepare_records(val_json, image_root, max_text_length=d.max_text_length,
                                         tokenizer=tokenizer, skip_invalid=d.skip_invalid)
    examples = encode_records(records, tokenizer, d.max_text_length)
    categories = [r.get("category") or "all" for r in records]
    return AnswerAccuracy(examples, categories, d.image_size)


def train(config, data_json, image_root, out, resume=False, log=print, val_json=None,
          val_image_root=None):
    """Train a model; returns the run's summary dict. ``resume`` continues an interrupted run
    exactly where its last checkpoint left it (``vit_tf.training.checkpointing``).

    Under ``train.strategy=multi_worker`` only the chief writes ``out``; the other workers
    write to a temporary folder, deleted at the end (``vit_tf.training.distribute``).

    ``val_json`` (LLaVA JSON, images under ``val_image_root`` or ``image_root``): held-out
    records whose per-category answer accuracy is logged each epoch (``AnswerAccuracy``).
    """
    p = paths(out)
    if resume:
        if not os.path.exists(p["config"]):
            raise FileNotFoundError(f"{out}: nothing to resume (no config.json)")
        if os.path.exists(p["model"]):
            raise FileExistsError(f"{out} has finished training (model.keras exists); nothing to resume")
        config = load_config(p["config"])
    strategy = make_strategy(config.train)   # before any other TensorFlow work
    out_w = write_folder(out, strategy)      # `out` on the chief, else a temporary folder
    w = paths(out_w)                         # where this process writes; `p` is read on resume
    if out_w != out:
        log(f"not the chief; writing to {out_w} (deleted at the end)")
    if not resume and os.path.exists(w["config"]):
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    os.makedirs(out_w, exist_ok=True)
    keras.utils.set_random_seed(config.train.seed)
    start = time.perf_counter()

    d = config.data
    tokenizer = load_tokenizer(p["tokenizer"]) if resume else None
    prepare = prepare_shard_records if is_shard_source(data_json) else partial(
        prepare_records, image_root=image_root)
    records, tokenizer, report = prepare(
        data_json, max_text_length=d.max_text_length, tokenizer=tokenizer,
        vocabulary_size=d.vocabulary_size, skip_invalid=d.skip_invalid,
    )
    with open(w["report"], "w") as f:
        f.write(report.format() + "\n")
    if not report.ok:
        log(f"skipped {report.n_invalid} of {report.n_records} records ({report.summary()}); "
            f"details in {w['report']}")
    if not resume:
        save_config(config, w["config"])
        save_tokenizer(tokenizer, w["tokenizer"])

    train_records, val_records = _split(records, d.validation_fraction, config.train.seed)
    if is_shard_source(data_json):  # streamed from TFRecord shards (vit_tf.data.shards)
        train_ex = train_records
        build = partial(shard_training_data, data_json, tokenizer, d, train_records,
                        val_records, config.train.seed)
    else:
        train_ex = encode_records(train_records, tokenizer, d.max_text_length)
        build = partial(_in_memory_data, train_ex, val_records, tokenizer, d, config.train.seed,
                        log)
    datasets = lambda: [distributable(ds, strategy) for ds in build()]  # noqa: E731
    train_ds, val_ds = datasets()
    steps = config.train.steps_per_epoch or max(len(train_ex) // d.batch_size, 1)
    total_steps = steps * config.train.epochs

    if d.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"data.batch_size={d.batch_size} (the global batch) must be a multiple of "
                         f"the {strategy.num_replicas_in_sync} replicas of train.strategy")
    with strategy.scope():
        model = build_model(config, tokenizer.vocabulary_size(),
                            special_token_ids=special_ids(tokenizer))
        compile_model(model, config.train, total_steps)
    defer_symbolic_build(model, strategy)
    log(f"{len(train_ex)} training examples, {steps} steps/epoch x {config.train.epochs} epochs; "
        f"{count_params(model):,} parameters; {strategy.num_replicas_in_sync} replica(s); "
        f"TensorBoard: tensorboard --logdir {w['logs']}")

    callbacks = [EpochTimer(), AtomicModelCheckpoint(w["checkpoints"])]
    if val_json:
        callbacks.append(_answer_accuracy(val_json, val_image_root or image_root, tokenizer, d))
    n_samples = config.train.num_samples_to_log
    if n_samples:
        sample_records = (val_records or train_records)[:n_samples]
        if is_shard_source(data_json):
            sample_records = extract_images(data_json, [dict(r) for r in sample_records],
                                            os.path.join(w["logs"], "sample_images"))
        callbacks.append(SampleAnswers(sample_records, tokenizer, d.image_size,
                                       os.path.join(w["logs"], "samples")))
        if config.train.relevance_maps:
            callbacks.append(RelevanceMaps(sample_records[: config.train.relevance_maps],
                                           tokenizer, d.image_size,
                                           os.path.join(w["logs"], "relevance")))
    callbacks.append(keras.callbacks.TensorBoard(w["logs"], update_freq=50))
    with strategy.scope():
        history = resumable_fit(
            model, train_ds, p["state"], epochs=config.train.epochs, steps_per_epoch=steps,
            callbacks=callbacks, validation_data=val_ds, save_dir=w["state"], log=log,
            every_steps=config.train.checkpoint_every_steps, make_train_ds=lambda: datasets()[0],
        )
    model.save(w["model"])

    summary = {
        "examples": len(train_ex),
        "skipped_records": report.n_invalid,
        "steps": total_steps,
        "parameters": {
            "total": count_params(model),
            "image_encoder": count_params(model.image_encoder),
            "projector": count_params(model.projector),
            "decoder": count_params(model.decoder),
        },
        "seconds": round(time.perf_counter() - start, 1),
        "history": history,
        "config": to_dict(config),
    }
    with open(w["summary"], "w") as f:
        json.dump(summary, f, indent=2)
    discard(out_w, out)
    return summary
