"""Workarounds for Keras/TensorFlow bugs that training meets; each names its upstream issue and
has a test (tests/training/test_keras_fixes.py) that fails when the upstream code changes.

* ``MultiWorkerMirroredStrategy``: under several workers Keras 3.15 reduces every scalar log of
  ``fit``/``evaluate`` with ``strategy.reduce("MEAN", value, axis=0)``
  (``keras/src/backend/tensorflow/trainer.py``, ``reduce_per_replica``), and TensorFlow's
  ``Strategy.reduce`` cannot take axis 0 of a scalar ("Invalid reduction dimension 0 for input
  with 0 dimensions"; https://github.com/tensorflow/tensorflow/issues/72388). This subclass
  reads such a scalar as shape (1,): over a leading axis of length 1 the reduce is the mean of
  the replicas' values, and it returns a scalar: the logs a one-worker strategy gets from
  Keras' ``tf.reduce_mean`` over its replicas. Any other call is TensorFlow's own.
  ``vit_tf.training.distribute.make_strategy`` creates it for ``train.strategy=multi_worker``;
  the model keeps Keras's stock ``train_step``/``test_step``.
"""

import tensorflow as tf

# What the test checks in Keras' source: the call that fails on scalars. When it is gone (Keras
# changed how it reduces multi-worker logs), the test fails: drop the workaround if fixed.
KERAS_MULTI_WORKER_REDUCE = 'strategy.reduce("MEAN", v, axis=0)'


def _local_results(strategy, value):
    return strategy.experimental_local_results(value)


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``tf.distribute.MultiWorkerMirroredStrategy`` whose ``reduce(op, scalar, axis=0)`` works
    (reads the scalar as shape (1,)); tensorflow/tensorflow#72388, see the module docstring.
    Same name as TensorFlow's so nothing that looks at the class name can tell them apart."""

    def reduce(self, reduce_op, value, axis):
        if axis == 0 and all(tf.is_tensor(v) and v.shape.rank == 0
                             for v in _local_results(self, value)):
            if isinstance(value, tf.distribute.DistributedValues):
                value = self.run(lambda v: tf.reshape(v, [1]), args=(value,))  # per replica
            else:
                value = tf.reshape(value, [1])                     # (1,)
        return super().reduce(reduce_op, value, axis)
