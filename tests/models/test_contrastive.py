"""The contrastive stage's model side: the CLIP and SigLIP losses against hand-computed values,
the learnable temperature and bias, the dual encoder and image-encoder presets, pairs and
retrieval metrics. (The cross-replica gather: tests/training/test_contrastive_distribute.py.)
"""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config, tiny_tokenizer
from vit_tf.config import ConfigError, apply_overrides
from vit_tf.data.pairs import build_pairs, record_text
from vit_tf.models.contrastive import DualEncoder, build_dual_encoder, clip_loss, siglip_loss
from vit_tf.models.contrastive.retrieval import positives_from_ids, recall_at_k
from vit_tf.models.encoders.preset import load_image_encoder_preset
from vit_tf.models.factory import build_model

E = math.e


def _inputs(x, y, t=0.0, b=0.0, image_ids=None, text_ids=None):
    n = len(x)
    ids = np.arange(n, dtype="int32")
    return ({"image_ids": ids if image_ids is None else np.array(image_ids, "int32"),
             "text_ids": ids if text_ids is None else np.array(text_ids, "int32")},
            {"image_embeddings": tf.constant(x, tf.float32),
             "text_embeddings": tf.constant(y, tf.float32),
             "logit_scale": tf.constant(t, tf.float32), "logit_bias": tf.constant(b, tf.float32)})


I2 = [[1.0, 0.0], [0.0, 1.0]]


def test_clip_loss_matches_hand_computed_values():
    # Orthonormal pairs, scale exp(0) = 1: logits = I, each row's CE = log(1 + e^-1).
    np.testing.assert_allclose(clip_loss(*_inputs(I2, I2)), [math.log(1 + 1 / E)] * 2, rtol=1e-6)
    # Same text for both images: the target is (1/2, 1/2), CE = log(e + 1) - 1/2 on every row.
    np.testing.assert_allclose(clip_loss(*_inputs(I2, I2, text_ids=[7, 7])),
                               [math.log(E + 1) - 0.5] * 2, rtol=1e-6)
    # Scale e^1 and texts at 60 degrees: logits e*[[1, .5], [.5, 1]]; i2t and t2i equal here.
    y = [[1.0, 0.0], [0.5, math.sqrt(3) / 2]]
    x = [[1.0, 0.0], [0.5, math.sqrt(3) / 2]]
    z = E * np.array([[1.0, 0.5], [0.5, 1.0]])
    expected = -(np.diag(z) - np.log(np.exp(z).sum(1)))
    np.testing.assert_allclose(clip_loss(*_inputs(x, y, t=1.0)), expected, rtol=1e-5)


def test_clip_loss_averages_both_directions():
    x = [[1.0, 0.0], [0.0, 1.0]]
    y = [[1.0, 0.0], [1.0, 0.0]]                   # both texts point at image 0
    z = np.array(x) @ np.array(y).T               # i2t logits [[1, 1], [0, 0]]
    i2t = -(np.diag(z) - np.log(np.exp(z).sum(1)))          # [log 2, log 2]
    t2i = -(np.diag(z.T) - np.log(np.exp(z.T).sum(1)))      # [log(1+1/e), 1 + log(1+1/e)]
    np.testing.assert_allclose(clip_loss(*_inputs(x, y)), (i2t + t2i) / 2, rtol=1e-6)


