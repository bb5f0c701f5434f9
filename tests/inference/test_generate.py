"""Tests for generation: KV-cached == uncached == a hand-written greedy loop; stopping; limits."""

import numpy as np
import pytest
from keras import ops

from tests.helpers import tiny_task, tiny_tokenizer
from vit_tf.data.template import ASSISTANT, END, ROLES
from vit_tf.models.generation import Generator

MAX_TEXT_LENGTH = 32  # tiny_config's data.max_text_length
MAX_NEW_TOKENS = 8
PROMPTS = [
    [{"from": "human", "value": "Is it big"}],
    [
        {"from": "human", "value": "What colour is the circle?"},
        {"from": "gpt", "value": "The circle is red."},
        {"from": "human", "value": "How many squares are there"},
    ],
    [{"from": "human", "value": "and what is on the left"}],
]


@pytest.fixture(scope="module", params=["causal", "prefix"])
def model(request):
    task, config = tiny_task(seed=0, model__decoder__attention=request.param)
    assert config.data.max_text_length == MAX_TEXT_LENGTH
    return task


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype("float32")


def _generate(model, images, prompts, **kwargs):
    kwargs.setdefault("jit_compile", False)
    gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, **kwargs)
    return gen.generate_ids(images, prompts)


def _prompt_by_hand(conversation):
    """The prompt written from the tokenizer alone: per turn role marker, text, <|end|>; then
    the open <|assistant|> marker (the chat template, independent of the preprocessor)."""
    tok = tiny_tokenizer()
    ids = []
    for turn in conversation:
        ids += [tok.token_to_id(ROLES[turn["from"]]), *np.asarray(tok(turn["value"])).tolist(),
                tok.token_to_id(END)]
    return ids + [tok.token_to_id(ASSISTANT)]


def test_prompt_ids_are_the_chat_template_and_the_model_sees_the_same_ids(model):
    gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, jit_compile=False)
    expected = [_prompt_by_hand(c) for c in PROMPTS]
    assert [ids.tolist() for ids in gen.prompt_ids(PROMPTS)] == expected
    token_ids, mask, lengths = gen.encode_prompts(PROMPTS)
    assert lengths.tolist() == [len(ids) for ids in expected]
    for row, ids in enumerate(expected):
        assert token_ids[row, : len(ids)].tolist() == ids and mask[row].sum() == len(ids)
        assert (token_ids[row, len(ids):] == gen.pad_id).all()


def _greedy_reference(model, image, conversation, max_new_tokens):
    """Greedy decoding by calling the whole model on the growing sequence (no cache, no sampler)."""
    end_id = tiny_tokenizer().token_to_id(END)
    ids = _prompt_by_hand(conversation)
    out = []
    for _ in range(max_new_tokens):
        logits = model({
            "images": image[None],
            "token_ids": np.array([ids], np.int32),
            "padding_mask": np.ones((1, len(ids)), bool),
        })
        next_id = int(np.argmax(np.asarray(logits)[0, -1]))
        if next_id == end_id:
            break
        ids.append(next_id)
        out.append(next_id)
    return out


@pytest.fixture(scope="module")
def uncached(model, images):
    return _generate(model, images, PROMPTS, use_cache=False)


def test_uncached_generation_equals_a_hand_written_greedy_loop(model, images, uncached):
    for i, conversation in enumerate(PROMPTS):
        assert uncached[i] == _greedy_reference(model, images[i], conversation, MAX_NEW_TOKENS)


def test_cached_generation_gives_the_same_ids_as_uncached(model, images, uncached):
    cached = _generate(model, images, PROMPTS, use_cache=True)
    assert all(len(ids) > 0 for ids in uncached)  # the comparison is not vacuous
    assert cached == uncached


def test_cached_generation_with_xla_gives_the_same_ids_as_uncached(model, images, uncached):
    cached = _generate(model, images, PROMPTS, use_cache=True, jit_compile=True)
    assert cached == uncached


def test_generation_returns_at_most_max_new_tokens_per_answer(uncached):
    assert [len(ids) <= MAX_NEW_TOKENS for ids in uncached] == [True] * len(PROMPTS)


def test_batch_of_one_gives_the_same_answer_as_inside_a_batch_of_three(model, images, uncached):
    for i in range(len(PROMPTS)):
        alone = _generate(model, images[i : i + 1], PROMPTS[i : i + 1], use_cache=True)
        assert alone == [uncached[i]]


def test_returned_ids_never_contain_the_end_id(uncached):
    end_id = tiny_tokenizer().token_to_id(END)
    assert all(end_id not in ids for ids in uncached)


def _scripted(gen, monkeypatch, scripts, lengths):
    """Make ``gen`` (uncached) emit ``scripts[row][k]`` as the k-th new token of each row."""
    vocab = gen.preprocessor.vocabulary_size
    table = ops.convert_to_tensor(np.array(scripts, np.int32))        # (batch, steps)
    starts = ops.convert_to_tensor(np.array(lengths, np.int32))       # (batch,)

    def make_next(images, token_ids):
        def next(prompt, cache, index):
            step = ops.clip(index - starts, 0, table.shape[1] - 1)       # (batch,)
            token = ops.take_along_axis(table, step[:, None], axis=1)[:, 0]
            return ops.one_hot(token, vocab) * 10.0, None, cache

        return next, None

    monkeypatch.setattr(gen, "_next_uncached", make_next)


