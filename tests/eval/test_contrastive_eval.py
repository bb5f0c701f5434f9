"""Evaluation of a pretrained encoder: ground truth regenerated from a written shapes world,
zero-shot by prompt ensembles and the linear probe (on an oracle encoder, so the scoring itself
is checked), easy-VQA's writer, and the question-only shapes world (--no-captions)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from vit_tf.cli import main
from vit_tf.data.sources.easy_vqa import write_easy_vqa
from vit_tf.eval.contrastive import (ATTRIBUTES, easy_vqa_zero_shot, linear_probe,
                                     shapes_zero_shot, world_scenes)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    assert main(["data", "shapes", "--out", str(out), "--train", "150", "--test", "30",
                 "--seed", "3", "--no-captions"]) == 0
    return str(out)


def test_no_captions_writes_questions_only_with_the_same_questions(world, tmp_path):
    records = json.load(open(os.path.join(world, "train.json")))
    categories = {r["category"] for r in records}
    assert "caption" not in categories and "description" not in categories
    assert {"attribute", "existence", "relation"} <= categories
    assert main(["data", "shapes", "--out", str(tmp_path), "--train", "150", "--test", "1",
                 "--seed", "3"]) == 0
    full = json.load(open(tmp_path / "train.json"))
    assert [r for r in full if r["category"] not in ("caption", "description")] == records


class Oracle:
    """A 'dual encoder' that knows each scene: images and texts embed as attribute indicators."""

    def __init__(self, scenes, config):
        self.values = {"color": config.colors, "shape": config.shapes, "size": config.sizes}
        self.dims = [f"{a}={v}" for a in ATTRIBUTES for v in self.values[a]]
        self.by_pixels = {}
        self.image_encoder = type("E", (), {"image_size": 64})()
        for path, scene in scenes:
            key = np.asarray(Image.open(path).convert("RGB"), np.uint8).tobytes()
            self.by_pixels[key] = scene

    def _vector(self, words):
        v = np.array([1.0 if d.split("=")[1] in words else 0.0 for d in self.dims])
        return v / max(np.linalg.norm(v), 1e-9)

    def encode_images(self, images, features=False):
        rows = []
        for image in np.asarray(images, np.uint8):
            scene = self.by_pixels[image.tobytes()]
            rows.append(self._vector({getattr(o, a) for o in scene.objects for a in ATTRIBUTES}))
        return np.stack(rows)

    def encode_texts(self, texts):
        return np.stack([self._vector(set(t.replace(".", " ").split())) for t in texts])


def test_zero_shot_and_probe_score_an_oracle_perfectly(world):
    scenes, config = world_scenes(world, "test")
    scenes += world_scenes(world, "train")[0]
    oracle = Oracle(scenes, config)
    z = shapes_zero_shot(oracle, world, prompts="caption")
    assert z["single_object_scenes"] > 0
    for method in ("ensemble", "joint"):
        assert all(z[method]["single_object"][a] == 1.0 for a in ATTRIBUTES)
        assert all(z[method]["present"][a] == 1.0 for a in ATTRIBUTES)
    probe = linear_probe(oracle, world)
    assert probe["pretrained"] == {"color": 1.0, "shape": 1.0, "size": 1.0}


def test_world_scenes_regenerate_the_written_scenes(world):
    scenes, _ = world_scenes(world, "test")
    records = json.load(open(os.path.join(world, "test.json")))
    counting = {r["image"]: r for r in records if r["category"] == "counting"}
    totals = ("How many objects are there?", "How many objects are in the image?",
              "Count the objects in the image.")
    checked = 0
    for path, scene in scenes:
        turn = counting[os.path.relpath(path, world)]["conversations"]
        if turn[0]["value"].split("\n")[-1] in totals:
            assert turn[1]["value"] == str(len(scene.objects))
            checked += 1
    assert checked >= 3


def test_easy_vqa_writer_and_zero_shot(tmp_path):
    src = tmp_path / "src"
    for split, items in (("train", [["what color is the shape?", "red", 0],
                                    ["what shape is in the image?", "circle", 0]]),
                         ("test", [["what is the blue shape?", "triangle", 3],
                                   ["what color is the triangle?", "blue", 3],
                                   ["is there a red shape?", "no", 3]])):
        (src / split / "images").mkdir(parents=True)
        (src / split / "questions.json").write_text(json.dumps(items))
        for image_id in {i[2] for i in items}:
            Image.new("RGB", (64, 64), (255, 255, 255)).save(src / split / "images" /
                                                             f"{image_id}.png")
    summary = write_easy_vqa(str(tmp_path / "out"), source_dir=str(src))
    assert summary == {"train": {"images": 1, "records": 2}, "test": {"images": 1, "records": 3}}
    meta = json.load(open(tmp_path / "out" / "easy_vqa.json"))
    assert meta["images"]["images/test_00003.png"] == {"shape": "triangle", "color": "blue"}
    test = json.load(open(tmp_path / "out" / "test.json"))
    assert [r["category"] for r in test] == ["shape", "color", "yes/no"]

    class Fixed:   # always answers "blue triangle"
        image_encoder = type("E", (), {"image_size": 64})()

        def encode_images(self, images):
            return np.ones((len(images), 2))

        def encode_texts(self, texts):
            return np.array([[1.0, 1.0] if ("blue" in t or "triangle" in t) else [1.0, -1.0]
                             for t in texts])

    out = easy_vqa_zero_shot(Fixed(), str(tmp_path / "out"))
    assert out["images"] == 1 and out["color"] == 1.0 and out["shape"] == 1.0
    bad = src / "test" / "questions.json"
    bad.write_text(json.dumps([["what color is the shape?", "red", 3],
                               ["what color is the triangle?", "blue", 3]]))
    with pytest.raises(ValueError, match="image 3 is blue, an earlier one red"):
        write_easy_vqa(str(tmp_path / "out2"), source_dir=str(src))