def test_siglip_loss_matches_hand_computed_values():
    # logits = I (scale 1, bias 0): -log sigmoid(1) on the diagonal, -log sigmoid(0) = log 2 off.
    np.testing.assert_allclose(siglip_loss(*_inputs(I2, I2)),
                               [math.log(1 + 1 / E) + math.log(2)] * 2, rtol=1e-6)
    # Bias -1: the diagonal's logit is 0 (log 2), the negatives' -1 (log(1 + e^-1)).
    np.testing.assert_allclose(siglip_loss(*_inputs(I2, I2, b=-1.0)),
                               [math.log(2) + math.log(1 + 1 / E)] * 2, rtol=1e-6)
    # Same image in both pairs: every entry positive, -log sigmoid(1) + -log sigmoid(0).
    np.testing.assert_allclose(siglip_loss(*_inputs(I2, I2, image_ids=[3, 3])),
                               [math.log(1 + 1 / E) + math.log(2)] * 2, rtol=1e-6)
    # Scale 10 (SigLIP's init), bias -10: the negatives' loss is log(1 + e^-10) each.
    expected = math.log(1 + math.exp(-0.0)) + math.log(1 + math.exp(-10.0))
    np.testing.assert_allclose(siglip_loss(*_inputs(I2, I2, t=math.log(10), b=-10.0)),
                               [expected] * 2, rtol=1e-5)


def test_logit_scale_is_capped_at_100():
    big = clip_loss(*_inputs(I2, I2, t=10.0))          # exp(10) would be 22026
    capped = clip_loss(*_inputs(I2, I2, t=math.log(100)))
    np.testing.assert_allclose(big, capped, rtol=1e-6)


@pytest.fixture(scope="module")
def tiny():
    config = tiny_config(pretrain__text_hidden_dim=16, pretrain__text_intermediate_dim=32,
                         pretrain__text_num_heads=2, pretrain__text_num_layers=1,
                         pretrain__embed_dim=8, pretrain__text_max_length=12,
                         pretrain__warmup_steps=0)
    keras.utils.set_random_seed(0)
    return config, build_dual_encoder(config, tiny_tokenizer())


def _batch(model, n=4):
    rng = np.random.default_rng(0)
    ids, mask = model.tokenize(["the circle is red", "a blue triangle on the left",
                                "yes it is big", "there are two squares"][:n])
    return {"images": rng.uniform(0, 255, (n, 16, 16, 3)).astype("float32"), "token_ids": ids,
            "padding_mask": mask}


@pytest.mark.parametrize("loss", ["siglip", "clip"])
def test_temperature_and_bias_learn(tiny, loss):
    config, _ = tiny
    config = apply_overrides(config, [f"pretrain.loss={loss}"])
    keras.utils.set_random_seed(1)
    model = build_dual_encoder(config, tiny_tokenizer())
    # Only the scale and bias train: with fixed embeddings the gradient on t must move it.
    for layer in (model.image_encoder, model.text_encoder, model.image_projection,
                  model.text_projection):
        layer.trainable = False
    before = (float(model.logit_scale.numpy()), float(model.logit_bias.numpy()))
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=False)
    history = model.fit(tf.data.Dataset.from_tensors(_batch(model)).repeat(), steps_per_epoch=5,
                        epochs=1, verbose=0).history
    after = (float(model.logit_scale.numpy()), float(model.logit_bias.numpy()))
    assert after[0] != before[0]
    if loss == "siglip":
        # Starting at b = -10 almost every logit is a confident negative; the 4 positives
        # (sigmoid ~ 0) pull the bias up.
        assert after[1] > before[1]
    else:
        assert after[1] == before[1] == 0.0          # CLIP has no bias
    assert history["logit_scale"][0] == pytest.approx(math.exp(after[0]), rel=1e-5)
    frozen = build_dual_encoder(apply_overrides(config, ["pretrain.learn_scale=false"]),
                                tiny_tokenizer())
    assert not frozen.logit_scale.trainable and not frozen.logit_bias.trainable


