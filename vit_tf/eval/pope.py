"""POPE-style object hallucination benchmark on the shapes world.

POPE (Li et al., 2023, "Evaluating Object Hallucination in Large Vision-Language Models") asks
balanced yes/no questions "Is there a <object> in the image?" about objects that are present
and objects that are not, with negatives drawn three ways. Here an *object* is a (colour,
shape) pair ("red circle"), which is unique within a shapes-world scene:

    random       absent pairs drawn uniformly
    popular      the absent pairs present in the most training scenes
    adversarial  absent pairs that share the colour or the shape of a present object (right
                 colour, wrong shape, and the reverse), ranked by how often they co-occur with
                 the scene's objects in the training scenes; other absent pairs only if too few

Each scene contributes every present pair (at most ``max_positives``, drawn at random) as "yes"
questions and as many "no" questions per setting, so every setting is exactly balanced. The
ground truth comes from the scenes themselves, regenerated from the dataset's
``shapes_world.json`` (seed and config) and checked pixel for pixel against its images.

For the negatives, the report also gives the rate of "yes" by how the absent pair relates to the
scene: it shares a present object's colour, shape, both (colour from one object, shape from
another) or neither.

Answers are parsed as POPE does: an answer with the word "no" or "not" is no, else one with
"yes" is yes; anything else counts as not-yes and is reported as ``unparsed``. Reported per
setting: accuracy, precision, recall, F1 (positive = yes) and the yes-ratio.

Example:
    >>> items = pope_items("quickstart_out/shapes", split="test", seed=0)
    >>> metrics = score_pope(predicted_items)
"""

import collections
import itertools
import json
import os

import numpy as np

from vit_tf.data.shapes import SPLITS, ShapesConfig, generate_scene, image_path, render_scene
from vit_tf.data.shapes import scene_rngs
from vit_tf.eval.answers import normalize_answer

POPE_PROMPT = "Is there {a} in the image?"
SETTINGS = ("random", "popular", "adversarial")


def load_world(data_dir, split):
    """-> (ShapesConfig, [Scene] of ``split``) regenerated from ``data_dir/shapes_world.json``."""
    meta_path = os.path.join(data_dir, "shapes_world.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{meta_path}: not found; POPE needs a shapes world written by "
                                "`vit-tf data shapes` (or quickstart)") from None
    if split not in SPLITS or split not in meta:
        raise ValueError(f"{meta_path}: field {split!r}: no such split (have "
                         f"{[s for s in SPLITS if s in meta]})")
    config = ShapesConfig(**meta["config"])
    split_index = SPLITS.index(split)
    scenes = [generate_scene(scene_rngs(meta["seed"], split_index, i)[0], config)
              for i in range(meta[split]["scenes"])]
    return config, scenes


def check_images(data_dir, split, config, scenes):
    """Raise unless every image on disk equals its regenerated scene (the ground truth is exact)."""
    from PIL import Image

    for index, scene in enumerate(scenes):
        path = os.path.join(data_dir, image_path(split, index))
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: image of scene {index} not found")
        with Image.open(path) as image:
            on_disk = np.asarray(image.convert("RGB"))
        if not np.array_equal(on_disk, np.asarray(render_scene(scene, config))):
            raise ValueError(f"{path}: differs from scene {index} regenerated from "
                             f"{os.path.join(data_dir, 'shapes_world.json')}; the metadata does "
                             "not describe these images")


