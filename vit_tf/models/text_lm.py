"""A VLM's language model used alone, as a text LM: greedy chat answers and perplexity.

What instruction tuning does to the LM itself is measured on text only: the task's decoder
backbone (a keras-hub ``LlamaBackbone`` / ``GemmaBackbone``; after LoRA merging a plain one)
is wrapped in the family's keras-hub ``CausalLM`` without image tokens. Prompts are formatted by
the task's ``VisionLanguagePreprocessor`` (its chat format, e.g. SmolLM2's ChatML), so the
original LM and a tuned one read exactly the same ids. It also serves the visual-prompting
baseline (``vit_tf.inference.visual_prompting``), where the image reaches the LM as text.

Example:
    >>> lm = TextLM(task.decoder.backbone, task.preprocessor, max_new_tokens=48)
    >>> lm.answer([[{"from": "human", "value": "What is the capital of France?"}]])
    ['The capital of France is Paris.']
    >>> lm.perplexity("Four score and seven years ago ...")
"""

import keras_hub
import numpy as np
from keras import ops

CAUSAL_LMS = {"LlamaBackbone": "LlamaCausalLM", "Llama3Backbone": "Llama3CausalLM",
              "GemmaBackbone": "GemmaCausalLM"}


def causal_lm(backbone, jit_compile=True):
    """The family's keras-hub ``CausalLM`` around ``backbone`` (no preprocessor), greedy;
    ``jit_compile``: XLA-compile its generation loop."""
    name = CAUSAL_LMS.get(type(backbone).__name__)
    if name is None:
        raise ValueError(f"no text LM for a {type(backbone).__name__} (known: "
                         f"{', '.join(CAUSAL_LMS)})")
    model = getattr(keras_hub.models, name)(backbone=backbone, preprocessor=None)
    model.compile(sampler="greedy", jit_compile=jit_compile)
    return model


class TextLM:
    """``backbone`` + ``preprocessor`` (chat format, tokenizer) as a text-only chat model."""

    def __init__(self, backbone, preprocessor, max_new_tokens=48, batch_size=8,
                 jit_compile=True):
        self.lm = causal_lm(backbone, jit_compile)
        self.preprocessor = preprocessor
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def answer_ids(self, conversations):
        """Greedy answers (token ids, without the stop token) to conversations that end with a
        human turn. Batches are padded to one width (one XLA shape per width)."""
        prompts = [ids for ids, _ in self.preprocessor.encode_conversations(
            conversations, add_generation_prompt=True)]
        width = -(-(max(len(p) for p in prompts) + self.max_new_tokens) // 32) * 32
        stop = self.preprocessor.stop_id
        answers = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start:start + self.batch_size]
            rows = batch + [batch[0]] * (self.batch_size - len(batch))   # a full batch
            ids = np.zeros((len(rows), width), np.int32)
            mask = np.zeros((len(rows), width), bool)
            for i, p in enumerate(rows):
                ids[i, :len(p)], mask[i, :len(p)] = p, True
            out = self.lm.generate({"token_ids": ids, "padding_mask": mask},
                                   stop_token_ids=(stop,))
            out_ids = np.asarray(out["token_ids"])
            for i, p in enumerate(batch):
                new = out_ids[i, len(p):len(p) + self.max_new_tokens].tolist()
                answers.append(new[:new.index(stop)] if stop in new else new)
        return answers

    def answer(self, conversations):
        return [self.preprocessor.detokenize(ids) for ids in self.answer_ids(conversations)]

    def perplexity(self, text):
        """exp(mean next-token cross-entropy) of ``text`` tokenized as plain text (no chat
        markers), every token after the first predicted."""
        ids = np.asarray(self.preprocessor.tokenizer(text), np.int32)[None]   # (1, L)
        logits = self.lm({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)})
        logp = ops.log_softmax(ops.cast(logits[:, :-1], "float32"), axis=-1)   # (1, L-1, V)
        target = ops.take_along_axis(logp, ids[:, 1:, None], axis=-1)
        return float(np.exp(-np.mean(np.asarray(target))))
