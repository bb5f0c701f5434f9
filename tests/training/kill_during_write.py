"""Run ``vit-tf`` and ``kill -9`` the process half-way through writing one checkpoint.

    python tests/training/kill_during_write.py FOLDER_PREFIX vit-tf-args...

Checkpoints are written into a temporary name and renamed into place (``os.replace``); when the
temporary path starts with ``FOLDER_PREFIX`` (e.g. ``RUN/stage1/state/.tmp-step_000004``), its
weights file is cut to half its size, as a kill during the write leaves it, and the process
sends itself SIGKILL before the rename. Nothing of TensorFlow is imported before the CLI's
``main``, so the run's output is exactly what a user sees.
"""

import os
import signal
import sys

_replace = os.replace


def _killing_replace(src, dst, *args, **kwargs):
    if str(src).startswith(sys.argv[1]):
        target = os.path.join(src, "model.weights.h5") if os.path.isdir(src) else src
        with open(target, "r+b") as f:
            f.truncate(os.path.getsize(target) // 2)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    os.replace = _killing_replace
    from vit_tf.cli import main

    sys.exit(main(sys.argv[2:]))
