"""The GenEval mirror: prompts in the world's language, strict checks, oracle renders at 100%,
the retrieval baseline, diversity, the judge's questions answered by the parser."""

import json

import numpy as np
import pytest

from vit_tf.data.shapes import ShapesConfig, generate_scene, scene_records, scene_rngs
from vit_tf.t2i.geneval import (
    HELD_OUT_TASKS,
    TASKS,
    ObjectSpec,
    PromptSpec,
    caption_text,
    check,
    description_text,
    diversity,
    oracle_render,
    prompt_suites,
    score_images,
    summarize,
)
from vit_tf.t2i.judge import parser_answer, questions_for
from vit_tf.t2i.parser import parse_image
from vit_tf.t2i.retrieval import RetrievalBaseline

CONFIG = ShapesConfig()
HOLD = [("red", "triangle"), ("green", "circle")]


@pytest.fixture(scope="module")
def suites():
    return prompt_suites(per_task=6, seed=3, hold_out=HOLD)


def test_prompts_are_written_in_the_worlds_caption_and_description_language():
    config = ShapesConfig(families=("caption", "description"))
    for i in range(30):
        scene_rng, question_rng = scene_rngs(0, 0, i)
        scene = generate_scene(scene_rng, config)
        records = scene_records(scene, question_rng, config, "train", i)
        answers = {r["category"]: r["conversations"][1]["value"] for r in records}
        objects = [ObjectSpec(o.color, o.shape, o.size, _cell(scene, o)) for o in scene.objects]
        assert caption_text(objects) == answers["caption"]
        assert description_text(objects) == answers["description"]


def _cell(scene, o):
    from vit_tf.data.shapes_scene import grid_cell

    return grid_cell(o.center, scene.canvas_size)


def test_oracle_renders_score_100_percent_on_every_task(suites):
    specs = [s for task in suites for s in suites[task]]
    images = [oracle_render(s, CONFIG, seed=i) for i, s in enumerate(specs)]
    table = summarize(score_images(specs, images))
    assert set(table) == {*TASKS, *HELD_OUT_TASKS, "overall", "held_out", "n"}
    assert all(table[t] == 1.0 for t in (*TASKS, *HELD_OUT_TASKS, "overall", "held_out"))


def test_held_out_pairs_appear_only_in_the_held_out_suite(suites):
    for task, specs in suites.items():
        for spec in specs:
            pairs = {(o.color, o.shape) for o in spec.objects}
            assert bool(pairs & set(HOLD)) == (task in HELD_OUT_TASKS), (task, spec.prompt)


def test_checks_are_strict_blank_fails_and_swapped_colours_fail_binding():
    blank = np.full((64, 64, 3), CONFIG.background, np.uint8)
    spec = PromptSpec("color_binding", "a large red circle and a small blue square.",
                      (ObjectSpec("red", "circle", "large"), ObjectSpec("blue", "square", "small")))
    swapped = PromptSpec("color_binding", "", (ObjectSpec("blue", "circle", "large"),
                                               ObjectSpec("red", "square", "small")))
    image = oracle_render(swapped, CONFIG)
    scene = parse_image(image, CONFIG).scene
    assert not check(spec, scene)
    assert check(PromptSpec("two_object", "", spec.objects), scene)     # shapes are right
    assert not check(spec, parse_image(blank, CONFIG).scene)
    position = PromptSpec("position", "", (ObjectSpec("red", "circle", "large", (0, 0)),))
    moved = oracle_render(PromptSpec("position", "", (ObjectSpec("red", "circle", "large",
                                                                 (2, 2)),)), CONFIG)
    assert not check(position, parse_image(moved, CONFIG).scene)


def test_overall_is_the_mean_of_the_task_means():
    results = [{"task": "colors", "passed": True}, {"task": "colors", "passed": False},
               {"task": "counting", "passed": True}, {"task": "held_out_colors", "passed": False}]
    table = summarize(results)
    assert table["colors"] == 0.5 and table["counting"] == 1.0
    assert table["overall"] == 0.75 and table["held_out"] == 0.0 and table["n"] == 4


def test_retrieval_takes_the_caption_with_the_right_binding(tmp_path):
    from PIL import Image

    paths = []
    for i, color in enumerate(((200, 0, 0), (0, 0, 200))):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (64, 64), color).save(paths[-1])
    baseline = RetrievalBaseline(["a large blue circle and a small red square.",
                                  "a large red circle and a small blue square."], paths)
    assert list(baseline.nearest(["a large red circle and a small blue square."])) == [1]
    assert baseline.generate(["a small blue square and a large red circle."])[0, 0, 0, 2] == 200


def test_diversity_is_zero_for_identical_images_and_counts_layouts():
    spec = PromptSpec("colors", "", (ObjectSpec("red", "circle", "large"),))
    a, b = oracle_render(spec, CONFIG, seed=0), oracle_render(spec, CONFIG, seed=1)
    assert diversity([a, a]) == (0.0, 0.5)
    pixel, layouts = diversity([a, b])
    assert pixel > 0 and layouts == 1.0


def test_judge_questions_are_answered_as_demanded_by_the_parser_on_oracle_renders(suites):
    for task, specs in suites.items():
        for i, spec in enumerate(specs):
            scene = parse_image(oracle_render(spec, CONFIG, seed=i), CONFIG).scene
            questions = questions_for(spec)
            assert questions
            for question, expected, kind in questions:
                assert parser_answer(kind, scene) == expected, (spec.prompt, question)
    spec = suites["position"][0]
    assert any(" or the " in q for q, _, _ in questions_for(spec))
    json.dumps([s.to_json() for s in suites["exact"]])
