"""Batched and streaming, KV-cached generation with every decoding strategy.

The decoding loop is keras-hub's sampler (``keras_hub.samplers``, chosen by
``vit_tf.models.samplers.make_sampler``): it writes each new token into a right-padded prompt
buffer, keeps prompt tokens where the prompt mask is set, and stops when every row has produced
a stop token (``<|end|>`` plus ``stop_tokens``). We supply ``next(prompt, cache, index)``, which
returns the logits for text position ``index`` from the token at ``index - 1``:

    cached:   one token through the decoder, reading/writing the KV cache (prefilled once with
              the image tokens and the prompt);
    uncached: the whole sequence through the decoder every step (the reference the cache is
              tested against).

``generate`` runs the whole loop as one (optionally XLA-compiled) graph; ``stream`` runs the
same steps one at a time and yields each token as it is produced (greedy, top-k, top-p; with a
fixed seed it gives exactly the tokens ``generate`` gives). Beam search ranks whole sequences,
so it is batched only; rows are grouped by prompt length because keras-hub's beam sampler would
score the prompt tokens of longer prompts as if they were choices.

Usually reached through the task (``VisionLanguageModel.generate`` / ``generate_stream``), which
keeps one ``Generator`` per setting; the preprocessor (``vit_tf.data.preprocessor``) writes the
prompts and reads the answers back, as in training.

Example:
    >>> gen = Generator(model, max_new_tokens=16, sampler="top_p")
    >>> gen.generate(images, [[{"from": "human", "value": "What colour is the circle?"}]])
    ['red']
    >>> for event in gen.stream(images[:1], [[{"from": "human", "value": "Describe it."}]]):
    ...     print(event.text_deltas[0], end="", flush=True)
"""

from dataclasses import dataclass

import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from vit_tf.models.samplers import freeze_finished, make_sampler, reset_seed, sampler_from_config
from vit_tf.models.samplers import stop_token_ids as _stop_token_ids


