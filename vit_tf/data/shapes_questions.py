"""Questions about shapes-world scenes, answered exactly from the scene.

Each family in ``FAMILIES`` builds the turns of one conversation, a list of (prompt, answer)
pairs, or None when the scene admits no unambiguous question of that kind; ``scene_records``
wraps them as LLaVA records. Prompts are drawn from several phrasings, answers are short
lowercase text, and an object is named so that the name picks exactly one object and never
gives the answer away.

Example::

    records = scene_records(scene, np.random.default_rng(0), ShapesConfig(), "train", 7)
    records[0]["conversations"][0]["value"]  # "<image>\\nDescribe the image briefly."
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Callable

import numpy as np

from vit_tf.data.shapes_scene import FAMILIES, Scene, ShapeObject, ShapesConfig

Turn = tuple[str, str]

POSITION_MARGIN = 0.12
"""Left/right and top/bottom are asked only of objects this far (x canvas) from the middle."""

RELATION_MARGIN = 0.1
"""Left-of/above are asked only of centres this far apart (x canvas) on that axis; closest and
furthest only when the best distance beats the runner-up by this much."""

ABSENT_COUNT_RATE = 0.2
"""How often a counting question asks about a colour, shape or size that is absent (answer 0)."""

ABSENT_OPENING_RATE = 0.25
"""How often a conversation opens by asking about an absent object."""

_REFERENT_ATTRS = (
    ("shape",),
    ("color",),
    ("size",),
    ("size", "shape"),
    ("color", "shape"),
    ("size", "color"),
)
"""Descriptions tried when naming an object, shortest first."""


def scene_records(
    scene: Scene, rng: np.random.Generator, config: ShapesConfig, split: str, index: int,
    questions: dict[str, int] | None = None,
) -> list[dict]:
    """One LLaVA record per enabled family that has an unambiguous question for ``scene``.

    Each family draws from its own stream derived from ``rng``, so enabling or disabling one
    family leaves the questions of the others unchanged. ``index`` names the image and record ids;
    its parity sets the existence answer, which balances yes and no exactly over a split.
    ``questions`` ({family: n}, e.g. ``{"position": 3}``) asks up to n questions of a family
    about the scene, each about another subject (``question_subject``); the first is the one
    asked without it, and the extra ones draw from the family's stream after it, so every other
    record is unchanged. Extra existence questions alternate the answer (no, yes, ...); extra
    relation questions come from ``relation_mix`` (each left-of / above question followed by
    its mirror, forms in turn). ``questions["order"]`` (no family of its own) adds up to n
    ``order_listings`` as relation records with ids ``<split>-<index>-relation-order-<k>``,
    after all others and from a stream of their own, so the other records are unchanged;
    ``questions["nearest"]`` likewise adds up to n ``nearest_questions`` (closest / furthest)
    with ids ``<split>-<index>-relation-nearest-<k>``, after those, and ``questions["locate"]``
    up to n ``locate_questions`` as position records ``<split>-<index>-position-locate-<k>``,
    and ``questions["compare"]`` up to n ``compare_questions`` (relation records).
    """
    streams = rng.integers(0, 2**63 - 1, size=len(FAMILIES))
    records = []
    for family, stream in zip(FAMILIES, streams):
        if family not in config.families:
            continue
        family_rng = np.random.default_rng(int(stream))
        turns = _BUILDERS[family](scene, family_rng, config, index)
        if not turns:
            continue
        records.append(_record(turns, split, index, family))
        wanted = (questions or {}).get(family, 1)
        seen = {question_subject(turns, config)}
        if family in _MIX_BUILDERS and wanted > 1:
            for more in _MIX_BUILDERS[family](scene, family_rng, turns):
                if len(seen) >= wanted:
                    break
                subject = question_subject(more, config)
                if subject not in seen:
                    seen.add(subject)
                    records.append(_record(more, split, index, family, number=len(seen)))
            continue
        for attempt in range(EXTRA_TRIES * (wanted - 1)):
            if len(seen) >= wanted:
                break
            more = _BUILDERS[family](scene, family_rng, config, index + 1 + attempt)
            subject = question_subject(more, config) if more else None
            if subject is not None and subject not in seen:
                seen.add(subject)
                records.append(_record(more, split, index, family, number=len(seen)))
    for tag in EXTRA_TAGS:
        wanted = (questions or {}).get(tag, 0)
        if not wanted or EXTRA_TAGS[tag] not in config.families:
            continue
        # Each its own stream, drawn after every family's: the records above are unchanged.
        extra_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        extra = _EXTRA_BUILDERS[tag](scene, extra_rng, wanted, records)
        family = EXTRA_TAGS[tag]
        for k, turns in enumerate(extra, start=1):
            records.append({**_record(turns, split, index, family),
                            "id": f"{split}-{index:06d}-{family}-{tag}-{k}"})
    return records


EXTRA_TAGS = {"order": "relation", "nearest": "relation", "locate": "position",
              "compare": "relation"}
"""Training-only question sets of ``scene_records(questions=...)`` that are no family of their
own -> the family whose records they are (and which must be enabled), in the order they are
added (each from its own stream, after every family's records)."""


EXTRA_TRIES = 8
"""Draws per extra question wanted (``scene_records(questions=...)``) before giving up: a scene
may have fewer distinct subjects than asked for (one object has two position questions)."""

_ASKED_ATTRIBUTE = {"colour": "color", "color": "color", "shape": "shape", "size": "size",
                    "big": "size", "many": "count", "count": "count"}
_DIRECTIONS = ("left", "right", "top", "bottom", "above", "higher", "below", "lower", "beneath",
               "closest", "nearest", "furthest", "farthest")


def question_subject(turns: list[Turn], config: ShapesConfig) -> tuple:
    """What a question is about, whatever its phrasing: the attribute values and directions its
    prompts name, the attribute it asks for, and its answers.

    "Is the red circle on the left or the right?" and "Which half of the image is the red
    circle in, the right or the left?" have one subject; the same object's top-or-bottom
    question has another.
    """
    names = set(config.colors) | set(config.shapes) | set(config.sizes) | set(_DIRECTIONS)
    words = {w for prompt, _ in turns for w in prompt.lower().replace("?", " ").split()}
    asked = {_ASKED_ATTRIBUTE[w] for w in words if w in _ASKED_ATTRIBUTE}
    return (frozenset(words & names), frozenset(asked), tuple(answer for _, answer in turns))


def image_path(split: str, index: int) -> str:
    """Path of a scene's image, relative to the dataset directory."""
    return f"images/{split}_{index:06d}.png"


def _record(turns: list[Turn], split: str, index: int, family: str, number: int = 1) -> dict:
    """A LLaVA record; ``<image>`` opens the first human turn and appears nowhere else. The
    ``number``-th question of a family about a scene (``number`` > 1) gets the id suffix
    ``-<number>``."""
    conversations = []
    for i, (prompt, answer) in enumerate(turns):
        value = f"<image>\n{prompt}" if i == 0 else prompt
        conversations.append({"from": "human", "value": value})
        conversations.append({"from": "gpt", "value": answer})
    return {
        "id": f"{split}-{index:06d}-{family}" + (f"-{number}" if number > 1 else ""),
        "image": image_path(split, index),
        "conversations": conversations,
        "category": family,
    }


def _pick(rng: np.random.Generator, options):
    """One element of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _article(phrase: str) -> str:
    """``phrase`` with its indefinite article: "a red circle", "an orange square"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun(obj: ShapeObject, with_size: bool = True) -> str:
    """E.g. "large red circle", or "red circle" without the size."""
    return f"{obj.size} {obj.color} {obj.shape}" if with_size else f"{obj.color} {obj.shape}"


def _name(obj: ShapeObject) -> str:
    """E.g. "the red circle": unique in a scene, since (colour, shape) pairs never repeat."""
    return f"the {obj.color} {obj.shape}"


def referent(obj: ShapeObject, objects: tuple[ShapeObject, ...], exclude: str) -> str | None:
    """Shortest description that picks out ``obj`` alone without naming attribute ``exclude``.

    E.g. "the square", "the red object" or "the large circle"; None when no such description
    exists, and the question asking for ``exclude`` is then skipped.
    """
    for attrs in _REFERENT_ATTRS:
        if exclude in attrs:
            continue
        matches = [o for o in objects if all(getattr(o, a) == getattr(obj, a) for a in attrs)]
        if len(matches) == 1:
            words = [getattr(obj, a) for a in ("size", "color", "shape") if a in attrs]
            return "the " + " ".join(words if "shape" in attrs else [*words, "object"])
    return None


def _closest(scene: Scene, obj: ShapeObject, furthest: bool = False) -> ShapeObject | None:
    """The object nearest (or furthest) from ``obj``, when it wins by a clear margin."""
    others = [o for o in scene.objects if o is not obj]
    if not others:
        return None
    dist = [math.dist(o.center, obj.center) for o in others]
    order = np.argsort(dist, kind="stable")
    if furthest:
        order = order[::-1]
    margin = RELATION_MARGIN * scene.canvas_size
    if len(others) > 1 and abs(dist[order[1]] - dist[order[0]]) < margin:
        return None
    return others[order[0]]


def _where(position: str) -> str:
    """Position as a phrase: "at the top left", "on the left", "at the center"."""
    return f"on the {position}" if position in ("left", "right") else f"at the {position}"


def _size_prompts(config: ShapesConfig, rng: np.random.Generator) -> list[str]:
    """Phrasings asking the size of "{ref}"; the either-or one lists the sizes in random order."""
    prompts = ["What size is {ref}?", "How big is {ref}?", "Which size is {ref}?"]
    if len(config.sizes) == 2:
        first, second = rng.permutation(config.sizes)
        prompts.append(f"Is {{ref}} {first} or {second}?")
    return prompts


def _caption(scene, rng, config, index) -> list[Turn]:
    """Every object by size, colour and shape, in reading order."""
    prompt = _pick(rng, (
        "Describe the image briefly.",
        "Write a short caption for this image.",
        "Give a brief caption of the picture.",
        "What is in this image? Answer in one sentence.",
    ))
    parts = [_article(_noun(o)) for o in scene.objects]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return [(prompt, text + ".")]


def _description(scene, rng, config, index) -> list[Turn]:
    """Object count, then one sentence per object with its grid position."""
    prompt = _pick(rng, (
        "Describe the image in detail.",
        "Give a detailed description of this image.",
        "Describe every object in the picture and where it is.",
        "What objects are in this image? Describe each one and its position.",
    ))
    count = len(scene.objects)
    head = "there is 1 object." if count == 1 else f"there are {count} objects."
    body = [f"{_article(_noun(o))} {_where(scene.position(o))}." for o in scene.objects]
    return [(prompt, " ".join([head, *body]))]


def _attribute(scene, rng, config, index) -> list[Turn] | None:
    """Colour, shape or size of an object named without that attribute; each kind equally often."""
    options = {"color": [], "shape": [], "size": []}
    for obj in scene.objects:
        for attr, found in options.items():
            ref = referent(obj, scene.objects, attr)
            if ref is not None:
                found.append((obj, ref))
    attrs = [attr for attr, found in options.items() if found]
    if not attrs:
        return None
    attr = _pick(rng, attrs)
    obj, ref = _pick(rng, options[attr])
    prompts = {
        "color": ["What colour is {ref}?", "What color is {ref}?", "Which colour is {ref}?"],
        "shape": ["What shape is {ref}?", "What is the shape of {ref}?", "Which shape is {ref}?"],
        "size": _size_prompts(config, rng),
    }[attr]
    return [(_pick(rng, prompts).format(ref=ref), getattr(obj, attr))]


def _position(scene, rng, config, index) -> list[Turn] | None:
    """Left/right or top/bottom of an object clearly off the middle; options in random order."""
    half, margin = scene.canvas_size / 2, POSITION_MARGIN * scene.canvas_size
    options = []
    for obj in scene.objects:
        x, y = obj.center
        if abs(x - half) >= margin:
            options.append(("x", obj, "left" if x < half else "right"))
        if abs(y - half) >= margin:
            options.append(("y", obj, "top" if y < half else "bottom"))
    if not options:
        return None
    axis, obj, answer = _pick(rng, options)
    pair = ("left", "right") if axis == "x" else ("top", "bottom")
    a, b = rng.permutation(pair)
    prompts = {
        "x": ("Is {ref} on the {a} or the {b}?",
              "Is {ref} on the {a} side or the {b} side of the image?",
              "Which half of the image is {ref} in, the {a} or the {b}?"),
        "y": ("Is {ref} at the {a} or the {b}?",
              "Is {ref} in the {a} half or the {b} half of the image?",
              "Is {ref} nearer the {a} or the {b} of the image?"),
    }[axis]
    return [(_pick(rng, prompts).format(ref=_name(obj), a=a, b=b), answer)]


def _counting(scene, rng, config, index) -> list[Turn]:
    """All objects, or those of one shape, colour or size (sometimes an absent one: "0")."""
    kinds = ["total", "shape", "color"] + (["size"] if len(config.sizes) > 1 else [])
    kind = _pick(rng, kinds)
    if kind == "total":
        prompt = _pick(rng, (
            "How many objects are there?",
            "How many objects are in the image?",
            "Count the objects in the image.",
        ))
        return [(prompt, str(len(scene.objects)))]
    values = getattr(config, kind + "s")
    present = [v for v in values if any(getattr(o, kind) == v for o in scene.objects)]
    absent = [v for v in values if v not in present]
    ask_absent = absent and rng.random() < ABSENT_COUNT_RATE
    value = _pick(rng, absent if ask_absent else present)
    things = f"{value}s" if kind == "shape" else f"{value} objects"
    prompt = _pick(rng, (
        f"How many {things} are there?",
        f"How many {things} are in the image?",
        f"Count the {things} in the image.",
    ))
    return [(prompt, str(sum(getattr(o, kind) == value for o in scene.objects)))]


def _absent_pairs(scene: Scene, config: ShapesConfig) -> list[tuple[str, str]]:
    """(colour, shape) pairs of the config that no object in ``scene`` has."""
    present = {(o.color, o.shape) for o in scene.objects}
    return [(c, s) for c in config.colors for s in config.shapes if (c, s) not in present]


def _existence(scene, rng, config, index) -> list[Turn] | None:
    """Is an object there? Negatives are absent: a wrong size of a present pair, a pair sharing
    colour or shape with a present object (hard), or any absent pair (easy)."""
    size_rate = 1 / 3 if len(config.sizes) > 1 else 0.0  # equal for yes and no: no size shortcut
    if index % 2 == 0:
        answer, thing = "yes", _noun(_pick(rng, scene.objects), rng.random() < size_rate)
    elif rng.random() < size_rate:
        obj = _pick(rng, scene.objects)
        other = _pick(rng, [s for s in config.sizes if s != obj.size])
        answer, thing = "no", f"{other} {obj.color} {obj.shape}"
    else:
        absent = _absent_pairs(scene, config)
        if not absent:
            return None
        colors = {o.color for o in scene.objects}
        shapes = {o.shape for o in scene.objects}
        hard = [(c, s) for c, s in absent if c in colors or s in shapes]
        pool = hard if hard and rng.random() < 0.5 else absent
        answer, thing = "no", " ".join(_pick(rng, pool))
    prompt = _pick(rng, (
        "Is there {a} in the image?",
        "Does the image contain {a}?",
        "Can you see {a} in this picture?",
    ))
    return [(prompt.format(a=_article(thing)), answer)]


_RELATION_PROMPTS = {
    "left": ("Is {a} left of {b}?", "Is {a} to the left of {b}?", "Is {a} on the left of {b}?"),
    "right": ("Is {a} right of {b}?", "Is {a} to the right of {b}?", "Is {a} on the right of {b}?"),
    "above": ("Is {a} above {b}?", "Is {a} higher than {b}?", "Is {a} higher up than {b}?"),
    "below": ("Is {a} below {b}?", "Is {a} lower than {b}?", "Is {a} beneath {b}?"),
    "closest": ("Which object is closest to {a}?", "Which object is nearest to {a}?",
                "What is the closest object to {a}?"),
    "furthest": ("Which object is furthest from {a}?", "Which object is farthest from {a}?",
                 "What is the object furthest away from {a}?"),
}


def _relation(scene, rng, config, index) -> list[Turn] | None:
    """Left-of / above between two clearly separated objects, or which object is closest to or
    furthest from one (three or more objects, clear winner)."""
    margin = RELATION_MARGIN * scene.canvas_size
    options = {"x": [], "y": [], "closest": [], "furthest": []}
    for a in scene.objects:
        for b in scene.objects:
            for axis, i in (("x", 0), ("y", 1)):
                if a is not b and abs(a.center[i] - b.center[i]) >= margin:
                    options[axis].append((a, b))
        if len(scene.objects) >= 3:
            for kind in ("closest", "furthest"):
                b = _closest(scene, a, furthest=kind == "furthest")
                if b is not None:
                    options[kind].append((a, b))
    kinds = [kind for kind, found in options.items() if found]
    if not kinds:
        return None
    kind = _pick(rng, kinds)
    a, b = _pick(rng, options[kind])
    if kind in ("closest", "furthest"):
        return [(_pick(rng, _RELATION_PROMPTS[kind]).format(a=_name(a)), _name(b))]
    word = _pick(rng, ("left", "right") if kind == "x" else ("above", "below"))
    i = 0 if kind == "x" else 1
    holds = a.center[i] < b.center[i] if word in ("left", "above") else a.center[i] > b.center[i]
    prompt = _pick(rng, _RELATION_PROMPTS[word]).format(a=_name(a), b=_name(b))
    return [(prompt, "yes" if holds else "no")]


def _yes_no_relation(rng, word: str, a: ShapeObject, b: ShapeObject) -> list[Turn]:
    """"Is a <word> b?" answered from the centres (the pair is clearly apart on that axis)."""
    i = 0 if word in ("left", "right") else 1
    holds = a.center[i] < b.center[i] if word in ("left", "above") else a.center[i] > b.center[i]
    prompt = _pick(rng, _RELATION_PROMPTS[word]).format(a=_name(a), b=_name(b))
    return [(prompt, "yes" if holds else "no")]


def relation_mix(scene: Scene, rng: np.random.Generator, first: list[Turn]):
    """Extra relation questions about ``scene`` after ``first`` (the one asked without a mix),
    best first, for ``--train-questions relation=N``.

    A left-of / above question is only answered by comparing its two objects when the model
    also sees the same pair the other way round, so yes/no questions come in mirrored pairs:
    "Is A left of B?" then "Is B left of A?" (opposite answers: yes and no exactly balanced,
    both argument orders). ``first``'s mirror comes first; then the forms (left/right,
    above/below, closest, furthest) take turns, in a random order, each over its questions in a
    random order. Yields turn lists; the caller keeps those about a new subject.
    """
    margin = RELATION_MARGIN * scene.canvas_size
    names = {_name(o): o for o in scene.objects}
    found = re.findall(r"the \w+ (?:circle|square|triangle)", first[0][0])
    word = next((w for w in ("left", "right", "above", "below")
                 if any(first[0][0] == p.format(a=n, b=m) for p in _RELATION_PROMPTS[w]
                        for n in found for m in found)), None)
    if word is not None and len(found) == 2:
        yield _yes_no_relation(rng, word, names[found[1]], names[found[0]])
    units = {"x": [], "y": [], "closest": [], "furthest": []}
    for a, b in itertools.combinations(scene.objects, 2):
        for axis, i, words in (("x", 0, ("left", "right")), ("y", 1, ("above", "below"))):
            if abs(a.center[i] - b.center[i]) >= margin:
                units[axis] += [(w, a, b) for w in words]
    if len(scene.objects) >= 3:
        for kind in ("closest", "furthest"):
            for a in scene.objects:
                b = _closest(scene, a, furthest=kind == "furthest")
                if b is not None:
                    units[kind].append((kind, a, b))
    queues = []
    for kind in rng.permutation(list(units)):
        found_units = units[str(kind)]
        queues.append([found_units[k] for k in rng.permutation(len(found_units))])
    while any(queues):
        for queue in queues:
            if not queue:
                continue
            word, a, b = queue.pop(0)
            if word in ("closest", "furthest"):
                yield [(_pick(rng, _RELATION_PROMPTS[word]).format(a=_name(a)), _name(b))]
            else:
                yield _yes_no_relation(rng, word, a, b)
                yield _yes_no_relation(rng, word, b, a)


def nearest_questions(scene: Scene, rng: np.random.Generator, n: int,
                      asked: set[str] = frozenset()) -> list[list[Turn]]:
    """Up to ``n`` closest / furthest questions about ``scene``, for ``--train-questions
    nearest=N`` (training only): first those whose (form, object) no prompt in ``asked`` poses
    (in any phrasing), then the others again in a new phrasing, forms taking turns; fewer
    when the scene has fewer than three objects or no clear winner (``_closest``).

    Why: their answer is an object's name, found by comparing the named object's distance to
    every other; with ``relation=12`` they are ~6% of the training questions (4,451 of
    72,387) and the model answers them at 55-65% while the yes/no relations reach 97%.
    """
    units = {"closest": [], "furthest": []}      # kind -> [(posed?, its prompts, answer)]
    for kind in units if len(scene.objects) >= 3 else ():
        for a in scene.objects:
            b = _closest(scene, a, furthest=kind == "furthest")
            if b is not None:
                prompts = [p.format(a=_name(a)) for p in _RELATION_PROMPTS[kind]]
                units[kind].append((any(p in asked for p in prompts), prompts, _name(b)))
    queues = [sorted((units[str(kind)][k] for k in rng.permutation(len(units[str(kind)]))),
                     key=lambda unit: unit[0])
              for kind in rng.permutation(list(units))]
    out = []
    while any(queues) and len(out) < n:
        for queue in queues:
            if queue and len(out) < n:
                _, prompts, answer = queue.pop(0)
                fresh = [p for p in prompts if p not in asked] or prompts
                out.append([(_pick(rng, fresh), answer)])
    return out


LOCATE_PROMPTS = ("What are the coordinates of {a}?", "Give the coordinates of {a}.",
                  "Where is the centre of {a}, in pixels?")
"""Phrasings of the grounding questions (``locate_questions``)."""


def locate_questions(scene: Scene, rng: np.random.Generator, n: int) -> list[list[Turn]]:
    """Up to ``n`` grounding questions, one per object in a random order, for
    ``--train-questions locate=N`` (training only): "What are the coordinates of the red
    circle?" -> "(37, 12)", the centre of its bounding box in whole pixels of the canvas,
    x (from the left) first.

    Why: "which object is closest to A" compares distances between object centres, and the
    model misses it where the two candidates' distances differ by less than one 16-px image
    token (60-66% there, 86-100% beyond 22 px; vit_tf/experiments/README.md, "Eighth round").
    Nothing else in the data asks where an object is more finely than a half of the canvas.
    Coordinates as text are how grounded VLMs learn fine positions (Shikra's numbers,
    Pix2Seq / PaliGemma's location tokens); this asks the image tokens and the decoder to
    carry them.
    """
    out = []
    for k in rng.permutation(len(scene.objects))[:n]:
        obj = scene.objects[int(k)]
        x, y = (int(round(c)) for c in obj.center)
        out.append([(_pick(rng, LOCATE_PROMPTS).format(a=_name(obj)), f"({x}, {y})")])
    return out


COMPARE_PROMPTS = {
    "closer": ("Is {b} closer to {a} than {c}?", "Is {b} nearer to {a} than {c} is?"),
    "further": ("Is {b} further from {a} than {c}?", "Is {b} farther from {a} than {c} is?"),
}
"""Phrasings of the distance comparisons (``compare_questions``)."""


def compare_questions(scene: Scene, rng: np.random.Generator, n: int) -> list[list[Turn]]:
    """Up to ``n`` yes/no distance comparisons with all three objects named, for
    ``--train-questions compare=N`` (training only): "Is the blue square closer to the red
    circle than the green triangle?" -> "yes", each followed by its mirror (the other two
    swapped, the opposite answer), anchors in a random order; only where the two distances
    differ by ``RELATION_MARGIN`` of the canvas (the margin of closest / furthest).

    Why: "which object is closest to A" is this comparison with the two candidates left
    unnamed. The model reads where each object is to ~2 px (``locate_questions``) yet answers
    closest / furthest at 55-75%, while the yes/no left-of / above questions, asked as mirrored
    pairs with both objects named, reached 97% (vit_tf/experiments/README.md, "Ninth round").
    """
    margin = RELATION_MARGIN * scene.canvas_size
    out = []
    if len(scene.objects) < 3:
        return out
    for k in rng.permutation(len(scene.objects)):
        a = scene.objects[int(k)]
        others = [o for o in scene.objects if o is not a]
        pairs = [(b, c) for b, c in itertools.combinations(others, 2)
                 if abs(math.dist(a.center, b.center) - math.dist(a.center, c.center)) >= margin]
        if not pairs:
            continue
        b, c = _pick(rng, pairs)
        d_b, d_c = math.dist(a.center, b.center), math.dist(a.center, c.center)
        word = _pick(rng, ("closer", "further"))
        for first, second, d_first, d_second in ((b, c, d_b, d_c), (c, b, d_c, d_b)):
            holds = d_first < d_second if word == "closer" else d_first > d_second
            prompt = _pick(rng, COMPARE_PROMPTS[word]).format(
                a=_name(a), b=_name(first), c=_name(second))
            out.append([(prompt, "yes" if holds else "no")])
    return out[:n]


ORDER_PROMPTS = {
    "left": ("List the objects from left to right.", "Name the objects from left to right.",
             "Which objects are there, from left to right?"),
    "right": ("List the objects from right to left.", "Name the objects from right to left.",
              "Which objects are there, from right to left?"),
    "top": ("List the objects from top to bottom.", "Name the objects from top to bottom.",
            "Which objects are there, from top to bottom?"),
    "bottom": ("List the objects from bottom to top.", "Name the objects from bottom to top.",
               "Which objects are there, from bottom to top?"),
}
"""Phrasings of the order listings (``order_listings``), by the side the listing starts from."""


def order_listings(scene: Scene, rng: np.random.Generator, n: int) -> list[list[Turn]]:
    """Up to ``n`` listings of every object along one axis, for ``--train-questions order=N``
    (training only): "List the objects from left to right." -> "the red circle, the blue
    square and the green triangle".

    Why: captions and descriptions list the objects in reading order (grid row first), so that
    order agrees with "A is above B" for ~95% of the pairs a relation question may ask about and
    with "A is left of B" for only ~64% (4000 training scenes, seed 0): every caption teaches
    the model to find the highest object left, nothing but the relation questions teaches it
    to find the leftmost one. A listing along x is that lesson for the other axis.

    Slots 1-2 are the horizontal listings (left to right and right to left, in random order),
    slots 3-4 the vertical ones, so ``order=2`` lists along x only; an axis is listed only
    when the scene has two or more objects and each centre is ``RELATION_MARGIN`` from the
    next along it (the order is clear), else its slots stay empty.
    """
    margin = RELATION_MARGIN * scene.canvas_size
    slots = []
    for axis, starts in ((0, ("left", "right")), (1, ("top", "bottom"))):
        ranked = sorted(scene.objects, key=lambda o: o.center[axis])
        clear = len(ranked) >= 2 and all(b.center[axis] - a.center[axis] >= margin
                                         for a, b in zip(ranked, ranked[1:]))
        for start in rng.permutation(starts):
            names = [_name(o) for o in (ranked if start in ("left", "top") else ranked[::-1])]
            answer = ", ".join(names[:-1]) + " and " + names[-1]
            slots.append([(_pick(rng, ORDER_PROMPTS[str(start)]), answer)] if clear else None)
    return [turns for turns in slots[:n] if turns]


def _conversation(scene, rng, config, index) -> list[Turn]:
    """Three or four turns about one object, later ones calling it "it"; sometimes the first
    asks about an absent object and the second names the present one."""
    obj = _pick(rng, scene.objects)
    opening = _pick(rng, ("Is there {a}?", "Is there {a} in the image?", "Do you see {a}?"))
    absent = _absent_pairs(scene, config)
    if absent and rng.random() < ABSENT_OPENING_RATE:
        turns = [(opening.format(a=_article(" ".join(_pick(rng, absent)))), "no")]
        it = _name(obj)  # the next turn names the present object it talks about
    else:
        turns = [(opening.format(a=_article(_noun(obj, with_size=False))), "yes")]
        it = "it"
    where = ["Where is {ref}?", "Where is {ref} in the image?",
             "Which part of the image is {ref} in?"]
    follow_ups = [(_size_prompts(config, rng), obj.size), (where, scene.position(obj))]
    neighbour = _closest(scene, obj)
    if neighbour is not None:
        attr = _pick(rng, ("color", "shape"))
        word = "colour" if attr == "color" else "shape"
        follow_ups.append((
            [f"What {word} is the object closest to {{ref}}?",
             f"What {word} is the object nearest to {{ref}}?",
             f"Which {word} is the object next to {{ref}}?"],
            getattr(neighbour, attr),
        ))
    for k in rng.permutation(len(follow_ups)):
        prompts, answer = follow_ups[k]
        turns.append((_pick(rng, prompts).format(ref=it), answer))
        it = "it"
    return turns


_BUILDERS: dict[str, Callable[..., list[Turn] | None]] = {
    "caption": _caption,
    "description": _description,
    "attribute": _attribute,
    "position": _position,
    "counting": _counting,
    "existence": _existence,
    "relation": _relation,
    "conversation": _conversation,
}
assert tuple(_BUILDERS) == FAMILIES

_MIX_BUILDERS = {"relation": relation_mix}


def _nearest_after(scene, rng, n, records):
    """``nearest_questions`` after ``records``: their relation prompts count as asked."""
    asked = {r["conversations"][0]["value"].removeprefix("<image>\n")
             for r in records if r["category"] == "relation"}
    return nearest_questions(scene, rng, n, asked)


_EXTRA_BUILDERS = {
    "order": lambda scene, rng, n, records: order_listings(scene, rng, n),
    "nearest": _nearest_after,
    "locate": lambda scene, rng, n, records: locate_questions(scene, rng, n),
    "compare": lambda scene, rng, n, records: compare_questions(scene, rng, n),
}
"""``EXTRA_TAGS`` -> (scene, rng, n, records so far) -> turn lists."""
"""Families whose extra questions (``scene_records(questions=...)``) follow their own plan
instead of re-drawing the family's question."""
