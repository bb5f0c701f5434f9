"""Scenes of the shapes world: configuration, sampling and rendering.

The shapes world is a tiny synthetic domain whose ground truth is exact: every image is a few
coloured circles, squares and triangles on a plain background, and every question asked about it
(see ``vit_tf.data.shapes_questions``) is answered from the scene, never guessed. It lets a model
be trained and checked end to end in minutes, on a CPU, with no download.

Example::

    rng = np.random.default_rng(0)
    config = ShapesConfig()
    scene = generate_scene(rng, config)
    image = render_scene(scene, config)  # PIL RGB image, 64x64
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 20),
    "cyan": (40, 210, 220),
    "white": (245, 245, 245),
    "pink": (245, 130, 190),
    "brown": (130, 80, 35),
}
"""Every colour a config may use; the first six are the default, chosen to be far apart."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

SIZE_FRACTIONS: dict[str, float] = {"small": 0.18, "large": 0.32}
"""Side of an object's bounding box as a fraction of the canvas side."""

FAMILIES: tuple[str, ...] = (
    "caption",
    "description",
    "attribute",
    "position",
    "counting",
    "existence",
    "relation",
    "conversation",
)
"""Question families, in a fixed order; each is the ``category`` of the records it yields."""

GAP = 2
"""Minimum number of background pixels between two objects' bounding boxes."""

MAX_SCENE_TRIES = 200
"""How many times a scene is re-sampled when its objects cannot all be placed."""

POSITION_NAMES: tuple[tuple[str, ...], ...] = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
"""Names of the cells of a 3x3 grid over the canvas, indexed ``[row][column]``."""


