"""The image tokenizer: nearest-code quantization, EMA updates, restarts, round trips."""

import keras
import numpy as np
import tensorflow as tf

from vit_tf.t2i.vqvae import VQVAE, VectorQuantizer


def test_quantizer_picks_the_nearest_codebook_row_and_looks_it_up():
    q = VectorQuantizer(8, 3, seed=1)
    q.build((None, 3))
    rng = np.random.default_rng(0)
    q.codebook.assign(rng.normal(size=(8, 3)).astype("float32"))
    z = rng.normal(size=(5, 4, 3)).astype("float32")
    idx = q.indices(z).numpy()
    brute = ((z[..., None, :] - q.codebook.numpy()) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(idx, brute)
    np.testing.assert_array_equal(q.lookup(idx).numpy(), q.codebook.numpy()[brute])
    np.testing.assert_allclose(q(z).numpy(), q.codebook.numpy()[brute], atol=1e-6)  # inference


def test_ema_moves_rows_to_their_assigned_mean_and_restarts_dead_rows():
    q = VectorQuantizer(3, 2, decay=0.0, dead_threshold=0.5, epsilon=0.0)
    q.build((None, 2))
    q.codebook.assign([[0.0, 0.0], [10.0, 10.0], [100.0, 100.0]])
    z = np.array([[0.2, 0.0], [0.4, 0.2], [9.0, 11.0]], "float32")
    q(z, training=True)
    book = q.codebook.numpy()
    np.testing.assert_allclose(book[0], [0.3, 0.1], atol=1e-6)        # mean of two vectors
    np.testing.assert_allclose(book[1], [9.0, 11.0], atol=1e-6)
    assert any(np.allclose(book[2], v) for v in z)                    # unused: restarted at z
    assert q.losses                                                   # commitment loss added
    usage, perplexity = q.codebook_usage(threshold=0.5)
    assert usage == 1.0 and 1.0 <= perplexity <= 3.0


def test_encode_decode_round_trip_is_the_models_reconstruction_and_keras_file_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    vq = VQVAE(16, patch_size=4, width=8, code_dim=4, num_codes=16, num_res_blocks=1)
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype("float32")
    codes = vq.encode(images)
    assert codes.shape == (3, 4, 4) and codes.dtype == tf.int32
    decoded = vq.decode(codes).numpy()
    recon = ((vq(images).numpy() + 1.0) * 127.5).clip(0, 255)
    np.testing.assert_allclose(decoded, recon, atol=1e-3)
    np.testing.assert_array_equal(vq.encode(vq.decode(codes)).shape, codes.shape)
    path = tmp_path / "vq.keras"
    vq.save(path)
    again = keras.saving.load_model(path, compile=False)
    np.testing.assert_array_equal(again.encode(images).numpy(), codes.numpy())
    np.testing.assert_array_equal(again.decode(codes).numpy(), decoded)


def test_step_budget_sizes_the_schedule_from_the_measured_steps(monkeypatch):
    from vit_tf.t2i import callbacks
    from vit_tf.t2i.callbacks import SizedCosine, StepBudget

    clock = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock[0])

    class Model:
        stop_training = False

        class optimizer:
            iterations = tf.Variable(0)

    schedule = SizedCosine(1e-3, 10, 1000)
    budget = StepBudget(schedule, max_steps=1000, max_seconds=100.0, measure_calls=3)
    budget.set_model(Model)
    for call in range(6):                   # 10 steps per call; the first takes 20 s (compile)
        budget.on_train_batch_begin(call)
        clock[0] += 20.0 if call == 0 else 1.0
        Model.optimizer.iterations.assign_add(10)
        budget.on_train_batch_end(call)
    # 0.1 s per step measured after 40 steps and 23 s: 0.97 * 77 s left / 0.1 s = 746 more
    assert budget.plan["measured_seconds_per_step"] == 0.1
    assert budget.plan["total_steps"] == 40 + 746
    assert float(schedule.total_steps.numpy()) == 786.0 and not Model.stop_training
    np.testing.assert_allclose(float(schedule(786)), 0.05e-3, rtol=1e-5)   # the cosine's end
    np.testing.assert_allclose(float(schedule(5)), 0.5e-3, rtol=1e-5)      # warmup
    Model.optimizer.iterations.assign(786)
    budget.on_train_batch_begin(6)
    budget.on_train_batch_end(6)
    assert Model.stop_training


