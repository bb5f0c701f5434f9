"""A GenEval mirror on the shapes world (Ghosh et al. 2023: object-focused, per-task scores).

Prompts are written in the world's own caption language (``a large red circle, a small blue
square and ...`` for captions; ``there are 2 objects. a ... on the left. a ... at the top.``
for descriptions), drawn from a seed, and each image is scored strictly by the exact scene
parser (``vit_tf.t2i.parser``). Tasks and what an image must show to pass:

    single_object   one object: exactly one object, of the prompt's shape
    two_object      two objects of different shapes: exactly two, with those shapes
    counting        N objects of one shape (N = 1..3): exactly N objects of that shape
    colors          one object: exactly one object, with the prompt's colour and shape
    position        two objects at named 3x3 cells: each (colour, shape) in its cell
    color_binding   two objects, colours and shapes differ: exactly those two (colour, shape)
    size_binding    two objects, one small one large: exactly those two (size, colour, shape)
    exact           1-3 objects with cells: the parsed scene is exactly the prompt's
                    (colour, shape, size, cell) multiset, nothing more

Overall = mean of the task means (GenEval's). ``held_out`` is a separate suite whose prompts
each contain a colour-shape pair held out of training (single objects and colour binding),
scored with the same checks. ``oracle_render`` draws a scene that satisfies a prompt (the
check that the scorer gives oracle renders 100%).

Example::

    suites = prompt_suites(per_task=50, seed=0, hold_out=[("red", "triangle")])
    results = score_images(specs, images)            # one dict per image
    table = summarize(results)                       # {task: score, "overall": ...}
"""

import dataclasses

import numpy as np

from vit_tf.data.shapes_scene import (
    GAP,
    POSITION_NAMES,
    Scene,
    ShapeObject,
    ShapesConfig,
    _reading_order,
    render_scene,
)
from vit_tf.t2i.parser import parse_image, scene_key

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_binding",
         "size_binding", "exact")
HELD_OUT_TASKS = ("held_out_colors", "held_out_binding")
CELLS = [(r, c) for r in range(3) for c in range(3)]


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    color: str
    shape: str
    size: str
    cell: tuple | None = None      # (row, column) of the 3x3 grid, or None: anywhere

    @property
    def position(self):
        return None if self.cell is None else POSITION_NAMES[self.cell[0]][self.cell[1]]


@dataclasses.dataclass(frozen=True)
class PromptSpec:
    task: str
    prompt: str
    objects: tuple

    def to_json(self):
        return {"task": self.task, "prompt": self.prompt,
                "objects": [dataclasses.asdict(o) for o in self.objects]}