@dataclass(frozen=True)
class ShapesConfig:
    """What scenes of the shapes world may contain.

    ``colors``, ``shapes`` and ``sizes`` are the attribute values objects are drawn from;
    ``families`` the question families that produce records. Invalid values raise ``ValueError``
    at construction, naming what is wrong and what is allowed.
    """

    canvas_size: int = 64
    min_objects: int = 1
    max_objects: int = 3
    colors: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
    shapes: tuple[str, ...] = SHAPES
    sizes: tuple[str, ...] = ("small", "large")
    families: tuple[str, ...] = FAMILIES
    background: tuple[int, int, int] = (32, 32, 32)

    def __post_init__(self):
        for name in ("colors", "shapes", "sizes", "families", "background"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_names("colors", self.colors, tuple(PALETTE))
        _check_names("shapes", self.shapes, SHAPES)
        _check_names("sizes", self.sizes, tuple(SIZE_FRACTIONS))
        _check_names("families", self.families, FAMILIES)
        if not isinstance(self.canvas_size, int) or self.canvas_size < 16:
            raise ValueError(f"canvas_size must be an int >= 16, got {self.canvas_size!r}.")
        if self.min_objects < 1:
            raise ValueError(f"min_objects must be >= 1, got {self.min_objects}.")
        if self.min_objects > self.max_objects:
            raise ValueError(
                f"min_objects ({self.min_objects}) > max_objects ({self.max_objects})."
            )
        pairs = len(self.colors) * len(self.shapes)
        if self.max_objects > pairs:
            raise ValueError(
                f"max_objects ({self.max_objects}) exceeds the {pairs} distinct (colour, shape) "
                "pairs; every object in a scene needs its own pair."
            )
        if "existence" in self.families and self.max_objects >= pairs:
            raise ValueError(
                f"the existence family needs an absent (colour, shape) pair: max_objects "
                f"({self.max_objects}) must be < {pairs}, or add colours or shapes."
            )
        cell = max(self.side(size) for size in self.sizes) + GAP
        capacity = 0.5 * (self.canvas_size + GAP) ** 2 / cell**2
        if self.max_objects > capacity:
            raise ValueError(
                f"canvas_size {self.canvas_size} is too small for {self.max_objects} objects: "
                f"objects of the largest size may cover at most half the canvas, which allows "
                f"{int(capacity)}; raise canvas_size or lower max_objects."
            )
        if len(self.background) != 3 or not all(0 <= int(v) <= 255 for v in self.background):
            raise ValueError(f"background must be 3 ints in [0, 255], got {self.background}.")
        clashes = [c for c in self.colors if PALETTE[c] == tuple(self.background)]
        if clashes:
            raise ValueError(f"background {self.background} equals the colour of {clashes}.")

    def side(self, size: str) -> int:
        """Side in pixels of the bounding box of an object of this ``size``."""
        return max(3, round(SIZE_FRACTIONS[size] * self.canvas_size))


def _check_names(field_name: str, values: tuple[str, ...], known: tuple[str, ...]) -> None:
    """Raise if ``values`` is empty, repeats a name, or holds a name not in ``known``."""
    if not values:
        raise ValueError(f"{field_name} must not be empty; choose from {list(known)}.")
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {field_name} {unknown}; choose from {list(known)}.")
    if len(set(values)) != len(values):
        raise ValueError(f"{field_name} repeats a name: {list(values)}.")


@dataclass(frozen=True)
class ShapeObject:
    """One object: its attributes, bounding box and centre in pixels.

    ``bbox`` is ``(x0, y0, x1, y1)`` with ``x1`` and ``y1`` exclusive; ``center`` its middle.
    """

    color: str
    shape: str
    size: str
    bbox: tuple[int, int, int, int]
    center: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """The objects of one image, in reading order (grid row, then column, then y, then x)."""

    objects: tuple[ShapeObject, ...]
    canvas_size: int

    def position(self, obj: ShapeObject) -> str:
        """Name of the 3x3 grid cell holding ``obj``'s centre, e.g. ``"top left"``."""
        row, col = grid_cell(obj.center, self.canvas_size)
        return POSITION_NAMES[row][col]


def grid_cell(center: tuple[float, float], canvas_size: int) -> tuple[int, int]:
    """(row, column) of the 3x3 grid cell holding ``center``."""
    x, y = center
    return min(int(3 * y / canvas_size), 2), min(int(3 * x / canvas_size), 2)


def generate_scene(rng: np.random.Generator, config: ShapesConfig) -> Scene:
    """Sample a scene: distinct (colour, shape) pairs, placed without overlap.

    Each object is put at a position drawn uniformly from all positions that keep ``GAP`` pixels
    from the objects already placed (largest first). If an object finds no room, the whole scene
    is re-sampled, at most ``MAX_SCENE_TRIES`` times.
    """
    for _ in range(MAX_SCENE_TRIES):
        objects = _try_scene(rng, config)
        if objects is not None:
            objects.sort(key=lambda o: _reading_order(o, config.canvas_size))
            return Scene(tuple(objects), config.canvas_size)
    raise RuntimeError(
        f"could not place {config.max_objects} objects on a {config.canvas_size}px canvas in "
        f"{MAX_SCENE_TRIES} tries; raise canvas_size or lower max_objects."
    )


def _reading_order(obj: ShapeObject, canvas_size: int) -> tuple:
    """Sort key listing objects as a reader scans the grid, so text order follows the image."""
    return (*grid_cell(obj.center, canvas_size), obj.center[1], obj.center[0])


def _try_scene(rng: np.random.Generator, config: ShapesConfig) -> list[ShapeObject] | None:
    """One attempt at a scene; None when some object finds no free position."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    pairs = [(c, s) for c in config.colors for s in config.shapes]
    chosen = rng.choice(len(pairs), size=count, replace=False)
    sizes = rng.integers(len(config.sizes), size=count)
    specs = [(*pairs[p], config.sizes[s]) for p, s in zip(chosen, sizes)]
    specs.sort(key=lambda spec: -config.side(spec[2]))
    objects: list[ShapeObject] = []
    for color, shape, size in specs:
        side = config.side(size)
        corner = _free_corner(rng, side, [o.bbox for o in objects], config.canvas_size)
        if corner is None:
            return None
        x0, y0 = corner
        bbox = (x0, y0, x0 + side, y0 + side)
        objects.append(ShapeObject(color, shape, size, bbox, (x0 + side / 2, y0 + side / 2)))
    return objects


def _free_corner(rng, side, bboxes, canvas_size) -> tuple[int, int] | None:
    """A uniformly drawn top-left corner for a ``side`` box that keeps clear of ``bboxes``."""
    span = canvas_size - side + 1
    coords = np.arange(span)
    blocked = np.zeros((span, span), dtype=bool)  # (y, x) of the top-left corner
    for x0, y0, x1, y1 in bboxes:
        near_x = (coords > x0 - side - GAP) & (coords < x1 + GAP)
        near_y = (coords > y0 - side - GAP) & (coords < y1 + GAP)
        blocked |= near_y[:, None] & near_x[None, :]
    free = np.flatnonzero(~blocked)
    if free.size == 0:
        return None
    y, x = divmod(int(free[rng.integers(free.size)]), span)
    return x, y


def render_scene(scene: Scene, config: ShapesConfig) -> Image.Image:
    """Draw ``scene`` as a crisp (not antialiased) RGB image of ``canvas_size`` pixels a side."""
    size = scene.canvas_size
    image = Image.new("RGB", (size, size), tuple(config.background))
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.bbox
        box = (x0, y0, x1 - 1, y1 - 1)  # Pillow boxes include their last pixel
        fill = PALETTE[obj.color]
        if obj.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif obj.shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            apex = ((x0 + x1 - 1) / 2, y0)
            draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), apex], fill=fill)
    return image
