"""Caption metrics as the COCO caption evaluation computes them: BLEU-1..4 and CIDEr-D.

Captioning papers report the scorers of ``pycocoevalcap`` (github.com/tylin/coco-caption), so
these functions reproduce its arithmetic, quirks included, and the tests pin them to values from
``pycocoevalcap`` 1.2 and NLTK. Pure Python: no TensorFlow, no Java.

Inputs are raw strings: ``predictions[i]`` is scored against the list ``references[i]``. With
``tokenize=True`` (default) every string goes through :func:`tokenize_caption`; with
``tokenize=False`` strings are split on whitespace, which is what ``pycocoevalcap``'s scorers do
with the already tokenised text they are given.

Example:
    >>> predictions = ["A cat sits on a mat.", "A dog runs."]
    >>> references = [["A cat is sitting on the mat."], ["A dog is running.", "A brown dog runs."]]
    >>> bleu_4 = corpus_bleu(predictions, references)
    >>> cider = cider_d(predictions, references)
"""

import math
import re
from collections import Counter
from typing import Literal, Sequence

_CLITIC = re.compile(r"(n't|'(?:s|re|ve|ll|d|m))\b")
_TOKEN = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:[-.,:/'][^\W_]+)*")


def tokenize_caption(text: str) -> list[str]:
    """Split a caption into lowercase word tokens, dropping punctuation.

    A small stand-in for coco-caption's Stanford PTBTokenizer (``-lowerCase``, punctuation tokens
    removed) that agrees with it on ordinary captions: clitics split off ("dog's" -> "dog 's",
    "isn't" -> "is n't"), words joined by ``- . , : / '`` kept whole ("black-and-white", "3.5",
    "2,000", "10:30", "o'clock"), other punctuation dropped. It differs on rarer input:
    PTB keeps a trailing abbreviation period ("u.s." vs our "u.s"), keeps symbols as tokens
    ("&", "%", "$", "#") where we drop them, splits "cannot"/"gonna" ("can not", "gon na"), and
    -- with ``-lowerCase`` -- leaves brackets in as "-lrb-"/"-rrb-" tokens that we drop.

    Example:
        >>> tokenize_caption("The dog's ball isn't red; it's BLUE!")
        ['the', 'dog', "'s", 'ball', 'is', "n't", 'red', 'it', "'s", 'blue']
    """
    text = _CLITIC.sub(r" \1", text.lower().replace("\u2019", "'"))
    return _TOKEN.findall(text)


def _prepare(predictions, references, tokenize: bool):
    """Validate the inputs and turn every caption into a token list."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("nothing to score: predictions is empty")
    for index, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ValueError(f"item {index}: references must be a non-empty list of strings, "
                             f"got {refs!r}")
    split = tokenize_caption if tokenize else str.split
    return [split(p) for p in predictions], [[split(r) for r in refs] for refs in references]


def _ngrams(tokens: list[str], max_n: int) -> Counter:
    """Counts of every 1..max_n-gram, in the order pycocoevalcap's ``precook`` visits them."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_n + 1)
                   for i in range(len(tokens) - n + 1))


def bleu_scores(predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4,
                *, style: Literal["coco", "nltk"] = "coco", tokenize: bool = True) -> list[float]:
    """Corpus-level BLEU-1..BLEU-``max_n`` (clipped n-gram counts and lengths summed over items).

    The reference length of an item is the reference closest in length to the prediction (the
    shorter on a tie); the brevity penalty uses the corpus sums. Two styles:

    - ``"coco"`` mirrors ``pycocoevalcap.bleu.Bleu``: each precision is
      ``(matches + 1e-15) / (candidates + 1e-9)``, so a corpus with no matching 4-gram gets a small
      positive BLEU-4 (about ``(1e-15 / candidates) ** 0.25`` times the rest) instead of 0.
    - ``"nltk"`` mirrors ``nltk.translate.bleu_score.corpus_bleu`` without smoothing: exact
      ratios, each item adds at least 1 to every candidate count (NLTK's ``max(1, .)``, which
      matters when a prediction is shorter than n), and 0 when some order has no match.

    On ordinary corpora the two agree to about 1e-9.
    """
    if style not in ("coco", "nltk"):
        raise ValueError(f"style must be 'coco' or 'nltk', got {style!r}")
    hyps, refs = _prepare(predictions, references, tokenize)
    matches, candidates = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    min_candidates = 1 if style == "nltk" else 0
    for hyp, item_refs in zip(hyps, refs):
        max_ref_counts = Counter()
        for ref in item_refs:
            max_ref_counts |= _ngrams(ref, max_n)  # per n-gram maximum over the references
        for ngram, count in _ngrams(hyp, max_n).items():
            matches[len(ngram) - 1] += min(count, max_ref_counts[ngram])
        for k in range(max_n):
            candidates[k] += max(min_candidates, len(hyp) - k)
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in item_refs), key=lambda n: (abs(n - len(hyp)), n))
    if style == "coco":
        return _coco_bleu(matches, candidates, hyp_len, ref_len)
    return _nltk_bleu(matches, candidates, hyp_len, ref_len)


