"""Every fusion x decoder combination: built from config, trains a step, generates (cached ==
uncached), and round-trips through .keras with identical logits and answers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_config, tiny_task
from vit_tf.config import ConfigError
from vit_tf.models.factory import build_model
from vit_tf.models.generation import Generator
from vit_tf.training.optim import compile_model

TEXT = 24
FUSIONS = ("concat", "cross_attention", "attention_pooling", "resampler", "relation_network",
           "relation_network+select")
DECODERS = ("transformer", "lstm")
PROMPTS = [
    [{"from": "human", "value": "Is it big"}],
    [{"from": "human", "value": "What colour is the circle?"},
     {"from": "gpt", "value": "The circle is red."},
     {"from": "human", "value": "How many squares are there"}],
]


def _overrides(decoder, fusion):
    # Ungated cross-attention so the image matters from the first step in these checks;
    # "relation_network+select": the relation network whose question picks the pair's objects.
    name, _, select = fusion.partition("+")
    return dict(model__decoder__name=decoder, model__fusion__name=name,
                model__fusion__num_heads=2, model__fusion__num_queries=3,
                model__fusion__relation_heads=2 if select else 0,
                model__fusion__gated="false", data__max_text_length=TEXT)


@pytest.fixture(autouse=True)
def _eager_functions():
    # The generation loop runs eagerly here: tracing it for 8 models would dominate the test.
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


def _generate(model, images, use_cache=True):
    gen = Generator(model, max_new_tokens=5, use_cache=use_cache, jit_compile=False)
    return gen.generate_ids(images, PROMPTS)


def _batch(vocab, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, (2, TEXT)).astype("int32")
    inputs = {"images": rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32"),
              "token_ids": ids, "padding_mask": np.ones((2, TEXT), bool)}
    return inputs, np.roll(ids, -1, axis=1), np.ones((2, TEXT), "float32")


# The select heads with the transformer decoder only (build, a training step, cached ==
# uncached, round trip); the LSTM case would add ~6 s to the suite, and the LSTM's reading of
# the relation network is covered by the plain relation_network case.
COMBINATIONS = [(d, f) for f in FUSIONS for d in DECODERS
                if (d, f) != ("lstm", "relation_network+select")]


@pytest.mark.parametrize("decoder, fusion", COMBINATIONS)
def test_combination_trains_generates_and_round_trips(decoder, fusion, tmp_path):
    model, config = tiny_task(seed=0, **_overrides(decoder, fusion))
    vocab = model.preprocessor.vocabulary_size
    assert model.decoder.max_sequence_length - model.num_image_tokens >= TEXT
    assert type(model.decoder.fusion).__name__.lower().startswith(fusion.replace("_", "")[:6])
    expected_prefix = {"concat": model.num_image_tokens, "resampler": 3,
                       "relation_network": model.num_image_tokens,
                       "relation_network+select": model.num_image_tokens}.get(fusion, 0)
    assert model.num_prefix_tokens == expected_prefix

    inputs, labels, weights = _batch(vocab)
    compile_model(model, config.train, total_steps=4)
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.run_eagerly = True  # one step: tracing would cost more than it saves
    for _ in range(2):  # the warmup starts at a learning rate of 0
        loss = np.ravel(model.train_on_batch(inputs, labels, sample_weight=weights))[0]
    assert np.isfinite(loss)
    moved = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert sum(moved) > len(moved) // 2  # the step updated the weights, the encoder's included
    assert any(not np.array_equal(b, w.numpy()) for b, w in
               zip(before, model.trainable_weights) if "image_encoder" in w.path)

    images = inputs["images"]
    cached = _generate(model, images)
    assert cached == _generate(model, images, use_cache=False)
    assert all(len(ids) <= 5 for ids in cached)

    live = np.asarray(model(inputs))
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(inputs)), live)
    assert reloaded.preprocessor.vocabulary_size == vocab   # the task keeps its preprocessor
    assert _generate(reloaded, images) == cached
    # The image reaches the text logits.
    other = dict(inputs, images=images[::-1].copy())
    assert not np.allclose(np.asarray(model(other)), live, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model__fusion__name": "resampler", "model__fusion__num_queries": 0}, "num_queries"),
        ({"model__fusion__name": "resampler", "model__fusion__resampler_layers": 0},
         "resampler_layers"),
        ({"model__fusion__name": "cross_attention", "model__fusion__num_heads": 3}, "num_heads"),
        ({"model__decoder__num_layers": 0}, "num_layers"),
    ],
)
def test_nonsensical_combination_is_refused_with_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model(tiny_config(**overrides), 50, max_text_length=TEXT)


def test_unknown_fusion_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="attention_pooling"):
        build_model(tiny_config(model__fusion__name="nope"), 50, max_text_length=TEXT)


@pytest.mark.parametrize("decoder,fusion", [("transformer", "attention_pooling"),
                                            ("lstm", "cross_attention")])
def test_read_fusions_generate_the_same_under_xla_as_eagerly(decoder, fusion):
    """The eager checks above never compile the loop; XLA is how generate runs by default."""
    model, _ = tiny_task(seed=1, **_overrides(decoder, fusion))
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    eager = Generator(model, max_new_tokens=4, jit_compile=False).generate_ids(images, PROMPTS)
    tf.config.run_functions_eagerly(False)
    compiled = Generator(model, max_new_tokens=4, jit_compile=True).generate_ids(images, PROMPTS)
    assert compiled == eager and all(len(ids) for ids in eager)


def test_the_position_table_covers_a_resampler_prefix_longer_than_the_image_tokens():
    """24 resampled queries from 4 image tokens: the table must hold 24 + the text, or the
    last text positions read past it (clamped to its last row under XLA)."""
    model, _ = tiny_task(seed=0, **{**_overrides("transformer", "resampler"),
                                    "model__fusion__num_queries": 24})
    assert model.num_image_tokens == 4 and model.num_prefix_tokens == 24
    assert model.decoder.max_sequence_length >= 24 + TEXT
    inputs, _, _ = _batch(model.preprocessor.vocabulary_size)
    assert np.isfinite(np.asarray(model(inputs))).all()   # eager: every position is in the table
    assert Generator(model, jit_compile=False).max_text_length == (
        model.decoder.max_sequence_length - 24)
    with pytest.raises(ValueError, match="do not fit the decoder's position table"):
        model.decoder._add_positions(tf.zeros((1, model.decoder.max_sequence_length + 1, 16)))
