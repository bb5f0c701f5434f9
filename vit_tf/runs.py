"""Loading trained models: preset folders, run folders and ``.keras`` files (a neutral module).

Every command that uses a trained model (``generate``, ``chat``, ``eval``, ``explain``,
``export``) takes ``--model PATH`` and reaches it through ``load_task``. What a run folder
holds (``vit-tf train`` writes it; the preset files are those of
``VisionLanguageModel.save_to_preset``, so a run folder *is* a preset):

    RUN/metadata.json, task.json, task.weights.h5   the preset (written when training ends)
    RUN/preprocessor.json, RUN/assets/tokenizer/    the preprocessor (written when training
                                                    starts, so --resume finds it)
    RUN/config.json          resolved ExperimentConfig
    RUN/data_report.txt      the validation report of the training data
    RUN/logs/                TensorBoard (train/, validation/, samples/)
    RUN/checkpoints/         epoch_XXX.keras, one per epoch (written atomically)
    RUN/state/               training-state checkpoints for --resume (training/checkpointing.py)
    RUN/train_summary.json   timings, steps, parameter counts, final metrics

Example:
    >>> task = load_task("runs/default")          # or a preset folder, or a .keras file
    >>> task.generate("scene.png", "What colour is the circle?")
"""

import json
import os
import socket
import time

from vit_tf.config import GenerateConfig, from_dict, load_config


def paths(run):
    return {
        "config": os.path.join(run, "config.json"),
        "report": os.path.join(run, "data_report.txt"),
        "logs": os.path.join(run, "logs"),
        "checkpoints": os.path.join(run, "checkpoints"),
        "state": os.path.join(run, "state"),
        "preset": run,
        "metadata": os.path.join(run, "metadata.json"),
        "summary": os.path.join(run, "train_summary.json"),
    }


def is_finished(run):
    """The run has written its preset (training ended)."""
    return os.path.exists(paths(run)["metadata"])


def load_task(path):
    """The task of a preset folder, a finished run folder or a ``.keras`` file.

    Nothing is guessed: an unfinished run raises and names its checkpoints (load one by its
    path), a missing or changed preset file raises naming the file.
    """
    import keras

    from vit_tf.models.vlm import VisionLanguageModel

    if str(path).endswith(".keras"):
        import vit_tf.models.factory  # noqa: F401  (registers every part for deserialization)

        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such model file")
        # compile=False: the training optimizer is not needed to generate, and a preset-free
        # file from any run loads without vit_tf.training. safe_mode: a file is data, never
        # code: a Lambda layer (pickled Python bytecode) or a class vit_tf does not register
        # is refused, named, before anything runs.
        try:
            task = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (TypeError, ValueError) as e:
            text = str(e)
            if "safe_mode" in text or "lambda" in text.lower():
                why = ("it holds a Lambda layer or lambda function, whose Python code would "
                       "run on load")
            elif "Could not locate" in text or "Unknown" in text or "not found" in text:
                why = "it names a class vit_tf does not know"
            else:
                why = "its config does not rebuild"
            raise ValueError(f"{path}: refused to load this .keras file: {why} (loaded in safe "
                             f"mode; Keras says: {text.splitlines()[0][:300]})") from None
        if not isinstance(task, VisionLanguageModel) or task.preprocessor is None:
            raise ValueError(f"{path}: not a vit_tf task with its preprocessor")
        return task
    return VisionLanguageModel.from_preset(path)


def generate_defaults(path):
    """The decoding settings a preset or run recorded (``GenerateConfig``), else the defaults."""
    folder = os.path.dirname(path) if str(path).endswith(".keras") else path
    metadata = os.path.join(folder, "metadata.json")
    if os.path.exists(metadata):
        with open(metadata) as f:
            return from_dict(GenerateConfig, json.load(f).get("generate", {}), "generate")
    config = os.path.join(folder, "config.json")
    if os.path.exists(config):
        return load_config(config).generate
    return GenerateConfig()


def run_config(run):
    """The ``ExperimentConfig`` of a run folder, or None for a preset written from Python."""
    path = paths(run)["config"]
    return load_config(path) if os.path.exists(path) else None


class RunInUseError(FileExistsError):
    """Another process is writing the run folder."""


class RunLock:
    """An exclusive lock on a run folder (``RUN/.lock``) while a process writes it.

    ``fcntl.flock`` on a file in the folder: a second ``vit-tf train --out RUN`` (or
    ``--resume``) is refused while the first runs, instead of interleaving checkpoints, logs
    and presets. The kernel drops the lock when its process ends, also on ``kill -9``, so an
    interrupted run can always be resumed. The file names the holder (host, pid, start time).

    Example:
        >>> with RunLock("runs/x"):
        ...     train(...)
    """

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, ".lock")
        self._file = None

    def acquire(self):
        import fcntl

        os.makedirs(self.folder, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunInUseError(f"{self.folder} is being written by {holder}; wait for it to "
                                "end or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"host {socket.gethostname()} pid {os.getpid()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self):
        if self._file is not None:
            self._file.close()   # closing drops the flock
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
