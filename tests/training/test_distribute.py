"""tf.distribute on the stock Keras engine: MirroredStrategy over 2 logical CPUs matches one
device; MultiWorkerMirroredStrategy trains with two worker processes and only the chief writes.

Both run in fresh processes: logical devices and the multi-worker runtime must be configured
before TensorFlow starts, which it already has in the test process.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import tiny_config, write_image
from vit_tf.cli import main
from vit_tf.training.distribute import make_strategy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=ROOT)


def test_mirrored_on_two_cpu_devices_gives_the_one_device_losses(tmp_path):
    proc = subprocess.run([sys.executable, "tests/training/mirrored_check.py", str(tmp_path),
                           "false"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=1200)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    one, two = result["default"], result["mirrored"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    assert len(one["losses"]) == len(two["losses"]) == 3
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)
    # Adam moves a weight whose gradient is ~0 by about +-lr whatever the gradient's size, so
    # the replicas' different summation order can flip such a step: weights agree to 1%, while
    # a missing all-reduce (each replica stepping on half the batch) would differ far more.
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=1e-2, atol=1e-4)
    assert not np.allclose(one["losses"][0], one["losses"][-1])   # it did train
    assert two["answer_match"] == one["answer_match"]             # AnswerAccuracy ran on both


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


TINY = [
    "data.image_size=16", "data.batch_size=4", "data.vocabulary_size=120",
    "data.max_text_length=32", "data.pack_by_image=false", "model.encoder.patch_size=8",
    "model.encoder.hidden_dim=8", "model.encoder.num_layers=1", "model.encoder.num_heads=1",
    "model.encoder.intermediate_dim=16", "model.decoder.hidden_dim=8",
    "model.decoder.num_layers=1", "model.decoder.num_heads=1",
    "model.decoder.intermediate_dim=16", "train.epochs=2", "train.steps_per_epoch=2",
    "train.warmup_steps=1", "train.jit_compile=false", "train.num_samples_to_log=0",
    "train.xla_update=false",
    "train.checkpoint_every_steps=1",
    # Two things make a replicated step differ from one device's by design, not by a bug;
    # switched off here so the step must be the same: BatchNorm (the default experiment's stem
    # norm) normalises each replica's part of the batch by its own statistics, and Keras 3's
    # optimizer clips each replica's gradient before the all-reduce.
    "model.encoder.stem_norm=false", "train.clipnorm=0",
]


def _one_word_answers(folder, n=8):
    """A LLaVA JSON of ``n`` images whose answers are one word that is also in every prompt
    (so one WordPiece token): every example has as many trained tokens as any other, and the
    mean of the replicas' mean losses is the global batch's mean (see README, tf.distribute)."""
    folder.mkdir()
    records = [{"id": f"r{i}", "image": os.path.basename(write_image(folder / f"{i}.png",
                                                                    size=(16, 16), seed=i)),
                "conversations": [{"from": "human",
                                   "value": "<image>\nIs it red, blue or green?"},
                                  {"from": "gpt", "value": ["red", "blue", "green"][i % 3]}]}
               for i in range(n)]
    (folder / "train.json").write_text(json.dumps(records))
    return folder / "train.json"


def _tree(folder):
    """Relative paths under ``folder``; TensorBoard event files as their subfolder + 'events'
    (their names hold the writer's time and process id)."""
    paths = set()
    for parent, _, files in os.walk(folder):
        for name in files:
            rel = os.path.relpath(os.path.join(parent, name), folder)
            paths.add(os.path.join(os.path.dirname(rel), "events")
                      if name.startswith("events.out.tfevents.") else rel)
    return paths


def _epoch_losses(log):
    """The ``loss`` of each epoch line ``ProgressLog`` printed (``epoch 2/2: 2 steps in 3 s
    ... - loss 4.7823 - ...``)."""
    return re.findall(r"^epoch \d+/\d+: .* - loss ([0-9.e+-]+)", log, flags=re.M)


def test_multi_worker_trains_with_two_processes_and_only_the_chief_writes(tmp_path):
    data = _one_word_answers(tmp_path / "data")
    run = tmp_path / "run"
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    sets = [a for item in TINY for a in ("--set", item)]
    argv = ["train", "--data", str(data), "--image-root", str(data.parent), *sets]
    procs = []
    for index in range(2):
        tmp = tmp_path / f"tmp{index}"
        tmp.mkdir()
        env = dict(ENV, TMPDIR=str(tmp),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "vit_tf.cli", *argv, "--out", str(run),
             "--set", "train.strategy=multi_worker"],
            env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        # The reference while the workers run: one process, one device, the same global batches.
        single = tmp_path / "single"
        assert main([*argv, "--out", str(single)]) == 0
        for proc, log in procs:
            proc.wait(timeout=600)
            log.close()
    finally:
        for proc, _ in procs:
            proc.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    for i, (proc, _) in enumerate(procs):
        assert proc.returncode == 0, logs[i][-3000:]
    assert "2 replica(s)" in logs[0] and "2 replica(s)" in logs[1]

    # Both workers took the same synchronous steps: they printed the same epoch losses, which
    # are those of one process on the same global batches (each worker trained on half of
    # each batch; a worker stepping alone or on the whole batch would differ).
    assert len(_epoch_losses(logs[0])) == 2 and _epoch_losses(logs[0]) == _epoch_losses(logs[1])
    history = json.loads((run / "train_summary.json").read_text())["history"]
    reference = json.loads((single / "train_summary.json").read_text())["history"]
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-4)
    assert history["examples"] == reference["examples"] == [8.0, 8.0]   # global, per epoch
    assert not np.allclose(history["loss"][0], history["loss"][1])     # it did train

    # The chief (worker 0) wrote a complete run, the same files as one process writes...
    assert _tree(run) == _tree(single)
    assert {"metadata.json", "task.weights.h5", "checkpoints/epoch_002.keras", "state/step_000004/state.json",
            "logs/train/events", "train_summary.json"} <= _tree(run)
    assert sorted(os.listdir(run / "state")) == ["step_000003", "step_000004"]
    # ...and worker 1 wrote none of it: every TensorBoard file is the chief's (the writer's
    # process id is in the name), and its own temporary folder was deleted.
    events = [n for _, _, files in os.walk(run) for n in files if n.startswith("events.out")]
    assert events and {n.split(".")[-3] for n in events} == {str(procs[0][0].pid)}
    assert "not the chief" not in logs[0]
    assert f"not the chief; writing to {tmp_path / 'tmp1'}" in logs[1]
    assert os.listdir(tmp_path / "tmp1") == [] and os.listdir(tmp_path / "tmp0") == []


def test_unknown_strategy_and_missing_device_are_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'mirror'.*mirrored"):
        make_strategy(tiny_config(train__strategy="mirror").train)
    with pytest.raises(ValueError, match="no device /gpu:7"):
        make_strategy(tiny_config(train__strategy="mirrored", train__devices="/gpu:7").train)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy(tiny_config(train__strategy="multi_worker").train)