def _article(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _where(position):
    return f"on the {position}" if position in ("left", "right") else f"at the {position}"


def caption_text(objects):
    """The world's caption: "a large red circle, a small blue square and a large green
    triangle." (objects in the given order)."""
    parts = [_article(f"{o.size} {o.color} {o.shape}") for o in objects]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text + "."


def description_text(objects):
    """The world's description: "there are 2 objects. a large red circle on the left. ..."."""
    n = len(objects)
    head = "there is 1 object." if n == 1 else f"there are {n} objects."
    body = [f"{_article(f'{o.size} {o.color} {o.shape}')} {_where(o.position)}." for o in objects]
    return " ".join([head, *body])


def _pairs(config, hold_out, held):
    pairs = [(c, s) for c in config.colors for s in config.shapes]
    return [p for p in pairs if (p in hold_out) == held]


def _draw_objects(rng, config, n, pairs, distinct_shapes=False, sizes=None, cells=False,
                  one_shape=False, must_include=None):
    """n objects with distinct (colour, shape) pairs from ``pairs``."""
    for _ in range(1000):
        chosen = [pairs[i] for i in rng.choice(len(pairs), size=n, replace=False)]
        if must_include is not None:
            chosen[0] = must_include[int(rng.integers(len(must_include)))]
            if len(set(chosen)) < n:
                continue
        shapes = [s for _, s in chosen]
        if distinct_shapes and len(set(shapes)) < n:
            continue
        if one_shape and len(set(shapes)) > 1:
            continue
        if distinct_shapes and len({c for c, _ in chosen}) < n:
            continue
        size_names = sizes or [config.sizes[int(rng.integers(len(config.sizes)))]
                               for _ in range(n)]
        cell_list = ([CELLS[i] for i in rng.choice(9, size=n, replace=False)] if cells
                     else [None] * n)
        objects = [ObjectSpec(c, s, z, cell) for (c, s), z, cell in zip(chosen, size_names,
                                                                      cell_list)]
        if cells:
            objects.sort(key=lambda o: o.cell)
        if oracle_scene(objects, config, rng) is not None:  # the world can draw it
            return objects
    raise RuntimeError(f"could not draw {n} objects from {len(pairs)} pairs")


def _one_prompt(task, rng, config, pairs, held_pairs=None):
    if task in ("single_object", "colors"):
        objects = _draw_objects(rng, config, 1, pairs)
    elif task in ("held_out_colors",):
        objects = _draw_objects(rng, config, 1, held_pairs)
    elif task == "two_object":
        objects = _draw_objects(rng, config, 2, pairs, distinct_shapes=True)
    elif task == "counting":
        n = int(rng.integers(1, 4))
        objects = _draw_objects(rng, config, n, pairs, one_shape=True)
    elif task == "position":
        objects = _draw_objects(rng, config, 2, pairs, cells=True)
    elif task == "color_binding":
        objects = _draw_objects(rng, config, 2, pairs, distinct_shapes=True)
    elif task == "held_out_binding":
        objects = _draw_objects(rng, config, 2, pairs + held_pairs, distinct_shapes=True,
                                must_include=held_pairs)
    elif task == "size_binding":
        sizes = list(rng.permutation(sorted(config.sizes, key=config.side)[:2]))
        objects = _draw_objects(rng, config, 2, pairs, distinct_shapes=True, sizes=sizes)
    elif task == "exact":
        n = int(rng.integers(1, 4))
        objects = _draw_objects(rng, config, n, pairs, cells=True)
    else:
        raise ValueError(f"unknown task {task!r}")
    with_cells = objects[0].cell is not None
    text = description_text(objects) if with_cells else caption_text(objects)
    return PromptSpec(task, text, tuple(objects))


def prompt_suites(per_task=50, seed=0, hold_out=(), config=ShapesConfig()):
    """{task: [PromptSpec]}: ``per_task`` prompts per task, drawn from ``seed``; the main tasks
    avoid the ``hold_out`` pairs, the held-out suite (when there are any) uses them."""
    hold_out = [tuple(p) for p in hold_out]
    unknown = [p for p in hold_out if p[0] not in config.colors or p[1] not in config.shapes]
    if unknown:
        raise ValueError(f"hold_out pairs {unknown} are not colour:shape pairs of the world")
    pairs, held = _pairs(config, hold_out, False), _pairs(config, hold_out, True)
    suites = {}
    for t, task in enumerate(TASKS + (HELD_OUT_TASKS if held else ())):
        rng = np.random.default_rng([seed, t])
        suites[task] = [_one_prompt(task, rng, config, pairs, held) for _ in range(per_task)]
    return suites


def _free_box(rng, side, cell, boxes, canvas):
    """A top-left corner for a ``side`` box whose centre lies in ``cell`` (or anywhere) and
    that keeps ``GAP`` pixels from ``boxes``; None if there is none."""
    candidates = []
    for y in range(canvas - side + 1):
        for x in range(canvas - side + 1):
            cx, cy = x + side / 2, y + side / 2
            if cell is not None and (min(int(3 * cy / canvas), 2), min(int(3 * cx / canvas), 2)) != cell:
                continue
            if all(x + side + GAP <= b[0] or b[2] + GAP <= x or y + side + GAP <= b[1]
                   or b[3] + GAP <= y for b in boxes):
                candidates.append((x, y))
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


def oracle_scene(objects, config, rng):
    """A scene of the world showing exactly ``objects`` (cells respected), or None."""
    for _ in range(20):
        placed, order = [], sorted(objects, key=lambda o: -config.side(o.size))
        for o in order:
            side = config.side(o.size)
            corner = _free_box(rng, side, o.cell, [p.bbox for p in placed], config.canvas_size)
            if corner is None:
                break
            x, y = corner
            placed.append(ShapeObject(o.color, o.shape, o.size, (x, y, x + side, y + side),
                                      (x + side / 2, y + side / 2)))
        else:
            placed.sort(key=lambda p: _reading_order(p, config.canvas_size))
            return Scene(tuple(placed), config.canvas_size)
    return None


def oracle_render(spec, config=ShapesConfig(), seed=0):
    """(S, S, 3) uint8: a rendering of a scene that satisfies ``spec``."""
    scene = oracle_scene(spec.objects, config, np.random.default_rng(seed))
    return np.asarray(render_scene(scene, config))


def check(spec, scene):
    """Whether a parsed ``scene`` passes ``spec``'s task (see the module docstring)."""
    objs = scene.objects
    want = spec.objects
    shapes = sorted(o.shape for o in objs)
    task = spec.task
    if task == "single_object":
        return len(objs) == 1 and objs[0].shape == want[0].shape
    if task == "two_object":
        return shapes == sorted(o.shape for o in want)
    if task == "counting":
        return sum(o.shape == want[0].shape for o in objs) == len(want)
    if task in ("colors", "held_out_colors"):
        return len(objs) == 1 and (objs[0].color, objs[0].shape) == (want[0].color, want[0].shape)
    if task == "position":
        got = {(o.color, o.shape, scene.position(o)) for o in objs}
        return all((o.color, o.shape, o.position) in got for o in want)
    if task in ("color_binding", "held_out_binding"):
        return sorted((o.color, o.shape) for o in objs) == sorted((o.color, o.shape) for o in want)
    if task == "size_binding":
        return (sorted((o.size, o.color, o.shape) for o in objs)
                == sorted((o.size, o.color, o.shape) for o in want))
    if task == "exact":
        return scene_key(scene) == tuple(sorted((o.color, o.shape, o.size, o.position)
                                                for o in want))
    raise ValueError(f"unknown task {task!r}")


def score_images(specs, images, config=ShapesConfig()):
    """One result dict per (spec, image): task, prompt, passed, the parsed objects, specks."""
    results = []
    for spec, image in zip(specs, images):
        parsed = parse_image(image, config)
        results.append({"task": spec.task, "prompt": spec.prompt,
                        "passed": bool(check(spec, parsed.scene)),
                        "parsed": [[o.size, o.color, o.shape, parsed.scene.position(o)]
                                   for o in parsed.scene.objects],
                        "specks": parsed.specks})
    return results


def summarize(results):
    """{task: mean passed, ..., "overall": mean of the main tasks' means, "held_out": mean of
    the held-out tasks' means (when present), "n": images}."""
    by_task = {}
    for r in results:
        by_task.setdefault(r["task"], []).append(r["passed"])
    table = {task: float(np.mean(v)) for task, v in by_task.items()}
    main = [table[t] for t in TASKS if t in table]
    if main:
        table["overall"] = float(np.mean(main))
    held = [table[t] for t in HELD_OUT_TASKS if t in table]
    if held:
        table["held_out"] = float(np.mean(held))
    table["n"] = len(results)
    return table


def diversity(images_per_prompt, config=ShapesConfig()):
    """Across seeds of one prompt: (mean pairwise mean-absolute pixel difference / 255, the
    fraction of seeds giving a distinct parsed layout (objects with their bounding boxes))."""
    images = [np.asarray(x, np.float32) for x in images_per_prompt]
    diffs = [np.abs(a - b).mean() / 255 for i, a in enumerate(images) for b in images[i + 1:]]
    layouts = {tuple(sorted((o.color, o.shape, o.size, o.bbox)
                            for o in parse_image(x, config).scene.objects)) for x in images}
    return float(np.mean(diffs)) if diffs else 0.0, len(layouts) / len(images)
