"""Two stages in one run folder: stage 1 trains the projector on captions, stage 2 the rest."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config
from vit_tf.data.preprocessor import VisionLanguagePreprocessor
from vit_tf.data.shapes import ShapesConfig, write_shapes_world
from vit_tf.data.training_data import prepare_training_data
from vit_tf.models.factory import build_task
from vit_tf.runs import is_finished, load_task
from vit_tf.training.checkpointing import STATE_FILE, WEIGHTS_FILE
from vit_tf.training.stages import run_stage1, stage_paths
from vit_tf.training.train import train


def _config():
    return tiny_config(data__max_text_length=96, data__skip_invalid=True, train__steps_per_epoch=2,
                       train__num_samples_to_log=0, train__stage1__epochs=1,
                       train__stage1__steps_per_epoch=2, train__stage1__warmup_steps=0,
                       train__policy__decoder_lr=0.5)


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("shapes")
    write_shapes_world(data, 6, 0, seed=0, config=ShapesConfig(canvas_size=16, max_objects=1))
    out = tmp_path_factory.mktemp("run") / "run"
    summary = train(_config(), str(data / "train.json"), str(data), str(out), log=lambda m: None)
    return out, summary, data


def test_two_stages_write_one_run_folder_with_both_histories(two_stage_run):
    out, summary, _ = two_stage_run
    stage1 = summary["stages"]["stage1"]
    assert stage1["steps"] == 2 and len(stage1["history"]["loss"]) == 1
    assert stage1["categories"] == "caption,description"
    assert stage1["trainable_parameters"]["image_encoder"] == 0
    assert stage1["trainable_parameters"]["decoder"] == 0
    assert stage1["trainable_parameters"]["projector"] > 0
    assert all(v > 0 for v in summary["trainable_parameters"].values())  # stage 2: everything
    assert os.path.exists(out / "stage1" / "model.keras")
    # Atomic checkpoints: one per epoch, and nothing left half-written in their temp folder.
    checkpoints = out / "stage1" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == [".tmp", "epoch_001.keras"]
    assert os.listdir(checkpoints / ".tmp") == []
    # The run folder is the preset of the stage-2 model (no model.keras of its own).
    assert is_finished(str(out)) and not os.path.exists(out / "model.keras")
    assert len(summary["history"]["loss"]) == 1
    saved = json.loads((out / "train_summary.json").read_text())
    assert saved["stages"]["stage1"]["history"]["loss"] == stage1["history"]["loss"]


def test_stage1_trains_through_resumable_fit_with_its_own_state(two_stage_run):
    """Stage 1 checkpoints its training state in RUN/stage1/state (not the main run's
    RUN/state, no BackupAndRestore folder); its last checkpoint is the finished stage."""
    out, summary, _ = two_stage_run
    p = stage_paths(str(out))
    assert p["state"] == str(out / "stage1" / "state")
    assert not os.path.exists(out / "stage1" / "backup")
    steps = sorted(os.listdir(p["state"]))
    assert steps[-1] == "step_000002" and not any(s.startswith(".tmp") for s in steps)
    state = json.loads((out / "stage1" / "state" / "step_000002" / STATE_FILE).read_text())
    assert (state["global_step"], state["epoch"], state["step_in_epoch"]) == (2, 1, 0)
    assert state["history"]["loss"] == summary["stages"]["stage1"]["history"]["loss"]
    # The main run's state is separate: its steps count from 0 again after stage 1.
    main_steps = sorted(os.listdir(out / "state"))
    assert main_steps[-1] == "step_000002"
    main_state = json.loads((out / "state" / "step_000002" / STATE_FILE).read_text())
    assert main_state["history"]["loss"] == summary["history"]["loss"]


def test_stage1_resumes_from_its_state_without_training_again(two_stage_run, tmp_path):
    """A run killed after stage 1's last checkpoint, or while writing stage1/model.keras:
    the half-written file is never where a resume looks; run_stage1 restores the state's
    weights and history instead of training again."""
    out, summary, data = two_stage_run
    copy = tmp_path / "run"
    os.makedirs(copy)
    shutil.copytree(out / "stage1" / "state", copy / "stage1" / "state")
    config = _config()
    preprocessor = VisionLanguagePreprocessor.from_preset(str(out))
    training = prepare_training_data(config, str(data / "train.json"), str(data),
                                     preprocessor=preprocessor, log=lambda m: None)
    keras.utils.set_random_seed(123)   # other initial weights than the run's
    task = build_task(config, preprocessor)

    def killed_while_writing(path, *args, **kwargs):   # as a kill -9 during the write leaves it
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a .keras file")
        raise KeyboardInterrupt("killed while writing stage1/model.keras")

    task.save = killed_while_writing
    with pytest.raises(KeyboardInterrupt):
        run_stage1(task, config, training.train_records, training.train_dataset, str(copy),
                   log=lambda m: None)
    del task.save
    assert not os.path.exists(copy / "stage1" / "model.keras")   # never half there
    logs = []
    resumed = run_stage1(task, config, training.train_records, training.train_dataset,
                         str(copy), log=logs.append)
    assert any("resuming from" in m and "at step 2" in m for m in logs), logs
    assert resumed["history"] == summary["stages"]["stage1"]["history"]
    stage1 = keras.saving.load_model(out / "stage1" / "model.keras")   # the run's stage 1
    assert [v.path for v in stage1.weights] == [v.path for v in task.weights]
    for a, b in zip(stage1.weights, task.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert os.path.exists(copy / "stage1" / "model.keras")
    assert os.path.exists(copy / "stage1" / "state" / "step_000002" / WEIGHTS_FILE)


def test_stage2_starts_from_stage1_and_trains_every_part(two_stage_run):
    out, _, _ = two_stage_run
    stage1 = keras.saving.load_model(out / "stage1" / "model.keras")
    model = load_task(str(out))
    for part in ("image_encoder", "projector", "decoder"):
        before, after = getattr(stage1, part).weights, getattr(model, part).weights
        assert [v.path for v in before] == [v.path for v in after]
        assert any(not np.array_equal(x.numpy(), y.numpy()) for x, y in zip(before, after)), part
