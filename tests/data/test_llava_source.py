"""Tests for the LLaVA JSON reader and its validator: every problem is found, named and counted."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from vit_tf.data.sources import (
    DataValidationError,
    Problem,
    ValidationReport,
    load_image_rgb,
    read_llava,
    validate_record,
)
from vit_tf.data.sources.validation import SKIP_HINT


def _rgb(size=(12, 8)):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _write_images(root):
    """One file per kind of image the tests need, named by what it is."""
    root.mkdir(exist_ok=True)
    _rgb().save(root / "rgb.png")
    _rgb().save(root / "photo.jpg", format="JPEG")
    _rgb().save(root / "jpeg_named.png", format="JPEG")
    _rgb().convert("L").save(root / "gray.png")
    _rgb().convert("P").save(root / "palette.png")
    _rgb().convert("RGBA").save(root / "rgba.png")
    _rgb().convert("CMYK").save(root / "cmyk.jpg", format="JPEG")
    _rgb().save(root / "anim.gif", format="GIF")
    (root / "notes.png").write_text("this is not an image")
    (root / "a_folder.png").mkdir()
    big = _rgb((128, 128))
    big.save(root / "whole.png")
    data = (root / "whole.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    big.save(root / "whole.jpg", format="JPEG")
    data = (root / "whole.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    return root


@pytest.fixture
def images(tmp_path):
    return _write_images(tmp_path / "images")


def _record(record_id="r1", image="rgb.png", **overrides):
    record = {
        "id": record_id,
        "image": image,
        "conversations": [
            {"from": "human", "value": "<image>\nWhat shape is this?"},
            {"from": "gpt", "value": "A red circle."},
        ],
    }
    record.update(overrides)
    return record


def _write_json(tmp_path, records, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return str(path)


def _problems_of(tmp_path, images, record):
    """The problems ``read_llava`` reports for a file holding just ``record``."""
    with pytest.raises(DataValidationError) as caught:
        read_llava(_write_json(tmp_path, [record]), images)
    return caught.value.report.problems


def _turns(*pairs):
    return [{"from": role, "value": value} for role, value in pairs]


BAD_RECORDS = {
    "record_not_object": (["not", "a", "record"], "#0", "-", "must be a JSON object"),
    "missing_id": ({k: v for k, v in _record().items() if k != "id"}, "#0", "id", "no 'id'"),
    "empty_id": (_record(record_id=""), "#0", "id", "id is empty"),
    "id_wrong_type": (_record(record_id=1.5), "#0", "id", "string or integer"),
    "missing_image_field": ({k: v for k, v in _record().items() if k != "image"}, "r1", "image",
                            "no 'image'"),
    "image_not_string": (_record(image=7), "r1", "image", "must be a path string"),
    "image_file_missing": (_record(image="nowhere.png"), "r1", "image", "not found"),
    "image_is_directory": (_record(image="a_folder.png"), "r1", "image", "is a directory"),
    "text_file_named_png": (_record(image="notes.png"), "r1", "image", "not an image file"),
    "gif_unsupported": (_record(image="anim.gif"), "r1", "image", "unsupported image format GIF"),
    "truncated_png": (_record(image="truncated.png"), "r1", "image", "corrupt or truncated"),
    "truncated_jpeg": (_record(image="truncated.jpg"), "r1", "image", "corrupt or truncated"),
    "conversations_missing": ({k: v for k, v in _record().items() if k != "conversations"}, "r1",
                              "conversations", "no 'conversations'"),
    "conversations_not_list": (_record(conversations={"from": "human"}), "r1", "conversations",
                               "must be a list"),
    "conversations_empty": (_record(conversations=[]), "r1", "conversations", "is empty"),
    "turn_not_object": (_record(conversations=_turns(("human", "<image> hi")) + ["hello"]), "r1",
                        "conversations[1]", "turn must be an object"),
    "turn_missing_from": (_record(conversations=[{"from": "human", "value": "<image> hi"},
                                                 {"value": "yes"}]),
                          "r1", "conversations[1].from", "no 'from'"),
    "turn_missing_value": (_record(conversations=[{"from": "human", "value": "<image> hi"},
                                                  {"from": "gpt"}]),
                           "r1", "conversations[1].value", "no 'value'"),
    "value_not_string": (_record(conversations=_turns(("human", "<image> hi"), ("gpt", 3))), "r1",
                         "conversations[1].value", "must be a string, got integer"),
    "value_empty": (_record(conversations=_turns(("human", "<image> hi"), ("gpt", "  "))), "r1",
                    "conversations[1].value", "value is empty"),
    "unknown_role": (_record(conversations=_turns(("human", "<image> hi"), ("bot", "yes"))), "r1",
                     "conversations[1].from", "unknown role 'bot' (expected 'human' or 'gpt')"),
    "first_turn_gpt": (_record(conversations=_turns(("gpt", "hello"), ("human", "<image> hi"),
                                                    ("gpt", "yes"))),
                       "r1", "conversations[0].from", "should be 'human'"),
    "two_human_turns": (_record(conversations=_turns(("human", "<image> a"), ("human", "b"),
                                                     ("gpt", "c"))),
                        "r1", "conversations[1].from", "should be 'gpt'"),
    "last_turn_human": (_record(conversations=_turns(("human", "<image> a"), ("gpt", "b"),
                                                     ("human", "c"))),
                        "r1", "conversations[2].from", "must be 'gpt'"),
    "image_token_missing": (_record(conversations=_turns(("human", "hi"), ("gpt", "yes"))), "r1",
                            "conversations[0].value", "must contain '<image>'"),
    "image_token_in_later_turn": (_record(conversations=_turns(("human", "<image> a"),
                                                               ("gpt", "b <image>"))),
                                  "r1", "conversations[1].value", "2 in the record"),
    "image_token_twice_in_first_turn": (_record(conversations=_turns(("human", "<image><image>"),
                                                                     ("gpt", "b"))),
                                        "r1", "conversations[0].value", "exactly once"),
    "category_not_string": (_record(category=["a"]), "r1", "category", "must be a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_each_bad_input_is_reported_with_record_field_and_reason(tmp_path, images, case):
    record, record_id, field, phrase = BAD_RECORDS[case]
    problems = _problems_of(tmp_path, images, record)
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert (problem.record_id, problem.field) == (record_id, field)
    assert phrase in problem.message


def test_image_problems_name_the_image_file(tmp_path, images):
    (problem,) = _problems_of(tmp_path, images, _record(image="notes.png"))
    assert problem.file == os.path.abspath(images / "notes.png")


def test_duplicate_id_is_reported_on_the_later_record_with_the_first_index(tmp_path, images):
    records = [_record("a"), _record("b"), _record(1), _record("a")]
    with pytest.raises(DataValidationError) as caught:
        read_llava(_write_json(tmp_path, records + [_record("1")]), images)
    problems = caught.value.report.problems
    assert [(p.record_id, p.field) for p in problems] == [("a", "id"), ("1", "id")]
    assert "index 0" in problems[0].message and "index 2" in problems[1].message


def test_all_problems_in_all_records_are_reported_at_once(tmp_path, images):
    records = [
        _record("ok1"),
        _record("bad_image", image="nowhere.png"),
        _record("two_problems", image="anim.gif", category=5),
        _record("role", conversations=_turns(("human", "<image> a"), ("bot", "b"))),
        _record("ok2", image="gray.png"),
        {"image": "rgb.png", "conversations": []},
    ]
    with pytest.raises(DataValidationError) as caught:
        read_llava(_write_json(tmp_path, records), images, num_workers=3)
    report = caught.value.report
    assert [(p.record_id, p.field) for p in report.problems] == [
        ("bad_image", "image"),
        ("two_problems", "image"),
        ("two_problems", "category"),
        ("role", "conversations[1].from"),
        ("#5", "id"),
        ("#5", "conversations"),
    ]
    assert (report.n_records, report.n_valid, report.n_invalid) == (6, 2, 4)
    text = str(caught.value)
    assert text == report.format() + "\n" + SKIP_HINT
    assert all(str(p) in text for p in report.problems)


def test_problems_keep_record_order_when_images_are_checked_in_threads(tmp_path, images):
    records = [_record(str(i), image=f"missing_{i}.png") for i in range(40)]
    with pytest.raises(DataValidationError) as caught:
        read_llava(_write_json(tmp_path, records), images, num_workers=8)
    assert [p.record_id for p in caught.value.report.problems] == [str(i) for i in range(40)]


def test_an_image_shared_by_records_is_opened_once_and_reported_under_each(tmp_path, images,
                                                                          monkeypatch):
    from vit_tf.data.sources import validation

    opened = []
    check = validation.check_image_file
    monkeypatch.setattr(validation, "check_image_file",
                        lambda path, *args: opened.append(path) or check(path, *args))
    records = [_record("q1", image="truncated.png"), _record("ok"),
               _record("q2", image="truncated.png"), _record("ok2")]
    with pytest.raises(DataValidationError) as caught:
        read_llava(_write_json(tmp_path, records), images, num_workers=2)
    problems = caught.value.report.problems
    assert [(p.record_id, p.field, p.kind) for p in problems] == [
        ("q1", "image", "corrupt image"), ("q2", "image", "corrupt image")]
    assert problems[0].file == problems[1].file == os.path.abspath(images / "truncated.png")
    assert sorted(os.path.basename(p) for p in opened) == ["rgb.png", "truncated.png"]


def test_skip_invalid_returns_valid_records_skipped_count_and_summary(tmp_path, images):
    records = [
        _record("a"),
        _record("b", image="nowhere.png"),
        _record("c", conversations=_turns(("human", "<image> a"), ("bot", "b"))),
        _record("d", image="gone.png"),
        _record("e", image="photo.jpg"),
    ]
    data = read_llava(_write_json(tmp_path, records), images, skip_invalid=True)
    assert [r["id"] for r in data.records] == ["a", "e"]
    assert data.skipped == 3
    assert data.report.summary() == "3 of 5 records invalid: 2 missing image, 1 unknown role"


def test_skip_invalid_still_raises_when_no_record_is_valid(tmp_path, images):
    path = _write_json(tmp_path, [_record("a", image="nowhere.png")])
    with pytest.raises(DataValidationError, match="1 of 1 records invalid"):
        read_llava(path, images, skip_invalid=True)


def test_valid_records_round_trip_with_absolute_paths_and_string_ids(tmp_path, images):
    names = ["rgb.png", "photo.jpg", "jpeg_named.png", "gray.png", "palette.png", "rgba.png",
             "cmyk.jpg"]
    records = [_record(i, image=name) for i, name in enumerate(names)]
    records[0]["category"] = "counting"
    records[1]["extra"] = {"kept": True}
    data = read_llava(_write_json(tmp_path, records), str(images))
    assert data.report.ok and data.skipped == 0
    assert data.report.summary() == "all 7 records valid"
    assert [r["id"] for r in data.records] == [str(i) for i in range(7)]
    for record, name in zip(data.records, names):
        assert os.path.isabs(record["image_path"])
        assert record["image_path"] == os.path.abspath(images / name)
        assert record["conversations"] == _record()["conversations"]
    assert [r["category"] for r in data.records[:2]] == ["counting", ""]
    assert data.records[1]["extra"] == {"kept": True}
    assert records[0]["id"] == 0, "the caller's records are not modified"


def test_check_images_false_skips_only_the_image_file_checks(tmp_path, images):
    records = [_record("a", image="nowhere.png"), _record("b", image="notes.png")]
    data = read_llava(_write_json(tmp_path, records), tmp_path / "no_root", check_images=False)
    assert [r["id"] for r in data.records] == ["a", "b"]


def test_validate_record_checks_one_record_on_its_own(tmp_path, images):
    record = _record(conversations=_turns(("human", "<image> a"), ("bot", "b")), image="x.png")
    problems = validate_record(record, 3, json_path="d.json", image_root=images)
    assert [(p.file, p.record_id, p.field, p.kind) for p in problems] == [
        (os.path.abspath(images / "x.png"), "r1", "image", "missing image"),
        ("d.json", "r1", "conversations[1].from", "unknown role"),
    ]
    assert str(problems[1]) == ("d.json: record 'r1' field conversations[1].from: unknown role "
                                "'bot' (expected 'human' or 'gpt')")


def test_missing_json_file_raises_a_file_level_problem(tmp_path, images):
    with pytest.raises(DataValidationError) as caught:
        read_llava(tmp_path / "absent.json", images)
    (problem,) = caught.value.report.problems
    assert (problem.record_id, problem.field, problem.message) == ("-", "-", "file not found")
    assert SKIP_HINT not in str(caught.value)


def test_bad_json_reports_line_and_column(tmp_path, images):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"id": "a",\n   "image": "rgb.png"\n   "conversations": []}\n]')
    with pytest.raises(DataValidationError) as caught:
        read_llava(path, images)
    (problem,) = caught.value.report.problems
    assert problem.record_id == "-"
    assert "not valid JSON" in problem.message and "line 4, column 4" in problem.message


def test_top_level_object_is_rejected(tmp_path, images):
    with pytest.raises(DataValidationError, match="top level must be a list of records, got "
                                                  "object"):
        read_llava(_write_json(tmp_path, {"data": [_record()]}), images)


def test_missing_image_root_is_one_file_level_problem(tmp_path):
    with pytest.raises(DataValidationError) as caught:
        read_llava(_write_json(tmp_path, [_record()] * 3), tmp_path / "no_root")
    (problem,) = caught.value.report.problems
    assert problem.message == "image root folder not found"


def test_max_length_reports_both_numbers_and_only_measures_valid_records(tmp_path, images):
    measured = []

    def length_fn(record):
        measured.append(record["id"])
        return 100 if record["id"] == "long" else 10

    records = [_record("short"), _record("long"), _record("broken", image="nowhere.png")]
    data = read_llava(_write_json(tmp_path, records), images, skip_invalid=True,
                      max_length=64, length_fn=length_fn)
    assert measured == ["short", "long"]
    assert [r["id"] for r in data.records] == ["short"]
    (too_long,) = [p for p in data.report.problems if p.kind == "too long"]
    assert (too_long.record_id, too_long.field) == ("long", "conversations")
    assert "100" in too_long.message and "64" in too_long.message


def test_max_length_without_length_fn_is_refused(tmp_path, images):
    with pytest.raises(ValueError, match="together"):
        read_llava(_write_json(tmp_path, [_record()]), images, max_length=10)


def test_report_format_limits_lines_and_ends_with_summary():
    problems = [Problem("f.json", str(i), "id", "bad", "bad id") for i in range(5)]
    report = ValidationReport(problems=problems, n_records=9, n_valid=4)
    lines = report.format(limit=2).splitlines()
    assert lines == ["f.json: record '0' field id: bad", "f.json: record '1' field id: bad",
                     "... and 3 more problems", "5 of 9 records invalid: 5 bad id"]


@pytest.mark.parametrize("name", ["rgb.png", "photo.jpg", "gray.png", "palette.png", "rgba.png",
                                  "cmyk.jpg"])
def test_load_image_rgb_returns_height_width_3_uint8(images, name):
    array = load_image_rgb(images / name)
    assert array.shape == (8, 12, 3) and array.dtype == np.uint8


def test_load_image_rgb_drops_alpha_and_replicates_gray(tmp_path):
    pixels = np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "alpha.png")
    np.testing.assert_array_equal(load_image_rgb(tmp_path / "alpha.png"), pixels[:, :, :3])
    Image.fromarray(np.array([[0, 128]], dtype=np.uint8), "L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(load_image_rgb(tmp_path / "l.png"), [[[0] * 3, [128] * 3]])


def test_load_image_rgb_scales_16_bit_grayscale(tmp_path):
    Image.fromarray(np.array([[0, 65535, 32896]], dtype=np.uint16)).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(load_image_rgb(tmp_path / "g16.png"),
                                  [[[0] * 3, [255] * 3, [128] * 3]])


@pytest.mark.parametrize("name", ["notes.png", "truncated.png", "missing.png"])
def test_load_image_rgb_raises_value_error_naming_the_file(images, name):
    with pytest.raises(ValueError, match=name):
        load_image_rgb(images / name)
