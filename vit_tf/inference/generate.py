"""Batched, compiled, KV-cached generation.

The decoding loop is keras-hub's sampler (``keras_hub.samplers``): it writes each new token into
a right-padded prompt buffer, keeps prompt tokens where the prompt mask is set, and stops when
every row has produced ``<|end|>``. We supply ``next(prompt, cache, index)``, which returns the
logits for text position ``index`` from the token at ``index - 1``:

    cached:   one token through the decoder, reading/writing the KV cache (prefilled once with
              the image tokens and the prompt);
    uncached: the whole sequence through the decoder every step (the reference the cache is
              tested against).

Example:
    >>> gen = Generator(model, tokenizer, max_new_tokens=16)
    >>> gen.generate(images, [[{"from": "human", "value": "What colour is the circle?"}]])
    ['red']
"""

import re

import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from vit_tf.data.pipeline import round_up
from vit_tf.data.template import prompt_segments
from vit_tf.data.tokenizer import SegmentEncoder

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:])")


class Generator:
    """Greedy (or any keras-hub sampler) generation for a ``VisionLanguageModel``.

    Args:
        model: a ``VisionLanguageModel``.
        tokenizer: its WordPiece tokenizer.
        max_new_tokens: tokens generated at most per answer.
        use_cache: KV-cached decoding (default) or full recomputation each step.
        jit_compile: compile the whole loop with XLA.
        sampler: a keras-hub sampler name or instance ("greedy" by default).
    """

    def __init__(self, model, tokenizer, max_new_tokens=48, use_cache=True, jit_compile=True,
                 sampler="greedy"):
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.use_cache = use_cache
        self.encoder = SegmentEncoder(tokenizer)
        self.sampler = keras_hub.samplers.get(sampler)
        self.max_text_length = model.decoder.max_sequence_length - model.num_image_tokens
        self._compiled = tf.function(self._generate_ids, jit_compile=jit_compile, reduce_retracing=True)

    def _next_cached(self, images, token_ids, start_index):
        image_tokens = self.model.encode_images(images)
        cache = self.model.init_cache(ops.shape(token_ids)[0], ops.shape(token_ids)[1])
        # The prefill consumes the prompt up to the first token fed by the loop (index - 1):
        # KV caches are position-indexed anyway, state caches (LSTM) must stop there.
        consumed = ops.arange(ops.shape(token_ids)[1])[None, :] < start_index - 1  # (1, L)
        consumed = ops.broadcast_to(consumed, ops.shape(token_ids))
        _, cache = self.model.prefill(images, token_ids, cache, image_tokens=image_tokens,
                                      padding_mask=consumed)

        def next(prompt, cache, index):
            token = ops.slice(prompt, [0, index - 1], [ops.shape(prompt)[0], 1])  # (batch, 1)
            logits, cache = self.model.call_with_cache(token, cache, index - 1,
                                                       image_tokens=image_tokens)
            return logits[:, 0, :], None, cache

        return next, cache

    def _next_uncached(self, images, token_ids):
        image_tokens = self.model.encode_images(images)

        def next(prompt, cache, index):
            logits = self.model.decoder(prompt, image_tokens=image_tokens)  # (batch, L, vocab)
            return ops.take(logits, index - 1, axis=1), None, cache

        return next, None

    def _generate_ids(self, images, token_ids, prompt_mask, start_index):
        if self.use_cache:
            next, cache = self._next_cached(images, token_ids, start_index)
        else:
            next, cache = self._next_uncached(images, token_ids)
        return self.sampler(
            next, token_ids, cache=cache, index=start_index, mask=prompt_mask,
            stop_token_ids=(self.encoder.end_id,),
        )

    def encode_prompts(self, conversations):
        """Right-padded prompt buffer: token ids (batch, L), prompt mask (batch, L), lengths."""
        pairs = self.encoder.encode([prompt_segments(c) for c in conversations])
        lengths = np.array([len(ids) for ids, _ in pairs], np.int32)
        width = round_up(int(lengths.max()), 16) + self.max_new_tokens
        if int(lengths.max()) >= self.max_text_length:
            raise ValueError(
                f"prompt of {int(lengths.max())} tokens does not fit the model's text context of "
                f"{self.max_text_length} tokens"
            )
        width = min(width, self.max_text_length)
        token_ids = np.full((len(pairs), width), self.encoder.pad_id, np.int32)
        for i, (ids, _) in enumerate(pairs):
            token_ids[i, : len(ids)] = ids
        mask = np.arange(width)[None, :] < lengths[:, None]
        return token_ids, mask, lengths

    def generate_ids(self, images, conversations):
        """-> list of generated token-id lists (without the prompt and the end token)."""
        token_ids, mask, lengths = self.encode_prompts(conversations)
        out = self._compiled(
            tf.convert_to_tensor(images, tf.float32), tf.constant(token_ids), tf.constant(mask),
            tf.constant(int(lengths.min()), tf.int32),
        )
        out = np.asarray(out)
        results = []
        for row, n in zip(out, lengths):
            new = row[n : n + self.max_new_tokens].tolist()
            if self.encoder.end_id in new:
                new = new[: new.index(self.encoder.end_id)]
            results.append(new)
        return results

    def detokenize(self, ids):
        if not ids:
            return ""
        text = self.tokenizer.detokenize(tf.constant([ids], tf.int32))[0]
        text = text.numpy().decode("utf-8") if hasattr(text, "numpy") else str(text)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()

    def generate(self, images, conversations):
        """Answer the last human turn of each conversation about its image -> list of str."""
        return [self.detokenize(ids) for ids in self.generate_ids(images, conversations)]
