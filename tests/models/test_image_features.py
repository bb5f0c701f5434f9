"""vit_tf.models.image_features: encoder tokens cached once per image (pinned to the encoder and
the image bytes) and the feature model that trains the task's own layers."""

import json
import os

import numpy as np
import pytest

from tests.helpers import write_image
from tests.smollm2_tiny import tiny_llama_preset, tiny_llama_task, tiny_records
from vit_tf.models.image_features import (FeatureCacheError, ImageFeatureCache, feature_model)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    task, config = tiny_llama_task(tiny_llama_preset(root))
    records = tiny_records(root, 4)
    paths = [r["image_path"] for r in records]
    cache = ImageFeatureCache.build(task, paths + paths[:1], str(root / "cache"), batch_size=3,
                                    log=lambda m: None)
    return task, records, cache, root


def test_cached_tokens_equal_the_encoder_on_the_preprocessors_pixels(setup):
    task, records, cache, _ = setup
    assert len(cache.paths) == 4                                    # each image once
    pixels = task.preprocessor.convert_images([r["image_path"] for r in records])
    expected = np.asarray(task.image_encoder(pixels, training=False))
    got = cache.features[cache.indices([r["image_path"] for r in records])]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_feature_model_gives_the_tasks_logits_and_shares_its_weights(setup):
    task, records, cache, _ = setup
    model = feature_model(task)
    ids = np.array([[5, 6, 7, 8]], np.int32)
    mask = np.ones_like(ids, bool)
    pixels = np.asarray(task.preprocessor.convert_images([records[0]["image_path"]]))
    direct = task({"images": pixels, "token_ids": ids, "padding_mask": mask})
    cached = model({"image_features": cache.features[cache.indices([records[0]["image_path"]])],
                    "token_ids": ids, "padding_mask": mask})
    np.testing.assert_allclose(np.asarray(cached), np.asarray(direct), atol=1e-4)
    assert {id(v) for v in task.projector.weights} <= {id(v) for v in model.weights}


def test_reload_checks_encoder_and_image_bytes(setup, tmp_path):
    task, records, cache, root = setup
    folder = str(root / "cache")
    again = ImageFeatureCache.build(task, [records[0]["image_path"]], folder, log=lambda m: None)
    assert again.features.shape == cache.features.shape                # reused, not rebuilt
    with pytest.raises(FeatureCacheError, match="no features for"):
        cache.indices([str(tmp_path / "other.png")])
    changed = str(tmp_path / "img.png")
    write_image(changed, seed=0)
    built = ImageFeatureCache.build(task, [changed], str(tmp_path / "c2"), log=lambda m: None)
    write_image(changed, seed=5)                                       # the image changes
    with pytest.raises(FeatureCacheError, match="img.png: changed since its features"):
        ImageFeatureCache.load(built.folder, task, [changed])
    index = json.loads(open(os.path.join(built.folder, "index.json")).read())
    index["encoder"]["weights_sha256"] = "0" * 64
    with open(os.path.join(built.folder, "index.json"), "w") as f:
        json.dump(index, f)
    with pytest.raises(FeatureCacheError, match="made by another encoder"):
        ImageFeatureCache.load(built.folder, task)


def test_text_only_rows_see_no_image_and_send_no_gradient_to_the_projector(setup):
    import tensorflow as tf

    task, records, cache, _ = setup
    model = feature_model(task, text_only_rows=True)
    ids = np.array([[5, 6, 7, 8], [5, 6, 7, 8]], np.int32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
    features = cache.features[cache.indices([records[0]["image_path"]] * 2)]
    inputs = {"image_features": features, "token_ids": ids, "padding_mask": mask,
              "image_present": np.array([False, True])}
    logits = np.asarray(model(inputs))
    text_only = np.asarray(task.decoder.backbone.token_embedding(task.decoder.backbone(
        {"token_ids": ids[:1], "padding_mask": mask[:1]}), reverse=True))
    np.testing.assert_allclose(logits[0], text_only[0], atol=1e-4)    # as if no prefix at all
    with_image = np.asarray(feature_model(task)({k: v for k, v in inputs.items()
                                                 if k != "image_present"}))
    np.testing.assert_allclose(logits[1, :3], with_image[1, :3], atol=1e-5)
    assert not np.allclose(logits[0], with_image[0], atol=1e-3)      # the image did matter
    inputs["image_present"] = np.array([False, False])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(inputs))
    grads = tape.gradient(loss, task.projector.trainable_weights)
    assert all(g is None or not np.any(np.asarray(g)) for g in grads)


def test_text_only_rows_need_a_decoder_that_masks_its_prefix(setup):
    task = setup[0]

    class Plain:
        fusion = task.decoder.fusion

    real = task.decoder
    try:
        task.decoder = Plain()
        with pytest.raises(ValueError, match="text-only examples need a decoder"):
            feature_model(task, text_only_rows=True)
    finally:
        task.decoder = real
