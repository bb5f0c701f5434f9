"""What the language model keeps of itself after visual instruction tuning (text only).

Two measures on fixed inputs, written as a ``metrics.json`` of the evaluation schema
(``vit_tf.eval.evaluate``) with benchmark ``lm_retention`` and an ``lm`` section:

    same_as_original   share of ``PROMPTS`` (text-only chat questions) whose greedy answer is
                       exactly the original LM's greedy answer (``reference`` answers, computed
                       once from the untouched pretrained LM with the same code and settings)
    perplexity         of ``TEXT`` (the Gettysburg Address, public domain) as plain text

Example:
    >>> reference = retention_answers(original_backbone, preprocessor)
    >>> report = evaluate_retention(tuned_task.decoder.backbone, tuned_task.preprocessor,
    ...                             reference, "runs/stage2/eval/lm_retention")
    >>> report["lm"]["same_as_original"]
"""

import hashlib
import json
import os

from vit_tf.data.chat_format import describe
from vit_tf.eval.evaluate import SCHEMA_VERSION

PROMPTS = (
    "What is the capital of France?",
    "What is 7 plus 5?",
    "Name three primary colors.",
    "Write one sentence about the ocean.",
    "What do bees make?",
    "How many days are in a week?",
    "Translate 'thank you' into Spanish.",
    "What is the opposite of hot?",
    "Give me a synonym for happy.",
    "What planet do we live on?",
    "What is water made of?",
    "Who wrote Romeo and Juliet?",
    "What is the largest animal on Earth?",
    "Finish the sentence: The early bird...",
    "What is the boiling point of water in Celsius?",
    "List two fruits that are red.",
    "What does a thermometer measure?",
    "How many legs does a spider have?",
    "What is the main language spoken in Brazil?",
    "Say hello in a friendly way.",
)
TEXT = (
    "Four score and seven years ago our fathers brought forth on this continent, a new nation, "
    "conceived in Liberty, and dedicated to the proposition that all men are created equal. "
    "Now we are engaged in a great civil war, testing whether that nation, or any nation so "
    "conceived and so dedicated, can long endure. We are met on a great battle-field of that "
    "war. We have come to dedicate a portion of that field, as a final resting place for those "
    "who here gave their lives that that nation might live. It is altogether fitting and "
    "proper that we should do this."
)
TEXT_NAME = "Gettysburg Address (first paragraphs)"
MAX_NEW_TOKENS = 48


def _conversations(prompts):
    return [[{"from": "human", "value": p}] for p in prompts]


def retention_answers(backbone, preprocessor, max_new_tokens=MAX_NEW_TOKENS, prompts=PROMPTS,
                      jit_compile=True):
    """Greedy answers of ``backbone`` to ``prompts`` (the reference, from the original LM)."""
    from vit_tf.models.text_lm import TextLM

    return TextLM(backbone, preprocessor, max_new_tokens,
                  jit_compile=jit_compile).answer(_conversations(prompts))


def evaluate_retention(backbone, preprocessor, reference, out, *, model_info=None,
                       max_new_tokens=MAX_NEW_TOKENS, prompts=PROMPTS, text=TEXT,
                       jit_compile=True, text_lm=None, log=print):
    """Score ``backbone`` against the ``reference`` answers to ``prompts`` (default the fixed
    ``PROMPTS``; tests pass their own); writes ``out/metrics.json`` and
    ``out/predictions.jsonl``; returns the report. ``text_lm``: a ``TextLM`` of ``backbone``
    to reuse (its compiled generation)."""
    from vit_tf.models.text_lm import TextLM

    if len(reference) != len(prompts):
        raise ValueError(f"{len(reference)} reference answers for {len(prompts)} prompts")
    lm = text_lm or TextLM(backbone, preprocessor, max_new_tokens, jit_compile=jit_compile)
    answers = lm.answer(_conversations(prompts))
    same = [a == r for a, r in zip(answers, reference)]
    perplexity = lm.perplexity(text)
    digest = hashlib.sha256(json.dumps([list(prompts), text]).encode()).hexdigest()
    report = {
        "schema_version": SCHEMA_VERSION, "benchmark": "lm_retention",
        "model": {"run": None, "file": None, "sha256": None, **(model_info or {})},
        "dataset": {"files": ["vit_tf.eval.lm_retention:PROMPTS,TEXT"], "format": "text only",
                    "n_items": len(prompts), "limit": None, "seed": None, "sha256": digest},
        "prompt": {"chat_format": preprocessor.chat_format,
                   "chat_template": describe(preprocessor.chat_format),
                   "prompt_template": "the fixed text-only prompts", "history": "none"},
        "decoding": {"strategy": "greedy", "max_new_tokens": max_new_tokens, "use_cache": True,
                     "jit_compile": jit_compile, "batch_size": lm.batch_size, "image_size": None},
        "lm": {"n_prompts": len(prompts), "same_as_original": sum(same) / len(same),
               "perplexity": perplexity,
               "perplexity_text": TEXT_NAME if text == TEXT else "given text"},
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out, "predictions.jsonl"), "w") as f:
        for p, a, r, s in zip(prompts, answers, reference, same):
            f.write(json.dumps({"prompt": p, "prediction": a, "original": r, "same": s}) + "\n")
    log(f"lm retention: {sum(same)}/{len(same)} answers as the original LM; perplexity "
        f"{perplexity:.2f} on the {TEXT_NAME}")
    return report
