"""``.keras`` save/load: any model built in Python becomes a run folder the CLI can use.

``save_run`` writes the three files ``load_run`` reads (``config.json``, ``tokenizer/``,
``model.keras``), so a model from a notebook can go to ``vit-tf generate / chat / explain /
export``. The SavedModel export (``vit_tf.export.saved_model``) reads the same ``model.keras``,
and tests/export/test_saved_model.py pins that both give the same answers.

Example:
    >>> save_run("runs/notebook", model, tokenizer, config)
    >>> model, tokenizer, config = load_run("runs/notebook")
"""

import os

from vit_tf.config import save_config
from vit_tf.data.tokenizer import save_tokenizer
from vit_tf.training.run_dir import load_run, paths

__all__ = ["save_run", "load_run"]


def save_run(run, model, tokenizer, config):
    """Write ``run/config.json``, ``run/tokenizer/`` and ``run/model.keras``; returns ``run``."""
    p = paths(run)
    if os.path.exists(p["model"]):
        raise FileExistsError(f"{p['model']} already exists; choose another run folder")
    os.makedirs(run, exist_ok=True)
    save_config(config, p["config"])
    save_tokenizer(tokenizer, p["tokenizer"])
    model.save(p["model"])
    return run
