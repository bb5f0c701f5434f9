"""Evaluation metrics in one import: VQA answer matching and COCO caption scores.

Pure Python (no TensorFlow), so metrics can be computed and tested anywhere. The definitions
live in :mod:`vit_tf.eval.answers` (VQA normalisation, exact match) and
:mod:`vit_tf.eval.captions` (tokenisation, BLEU, CIDEr-D); both document how they relate to the
reference implementations whose numbers papers report.

Example:
    >>> from vit_tf.eval.metrics import cider_d, corpus_bleu, exact_match
    >>> exact_match("Two", "2")
    1.0
"""

from vit_tf.eval.answers import exact_match, normalize_answer
from vit_tf.eval.captions import (
    bleu_scores,
    cider_d,
    cider_d_scores,
    corpus_bleu,
    tokenize_caption,
)

__all__ = [
    "bleu_scores",
    "cider_d",
    "cider_d_scores",
    "corpus_bleu",
    "exact_match",
    "normalize_answer",
    "tokenize_caption",
]
