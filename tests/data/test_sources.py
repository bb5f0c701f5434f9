"""Tests for the COCO-captions, VQA and tfds readers and the one interface over all readers."""

import json

import numpy as np
import pytest

from tests.helpers import write_image
from vit_tf.data.sources import (
    SOURCES,
    DataValidationError,
    read_coco_captions,
    read_source,
    read_tfds,
    read_vqa,
)
from vit_tf.data.sources.coco import CAPTION_PROMPT


def _coco(tmp_path, images=None, annotations=None):
    root = tmp_path / "imgs"
    root.mkdir(exist_ok=True)
    write_image(root / "a.jpg", format="JPEG")
    write_image(root / "b.png")
    data = {
        "images": images if images is not None else [
            {"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.png"}],
        "annotations": annotations if annotations is not None else [
            {"id": 11, "image_id": 1, "caption": "A dog on a couch."},
            {"id": 10, "image_id": 1, "caption": " A brown dog. "},
            {"id": 12, "image_id": 2, "caption": "Two red circles."}],
    }
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(data))
    return str(path), str(root)


def test_coco_captions_become_caption_instructions_with_all_references(tmp_path):
    path, root = _coco(tmp_path)
    data = read_coco_captions(path, root)
    assert data.report.ok and data.skipped == 0
    first = data.records[0]
    assert first["id"] == "1" and first["category"] == "caption"
    assert first["conversations"] == [
        {"from": "human", "value": f"<image>\n{CAPTION_PROMPT}"},
        {"from": "gpt", "value": "A brown dog."}]          # lowest annotation id first, stripped
    assert first["references"] == ["A brown dog.", "A dog on a couch."]
    assert first["image_path"].endswith("a.jpg")
    per_caption = read_coco_captions(path, root, one_per_caption=True).records
    assert [r["id"] for r in per_caption] == ["1/10", "1/11", "2/12"]
    assert per_caption[1]["conversations"][1]["value"] == "A dog on a couch."


def test_coco_reader_reports_every_problem_with_file_id_and_field(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.png"},
              {"id": 3}, {"id": 4, "file_name": "missing.png"}, {"id": 5, "file_name": "b.png"}]
    annotations = [{"id": 10, "image_id": 1, "caption": "ok"},
                   {"id": 11, "image_id": 2, "caption": "  "},
                   {"id": 12, "image_id": 99, "caption": "orphan"},
                   {"id": 13, "image_id": 2, "caption": "fine"},
                   {"id": 14, "image_id": 4, "caption": "image file is missing"}]
    path, root = _coco(tmp_path, images, annotations)
    with pytest.raises(DataValidationError) as info:
        read_coco_captions(path, root)
    text = str(info.value)
    assert f"{path}: record '11' field annotations[1].caption: caption is empty" in text
    assert f"{path}: record '12' field annotations[2].image_id: image_id 99 is not in 'images'" in text
    assert f"{path}: record '3' field images[2].file_name" in text
    assert "missing.png: record '4' field image: image file not found" in text
    assert f"{path}: record '5' field annotations: image has no caption annotation" in text
    data = read_coco_captions(path, root, skip_invalid=True)
    assert [r["id"] for r in data.records] == ["1", "2"]
    assert data.records[1]["references"] == ["fine"]


@pytest.mark.parametrize("content,message", [
    ("[]", "top level must be an object"),
    ('{"images": []}', "top-level field 'annotations' is missing"),
    ("{not json", "not valid JSON"),
])
def test_coco_reader_rejects_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataValidationError, match=message) as info:
        read_coco_captions(path, tmp_path)
    assert str(path) in str(info.value)


