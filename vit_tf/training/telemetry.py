"""TensorBoard telemetry for ``train()``: throughput, learning rate, hparams, profiling.

What a run's ``logs/`` holds (``tensorboard --logdir RUN/logs``):

* ``train/`` and ``validation/`` (Keras ``TensorBoard``): ``epoch_loss``, ``epoch_token_accuracy``,
  ``epoch_grad_norm`` (the optimizer's, ``vit_tf.training.grad_norm``), ``epoch_learning_rate``,
  ``epoch_examples_per_second``, ``epoch_tokens_per_second``, ``epoch_padding_fraction``
  (``StepTelemetry``), ``epoch_answer_match/<category>`` (``AnswerAccuracy``, validation), and
  every ``update_freq`` steps the same as ``batch_*`` (running epoch means; rates over the
  last window of steps);
* ``samples/`` text (``SampleAnswers``), ``relevance/`` images (``RelevanceMaps``);
* the root: the hparams plugin's session (the resolved config's flat keys, ``final/*`` metrics);
* ``train/plugins/profile`` when ``train.profile_steps`` is set (TensorBoard's Profile tab).

Example:
    >>> callbacks = telemetry_callbacks(config, "runs/x/logs")   # after your own callbacks
    >>> model.fit(ds, callbacks=[*mine, *callbacks])
"""

import time

import keras
import numpy as np
import tensorflow as tf

from vit_tf.config import ConfigError, to_dict


def parse_profile_steps(text):
    """``train.profile_steps``: "" -> 0 (off), "12" -> 12, "10,20" -> (10, 20) (Keras'
    ``profile_batch``: the global training steps to trace, 1-based)."""
    text = text.strip()
    if not text:
        return 0
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        steps = []
    if len(steps) not in (1, 2) or min(steps) < 1 or steps[0] > steps[-1]:
        raise ConfigError(f"train.profile_steps={text!r}: expected a step like '12' or a range "
                          "'START,STOP' of 1-based training steps with START <= STOP")
    return steps[0] if len(steps) == 1 else tuple(steps)


class StepTelemetry(keras.callbacks.Callback):
    """Examples/s, text tokens/s, padding fraction and learning rate, into the logs.

    Counts come from the model's ``examples`` / ``text_tokens`` / ``padded_tokens`` metrics
    (epoch sums of ``vit_tf.models.vlm.StepCounts``). Epoch rates are measured from the
    end of the epoch's first step to its last, so XLA compilation (in the first step) is not
    counted; every ``every`` steps the rates over the window since the last report go into the
    batch logs (``batch_*`` in TensorBoard). Place it before ``keras.callbacks.TensorBoard``.
    """

    def __init__(self, every=50):
        super().__init__()
        self.every = every

    def _mark(self, logs):
        return (time.perf_counter(), float(logs["examples"]), float(logs["text_tokens"]))

    def _rates(self, start, end):
        seconds = end[0] - start[0]
        if seconds <= 0:
            return {}
        return {"examples_per_second": (end[1] - start[1]) / seconds,
                "tokens_per_second": (end[2] - start[2]) / seconds}

    def _learning_rate(self):
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        self._first = self._window = None

    def on_train_batch_end(self, batch, logs=None):
        if logs is None or "examples" not in logs:
            return
        mark = self._mark(logs)
        if self._first is None:
            self._first = self._window = mark
        elif (batch + 1) % self.every == 0:
            logs.update(self._rates(self._window, mark))
            logs["learning_rate"] = self._learning_rate()
            self._window = mark
        self._last = mark

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "examples" not in logs or self._first is None:
            return
        logs.update(self._rates(self._first, self._last))
        if logs["padded_tokens"]:
            logs["padding_fraction"] = 1.0 - logs["text_tokens"] / logs["padded_tokens"]


