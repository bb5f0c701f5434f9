"""Tests for the shapes world: determinism, scene validity, record format and exact answers."""

import collections
import itertools
import json
import math
import re

import numpy as np
import pytest

from vit_tf.data.shapes import (
    FAMILIES,
    PALETTE,
    Scene,
    ShapeObject,
    ShapesConfig,
    generate_scene,
    referent,
    render_scene,
    scene_records,
    scene_rngs,
    write_shapes_world,
)
from vit_tf.data.shapes import parse_questions
from vit_tf.data.shapes_questions import question_subject
from vit_tf.data.shapes_scene import GAP


MIX = {"attribute": 2, "position": 3, "existence": 2}
"""A training mix: extra questions of these families (``scene_records(questions=...)``)."""


def _scenes(n, config=ShapesConfig(), seed=0, split_index=0, questions=None):
    """(scene, records) for the first ``n`` scenes of a split, as the writer makes them."""
    out = []
    for index in range(n):
        scene_rng, question_rng = scene_rngs(seed, split_index, index)
        scene = generate_scene(scene_rng, config)
        out.append((scene, scene_records(scene, question_rng, config, "train", index,
                                         questions)))
    return out


def _files(root):
    """Relative path -> bytes for every file under ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _vocab_pattern(config):
    """Regex matching an object description such as "the large red object" or "the circle"."""
    words = "|".join([*config.sizes, *config.colors])
    return re.compile(rf"\bthe ((?:(?:{words}) )*)(circle|square|triangle|object)\b")


def _resolve(description, scene, config):
    """The objects matching the words of ``description`` (e.g. "large red", "circle")."""
    words, head = description
    wanted = words.split() + ([] if head == "object" else [head])
    return [o for o in scene.objects if set(wanted) <= {o.color, o.shape, o.size}]


def _first_turn(record):
    prompt = record["conversations"][0]["value"].removeprefix("<image>\n")
    return prompt, record["conversations"][1]["value"]


def test_same_seed_gives_byte_identical_files(tmp_path):
    write_shapes_world(tmp_path / "a", n_train=12, n_test=4, seed=3)
    write_shapes_world(tmp_path / "b", n_train=12, n_test=4, seed=3)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(first) == 12 + 4 + 3
    assert first == second


def test_different_seed_gives_different_files(tmp_path):
    write_shapes_world(tmp_path / "a", n_train=12, n_test=4, seed=3)
    write_shapes_world(tmp_path / "b", n_train=12, n_test=4, seed=4)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first["train.json"] != second["train.json"]
    assert sum(first[k] == second[k] for k in first if k.startswith("images/")) < 4


def test_train_and_test_splits_use_different_scenes():
    train = [scene for scene, _ in _scenes(50, split_index=0)]
    test = [scene for scene, _ in _scenes(50, split_index=1)]
    assert not set(train) & set(test)


@pytest.mark.parametrize(
    "config",
    [ShapesConfig(), ShapesConfig(max_objects=4, sizes=("large",)), ShapesConfig(canvas_size=32)],
)
def test_objects_stay_on_canvas_apart_and_with_unique_colour_shape(config):
    for _ in range(300):
        scene = generate_scene(np.random.default_rng(_), config)
        assert config.min_objects <= len(scene.objects) <= config.max_objects
        pairs = [(o.color, o.shape) for o in scene.objects]
        assert len(set(pairs)) == len(pairs)
        for o in scene.objects:
            x0, y0, x1, y1 = o.bbox
            assert 0 <= x0 < x1 <= config.canvas_size and 0 <= y0 < y1 <= config.canvas_size
        for a, b in itertools.combinations(scene.objects, 2):
            apart_x = a.bbox[2] + GAP <= b.bbox[0] or b.bbox[2] + GAP <= a.bbox[0]
            apart_y = a.bbox[3] + GAP <= b.bbox[1] or b.bbox[3] + GAP <= a.bbox[1]
            assert apart_x or apart_y, (a, b)


def test_records_follow_llava_format_with_one_image_token():
    ids = set()
    for scene, records in _scenes(60):
        for record in records:
            assert record["category"] in FAMILIES
            assert record["id"] not in ids
            ids.add(record["id"])
            assert re.fullmatch(r"images/train_\d{6}\.png", record["image"])
            turns = record["conversations"]
            assert len(turns) >= 2 and len(turns) % 2 == 0
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
            assert turns[0]["value"].startswith("<image>\n")
            assert sum(t["value"].count("<image>") for t in turns) == 1
            for t in turns[1::2]:
                assert t["value"] and t["value"] == t["value"].lower()


def test_every_family_appears_and_captions_list_every_object():
    seen = set()
    for scene, records in _scenes(60):
        seen |= {r["category"] for r in records}
        caption = next(r for r in records if r["category"] == "caption")
        description = next(r for r in records if r["category"] == "description")
        for o in scene.objects:
            noun = f"{o.size} {o.color} {o.shape}"
            assert noun in _first_turn(caption)[1]
            assert f"{noun} {'on' if scene.position(o) in ('left', 'right') else 'at'} the " \
                   f"{scene.position(o)}." in _first_turn(description)[1]
    assert seen == set(FAMILIES)


@pytest.mark.parametrize("questions", [None, MIX])
def test_existence_is_balanced_and_negatives_are_absent(questions):
    config = ShapesConfig()
    pattern = _vocab_pattern(config)
    answers = []
    for scene, records in _scenes(200, config, questions=questions):
        for record in [r for r in records if r["category"] == "existence"]:
            prompt, answer = _first_turn(record)
            match = pattern.search(re.sub(r"\ban? ", "the ", prompt))
            present = _resolve(match.groups(), scene, config)
            assert answer == ("yes" if present else "no"), prompt
            answers.append(answer)
    assert len(answers) >= (360 if questions else 200)
    assert 0.45 <= answers.count("yes") / len(answers) <= 0.55


@pytest.mark.parametrize("questions", [None, MIX])
def test_attribute_answers_match_scene_and_names_hide_the_answer(questions):
    config = ShapesConfig()
    pattern = _vocab_pattern(config)
    for scene, records in _scenes(150, config, questions=questions):
        for record in [r for r in records if r["category"] == "attribute"]:
            prompt, answer = _first_turn(record)
            match = pattern.search(prompt)
            (obj,) = _resolve(match.groups(), scene, config)
            attr = ("color" if re.search("colou?r", prompt) else "shape" if "shape" in prompt
                    else "size")
            assert answer == getattr(obj, attr), prompt
            assert answer not in match[0]


def test_extra_questions_keep_every_default_record_and_ask_about_other_subjects():
    default, mixed = _scenes(80), _scenes(80, questions=MIX)
    extra = {family: 0 for family in MIX}
    for (scene, plain), (_, more) in zip(default, mixed):
        assert [r for r in more if r["id"].count("-") == 2] == plain   # unchanged, same order
        for family, most in MIX.items():
            asked = [r for r in more if r["category"] == family]
            if not any(r["category"] == family for r in plain):   # nothing to ask at all
                assert not asked
                continue
            assert 1 <= len(asked) <= most
            assert [r["id"] for r in asked] == (
                [asked[0]["id"]] + [f"{asked[0]['id']}-{k}" for k in range(2, len(asked) + 1)])
            if family == "position":   # each about another (object, axis)
                subjects = {(re.search(r"the (\w+ (?:circle|square|triangle))", _first_turn(r)[0])[1],
                             _first_turn(r)[1] in ("left", "right")) for r in asked}
                assert len(subjects) == len(asked)
            extra[family] += len(asked) - 1
        for family in set(FAMILIES) - set(MIX):
            assert len([r for r in more if r["category"] == family]) <= 1
    assert all(n >= 40 for n in extra.values()), extra     # most scenes have more to ask


def test_a_training_mix_leaves_the_test_split_unchanged(tmp_path):
    plain = write_shapes_world(tmp_path / "plain", n_train=6, n_test=4, seed=2)
    mixed = write_shapes_world(tmp_path / "mixed", n_train=6, n_test=4, seed=2,
                               train_questions={"position": 3})
    assert ((tmp_path / "plain" / "test.json").read_bytes()
            == (tmp_path / "mixed" / "test.json").read_bytes())
    assert mixed["train"]["categories"]["position"] > plain["train"]["categories"]["position"]
    assert mixed["train_questions"] == {"position": 3} and plain["train_questions"] == {}
    saved = json.loads((tmp_path / "mixed" / "shapes_world.json").read_text())
    assert saved["train_questions"] == {"position": 3}


@pytest.mark.parametrize("text, message", [
    ("position", "must look like family=N"),
    ("position=two", "must look like family=N"),
    ("positions=2", "unknown or disabled family 'positions'"),
    ("position=0", "position=0 must be an int >= 1"),
])
def test_bad_training_mixes_are_refused_with_the_family(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        write_shapes_world(tmp_path, 1, 1, train_questions=parse_questions(text))


def test_question_subject_ignores_phrasing_and_option_order():
    config = ShapesConfig()
    a = [("Is the red circle on the left or the right?", "left")]
    b = [("Which half of the image is the red circle in, the right or the left?", "left")]
    c = [("Is the red circle at the top or the bottom?", "top")]
    assert question_subject(a, config) == question_subject(b, config) != question_subject(c, config)


@pytest.mark.parametrize("questions", [None, {"position": 3}, {"relation": 6}])
def test_position_and_relation_answers_match_scene(questions):
    config = ShapesConfig()
    pattern = _vocab_pattern(config)
    checked = 0
    for scene, records in _scenes(150, config, questions=questions):
        half = config.canvas_size / 2
        for record in records:
            prompt, answer = _first_turn(record)
            matches = [m.groups() for m in pattern.finditer(prompt) if m[0] != "the object"]
            named = [_resolve(m, scene, config) for m in matches]
            if record["category"] == "position":
                (obj,), = named
                x, y = obj.center
                expected = ("left" if x < half else "right") if "left" in prompt else (
                    "top" if y < half else "bottom")
                assert answer == expected, prompt
                assert abs((x if "left" in prompt else y) - half) >= 0.12 * config.canvas_size
                checked += 1
            elif record["category"] == "relation" and answer in ("yes", "no"):
                (a,), (b,) = named
                axis = 0 if ("left" in prompt or "right" in prompt) else 1
                before = re.search(r"left|above|higher", prompt) is not None
                ahead = a.center[axis] < b.center[axis]
                holds = ahead if before else b.center[axis] < a.center[axis]
                assert answer == ("yes" if holds else "no"), prompt
                assert abs(a.center[axis] - b.center[axis]) >= 0.1 * config.canvas_size
                checked += 1
            elif record["category"] == "relation":
                (a,), = named
                (b,) = _resolve(pattern.search(answer).groups(), scene, config)
                dist = {o: math.dist(a.center, o.center) for o in scene.objects if o is not a}
                pick = min if "closest" in prompt or "nearest" in prompt else max
                assert b is pick(dist, key=dist.get), prompt
                checked += 1
    assert checked > 200


def test_relation_mix_mirrors_each_pair_balances_yes_no_and_takes_every_form():
    """--train-questions relation=N: the first question is unchanged, a yes/no one is followed
    by the same pair the other way round (opposite answer), and the forms take turns."""
    default, mixed = _scenes(120), _scenes(120, questions={"relation": 6})
    answers, forms, mirrored = [], set(), 0
    for (_, plain), (_, more) in zip(default, mixed):
        assert [r for r in more if r["id"].count("-") == 2] == plain
        asked = [_first_turn(r) for r in more if r["category"] == "relation"]
        assert len(asked) <= 6
        assert len({question_subject([turn], ShapesConfig()) for turn in asked}) == len(asked)
        names = [re.findall(r"the \w+ (?:circle|square|triangle)", p) for p, _ in asked]
        if len(asked) > 1 and asked[0][1] in ("yes", "no"):
            assert names[1] == names[0][::-1] and asked[1][1] != asked[0][1]
            mirrored += 1
        answers += [a for _, a in asked if a in ("yes", "no")]
        forms |= {w for p, _ in asked for w in ("left", "right", "above", "below", "closest",
                                               "furthest") if w in p}
    assert mirrored >= 40
    assert abs(answers.count("yes") - answers.count("no")) <= 0.05 * len(answers)
    assert forms == {"left", "right", "above", "below", "closest", "furthest"}


def _added(n, config, questions, tag):
    """(scene, records ``tag`` adds) for the first ``n`` scenes, checking that the records
    without ``tag`` in their id are those of ``questions`` alone, unchanged."""
    plain = _scenes(n, config, questions=questions)
    more = _scenes(n, config, questions={**questions, tag: 4 if tag != "locate" else 2})
    for (scene, before), (_, after) in zip(plain, more):
        assert [r for r in after if f"-{tag}-" not in r["id"]] == before
        yield scene, [r for r in after if f"-{tag}-" in r["id"]]


def test_order_listings_name_every_object_along_x_and_leave_the_rest_unchanged():
    """--train-questions order=N: listings of the objects by their centres' x (slots 1-2) and
    then y (slots 3-4), only where neighbours are clearly apart; every other record as before."""
    config = ShapesConfig()
    plain = _scenes(120, config, questions={"relation": 4})
    listed = _scenes(120, config, questions={"relation": 4, "order": 4})
    starts = collections.Counter()
    for (scene, before), (_, after) in zip(plain, listed):
        orders = [r for r in after if "-order-" in r["id"]]
        assert [r for r in after if "-order-" not in r["id"]] == before
        for record in orders:
            assert record["category"] == "relation"
            prompt, answer = _first_turn(record)
            start = re.search(r"from (\w+) to", prompt)[1]
            axis = 0 if start in ("left", "right") else 1
            named = [next(o for o in scene.objects if f"the {o.color} {o.shape}" == name)
                     for name in re.split(r", | and ", answer)]
            assert sorted(named, key=id) == sorted(scene.objects, key=id) and len(named) >= 2
            along = [o.center[axis] for o in named]
            if start in ("right", "bottom"):
                along = along[::-1]
            assert all(b - a >= 0.1 * config.canvas_size for a, b in zip(along, along[1:]))
            starts[start] += 1
        horizontal = [r for r in orders if re.search(r"left|right", _first_turn(r)[0])]
        assert orders[:len(horizontal)] == horizontal      # x first
    assert min(starts.values()) >= 15 and set(starts) == {"left", "right", "top", "bottom"}
    two = [_first_turn(r)[0] for _, records in _scenes(60, config, questions={"order": 2})
           for r in records if "-order-" in r["id"]]
    assert len(two) >= 40 and all(re.search(r"left|right", p) for p in two)


def test_nearest_questions_answer_the_closest_or_furthest_and_ask_new_ones_first():
    """--train-questions nearest=N: up to N closest / furthest questions, each answered with
    the object nearest to (furthest from) the named one, in a phrasing not yet asked, the
    (form, object) pairs not yet asked first; every other record as before."""
    config = ShapesConfig()
    pattern = _vocab_pattern(config)

    def named(text):
        return next(m for m in pattern.finditer(text) if m[0] != "the object")

    def form(prompt):
        return ("closest" if re.search("closest|nearest", prompt) else
                "furthest" if re.search("furthest|farthest", prompt) else None)

    plain = _scenes(150, config, questions={"relation": 12})
    more = _scenes(150, config, questions={"relation": 12, "nearest": 4})
    added, repeats = 0, 0
    for (scene, before), (_, after) in zip(plain, more):
        extra = [r for r in after if "-nearest-" in r["id"]]
        assert [r for r in after if "-nearest-" not in r["id"]] == before
        assert len(extra) <= 4 and (len(scene.objects) >= 3 or not extra)
        asked = [_first_turn(r)[0] for r in before]
        posed = {(form(p), named(p)[0]) for p in asked if form(p)}
        flags = {"closest": [], "furthest": []}
        for record in extra:
            assert record["category"] == "relation"
            prompt, answer = _first_turn(record)
            (a,) = _resolve(named(prompt).groups(), scene, config)
            (b,) = _resolve(named(answer).groups(), scene, config)
            dist = {o: math.dist(a.center, o.center) for o in scene.objects if o is not a}
            pick = min if form(prompt) == "closest" else max
            assert b is pick(dist, key=dist.get), prompt
            assert prompt not in asked
            flags[form(prompt)].append((form(prompt), named(prompt)[0]) in posed)
        for seen in flags.values():
            assert seen == sorted(seen)        # pairs not yet asked come first
            repeats += sum(seen)
        added += len(extra)
    assert added >= 60 and 0 < repeats < added


def test_order_listings_need_the_relation_family(tmp_path):
    config = ShapesConfig(families=("caption", "position"))
    with pytest.raises(ValueError, match="order .* needs the relation family"):
        write_shapes_world(tmp_path, 1, 1, config=config, train_questions={"order": 2})


def test_locate_questions_give_each_named_objects_centre_once():
    """--train-questions locate=N: up to N position records, each about another object,
    answered with its centre in whole pixels, x first; every other record as before."""
    config = ShapesConfig()
    pattern = _vocab_pattern(config)
    added = 0
    for scene, extra in _added(80, config, {"relation": 12, "nearest": 2}, "locate"):
        assert len(extra) == min(2, len(scene.objects))
        named = []
        for k, record in enumerate(extra, start=1):
            assert record["category"] == "position"
            assert record["id"].endswith(f"-position-locate-{k}")
            prompt, answer = _first_turn(record)
            (obj,) = _resolve(next(pattern.finditer(prompt)).groups(), scene, config)
            x, y = (int(v) for v in re.fullmatch(r"\((\d+), (\d+)\)", answer).groups())
            assert abs(x - obj.center[0]) <= 0.5 and abs(y - obj.center[1]) <= 0.5, prompt
            named.append(obj)
        assert len({id(o) for o in named}) == len(named)
        added += len(extra)
    assert added >= 120


def test_compare_questions_answer_which_of_two_named_objects_is_closer_in_mirrored_pairs():
    """--train-questions compare=N: "Is B closer to (further from) A than C?" answered from the
    centres, each followed by its mirror with the opposite answer; clear margins only."""
    config = ShapesConfig()
    pattern = _vocab_pattern(config)
    answers = collections.Counter()
    for scene, extra in _added(150, config, {"relation": 12}, "compare"):
        assert len(extra) <= 4 and len(extra) % 2 == 0
        assert len(scene.objects) >= 3 or not extra
        for first, mirror in zip(extra[::2], extra[1::2]):
            (p1, a1), (p2, a2) = _first_turn(first), _first_turn(mirror)
            assert {a1, a2} == {"yes", "no"}
            for prompt, answer in ((p1, a1), (p2, a2)):
                assert first["category"] == "relation"
                b, a, c = (_resolve(m.groups(), scene, config)[0]
                           for m in pattern.finditer(prompt))
                d_b, d_c = math.dist(a.center, b.center), math.dist(a.center, c.center)
                assert abs(d_b - d_c) >= 0.1 * config.canvas_size
                closer = re.search(r"closer|nearer", prompt) is not None
                assert answer == ("yes" if (d_b < d_c) == closer else "no"), prompt
                answers[answer] += 1
    assert answers["yes"] == answers["no"] >= 40


def test_locate_questions_need_the_position_family(tmp_path):
    config = ShapesConfig(families=("caption", "relation"))
    with pytest.raises(ValueError, match="locate .* needs the position family"):
        write_shapes_world(tmp_path, 1, 1, config=config, train_questions={"locate": 2})


def test_counting_answers_match_scene():
    config = ShapesConfig()
    for scene, records in _scenes(150, config):
        prompt, answer = _first_turn(next(r for r in records if r["category"] == "counting"))
        words = set(re.findall(r"\w+", prompt))
        objects = scene.objects
        for value in (*config.colors, *config.sizes):
            if value in words:
                objects = [o for o in objects if value in (o.color, o.size)]
        for shape in config.shapes:
            if shape + "s" in words:
                objects = [o for o in objects if o.shape == shape]
        assert answer == str(len(objects)), prompt


def test_conversations_have_three_turns_about_one_object():
    for scene, records in _scenes(60):
        record = next(r for r in records if r["category"] == "conversation")
        humans = record["conversations"][0::2]
        assert len(humans) >= 3
        assert sum(" it" in h["value"] for h in humans[1:]) >= len(humans) - 2
        answers = [t["value"] for t in record["conversations"][1::2]]
        assert answers[0] in ("yes", "no")
        assert any(a in ("small", "large") for a in answers[1:])
        assert any(a == scene.position(o) for a in answers[1:] for o in scene.objects)


def test_rendered_centre_pixel_has_object_colour():
    config = ShapesConfig()
    for scene, _ in _scenes(40, config):
        pixels = np.asarray(render_scene(scene, config))
        assert pixels.shape == (config.canvas_size, config.canvas_size, 3)
        for o in scene.objects:
            x, y = (int(c) for c in o.center)
            assert tuple(pixels[y, x]) == PALETTE[o.color], o
            if o.shape != "triangle":
                x0, y0, x1, y1 = o.bbox
                assert tuple(pixels[(y0 + y1) // 2, x0]) == PALETTE[o.color]
        covered = np.zeros(pixels.shape[:2], dtype=bool)
        for o in scene.objects:
            x0, y0, x1, y1 = o.bbox
            covered[y0:y1, x0:x1] = True
        assert (pixels[~covered] == config.background).all()


def test_image_files_have_canvas_size(tmp_path):
    from PIL import Image

    write_shapes_world(tmp_path, n_train=3, n_test=1, config=ShapesConfig(canvas_size=96))
    for path in (tmp_path / "images").iterdir():
        with Image.open(path) as image:
            assert image.size == (96, 96) and image.mode == "RGB"


def test_families_filter_keeps_other_families_unchanged():
    full = _scenes(30)
    only = _scenes(30, ShapesConfig(families=("existence", "caption")))
    for (_, all_records), (_, some) in zip(full, only):
        assert {r["category"] for r in some} == {"existence", "caption"}
        assert some == [r for r in all_records if r["category"] in ("caption", "existence")]


def test_summary_counts_match_written_records(tmp_path):
    summary = write_shapes_world(tmp_path, n_train=20, n_test=5, seed=1)
    for split, scenes in (("train", 20), ("test", 5)):
        records = json.loads((tmp_path / f"{split}.json").read_text())
        assert summary[split]["scenes"] == scenes
        assert summary[split]["records"] == len(records)
        assert sum(summary[split]["categories"].values()) == len(records)
        assert all((tmp_path / r["image"]).is_file() for r in records)


def test_referent_is_shortest_unique_name_without_the_asked_attribute():
    def obj(color, shape, size):
        return ShapeObject(color, shape, size, (0, 0, 1, 1), (0.5, 0.5))

    scene = Scene((obj("red", "circle", "large"), obj("blue", "circle", "small"),
                   obj("red", "square", "small")), 64)
    big, blue, square = scene.objects
    assert referent(big, scene.objects, "color") == "the large object"
    assert referent(square, scene.objects, "color") == "the square"
    assert referent(big, scene.objects, "shape") == "the large object"
    assert referent(blue, scene.objects, "size") == "the blue object"
    assert referent(square, scene.objects, "shape") == "the small red object"
    pairs = Scene((obj("red", "circle", "large"), obj("blue", "circle", "small"),
                   obj("blue", "square", "large")), 64)
    assert referent(pairs.objects[0], pairs.objects, "color") == "the large circle"
    twins = Scene((obj("red", "circle", "small"), obj("red", "square", "small")), 64)
    assert referent(twins.objects[0], twins.objects, "shape") is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"colors": ("red", "magenta")}, "unknown colors ['magenta']"),
        ({"shapes": ("circle", "star")}, "unknown shapes ['star']"),
        ({"sizes": ("huge",)}, "unknown sizes ['huge']"),
        ({"families": ("caption", "vqa")}, "unknown families ['vqa']"),
        ({"colors": ()}, "colors must not be empty"),
        ({"colors": ("red", "red")}, "repeats"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects (3) > max_objects (2)"),
        ({"min_objects": 0}, "min_objects must be >= 1"),
        ({"canvas_size": 8}, "canvas_size must be an int >= 16"),
        ({"canvas_size": 32, "max_objects": 6}, "too small for 6 objects"),
        ({"colors": ("red",), "shapes": ("circle",), "max_objects": 2}, "distinct (colour, shape)"),
        ({"colors": ("red",), "shapes": ("circle", "square"), "max_objects": 2}, "absent"),
        ({"background": PALETTE["red"]}, "equals the colour"),
    ],
)
def test_config_rejects_invalid_values(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ShapesConfig(**kwargs)
