"""Measure one config's training step in a fresh process: step time and peak resident memory.

    python -m vit_tf.planning.measure CONFIG.json TEXT_LENGTH STEPS   # prints one JSON line

Used by the planner's calibration (``vit-tf plan --calibrate``) and ``benchmarks/plan_check.py``.

* Step time: ``train_on_batch`` on one synthetic batch of the planned shape (batch, text
  length; all text positions real), XLA as the config says; after two warm-up steps (tracing
  and compilation), the median over ``STEPS`` steps of the wall clock and of the process CPU
  time (medians resist the other jobs of a shared machine).
* Peak memory: Linux's resident-set high-water mark (``VmHWM``) during the timed steps minus the
  resident set after importing TensorFlow and running one op (the baseline). Before the timed
  steps, freed heap is returned to the system (``malloc_trim``) and the high-water mark is reset
  (``/proc/self/clear_refs``), so the compiler's transient memory is not counted: what is left
  is weights, optimizer state, compiled executables and the step's own buffers.
"""

import ctypes
import json
import os
import statistics
import sys
import time


def _status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(config, text_length, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # runtime up
    baseline = _status_bytes("VmRSS")

    import keras

    from vit_tf.models.factory import build_model
    from vit_tf.training.optim import compile_model

    keras.utils.set_random_seed(0)
    d = config.data
    model = build_model(config, d.vocabulary_size)
    compile_model(model, config.train, total_steps=10 * steps + 10)
    rng = np.random.default_rng(0)
    b, s, v = d.batch_size, d.image_size, d.vocabulary_size
    x = {"images": rng.uniform(0, 255, (b, s, s, 3)).astype("float32"),
         "token_ids": rng.integers(1, v, (b, text_length)).astype("int32"),
         "padding_mask": np.ones((b, text_length), bool)}
    y = rng.integers(1, v, (b, text_length)).astype("int32")
    w = np.ones((b, text_length), "float32")
    for _ in range(2):
        model.train_on_batch(x, y, sample_weight=w)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    walls, cpus = [], []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(x, y, sample_weight=w)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus),
            "peak_bytes": _status_bytes("VmHWM") - baseline}


def measure_in_subprocess(config, text_length, steps=10, timeout=900):
    """Run ``measure`` in a fresh Python process (clean memory) -> its result dict."""
    import subprocess
    import tempfile

    from vit_tf.config import save_config

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        path = f.name
    try:
        save_config(config, path)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
                   TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, "-m", "vit_tf.planning.measure", path,
                              str(text_length), str(steps)], capture_output=True, text=True,
                             env=env, timeout=timeout)
    finally:
        os.remove(path)
    if out.returncode != 0:
        raise RuntimeError(f"measuring the step failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    from vit_tf.config import load_config

    result = measure(load_config(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(result))
