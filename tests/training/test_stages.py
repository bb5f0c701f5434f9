"""Two stages in one run folder: stage 1 trains the projector on captions, stage 2 the rest."""

import json
import os

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config
from vit_tf.data.shapes import ShapesConfig, write_shapes_world
from vit_tf.training.run_dir import load_run
from vit_tf.training.train import train


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("shapes")
    write_shapes_world(data, 6, 0, seed=0, config=ShapesConfig(canvas_size=16, max_objects=1))
    config = tiny_config(data__max_text_length=96, data__skip_invalid=True, train__steps_per_epoch=2,
                         train__num_samples_to_log=0, train__stage1__epochs=1,
                         train__stage1__steps_per_epoch=2, train__stage1__warmup_steps=0,
                         train__policy__decoder_lr=0.5)
    out = tmp_path_factory.mktemp("run") / "run"
    summary = train(config, str(data / "train.json"), str(data), str(out), log=lambda m: None)
    return out, summary


def test_two_stages_write_one_run_folder_with_both_histories(two_stage_run):
    out, summary = two_stage_run
    stage1 = summary["stages"]["stage1"]
    assert stage1["steps"] == 2 and len(stage1["history"]["loss"]) == 1
    assert stage1["categories"] == "caption,description"
    assert stage1["trainable_parameters"]["image_encoder"] == 0
    assert stage1["trainable_parameters"]["decoder"] == 0
    assert stage1["trainable_parameters"]["projector"] > 0
    assert all(v > 0 for v in summary["trainable_parameters"].values())  # stage 2: everything
    assert os.path.exists(out / "stage1" / "model.keras")
    assert os.listdir(out / "stage1" / "checkpoints") == ["epoch_001.keras"]
    assert os.path.exists(out / "model.keras") and len(summary["history"]["loss"]) == 1
    saved = json.loads((out / "train_summary.json").read_text())
    assert saved["stages"]["stage1"]["history"]["loss"] == stage1["history"]["loss"]


def test_stage2_starts_from_stage1_and_trains_every_part(two_stage_run):
    out, _ = two_stage_run
    stage1 = keras.saving.load_model(out / "stage1" / "model.keras")
    model, _, _ = load_run(str(out))
    for part in ("image_encoder", "projector", "decoder"):
        before, after = getattr(stage1, part).weights, getattr(model, part).weights
        assert [v.path for v in before] == [v.path for v in after]
        assert any(not np.array_equal(x.numpy(), y.numpy()) for x, y in zip(before, after)), part
