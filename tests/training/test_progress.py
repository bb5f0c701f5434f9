"""ProgressLog: epoch lines with counts as counts, progress with an ETA when not a terminal."""

import io

from vit_tf.training.progress import ProgressLog, format_value


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _run(monkeypatch, stream, interval):
    clock = _Clock()
    monkeypatch.setattr("vit_tf.training.progress.time.perf_counter", clock)
    log = ProgressLog(epochs=2, steps_per_epoch=10, stream=stream, interval=interval)
    log.set_params({"epochs": 2, "steps": 10})
    log.on_epoch_begin(0)
    for batch in range(10):
        clock.now += 2.0   # 2 s per step
        log.on_train_batch_end(batch, {"loss": 1.5 - batch / 100})
    log.on_epoch_end(0, {"loss": 1.45, "examples": 13824.0, "padded_tokens": 1148544.0,
                         "token_accuracy": 0.12345678, "tokens_per_second": 1947.51})
    return stream.getvalue().splitlines()


def test_not_a_terminal_progress_lines_carry_an_eta_and_the_epoch_line_integer_counts(
        monkeypatch):
    lines = _run(monkeypatch, io.StringIO(), interval=5.0)
    progress, epoch = lines[:-1], lines[-1]
    # a line every 5 s (every 3rd step of 2 s), the first timed step excluded from the rate
    assert progress[0] == ("epoch 1/2 step 3/10 (30%) - loss 1.4800 - 2 s/step - ETA epoch "
                           "14 s, run 34 s")
    assert len(progress) == 3 and all("ETA" in line for line in progress)
    assert epoch.startswith("epoch 1/2: 10 steps in 20 s (2 s/step) - loss 1.4500")
    assert " - examples 13,824 - padded_tokens 1,148,544 - " in epoch
    assert "token_accuracy 0.1235" in epoch and "tokens_per_second 1,947.5" in epoch
    assert ".0000" not in epoch


def test_on_a_terminal_progress_updates_one_line_in_place(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    _run(monkeypatch, stream, interval=5.0)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.count("\r\033[K") >= 5
    assert format_value("text_tokens", 12.0) == "12" and format_value("loss", 2.0) == "2.0000"
