"""Caption data from the readers (held-out pairs, image folders) and the `vit-tf t2i` commands."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.t2i import tiny
from vit_tf.cli import main
from vit_tf.data.shapes import write_shapes_world
from vit_tf.data.sources import DataValidationError, read_source
from vit_tf.t2i.captions import names_pair, parse_hold_out, read_captions


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    write_shapes_world(root, 12, 0, seed=0)
    return root


def test_captions_and_descriptions_are_read_and_held_out_images_dropped_whole(world):
    data = read_captions(world / "train.json", world)
    records = json.loads((world / "train.json").read_text())
    assert len(data.pairs) == 24 and data.not_captions == len(records) - 24
    caption = next(p.caption for p in data.pairs if p.record_id.endswith("-caption"))
    colour, shape = caption.split(".")[0].split()[-2:]                 # "... red circle."
    held = read_captions(world / "train.json", world, hold_out=f"{colour}:{shape}")
    assert held.held_out >= 2 and len(held.pairs) == 24 - held.held_out
    assert not any(names_pair(p.caption, (colour, shape)) for p in held.pairs)
    with pytest.raises(ValueError, match="'red' must look like colour:shape"):
        parse_hold_out("red")


def test_sidecar_captions_train_text_to_image_and_a_missing_caption_file_is_named(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a red circle\n\na red disc\n")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    with pytest.raises(DataValidationError, match=r"b\.txt: record 'b\.png' field caption: "
                                                  r"caption file not found"):
        read_source("sidecar_captions", str(tmp_path))
    data = read_source("sidecar_captions", str(tmp_path), skip_invalid=True)
    assert data.skipped == 1 and data.records[0]["references"] == ["a red circle", "a red disc"]
    pairs = read_captions(str(tmp_path), None, "sidecar_captions", skip_invalid=True).pairs
    assert [p.caption for p in pairs] == ["a red circle", "a red disc"]


def test_generate_writes_a_grid_of_seeds_and_eval_scores_oracle_renders(tmp_path, capsys):
    preset = str(tmp_path / "preset")
    tiny.maskgit_task(seed=3, num_steps=1).save_to_preset(preset)
    out = tmp_path / "grid.png"
    assert main(["t2i", "generate", "--model", preset, "--prompt", "a large red circle.",
                 "--prompt", "a small blue square.", "--seeds", "3", "--out", str(out), "--no-xla"]) == 0
    assert Image.open(out).size == (3 * 17 - 1, 2 * 17 - 1)
    assert main(["t2i", "eval", "--baseline", "oracle", "--per-task", "2", "--out",
                 str(tmp_path / "ev"), "--hold-out", "red:triangle"]) == 0
    scores = json.loads((tmp_path / "ev" / "metrics.json").read_text())["scores"]
    assert scores["overall"] == 1.0 and scores["held_out"] == 1.0
    assert "overall" in (tmp_path / "ev" / "report.txt").read_text()


def test_command_errors_end_with_error_and_status_2(tmp_path, capsys):
    assert main(["t2i", "eval", "--out", str(tmp_path / "x")]) == 2
    assert "error: t2i eval needs exactly one of --model and --baseline" in capsys.readouterr().err
    assert main(["t2i", "generate", "--model", str(tmp_path / "nope"), "--prompt", "x",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "nope: no such preset folder" in capsys.readouterr().err
    assert main(["t2i", "train", "--data", str(tmp_path / "missing.json"), "--image-root",
                 str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["t2i", "train", "--data", "x.json", "--image-root", str(tmp_path), "--out",
                 str(tmp_path / "run"), "--set", "generator=gan"]) == 2
    assert "generator: 'gan' is not one of maskgit, diffusion" in capsys.readouterr().err
