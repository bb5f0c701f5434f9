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
    OUT/vocabulary.json                     the text tower's WordPiece vocabulary (written at
                                            the start; a resume reuses it)
    OUT/fingerprint.json                    what is trained on: the config and a digest of the
                                            pairs (a resume on other data is refused)
    OUT/state/step_N/                       training-state checkpoints (``resumable_fit``)

Exact resume: training goes through ``vit_tf.training.checkpointing.resumable_fit`` as the VLM's
stages do: a state checkpoint (weights, optimizer moments and step, history, running metrics) at
every epoch end and every ``train.checkpoint_every_steps`` steps, written atomically into
``OUT/state``; ``pretrain(..., resume=True)`` (``vit-tf pretrain --out OUT --resume``) continues
from the newest complete one with the saved config and vocabulary, reading the deterministic
pair stream past the batches already trained on, so its per-epoch losses are those of an
uninterrupted run. With ``pretrain.max_seconds`` the seconds of the epochs finished before the
interruption count against the budget (the lost part of an interrupted epoch does not).

The config: ``model.encoder`` and ``data.image_size`` (the image tower, as the VLM will use it),
``pretrain.*`` (text tower, loss, batch, schedule), ``train.strategy`` / ``train.devices`` /
``train.seed`` / ``train.jit_compile`` / ``train.clipnorm``. ``data.batch_size`` is not used:
``pretrain.batch_size`` is the global contrastive batch.

Example:
    >>> pretrain(load_experiment("contrastive_shapes"), "shapes/train.json", "shapes",
    ...          "runs/clip", val_data="shapes/test.json")
"""

import dataclasses
import hashlib
import json
import os
import time

import keras
import numpy as np

from vit_tf.config import load_config, to_dict
from vit_tf.data.pairs import build_pairs, pair_dataset, tokenize_pairs
from vit_tf.data.sources.readers import read_data_argument
from vit_tf.data.tokenizer import make_tokenizer, train_tokenizer
from vit_tf.models.contrastive import build_dual_encoder
from vit_tf.runs import RunLock
from vit_tf.training.callbacks import EpochTimer
from vit_tf.training.checkpointing import STATE_FILE, resumable_fit
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


VOCABULARY_FILE = "vocabulary.json"
FINGERPRINT_FILE = "fingerprint.json"


def pairs_fingerprint(pairs):
    """What a pair set trains on: its counts and the SHA-256 of its texts (in order) and of its
    decoded pixels with each pair's image."""
    images = hashlib.sha256(np.ascontiguousarray(pairs.images).tobytes())
    images.update(np.asarray(pairs.image_index, np.int32).tobytes())
    return {"pairs": len(pairs), "images": int(len(pairs.images)),
            "texts_sha256": hashlib.sha256("\n".join(pairs.texts).encode()).hexdigest(),
            "images_sha256": images.hexdigest()}


def _flat(value, prefix=""):
    if not isinstance(value, dict):
        return {prefix: value}
    return {k: v for key, item in value.items()
            for k, v in _flat(item, f"{prefix}.{key}" if prefix else key).items()}


def check_fingerprint(path, fingerprint):
    """Refuse (``ValueError`` listing each changed entry) to resume a run whose
    ``fingerprint.json`` differs from this run's ``fingerprint``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing; the run cannot be checked against this one's "
                                "data (start a new run with another --out)")
    with open(path) as f:
        old = _flat(json.load(f))
    new = _flat(json.loads(json.dumps(fingerprint)))
    changes = [f"{k}: {json.dumps(old.get(k))[:24]} -> {json.dumps(new.get(k))[:24]}"
               for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if changes:
        raise ValueError(f"{os.path.dirname(path)}: refusing to resume: the run was started with "
                         f"other data or config ({len(changes)} change(s): "
                         f"{'; '.join(changes[:8])}). Resume with the first run's --data, "
                         "--image-root and --val-data, or start a new run (another --out).")


def _write_atomic(path, text):
    """``text`` into ``path`` through a temporary file and one rename (never half-written)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def _newest_state(state_dir):
    """The newest readable ``state.json`` under ``state_dir``, or None (no model is touched:
    ``resumable_fit`` restores the checkpoint itself)."""
    names = sorted(n for n in os.listdir(state_dir) if n.startswith("step_")
                   and n[5:].isdigit()) if os.path.isdir(state_dir) else []
    for name in reversed(names):
        try:
            with open(os.path.join(state_dir, name, STATE_FILE)) as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    return None


