"""The captioned-folder readers: Hugging Face's ``imagefolder`` layout and sidecar caption files,
on tiny folders written here."""

import json

import pytest

from tests.helpers import write_image as _write_image
from vit_tf.cli import DATA_FORMATS, main
from vit_tf.data.sources import (
    SOURCES,
    DataValidationError,
    read_imagefolder,
    read_sidecar_captions,
    read_source,
)
from vit_tf.data.sources.coco import CAPTION_PROMPT
from vit_tf.eval.items import FORMATS


def write_image(path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_image(path, **kwargs)


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _problems(error_or_report):
    report = getattr(error_or_report, "report", error_or_report)
    return {(p.file, p.record_id, p.field, p.kind) for p in report.problems}


def _captions_folder(tmp_path):
    """train/ (jsonl, an images/ subfolder, a nested metadata file) and test/ (csv)."""
    root = tmp_path / "photos"
    write_image(root / "train" / "images" / "1.png")
    write_image(root / "train" / "images" / "2.jpg", format="JPEG")
    write_image(root / "train" / "more" / "3.png")
    _jsonl(root / "train" / "metadata.jsonl", [
        {"file_name": "images/1.png", "text": " A dog on a couch. "},
        {"file_name": "images/2.jpg", "text": ["Two cats.", "A pair of cats."],
         "category": "animals"}])
    _jsonl(root / "train" / "more" / "metadata.jsonl", [{"file_name": "3.png", "text": "A car."}])
    write_image(root / "test" / "4.png")
    (root / "test" / "metadata.csv").write_text(
        'file_name,text,id\n4.png,"A red circle, alone.",img-4\n')
    return root


def test_imagefolder_reads_captions_as_coco_style_records(tmp_path):
    root = _captions_folder(tmp_path)
    data = read_imagefolder(root, split="train")
    assert data.report.ok and data.skipped == 0
    by_id = {r["id"]: r for r in data.records}
    assert sorted(by_id) == ["train/images/1.png", "train/images/2.jpg", "train/more/3.png"]
    dog = by_id["train/images/1.png"]
    assert dog["conversations"] == [{"from": "human", "value": f"<image>\n{CAPTION_PROMPT}"},
                                    {"from": "gpt", "value": "A dog on a couch."}]
    assert dog["references"] == ["A dog on a couch."] and dog["category"] == "caption"
    assert dog["image_path"] == str(root / "train" / "images" / "1.png")
    cats = by_id["train/images/2.jpg"]
    assert cats["references"] == ["Two cats.", "A pair of cats."]
    assert cats["category"] == "animals"
    assert cats["image"] == "train/images/2.jpg"          # relative to image_root (the folder)
    per_caption = read_imagefolder(root / "train", one_per_caption=True).records
    assert [r["id"] for r in per_caption] == ["images/1.png/0", "images/2.jpg/0",
                                              "images/2.jpg/1", "more/3.png/0"]
    assert per_caption[2]["conversations"][1]["value"] == "A pair of cats."
    test = read_source("imagefolder", root / "test", root / "test")   # CSV, an id column
    assert [(r["id"], r["references"]) for r in test.records] == [
        ("img-4", ["A red circle, alone."])]
    assert read_imagefolder(root, split="test").records[0]["image"] == "test/4.png"


def test_imagefolder_splits_must_be_chosen_and_must_exist(tmp_path):
    root = _captions_folder(tmp_path)
    with pytest.raises(DataValidationError, match="holds the splits test, train: read one"):
        read_imagefolder(root)
    with pytest.raises(DataValidationError, match="no 'validation' split"):
        read_imagefolder(root, split="validation")
    with pytest.raises(ValueError, match="unknown split 'dev2'"):
        read_imagefolder(root, split="dev2")


def test_imagefolder_reports_every_problem_with_file_record_and_field(tmp_path):
    root = tmp_path / "data"
    for name in ("ok.png", "dup.png", "empty.png", "notext.png", "unlisted.png"):
        write_image(root / name)
    write_image(root / "corrupt.png", size=(64, 64))
    (root / "corrupt.png").write_bytes((root / "corrupt.png").read_bytes()[:200])
    _jsonl(root / "metadata.jsonl", [
        {"file_name": "ok.png", "text": "fine", "license": "cc0"},      # line 1
        {"file_name": "missing.png", "text": "gone"},                   # 2
        {"file_name": "corrupt.png", "text": "broken"},                 # 3
        {"file_name": "empty.png", "text": "  "},                       # 4
        {"file_name": "notext.png"},                                    # 5
        {"file_name": "dup.png", "text": "first"},                      # 6
        {"file_name": "dup.png", "text": "again"},                      # 7
        "{not json",                                                    # 8
        {"text": "no file"},                                            # 9
        {"file_name": "ok.png", "text": ["x", ""]},                     # 10
    ])
    meta = str(root / "metadata.jsonl")
    with pytest.raises(DataValidationError) as e:
        read_imagefolder(root)
    assert _problems(e.value) == {
        (meta, "*", "license", "unknown column"),
        (str(root / "missing.png"), "missing.png", "image", "missing image"),
        (str(root / "corrupt.png"), "corrupt.png", "image", "corrupt image"),
        (meta, "empty.png", "text", "empty text"),
        (meta, "notext.png", "text", "missing text"),
        (meta, "line 7", "file_name", "duplicate file"),
        (meta, "line 8", "-", "bad row"),
        (meta, "line 9", "file_name", "missing file_name"),
        (meta, "line 10", "file_name", "duplicate file"),
        (meta, "line 10", "text[1]", "empty text"),
        (str(root / "unlisted.png"), "unlisted.png", "file_name", "unlisted image"),
    }
    text = str(e.value)
    assert f"{meta}: record 'empty.png' field text: text is empty" in text
    assert "'dup.png' is listed again (first at metadata.jsonl line 6)" in text
    assert "image has no row in metadata.*" in text
    data = read_imagefolder(root, skip_invalid=True)
    assert [r["id"] for r in data.records] == ["ok.png", "dup.png"]
    assert data.report.n_records == 11 and data.skipped == 9    # 10 rows + the unlisted image


@pytest.mark.parametrize("files, message", [
    ({"metadata.jsonl": '{"file_name": "a.png"}\n'}, "no text column: expected one of 'text'"),
    ({"metadata.jsonl": '{"text": "a"}\n'}, "no 'file_name' column"),
    ({"metadata.jsonl": '{"file_name": "a.png", "text": "a", "caption": "b"}\n'},
     "several text columns"),
    ({"metadata.jsonl": '{"file_name": "a.png", "text": "a"}\n',
      "metadata.csv": "file_name,text\na.png,a\n"}, "another metadata file in this folder"),
    ({"metadata.csv": b"file_name,text\na.png,caf\xe9\n"}, "not UTF-8 text"),
    ({"notes.json": "{}"}, "no metadata.jsonl or metadata.csv"),
])
def test_imagefolder_refuses_unreadable_metadata(tmp_path, files, message):
    write_image(tmp_path / "a.png")
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(DataValidationError, match=message):
        read_imagefolder(tmp_path, skip_invalid=True)


def test_imagefolder_text_column_can_be_named(tmp_path):
    write_image(tmp_path / "a.png")
    _jsonl(tmp_path / "metadata.jsonl", [{"file_name": "a.png", "prompt": "a dog", "id": 7}])
    data = read_imagefolder(tmp_path, text_column="prompt")
    assert [(r["id"], r["references"]) for r in data.records] == [("7", ["a dog"])]
    with pytest.raises(DataValidationError, match="does_not_exist"):
        read_imagefolder(tmp_path / "does_not_exist")


def _sidecar_folder(tmp_path):
    root = tmp_path / "pics"
    write_image(root / "cat.png")
    (root / "cat.txt").write_text("A cat on a mat.\n\n  A sleeping cat.  \n")
    write_image(root / "sub" / "dog.jpg", format="JPEG")
    (root / "sub" / "dog.txt").write_text("A dog.")
    return root


def test_sidecar_captions_one_record_per_image_lines_are_captions(tmp_path):
    root = _sidecar_folder(tmp_path)
    data = read_sidecar_captions(root)
    assert data.report.ok
    assert [(r["id"], r["references"], r["image"]) for r in data.records] == [
        ("cat.png", ["A cat on a mat.", "A sleeping cat."], "cat.png"),
        ("sub/dog.jpg", ["A dog."], "sub/dog.jpg")]
    assert data.records[0]["conversations"][1] == {"from": "gpt", "value": "A cat on a mat."}
    per_caption = read_source("sidecar_captions", root, root, one_per_caption=True).records
    assert [r["id"] for r in per_caption] == ["cat.png/0", "cat.png/1", "sub/dog.jpg/0"]


def test_sidecar_captions_report_every_problem(tmp_path):
    root = _sidecar_folder(tmp_path)
    write_image(root / "nocap.png")
    write_image(root / "blank.png")
    (root / "blank.txt").write_text(" \n\n")
    (root / "orphan.txt").write_text("no image")
    write_image(root / "cat.jpg", format="JPEG")                   # shares cat.txt with cat.png
    (root / "bad.png").write_bytes(b"nope")
    (root / "bad.txt").write_text("a broken image")
    write_image(root / "latin.png")
    (root / "latin.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataValidationError) as e:
        read_sidecar_captions(root)
    r = str(root)
    assert _problems(e.value) == {
        (f"{r}/nocap.txt", "nocap.png", "caption", "missing text"),
        (f"{r}/blank.txt", "blank.png", "caption", "empty text"),
        (f"{r}/orphan.txt", "orphan.txt", "caption", "orphan caption"),
        (f"{r}/cat.png", "cat.png", "image", "duplicate file"),
        (f"{r}/bad.png", "bad.png", "image", "not an image"),
        (f"{r}/latin.txt", "latin.png", "caption", "unreadable text"),
    }
    assert "cat.txt is also the caption file of cat.jpg" in str(e.value)
    data = read_sidecar_captions(root, skip_invalid=True)
    assert [x["id"] for x in data.records] == ["cat.jpg", "sub/dog.jpg"]
    assert data.skipped == 6
    with pytest.raises(DataValidationError, match="no image files"):
        read_sidecar_captions(_empty(tmp_path))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "a.txt").write_text("text only")
    return folder


def test_formats_are_registered_for_the_cli_and_eval(tmp_path, capsys):
    assert sorted(DATA_FORMATS) == SOURCES.names() == sorted(FORMATS)
    root = _sidecar_folder(tmp_path)
    out = tmp_path / "shards"
    assert main(["data", "shard", "--format", "sidecar_captions", "--data", str(root),
                 "--image-root", str(root), "--out", str(out), "--shards", "1"]) == 0
    assert "2 records -> 1 shards" in capsys.readouterr().out
    (root / "orphan.txt").write_text("x")
    assert main(["data", "shard", "--format", "sidecar_captions", "--data", str(root),
                 "--image-root", str(root), "--out", str(tmp_path / "s2"), "--shards", "1"]) == 2
    err = capsys.readouterr().err
    assert "orphan.txt: record 'orphan.txt' field caption: caption file has no image" in err
