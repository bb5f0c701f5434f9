"""The shapes world: built-in, seeded instruction data with exact ground truth.

Writes a LLaVA-format dataset (``train.json``, ``test.json``, ``images/*.png``) of coloured
circles, squares and triangles with questions in eight families (``FAMILIES``): captions,
detailed descriptions, attributes, positions, counting, existence (the hallucination probe,
balanced yes/no), spatial relations and multi-turn conversations. The same seed and config give
byte-identical files; train and test scenes come from different seed streams.

Scenes are sampled and drawn in ``vit_tf.data.shapes_scene``; questions are asked in
``vit_tf.data.shapes_questions``. Only numpy and Pillow are needed.

Example::

    summary = write_shapes_world("data/shapes", n_train=2000, n_test=200, seed=0)
    summary["train"]["categories"]["existence"]  # 2000
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np

from vit_tf.data.shapes_questions import EXTRA_TAGS, image_path, referent, scene_records
from vit_tf.data.shapes_scene import (
    FAMILIES,
    PALETTE,
    SHAPES,
    SIZE_FRACTIONS,
    Scene,
    ShapeObject,
    ShapesConfig,
    generate_scene,
    render_scene,
)

SPLITS: tuple[str, ...] = ("train", "test")
"""Splits written by ``write_shapes_world``; a split's position here is part of its seed."""

__all__ = [
    "FAMILIES",
    "PALETTE",
    "SHAPES",
    "SIZE_FRACTIONS",
    "SPLITS",
    "Scene",
    "ShapeObject",
    "ShapesConfig",
    "generate_scene",
    "image_path",
    "referent",
    "render_scene",
    "scene_records",
    "check_questions",
    "parse_questions",
    "scene_rngs",
    "write_shapes_world",
]


def scene_rngs(
    seed: int, split_index: int, index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the scene and for the questions of one scene.

    Derived from ``(seed, split_index, index)``, so scene ``index`` does not depend on how many
    scenes are written, and re-asking questions never moves the scenes.
    """
    scene_seed, question_seed = np.random.SeedSequence([seed, split_index, index]).spawn(2)
    return np.random.default_rng(scene_seed), np.random.default_rng(question_seed)


def write_shapes_world(
    out_dir: str | Path,
    n_train: int,
    n_test: int,
    seed: int = 0,
    config: ShapesConfig = ShapesConfig(),
    train_questions: dict[str, int] | None = None,
) -> dict:
    """Write ``train.json``, ``test.json`` and ``images/<split>_<index:06d>.png`` under ``out_dir``.

    ``train_questions`` ({family: n}) asks up to n questions of those families about each
    training scene, each about another subject (``scene_records``): a training mix. The test
    split always has one per family, so its numbers compare across mixes; every record of the
    default mix is also in any other mix, unchanged.

    Returns ``{"seed", "config", "train_questions", "train": {"scenes", "records",
    "categories"}, "test": ...}``, the same summary that is written to
    ``out_dir/shapes_world.json`` for reproducibility.
    """
    if seed < 0 or n_train < 0 or n_test < 0:
        raise ValueError(f"seed, n_train and n_test must be >= 0, got {seed}, {n_train}, {n_test}.")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    train_questions = check_questions(train_questions or {}, config)
    summary: dict = {"seed": seed, "config": dataclasses.asdict(config),
                     "train_questions": train_questions}
    for split_index, (split, count) in enumerate(zip(SPLITS, (n_train, n_test))):
        records = []
        for index in range(count):
            scene_rng, question_rng = scene_rngs(seed, split_index, index)
            scene = generate_scene(scene_rng, config)
            render_scene(scene, config).save(out / image_path(split, index), format="PNG")
            records.extend(scene_records(scene, question_rng, config, split, index,
                                         train_questions if split == "train" else None))
        _write_json(out / f"{split}.json", records)
        categories = Counter(r["category"] for r in records)
        summary[split] = {
            "scenes": count,
            "records": len(records),
            "categories": {f: categories[f] for f in FAMILIES if f in config.families},
        }
    _write_json(out / "shapes_world.json", summary)
    return summary


def check_questions(questions: dict[str, int], config: ShapesConfig) -> dict[str, int]:
    """``{family: n}`` with every family enabled in ``config`` and every n >= 1, else ValueError.
    ``order`` and ``nearest`` (training only: listings of the objects along an axis,
    ``order_listings``; more closest / furthest questions, ``nearest_questions``) are accepted
    too and need the relation family, whose records they are, as does ``compare`` (yes/no
    distance comparisons, ``compare_questions``); ``locate`` (coordinates of the objects,
    ``locate_questions``) needs the position family."""
    for family, n in questions.items():
        if family in EXTRA_TAGS:
            if EXTRA_TAGS[family] not in config.families:
                raise ValueError(f"questions per scene: {family} (extra {EXTRA_TAGS[family]} "
                                 f"questions) needs the {EXTRA_TAGS[family]} family; enabled: "
                                 f"{', '.join(config.families)}")
        elif family not in config.families:
            raise ValueError(f"questions per scene: unknown or disabled family {family!r}; "
                             f"enabled: {', '.join(config.families)}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"questions per scene: {family}={n!r} must be an int >= 1")
    return {family: questions[family] for family in (*FAMILIES, *EXTRA_TAGS)
            if family in questions}


def parse_questions(text: str) -> dict[str, int]:
    """``"position=3,attribute=2"`` -> ``{"position": 3, "attribute": 2}`` (ValueError if not)."""
    questions = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        family, sep, n = item.partition("=")
        if not sep or not n.strip().isdigit():
            raise ValueError(f"questions per scene: {item!r} must look like family=N, "
                             "e.g. position=3")
        questions[family.strip()] = int(n)
    return questions


def _write_json(path: Path, value) -> None:
    """Write ``value`` as JSON with a trailing newline; the bytes depend on ``value`` alone."""
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
