"""Real ``kill -9`` during a two-stage ``vit-tf train``, resumed until it ends: the same losses as
an uninterrupted run, no half-written checkpoint ever loaded; resuming on changed data or
config, or while another process writes the run, is refused. One tiny setup for all of it."""

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from vit_tf.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILLER = os.path.join(ROOT, "tests", "training", "kill_during_write.py")
TINY = [
    "data.image_size=16", "data.batch_size=4", "data.vocabulary_size=120",
    "data.max_text_length=96", "model.encoder.patch_size=8", "model.encoder.hidden_dim=8",
    "model.encoder.num_layers=1", "model.encoder.num_heads=1",
    "model.encoder.intermediate_dim=16", "model.decoder.hidden_dim=8",
    "model.decoder.num_layers=1", "model.decoder.num_heads=1",
    "model.decoder.intermediate_dim=16", "train.epochs=2", "train.steps_per_epoch=4",
    "train.warmup_steps=2", "train.jit_compile=false", "train.num_samples_to_log=0",
    "train.checkpoint_every_steps=2", "train.stage1.epochs=2", "train.stage1.steps_per_epoch=2",
    "train.stage1.warmup_steps=1", "data.pad_widths=96", "train.steps_per_execution=1",
    "train.xla_update=false",
    # one text shape, one step per call, no compiled update: the fewest traces
]


def _args(shapes, out, data=None):
    sets = [a for item in TINY for a in ("--set", item)]
    return ["train", "--data", str(data or shapes / "train.json"), "--image-root", str(shapes),
            "--out", str(out), *sets]


def _resume(shapes, out, data=None):
    return ["train", "--out", str(out), "--resume", "--data", str(data or shapes / "train.json"),
            "--image-root", str(shapes)]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    assert main(["data", "shapes", "--out", str(out), "--train", "4", "--test", "1",
                 "--canvas-size", "16", "--max-objects", "1"]) == 0
    return out


def _kill_while_writing(prefix, argv, log_path):
    """Start the CLI in a subprocess that SIGKILLs itself half-way through writing the
    checkpoint whose temporary path starts with ``prefix``; -> a function that waits for that
    and returns the process's output (stdout + stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("VIT_TF_DEBUG", None)
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, KILLER, str(prefix), *argv], env=env, stdout=log,
                            stderr=subprocess.STDOUT)

    def killed():
        try:
            code = proc.wait(timeout=1200)
        finally:
            proc.kill()
            log.close()
        output = open(log_path).read()
        assert code == -9, f"not killed (exit {code}): {output[-3000:]}"
        return output

    killed.pid = proc.pid
    return killed


def test_kill_9_in_stage_1_and_stage_2_mid_write_then_resume_gives_the_uninterrupted_losses(
        shapes, tmp_path, capsys, monkeypatch):
    killed = tmp_path / "killed"
    # 1. Killed while writing stage 1's last checkpoint (step 4; step 2 is complete). The same
    # run uninterrupted, in this process, meanwhile.
    first = _kill_while_writing(killed / "stage1" / "state" / ".tmp-step_000004",
                                _args(shapes, killed), tmp_path / "first.txt")
    assert main(_args(shapes, tmp_path / "full")) == 0
    first = first()
    assert sorted(os.listdir(killed / "stage1" / "state")) == [".tmp-step_000004",
                                                               "step_000002"]
    # What a user sees: no TensorFlow start-up noise, counts as counts.
    assert "cuInit" not in first and "I0000" not in first and "absl::InitializeLog" not in first
    assert "stage 1 epoch 1/2: 2 steps in" in first and " - examples 8 - " in first
    assert ".0000 - padded" not in first

    # 2. Resumed: stage 1 restarts from step 2 (the half-written step 4 is never read), ends,
    # and stage 2 is killed while writing its step-6 checkpoint (steps 2 and 4 complete).
    # While it runs, a second writer of the same run folder is refused by its lock.
    second = _kill_while_writing(killed / "state" / ".tmp-step_000006",
                                 _resume(shapes, killed), tmp_path / "second.txt")
    lock = killed / ".lock"
    deadline = time.monotonic() + 600
    while not (lock.exists() and f"pid {second.pid} " in lock.read_text()):
        assert time.monotonic() < deadline, "the resumed run never locked its folder"
        time.sleep(0.05)
    capsys.readouterr()
    assert main(_resume(shapes, killed)) == 2
    assert f"{killed} is being written by host" in capsys.readouterr().err
    second = second()
    assert f"resuming from {killed / 'stage1' / 'state'} at step 2 (epoch 2, step 0" in second
    assert sorted(os.listdir(killed / "state")) == [".tmp-step_000006", "step_000002",
                                                    "step_000004"]
    assert os.listdir(killed / "stage1" / ".tmp") == []   # stage1/model.keras went in whole

    # 3. Refusals that keep everything: changed config; changed data.
    capsys.readouterr()
    config_path = killed / "config.json"
    original = config_path.read_text()
    config = json.loads(original)
    config["train"]["learning_rate"] *= 2
    config_path.write_text(json.dumps(config))
    assert main(_resume(shapes, killed)) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "config.train.learning_rate: 0.001 -> 0.002" in err
    config_path.write_text(original)
    records = json.loads((shapes / "train.json").read_text())
    records[-1]["conversations"][1]["value"] = "nothing"
    (tmp_path / "changed.json").write_text(json.dumps(records))
    assert main(_resume(shapes, killed, data=tmp_path / "changed.json")) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "data.text:" in err and "config." not in err
    assert sorted(os.listdir(killed / "state")) == [".tmp-step_000006", "step_000002",
                                                    "step_000004"]

    # 4. Resumed to the end, the disk full when the final preset is written: a clear error,
    # the training state kept; resumed again once there is space: the preset, and the losses
    # of the uninterrupted run.
    from vit_tf.models.vlm import VisionLanguageModel

    def disk_full(self, folder, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder))

    monkeypatch.setattr(VisionLanguageModel, "save_to_preset", disk_full)
    assert main(_resume(shapes, killed)) == 1
    captured = capsys.readouterr()
    assert f"resuming from {killed / 'state'} at step 4 (epoch 2, step 0 in it)" in captured.out
    assert f"error: {killed}: could not write the preset" in captured.err
    assert "run with --resume to write the preset" in captured.err
    monkeypatch.undo()
    assert main(_resume(shapes, killed)) == 0
    out = capsys.readouterr().out
    assert f"stage 1: loaded the finished stage from {killed / 'stage1' / 'model.keras'}" in out
    assert f"resuming from {killed / 'state'} at step 8 (epoch 3, step 0 in it)" in out

    full = json.loads((tmp_path / "full" / "train_summary.json").read_text())
    resumed = json.loads((killed / "train_summary.json").read_text())
    for key in ("loss", "token_accuracy"):
        assert len(resumed["history"][key]) == 2
        np.testing.assert_allclose(resumed["history"][key], full["history"][key], rtol=1e-4)
        np.testing.assert_allclose(resumed["stages"]["stage1"]["history"][key],
                                   full["stages"]["stage1"]["history"][key], rtol=1e-4)
    assert sorted(os.listdir(killed / "state")) == ["step_000006", "step_000008"]
    assert sorted(os.listdir(killed / "checkpoints")) == [".tmp"] + [
        f"epoch_{e:03d}.keras" for e in range(1, 3)]
    shutil.rmtree(tmp_path / "full")
