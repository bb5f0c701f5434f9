"""Image-token-only LoRA (``train.lora.tokens=image``, vit_tf.layers.image_lora) on the tiny
SmolLM2 stand-in: text computes the original LM exactly, image positions are adapted, the
factors get gradients from image positions only, the KV cache agrees with the full call, and a
preset round trip keeps the factors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.smollm2_tiny import (tiny_llama_config, tiny_llama_preset, tiny_preprocessor,
                                tiny_records)
from vit_tf.config import ConfigError, PolicyConfig, apply_overrides
from vit_tf.layers.image_lora import ImageLoraEinsumDense, image_lora_targets, image_prefix
from vit_tf.models.image_features import ImageFeatureCache
from vit_tf.training.feature_training import fit_on_features
from vit_tf.training.lora import lora_variables, merge_lora

POLICY = PolicyConfig(image_encoder="frozen", projector="full", decoder="lora")
IMAGE_LORA = ["train.lora.tokens=image", "train.lora.rank=2", "train.lora.alpha=4"]


def _fresh_task(preset):
    """A task of its own (the shared ``tiny_llama_task`` must not get image-token LoRA)."""
    from vit_tf.models.factory import build_task

    config = tiny_llama_config(preset)
    keras.utils.set_random_seed(1)
    return build_task(config, tiny_preprocessor(preset)), apply_overrides(config, IMAGE_LORA)


def _inputs(task, seed=0):
    rng = np.random.default_rng(seed)
    decoder = task.decoder
    ids = rng.integers(3, decoder.vocabulary_size, (2, 7)).astype("int32")
    image = rng.normal(size=(2, task.image_encoder.num_tokens, decoder.hidden_dim))
    return ids, image.astype("float32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(task, config, plain outputs before adaptation, cache, records): a fresh tiny task trained
    2 steps with image-token LoRA on cached features, then its B factors made large."""
    root = tmp_path_factory.mktemp("image_lora")
    task, config = _fresh_task(tiny_llama_preset(root))
    ids, image = _inputs(task)
    plain = {"text": np.asarray(task.decoder(ids)),
             "image": np.asarray(task.decoder(ids, image_tokens=image))}
    records = tiny_records(root, 4)
    cache = ImageFeatureCache.build(task, [r["image_path"] for r in records], str(root / "c"),
                                    log=lambda m: None)
    base = [np.array(v) for v in task.decoder.backbone.weights]
    summary = fit_on_features(task, records, cache, config.train, POLICY, steps=2, batch_size=2,
                              max_text_length=40, log=lambda m: None)
    assert np.isfinite(summary["final_loss"]) and summary["trainable_parameters"]["decoder"] > 0
    factors = lora_variables(task.decoder)
    assert factors and {id(v) for v in task.decoder.trainable_weights} == {id(v) for v in factors}
    trained_b = [v for v in factors if v.path.endswith("lora_kernel_b")]
    # B starts at 0. The last layer's image positions reach the text only through their keys
    # and values: its query, output and feed-forward factors get no gradient at all.
    last = task.decoder.backbone.transformer_layers[-1]
    attention = last._self_attention_layer
    dead = {id(layer.lora_kernel_b) for layer in (
        attention._query_dense, attention._output_dense, last._feedforward_intermediate_dense,
        last._feedforward_gate_dense, last._feedforward_output_dense)}
    assert [np.abs(v.numpy()).max() > 0 for v in trained_b] == [id(v) not in dead
                                                                 for v in trained_b]
    after = [np.array(v) for v in task.decoder.backbone.weights if "lora_kernel" not in v.path]
    assert all(np.array_equal(a, b) for a, b in zip(base, after))  # the LM's own weights kept
    rng = np.random.default_rng(3)
    for v in trained_b:
        v.assign(rng.normal(scale=0.5, size=v.shape))
    return task, config, plain, cache, records, root


