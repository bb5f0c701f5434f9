"""vit_tf.experiments.shapes_breakdown: groups from rebuilt scenes, answers from eval output."""

import json

import pytest

from vit_tf.data.shapes import Scene, ShapeObject, write_shapes_world
from vit_tf.experiments.shapes_breakdown import (geometry_group, main, parse_relation,
                                                 relation_groups, relation_probes)


def _object(color, shape, x, y, side=12):
    return ShapeObject(color, shape, "small", (x - side // 2, y - side // 2, x + side // 2,
                                               y + side // 2), (float(x), float(y)))


def _question(prompt, answer, category):
    return {"conversations": [{"from": "human", "value": "<image>\n" + prompt},
                              {"from": "gpt", "value": answer}], "category": category}


def test_position_questions_are_grouped_by_objects_across_the_middle():
    scene = Scene((_object("red", "circle", 10, 10), _object("blue", "square", 50, 12),
                   _object("green", "triangle", 54, 50)), 64)
    x = _question("Is the red circle on the left or the right?", "left", "position")
    y = _question("Is the red circle at the top or the bottom?", "top", "position")
    assert geometry_group(x, scene) == "position/opposite=2"   # both others are on the right
    assert geometry_group(y, scene) == "position/opposite=1"   # only the triangle is below
    sized = _question("Is there a large red circle?", "no", "existence")
    plain = _question("Is there a red circle?", "yes", "existence")
    assert geometry_group(sized, scene) == "existence/sized"
    assert geometry_group(plain, scene) == "existence/plain"
    assert geometry_group(_question("How many?", "3", "counting"), scene) is None


def test_breakdown_of_eval_predictions(tmp_path, capsys):
    write_shapes_world(tmp_path, n_train=1, n_test=12, seed=0)
    records = json.loads((tmp_path / "test.json").read_text())
    wrong = next(r["id"] for r in records if r["category"] == "position")
    with open(tmp_path / "predictions.jsonl", "w") as f:
        for r in records:
            answer = r["conversations"][1]["value"]
            f.write(json.dumps({"record_id": r["id"], "turn": 0,
                                "prediction": "nowhere" if r["id"] == wrong else answer}) + "\n")
    main(["--data", str(tmp_path / "test.json"), "--image-root", str(tmp_path),
          "--predictions", str(tmp_path / "predictions.jsonl")])
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in
            capsys.readouterr().out.splitlines() if line.startswith("| ") and "group" not in line}
    positions = sum(r["category"] == "position" for r in records)
    assert float(rows["position"][0]) == pytest.approx(100 * (positions - 1) / positions, abs=0.05)
    opposite = [k for k in rows if k.startswith("position/opposite=")]
    assert opposite and sum(int(rows[k][1]) for k in opposite) == positions
    assert sum(int(rows[k][1]) for k in rows if k.startswith("existence/") and
               k.split("/")[1] in ("sized", "plain")) == 12


def test_a_missing_prediction_is_named(tmp_path):
    write_shapes_world(tmp_path, n_train=1, n_test=2, seed=0)
    (tmp_path / "predictions.jsonl").write_text("")
    with pytest.raises(SystemExit, match="no prediction for .* e.g. test-000000-attribute"):
        main(["--data", str(tmp_path / "test.json"), "--image-root", str(tmp_path),
              "--predictions", str(tmp_path / "predictions.jsonl")])


def test_breakdown_generates_answers_with_a_run_folder(tmp_path, capsys):
    """--model: the run's task answers each question from its image file (the preprocessor
    decodes and resizes it), one table row per group."""
    from vit_tf.experiments.shapes_breakdown import CATEGORIES
    from tests.helpers import write_tiny_run

    write_shapes_world(tmp_path / "data", n_train=1, n_test=2, seed=0)
    write_tiny_run(str(tmp_path / "run"))
    records = json.loads((tmp_path / "data" / "test.json").read_text())
    main(["--data", str(tmp_path / "data" / "test.json"), "--image-root", str(tmp_path / "data"),
          "--model", str(tmp_path / "run")])
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in
            capsys.readouterr().out.splitlines() if line.startswith("| ") and "group" not in line}
    asked = [r for r in records if r.get("category") in CATEGORIES]
    by_objects = [k for k in rows if "/objects=" in k]
    assert asked and sum(int(rows[k][1]) for k in by_objects) == len(asked)
    assert all(0 <= float(rows[k][0]) <= 100 for k in rows)

    # --predictions and --model: eval's answers, and the run answers the side of each object
    # named in a relation question alone (relation/alone=...), one verdict per relation record.
    with open(tmp_path / "predictions.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps({"record_id": r["id"], "turn": 0, "prediction": "yes"}) + "\n")
    main(["--data", str(tmp_path / "data" / "test.json"), "--image-root", str(tmp_path / "data"),
          "--model", str(tmp_path / "run"), "--predictions", str(tmp_path / "predictions.jsonl")])
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in
            capsys.readouterr().out.splitlines() if line.startswith("| ") and "group" not in line}
    relations = sum(r["category"] == "relation" for r in records)
    assert relations and sum(int(rows[k][1]) for k in rows if k.startswith(
        "relation/alone=")) == relations


