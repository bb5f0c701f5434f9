"""Tests for the VLM and its factory: .keras round trip, parts chosen by config."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_config
from vit_tf.layers.projector import LinearProjector, MLPProjector
from vit_tf.models.factory import build_model
from vit_tf.models.decoders.transformer import TransformerDecoderLM
from vit_tf.models.encoders.vit import ViTEncoder
from vit_tf.models.vlm import VisionLanguageModel

VOCAB, TEXT = 50, 12


def _inputs(batch=2, seed=0, image_size=16):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, TEXT), bool)
    mask[0, 9:] = False
    return {
        "images": rng.uniform(0, 255, (batch, image_size, image_size, 3)).astype("float32"),
        "token_ids": rng.integers(5, VOCAB, (batch, TEXT)).astype("int32"),
        "padding_mask": mask,
    }


def test_build_model_composes_the_configured_parts_and_outputs_text_logits():
    config = tiny_config()
    model = build_model(config, VOCAB, max_text_length=TEXT)
    assert isinstance(model, VisionLanguageModel)
    assert isinstance(model.image_encoder, ViTEncoder)
    assert isinstance(model.projector, MLPProjector)
    assert isinstance(model.decoder, TransformerDecoderLM)
    assert model.num_image_tokens == (16 // 8) ** 2
    assert model.decoder.max_sequence_length == model.num_image_tokens + TEXT + 8
    logits = model(_inputs())
    assert tuple(logits.shape) == (2, TEXT, VOCAB) and logits.dtype == "float32"


def test_build_model_defaults_max_text_length_to_the_data_config():
    config = tiny_config(data__max_text_length=20)
    model = build_model(config, VOCAB)
    assert model.decoder.max_sequence_length == model.num_image_tokens + 20 + 8


def test_saved_and_reloaded_model_gives_identical_outputs(tmp_path):
    model = build_model(tiny_config(), VOCAB, max_text_length=TEXT)
    inputs = _inputs()
    live = np.asarray(model(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded, VisionLanguageModel)
    np.testing.assert_array_equal(np.asarray(reloaded(inputs)), live)
    np.testing.assert_array_equal(
        np.asarray(reloaded.encode_images(inputs["images"])),
        np.asarray(model.encode_images(inputs["images"])),
    )
    assert reloaded.num_image_tokens == model.num_image_tokens


def test_reloaded_model_predict_matches_live_predict(tmp_path):
    model = build_model(tiny_config(model__projector__name="linear"), VOCAB, max_text_length=TEXT)
    inputs = _inputs(batch=3, seed=1)
    live = model.predict(inputs, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded.predict(inputs, verbose=0), live)


@pytest.mark.parametrize(
    "key", ["model.encoder.name", "model.projector.name", "model.decoder.name"]
)
def test_unknown_part_name_in_config_raises_key_error_at_build(key):
    config = tiny_config(**{key.replace(".", "__"): "nonexistent"})
    with pytest.raises(KeyError, match="'nonexistent'"):
        build_model(config, VOCAB, max_text_length=TEXT)


def test_projector_name_in_config_selects_the_projector_class():
    linear = build_model(tiny_config(model__projector__name="linear"), VOCAB, max_text_length=TEXT)
    mlp = build_model(tiny_config(model__projector__name="mlp"), VOCAB, max_text_length=TEXT)
    assert type(linear.projector) is LinearProjector
    assert type(mlp.projector) is MLPProjector
    assert linear.count_params() < mlp.count_params()


def test_a_training_batch_in_slices_gives_the_whole_batchs_logits_and_gradients():
    import tensorflow as tf

    model = build_model(tiny_config(), VOCAB, max_text_length=TEXT)
    x = _inputs(batch=4)
    labels = np.random.default_rng(3).integers(0, VOCAB, (4, TEXT))

    def run(k):
        model.batch_slices = k
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        return [logits] + [tf.convert_to_tensor(g) for g in tape.gradient(
            loss, model.trainable_variables)]

    whole, sliced, odd = run(1), run(2), run(3)   # 3 does not divide 4: the batch runs whole
    for a, b, c in zip(whole, sliced, odd, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(c), np.asarray(a))


def test_batch_slices_auto_is_two_on_cpu_and_negative_is_refused():
    from vit_tf.config import ConfigError
    from vit_tf.training.optim import batch_slices

    assert batch_slices(tiny_config(train__batch_slices=0).train) == 2   # no GPU here
    assert batch_slices(tiny_config(train__batch_slices=4).train) == 4
    with pytest.raises(ConfigError, match="train.batch_slices"):
        batch_slices(tiny_config(train__batch_slices=-1).train)


def test_the_image_changes_the_text_logits():
    model = build_model(tiny_config(), VOCAB, max_text_length=TEXT)
    a = _inputs()
    b = dict(a, images=_inputs(seed=1)["images"])
    assert not np.allclose(np.asarray(model(a)), np.asarray(model(b)), atol=1e-6)
