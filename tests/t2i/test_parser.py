"""The exact scene parser: oracle renders and hand-made images read back as the scene drawn."""

import numpy as np
import pytest

from vit_tf.data.shapes import ShapesConfig, generate_scene, render_scene, scene_rngs
from vit_tf.data.shapes_scene import PALETTE
from vit_tf.t2i.parser import parse_image, scene_key

CONFIG = ShapesConfig()


def test_oracle_renders_parse_back_exactly_bounding_boxes_included():
    for i in range(300):
        scene = generate_scene(scene_rngs(7, 0, i)[0], CONFIG)
        parsed = parse_image(np.asarray(render_scene(scene, CONFIG)), CONFIG)
        assert parsed.scene == scene, i
        assert parsed.specks == 0


def _canvas():
    return np.full((64, 64, 3), CONFIG.background, np.uint8)


def test_hand_drawn_square_triangle_and_disc_are_read_with_size_and_cell():
    image = _canvas()
    image[2:22, 2:22] = PALETTE["red"]                      # large square, top left
    for row in range(12):                                   # small triangle, bottom right
        half = (row + 1) / 2
        image[50 + row, int(56 - half):int(56 + half)] = PALETTE["blue"]
    yy, xx = np.mgrid[:64, :64]                             # small disc, centre
    image[(yy - 31.5) ** 2 + (xx - 31.5) ** 2 <= 36] = PALETTE["yellow"]
    scene = parse_image(image, CONFIG).scene
    got = {(o.color, o.shape, o.size, scene.position(o)) for o in scene.objects}
    assert got == {("red", "square", "large", "top left"),
                   ("blue", "triangle", "small", "bottom right"),
                   ("yellow", "circle", "small", "center")}


def test_specks_are_counted_never_objects_and_blank_is_empty():
    image = _canvas()
    image[30:33, 30:33] = PALETTE["green"]
    parsed = parse_image(image, CONFIG)
    assert parsed.scene.objects == () and parsed.specks == 1 and parsed.speck_pixels == 9
    assert parse_image(_canvas(), CONFIG).scene.objects == ()


def test_noisy_colours_snap_to_the_nearest_palette_colour():
    rng = np.random.default_rng(0)
    for i in range(20):
        scene = generate_scene(scene_rngs(9, 0, i)[0], CONFIG)
        image = np.asarray(render_scene(scene, CONFIG)).astype(int)
        noisy = np.clip(image + rng.integers(-25, 26, image.shape), 0, 255)
        assert scene_key(parse_image(noisy, CONFIG).scene) == scene_key(scene)


def test_bad_images_are_refused_with_their_shape():
    with pytest.raises(ValueError, match=r"square \(H, W, 3\) image, got shape \(64, 32, 3\)"):
        parse_image(np.zeros((64, 32, 3)), CONFIG)
    with pytest.raises(ValueError, match="image is 32px but the world's canvas is 64px"):
        parse_image(np.zeros((32, 32, 3)), CONFIG)