def test_text_only_input_computes_the_original_lm_and_the_image_changes_it(trained):
    task, _, plain, *_ = trained
    ids, image = _inputs(task)
    np.testing.assert_array_equal(np.asarray(task.decoder(ids)), plain["text"])
    adapted = np.asarray(task.decoder(ids, image_tokens=image))
    assert np.abs(adapted - plain["image"]).max() > 1e-3   # text sees adapted image keys/values
    # A row whose image is absent (image_present=False, LLaVA-1.5's text-only rows): the text
    # computes what it computes without a prefix.
    masked = task.decoder(ids, image_tokens=image, image_present=np.array([False, True]))
    np.testing.assert_allclose(np.asarray(masked)[0], plain["text"][0], atol=1e-5)


def test_a_projection_adapts_the_image_positions_only_and_learns_only_from_them(trained):
    task, *_ = trained
    layer = task.decoder.backbone.transformer_layers[0]._self_attention_layer._query_dense
    assert isinstance(layer, ImageLoraEinsumDense)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 5, task.decoder.hidden_dim)),
                    "float32")
    plain = keras.layers.EinsumDense.call(layer, x)          # the frozen kernel alone
    with image_prefix(3):
        y = layer(x)
    np.testing.assert_array_equal(np.asarray(y)[:, 3:], np.asarray(plain)[:, 3:])
    assert np.abs(np.asarray(y)[:, :3] - np.asarray(plain)[:, :3]).min() > 0
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(plain))  # no scope: plain
    factors = [layer.lora_kernel_a, layer.lora_kernel_b]
    for positions, reaches in ((slice(3, None), False), (slice(0, 3), True)):
        with tf.GradientTape() as tape, image_prefix(3):
            loss = tf.reduce_sum(layer(x)[:, positions] ** 2)
        grads = tape.gradient(loss, factors)
        norms = [0.0 if g is None else float(tf.norm(g)) for g in grads]
        assert (min(norms) > 0) if reaches else (max(norms) == 0)
    ids, _ = _inputs(task)                                   # the whole LM, text only
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(task.decoder(ids) ** 2)
    assert all(g is None for g in tape.gradient(loss, lora_variables(task.decoder)))


def test_cached_prefill_and_decode_steps_equal_the_full_call(trained):
    task, *_ = trained
    decoder = task.decoder
    ids, image = _inputs(task)
    prefix = image.shape[1]
    full = np.asarray(decoder(ids, image_tokens=image))       # (2, 7, vocab)
    cache = decoder.init_cache(2, prefix + ids.shape[1])
    logits, cache = decoder.call_with_cache(ids[:, :4], cache, 0, image_tokens=image)
    np.testing.assert_allclose(np.asarray(logits), full[:, :4], atol=1e-4)
    for t in range(4, 7):                                     # decode steps: text, no update
        logits, cache = decoder.call_with_cache(ids[:, t:t + 1], cache, prefix + t,
                                                image_tokens=image, include_prefix=False)
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-4)


def test_preset_and_keras_round_trips_keep_the_factors_and_merge_keeps_them(trained):
    from vit_tf.runs import load_task
    from vit_tf.training.precision import precision_copy

    task, _, plain, _, _, root = trained
    ids, image = _inputs(task)
    expected = np.asarray(task.decoder(ids, image_tokens=image))
    merged = merge_lora(task)       # image-token LoRA cannot be merged: kept as it is
    assert merged is task
    bf16 = precision_copy(task, "mixed_bfloat16")      # how stage 2 trains (a rebuilt copy)
    assert len(image_lora_targets(bf16.decoder)) == len(image_lora_targets(task.decoder))
    # bf16 round-off: close to the float32 logits on the whole (a few of them moved by up to
    # ~0.4 on one CPU), and far closer than the LM without its factors.
    error = np.abs(np.asarray(bf16.decoder(ids, image_tokens=image)) - expected)
    effect = np.abs(plain["image"] - expected).mean()        # what the factors change
    assert error.mean() < 0.1 and error.max() < 1.0, (error.mean(), error.max())
    assert error.mean() < 0.1 * effect, (error.mean(), effect)
    back = precision_copy(bf16, "float32")
    np.testing.assert_array_equal(np.asarray(back.decoder(ids, image_tokens=image)), expected)
    task.save_to_preset(str(root / "preset_out"))
    loaded = load_task(str(root / "preset_out"))
    assert loaded.decoder.image_lora == {"rank": 2, "alpha": 4.0, "scope": "image"}
    assert len(image_lora_targets(loaded.decoder)) == len(image_lora_targets(task.decoder)) > 0
    np.testing.assert_allclose(np.asarray(loaded.decoder(ids, image_tokens=image)), expected,
                               atol=1e-5)
    task.save(str(root / "task.keras"))                # the .keras file of a training run
    reloaded = load_task(str(root / "task.keras"))
    np.testing.assert_allclose(np.asarray(reloaded.decoder(ids, image_tokens=image)), expected,
                               atol=1e-5)


