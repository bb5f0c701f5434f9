"""Decoding strategies: cached == uncached for each, beam width 1 == greedy, streaming == batched."""

import numpy as np
import pytest

from tests.helpers import tiny_task
from vit_tf.config import GenerateConfig
from vit_tf.models.generation import Generator
from vit_tf.models.samplers import make_sampler

MAX_NEW_TOKENS = 8
PROMPTS = [
    [{"from": "human", "value": "Is it big"}],
    [{"from": "human", "value": "What colour is the circle?"},
     {"from": "gpt", "value": "The circle is red."},
     {"from": "human", "value": "How many squares are there"}],
    [{"from": "human", "value": "and what is on the left"}],
]
STRATEGIES = {
    "greedy": {},
    "top_k": {"top_k": 5, "temperature": 1.5},
    "top_p": {"top_p": 0.8, "temperature": 2.0},
    "beam": {"num_beams": 3},
}


@pytest.fixture(scope="module")
def model():
    return tiny_task(seed=1)[0]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 255, (3, 16, 16, 3)).astype("float32")


_GENERATORS = {}


def _gen(model, strategy, use_cache=True, seed=0, **kwargs):
    """One Generator per setting, shared across tests (each traces its loop once)."""
    key = (id(model), strategy, use_cache, seed, tuple(sorted(kwargs.items())))
    if key not in _GENERATORS:
        sampler = make_sampler(strategy, seed=seed, **{**STRATEGIES[strategy], **kwargs})
        _GENERATORS[key] = Generator(model, max_new_tokens=MAX_NEW_TOKENS, use_cache=use_cache,
                                     jit_compile=False, sampler=sampler)
    return _GENERATORS[key]


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_cached_and_uncached_decoding_give_the_same_tokens(model, images, strategy):
    cached = _gen(model, strategy, use_cache=True).generate_ids(images, PROMPTS)
    uncached = _gen(model, strategy, use_cache=False).generate_ids(images, PROMPTS)
    assert sum(len(ids) for ids in cached) > 0  # not vacuous
    assert cached == uncached


def test_beam_search_with_one_beam_equals_greedy(model, images):
    greedy = _gen(model, "greedy").generate_ids(images, PROMPTS)
    assert _gen(model, "beam", num_beams=1).generate_ids(images, PROMPTS) == greedy


def test_top_k_with_k_1_equals_greedy_at_any_temperature(model, images):
    greedy = _gen(model, "greedy").generate_ids(images, PROMPTS)
    assert _gen(model, "top_k", top_k=1, temperature=3.0).generate_ids(images, PROMPTS) == greedy


def test_sampling_with_a_fixed_seed_repeats_across_calls_and_differs_across_seeds(model, images):
    gen = _gen(model, "top_k", top_k=50, temperature=3.0)
    first = gen.generate_ids(images, PROMPTS)
    assert gen.generate_ids(images, PROMPTS) == first
    others = [_gen(model, "top_k", seed=s, top_k=50, temperature=3.0).generate_ids(images, PROMPTS)
              for s in (1, 2)]
    assert any(o != first for o in others)


@pytest.mark.parametrize("strategy", ["greedy", "top_p"])
def test_streaming_yields_the_same_tokens_as_batched_generation(model, images, strategy):
    gen = _gen(model, strategy)
    batched = gen.generate_ids(images, PROMPTS)
    streamed = [[] for _ in PROMPTS]
    events = list(gen.stream(images, PROMPTS))
    for event in events:
        for row, tid in enumerate(event.token_ids):
            if tid is not None:
                streamed[row].append(tid)
    assert streamed == batched
    assert events[-1].done == [True] * len(PROMPTS)
    texts = ["".join(e.text_deltas[i] for e in events) for i in range(len(PROMPTS))]
    assert texts == gen.generate(images, PROMPTS)


def test_stream_text_yields_pieces_that_join_to_the_answer(model, images):
    gen = _gen(model, "greedy")
    pieces = list(gen.stream_text(images[0], PROMPTS[0]))
    assert "".join(pieces) == gen.generate(images[:1], PROMPTS[:1])[0]


def test_extra_stop_token_cuts_the_answer_before_it(model, images):
    ids = _gen(model, "greedy").generate_ids(images, PROMPTS)
    row = max(range(len(ids)), key=lambda i: len(ids[i]))
    assert len(ids[row]) >= 2
    stop = ids[row][1]
    gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, jit_compile=False, stop_tokens=(stop,))
    cut = gen.generate_ids(images, PROMPTS)[row]
    assert cut == ids[row][: ids[row].index(stop)]


def test_unknown_strategy_and_bad_stop_token_raise_value_error(model):
    with pytest.raises(ValueError, match="unknown generate.strategy"):
        make_sampler("nucleus")
    with pytest.raises(ValueError, match="not one vocabulary entry"):
        Generator(model, stop_tokens=("no such word here",))


def test_beam_search_cannot_stream(model, images):
    with pytest.raises(ValueError, match="cannot stream"):
        next(_gen(model, "beam").stream(images, PROMPTS))


def test_generator_from_config_uses_the_configured_strategy(model, images):
    config = GenerateConfig(max_new_tokens=MAX_NEW_TOKENS, strategy="beam", num_beams=1,
                            jit_compile=False)
    gen = Generator.from_config(model, config)
    assert gen.is_beam
    assert gen.generate_ids(images, PROMPTS) == _gen(model, "greedy").generate_ids(images, PROMPTS)


@pytest.fixture(scope="module", params=["prefix", "image"])
def prefix_model(request):
    return tiny_task(seed=1, model__decoder__attention=request.param)[0]


@pytest.mark.parametrize("strategy", ["beam", "top_p"])
def test_prefix_lm_decoder_gives_the_same_tokens_cached_uncached_and_streamed(
        prefix_model, images, strategy):
    """Prefix-LM and image-bidirectional attention decode alike with and without the cache."""
    cached = _gen(prefix_model, strategy).generate_ids(images, PROMPTS)
    assert cached == _gen(prefix_model, strategy, use_cache=False).generate_ids(images, PROMPTS)
    assert sum(len(ids) for ids in cached) > 0
    if strategy != "beam":  # beam search is not streamed
        streamed = [[] for _ in PROMPTS]
        for event in _gen(prefix_model, strategy).stream(images, PROMPTS):
            for row, tid in enumerate(event.token_ids):
                if tid is not None:
                    streamed[row].append(tid)
        assert streamed == cached
