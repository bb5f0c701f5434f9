"""vit_tf.data.real_images on tiny local stand-ins (never the real packages): Pillow's own font
for the emoji renderer, a 3-image easy-VQA folder written here, one scikit-image photo."""

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageFont

from vit_tf.data.real_images import build_real_images, easy_vqa, emoji
from vit_tf.data.real_images.common import head_noun
from vit_tf.data.sources.llava import read_llava
from vit_tf.data.sources.validation import DataValidationError


def write_easy_vqa(root, entries, images=(0, 1, 2)):
    for split in ("train", "test"):
        os.makedirs(root / split / "images", exist_ok=True)
        for i in images:
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(
                root / split / "images" / f"{i}.png")
        (root / split / "questions.json").write_text(json.dumps(entries))
    return str(root)


ENTRIES = [["what is the blue shape?", "circle", 0], ["what color is the shape?", "blue", 0],
           ["does the image contain a triangle?", "no", 1], ["what color is the triangle?", "red", 2],
           ["what is the red shape?", "triangle", 2]]
LETTERS = ((0x41, 0x44),)   # A-D: names "LATIN CAPITAL LETTER A", ...


def build(tmp_path, entries=ENTRIES, **kwargs):
    src = write_easy_vqa(tmp_path / "evqa", entries)
    return build_real_images(str(tmp_path / "out"), easy_vqa_dir=src, photo_names=("coffee",),
                             emoji_font_object=ImageFont.load_default(size=40),
                             emoji_ranges=LETTERS, log=lambda m: None, **kwargs)


def test_builder_writes_valid_llava_files_with_splits_and_licences(tmp_path):
    summary = build(tmp_path)
    out = tmp_path / "out"
    train = read_llava(out / "train.json", str(out)).records      # validates like any source
    held = read_llava(out / "heldout_captions.json", str(out)).records
    test = read_llava(out / "easyvqa_test.json", str(out)).records
    captions = {r["id"]: r for r in train + held if r["category"] in ("caption", "photo")}
    letters = [r for r in train + held if r["id"].startswith("emoji-")]
    assert len(letters) == 4 and {r["id"] for r in letters} == {
        f"emoji-u{c:05x}" for c in range(0x41, 0x45)}
    assert captions["easyvqa-train-img0-caption"]["conversations"][1]["value"] == "a blue circle"
    assert captions["easyvqa-train-img2-caption"]["object_words"] == ["triangle", "triangles"]
    assert captions["photo-coffee"]["references"] == ["coffee cup"]
    conv = [r for r in train if r["category"] == "conversation"]
    assert [t["value"] for t in conv[0]["conversations"]] == [
        "<image>\nwhat is the blue shape?", "circle", "what color is the shape?", "blue"]
    assert {r["category"] for r in test} == {"easy_vqa"} and len(test) == len(ENTRIES)
    assert all(r["conversations"][0]["value"].startswith("<image>\nWhat is in the picture?")
               for r in held)
    assert {s["licence"] for s in summary["sources"]} >= {"MIT"}
    assert json.loads((out / "sources.json").read_text())["files"]["train.json"]["records"] == \
        len(train)


def test_bad_source_entry_is_named_and_skipped_only_on_request(tmp_path):
    bad = ENTRIES + [["what is it?", "", 1], ["what shape?", "circle", 7]]
    with pytest.raises(DataValidationError) as error:
        build(tmp_path, bad)
    text = str(error.value)
    assert "questions.json: record '#5' field [1]: answer must be a non-empty string" in text
    assert "record '#6' field [2]: image 7 not in the package" in text
    summary = build(tmp_path, bad, skip_invalid=True)
    assert summary["files"]["train.json"]["bad_source_entries"] == 2


def test_missing_packages_name_the_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="fonts-noto-color-emoji.*install_real_images"):
        emoji.emoji_records(str(tmp_path), font_path=str(tmp_path / "none.ttf"))
    with pytest.raises(FileNotFoundError,
                       match=r"easy-vqa==1.0 package; reinstall it with: pip install --no-deps"):
        easy_vqa.easy_vqa_records(str(tmp_path), "train", data_dir=str(tmp_path / "nothing"))


def test_head_noun():
    assert head_noun("red apple") == ["apple", "apples"]
    assert head_noun("grinning face with smiling eyes") == ["face", "faces"]
