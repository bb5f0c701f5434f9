"""Stage 1 of the two-stage recipe (LLaVA): align the connector on captions before the main run.

``train()`` runs it when ``train.stage1.epochs > 0``, on the same model, before the main run
(stage 2, instruction tuning, policy ``train.policy``). Stage 1 trains with its own policy
(default: only the projector, and a fusion with weights; encoder and decoder frozen), its own
learning rate and warmup, and only the records whose category is in
``train.stage1.categories`` (default ``caption,description``; ``""`` = all records, e.g. for
LLaVA data without categories). It writes into the run folder:

    RUN/stage1/checkpoints/epoch_XXX.keras   RUN/stage1/logs/   RUN/stage1/model.keras

and its history goes into ``train_summary.json`` under ``stages.stage1``. It trains through the
same ``resumable_fit`` as the main run (atomic step checkpoints in ``RUN/stage1/state/``, every
``train.checkpoint_every_steps`` steps too), so a run killed during stage 1 resumes inside it; a
finished stage 1 (``stage1/model.keras``, written atomically: a kill while writing it leaves no
partial file there) is loaded instead of being trained again.

Example:
    >>> cfg = apply_overrides(load_experiment("default"), ["train.stage1.epochs=2"])
    >>> train(cfg, "data/shapes/train.json", "data/shapes", "runs/two_stage")
"""

import dataclasses
import json
import os
import time

from vit_tf.config import ConfigError
from vit_tf.training.callbacks import EpochTimer
from vit_tf.training.checkpointing import AtomicModelCheckpoint, atomic_save, resumable_fit
from vit_tf.training.fingerprint import config_fingerprint, newest_state_file
from vit_tf.training.nan_guard import NanGuard
from vit_tf.training.optim import compile_model, epoch_steps, steps_per_call
from vit_tf.training.policy import apply_policy, resolve_policy, trainable_counts
from vit_tf.training.progress import ProgressLog
from vit_tf.training.telemetry import TensorBoard, whole_calls


def stage_paths(out):
    root = os.path.join(out, "stage1")
    return {"root": root, "checkpoints": os.path.join(root, "checkpoints"),
            "logs": os.path.join(root, "logs"), "state": os.path.join(root, "state"),
            "model": os.path.join(root, "model.keras")}


def stage1_records(records, categories):
    """The records stage 1 trains on: those whose ``category`` is listed (all when ``""``)."""
    wanted = {c.strip() for c in categories.split(",") if c.strip()}
    if not wanted:
        return list(records)
    chosen = [r for r in records if r.get("category") in wanted]
    if not chosen:
        present = sorted({str(r.get("category")) for r in records})
        raise ConfigError(
            f"train.stage1.categories={categories!r}: no training record has one of these "
            f"categories (present: {', '.join(present)}); set train.stage1.categories= (empty) "
            "to align on all records"
        )
    return chosen


def run_stage1(model, config, records, make_dataset, out, log=print, read_dir=None,
               fingerprint=None):
    """Train stage 1 on ``model`` in place; returns its summary dict.

    ``make_dataset(records) -> (number of examples, repeated training dataset)``: the caller's
    pipeline (in-memory or shards), so stage 1 batches exactly like the main run. ``read_dir``:
    where a resume reads the stage's state (default ``out``; a non-chief worker writes to a
    temporary ``out`` but resumes from the chief's folder). ``fingerprint(records) -> dict``
    (``TrainingData.fingerprint``): the stage's data digest, saved with its checkpoints with
    the config; a resume on other data or another config is refused.
    """
    s, d = config.train.stage1, config.data
    p = stage_paths(out)
    if any(getattr(s.policy, part) == "lora" for part in ("image_encoder", "projector", "decoder",
                                                           "fusion")):
        raise ConfigError("train.stage1.policy: 'lora' is for the main run (train.policy) only")
    policy = resolve_policy(s.policy, config.model)
    multipliers = apply_policy(model, policy, config.train.lora, where="train.stage1.policy")
    done = stage_paths(read_dir or out)
    if os.path.exists(done["model"]):  # finished before an interruption of the main run
        model.load_weights(done["model"])
        log(f"stage 1: loaded the finished stage from {done['model']}")
        state_file = newest_state_file(done["state"])   # its history, for train_summary.json
        history = {}
        if state_file:
            with open(state_file) as f:
                history = json.load(f)["history"]
        return {"resumed_from": done["model"], "history": history}
    chosen = stage1_records(records, s.categories)
    n_examples, dataset = make_dataset(chosen)
    steps = epoch_steps(s.steps_per_epoch, n_examples, d.batch_size,
                        config.train.steps_per_execution)
    stage_train = dataclasses.replace(
        config.train, epochs=s.epochs, learning_rate=s.learning_rate, warmup_steps=s.warmup_steps,
        min_learning_rate=min(config.train.min_learning_rate, s.learning_rate))
    every = config.train.checkpoint_every_steps
    per_call = steps_per_call(config.train.steps_per_execution, steps, every)
    compile_model(model, stage_train, steps * s.epochs, lr_multipliers=multipliers,
                  steps_per_execution=per_call)
    counts = trainable_counts(model)
    log(f"stage 1 (alignment): {n_examples} examples ({s.categories or 'all categories'}), "
        f"{steps} steps/epoch x {s.epochs} epochs; trainable parameters {counts}")
    os.makedirs(p["checkpoints"], exist_ok=True)
    start = time.perf_counter()
    stage_fingerprint = None
    if fingerprint is not None:
        stage_fingerprint = {"config": config_fingerprint(config), "data": fingerprint(chosen)}
    history = resumable_fit(
        model, dataset, stage_paths(read_dir or out)["state"], epochs=s.epochs,
        steps_per_epoch=steps, save_dir=p["state"], log=log, every_steps=every,
        make_train_ds=lambda: make_dataset(chosen)[1], verbose=0, fingerprint=stage_fingerprint,
        callbacks=[
            NanGuard(p["checkpoints"], stage="stage 1", steps_per_epoch=steps),
            EpochTimer(),
            AtomicModelCheckpoint(p["checkpoints"]),
            TensorBoard(p["logs"], update_freq=whole_calls(50, per_call)),
            ProgressLog(s.epochs, steps, stage="stage 1 "),
        ],
    )
    atomic_save(model.save, p["model"])   # its presence means stage 1 is complete
    return {
        "examples": n_examples,
        "categories": s.categories,
        "steps": steps * s.epochs,
        "trainable_parameters": counts,
        "seconds": round(time.perf_counter() - start, 1),
        "history": history,
    }
