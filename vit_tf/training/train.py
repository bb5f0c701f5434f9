"""``train``: LLaVA JSON + image root (or a TFRecord shard folder) + config -> a trained run.

It reads as its parts: the data (``vit_tf.data.training_data``: records -> preprocessor and
tf.data), the task (``vit_tf.models.factory.build_task``), optional stage 1, then
``resumable_fit``; the run folder ends as a preset (``vit_tf.runs``).

Example:
    >>> from vit_tf.experiments import load_experiment
    >>> train(load_experiment("default"), "shapes/train.json", "shapes", "runs/default")
"""

import json
import os
import time

import keras

from vit_tf.config import load_config, save_config, to_dict
from vit_tf.data.preprocessor import VisionLanguagePreprocessor
from vit_tf.data.training_data import prepare_training_data
from vit_tf.models.factory import build_task
from vit_tf.models.vlm import count_params
from vit_tf.runs import RunLock, is_finished, paths
from vit_tf.training.callbacks import AnswerAccuracy, EpochTimer, SampleAnswers
from vit_tf.training.checkpointing import (AtomicModelCheckpoint, CheckpointWriteError,
                                           resumable_fit)
from vit_tf.training.distribute import (defer_symbolic_build, discard, distributable,
                                         make_strategy, write_folder)
from vit_tf.training.fingerprint import check_fingerprint, config_fingerprint
from vit_tf.training.lora import merge_lora
from vit_tf.training.nan_guard import NanGuard
from vit_tf.training.optim import compile_model, epoch_steps, steps_per_call
from vit_tf.training.policy import apply_policy, resolve_policy, trainable_counts
from vit_tf.training.precision import precision_policy
from vit_tf.training.progress import ProgressLog
from vit_tf.training.relevance_callback import RelevanceMaps
from vit_tf.training.stages import run_stage1
from vit_tf.training.telemetry import (parse_profile_steps, telemetry_callbacks,
                                       validation_accuracy, whole_calls)


def _answer_accuracy(val_json, image_root, preprocessor, d):
    from vit_tf.data.pipeline import encode_records
    from vit_tf.data.prepare import prepare_records

    records, _, _ = prepare_records(val_json, image_root, max_text_length=d.max_text_length,
                                    preprocessor=preprocessor, skip_invalid=d.skip_invalid)
    examples = encode_records(records, preprocessor, d.max_text_length)
    categories = [r.get("category") or "all" for r in records]
    return AnswerAccuracy(examples, categories, d.image_size)


def _steps(config, data, log):
    """(steps per epoch, steps per compiled call), with a note when the call size is lowered."""
    t = config.train
    steps = epoch_steps(t.steps_per_epoch, data.num_examples, config.data.batch_size,
                        t.steps_per_execution)
    profiling = bool(parse_profile_steps(t.profile_steps))
    per_call = steps_per_call(t.steps_per_execution, steps, t.checkpoint_every_steps,
                              profile=profiling)
    if per_call != t.steps_per_execution:
        log(f"train.steps_per_execution={t.steps_per_execution} runs as {per_call}: "
            + ("1 while profiling" if profiling else
               f"the largest that divides the {steps} steps per epoch"
               + (f" and train.checkpoint_every_steps={t.checkpoint_every_steps}"
                  if t.checkpoint_every_steps else "")))
    return steps, per_call


def _callbacks(config, data, model, w, val_json, val_image_root, image_root, steps, per_call):
    """Checkpoints, NaN guard, validation, samples, relevance maps, telemetry and progress."""
    d = config.data
    callbacks = [NanGuard(w["checkpoints"], steps_per_epoch=steps), EpochTimer(),
                 AtomicModelCheckpoint(w["checkpoints"])]
    if val_json:
        callbacks.append(_answer_accuracy(val_json, val_image_root or image_root,
                                          data.preprocessor, d))
    elif data.val_records:  # the data.validation_fraction slice
        records = data.with_images(data.val_records, os.path.join(w["logs"], "validation_images"))
        callbacks.append(validation_accuracy(records, data.preprocessor, d))
    n_samples = config.train.num_samples_to_log
    if n_samples:
        samples = data.with_images((data.val_records or data.train_records)[:n_samples],
                                   os.path.join(w["logs"], "sample_images"))
        callbacks.append(SampleAnswers(samples, os.path.join(w["logs"], "samples")))
        if config.train.relevance_maps:
            callbacks.append(RelevanceMaps(samples[: config.train.relevance_maps],
                                           os.path.join(w["logs"], "relevance")))
    return (callbacks + telemetry_callbacks(config, w["logs"],
                                            update_freq=whole_calls(50, per_call))
            + [ProgressLog(config.train.epochs, steps)])


