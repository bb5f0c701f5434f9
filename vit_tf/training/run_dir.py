"""The run folder: what a training run writes, and how to load a trained model back.

    RUN/config.json          resolved ExperimentConfig
    RUN/tokenizer/           WordPiece vocabulary
    RUN/data_report.txt      the validation report of the training data
    RUN/logs/                TensorBoard (train/, validation/, samples/)
    RUN/checkpoints/         epoch_XXX.keras, one per epoch (written atomically)
    RUN/state/               training-state checkpoints for --resume (training/checkpointing.py)
    RUN/model.keras          the final model
    RUN/train_summary.json   timings, steps, parameter counts, final metrics
"""

import os

import keras

from vit_tf.config import load_config
from vit_tf.data.tokenizer import load_tokenizer


def paths(run):
    return {
        "config": os.path.join(run, "config.json"),
        "tokenizer": os.path.join(run, "tokenizer"),
        "report": os.path.join(run, "data_report.txt"),
        "logs": os.path.join(run, "logs"),
        "checkpoints": os.path.join(run, "checkpoints"),
        "state": os.path.join(run, "state"),
        "model": os.path.join(run, "model.keras"),
        "summary": os.path.join(run, "train_summary.json"),
    }


def latest_model_file(run):
    """The final model, else the newest epoch checkpoint."""
    p = paths(run)
    if os.path.exists(p["model"]):
        return p["model"]
    if os.path.isdir(p["checkpoints"]):
        ckpts = sorted(f for f in os.listdir(p["checkpoints"]) if f.endswith(".keras"))
        if ckpts:
            return os.path.join(p["checkpoints"], ckpts[-1])
    raise FileNotFoundError(f"{run}: no model.keras and no checkpoint (has this run trained?)")


def load_run(run):
    """-> (model, tokenizer, config) of a run folder."""
    if not os.path.isdir(run):
        raise FileNotFoundError(f"{run}: no such run folder")
    p = paths(run)
    config = load_config(p["config"])
    tokenizer = load_tokenizer(p["tokenizer"])
    import vit_tf.models.factory  # noqa: F401  (registers the model's layers for deserialization)
    import vit_tf.training.optim  # noqa: F401  (registers PartAdamW, the per-part lr optimizer)

    model = keras.saving.load_model(latest_model_file(run))
    return model, tokenizer, config
