"""The Keras/TensorFlow workarounds in vit_tf.training.keras_fixes: each still needed (the
upstream code it works around is unchanged) and each doing its job.

The strategy checks run in a fresh process: a MultiWorkerMirroredStrategy must be created
before TensorFlow starts its runtime, which it already has in the test process.
"""

import inspect
import json
import os
import subprocess
import sys

from vit_tf.training.keras_fixes import KERAS_MULTI_WORKER_REDUCE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CHECK = """
import json
import tensorflow as tf
from vit_tf.training.keras_fixes import MultiWorkerMirroredStrategy

def reduce_scalar(strategy):
    @tf.function
    def f():
        return strategy.reduce("MEAN", strategy.run(lambda: tf.constant(3.0)), axis=0)
    try:
        return float(f())
    except ValueError as e:
        return str(e)

ours = MultiWorkerMirroredStrategy()
stock = tf.distribute.MultiWorkerMirroredStrategy()
result = {"ours": reduce_scalar(ours), "tf": reduce_scalar(stock),
          "is_tf_class": isinstance(ours, tf.distribute.MultiWorkerMirroredStrategy),
          "vector": float(tf.function(lambda: ours.reduce(
              "MEAN", ours.run(lambda: tf.constant([1.0, 5.0])), axis=0))())}
print("RESULT " + json.dumps(result))
"""


def test_keras_still_reduces_multi_worker_logs_on_axis_0():
    """tensorflow/tensorflow#72388: if this fails, Keras changed how it reduces the logs of a
    multi-worker step; check whether keras_fixes.MultiWorkerMirroredStrategy is still needed."""
    from keras.src.backend.tensorflow import trainer

    assert KERAS_MULTI_WORKER_REDUCE in inspect.getsource(trainer.reduce_per_replica)


def test_strategy_reduces_a_scalar_on_axis_0_where_tensorflow_fails():
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", _CHECK], cwd=ROOT, capture_output=True,
                          check=False, text=True, timeout=300, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["ours"] == 3.0 and result["is_tf_class"]
    assert result["vector"] == 3.0                     # other reduces are TensorFlow's own
    # tensorflow/tensorflow#72388 itself: if TensorFlow's reduce takes a scalar now, the
    # workaround is no longer needed.
    assert "Invalid reduction dimension 0" in str(result["tf"]), result["tf"]
