"""``vit-tf train --resume`` after a real ``kill -9``: the loss curve matches an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from vit_tf.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
    "data.image_size=16", "data.batch_size=4", "data.vocabulary_size=120",
    "data.max_text_length=96", "model.encoder.patch_size=8", "model.encoder.hidden_dim=8",
    "model.encoder.num_layers=1", "model.encoder.num_heads=1",
    "model.encoder.intermediate_dim=16", "model.decoder.hidden_dim=8",
    "model.decoder.num_layers=1", "model.decoder.num_heads=1",
    "model.decoder.intermediate_dim=16", "train.epochs=6", "train.steps_per_epoch=5",
    "train.warmup_steps=2", "train.jit_compile=false", "train.num_samples_to_log=0",
    "train.checkpoint_every_steps=2",
]


def _args(shapes, out):
    sets = [a for item in TINY for a in ("--set", item)]
    return ["train", "--data", str(shapes / "train.json"), "--image-root", str(shapes),
            "--out", str(out), *sets]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    assert main(["data", "shapes", "--out", str(out), "--train", "4", "--test", "1",
                 "--canvas-size", "16", "--max-objects", "1"]) == 0
    return out


def _kill_after_first_checkpoint(argv, state_dir, log_path, timeout=1200):
    """Run the CLI in a subprocess and SIGKILL it once a training-state checkpoint exists."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vit_tf.cli", *argv], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not (os.path.isdir(state_dir) and any(n.startswith("step_")
                                                    for n in os.listdir(state_dir))):
            if proc.poll() is not None:
                raise AssertionError(f"training exited early: {open(log_path).read()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint in {timeout} s: "
                                     f"{open(log_path).read()[-2000:]}")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_kill_9_then_resume_gives_the_loss_curve_of_an_uninterrupted_run(shapes, tmp_path, capsys):
    killed = tmp_path / "killed"
    _kill_after_first_checkpoint(_args(shapes, killed), killed / "state", tmp_path / "log.txt")
    assert not (killed / "metadata.json").exists(), "the run finished before it was killed"
    assert main(_args(shapes, tmp_path / "full")) == 0
    capsys.readouterr()

    assert main(["train", "--out", str(killed), "--resume", "--data", str(shapes / "train.json"),
                 "--image-root", str(shapes)]) == 0
    resumed_at = [line for line in capsys.readouterr().out.splitlines() if "resuming" in line]
    assert resumed_at and " at step 0 " not in resumed_at[0]
    full = json.loads((tmp_path / "full" / "train_summary.json").read_text())["history"]
    resumed = json.loads((killed / "train_summary.json").read_text())["history"]
    assert len(resumed["loss"]) == 6
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-4)
    np.testing.assert_allclose(resumed["token_accuracy"], full["token_accuracy"], rtol=1e-4)
    assert sorted(os.listdir(killed / "checkpoints")) == [".tmp"] + [
        f"epoch_{e:03d}.keras" for e in range(1, 7)]
