"""What a training stage trained on, and the refusal to resume it on anything else.

``resumable_fit(..., fingerprint=...)`` stores a JSON-able dict in every checkpoint's
``state.json``; ``train()`` passes the stage's resolved config (``data``, ``model``, ``train``
sections) and ``TrainingData.fingerprint`` (record count, SHA-256 of the records' text and of
their image bytes). A resume whose fingerprint differs raises ``ResumeMismatchError`` listing
every changed entry, e.g.::

    RUN/state: refusing to resume: ... data.text: "3f2a..." -> "9b1c..."; train.learning_rate:
    0.001 -> 0.002

Example:
    >>> fingerprint_changes({"train": {"epochs": 3}}, {"train": {"epochs": 4}})
    ['train.epochs: 3 -> 4']
"""

import json
import os


def config_fingerprint(config):
    """The sections of an ``ExperimentConfig`` that decide what is trained: data, model, train
    (``generate.*`` only sets decoding defaults)."""
    from vit_tf.config import to_dict

    resolved = to_dict(config)
    return {key: resolved[key] for key in ("data", "model", "train")}


class ResumeMismatchError(ValueError):
    """A resume on other data or another config than the checkpoint was written with."""


def newest_state_file(state_dir):
    """``state_dir/step_N/state.json`` of the newest complete checkpoint, or None."""
    if not os.path.isdir(state_dir):
        return None
    steps = sorted(int(n[5:]) for n in os.listdir(state_dir)
                   if n.startswith("step_") and n[5:].isdigit())
    return os.path.join(state_dir, f"step_{steps[-1]:06d}", "state.json") if steps else None


def _flat(value, prefix=""):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 24 else text[:12] + "..." + text[-8:]


def fingerprint_changes(saved, current):
    """Human-readable differences between two fingerprints (nested dicts), [] when equal."""
    old, new = _flat(json.loads(json.dumps(saved))), _flat(json.loads(json.dumps(current)))
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            changes.append(f"{key}: new ({_short(new[key])})")
        elif key not in new:
            changes.append(f"{key}: gone (was {_short(old[key])})")
        elif old[key] != new[key]:
            changes.append(f"{key}: {_short(old[key])} -> {_short(new[key])}")
    return changes


def check_fingerprint(state_dir, fingerprint, state=None, log=print):
    """Refuse to resume ``state_dir`` with another ``fingerprint`` than its newest checkpoint's
    (``ResumeMismatchError`` listing each changed entry). ``state``: that checkpoint's
    state.json (default: read it). No ``fingerprint``, or a checkpoint written before
    fingerprints were recorded: nothing to compare (the latter is logged)."""
    if fingerprint is None:
        return
    if state is None:
        steps = newest_state_file(state_dir)
        if steps is None:
            return
        try:
            with open(steps) as f:
                state = json.load(f)
        except (OSError, ValueError):
            return   # load_state reports it and falls back to an older checkpoint
    saved = state.get("fingerprint")
    if saved is None:
        log(f"{state_dir}: the checkpoint records no fingerprint (written by an older vit_tf); "
            "its data and config cannot be checked against this run's")
        return
    changes = fingerprint_changes(saved, fingerprint)
    if changes:
        raise ResumeMismatchError(
            f"{state_dir}: refusing to resume: the checkpoint was written with other inputs "
            f"than this run's ({len(changes)} change(s)): " + "; ".join(changes[:12])
            + ("; ..." if len(changes) > 12 else "")
            + ". Resume with the data and config of the first run, or start a new run "
            "(another --out).")