def test_dual_encoder_and_image_encoder_presets_round_trip(tiny, tmp_path):
    config, model = tiny
    batch = _batch(model)
    model.save_to_preset(str(tmp_path / "pre"), extra_metadata={"note": "test"})
    loaded = DualEncoder.from_preset(str(tmp_path / "pre"))
    np.testing.assert_array_equal(loaded.encode_images(batch["images"]),
                                  model.encode_images(batch["images"]))
    texts = ["the circle is red", "yes"]
    np.testing.assert_array_equal(loaded.encode_texts(texts), model.encode_texts(texts))
    assert float(loaded.logit_bias.numpy()) == float(model.logit_bias.numpy())

    folder = str(tmp_path / "pre" / "image_encoder")
    with open(os.path.join(folder, "metadata.json")) as f:
        meta = json.load(f)
    assert meta["encoder"] == "vit" and meta["image_size"] == 16
    assert meta["pretraining"]["note"] == "test"
    # The factory: model.encoder.preset gives the VLM this exact encoder, frozen on request.
    vlm_config = apply_overrides(config, [f"model.encoder.preset={folder}",
                                          "model.encoder.trainable=false"])
    vlm = build_model(vlm_config, 128)
    np.testing.assert_array_equal(vlm.image_encoder(batch["images"]),
                                  model.image_encoder(batch["images"]))
    assert not vlm.image_encoder.trainable and vlm.image_encoder.name == "image_encoder"
    with pytest.raises(ValueError, match="model.encoder.name='resnet50'"):
        load_image_encoder_preset(folder, encoder_name="resnet50")
    with pytest.raises(ValueError, match="data.image_size=32"):
        load_image_encoder_preset(folder, image_size=32)
    with pytest.raises(ConfigError, match="is not an image-encoder preset folder"):
        build_model(apply_overrides(config, [f"model.encoder.preset={tmp_path}"]), 128)
    with open(os.path.join(folder, "model.weights.h5"), "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="changed or truncated"):
        load_image_encoder_preset(folder)


def test_pairs_take_captions_and_question_answer_texts(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "a.png")
    conv = lambda q, a: [{"from": "human", "value": f"<image>\n{q}"},  # noqa: E731
                         {"from": "gpt", "value": a}]
    records = [
        {"id": "c", "image_path": str(tmp_path / "a.png"), "category": "caption",
         "conversations": conv("Describe the image briefly.", "A small red circle.")},
        {"id": "q", "image_path": str(tmp_path / "a.png"), "category": "attribute",
         "conversations": conv("What colour is the circle?", "red")},
        {"id": "d", "image_path": str(tmp_path / "a.png"), "category": "description",
         "conversations": conv("Describe it.", "there is 1 object.")},
    ]
    assert record_text(records[0], {"caption"}) == "a small red circle."
    assert record_text(records[1], {"caption", "questions"}) == "what colour is the circle? red"
    assert record_text(records[1], {"caption"}) is None
    # "questions" takes every record of a category not named, as question + answer.
    assert record_text(records[2], {"caption", "questions"}) == "describe it. there is 1 object."
    pairs = build_pairs(records, "caption,description", image_size=8)
    assert pairs.texts == ["a small red circle.", "there is 1 object."]
    assert pairs.images.shape == (1, 8, 8, 3) and list(pairs.image_index) == [0, 0]
    with pytest.raises(ValueError, match="add 'questions'"):
        build_pairs(records[1:2], "caption", image_size=8)


def test_recall_counts_identical_texts_and_breaks_ties_against_the_positive():
    # Images 0 and 1 share the text "a"; image 2 has "b".
    positives = positives_from_ids([0, 1, 2], ["a", "a", "b"])
    assert positives.tolist() == [[True, True, False], [True, True, False],
                                  [False, False, True]]
    similarity = np.array([[0.1, 0.9, 0.0],     # image 0's best text is image 1's "a": a hit
                           [0.5, 0.4, 0.5],     # a negative ties the best positive: a miss at 1
                           [0.0, 0.2, 0.3]])
    r = recall_at_k(similarity, positives, (1, 2))
    assert r["i2t_r1"] == pytest.approx(2 / 3) and r["i2t_r2"] == 1.0
    assert recall_at_k(np.zeros((3, 3)), np.eye(3, dtype=bool), (1,))["t2i_r1"] == 0.0
