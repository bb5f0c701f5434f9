"""ROUGE-L as the COCO caption evaluation computes it (``pycocoevalcap.rouge.Rouge``).

For one prediction against its references: the longest common subsequence (LCS) of tokens with
each reference gives a precision ``lcs / len(prediction)`` and a recall ``lcs / len(reference)``;
the *maxima* over references (taken separately, as the reference code does) are combined into an
F-measure with ``beta = 1.2``::

    F = (1 + beta**2) * P * R / (R + beta**2 * P)      (0 when P or R is 0)

The corpus score is the mean over items. Inputs are raw strings tokenised by
:func:`vit_tf.eval.captions.tokenize_caption` (``tokenize=True``, like pycocoevalcap after its
PTBTokenizer) or split on whitespace (``tokenize=False``). One deliberate difference: the
reference code splits on single spaces, so an empty prediction becomes ``[""]``; here an empty
prediction simply scores 0.

Example:
    >>> rouge_l(["a red circle"], [["a big red circle", "two squares"]])  # doctest: +ELLIPSIS
    0.8...
"""

from typing import Sequence

from vit_tf.eval.captions import _prepare

ROUGE_BETA = 1.2


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a) * len(b)))."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_scores(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
                   beta: float = ROUGE_BETA, tokenize: bool = True) -> list[float]:
    """Per-item ROUGE-L F-measure in [0, 1]; see the module docstring for the definition."""
    hyps, refs = _prepare(predictions, references, tokenize)
    scores = []
    for hyp, item_refs in zip(hyps, refs):
        if not hyp:
            scores.append(0.0)
            continue
        lcs = [lcs_length(ref, hyp) for ref in item_refs]
        precision = max(n / len(hyp) for n in lcs)
        recall = max(n / len(ref) if ref else 0.0 for n, ref in zip(lcs, item_refs))
        if precision == 0 or recall == 0:
            scores.append(0.0)
        else:
            scores.append((1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision))
    return scores


def rouge_l(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
            beta: float = ROUGE_BETA, tokenize: bool = True) -> float:
    """Corpus ROUGE-L: the mean of :func:`rouge_l_scores` (COCO's reported "ROUGE_L")."""
    scores = rouge_l_scores(predictions, references, beta=beta, tokenize=tokenize)
    return sum(scores) / len(scores)
