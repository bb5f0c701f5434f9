"""Training progress for people: one line per epoch with counts as counts, and an ETA.

Keras' ``fit(verbose=2)`` prints one line per epoch with every metric as ``%.4f`` (``examples:
13824.0000 - padded_tokens: 1148544.0000``) and nothing during the epoch; its progress bar
(``verbose=1``) needs a terminal. ``ProgressLog`` (``fit(verbose=0)`` + this callback) prints:

* during an epoch: ``epoch 3/13 step 40/108 (37%) - loss 1.2345 - 0.52 s/step - ETA epoch
  35 s, run 9 min``; on a terminal as one line updated in place, otherwise (a log file,
  ``| tee``, CI) as a new line every ``interval`` seconds (default 30);
* at each epoch end: ``epoch 3/13: 108 steps in 56 s (0.52 s/step) - loss 1.2345 - ... -
  examples 1,728 - text_tokens 31,220 - ...``: counts as integers, rates and losses rounded.

The step time is measured from the end of the epoch's first call (XLA compilation excluded);
the ETA covers the training steps left in the epoch and in the run (not validation).

Example:
    >>> model.fit(ds, epochs=3, steps_per_epoch=100, verbose=0,
    ...           callbacks=[..., ProgressLog(epochs=3, steps_per_epoch=100)])
"""

import sys
import time

import keras
import numpy as np

COUNT_KEYS = ("examples", "text_tokens", "padded_tokens")


def format_seconds(seconds):
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_value(key, value):
    """A log value as a reader wants it: counts as integers, the rest with 4 significant
    decimals (``epoch_seconds`` in seconds)."""
    value = float(value)
    if key in COUNT_KEYS or key.endswith(("/examples", "/text_tokens", "/padded_tokens")):
        return f"{int(round(value)):,}"
    if key.endswith("seconds"):
        return f"{value:.1f}"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"


class ProgressLog(keras.callbacks.Callback):
    """See the module docstring. ``stage`` prefixes each line (e.g. ``"stage 1 "``);
    ``stream`` defaults to stdout; ``interval``: seconds between progress lines when the
    stream is not a terminal."""

    def __init__(self, epochs, steps_per_epoch, stage="", stream=None, interval=30.0):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.stage, self.interval = stage, interval
        self.stream = stream

    def _out(self):
        return self.stream or sys.stdout

    def _tty(self):
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def _write(self, text, inline=False):
        out = self._out()
        if self._tty():
            out.write("\r\033[K" + text + ("" if inline else "\n"))
        elif not inline or text:
            out.write(text + "\n")
        out.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        # A resumed epoch runs only its remaining steps in this fit.
        self._offset = self.steps_per_epoch - (self.params.get("steps") or self.steps_per_epoch)
        self._start = time.perf_counter()
        self._first = None          # (time, step) at the end of the epoch's first call
        self._shown = self._start

    def _rate(self, now, step):
        if self._first is None or step <= self._first[1]:
            return None
        return (now - self._first[0]) / (step - self._first[1])

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        step = self._offset + batch + 1
        if self._first is None:
            self._first = (now, step)
        if now - self._shown < (0.5 if self._tty() else self.interval):
            return
        self._shown = now
        rate = self._rate(now, step)
        parts = [f"{self.stage}epoch {self._epoch + 1}/{self.epochs} step {step}/"
                 f"{self.steps_per_epoch} ({100 * step / self.steps_per_epoch:.0f}%)"]
        if logs and "loss" in logs:
            parts.append(f"loss {float(logs['loss']):.4f}")
        if rate:
            left = self.steps_per_epoch - step
            run_left = left + (self.epochs - self._epoch - 1) * self.steps_per_epoch
            parts.append(f"{rate:.3g} s/step - ETA epoch {format_seconds(left * rate)}, "
                         f"run {format_seconds(run_left * rate)}")
        self._write(" - ".join(parts), inline=True)

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        steps = self.steps_per_epoch - self._offset
        head = (f"{self.stage}epoch {epoch + 1}/{self.epochs}: {steps} steps in "
                f"{format_seconds(now - self._start)}")
        rate = self._rate(now, self.steps_per_epoch)
        if rate:
            head += f" ({rate:.3g} s/step)"
        values = [f"{k} {format_value(k, v)}" for k, v in (logs or {}).items()
                  if np.ndim(v) == 0]
        self._write(" - ".join([head, *values]))
