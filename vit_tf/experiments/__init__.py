"""Experiments: one Python file per experiment, each with ``get_config()`` -> ``ExperimentConfig``.

Each file's docstring gives the command that reproduces it and the result it reached;
``vit_tf/experiments/README.md`` holds the measured tables. Scripts that analyse runs
(``shapes_breakdown``) run as modules: ``python -m vit_tf.experiments.shapes_breakdown ...``.

The experiments sit above the library: ``vit_tf.commands`` (``--experiment NAME``) and scripts
load them by name with :func:`load_experiment`; nothing below (config, planning, training, ...)
imports them (checked by the import-linter contracts in ``pyproject.toml``).

Example:
    >>> from vit_tf.experiments import load_experiment
    >>> load_experiment("default").model.decoder.num_layers
    3
"""

import ast
import importlib
import os
import pkgutil

from vit_tf.config import ConfigError, ExperimentConfig


def known_experiments():
    """Names of the modules in this package that define a top-level ``get_config()``."""
    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg or info.name.startswith("_"):
            continue
        path = os.path.join(info.module_finder.path, f"{info.name}.py")
        try:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError):
            continue
        if any(isinstance(node, ast.FunctionDef) and node.name == "get_config"
               for node in tree.body):
            names.append(info.name)
    return sorted(names)


def load_experiment(name):
    """Import ``vit_tf/experiments/<name>.py`` and return its ``get_config()``.

    Raises ``ConfigError`` for an unknown name (listing the known ones), for a module without
    ``get_config()`` and for a ``get_config()`` that does not return an ``ExperimentConfig``.
    """
    module_name = f"{__name__}.{name}"
    try:
        if not name.isidentifier():
            raise ModuleNotFoundError(name=module_name)
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise ConfigError(f"unknown experiment {name!r}; known: "
                          f"{', '.join(known_experiments())}") from None
    where = f"vit_tf/experiments/{name}.py"
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"{where} has no get_config(), so it is not an experiment; known: "
                          f"{', '.join(known_experiments())}")
    config = module.get_config()
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"{where}: get_config() must return an ExperimentConfig, "
                          f"got {type(config).__name__}")
    return config
