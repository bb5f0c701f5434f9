"""The harness on data files: VQA soft accuracy and caption references reach the report."""

import json

import pytest

from tests.data.test_sources import _coco, _vqa
from tests.eval.test_pope import _tiny_run
from vit_tf.cli import main
from vit_tf.eval.harness import dataset_sha256, flatten_metrics
from vit_tf.eval.metrics import vqa_accuracy


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("harness") / "run", data__max_text_length=64)


def test_eval_on_a_vqa_file_reports_soft_accuracy_per_answer_type(run, tmp_path):
    q_path, a_path, root = _vqa(tmp_path)
    out = tmp_path / "vqa_eval"
    assert main(["eval", "--model", str(run), "--data", q_path, "--format", "vqa",
                 "--annotations", a_path, "--image-root", root, "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    items = [json.loads(line) for line in (out / "predictions.jsonl").read_text().split("\n")
             if line]
    assert len(items) == 2 and all(len(it["answers"]) == 10 for it in items)
    for it in items:
        assert it["vqa_accuracy"] == vqa_accuracy(it["prediction"], it["answers"])
        assert report["categories"][it["category"]]["vqa_accuracy"] == it["vqa_accuracy"]
    assert report["dataset"]["format"] == "vqa" and len(report["dataset"]["files"]) == 2
    assert report["dataset"]["sha256"] == dataset_sha256(
        [{**it, "image_path": f"{root}/COCO_val2014_000000000042.jpg"} for it in items])


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