def pretrain(config, data, image_root, out, *, data_format="llava", val_data=None,
             val_image_root=None, resume=False, log=print):
    """Train the dual encoder of ``config`` on the pairs of ``data``; returns the summary.

    ``resume``: continue the interrupted run in ``out`` from its newest checkpoint, with its
    saved config (``config`` is ignored) and vocabulary, on the same data (checked against
    ``fingerprint.json``)."""
    config_path = os.path.join(out, "config.json")
    if os.path.exists(os.path.join(out, "metadata.json")):
        raise FileExistsError(f"{out} already holds a pretrained dual encoder (metadata.json); "
                              + ("nothing to resume" if resume else "choose another --out"))
    if resume:
        for name in ("config.json", VOCABULARY_FILE, FINGERPRINT_FILE):
            if not os.path.isfile(os.path.join(out, name)):
                raise FileNotFoundError(f"{out}: nothing to resume (no {name}; vit-tf pretrain "
                                        "writes it when it starts)")
        config = load_config(config_path)
    elif os.path.exists(config_path):
        raise FileExistsError(f"{out} already holds a pretraining run; pass --resume to continue "
                              "it or choose another --out")
    p = config.pretrain
    strategy = make_strategy(config.train)
    out_w = write_folder(out, strategy)
    os.makedirs(out_w, exist_ok=True)
    with RunLock(out_w):   # a second pretrain into the same folder is refused
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
        val, val_fingerprint = None, None
        if val_data:
            val_pairs = build_pairs(_read(val_data, val_image_root or image_root, data_format,
                                          config.data.skip_invalid, log),
                                    p.texts, config.data.image_size)
            val = heldout(val_pairs, p.eval_pairs)
            val_fingerprint = pairs_fingerprint(val_pairs)
        fingerprint = {"config": {k: v for k, v in to_dict(config).items() if k != "name"},
                       "data": pairs_fingerprint(pairs), "val_data": val_fingerprint}
        if resume:   # refused before any work; then the first run's vocabulary
            check_fingerprint(os.path.join(out, FINGERPRINT_FILE), fingerprint)
            with open(os.path.join(out, VOCABULARY_FILE)) as f:
                tokenizer = make_tokenizer(json.load(f))
        else:
            tokenizer = train_tokenizer(sorted(set(pairs.texts)), p.text_vocabulary_size)
        token_ids = tokenize_pairs(tokenizer, pairs.texts, p.text_max_length)
        cut = int(np.sum(token_ids[:, -1] != 0))
        if cut:
            log(f"{cut} texts fill all pretrain.text_max_length={p.text_max_length} tokens "
                "(longer ones are cut)")

        steps = p.steps_per_epoch or len(pairs) // p.batch_size
        per_call = steps_per_call(config.train.steps_per_execution, steps,
                                  config.train.checkpoint_every_steps)
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
            # Its variables now, not inside the first traced step (which TF then traces twice).
            optimizer.build(model.trainable_variables)
        defer_symbolic_build(model, strategy)
        if not resume:   # config.json last: it marks a run that --resume can continue
            _write_atomic(os.path.join(out_w, VOCABULARY_FILE),
                          json.dumps(tokenizer.get_vocabulary()))
            _write_atomic(os.path.join(out_w, FINGERPRINT_FILE), json.dumps(fingerprint, indent=1))
            _write_atomic(os.path.join(out_w, "config.json"), json.dumps(to_dict(config), indent=2))
        log(f"dual encoder ({p.loss}): {model.count_params():,} parameters (image tower "
            f"{model.image_encoder.count_params():,}); {steps} steps/epoch x {p.epochs} epochs, "
            f"batch {p.batch_size} ({strategy.num_replicas_in_sync} replica(s)); TensorBoard: "
            f"tensorboard --logdir {os.path.join(out_w, 'logs')}")

        logs_dir = os.path.join(out_w, "logs")
        state_dir = os.path.join(out, "state")
        done = _newest_state(state_dir) if resume else None
        budget = TimeBudget(p.max_seconds, spent=sum((done or {}).get("history", {})
                                                     .get("epoch_seconds", [])))
        callbacks = [EpochTimer(), budget]
        if val is not None:
            callbacks.append(RetrievalMonitor(*val, log_dir=os.path.join(logs_dir, "similarity")))
        callbacks.append(TensorBoard(logs_dir, update_freq="epoch"))

        def train_ds():   # a fresh, deterministic copy of the pair stream (resumable_fit skips in it)
            return distributable(pair_dataset(pairs, token_ids, p.batch_size,
                                              seed=config.train.seed), strategy)

        fit_start = time.perf_counter()
        with strategy.scope():
            history = resumable_fit(model, train_ds(), state_dir, epochs=p.epochs,
                                    steps_per_epoch=steps, callbacks=callbacks,
                                    every_steps=config.train.checkpoint_every_steps,
                                    save_dir=os.path.join(out_w, "state"), make_train_ds=train_ds,
                                    log=log)
        fit_seconds = time.perf_counter() - fit_start
        epochs_run = len(history.get("loss", []))
        info = {"pairs": len(pairs), "images": int(len(pairs.images)), "texts": p.texts,
                "data": os.path.abspath(data), "steps": steps * epochs_run, "epochs": epochs_run,
                "batch_size": p.batch_size, "fit_seconds": round(fit_seconds, 1)}
        summary = {**info, "seconds": round(time.perf_counter() - start, 1),
                   "resumed_at_step": done["global_step"] if done else None,
                   "stopped_by_time_budget": epochs_run < p.epochs,
                   "final": {k: v[-1] for k, v in history.items()}, "history": history,
                   "config": to_dict(config)}
        _write_atomic(os.path.join(out_w, "pretrain_summary.json"), json.dumps(summary, indent=2))
        model.save_to_preset(out_w, extra_metadata=info)   # its metadata.json marks the run done
        discard(out_w, out)
        return summary