def _vqa(tmp_path, questions=None, annotations=None, subtype="val2014"):
    root = tmp_path / "imgs"
    root.mkdir(exist_ok=True)
    write_image(root / "COCO_val2014_000000000042.jpg", format="JPEG")
    answers = ["2", "2", "two", "3", "2", "2", "2", "2", "2", "2"]
    qs = {"data_subtype": subtype, "questions": questions if questions is not None else [
        {"question_id": 420, "image_id": 42, "question": "How many dogs?"},
        {"question_id": 421, "image_id": 42, "question": "Is it sunny?"}]}
    anns = {"annotations": annotations if annotations is not None else [
        {"question_id": 420, "image_id": 42, "answer_type": "number",
         "multiple_choice_answer": "2",
         "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]},
        {"question_id": 421, "image_id": 42, "answer_type": "yes/no",
         "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(["no"] * 4 + ["yes"] * 6)]}]}
    q_path, a_path = tmp_path / "questions.json", tmp_path / "annotations.json"
    q_path.write_text(json.dumps(qs))
    a_path.write_text(json.dumps(anns))
    return str(q_path), str(a_path), str(root)


def test_vqa_reader_keeps_every_human_answer(tmp_path):
    q_path, a_path, root = _vqa(tmp_path)
    data = read_vqa(q_path, a_path, root)
    first, second = data.records
    assert first["id"] == "420" and first["category"] == "number"
    assert first["answers"] == ["2", "2", "two", "3", "2", "2", "2", "2", "2", "2"]
    assert first["conversations"][0]["value"] == "<image>\nHow many dogs?"
    assert first["conversations"][1]["value"] == "2"
    assert second["conversations"][1]["value"] == "yes"   # no multiple_choice_answer: most common
    assert first["image_path"].endswith("COCO_val2014_000000000042.jpg")
    assert read_source("vqa", q_path, a_path, root).records == data.records


def test_vqa_reader_reports_bad_answers_questions_and_images(tmp_path):
    questions = [{"question_id": 1, "image_id": 42, "question": "ok?"},
                 {"question_id": 2, "image_id": 42, "question": ""},
                 {"question_id": 3, "image_id": 42, "question": "no answers?"},
                 {"question_id": 4, "image_id": 7, "question": "missing image?"},
                 {"question_id": 5, "image_id": 42, "question": "bad answer?"}]
    good = [{"answer": "yes"}, {"answer": "no"}]
    annotations = [{"question_id": 1, "answers": good}, {"question_id": 2, "answers": good},
                   {"question_id": 4, "answers": good},
                   {"question_id": 5, "answers": [{"answer": "yes"}, {"answer": 3}]},
                   {"question_id": 9, "answers": good}]
    q_path, a_path, root = _vqa(tmp_path, questions, annotations)
    with pytest.raises(DataValidationError) as info:
        read_vqa(q_path, a_path, root)
    text = str(info.value)
    assert f"{q_path}: record '2' field questions[1].question" in text
    assert f"{a_path}: record '3' field annotations: no annotation" in text
    assert "COCO_val2014_000000000007.jpg: record '4' field image: image file not found" in text
    assert f"{a_path}: record '5' field annotations[3].answers[1].answer" in text
    assert f"{a_path}: record '9' field question_id: annotation for a question that is not" in text
    assert [r["id"] for r in read_vqa(q_path, a_path, root, skip_invalid=True).records] == ["1"]


def test_read_source_dispatches_by_name_and_rejects_unknown_formats(tmp_path):
    path, root = _coco(tmp_path)
    assert read_source("coco_captions", path, root).records == read_coco_captions(path, root).records
    assert SOURCES.names() == ["coco_captions", "imagefolder", "llava", "sidecar_captions",
                               "tfds", "vqa"]
    with pytest.raises(KeyError, match="unknown data source 'csv'"):
        read_source("csv", path, root)


def test_tfds_coco_captions_from_mock_data_gives_caption_records(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        expected = list(tfds.as_numpy(tfds.load("coco_captions", split="val",
                                                data_dir=str(tmp_path / "none"))))
        data = read_tfds("coco_captions", "val", data_dir=str(tmp_path / "none"),
                         image_dir=str(tmp_path / "imgs"))
    assert data.report.ok and len(data.records) == 3
    for record, example in zip(data.records, expected):
        captions = [c.decode().strip() for c in example["captions"]["text"]]
        assert record["id"] == str(example["image/id"])
        assert record["references"] == captions
        assert record["conversations"][1]["value"] == captions[0]
        from PIL import Image

        np.testing.assert_array_equal(np.asarray(Image.open(record["image_path"])),
                                      example["image"])


def test_tfds_reader_names_the_dataset_when_it_is_not_prepared(tmp_path):
    with pytest.raises(DataValidationError, match=r"tfds:coco_captions/val in .*nothing is "
                                                  "downloaded"):
        read_tfds("coco_captions", "val", data_dir=str(tmp_path), image_dir=str(tmp_path / "i"))


def test_tfds_shapes_builder_equals_the_shapes_world_on_disk(tmp_path):
    import tensorflow_datasets as tfds
    from PIL import Image

    from vit_tf.data.shapes import write_shapes_world
    from vit_tf.data.tfds_shapes import ShapesBuilderConfig

    write_shapes_world(tmp_path / "world", n_train=2, n_test=1, seed=3)
    on_disk = json.loads((tmp_path / "world" / "train.json").read_text())
    tiny = ShapesBuilderConfig(name="tiny", n_train=2, n_test=1, seed=3)
    ds = tfds.load("vit_tf_shapes", split="train", data_dir=str(tmp_path / "tfds"),
                   builder_kwargs={"config": tiny})
    loaded = {ex["id"].decode(): ex for ex in tfds.as_numpy(ds)}
    assert sorted(loaded) == sorted(r["id"] for r in on_disk)
    for record in on_disk:
        ex = loaded[record["id"]]
        assert ex["category"].decode() == record["category"]
        assert [t.decode() for t in ex["conversations"]["value"]] == [
            t["value"] for t in record["conversations"]]
        np.testing.assert_array_equal(
            ex["image"], np.asarray(Image.open(tmp_path / "world" / record["image"])))
    data = read_tfds("vit_tf_shapes", "train", data_dir=str(tmp_path / "tfds"),
                     image_dir=str(tmp_path / "imgs"), builder_kwargs={"config": tiny})
    assert sorted(r["id"] for r in data.records) == sorted(loaded)