def test_tokenizer_stage_starts_from_saved_weights_and_steps_zero_uses_them_as_they_are(tmp_path):
    import pytest

    from vit_tf.config import apply_overrides
    from vit_tf.t2i.config import T2IConfig
    from vit_tf.t2i.train import train_tokenizer_stage

    keras.utils.set_random_seed(0)
    sizes = ["data.image_size=16", "vq.patch_size=4", "vq.width=8", "vq.code_dim=4",
             "vq.num_codes=16", "vq.num_res_blocks=1"]
    trained = VQVAE(16, patch_size=4, width=8, code_dim=4, num_codes=16, num_res_blocks=1,
                    seed=5)
    images = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    trained(images.astype("float32"))
    trained.save_weights(tmp_path / "vq.weights.h5")

    class Prep:
        pass

    prep = Prep()
    prep.images = images
    config = apply_overrides(T2IConfig(), sizes + [f"vq.weights={tmp_path / 'vq.weights.h5'}",
                                                   "vq.steps=0"])
    vq, summary = train_tokenizer_stage(config, prep, str(tmp_path), log=lambda m: None)
    assert summary["steps"] == 0
    np.testing.assert_array_equal(vq.encode(images.astype("float32")).numpy(),
                                  trained.encode(images.astype("float32")).numpy())
    with pytest.raises(FileNotFoundError, match="vq.weights: .*missing"):
        train_tokenizer_stage(apply_overrides(config, [f"vq.weights={tmp_path / 'missing'}"]),
                              prep, str(tmp_path), log=lambda m: None)
    with pytest.raises(ValueError, match="vq.steps=0 needs vq.weights"):
        train_tokenizer_stage(apply_overrides(config, ["vq.weights="]), prep, str(tmp_path),
                              log=lambda m: None)


def test_conv_decoder_upsamples_codes_to_pixels_round_trips_and_rejects_bad_options(tmp_path):
    import pytest

    from vit_tf.config import ConfigError, apply_overrides
    from vit_tf.t2i.config import T2IConfig, check

    keras.utils.set_random_seed(0)
    vq = VQVAE(16, patch_size=4, width=8, code_dim=4, num_codes=16, num_res_blocks=1,
               decoder="conv")
    assert [layer.name for layer in vq.decoder.layers[-3:]] == ["up0", "up1", "to_rgb"]
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("float32")
    codes = vq.encode(images)
    assert codes.shape == (2, 4, 4)
    decoded = vq.decode(codes).numpy()
    assert decoded.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(decoded, ((vq(images).numpy() + 1) * 127.5).clip(0, 255),
                               atol=1e-3)
    # one code changed moves pixels beyond its own 4x4 patch (the transposed convs overlap)
    other = codes.numpy().copy()
    other[0, 1, 1] = (other[0, 1, 1] + 1) % 16
    changed = np.abs(vq.decode(other).numpy()[0] - decoded[0]).sum(-1) > 1e-4
    assert changed[4:8, 4:8].any() and changed[3, 4:8].any()
    path = tmp_path / "vq.keras"
    vq.save(path)
    again = keras.saving.load_model(path, compile=False)
    assert again.decoder_kind == "conv"
    np.testing.assert_array_equal(again.decode(codes).numpy(), decoded)
    with pytest.raises(ValueError, match="decoder must be one of patch, conv, got 'deconv'"):
        VQVAE(16, patch_size=4, decoder="deconv")
    with pytest.raises(ValueError, match="patch_size a power of 2, got 6"):
        VQVAE(12, patch_size=6, decoder="conv")
    with pytest.raises(ConfigError, match="vq.decoder: 'deconv'"):
        check(apply_overrides(T2IConfig(), ["vq.decoder=deconv"]))


def test_error_restarts_seed_dead_rows_at_the_worst_fitted_outputs_not_the_common_ones():
    import pytest

    q = VectorQuantizer(4, 2, decay=0.0, dead_threshold=0.5, epsilon=0.0, restart="error", seed=3)
    q.build((None, 2))
    q.codebook.assign([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]])
    # 60 outputs sit on row 0 (no error); one lies far from it: only that one may seed restarts
    z = np.array([[0.0, 0.0]] * 60 + [[5.0, 5.0]], "float32")
    tf.function(lambda x: q(x, training=True), jit_compile=True)(z)
    np.testing.assert_allclose(q.codebook.numpy()[1:], [[5.0, 5.0]] * 3)
    assert q.get_config()["restart"] == "error"
    assert VQVAE(16, patch_size=4, restart="error").quantizer.restart == "error"
    with pytest.raises(ValueError, match="restart must be one of random, error, got 'best'"):
        VectorQuantizer(4, 2, restart="best")
    from vit_tf.config import ConfigError, apply_overrides
    from vit_tf.t2i.config import T2IConfig, check

    with pytest.raises(ConfigError, match="vq.restart: 'best'"):
        check(apply_overrides(T2IConfig(), ["vq.restart=best"]))
