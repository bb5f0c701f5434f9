"""The contrastive stage (``vit-tf pretrain``): image-text pairs -> a CLIP / SigLIP dual encoder
whose image tower becomes an image-encoder preset for the VLM (``model.encoder.preset``).

Why its own command rather than a stage 0 inside ``vit-tf train``: the pretrained encoder is an
artefact that many VLM runs start from (as CLIP / SigLIP towers are for LLaVA, PaliGemma and
nanoVLM), with its own data (any captioned or question-only source), its own batch (in-batch
negatives want hundreds of pairs, the VLM wants 16 packed rows) and its own evaluation
(retrieval, zero-shot, linear probe: ``vit_tf.eval.contrastive``). A stage 0 would redo it for
every run and tie its folder to one run. For a budget comparison the pretraining seconds are
recorded (``pretrain_summary.json``) and added to the VLM's.

The run folder:

    OUT/metadata.json, dual_encoder.keras   the dual-encoder preset (DualEncoder.from_preset)
    OUT/image_encoder/                      the image tower: model.encoder.preset=OUT/image_encoder
    OUT/config.json                         the resolved ExperimentConfig (pretrain.* used)
    OUT/logs/                               TensorBoard: train/ (loss, logit_scale, logit_bias,
                                            val_* retrieval), similarity/ (matrix image, scalars)
    OUT/pretrain_summary.json               pairs, steps, seconds, history

The config: ``model.encoder`` and ``data.image_size`` (the image tower, as the VLM will use it),
``pretrain.*`` (text tower, loss, batch, schedule), ``train.strategy`` / ``train.devices`` /
``train.seed`` / ``train.jit_compile`` / ``train.clipnorm``. ``data.batch_size`` is not used:
``pretrain.batch_size`` is the global contrastive batch.

Example:
    >>> pretrain(load_experiment("contrastive_shapes"), "shapes/train.json", "shapes",
    ...          "runs/clip", val_data="shapes/test.json")
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from vit_tf.config import save_config, to_dict
from vit_tf.data.pairs import build_pairs, pair_dataset, tokenize_pairs
from vit_tf.data.sources.readers import read_data_argument
from vit_tf.data.tokenizer import train_tokenizer
from vit_tf.models.contrastive import build_dual_encoder
from vit_tf.training.callbacks import EpochTimer
from vit_tf.training.contrastive_callbacks import RetrievalMonitor, TimeBudget
from vit_tf.training.distribute import (defer_symbolic_build, discard, distributable,
                                         make_strategy, write_folder)
from vit_tf.training.optim import make_optimizer, steps_per_call
from vit_tf.training.telemetry import TensorBoard

NO_DECAY = ["bias", "gamma", "beta", "embeddings", "logit_scale", "probe"]


def _read(data, image_root, data_format, skip_invalid, log):
    source = read_data_argument(data_format, data, image_root, skip_invalid=skip_invalid)
    if source.skipped:
        log(f"{data}: skipped {source.skipped} invalid records ({source.report.summary()})")
    return source.records


def heldout(pairs, n):
    """Up to ``n`` pairs for the per-epoch retrieval, one per image (its first text)."""
    _, first = np.unique(pairs.image_index, return_index=True)
    keep = np.sort(first)[:n]
    return pairs.images[pairs.image_index[keep]], [pairs.texts[i] for i in keep], \
        pairs.image_index[keep]


def pretrain(config, data, image_root, out, *, data_format="llava", val_data=None,
             val_image_root=None, log=print):
    """Train the dual encoder of ``config`` on the pairs of ``data``; returns the summary."""
    p = config.pretrain
    if os.path.exists(os.path.join(out, "metadata.json")):
        raise FileExistsError(f"{out} already holds a pretrained dual encoder; choose another "
                              "--out")
    strategy = make_strategy(config.train)
    out_w = write_folder(out, strategy)
    os.makedirs(out_w, exist_ok=True)
    keras.utils.set_random_seed(config.train.seed)
    start = time.perf_counter()

    pairs = build_pairs(_read(data, image_root, data_format, config.data.skip_invalid, log),
                        p.texts, config.data.image_size)
    counts = {c or "(none)": pairs.categories.count(c) for c in sorted(set(pairs.categories))}
    log(f"{len(pairs)} image-text pairs over {len(pairs.images)} images ({counts})")
    if p.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"pretrain.batch_size={p.batch_size} (the global batch) must be a "
                         f"multiple of the {strategy.num_replicas_in_sync} replicas")
    if len(pairs) < p.batch_size:
        raise ValueError(f"{data}: {len(pairs)} pairs, fewer than pretrain.batch_size="
                         f"{p.batch_size}")
    tokenizer = train_tokenizer(sorted(set(pairs.texts)), p.text_vocabulary_size)
    token_ids = tokenize_pairs(tokenizer, pairs.texts, p.text_max_length)
    cut = int(np.sum(token_ids[:, -1] != 0))
    if cut:
        log(f"{cut} texts fill all pretrain.text_max_length={p.text_max_length} tokens "
            "(longer ones are cut)")
    val = None
    if val_data:
        val_pairs = build_pairs(_read(val_data, val_image_root or image_root, data_format,
                                      config.data.skip_invalid, log),
                                p.texts, config.data.image_size)
        val = heldout(val_pairs, p.eval_pairs)

    steps = p.steps_per_epoch or len(pairs) // p.batch_size
    per_call = steps_per_call(config.train.steps_per_execution, steps)
    stage = dataclasses.replace(config.train, learning_rate=p.learning_rate,
                                warmup_steps=p.warmup_steps, weight_decay=p.weight_decay,
                                min_learning_rate=min(config.train.min_learning_rate,
                                                      p.learning_rate))
    with strategy.scope():
        model = build_dual_encoder(config, tokenizer)
        optimizer = make_optimizer(stage, steps * p.epochs)
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
        model.compile(optimizer=optimizer, jit_compile=config.train.jit_compile,
                      steps_per_execution=per_call)
    defer_symbolic_build(model, strategy)
    save_config(config, os.path.join(out_w, "config.json"))
    log(f"dual encoder ({p.loss}): {model.count_params():,} parameters (image tower "
        f"{model.image_encoder.count_params():,}); {steps} steps/epoch x {p.epochs} epochs, "
        f"batch {p.batch_size} ({strategy.num_replicas_in_sync} replica(s)); TensorBoard: "
        f"tensorboard --logdir {os.path.join(out_w, 'logs')}")

    logs_dir = os.path.join(out_w, "logs")
    budget = TimeBudget(p.max_seconds)
    callbacks = [EpochTimer(), budget]
    if val is not None:
        callbacks.append(RetrievalMonitor(*val, log_dir=os.path.join(logs_dir, "similarity")))
    callbacks.append(TensorBoard(logs_dir, update_freq="epoch"))
    ds = distributable(pair_dataset(pairs, token_ids, p.batch_size, seed=config.train.seed),
                       strategy)
    fit_start = time.perf_counter()
    with strategy.scope():
        history = model.fit(ds, epochs=p.epochs, steps_per_epoch=steps, callbacks=callbacks,
                            verbose=2)
    fit_seconds = time.perf_counter() - fit_start
    history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    epochs_run = len(history.get("loss", []))
    info = {"pairs": len(pairs), "images": int(len(pairs.images)), "texts": p.texts,
            "data": os.path.abspath(data), "steps": steps * epochs_run, "epochs": epochs_run,
            "batch_size": p.batch_size, "fit_seconds": round(fit_seconds, 1)}
    model.save_to_preset(out_w, extra_metadata=info)
    summary = {**info, "seconds": round(time.perf_counter() - start, 1),
               "stopped_by_time_budget": epochs_run < p.epochs,
               "final": {k: v[-1] for k, v in history.items()}, "history": history,
               "config": to_dict(config)}
    with open(os.path.join(out_w, "pretrain_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    discard(out_w, out)
    return summary
