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

from vit_tf.config import ConfigError, save_config, load_config, to_dict
from vit_tf.data.packing import pack_by_image
from vit_tf.data.pipeline import cached_image_bytes, encode_records, make_dataset, parse_widths
from vit_tf.data.prepare import prepare_records
from vit_tf.data.shards import is_shard_source
from vit_tf.data.shards_train import extract_images, prepare_shard_records, shard_training_data
from vit_tf.data.preset_tokenizer import tokenizer_for_config
from vit_tf.data.tokenizer import load_tokenizer, save_tokenizer, special_ids
from vit_tf.models.factory import build_model
from vit_tf.models.vlm import count_params
from vit_tf.training.callbacks import AnswerAccuracy, EpochTimer, SampleAnswers
from vit_tf.training.checkpointing import AtomicModelCheckpoint, resumable_fit
from vit_tf.training.distribute import (defer_symbolic_build, discard, distributable,
                                         make_strategy, write_folder)
from vit_tf.training.lora import merge_lora
from vit_tf.training.nan_guard import NanGuard
from vit_tf.training.optim import compile_model, epoch_steps, steps_per_call
from vit_tf.training.policy import apply_policy, resolve_policy, trainable_counts
from vit_tf.training.precision import precision_policy
from vit_tf.training.relevance_callback import RelevanceMaps
from vit_tf.training.telemetry import (parse_profile_steps, telemetry_callbacks,
                                       validation_accuracy, whole_calls)
from vit_tf.training.run_dir import paths
from vit_tf.training.stages import run_stage1


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
    widths = parse_widths(d.pad_widths, int(np.max(train_ex.lengths, initial=1)))
    train_ds = make_dataset(train_ex, d.image_size, d.batch_size, shuffle=True, seed=seed,
                            repeat=True, drop_remainder=True, cache_images=cache, widths=widths)
    val_ds = None
    if val_records:
        val_ds = make_dataset(encode_records(val_records, tokenizer, d.max_text_length),
                              d.image_size, d.batch_size)
    return train_ds, val_ds


def _stage_data(data_json, tokenizer, d, seed, log, records):
    """(examples, repeated training dataset) of ``records``: the main run's pipeline."""
    if is_shard_source(data_json):
        return len(records), shard_training_data(data_json, tokenizer, d, records, [], seed)[0]
    examples = encode_records(records, tokenizer, d.max_text_length)
    return len(examples), _in_memory_data(examples, [], tokenizer, d, seed, log)[0]


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
    # A keras-hub LM decoder or BERT text embedding brings its preset's tokenizer; else None:
    # prepare() trains our WordPiece on the data.
    tokenizer = load_tokenizer(p["tokenizer"]) if resume else tokenizer_for_config(config)
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
        if d.pack_by_image:
            raise ConfigError(f"{data_json}: data.pack_by_image needs a LLaVA JSON source, not "
                              "TFRecord shards")
        train_ex = train_records
        build = partial(shard_training_data, data_json, tokenizer, d, train_records,
                        val_records, config.train.seed)
    else:
        train_ex = encode_records(train_records, tokenizer, d.max_text_length)
        if d.pack_by_image:  # one row per image, examples walled off (vit_tf.data.packing)
            n = len(train_ex)
            train_ex = pack_by_image(train_ex, d.pack_length, config.train.seed)
            log(f"packed {n} examples into {len(train_ex)} rows by image (data.pack_by_image)")
        build = partial(_in_memory_data, train_ex, val_records, tokenizer, d, config.train.seed,
                        log)
    datasets = lambda: [distributable(ds, strategy) for ds in build()]  # noqa: E731
    train_ds, val_ds = datasets()
    steps = epoch_steps(config.train.steps_per_epoch, len(train_ex), d.batch_size,
                        config.train.steps_per_execution)
    total_steps = steps * config.train.epochs
    profiling = bool(parse_profile_steps(config.train.profile_steps))
    per_call = steps_per_call(config.train.steps_per_execution, steps,
                              config.train.checkpoint_every_steps, profile=profiling)
    if per_call != config.train.steps_per_execution:
        log(f"train.steps_per_execution={config.train.steps_per_execution} runs as {per_call}: "
            + ("1 while profiling" if profiling else
               f"the largest that divides the {steps} steps per epoch"
               + (f" and train.checkpoint_every_steps={config.train.checkpoint_every_steps}"
                  if config.train.checkpoint_every_steps else "")))

    if d.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"data.batch_size={d.batch_size} (the global batch) must be a multiple of "
                         f"the {strategy.num_replicas_in_sync} replicas of train.strategy")
    # Layers take their dtype policy when built; variables are placed by the strategy.
    with strategy.scope(), precision_policy(config.train.precision):
        model = build_model(config, tokenizer.vocabulary_size(),
                            special_token_ids=special_ids(tokenizer))
    stage1 = None
    if config.train.stage1.epochs:
        with strategy.scope():
            stage1 = run_stage1(model, config, train_records,
                                partial(_stage_data, data_json, tokenizer, d, config.train.seed,
                                        log), out_w, log)
    with strategy.scope():
        multipliers = apply_policy(model, resolve_policy(config.train.policy, config.model),
                                   config.train.lora)
        compile_model(model, config.train, total_steps, lr_multipliers=multipliers,
                      steps_per_execution=per_call)
    defer_symbolic_build(model, strategy)
    trainable = trainable_counts(model)
    log(f"{len(train_ex)} training examples, {steps} steps/epoch x {config.train.epochs} epochs; "
        f"{count_params(model):,} parameters (trainable per part: {trainable}); "
        f"{strategy.num_replicas_in_sync} replica(s); TensorBoard: tensorboard --logdir {w['logs']}")

    callbacks = [NanGuard(w["checkpoints"]), EpochTimer(), AtomicModelCheckpoint(w["checkpoints"])]
    if val_json:
        callbacks.append(_answer_accuracy(val_json, val_image_root or image_root, tokenizer, d))
    elif val_records:  # the data.validation_fraction slice
        callbacks.append(validation_accuracy(val_records, tokenizer, d, data_json, w["logs"]))
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
    callbacks += telemetry_callbacks(config, w["logs"], update_freq=whole_calls(50, per_call))
    with strategy.scope():
        history = resumable_fit(
            model, train_ds, p["state"], epochs=config.train.epochs, steps_per_epoch=steps,
            callbacks=callbacks, validation_data=val_ds, save_dir=w["state"], log=log,
            every_steps=config.train.checkpoint_every_steps, make_train_ds=lambda: datasets()[0],
        )
    model = merge_lora(model)  # LoRA factors folded into the kernels: a plain model
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
        "trainable_parameters": trainable,
        "seconds": round(time.perf_counter() - start, 1),
        "history": history,
        "config": to_dict(config),
    }
    if stage1 is not None:
        summary["stages"] = {"stage1": stage1}
    with open(w["summary"], "w") as f:
        json.dump(summary, f, indent=2)
    discard(out_w, out)
    return summary