def _article(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def pair_statistics(scenes):
    """(scenes containing each pair, scenes containing each two pairs together) as Counters."""
    frequency, together = collections.Counter(), collections.Counter()
    for scene in scenes:
        pairs = sorted({(o.color, o.shape) for o in scene.objects})
        frequency.update(pairs)
        together.update(itertools.permutations(pairs, 2))
    return frequency, together


def pope_items(data_dir, split="test", *, seed=0, max_positives=3, verify_images=True,
               train_split="train"):
    """The benchmark's questions: one item per (setting, scene, pair), ready for ``predict``.

    Item fields: ``id`` ("<setting>/<scene>/<colour>_<shape>"), ``setting``, ``category``
    ("pope_<setting>"), ``image_path``, ``prompt`` (one human turn), ``reference`` ("yes"/"no"),
    ``object``, ``negative_kind`` ("present", or for a "no": "colour", "shape", "colour+shape",
    "neither"). The draw depends on ``seed`` alone.
    """
    config, scenes = load_world(data_dir, split)
    if verify_images:
        check_images(data_dir, split, config, scenes)
    _, train_scenes = load_world(data_dir, train_split)
    frequency, together = pair_statistics(train_scenes)
    all_pairs = [(c, s) for c in config.colors for s in config.shapes]
    rng = np.random.default_rng(seed)
    items = []
    for index, scene in enumerate(scenes):
        present = sorted({(o.color, o.shape) for o in scene.objects})
        if len(present) > max_positives:
            present = [present[i] for i in sorted(rng.choice(len(present), max_positives,
                                                             replace=False))]
        everything = {(o.color, o.shape) for o in scene.objects}
        absent = [p for p in all_pairs if p not in everything]
        n = min(len(present), len(absent))
        colours = {c for c, _ in everything}
        shapes = {s for _, s in everything}

        def cooccur(pair):
            return sum(together[(pair, q)] for q in everything)

        negatives = {
            "random": [absent[i] for i in sorted(rng.choice(len(absent), n, replace=False))],
            "popular": sorted(absent, key=lambda p: (-frequency[p], p))[:n],
            "adversarial": sorted(absent, key=lambda p: (not (p[0] in colours or p[1] in shapes),
                                                         -cooccur(p), p))[:n],
        }
        path = os.path.abspath(os.path.join(data_dir, image_path(split, index)))
        for setting in SETTINGS:
            for pair, answer in [*((p, "yes") for p in present[:n]),
                                 *((p, "no") for p in negatives[setting])]:
                name = f"{pair[0]} {pair[1]}"
                kind = "present" if answer == "yes" else _negative_kind(pair, colours, shapes)
                items.append({
                    "id": f"{setting}/{index}/{pair[0]}_{pair[1]}",
                    "negative_kind": kind,
                    "record_id": f"{split}-{index:06d}",
                    "setting": setting,
                    "category": f"pope_{setting}",
                    "object": name,
                    "image_path": path,
                    "prompt": [{"from": "human",
                                "value": "<image>\n" + POPE_PROMPT.format(a=_article(name))}],
                    "reference": answer,
                })
    return items


def _negative_kind(pair, colours, shapes):
    """How an absent pair relates to the scene: shares its colour, its shape, both, or neither."""
    colour, shape = pair[0] in colours, pair[1] in shapes
    return {(True, True): "colour+shape", (True, False): "colour", (False, True): "shape",
            (False, False): "neither"}[(colour, shape)]


def parse_yes_no(text):
    """"no" if the answer says no/not, else "yes" if it says yes, else "other" (POPE's rule)."""
    words = normalize_answer(text).split()
    if "no" in words or "not" in words:
        return "no"
    if "yes" in words:
        return "yes"
    return "other"


def binary_metrics(references, predictions):
    """Accuracy, precision, recall, F1 (positive = "yes") and the yes-ratio of two answer lists."""
    tp = sum(r == "yes" and p == "yes" for r, p in zip(references, predictions))
    fp = sum(r == "no" and p == "yes" for r, p in zip(references, predictions))
    fn = sum(r == "yes" and p != "yes" for r, p in zip(references, predictions))
    correct = sum(r == p for r, p in zip(references, predictions))
    n = len(references)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": n, "accuracy": correct / n, "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": sum(p == "yes" for p in predictions) / n,
            "unparsed": sum(p == "other" for p in predictions)}


def score_pope(items):
    """-> {"settings": {setting: metrics}} from items with ``prediction`` filled in."""
    settings = {}
    for setting in SETTINGS:
        group = [it for it in items if it["setting"] == setting]
        if not group:
            continue
        for it in group:
            it["parsed"] = parse_yes_no(it["prediction"])
            it["correct"] = float(it["parsed"] == it["reference"])
        settings[setting] = binary_metrics([it["reference"] for it in group],
                                           [it["parsed"] for it in group])
    negatives = collections.defaultdict(list)
    for it in items:
        if it["reference"] == "no":
            negatives[it["negative_kind"]].append(it["parsed"] == "yes")
    false_yes = {kind: {"n": len(v), "false_yes_rate": sum(v) / len(v)}
                 for kind, v in sorted(negatives.items())}
    return {"settings": settings, "negatives_by_kind": false_yes}


def format_pope_table(metrics):
    """One row per setting: n, accuracy, precision, recall, F1, yes-ratio (percentages)."""
    lines = [f"{'POPE setting':<13} {'n':>5} {'acc%':>6} {'prec%':>6} {'rec%':>6} {'F1%':>6} "
             f"{'yes%':>6} {'unparsed':>8}"]
    for name, m in metrics["settings"].items():
        lines.append(f"{name:<13} {m['n']:>5} {100 * m['accuracy']:6.1f} "
                     f"{100 * m['precision']:6.1f} {100 * m['recall']:6.1f} {100 * m['f1']:6.1f} "
                     f"{100 * m['yes_ratio']:6.1f} {m['unparsed']:>8}")
    if metrics.get("negatives_by_kind"):
        lines.append("absent object shares the scene's ... -> answered yes (hallucinated):")
        for kind, m in metrics["negatives_by_kind"].items():
            lines.append(f"  {kind:<13} {m['n']:>5} {100 * m['false_yes_rate']:6.1f}%")
    return "\n".join(lines)
