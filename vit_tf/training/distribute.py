"""``train.strategy`` -> a ``tf.distribute`` strategy, and who writes files (the chief).

Training stays one ``model.fit`` on the stock Keras engine; only the strategy changes.
The model is built and compiled under ``strategy.scope()`` and Keras distributes the
``tf.data`` input itself. ``data.batch_size`` is the GLOBAL batch: each of the
``strategy.num_replicas_in_sync`` replicas gets ``batch_size / replicas`` examples per step
(so the loss and the learning-rate schedule do not change with the number of devices).

    train.strategy   what it builds
    default          the default (no-op) strategy: one device
    mirrored         MirroredStrategy over ``train.devices`` (e.g. "/cpu:0,/cpu:1";
                     "" = every visible GPU, else the CPU)
    multi_worker     MultiWorkerMirroredStrategy; the cluster comes from the TF_CONFIG
                     environment variable of each worker process
    tpu              TPUStrategy via TPUClusterResolver(tpu=``train.tpu``)

Only the chief (TF_CONFIG task ``chief``, or ``worker`` 0 when there is no chief) writes the
run folder; the other workers write to a temporary folder that is deleted afterwards (the
standard Keras multi-worker pattern: every worker runs the same saving code, because saving
may need all of them).

Keras 3.15 workarounds: ``distributable`` and ``defer_symbolic_build`` here; the scalar logs
of a step under several workers in ``vit_tf.training.keras_fixes.MultiWorkerMirroredStrategy``.

Example:
    >>> strategy = make_strategy(TrainConfig(strategy="mirrored", devices="/cpu:0,/cpu:1"))
    >>> with strategy.scope():
    ...     model = build_model(...); compile_model(model, ...)
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(train_config):
    """The ``tf.distribute.Strategy`` named by ``train_config.strategy``.

    Create it before any other TensorFlow work in the process: MultiWorkerMirroredStrategy
    and TPUStrategy configure the runtime and fail once it has started.
    """
    name = train_config.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.strip() for d in train_config.devices.split(",") if d.strip()] or None
        if devices:
            have = {_device_key(d.name) for d in tf.config.list_logical_devices()}
            missing = [d for d in devices if _device_key(d) not in have]
            if missing:
                raise ValueError(
                    f"train.devices: no device {', '.join(missing)} on this machine (have "
                    f"{', '.join(d.name for d in tf.config.list_logical_devices())})")
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("train.strategy=multi_worker needs the TF_CONFIG environment variable "
                             "(cluster and this worker's task); see README 'Distributed training'")
        from vit_tf.training.keras_fixes import MultiWorkerMirroredStrategy

        return MultiWorkerMirroredStrategy()   # tf's, with tensorflow#72388 worked around
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=train_config.tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"train.strategy: unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def _device_key(device):
    """'/cpu:0', '/device:CPU:0', 'CPU:0' -> ('CPU', 0)."""
    spec = tf.DeviceSpec.from_string(device if device.startswith("/") else "/" + device)
    return (spec.device_type or "").upper(), spec.device_index or 0


def is_chief(strategy=None):
    """Whether this process writes the run folder: always, except non-chief multi-worker tasks."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
        task_type, task_id = task.get("type"), task.get("index", 0)
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    else:
        task_type, task_id = resolver.task_type, resolver.task_id
        cluster = resolver.cluster_spec().as_dict()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or task_type is None:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def write_folder(out, strategy):
    """``out`` on the chief; a fresh temporary folder on the other workers (see ``discard``)."""
    if is_chief(strategy):
        return out
    return tempfile.mkdtemp(prefix="vit_tf_worker_")


def discard(folder, out):
    """Delete a non-chief's temporary ``folder`` (a no-op on the chief, where it is ``out``)."""
    if os.path.abspath(folder) != os.path.abspath(out):
        shutil.rmtree(folder, ignore_errors=True)


def distributable(ds, strategy):
    """``ds`` with its bool ``padding_mask`` input as int32 when ``strategy`` is not the default.

    A workaround for Keras 3.15: under a strategy, ``fit``/``evaluate`` first build
    the model from one batch averaged over the replicas (``_maybe_symbolic_build``), and
    TensorFlow cannot add bool tensors (``AddN`` of bool). The model's ``padding_mask`` Input
    is declared bool, so Keras casts the int32 mask back on the way in: same values, same model.
    """
    if ds is None or type(strategy).__name__.startswith("_Default"):
        return ds

    def cast(inputs, *rest):
        inputs = dict(inputs, padding_mask=tf.cast(inputs["padding_mask"], tf.int32))
        return (inputs, *rest)

    return ds.map(cast, num_parallel_calls=tf.data.AUTOTUNE)


def defer_symbolic_build(model, strategy):
    """A workaround for Keras 3.15 under MultiWorkerMirroredStrategy; call after ``compile``.

    A model created in a strategy's scope remembers it, and ``fit`` then builds the model from
    one batch averaged over the replicas with ``strategy.reduce`` — which the collective
    (multi-worker) implementation cannot do for a dict of inputs ("Attempt to convert a value
    ({'images': PerReplica...}) ... to a Tensor"). Forgetting the strategy makes Keras build the
    model when it traces the train step instead (its path without a strategy), while ``fit``,
    run inside ``strategy.scope()``, still takes the strategy from the scope.
    """
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        model._distribute_strategy = None
    return model
