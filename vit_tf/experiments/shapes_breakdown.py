"""Shapes-world diagnosis: exact match per question subtype and per number of objects in the scene.

The per-category table of ``vit-tf eval`` says *how much* a model gets right; this says *where* it
fails: colour vs shape vs size questions, yes vs no existence answers, and 1- vs 2- vs 3-object
scenes (binding a named object to its image tokens is what gets harder with more objects).
The object count is read from the scene's description record ("there are N objects").

Command:

    python -m vit_tf.experiments.shapes_breakdown --model RUN --data DATA/test.json \\
        --image-root DATA

Result (8-epoch probes on the quickstart data, see vit_tf/experiments/README.md): the conv stem with
BatchNorm raised shape questions from 46.8% to 62.0%; attribute questions on 1-object scenes
reached 96.8%, on 3-object scenes 55.7%.

With ``--predictions RUN/eval/predictions.jsonl`` it reads the answers ``vit-tf eval`` wrote
instead of generating them, and when the data folder holds the generator's ``shapes_world.json``
(seed and config) it rebuilds each scene exactly and adds two groups that say *why* a named
object is missed: position questions by how many other objects lie on the opposite side of the
asked axis (answering from the scene's overall layout instead of the named object fails exactly
there), and existence questions that name a size or not ("Is there a small red circle?" needs
colour, shape and size bound to one object):

    python -m vit_tf.experiments.shapes_breakdown --data DATA/test.json --image-root DATA \\
        --predictions RUN/eval/predictions.jsonl

Result (fifth round, vit_tf/experiments/README.md): with one position question per training scene,
position was 100% when no other object was on the opposite side, 72.5% with one and 50.0%
(chance) with two; three position questions per training scene lifted position to ~96%.
"""

import argparse
import collections
import json
import os
import re

from vit_tf.eval.metrics import normalize_answer
from vit_tf.runs import load_task

CATEGORIES = ("attribute", "position", "existence")


def object_counts(records):
    """image -> number of objects, from the description records."""
    counts = {}
    for r in records:
        if r.get("category") == "description":
            m = re.search(r"there (?:are|is) (\d+) object", r["conversations"][1]["value"])
            if m:
                counts[r["image"]] = int(m.group(1))
    return counts


def subtype(record):
    question = record["conversations"][0]["value"].lower()
    answer = record["conversations"][1]["value"].lower()
    if record["category"] == "attribute":
        for word, name in (("colo", "colour"), ("shape", "shape"), ("size", "size")):
            if word in question:
                return f"attribute/{name}"
        return "attribute/other"
    if record["category"] == "existence":
        return f"existence/{answer}"
    return record["category"]


def scenes_of(data_json, images):
    """image path -> Scene for ``images``, rebuilt from the ``shapes_world.json`` beside
    ``data_json``; {} when there is none (not a generated shapes world)."""
    from vit_tf.data.shapes import SPLITS, ShapesConfig, generate_scene, scene_rngs

    summary_path = os.path.join(os.path.dirname(data_json) or ".", "shapes_world.json")
    if not os.path.exists(summary_path):
        return {}
    summary = json.load(open(summary_path))
    config = ShapesConfig(**summary["config"])
    scenes = {}
    for split_index, split in enumerate(SPLITS):
        for index in range(summary[split]["scenes"]):
            image = f"images/{split}_{index:06d}.png"
            if image in images:
                scene_rng, _ = scene_rngs(summary["seed"], split_index, index)
                scenes[image] = generate_scene(scene_rng, config)
    return scenes


def geometry_group(record, scene):
    """``position/opposite=K`` (K other objects across the asked axis's middle) or
    ``existence/sized|plain``; None for other questions."""
    question = record["conversations"][0]["value"].lower()
    if record["category"] == "existence":
        sized = re.search(r"\b(small|large)\b", question) is not None
        return f"existence/{'sized' if sized else 'plain'}"
    if record["category"] != "position" or scene is None:
        return None
    named = re.search(r"the (\w+) (circle|square|triangle)", question)
    target = [o for o in scene.objects if (o.color, o.shape) == named.groups()]
    if len(target) != 1:
        return None
    axis = 0 if record["conversations"][1]["value"].lower() in ("left", "right") else 1
    half = scene.canvas_size / 2
    side = target[0].center[axis] < half
    opposite = sum((o.center[axis] < half) != side for o in scene.objects if o is not target[0])
    return f"position/opposite={opposite}"


def generated_answers(args, records):
    task = load_task(args.model)   # a run or preset folder: model + its preprocessor
    generator = task.generator(max_new_tokens=8)
    answers = []
    for i in range(0, len(records), 64):  # image files: the preprocessor decodes and resizes
        chunk = records[i:i + 64]
        answers += generator.generate([f"{args.image_root}/{r['image']}" for r in chunk],
                                      [r["conversations"][:1] for r in chunk])
    return answers


def predicted_answers(path, records):
    """The first-turn answers ``vit-tf eval`` wrote, in the order of ``records``."""
    by_id = {}
    for line in open(path):
        item = json.loads(line)
        if item.get("turn", 0) == 0:
            by_id[item["record_id"]] = item["prediction"]
    missing = [r["id"] for r in records if r["id"] not in by_id]
    if missing:
        raise SystemExit(f"{path}: no prediction for {len(missing)} record(s), e.g. {missing[0]}")
    return [by_id[r["id"]] for r in records]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="run folder to generate answers with")
    parser.add_argument("--predictions", help="predictions.jsonl of vit-tf eval (no --model)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--image-root", required=True)
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.predictions):
        parser.error("give exactly one of --model and --predictions")
    records = json.load(open(args.data))
    counts = object_counts(records)
    records = [r for r in records if r.get("category") in CATEGORIES]
    scenes = scenes_of(args.data, {r["image"] for r in records})
    answers = (predicted_answers(args.predictions, records) if args.predictions
               else generated_answers(args, records))
    stats = collections.defaultdict(lambda: [0, 0])
    for record, answer in zip(records, answers):
        ok = normalize_answer(answer) == normalize_answer(record["conversations"][1]["value"])
        keys = [subtype(record), f"{record['category']}/objects={counts.get(record['image'])}",
                geometry_group(record, scenes.get(record["image"]))]
        for key in filter(None, keys):
            stats[key][0] += ok
            stats[key][1] += 1
    print("| group | exact match | n |\n|---|---|---|")
    for key in sorted(stats):
        print(f"| {key} | {100 * stats[key][0] / stats[key][1]:.1f} | {stats[key][1]} |")


if __name__ == "__main__":
    main()
