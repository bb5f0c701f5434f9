"""Relevance maps: the first-order occlusion estimate they claim, shapes, PNG, TensorBoard, CLI."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.helpers import tiny_task, write_image, write_tiny_run
from vit_tf.cli import main
from vit_tf.data.image_converter import decode_image
from vit_tf.models.explain import BASELINE, explain, patch_relevance, relevance_summary, render_overlay


@pytest.fixture(scope="module")
def model():
    return tiny_task(seed=4)[0]


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(4).uniform(0, 255, (16, 16, 3)).astype("float32")


def _log_prob(model, image, ids, n, token):
    logits = model({"images": tf.constant(image[None]), "token_ids": tf.constant([ids]),
                    "padding_mask": tf.ones((1, len(ids)), tf.bool)})
    return float(tf.nn.log_softmax(logits[0, n - 1])[token])


def test_relevance_is_the_first_order_change_when_a_patch_moves_towards_grey(model, image):
    prompt = model.preprocessor.encode_conversations(
        [[{"from": "human", "value": "is it big"}]], add_generation_prompt=True)[0][0].tolist()
    token = 31
    relevance = patch_relevance(model, image, prompt, [token], patch_size=8)  # (1, 2, 2)
    assert relevance.shape == (1, 2, 2) and (relevance >= 0).all() and relevance.max() > 0
    eps = 0.02
    base = _log_prob(model, image, prompt, len(prompt), token)
    for r in range(2):
        for c in range(2):
            moved = image.copy()
            patch = moved[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8]
            patch -= eps * (patch - BASELINE)
            change = base - _log_prob(model, moved, prompt, len(prompt), token)
            np.testing.assert_allclose(abs(change) / eps, relevance[0, r, c], rtol=0.1, atol=1e-3)


def test_relevance_lands_in_the_grid_cell_of_the_only_patch_that_is_not_grey(model, image):
    """Row r, column c of the map is the patch at rows r*8.., columns c*8.. of the image: a
    transposed or misordered reshape would put it elsewhere (the grey patches have zero
    relevance by the method's definition; the location is what this checks)."""
    for r, c in ((1, 0), (0, 1)):
        picture = np.full((16, 16, 3), BASELINE, np.float32)
        picture[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = image[:8, :8]
        relevance = patch_relevance(model, picture, [2, 27, 4, 3], [31, 4], patch_size=8)
        assert (relevance[:, r, c] > 0).all()
        others = np.ones((2, 2), bool)
        others[r, c] = False
        np.testing.assert_array_equal(relevance[:, others], 0)


def test_explain_maps_every_generated_token_and_renders_one_panel_per_token(model, image, tmp_path):
    result = explain(model, image, "is it big", max_new_tokens=4)
    assert len(result.tokens) == len(result.token_ids) == result.relevance.shape[0] >= 1
    assert result.relevance.shape[1:] == (2, 2)
    picture = render_overlay(result, scale=2)
    assert picture.size[0] == (2 + len(result.tokens)) * (32 + 4)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        assert relevance_summary("relevance/x", result, step=1)
    writer.flush()
    assert any(f.startswith("events") for f in os.listdir(tmp_path))


def test_explain_takes_an_image_file_as_the_preprocessor_converts_it(model, tmp_path):
    path = write_image(tmp_path / "a.png", (20, 12), seed=3)
    from_file = explain(model, path, "is it big", max_new_tokens=4)
    decoded = decode_image(path, model.preprocessor.image_size).numpy()
    np.testing.assert_array_equal(from_file.image, decoded)
    from_array = explain(model, decoded, "is it big", max_new_tokens=4)
    assert from_file.token_ids == from_array.token_ids and from_file.answer == from_array.answer
    np.testing.assert_allclose(from_file.relevance, from_array.relevance, rtol=1e-5, atol=1e-7)


def test_explain_cli_writes_a_png(tmp_path, capsys):
    run = str(tmp_path / "run")
    write_tiny_run(run, seed=5)
    img = write_image(tmp_path / "a.png", (16, 16), seed=1)
    out = str(tmp_path / "maps" / "rel.png")
    assert main(["explain", "--model", run, "--image", img, "--prompt", "is it big",
                 "--out", out, "--max-new-tokens", "3"]) == 0
    assert Image.open(out).size[1] > 64
    assert "most relevant patch" in capsys.readouterr().out
