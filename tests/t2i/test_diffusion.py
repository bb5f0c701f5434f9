"""The diffusion baseline: the noising in tf.data, DDIM, guidance, determinism, round trip."""

import numpy as np
import pytest
import tensorflow as tf

from tests.t2i import tiny
from vit_tf.t2i.diffusion import diffusion_examples, diffusion_rates
from vit_tf.t2i.samplers import ddim_times
from vit_tf.t2i.task import load_text_to_image
from vit_tf.t2i.vqvae import normalize

PROMPTS = ["a large red circle.", "a small blue square and a large green triangle."]


@pytest.fixture(scope="module")
def task():
    return tiny.diffusion_task(seed=2)


def test_schedule_rates_are_unit_norm_and_noise_grows_with_time():
    t = tf.linspace(0.0, 1.0, 5)
    noise, signal = diffusion_rates(t)
    np.testing.assert_allclose(noise**2 + signal**2, 1.0, atol=1e-6)
    assert np.all(np.diff(noise.numpy()) > 0)
    np.testing.assert_allclose(signal[0], 0.95, atol=1e-6)
    assert ddim_times(4) == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_noised_examples_mix_image_and_target_noise_at_the_drawn_rate():
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3)).astype(np.float32)
    ids = np.ones((6, 4), np.int32)
    ds = tf.data.Dataset.from_tensor_slices(({"token_ids": ids, "padding_mask": ids > 0}, images))
    for (x, noise), image in zip(diffusion_examples(ds, caption_dropout=0.0, seed=3), images):
        variance = float(tf.reshape(x["noise_variances"], []))
        noise_rate, signal_rate = np.sqrt(variance), np.sqrt(1 - variance)
        np.testing.assert_allclose(x["noisy_images"], signal_rate * normalize(image).numpy()
                                   + noise_rate * noise.numpy(), atol=1e-5)
        assert x["padding_mask"].numpy().all()


def test_generate_is_deterministic_and_guidance_zero_ignores_the_prompt(task):
    a = task.generate(PROMPTS, seed=4, jit_compile=False)
    assert a.shape == (2, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, task.generate(PROMPTS, seed=4, jit_compile=False))
    assert not np.array_equal(a, task.generate(PROMPTS, seed=5, jit_compile=False))
    b = task.generate(["a small cyan circle.", "a large purple square."], guidance_scale=0.0,
                      seed=4, jit_compile=False)
    c = task.generate(PROMPTS, guidance_scale=0.0, seed=4, jit_compile=False)
    np.testing.assert_array_equal(b, c)


def test_keras_file_round_trip_gives_identical_outputs(task, tmp_path):
    task.save(tmp_path / "d.keras")
    again = load_text_to_image(str(tmp_path / "d.keras"))
    ids, mask = task.preprocessor.tokenize(PROMPTS)
    rng = np.random.default_rng(0)
    inputs = {"noisy_images": rng.normal(size=(2, 16, 16, 3)).astype("float32"),
              "noise_variances": np.full((2, 1, 1, 1), 0.3, "float32"), "token_ids": ids,
              "padding_mask": mask}
    np.testing.assert_array_equal(again(inputs).numpy(), task(inputs).numpy())
    assert again.get_config() == task.get_config()
