"""The masked-token generator: masking schedule, guidance, decoding, determinism, presets."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.t2i import tiny
from vit_tf.models.task import PresetError
from vit_tf.t2i.maskgit import (MaskGITBackbone, _group, _ungroup, mask_ratio,
                                masked_examples, training_mask)
from vit_tf.t2i.samplers import guide, maskgit_decode
from vit_tf.t2i.task import TextToImage, load_text_to_image

PROMPTS = ["a large red circle.", "there is 1 object. a small blue square at the top left."]


@pytest.fixture(scope="module")
def task():
    return tiny.maskgit_task(seed=1)


def test_cosine_schedule_masks_all_at_the_start_and_none_at_the_end():
    r = np.linspace(0, 1, 11)
    ratios = mask_ratio(r).numpy()
    assert ratios[0] == 1.0 and abs(ratios[-1]) < 1e-6 and np.all(np.diff(ratios) < 0)
    for i in range(50):
        seed = tf.constant([3, i], tf.int64)
        mask = training_mask(seed, 64).numpy()
        r = tf.random.stateless_uniform([], seed=seed).numpy()
        assert mask.sum() == min(64, max(1, math.ceil(math.cos(math.pi / 2 * r) * 64)))
        np.testing.assert_array_equal(mask, training_mask(seed, 64).numpy())   # same seed


def test_masked_examples_hide_exactly_the_weighted_positions_and_drop_captions():
    n = 400
    ids = np.tile(np.arange(1, 6, dtype=np.int32), (n, 1))
    codes = np.random.default_rng(0).integers(0, 16, (n, 8)).astype(np.int32)
    ds = tf.data.Dataset.from_tensor_slices(({"token_ids": ids, "padding_mask": ids > 0}, codes))
    dropped = 0
    for x, y, w in masked_examples(ds, 8, mask_id=16, caption_dropout=0.5, seed=1):
        masked = w.numpy() == 1
        assert masked.any()
        np.testing.assert_array_equal(x["image_tokens"].numpy()[masked], 16)
        np.testing.assert_array_equal(x["image_tokens"].numpy()[~masked], y.numpy()[~masked])
        if not x["padding_mask"].numpy().any():
            dropped += 1
            assert not x["token_ids"].numpy().any()
    assert 150 < dropped < 250                      # ~half of 400


def test_guidance_interpolates_between_negative_and_conditional():
    cond, neg = np.array([[2.0, 0.0]]), np.array([[1.0, 1.0]])
    both = tf.constant(np.concatenate([cond, neg]))
    np.testing.assert_allclose(guide(both, 1.0), cond)
    np.testing.assert_allclose(guide(both, 0.0), neg)
    np.testing.assert_allclose(guide(both, 3.0), neg + 3 * (cond - neg))


def test_generate_is_deterministic_for_a_seed_and_varies_with_it(task):
    a = task.generate(PROMPTS, seed=5, jit_compile=False)
    assert a.shape == (2, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, task.generate(PROMPTS, seed=5, jit_compile=False))
    assert not np.array_equal(a, task.generate(PROMPTS, seed=6, jit_compile=False))
    one = task.generate(PROMPTS[0], seed=5, jit_compile=False)
    assert one.shape == (16, 16, 3)


def test_changing_the_sampling_settings_after_a_generate_takes_effect():
    task = tiny.maskgit_task(seed=1)
    a = task.generate(PROMPTS, seed=5, jit_compile=False)
    task.temperature, task.randomness = 0.05, 0.0     # near-greedy: another image
    b = task.generate(PROMPTS, seed=5, jit_compile=False)
    assert not np.array_equal(a, b)
    task.temperature, task.randomness = 1.0, 4.5
    np.testing.assert_array_equal(task.generate(PROMPTS, seed=5, jit_compile=False), a)


def test_every_position_is_decoded(task):
    pre = task.preprocessor
    ids, mask = pre.tokenize(PROMPTS)
    for steps in (1, 4):
        codes = maskgit_decode(task.backbone, ids, mask, *pre.tokenize(["", ""]),
                               tf.constant([0, 1], tf.int64), 2.0, steps)
        assert codes.shape == (2, task.backbone.num_image_tokens)
        assert (codes.numpy() < task.backbone.mask_id).all()


def test_at_guidance_zero_only_the_negative_prompt_matters(task):
    neg = "a small green triangle."
    a = task.generate({"prompts": PROMPTS, "negative_prompts": [neg]}, guidance_scale=0.0,
                      seed=2, jit_compile=False)
    b = task.generate({"prompts": ["a large blue square.", "a small red circle."],
                       "negative_prompts": [neg, neg]}, guidance_scale=0.0, seed=2,
                      jit_compile=False)
    np.testing.assert_array_equal(a, b)


def test_bad_generate_inputs_are_named(task):
    with pytest.raises(ValueError, match="2 prompts but 3 negative_prompts"):
        task.generate({"prompts": PROMPTS, "negative_prompts": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"prompt 1 \('.*'\) has \d+ tokens; the model's text "
                                         r"context is 40"):
        task.generate(["a red circle.", "a red circle " * 30])
    with pytest.raises(ValueError, match="takes 'prompts' and optional 'negative_prompts'"):
        task.generate({"prompt": "x"})


def test_preset_and_keras_file_round_trips_give_identical_images(task, tmp_path):
    expected = task.generate(PROMPTS, seed=3, jit_compile=False)
    task.save_to_preset(str(tmp_path / "preset"))
    meta = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert meta["task"] == "MaskGITTextToImage" and meta["generate"]["num_steps"] == 3
    loaded = TextToImage.from_preset(str(tmp_path / "preset"))
    np.testing.assert_array_equal(loaded.generate(PROMPTS, seed=3, jit_compile=False), expected)
    task.save(tmp_path / "t.keras")
    again = load_text_to_image(str(tmp_path / "t.keras"))
    ids, mask = task.preprocessor.tokenize(PROMPTS)
    codes = np.random.default_rng(0).integers(0, 17, (2, task.backbone.num_image_tokens))
    inputs = {"token_ids": ids, "padding_mask": mask, "image_tokens": codes.astype("int32")}
    np.testing.assert_array_equal(again(inputs).numpy(), task(inputs).numpy())
    np.testing.assert_array_equal(again.image_tokenizer.decode(codes % 16).numpy(),
                                  task.image_tokenizer.decode(codes % 16).numpy())
    assert again.get_config() == task.get_config()
    from vit_tf.t2i.diffusion import DiffusionTextToImage

    with pytest.raises(PresetError, match="holds a MaskGITTextToImage, not a DiffusionTextToImage"):
        DiffusionTextToImage.from_preset(str(tmp_path / "preset"))
    with open(tmp_path / "preset" / "task.weights.h5", "ab") as f:
        f.write(b"x")
    with pytest.raises(PresetError, match=f"{os.sep}task.weights.h5: does not match"):
        TextToImage.from_preset(str(tmp_path / "preset"))


def test_groups_are_the_grid_blocks_and_ungroup_inverts_them():
    grid = np.arange(16, dtype="float32").reshape(1, 16, 1)        # a 4x4 grid, raster order
    grouped = _group(grid, 2, 2, 1).numpy()                         # (1, 4, 4)
    np.testing.assert_array_equal(grouped[0, 0], [0, 1, 4, 5])      # top-left 2x2 block
    np.testing.assert_array_equal(grouped[0, 3], [10, 11, 14, 15])  # bottom-right block
    np.testing.assert_array_equal(_ungroup(grouped, 2, 2, 1).numpy(), grid)
    with pytest.raises(ValueError, match="group_size=3 must divide the side"):
        MaskGITBackbone(10, 4, 8, 16, hidden_dim=8, num_layers=1, num_heads=1,
                        intermediate_dim=8, group_size=3)


def test_grouped_backbone_predicts_every_code_generates_and_round_trips(tmp_path):
    task = tiny.maskgit_task(seed=2, patch_size=4, group_size=2)   # 4x4 codes, 2x2 positions
    assert task.backbone.num_image_tokens == 16 and task.backbone.group_size == 2
    ids, mask = task.preprocessor.tokenize(PROMPTS)
    codes = np.random.default_rng(1).integers(0, 17, (2, 16)).astype("int32")
    inputs = {"token_ids": ids, "padding_mask": mask, "image_tokens": codes}
    logits = task(inputs).numpy()
    assert logits.shape == (2, 16, 16)
    changed = codes.copy()
    changed[:, 15] = (changed[:, 15] + 1) % 17          # a code of the bottom-right block only
    other = task({**inputs, "image_tokens": changed}).numpy()
    assert not np.allclose(other, logits)               # every position sees every block
    a = task.generate(PROMPTS, seed=4, jit_compile=False)
    np.testing.assert_array_equal(a, task.generate(PROMPTS, seed=4, jit_compile=False))
    task.save(tmp_path / "g.keras")
    again = load_text_to_image(str(tmp_path / "g.keras"))
    np.testing.assert_array_equal(again(inputs).numpy(), logits)
    np.testing.assert_array_equal(again.generate(PROMPTS, seed=4, jit_compile=False), a)
