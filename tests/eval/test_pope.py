"""POPE on the shapes world: the questions, their scoring and `vit-tf eval --benchmark pope`."""

import collections
import json
import os

import pytest
from PIL import Image

from tests.helpers import write_tiny_run
from vit_tf.data.shapes import ShapesConfig, write_shapes_world
from vit_tf.eval.pope import (
    SETTINGS,
    binary_metrics,
    load_world,
    pair_statistics,
    parse_yes_no,
    pope_items,
    score_pope,
)

WORLD = ShapesConfig(canvas_size=32, max_objects=2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    write_shapes_world(out, n_train=30, n_test=6, seed=1, config=WORLD)
    return out


def test_pope_items_are_balanced_and_true_to_the_scenes(world):
    items = pope_items(world, seed=0)
    _, scenes = load_world(world, "test")
    counts = collections.Counter((it["setting"], it["reference"]) for it in items)
    for setting in SETTINGS:
        assert counts[(setting, "yes")] == counts[(setting, "no")] > 0
    for it in items:
        index = int(it["id"].split("/")[1])
        present = {f"{o.color} {o.shape}" for o in scenes[index].objects}
        assert (it["object"] in present) == (it["reference"] == "yes")
        assert it["prompt"][0]["value"].startswith("<image>\nIs there a")
        assert os.path.exists(it["image_path"])
    assert pope_items(world, seed=0) == items
    assert pope_items(world, seed=1) != items  # the random negatives move with the seed


def test_popular_and_adversarial_negatives_follow_their_definitions(world):
    items = pope_items(world, seed=0)
    _, scenes = load_world(world, "test")
    frequency, _ = pair_statistics(load_world(world, "train")[1])
    all_pairs = [f"{c} {s}" for c in WORLD.colors for s in WORLD.shapes]
    for index, scene in enumerate(scenes):
        present = {(o.color, o.shape) for o in scene.objects}
        absent = [p for p in all_pairs if tuple(p.split()) not in present]
        popular = [it["object"] for it in items
                   if it["setting"] == "popular" and it["id"].split("/")[1] == str(index)
                   and it["reference"] == "no"]
        top = sorted(absent, key=lambda p: (-frequency[tuple(p.split())], tuple(p.split())))
        assert popular == top[:len(popular)]
        for it in items:
            if (it["setting"], it["reference"]) == ("adversarial", "no") and \
                    it["id"].split("/")[1] == str(index):
                colour, shape = it["object"].split()
                assert any(colour == c or shape == s for c, s in present)


def test_pope_refuses_images_that_the_metadata_does_not_describe(tmp_path):
    write_shapes_world(tmp_path, n_train=2, n_test=2, seed=0, config=WORLD)
    Image.new("RGB", (32, 32)).save(tmp_path / "images" / "test_000001.png")
    with pytest.raises(ValueError, match="test_000001.png: differs from scene 1"):
        pope_items(tmp_path)
    with pytest.raises(FileNotFoundError, match="shapes_world.json"):
        pope_items(tmp_path / "images")


@pytest.mark.parametrize("text,parsed", [("yes", "yes"), ("Yes, there is.", "yes"),
                                         ("no", "no"), ("there is not", "no"),
                                         ("yes no", "no"), ("a red circle", "other")])
def test_parse_yes_no_follows_pope(text, parsed):
    assert parse_yes_no(text) == parsed


def test_binary_metrics_by_hand():
    refs = ["yes", "yes", "yes", "no", "no", "no"]
    preds = ["yes", "yes", "other", "yes", "no", "no"]
    m = binary_metrics(refs, preds)
    # tp=2 fp=1 fn=1 tn=2: precision 2/3, recall 2/3, accuracy 4/6, yes-ratio 3/6
    assert m["accuracy"] == pytest.approx(4 / 6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == 0.5 and m["unparsed"] == 1


def test_an_always_yes_model_scores_half_with_yes_ratio_one(world):
    items = pope_items(world)
    for it in items:
        it["prediction"] = "yes"
    metrics = score_pope(items)
    for setting in SETTINGS:
        m = metrics["settings"][setting]
        assert (m["accuracy"], m["recall"], m["precision"], m["yes_ratio"]) == (0.5, 1.0, 0.5, 1.0)


def _tiny_run(path, **overrides):
    write_tiny_run(str(path), **{"data__image_size": 32, **overrides})
    return path


def test_eval_pope_and_compare_write_a_pinned_report_and_one_table(world, tmp_path, capsys):
    from vit_tf.cli import main

    run = _tiny_run(tmp_path / "run")
    assert main(["eval", "--model", str(run), "--benchmark", "pope", "--image-root", str(world),
                 "--limit", "12"]) == 0
    report = json.loads((run / "eval" / "pope" / "metrics.json").read_text())
    assert report["prompt"]["prompt_template"] == "Is there {a} in the image?"
    assert report["decoding"]["strategy"] == "greedy" and report["decoding"]["max_new_tokens"] == 8
    assert len(report["dataset"]["sha256"]) == 64 and report["dataset"]["n_items"] == 12
    assert set(report["settings"]) <= set(SETTINGS)
    lines = (run / "eval" / "pope" / "predictions.jsonl").read_text().strip().split("\n")
    assert len(lines) == 12
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**report, "settings": {"random": {
        "accuracy": 0.25, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.5}}}))
    capsys.readouterr()
    assert main(["compare", str(run), str(other)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.split("\n") if line.startswith("pope/random/accuracy"))
    assert row.split()[-1] == "25.0"
    assert "pope/dataset sha256" in table
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_eval_needs_a_benchmark_or_data_but_not_both(world, tmp_path, capsys):
    from vit_tf.cli import main

    run = _tiny_run(tmp_path / "run")
    assert main(["eval", "--model", str(run), "--image-root", str(world)]) == 2
    assert "either a benchmark" in capsys.readouterr().err
    assert main(["eval", "--model", str(run), "--benchmark", "mmlu", "--image-root",
                 str(world)]) == 2
    assert "unknown benchmark 'mmlu'" in capsys.readouterr().err


def test_negatives_are_classified_by_the_attribute_they_share(world):
    items = pope_items(world)
    _, scenes = load_world(world, "test")
    for it in items:
        scene = scenes[int(it["id"].split("/")[1])]
        colour, shape = it["object"].split()
        shares_colour = any(o.color == colour for o in scene.objects)
        shares_shape = any(o.shape == shape for o in scene.objects)
        if it["reference"] == "yes":
            assert it["negative_kind"] == "present"
        else:
            expected = {(True, True): "colour+shape", (True, False): "colour",
                        (False, True): "shape", (False, False): "neither"}
            assert it["negative_kind"] == expected[(shares_colour, shares_shape)]
    for it in items:
        it["prediction"] = "yes" if it["negative_kind"] in ("present", "colour") else "no"
    by_kind = score_pope(items)["negatives_by_kind"]
    assert by_kind["colour"]["false_yes_rate"] == 1.0
    assert all(m["false_yes_rate"] == 0.0 for k, m in by_kind.items() if k != "colour")