def flat_config(config):
    """``{"model.encoder.hidden_dim": 64, ...}``: the resolved config as hparams values."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value if isinstance(value, (bool, int, float, str)) else str(value)

    walk("", to_dict(config))
    return flat


class HParamsLogger(keras.callbacks.Callback):
    """The TensorBoard hparams plugin: the run's config and its final metrics.

    At the start of training, writes the session (``hp.hparams``: every flat config key) to
    ``log_dir``; at the end, the experiment (``hp.hparams_config``) and each final epoch metric as
    ``final/<name>``, so the HPARAMS tab compares runs written under one parent folder.
    """

    def __init__(self, config, log_dir, trial_id=None):
        super().__init__()
        self.hparams = flat_config(config)
        self.log_dir = log_dir
        self.trial_id = trial_id or config.name

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        self.writer = tf.summary.create_file_writer(self.log_dir)
        with self.writer.as_default(), tf.summary.record_if(True):
            hp.hparams(self.hparams, trial_id=self.trial_id)
        self.writer.flush()

    def on_train_end(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        final = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        with self.writer.as_default(), tf.summary.record_if(True):
            hp.hparams_config(hparams=[hp.HParam(k) for k in self.hparams],
                              metrics=[hp.Metric(f"final/{k}") for k in final])
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            for name, value in final.items():
                tf.summary.scalar(f"final/{name}", value, step=step)
        self.writer.flush()


def validation_accuracy(records, preprocessor, data_config):
    """``AnswerAccuracy`` on held-out records (the ``data.validation_fraction`` slice; records
    streamed from shards come with their images extracted: ``TrainingData.with_images``)."""
    from vit_tf.data.pipeline import encode_records
    from vit_tf.training.callbacks import AnswerAccuracy

    examples = encode_records(records, preprocessor, data_config.max_text_length)
    categories = [r.get("category") or "all" for r in records]
    return AnswerAccuracy(examples, categories, data_config.image_size)


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' ``TensorBoard`` whose epoch summaries are always written, at true global steps.

    With an integer ``update_freq``, Keras 3.15 leaves ``tf.summary.record_if(step %
    update_freq == 0)`` active from the last batch into ``on_epoch_end``, so epoch scalars are
    silently dropped unless an epoch ends on a multiple of ``update_freq``. Epoch-end summaries
    here (and in ``SampleAnswers`` / ``RelevanceMaps`` / ``HParamsLogger``) force recording on.
    """

    def on_train_begin(self, logs=None):
        # Keras restarts its batch counter at 0 in every ``fit``: after ``--resume`` (and in the
        # second ``fit`` of a mid-epoch resume) batch summaries and the profiler window would
        # start again at step 0, over the first run's. Continue from the steps already taken
        # (the optimizer's counter: it is checkpointed with the weights).
        super().on_train_begin(logs)
        optimizer = getattr(self.model, "optimizer", None)
        done = int(keras.ops.convert_to_numpy(optimizer.iterations)) if optimizer else 0
        if done:
            self._pop_writer()
            self._global_train_batch = done
            self._push_writer(self._train_writer, done)

    def on_epoch_end(self, epoch, logs=None):
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        # Keras counts one step per call; with steps_per_execution=k a call runs k steps, so
        # advance by the k - 1 it misses: batch summaries keep their true global step.
        self._global_train_batch += getattr(self.model, "steps_per_execution", 1) - 1
        super().on_train_batch_begin(batch, logs)


def whole_calls(every, steps_per_execution):
    """``every`` steps rounded up to whole calls of ``steps_per_execution`` steps: callbacks see
    only a call's last step, so a batch-summary interval must be a multiple of it."""
    return -(-every // steps_per_execution) * steps_per_execution


def telemetry_callbacks(config, log_dir, update_freq=50):
    """[StepTelemetry, HParamsLogger, TensorBoard]: put them after callbacks that add logs."""
    return [
        StepTelemetry(every=update_freq),
        HParamsLogger(config, log_dir),
        TensorBoard(log_dir, update_freq=update_freq,
                    profile_batch=parse_profile_steps(config.train.profile_steps)),
    ]
