"""Tests for the CNN, keras-hub (CLIP / SigLIP) and SavedModel image encoders: loaded through
the public config path from locally written folders, (batch, tokens, dim) outputs, frozen or
trainable, and .keras round trips that no longer need the source folder."""

import shutil

import keras
import keras_hub
import numpy as np
import pytest

from tests.helpers import run_layer_test, tiny_config
from vit_tf.config import ConfigError
from vit_tf.models.encoders.cnn import ResNet50Encoder, VGG16Encoder
from vit_tf.models.factory import build_model
from vit_tf.models.encoders.hub_vision import CLIPImageEncoder, SigLIPImageEncoder
from vit_tf.models.encoders.saved_model import SavedModelImageEncoder

VOCAB, TEXT = 40, 10


def _images(size, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _vlm_inputs(size):
    rng = np.random.default_rng(1)
    return {"images": _images(size), "token_ids": rng.integers(5, VOCAB, (2, TEXT)).astype("int32"),
            "padding_mask": np.ones((2, TEXT), bool)}


def _round_trip(model, inputs, tmp_path, remove=None):
    live = np.asarray(model(inputs))
    model.save(tmp_path / "model.keras")
    if remove:
        shutil.rmtree(remove)  # the saved model must not need the preset folder any more
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(inputs)), live)
    return reloaded


def test_vgg16_tokens_frozen_and_a_local_weights_file(tmp_path):
    encoder = VGG16Encoder(64, trainable=False, name="vgg")
    out = run_layer_test(encoder, _images(64), tmp_path, expected_output_shape=(2, 4, 512))
    assert not encoder.trainable_weights
    weights = tmp_path / "vgg16_notop.weights.h5"
    encoder.network.save_weights(weights)
    config = tiny_config(data__image_size=64, model__encoder__name="vgg16",
                         model__encoder__weights=str(weights), model__encoder__trainable="false")
    model = build_model(config, VOCAB, max_text_length=TEXT)
    np.testing.assert_allclose(np.asarray(model.image_encoder(_images(64))), out, atol=1e-4)
    assert model.num_image_tokens == 4
    assert not model.image_encoder.trainable_weights


def test_resnet50_from_config_at_32_pixels_gives_one_2048_d_token_and_round_trips(tmp_path):
    config = tiny_config(data__image_size=32, model__encoder__name="resnet50")
    model = build_model(config, VOCAB, max_text_length=TEXT)
    assert isinstance(model.image_encoder, ResNet50Encoder)
    assert tuple(model.image_encoder(_images(32)).shape) == (2, 1, 2048)
    assert tuple(model(_vlm_inputs(32)).shape) == (2, TEXT, VOCAB)
    reloaded = _round_trip(model, _vlm_inputs(32), tmp_path)   # 23.6M parameters: ~30 s
    assert isinstance(reloaded.image_encoder, ResNet50Encoder)


def _clip_preset(folder):
    vision = keras_hub.models.CLIPVisionEncoder(8, 16, 1, 2, 32, image_shape=(32, 32, 3))
    text = keras_hub.models.CLIPTextEncoder(50, 16, 16, 1, 2, 32, max_sequence_length=8)
    keras_hub.models.CLIPBackbone(vision, text, projection_dim=16).save_to_preset(str(folder))
    return vision


def _siglip_preset(folder):
    vision = keras_hub.models.SigLIPVisionEncoder(8, 16, 1, 2, 32, image_shape=(16, 16, 3))
    text = keras_hub.models.SigLIPTextEncoder(50, 16, 16, 1, 2, 32, max_sequence_length=8)
    keras_hub.models.SigLIPBackbone(vision, text).save_to_preset(str(folder))
    return vision


@pytest.mark.parametrize("family, make, tokens", [("clip", _clip_preset, 16),
                                                  ("siglip", _siglip_preset, 4)])
def test_keras_hub_vision_tower_from_a_local_preset_gives_patch_tokens(family, make, tokens,
                                                                       tmp_path):
    make(tmp_path / "preset")
    config = tiny_config(model__encoder__name=family, model__encoder__preset=str(tmp_path / "preset"))
    model = build_model(config, VOCAB, max_text_length=TEXT)
    encoder = model.image_encoder
    assert isinstance(encoder, {"clip": CLIPImageEncoder, "siglip": SigLIPImageEncoder}[family])
    out = np.asarray(encoder(_images(16)))
    assert out.shape == (2, tokens, 16) and model.num_image_tokens == tokens
    assert not np.allclose(out[:, 0], out[:, 1])  # per-patch tokens, not one pooled vector
    _round_trip(model, _vlm_inputs(16), tmp_path, remove=tmp_path / "preset")


def test_frozen_keras_hub_tower_has_no_trainable_weights(tmp_path):
    _clip_preset(tmp_path / "preset")
    config = tiny_config(model__encoder__name="clip", model__encoder__preset=str(tmp_path / "preset"),
                         model__encoder__trainable="false")
    model = build_model(config, VOCAB, max_text_length=TEXT)
    assert not model.image_encoder.trainable_weights and model.image_encoder.weights


def _export_saved_model(folder):
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Conv2D(12, 4, strides=4, name="conv")(inputs)  # (batch, 4, 4, 12)
    net = keras.Model(inputs, features)
    net.export(str(folder), verbose=False)  # endpoint "serve"
    return net


@pytest.mark.parametrize("trainable", [True, False])
def test_saved_model_encoder_from_a_local_export(trainable, tmp_path):
    net = _export_saved_model(tmp_path / "sm")
    config = tiny_config(model__encoder__name="saved_model", model__encoder__handle=str(tmp_path / "sm"),
                         model__encoder__endpoint="serve",
                         model__encoder__trainable=str(trainable).lower())
    model = build_model(config, VOCAB, max_text_length=TEXT)
    assert isinstance(model.image_encoder, SavedModelImageEncoder)
    images = _images(16)
    expected = np.asarray(net(images / 255.0)).reshape(2, 16, 12)
    np.testing.assert_allclose(np.asarray(model.image_encoder(images)), expected, atol=1e-5)
    assert bool(model.image_encoder.trainable_weights) == trainable
    if trainable:
        _round_trip(model, _vlm_inputs(16), tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model__encoder__name": "clip"}, "model.encoder.preset"),
        ({"model__encoder__name": "saved_model"}, "model.encoder.handle"),
        ({"model__encoder__preset": "clip_vit_base_patch16"}, "does not use it"),
        ({"model__encoder__name": "resnet50"}, "image_size >= 32"),
        ({"model__encoder__trainable": "false"}, "random weights"),
    ],
)
def test_encoder_config_mistakes_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(tiny_config(**overrides), VOCAB, max_text_length=TEXT)


def test_missing_saved_model_folder_names_the_path(tmp_path):
    config = tiny_config(model__encoder__name="saved_model", model__encoder__handle=str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match="not a SavedModel folder"):
        build_model(config, VOCAB, max_text_length=TEXT)
