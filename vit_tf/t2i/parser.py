"""An exact parser of rendered shapes-world images: pixels -> the scene they show.

The shapes world draws flat, crisp objects on a plain background, so a scene can be read back
from its pixels without any learned model: every pixel takes the nearest colour of the world's
palette (background included), pixels of one colour that touch (8-connected) form an object,
and each object's attributes follow from its pixels:

    colour    the palette colour of its pixels
    shape     fill = pixels / bounding-box area: a square fills its box (1.0), a disc ~0.79,
              a triangle ~0.5; the thresholds sit halfway between (``FILL_THRESHOLDS``)
    size      the longer side of the bounding box, against the midpoint of the world's sizes
    position  the 3x3 grid cell of the bounding box's centre (``Scene.position``), as captions say

Components smaller than ``min_area`` pixels are specks, not objects (a generator's stray
pixels); they are counted in ``ParsedScene.specks``, never silently dropped. On oracle renders
the parser returns exactly the scene that was drawn, bounding boxes included
(``tests/t2i/test_parser.py`` checks thousands of scenes), so every score built on it is exact.

Example::

    parsed = parse_image(np.asarray(render_scene(scene, config)), config)
    parsed.scene == scene      # True for every oracle render
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vit_tf.data.shapes_scene import (
    PALETTE,
    Scene,
    ShapeObject,
    ShapesConfig,
    _reading_order,
)

FILL_THRESHOLDS = (0.65, 0.9)
"""Fill ratio below the first: triangle; below the second: circle; else square."""

MIN_AREA_FRACTION = 0.35
"""Default ``min_area``: this fraction of the smallest object the world can draw (a small
triangle, about half its box). Specks below it are not objects."""


@dataclass(frozen=True)
class ParsedScene:
    """The scene read from an image, and what did not count as an object."""

    scene: Scene
    specks: int          # components below ``min_area`` (not objects)
    speck_pixels: int    # their pixels together


def palette_labels(image: np.ndarray, config: ShapesConfig) -> np.ndarray:
    """(H, W) int labels: 0 = background, i = ``config.colors[i - 1]``, nearest in RGB."""
    colors = np.array([config.background] + [PALETTE[c] for c in config.colors], np.float32)
    pixels = np.asarray(image, np.float32)[..., :3]                         # (H, W, 3)
    distance = ((pixels[:, :, None, :] - colors[None, None]) ** 2).sum(-1)  # (H, W, 1 + C)
    return distance.argmin(-1)


def default_min_area(config: ShapesConfig) -> int:
    side = min(config.side(s) for s in config.sizes)
    return max(2, int(MIN_AREA_FRACTION * side * side / 2))


def parse_image(image, config: ShapesConfig = ShapesConfig(), min_area: int | None = None
                ) -> ParsedScene:
    """Read the objects of one (H, W, 3) image (uint8 or float in [0, 255]) of ``config``'s world."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] < 3:
        raise ValueError(f"parse_image needs a square (H, W, 3) image, got shape {image.shape}")
    if image.shape[0] != config.canvas_size:
        raise ValueError(f"image is {image.shape[0]}px but the world's canvas is "
                         f"{config.canvas_size}px")
    min_area = default_min_area(config) if min_area is None else min_area
    labels = palette_labels(image, config)
    sides = sorted(config.side(s) for s in config.sizes)
    size_names = sorted(config.sizes, key=config.side)
    objects, specks, speck_pixels = [], 0, 0
    for index, color in enumerate(config.colors, start=1):
        components, count = ndimage.label(labels == index, structure=np.ones((3, 3)))
        for k, box in enumerate(ndimage.find_objects(components), start=1):
            area = int((components[box] == k).sum())
            if area < min_area:
                specks, speck_pixels = specks + 1, speck_pixels + area
                continue
            y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
            w, h = x1 - x0, y1 - y0
            fill = area / (w * h)
            shape = ("triangle" if fill < FILL_THRESHOLDS[0] else
                     "circle" if fill < FILL_THRESHOLDS[1] else "square")
            side = max(w, h)
            # nearest size by side length (midpoints between the world's sizes)
            size = size_names[int(np.argmin([abs(side - s) for s in sides]))]
            objects.append(ShapeObject(color, shape, size, (x0, y0, x1, y1),
                                       (x0 + w / 2, y0 + h / 2)))
    objects.sort(key=lambda o: _reading_order(o, config.canvas_size))
    return ParsedScene(Scene(tuple(objects), config.canvas_size), specks, speck_pixels)


def scene_key(scene: Scene, with_position: bool = True) -> tuple:
    """A scene as a sorted tuple of (colour, shape, size[, position]): equal keys, same scene."""
    return tuple(sorted((o.color, o.shape, o.size) + ((scene.position(o),) if with_position else ())
                        for o in scene.objects))
