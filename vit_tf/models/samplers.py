"""Decoding strategies: keras-hub samplers chosen by name, stop tokens, seeds that repeat.

Strategies (``GenerateConfig.strategy``):

    greedy   the most likely token each step (``keras_hub.samplers.GreedySampler``)
    beam     beam search over ``num_beams`` sequences, ranked by summed log-probability
             without a length penalty (``BeamSampler``); a beam that has ended is frozen (see
             ``freeze_finished``) so later tokens do not change its score
    top_k    sample among the ``top_k`` most likely tokens (``TopKSampler``)
    top_p    nucleus sampling: the smallest set whose probability reaches ``top_p``
             (``TopPSampler``)

``temperature`` divides the logits before the softmax (every strategy; greedy ignores it).
Random strategies draw from a ``keras.random.SeedGenerator(seed)``; ``reset_seed`` puts it back
to its first state so each ``generate`` call with a fixed seed repeats itself.

Example:
    >>> sampler = make_sampler("top_p", top_p=0.9, temperature=0.7, seed=0)
"""

import keras_hub
import numpy as np
from keras import ops

STRATEGIES = ("greedy", "beam", "top_k", "top_p")


def make_sampler(strategy="greedy", num_beams=4, top_k=10, top_p=0.9, temperature=1.0, seed=0):
    """A keras-hub sampler for ``strategy``; raises ``ValueError`` naming a bad setting."""
    if temperature <= 0:
        raise ValueError(f"generate.temperature must be > 0, got {temperature}")
    if strategy == "greedy":
        return keras_hub.samplers.GreedySampler(temperature=temperature)
    if strategy == "beam":
        if num_beams < 1:
            raise ValueError(f"generate.num_beams must be >= 1, got {num_beams}")
        return keras_hub.samplers.BeamSampler(num_beams=num_beams, temperature=temperature)
    if strategy == "top_k":
        if top_k < 1:
            raise ValueError(f"generate.top_k must be >= 1, got {top_k}")
        return keras_hub.samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    if strategy == "top_p":
        if not 0 < top_p <= 1:
            raise ValueError(f"generate.top_p must be in (0, 1], got {top_p}")
        return keras_hub.samplers.TopPSampler(p=top_p, seed=seed, temperature=temperature)
    raise ValueError(f"unknown generate.strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def sampler_from_config(config):
    """``make_sampler`` from a ``GenerateConfig``."""
    return make_sampler(config.strategy, config.num_beams, config.top_k, config.top_p,
                        config.temperature, config.seed)


def reset_seed(sampler):
    """Rewind a random sampler's seed generator (no-op for greedy and beam)."""
    generator = getattr(sampler, "seed_generator", None)
    if generator is None:
        return
    if not hasattr(sampler, "_vit_tf_initial_state"):
        sampler._vit_tf_initial_state = np.asarray(generator.state.numpy())
    generator.state.assign(sampler._vit_tf_initial_state)


def stop_token_ids(preprocessor, end_id, stop_tokens=()):
    """``(end_id, *ids)`` for extra stop tokens given as vocabulary entries (words or ids)."""
    ids = [end_id]
    vocab_size = preprocessor.vocabulary_size
    vocab = {t: i for i, t in enumerate(preprocessor.tokenizer.get_vocabulary())}
    vocab.update(preprocessor.chat.added)
    for token in stop_tokens:
        if isinstance(token, (int, np.integer)) or (isinstance(token, str) and token.isdigit()):
            tid = int(token)
            if not 0 <= tid < vocab_size:
                raise ValueError(f"stop token id {tid} is outside the vocabulary (size {vocab_size})")
        else:
            token = token.strip()
            tid = vocab.get(token)
            if tid is None:
                raise ValueError(
                    f"stop token {token!r} is not one vocabulary entry (a stop token must be a "
                    "single token, e.g. a word of the training texts or <|end|>)"
                )
        if tid not in ids:
            ids.append(tid)
    return tuple(ids)


def freeze_finished(next_fn, prompt_mask, stop_ids, pad_id, max_new_tokens=None,
                    min_new_tokens=0):
    """Wrap a sampler ``next`` so that a row's answer ends where the caller's limits say.

    - a row that has produced a stop token only emits ``pad_id`` after it;
    - with ``max_new_tokens`` (int or scalar tensor), a row that has produced that many tokens
      emits ``stop_ids[0]``;
    - with ``min_new_tokens`` > 0, the stop tokens cannot be chosen before that many tokens
      (Hugging Face's ``min_new_tokens``).

    A forced token gets logit 0 and every other -1e9, so its probability is 1 and a beam's
    summed log-probability stops changing once it has ended (keras-hub's beam sampler would
    otherwise keep scoring tokens after the end). The returned text is cut at the first stop
    token and after ``max_new_tokens``, so for greedy and sampling the first two rules change
    nothing the caller sees. But the forced stop ends keras-hub's loop (which runs until every
    row has a stop token, or else to the end of a buffer rounded up for fewer recompiles) once
    the longest prompt has its answer: a 12-token prompt with 64 new tokens takes 65 steps
    instead of 68. ``prompt_mask`` (batch, L) marks prompt tokens; beam search repeats rows,
    handled here.
    """
    stops = ops.convert_to_tensor(np.array(stop_ids, np.int32))

    def forced(token_id, vocab, dtype):
        return ops.cast(ops.where(ops.arange(vocab) == token_id, 0.0, -1e9)[None, :], dtype)

    def next(prompt, cache, index):
        logits, hidden, cache = next_fn(prompt, cache, index)            # (batch * beams, V)
        repeats = ops.shape(prompt)[0] // ops.shape(prompt_mask)[0]
        mask = ops.repeat(prompt_mask, repeats, axis=0)                  # (batch * beams, L)
        width, vocab = ops.shape(prompt)[1], ops.shape(logits)[-1]
        before = ops.arange(width)[None, :] < index                       # (1, L)
        is_stop = ops.any(ops.expand_dims(prompt, -1) == stops, axis=-1)  # (batch * beams, L)
        done = ops.any(is_stop & before & ops.logical_not(mask), axis=1)  # (batch * beams,)
        produced = index - ops.sum(ops.cast(mask, "int32"), axis=1)       # new tokens so far
        if min_new_tokens:
            is_stop_column = ops.any(ops.arange(vocab)[:, None] == stops[None, :], axis=1)
            early = (produced < min_new_tokens)[:, None] & is_stop_column[None, :]
            logits = ops.where(early, ops.cast(-1e9, logits.dtype), logits)
        if max_new_tokens is not None:
            full = produced >= ops.cast(max_new_tokens, "int32")          # answer complete
            logits = ops.where(full[:, None], forced(stop_ids[0], vocab, logits.dtype), logits)
        logits = ops.where(done[:, None], forced(pad_id, vocab, logits.dtype), logits)
        return logits, hidden, cache

    return next