def test_relation_questions_are_grouped_by_form_gap_halves_and_shared_attributes():
    scene = Scene((_object("red", "circle", 10, 10), _object("blue", "square", 22, 50),
                   _object("red", "triangle", 54, 14)), 64)
    left = _question("Is the red circle to the left of the blue square?", "yes", "relation")
    assert parse_relation(left["conversations"][0]["value"]) == (
        "left", ("red circle", "blue square"))
    # x gap 12 px = 0.19 of the canvas, both in the left half; the red triangle shares a colour.
    assert relation_groups(left, scene) == [
        "relation/form=left", "relation/answer=yes", "relation/gap=0.1-0.2",
        "relation/halves=same", "relation/shared=1"]
    lower = _question("Is the red triangle lower than the blue square?", "no", "relation")
    assert relation_groups(lower, scene)[:4] == [
        "relation/form=below", "relation/answer=no", "relation/gap=>=0.35", "relation/halves=apart"]
    far = _question("Which object is farthest from the red circle?", "the red triangle",
                    "relation")
    # Distances from the red circle: square 41.8, triangle 44.2 -> margin 0.04 of the canvas.
    keys = relation_groups(far, scene, prediction="the blue square")
    assert keys[:4] == ["relation/form=furthest", "relation/answer=name",
                        "relation/furthest-margin=0.1-0.2", "relation/furthest-said=runner-up"]
    assert relation_groups(far, scene, prediction="the red circle")[3] == (
        "relation/furthest-said=asked")
    assert relation_groups(_question("How many?", "3", "counting"), scene) == []


def test_relation_probes_ask_each_named_object_alone_off_the_middle():
    scene = Scene((_object("red", "circle", 10, 10), _object("blue", "square", 34, 50)), 64)
    left = _question("Is the red circle left of the blue square?", "yes", "relation")
    # The square is at x = 34, inside the middle band: only the circle has a side to ask.
    assert relation_probes(left, scene) == [
        ("<image>\nIs the red circle on the left or the right?", "left")]
    above = _question("Is the blue square above the red circle?", "no", "relation")
    assert [truth for _, truth in relation_probes(above, scene)] == ["bottom", "top"]


def test_write_val_splits_relation_categories_by_form(tmp_path):
    write_shapes_world(tmp_path, n_train=1, n_test=30, seed=0)
    counts = main(["--data", str(tmp_path / "test.json"), "--image-root", str(tmp_path),
                   "--write-val", str(tmp_path / "by_form.json")])
    assert counts is None
    plain = json.loads((tmp_path / "test.json").read_text())
    split = json.loads((tmp_path / "by_form.json").read_text())
    assert [r["id"] for r in split] == [r["id"] for r in plain]
    forms = {r["category"] for r in split if r["category"].startswith("relation")}
    assert forms and all(f.split("/")[1] in ("left", "right", "above", "below", "closest",
                                            "furthest") for f in forms)
    assert sum(r["category"].startswith("relation/") for r in split) == sum(
        r["category"] == "relation" for r in plain)


def test_answer_prior_is_the_blind_entropy_per_trained_token():
    """Names masked, "Is there a red circle?" and "Is there a blue square?" share a context:
    answers yes / no / yes / no -> majority 50%, ln 2 nats per question over 2 trained tokens."""
    import math

    import numpy as np

    from vit_tf.experiments.shapes_breakdown import answer_prior

    class TwoTokenAnswers:   # every answer is one token plus <|end|>: 2 trained tokens
        def encode_conversations(self, conversations):
            return [(None, np.array([False, True, True])) for _ in conversations]

    records = [_question(f"Is there a {name}?", answer, "existence") for name, answer in
               (("red circle", "yes"), ("blue square", "no"), ("green circle", "yes"),
                ("red triangle", "no"))]
    records.append(_question("What colour is the square?", "red", "attribute"))
    prior = answer_prior(records, TwoTokenAnswers())
    assert prior["existence"] == pytest.approx((50.0, math.log(2) / 2))
    assert prior["attribute"] == pytest.approx((100.0, 0.0))
    assert prior["all"] == pytest.approx((60.0, 4 * math.log(2) / 10))
