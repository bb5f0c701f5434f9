"""``vit-tf eval`` / ``evaluate_run`` on data files and benchmarks: one report schema for every
path (quickstart included), VQA soft accuracy and caption references in it."""

import json

import pytest

from tests.data.test_sources import _coco, _vqa
from tests.eval.test_pope import _tiny_run
from vit_tf.cli import main
from vit_tf.eval.compare import flatten_metrics


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("evaluate_run") / "run", data__max_text_length=64)


def test_eval_on_a_vqa_file_reports_soft_accuracy_per_answer_type(run, tmp_path, monkeypatch):
    """Known answers in, hand-computed scores out (not the metric functions re-run): "Two" for
    "How many dogs?" (humans: eight "2", one "two", one "3") and "maybe" for "Is it sunny?"."""
    import hashlib

    from vit_tf.models.generation import Generator

    answers = {"How many dogs?": "Two", "Is it sunny?": "maybe"}
    monkeypatch.setattr(Generator, "generate", lambda self, images, conversations: [
        answers[c[-1]["value"].replace("<image>", "").strip()] for c in conversations])
    q_path, a_path, root = _vqa(tmp_path)
    out = tmp_path / "vqa_eval"
    assert main(["eval", "--model", str(run), "--data", q_path, "--format", "vqa",
                 "--annotations", a_path, "--image-root", root, "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    items = [json.loads(line) for line in (out / "predictions.jsonl").read_text().split("\n")
             if line]
    assert [(it["prediction"], it["vqa_accuracy"], it["correct"]) for it in items] == [
        ("Two", 1.0, 1.0), ("maybe", 0.0, 0.0)]   # "Two" -> "2": eight humans match
    assert report["categories"]["number"]["vqa_accuracy"] == 1.0
    assert report["categories"]["yes/no"]["vqa_accuracy"] == 0.0
    assert report["overall"]["exact_match"] == 0.5 and report["overall"]["n"] == 2
    assert report["dataset"]["format"] == "vqa" and len(report["dataset"]["files"]) == 2
    # The documented digest: SHA-256 over each item's id, prompt, reference(s), image bytes.
    image = hashlib.sha256(open(f"{root}/COCO_val2014_000000000042.jpg", "rb").read()).hexdigest()
    digest = hashlib.sha256()
    for it in items:
        row = {"id": it["id"], "prompt": it["prompt"], "reference": it["reference"],
               "answers": it["answers"], "references": it.get("references"), "image": image}
        digest.update(json.dumps(row, sort_keys=True).encode())
    assert report["dataset"]["sha256"] == digest.hexdigest()


def test_eval_on_coco_captions_scores_against_every_reference(run, tmp_path, capsys):
    path, root = _coco(tmp_path)
    out = tmp_path / "coco_eval"
    assert main(["eval", "--model", str(run), "--data", path, "--format", "coco_captions",
                 "--image-root", root, "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["prompt"]["prompt_template"] == "Describe the image briefly."
    items = [json.loads(line) for line in (out / "predictions.jsonl").read_text().split("\n")
             if line]
    assert items[0]["references"] == ["A brown dog.", "A dog on a couch."]
    rows = flatten_metrics(report)
    assert "captions/caption/exact_match" in rows
    assert main(["eval", "--model", str(run), "--data", path, "--format", "csv",
                 "--image-root", root, "--out", str(out)]) == 2
    assert "unknown data format 'csv'" in capsys.readouterr().err


def test_eval_and_shard_read_tfds_datasets_by_name_and_split(run, tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=2):
        assert main(["eval", "--model", str(run), "--data", "coco_captions:val", "--format",
                     "tfds", "--tfds-data-dir", str(tmp_path / "none"), "--image-root",
                     str(tmp_path / "imgs"), "--out", str(tmp_path / "e"),
                     "--skip-invalid"]) == 0
        assert main(["data", "shard", "--data", "coco_captions:val", "--format", "tfds",
                     "--tfds-data-dir", str(tmp_path / "none"), "--image-root",
                     str(tmp_path / "imgs2"), "--out", str(tmp_path / "s"), "--shards", "2"]) == 0
    report = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert report["dataset"]["files"][0].startswith("tfds:coco_captions:val in ")
    assert report["prompt"]["prompt_template"] == "Describe the image briefly."
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["num_records"] == 2
    assert main(["data", "shard", "--data", "coco_captions", "--format", "tfds",
                 "--image-root", str(tmp_path), "--out", str(tmp_path / "t"),
                 "--shards", "1"]) == 2


PINS = {"schema_version", "benchmark", "model", "dataset", "prompt", "decoding"}


def _report_shape(report):
    """The schema's keys: top level and each pinned section's."""
    return {key: sorted(report[key]) if isinstance(report[key], dict) else None for key in PINS}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vit_tf.data.shapes import ShapesConfig, write_shapes_world

    out = tmp_path_factory.mktemp("world")
    write_shapes_world(out, n_train=8, n_test=2, seed=1,
                       config=ShapesConfig(canvas_size=32, max_objects=2))
    return out


def test_every_eval_path_writes_one_schema_with_its_pins(run, world, tmp_path, monkeypatch):
    import vit_tf.training.train as train_module

    reports = {}
    for name, argv in (("data", ["--data", str(world / "test.json")]),
                       ("shapes", ["--benchmark", "shapes"]),
                       ("pope", ["--benchmark", "pope", "--limit", "6"])):
        out = tmp_path / name
        assert main(["eval", "--model", str(run), *argv, "--image-root", str(world),
                     "--out", str(out), "--skip-invalid"]) == 0
        reports[name] = json.loads((out / "metrics.json").read_text())
        assert (out / "report.txt").exists() and (out / "predictions.jsonl").exists()

    def fake_train(config, data, image_root, out, **kwargs):   # the quickstart, minus training
        _tiny_run(tmp_path / "quick" / "run", data__max_text_length=160)

    monkeypatch.setattr(train_module, "train", fake_train)
    assert main(["quickstart", "--out", str(tmp_path / "quick"), "--train", "3",
                 "--test", "1"]) == 0
    reports["quickstart"] = json.loads(
        (tmp_path / "quick" / "run" / "eval" / "metrics.json").read_text())

    shapes = {name: _report_shape(r) for name, r in reports.items()}
    assert all(shape == shapes["data"] for shape in shapes.values()), shapes
    for name, report in reports.items():
        assert report["schema_version"] == 1
        assert report["prompt"]["chat_format"] == "vit_tf"
        assert report["prompt"]["chat_template"] == (
            "<|user|> {human} <|end|> <|assistant|> {gpt} <|end|>")
        assert report["prompt"]["history"] == "ground truth"
        assert len(report["dataset"]["sha256"]) == 64 and len(report["model"]["sha256"]) == 64
        assert report["decoding"]["strategy"] == "greedy"
        assert report["decoding"]["max_new_tokens"] == 8 and report["decoding"]["use_cache"]
        assert ("settings" in report) == (name == "pope")
        assert ("categories" in report and "overall" in report) == (name != "pope")
    assert reports["quickstart"]["benchmark"] == "shapes"
    # A data file and the benchmark reading the same file are the same evaluation.
    assert reports["data"]["dataset"]["sha256"] == reports["shapes"]["dataset"]["sha256"]
    assert reports["data"]["categories"] == reports["shapes"]["categories"]
