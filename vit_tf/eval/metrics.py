"""Evaluation metrics in one import: VQA answer matching and COCO caption scores.

Pure Python (no TensorFlow), so metrics can be computed and tested anywhere. The definitions
live in :mod:`vit_tf.eval.answers` (VQA normalisation, exact match, VQA soft accuracy),
:mod:`vit_tf.eval.captions` (tokenisation, BLEU, CIDEr-D) and :mod:`vit_tf.eval.rouge`
(ROUGE-L); each documents how they relate to the
reference implementations whose numbers papers report.

Example:
    >>> from vit_tf.eval.metrics import cider_d, corpus_bleu, exact_match
    >>> exact_match("Two", "2")
    1.0
"""

from vit_tf.eval.answers import exact_match, mean_vqa_accuracy, normalize_answer, vqa_accuracy
from vit_tf.eval.captions import (
    bleu_scores,
    cider_d,
    cider_d_scores,
    corpus_bleu,
    tokenize_caption,
)
from vit_tf.eval.rouge import rouge_l, rouge_l_scores

__all__ = [
    "bleu_scores",
    "cider_d",
    "cider_d_scores",
    "corpus_bleu",
    "exact_match",
    "mean_vqa_accuracy",
    "normalize_answer",
    "rouge_l",
    "rouge_l_scores",
    "tokenize_caption",
    "vqa_accuracy",
]