def _coco_bleu(matches, candidates, hyp_len, ref_len) -> list[float]:
    """``BleuScorer.compute_score`` arithmetic, epsilons included."""
    tiny, small = 1e-15, 1e-9
    scores, product = [], 1.0
    for k, (match, candidate) in enumerate(zip(matches, candidates)):
        product *= (match + tiny) / (candidate + small)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (hyp_len + tiny) / (ref_len + small)
    penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    return [score * penalty for score in scores]


def _nltk_bleu(matches, candidates, hyp_len, ref_len) -> list[float]:
    """NLTK ``corpus_bleu`` arithmetic with uniform weights 1/n and no smoothing."""
    if hyp_len == 0:
        return [0.0] * len(matches)
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    scores = []
    for n in range(1, len(matches) + 1):
        if any(match == 0 for match in matches[:n]):
            scores.append(0.0)
            continue
        log_precisions = (math.log(m / c) / n for m, c in zip(matches[:n], candidates[:n]))
        scores.append(penalty * math.exp(math.fsum(log_precisions)))
    return scores


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4,
                *, style: Literal["coco", "nltk"] = "coco", tokenize: bool = True) -> float:
    """Corpus BLEU-``max_n`` (BLEU-4 by default) in [0, 1]; see :func:`bleu_scores`."""
    return bleu_scores(predictions, references, max_n, style=style, tokenize=tokenize)[-1]


def cider_d_scores(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
                   n: int = 4, sigma: float = 6.0, tokenize: bool = True) -> list[float]:
    """Per-item CIDEr-D, computed as ``pycocoevalcap.cider.CiderScorer`` does.

    For each 1..n-gram order: tf-idf vectors with idf ``log(#items) - log(max(1, df))`` where df
    counts the items whose references contain the n-gram (so the idf comes from the evaluated
    corpus itself), a clipped cosine ``sum(min(w_hyp, w_ref) * w_ref) / (|hyp| |ref|)``, times a
    Gaussian length penalty ``exp(-delta**2 / (2 sigma**2))``; averaged over orders and over
    references, times 10.

    Kept quirks of the reference code: ``delta`` is the difference in *bigram* counts (the
    scorer counts length inside its n == 2 branch), which equals the word-length difference
    except against an empty reference; and a one-item corpus scores 0, because every idf is
    ``log(1) - log(1) = 0``. An empty prediction scores 0.
    """
    hyps, refs = _prepare(predictions, references, tokenize)
    hyp_counts = [_ngrams(hyp, n) for hyp in hyps]
    ref_counts = [[_ngrams(ref, n) for ref in item_refs] for item_refs in refs]
    doc_freq = Counter(ngram for item in ref_counts for ngram in set().union(*item))
    log_items = math.log(len(refs))

    def tfidf(counts: Counter):
        vec, norm, length = [{} for _ in range(n)], [0.0] * n, 0
        for ngram, term_freq in counts.items():
            order = len(ngram) - 1
            weight = term_freq * (log_items - math.log(max(1.0, doc_freq[ngram])))
            vec[order][ngram] = weight
            norm[order] += weight ** 2
            if order == 1:
                length += term_freq
        return vec, [math.sqrt(x) for x in norm], length

    def similarity(hyp, ref) -> float:
        (vec_h, norm_h, len_h), (vec_r, norm_r, len_r) = hyp, ref
        penalty = math.exp(-float(len_h - len_r) ** 2 / (2 * sigma ** 2))
        total = 0.0
        for order in range(n):
            val = sum(min(w, vec_r[order].get(g, 0.0)) * vec_r[order].get(g, 0.0)
                      for g, w in vec_h[order].items())
            if norm_h[order] != 0 and norm_r[order] != 0:
                val /= norm_h[order] * norm_r[order]
            total += val * penalty
        return total / n

    scores = []
    for hyp, item_refs in zip(hyp_counts, ref_counts):
        hyp_vec = tfidf(hyp)
        sims = [similarity(hyp_vec, tfidf(ref)) for ref in item_refs]
        scores.append(10.0 * sum(sims) / len(sims))
    return scores


def cider_d(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
            n: int = 4, sigma: float = 6.0, tokenize: bool = True) -> float:
    """Corpus CIDEr-D: the mean of :func:`cider_d_scores` (the number COCO reports as CIDEr)."""
    scores = cider_d_scores(predictions, references, n=n, sigma=sigma, tokenize=tokenize)
    return sum(scores) / len(scores)