def round_up(n, multiple=8):
    return int(-(-n // multiple) * multiple)


@dataclass
class StreamEvent:
    """One decoding step of ``Generator.stream`` (one entry per batch row).

    token_ids:   the new token of each row, or None (row still in its prompt, or finished)
    text_deltas: text to append to each row's answer ("" when nothing new)
    done:        the row has stopped (stop token or ``max_new_tokens``)
    """

    step: int
    token_ids: list
    text_deltas: list
    done: list


class Generator:
    """Generation for a ``VisionLanguageModel`` with any keras-hub sampler.

    Args:
        model: a ``VisionLanguageModel``.
        preprocessor: its ``VisionLanguagePreprocessor`` (default ``model.preprocessor``).
        max_new_tokens: tokens generated at most per answer.
        use_cache: KV-cached decoding (default) or full recomputation each step.
        jit_compile: compile the whole loop with XLA.
        sampler: a strategy name ("greedy", "beam", "top_k", "top_p") or a keras-hub sampler.
        stop_tokens: extra stop tokens (vocabulary entries or ids); ``<|end|>`` always stops.
        min_new_tokens: no stop token before this many new tokens (Hugging Face's
            ``min_new_tokens``; e.g. = ``max_new_tokens`` for fixed-length benchmarks).
    """

    def __init__(self, model, preprocessor=None, max_new_tokens=48, use_cache=True,
                 jit_compile=True, sampler="greedy", stop_tokens=(), min_new_tokens=0):
        self.model = model
        self.preprocessor = preprocessor or model.preprocessor
        if self.preprocessor is None:
            raise ValueError("generation needs a preprocessor: build the model with "
                             "preprocessor=VisionLanguagePreprocessor(...) or pass one")
        self.max_new_tokens = max_new_tokens
        if not 0 <= min_new_tokens <= max_new_tokens:
            raise ValueError(f"min_new_tokens must be in [0, max_new_tokens={max_new_tokens}], "
                             f"got {min_new_tokens}")
        self.min_new_tokens = min_new_tokens
        self.use_cache = use_cache
        self.pad_id = self.preprocessor.pad_id
        self.sampler = make_sampler(sampler) if isinstance(sampler, str) else sampler
        self.stop_ids = _stop_token_ids(self.preprocessor, self.preprocessor.stop_id, stop_tokens)
        # Text positions left after the decoder's prefix (image tokens, resampled queries or none).
        self.max_text_length = model.decoder.max_sequence_length - model.num_prefix_tokens
        self._compiled = tf.function(self._generate_ids, jit_compile=jit_compile, reduce_retracing=True)
        self._prefill = tf.function(self._start, jit_compile=jit_compile, reduce_retracing=True)
        self._step = tf.function(self._one_step, jit_compile=jit_compile, reduce_retracing=True)

    @classmethod
    def from_config(cls, model, config, preprocessor=None, **kwargs):
        """From a ``GenerateConfig`` (strategy, beams, top-k/p, temperature, seed, stop tokens)."""
        stops = tuple(s for s in config.stop_tokens.split(",") if s.strip())
        kwargs.setdefault("max_new_tokens", config.max_new_tokens)
        kwargs.setdefault("use_cache", config.use_cache)
        kwargs.setdefault("jit_compile", config.jit_compile)
        return cls(model, preprocessor, sampler=sampler_from_config(config), stop_tokens=stops,
                   **kwargs)

    @property
    def is_beam(self):
        return isinstance(self.sampler, keras_hub.samplers.BeamSampler)

    # ----- the model side of the loop -----

    def _start(self, images, token_ids, start_index):
        """Uncached: the projected image tokens. Cached: a dict holding the prefilled ``cache``,
        the ``image_tokens`` (read fusions use them at every step) and, for a prefix-LM decoder,
        each prompt's ``prefix_lengths``. Beam search repeats every entry per beam."""
        image_tokens = self.model.encode_images(images)  # (batch, image_tokens, hidden_dim)
        if not self.use_cache:
            return image_tokens
        cache = self.model.init_cache(ops.shape(token_ids)[0], ops.shape(token_ids)[1])
        # The prefill consumes the prompt up to the first token fed by the loop (index - 1):
        # KV caches are position-indexed anyway, state caches (LSTM) must stop there.
        consumed = ops.arange(ops.shape(token_ids)[1])[None, :] < start_index - 1  # (1, L)
        consumed = ops.broadcast_to(consumed, ops.shape(token_ids))
        _, cache = self.model.prefill(images, token_ids, cache, image_tokens=image_tokens,
                                      padding_mask=consumed)
        state = {"cache": cache, "image_tokens": image_tokens}
        lengths = self.model.prefix_lengths(token_ids)  # (batch,) or None
        if lengths is not None:
            state["prefix_lengths"] = lengths
        return state

    def _next_fn(self, state):
        if self.use_cache:
            def next(prompt, state, index):
                token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])  # (batch, 1)
                logits, cache = self.model.call_with_cache(
                    token, state["cache"], index - 1, image_tokens=state["image_tokens"],
                    prefix_lengths=state.get("prefix_lengths"),
                )
                return logits[:, 0, :], None, {**state, "cache": cache}

            return next, state
        image_tokens = state

        def next(prompt, cache, index):
            repeats = ops.shape(prompt)[0] // ops.shape(image_tokens)[0]  # beams repeat rows
            tokens = ops.repeat(image_tokens, repeats, axis=0)
            logits = self.model.decoder(prompt, image_tokens=tokens)  # (batch, L, vocab)
            return ops.take(logits, index - 1, axis=1), None, cache

        return next, None

    def _next_cached(self, images, token_ids, start_index):
        return self._next_fn(self._start(images, token_ids, start_index))

    def _next_uncached(self, images, token_ids):
        return self._next_fn(self.model.encode_images(images))

    def _generate_ids(self, images, token_ids, prompt_mask, start_index, max_new_tokens=None):
        """(batch, L) prompt buffer with the answers written; ``max_new_tokens`` (int or scalar
        tensor, default the generator's) ends each row there with a stop token."""
        if self.use_cache:
            next, cache = self._next_cached(images, token_ids, start_index)
        else:
            next, cache = self._next_uncached(images, token_ids)
        next = self._limited(next, prompt_mask, max_new_tokens)
        return self.sampler(
            next, token_ids, cache=cache, index=start_index, mask=prompt_mask,
            stop_token_ids=self.stop_ids,
        )

    def _limited(self, next, prompt_mask, max_new_tokens=None):
        """``next`` with the answer limits (``samplers.freeze_finished``)."""
        if max_new_tokens is None:
            max_new_tokens = self.max_new_tokens
        return freeze_finished(next, prompt_mask, self.stop_ids, self.pad_id, max_new_tokens,
                               self.min_new_tokens)

    def _one_step(self, prompt, state, index, prompt_mask):
        """One step of the sampler's loop body: (prompt with token ``index`` written, state)."""
        next, cache = self._next_fn(state)
        next = self._limited(next, prompt_mask)
        logits, _, cache = next(prompt, cache, index)
        token = ops.cast(self.sampler.get_next_token(self.sampler.compute_probabilities(logits)),
                         prompt.dtype)
        token = ops.where(prompt_mask[:, index], prompt[:, index], token)
        prompt = ops.slice_update(prompt, [0, index], token[:, None])
        return prompt, (cache if self.use_cache else state)

    # ----- prompts in, ids and text out -----

    def prompt_ids(self, conversations):
        """The preprocessor's prompt ids of each conversation (ending with a human turn)."""
        for i, c in enumerate(conversations):  # (unknown roles: named by the preprocessor)
            if not c or c[-1].get("from") == "gpt":
                raise ValueError(f"conversation {i}: a generation prompt must end with a human turn")
        return [ids for ids, _ in self.preprocessor.encode_conversations(
            conversations, add_generation_prompt=True)]

    def encode_prompts(self, conversations):
        """Right-padded prompt buffer: token ids (batch, L), prompt mask (batch, L), lengths."""
        pairs = self.prompt_ids(conversations)
        lengths = np.array([len(ids) for ids in pairs], np.int32)
        width = round_up(int(lengths.max()), 16) + self.max_new_tokens
        if int(lengths.max()) >= self.max_text_length:
            raise ValueError(
                f"prompt of {int(lengths.max())} tokens does not fit the model's text context of "
                f"{self.max_text_length} tokens"
            )
        # Never fewer than max_new_tokens without a word: a prompt that leaves less room than
        # that in the context would silently get a shorter answer.
        short = np.flatnonzero(lengths + self.max_new_tokens > self.max_text_length)
        if len(short):
            i, n = int(short[0]), int(lengths[short[0]])
            raise ValueError(
                f"prompt {i} is {n} tokens: with max_new_tokens={self.max_new_tokens} it needs "
                f"{n + self.max_new_tokens} positions, more than the model's text context of "
                f"{self.max_text_length}; shorten the prompt or set max_new_tokens <= "
                f"{self.max_text_length - n}")
        width = min(width, self.max_text_length)
        token_ids = np.full((len(pairs), width), self.pad_id, np.int32)
        for i, ids in enumerate(pairs):
            token_ids[i, : len(ids)] = ids
        mask = np.arange(width)[None, :] < lengths[:, None]
        return token_ids, mask, lengths

    def _cut(self, row, n):
        new = row[n : n + self.max_new_tokens].tolist()
        for i, tid in enumerate(new):
            if tid in self.stop_ids:
                return new[:i]
        return new

    def _run(self, images, token_ids, mask, lengths):
        reset_seed(self.sampler)
        out = self._compiled(
            tf.convert_to_tensor(images, tf.float32), tf.constant(token_ids), tf.constant(mask),
            tf.constant(int(lengths.min()), tf.int32),
        )
        return [self._cut(row, n) for row, n in zip(np.asarray(out), lengths)]

    def pixels(self, images):
        """The model's (batch, S, S, 3) float32 input from any images the preprocessor accepts
        (already converted float32 batches pass through unchanged)."""
        size = self.preprocessor.image_size
        if (isinstance(images, np.ndarray) and images.dtype == np.float32
                and images.shape[1:] == (size, size, 3)):
            return images
        pixels = np.asarray(self.preprocessor.convert_images(images))
        return pixels[None] if pixels.ndim == 3 else pixels

    def generate_ids(self, images, conversations):
        """-> list of generated token-id lists (without the prompt and the stop token)."""
        images = self.pixels(images)   # an unreadable image is named before any prompt check
        token_ids, mask, lengths = self.encode_prompts(conversations)
        if len(images) != len(conversations):
            raise ValueError(f"{len(images)} images but {len(conversations)} conversations")
        if not self.is_beam:
            return self._run(images, token_ids, mask, lengths)
        results = [None] * len(lengths)
        for n in sorted(set(lengths.tolist())):  # beam search: one group per prompt length
            rows = np.flatnonzero(lengths == n)
            for i, ids in zip(rows, self._run(images[rows], token_ids[rows], mask[rows], lengths[rows])):
                results[i] = ids
        return results

    def detokenize(self, ids):
        return self.preprocessor.detokenize(ids)

    def generate(self, images, conversations):
        """Answer the last human turn of each conversation about its image -> list of str."""
        return [self.detokenize(ids) for ids in self.generate_ids(images, conversations)]

    def stream(self, images, conversations):
        """Yield a ``StreamEvent`` per decoding step, as the tokens are produced (batched).

        Same tokens as ``generate_ids`` for greedy, top-k and top-p (the same sampler steps,
        the same seed); beam search cannot stream (its best sequence is known only at the end).
        """
        if self.is_beam:
            raise ValueError("beam search cannot stream: its best sequence is known only at the "
                             "end; use generate() or a greedy/top_k/top_p strategy")
        images = self.pixels(images)
        token_ids, mask, lengths = self.encode_prompts(conversations)
        reset_seed(self.sampler)
        batch, width = token_ids.shape
        prompt, mask_t = tf.constant(token_ids), tf.constant(mask)
        state = self._prefill(tf.convert_to_tensor(images, tf.float32), prompt,
                              tf.constant(int(lengths.min()), tf.int32))
        produced = [[] for _ in range(batch)]
        texts = [""] * batch
        done = [False] * batch
        for step, index in enumerate(range(int(lengths.min()), width)):
            prompt, state = self._step(prompt, state, tf.constant(index, tf.int32), mask_t)
            column = prompt[:, index].numpy()
            new_ids, deltas = [None] * batch, [""] * batch
            for row in range(batch):
                if done[row] or index < lengths[row]:
                    continue
                tid = int(column[row])
                if tid in self.stop_ids:
                    done[row] = True
                    continue
                produced[row].append(tid)
                new_ids[row] = tid
                text = self.detokenize(produced[row])
                deltas[row] = text[len(texts[row]):] if text.startswith(texts[row]) else text
                texts[row] = text
                done[row] = len(produced[row]) >= self.max_new_tokens
            yield StreamEvent(step, new_ids, deltas, list(done))
            if all(done):
                return

    def stream_text(self, image, conversation):
        """Text pieces of one answer as they are produced (``image`` (S, S, 3))."""
        for event in self.stream([image], [conversation]):
            if event.text_deltas[0]:
                yield event.text_deltas[0]