def test_settings_that_cannot_work_are_refused(trained):
    from tests.training.conftest import make_model
    from vit_tf.training.policy import apply_policy

    task, config, _, cache, records, _ = trained
    with pytest.raises(ConfigError, match=r"train.lora.tokens='pixels': expected one of"):
        apply_policy(task, POLICY, apply_overrides(config, ["train.lora.tokens=pixels"]).train.lora)
    with pytest.raises(ConfigError, match="the decoder already has the other kind of LoRA"):
        apply_policy(task, POLICY, apply_overrides(config, ["train.lora.tokens=all"]).train.lora)
    text = [{"id": "t0", "image_path": "", "category": "text_chat", "finished": True,
             "conversations": [{"from": "human", "value": "hello"},
                               {"from": "gpt", "value": "a user"}]}]
    with pytest.raises(ConfigError, match="1 text-only examples would train nothing"):
        fit_on_features(task, records + text, cache, config.train, POLICY, steps=1,
                        batch_size=2, max_text_length=40)
    model, _ = make_model()         # a decoder trained from scratch: no keras-hub LM prefix
    with pytest.raises(ConfigError, match="lora.tokens='image' / 'with_image' needs a decoder"):
        apply_policy(model, POLICY, config.train.lora)


def test_with_image_scope_adapts_every_position_of_an_image_sequence_only(tmp_path):
    """``train.lora.tokens=with_image``: the text of an image conversation is adapted too (its
    decode steps included), a text-only sequence still computes the original LM."""
    from vit_tf.training.policy import apply_policy

    task, config = _fresh_task(tiny_llama_preset(tmp_path))
    ids, image = _inputs(task)
    plain = {"text": np.asarray(task.decoder(ids)),
             "image": np.asarray(task.decoder(ids, image_tokens=image))}
    lora = apply_overrides(config, ["train.lora.tokens=with_image"]).train.lora
    apply_policy(task, POLICY, lora)
    decoder = task.decoder
    assert decoder.image_lora == {"rank": 2, "alpha": 4.0, "scope": "with_image"}
    rng = np.random.default_rng(3)
    for v in lora_variables(decoder):
        if v.path.endswith("lora_kernel_b"):
            v.assign(rng.normal(scale=0.5, size=v.shape))
    np.testing.assert_array_equal(np.asarray(decoder(ids)), plain["text"])
    full = np.asarray(decoder(ids, image_tokens=image))      # (2, 7, vocab): text positions
    assert np.abs(full - plain["image"]).min(axis=-1).max() > 0
    # the last layer's query / output / feed-forward now act at text positions: gradients
    last = decoder.backbone.transformer_layers[-1]._feedforward_output_dense
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(decoder(ids, image_tokens=image) ** 2)
    assert float(tf.norm(tape.gradient(loss, last.lora_kernel_b))) > 0
    prefix = image.shape[1]
    cache = decoder.init_cache(2, prefix + ids.shape[1])
    logits, cache = decoder.call_with_cache(ids[:, :4], cache, 0, image_tokens=image)
    np.testing.assert_allclose(np.asarray(logits), full[:, :4], atol=1e-4)
    for t in range(4, 7):                        # decode steps are adapted: image_tokens given
        logits, cache = decoder.call_with_cache(ids[:, t:t + 1], cache, prefix + t,
                                                image_tokens=image, include_prefix=False)
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-4)
    with pytest.raises(ValueError, match="pass image_tokens at every step"):
        task.call_with_cache(ids[:, :1], cache, 4)
    rebuilt = type(decoder).from_config(decoder.get_config())
    rebuilt.build((None, None))
    rebuilt.set_weights(decoder.get_weights())
    np.testing.assert_allclose(np.asarray(rebuilt(ids, image_tokens=image)), full, atol=1e-5)