def train(config, data_json, image_root, out, resume=False, log=print, val_json=None,
          val_image_root=None):
    """Train a model; returns the run's summary dict. ``resume`` continues an interrupted run
    exactly where its last checkpoint left it (``vit_tf.training.checkpointing``).

    Under ``train.strategy=multi_worker`` only the chief writes ``out``; the other workers
    write to a temporary folder, deleted at the end (``vit_tf.training.distribute``).
    The folder is locked while training (``vit_tf.runs.RunLock``): a second process writing
    the same ``out`` is refused. A resume on other data or another config than the
    checkpoint's is refused too (``vit_tf.training.fingerprint``).

    ``val_json`` (LLaVA JSON, images under ``val_image_root`` or ``image_root``): held-out
    records whose per-category answer accuracy is logged each epoch (``AnswerAccuracy``).
    """
    p = paths(out)
    if resume:
        if not os.path.exists(p["config"]):
            raise FileNotFoundError(f"{out}: nothing to resume (no config.json)")
        if is_finished(out):
            raise FileExistsError(f"{out} has finished training (its preset metadata.json "
                                  "exists); nothing to resume")
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
    with RunLock(out_w):
        return _train(config, data_json, image_root, out, out_w, strategy, resume, log,
                      val_json, val_image_root)


def _train(config, data_json, image_root, out, out_w, strategy, resume, log, val_json,
           val_image_root):
    p, w = paths(out), paths(out_w)
    keras.utils.set_random_seed(config.train.seed)
    start = time.perf_counter()

    # The data: validated records, the preprocessor (reused on resume) and the datasets.
    data = prepare_training_data(
        config, data_json, image_root, log=log,
        preprocessor=VisionLanguagePreprocessor.from_preset(out) if resume else None)
    with open(w["report"], "w") as f:
        f.write(data.report.format() + "\n")
    if not data.report.ok:
        log(f"skipped {data.report.n_invalid} of {data.report.n_records} records "
            f"({data.report.summary()}); details in {w['report']}")
    fingerprint = {"config": config_fingerprint(config), "data": data.fingerprint()}
    if resume:   # refused here, before anything is built, when the data or config changed
        check_fingerprint(p["state"], fingerprint, log=log)
    else:
        save_config(config, w["config"])
        data.preprocessor.save_to_preset(out_w)
    steps, per_call = _steps(config, data, log)
    total_steps = steps * config.train.epochs
    if config.data.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"data.batch_size={config.data.batch_size} (the global batch) must be a "
                         f"multiple of the {strategy.num_replicas_in_sync} replicas of "
                         "train.strategy")

    # The task. Layers take their dtype policy when built; variables are placed by the strategy.
    with strategy.scope(), precision_policy(config.train.precision):
        model = build_task(config, data.preprocessor)
    stage1 = None
    if config.train.stage1.epochs:
        with strategy.scope():
            stage1 = run_stage1(model, config, data.train_records,
                                lambda records: data.train_dataset(records), out_w, log,
                                read_dir=out, fingerprint=data.fingerprint)
    with strategy.scope():
        multipliers = apply_policy(model, resolve_policy(config.train.policy, config.model),
                                   config.train.lora)
        compile_model(model, config.train, total_steps, lr_multipliers=multipliers,
                      steps_per_execution=per_call)
    defer_symbolic_build(model, strategy)
    trainable = trainable_counts(model)
    log(f"{data.num_examples} training examples, {steps} steps/epoch x {config.train.epochs} "
        f"epochs; {count_params(model):,} parameters (trainable per part: {trainable}); "
        f"{strategy.num_replicas_in_sync} replica(s); TensorBoard: tensorboard --logdir {w['logs']}")

    datasets = lambda: (distributable(data.train_dataset()[1], strategy),  # noqa: E731
                        distributable(data.validation_dataset(), strategy))
    train_ds, val_ds = datasets()
    callbacks = _callbacks(config, data, model, w, val_json, val_image_root, image_root, steps,
                           per_call)
    with strategy.scope():
        history = resumable_fit(
            model, train_ds, p["state"], epochs=config.train.epochs, steps_per_epoch=steps,
            callbacks=callbacks, validation_data=val_ds, save_dir=w["state"], log=log,
            every_steps=config.train.checkpoint_every_steps, make_train_ds=lambda: datasets()[0],
            verbose=0, fingerprint=fingerprint,
        )
    model = merge_lora(model)  # LoRA factors folded into the kernels: a plain model
    try:
        model.save_to_preset(out_w, generate_config=config.generate,
                             extra_metadata={"experiment": config.name})
    except OSError as e:   # disk full...: the preset's metadata.json (written last) is absent
        raise CheckpointWriteError(
            f"{out_w}: could not write the preset ({e}); training is complete and its last "
            f"checkpoint in {w['state']} is intact: free space and run with --resume to write "
            "the preset") from e

    summary = {
        "examples": data.num_examples,
        "skipped_records": data.report.n_invalid,
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