def test_generation_stops_at_end_and_drops_it_and_what_follows(monkeypatch, images):
    tok = tiny_tokenizer()
    a, b, c, d = (tok.token_to_id(w) for w in ("red", "circle", "big", "yes"))
    model, _ = tiny_task()
    gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, use_cache=False, jit_compile=False)
    sid = gen.preprocessor.special_ids()
    prompts = [PROMPTS[0], PROMPTS[0]]
    token_ids, mask, lengths = gen.encode_prompts(prompts)
    scripts = [[a, b, sid[END], c, c, c, c, c], [a, b, c, d, sid[END], c, c, c]]
    _scripted(gen, monkeypatch, scripts, lengths)
    assert gen.generate_ids(images[:2], prompts) == [[a, b], [a, b, c, d]]
    # the loop itself stopped once every row had produced <|end|>: nothing written after row 1's end
    raw = np.asarray(gen._compiled(images[:2], token_ids, mask, int(lengths.min())))
    n = int(lengths[1])
    assert raw[1, n + 4] == sid[END]
    assert (raw[:, n + 5 :] == sid["[PAD]"]).all()


def test_generation_without_end_returns_exactly_max_new_tokens(monkeypatch, images):
    c = tiny_tokenizer().token_to_id("big")
    model, _ = tiny_task()
    gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, use_cache=False, jit_compile=False)
    _, _, lengths = gen.encode_prompts(PROMPTS)
    _scripted(gen, monkeypatch, [[c] * 64] * len(PROMPTS), lengths)
    assert gen.generate_ids(images, PROMPTS) == [[c] * MAX_NEW_TOKENS] * len(PROMPTS)


def test_the_loop_ends_once_the_longest_prompt_has_its_answer(monkeypatch, images):
    """The prompt buffer is rounded up (fewer recompiles); the loop must not run to its end."""
    c = tiny_tokenizer().token_to_id("big")
    model, _ = tiny_task()
    gen = Generator(model, max_new_tokens=4, use_cache=False, jit_compile=False)
    sid = gen.preprocessor.special_ids()
    prompts = [PROMPTS[0], PROMPTS[2]]
    token_ids, mask, lengths = gen.encode_prompts(prompts)
    last = int(lengths.max()) + 4                          # where the longest row's stop goes
    assert token_ids.shape[1] > last + 1                   # the buffer has room after it
    _scripted(gen, monkeypatch, [[c] * 64] * 2, lengths)
    raw = np.asarray(gen._compiled(images[:2], token_ids, mask, int(lengths.min())))
    for row, n in enumerate(lengths):
        assert raw[row, n : n + 4].tolist() == [c] * 4 and raw[row, n + 4] == sid[END]
    assert (raw[:, last + 1 :] == sid["[PAD]"]).all()     # nothing written after: the loop ended
    assert gen.generate_ids(images[:2], prompts) == [[c] * 4] * 2


def test_min_new_tokens_holds_the_stop_tokens_back(monkeypatch, images):
    tok = tiny_tokenizer()
    a, c = tok.token_to_id("red"), tok.token_to_id("big")
    model, _ = tiny_task()
    end = tok.token_to_id(END)
    script = [[a, end, end, end, end, c, c, c]]
    answers = {}
    for n in (0, 4):
        gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, use_cache=False, jit_compile=False,
                        min_new_tokens=n)
        _, _, lengths = gen.encode_prompts(PROMPTS[:1])
        _scripted(gen, monkeypatch, script, lengths)
        answers[n] = gen.generate_ids(images[:1], PROMPTS[:1])[0]
    assert answers[0] == [a]
    assert len(answers[4]) == 4 and answers[4][0] == a and end not in answers[4]
    # The real model, cached: full-length answers, streamed as generated.
    gen = Generator(model, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS,
                    jit_compile=False)
    ids = gen.generate_ids(images, PROMPTS)
    assert [len(row) for row in ids] == [MAX_NEW_TOKENS] * len(PROMPTS)
    streamed = [[] for _ in PROMPTS]
    for event in gen.stream(images, PROMPTS):
        for row, t in enumerate(event.token_ids):
            if t is not None:
                streamed[row].append(t)
    assert streamed == ids
    with pytest.raises(ValueError, match="min_new_tokens"):
        Generator(model, max_new_tokens=4, min_new_tokens=5)


def test_prompt_longer_than_the_context_raises_value_error(model, images):
    gen = Generator(model, max_new_tokens=4, jit_compile=False)
    long = [{"from": "human", "value": "is it big " * 20}]
    with pytest.raises(ValueError, match="does not fit"):
        gen.generate_ids(images[:1], [long])


def test_a_prompt_that_leaves_less_than_max_new_tokens_is_refused_not_cut_short(model, images):
    """The loop writes into the text context after the prompt: a prompt of n tokens leaves
    C - n positions. Asking for more must say so, never return a shorter answer silently."""
    probe = Generator(model, max_new_tokens=1, jit_compile=False)
    context = probe.max_text_length
    prompt = [{"from": "human", "value": "is it big"}]
    n = len(probe.prompt_ids([prompt])[0])
    fits = Generator(model, max_new_tokens=context - n, use_cache=False, jit_compile=False)
    assert len(fits.encode_prompts([prompt])[0][0]) >= n + context - n
    too_many = Generator(model, max_new_tokens=context - n + 1, jit_compile=False)
    with pytest.raises(ValueError, match=rf"prompt 0 is {n} tokens: with max_new_tokens="
                                         rf"{context - n + 1} it needs {context + 1} positions, "
                                         rf"more than the model's text context of {context}; "
                                         rf"shorten the prompt or set max_new_tokens <= "
                                         rf"{context - n}"):
        too_many.generate_ids(images[:1], [prompt])
