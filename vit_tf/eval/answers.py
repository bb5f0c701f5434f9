"""Short-answer normalisation and exact match, following the official VQA evaluation script.

VQA-style answers ("Two", "two.", "the 2") must compare equal when they mean the same thing, and
every published VQA number uses the same normalisation: the ``processPunctuation`` and
``processDigitArticle`` steps of ``vqaEval.py`` (github.com/GT-Vision-Lab/VQA, the Python 3
revision c4e6a0e; an older Python 2 revision strips ``:`` and ``'`` instead of ``{ } - !``).
This module reproduces those steps so our accuracies are comparable with the literature; the
tests pin its output to that script's on a list of answers.

Differences from ``vqaEval.py``, all deliberate:

- The script's contraction table ("dont" -> "don't", ~170 entries) is not applied; apostrophes
  are kept exactly as the script keeps them, so "don't" still matches "don't".
- The script fully normalises the prediction but the human answers only with
  ``processPunctuation`` (they are pre-normalised); here both sides get the full treatment.
- The script's period pattern ``(?!<=\\d)(\\.)(?!\\d)`` is a mistyped look-behind that in effect
  removes every period not followed by a digit, capped at 32 by passing ``re.UNICODE`` as the
  count; we remove every period not followed by a digit, with no cap.

Example:
    >>> normalize_answer("The Two dogs!")
    '2 dogs'
    >>> exact_match("Two.", "2")
    1.0
"""

import re

# Marks the script deletes (next to a space, or anywhere once the text holds "1,000") or else
# replaces by a space. Periods, apostrophes and colons are not in the script's list.
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                ">", "<", "@", "`", ",", "?", "!")
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"\.(?!\d)")
# "none" -> "0" is in the script's table too: "how many ...? none" scores as "0".
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                 "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})


def _process_punctuation(text: str) -> str:
    """Drop or space out punctuation exactly as ``vqaEval.processPunctuation`` decides."""
    has_number_comma = _COMMA_IN_NUMBER.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if touches_space or has_number_comma else " ")
    return _PERIOD_NOT_DECIMAL.sub("", out)


def normalize_answer(text: str) -> str:
    """Return ``text`` normalised the way the official VQA evaluation compares answers.

    Steps: newlines/tabs to spaces and strip; punctuation removed (decimal points in numbers
    kept, "1,000" -> "1000", "black-and-white" -> "black and white"); lowercase; number words
    "none"/"zero".."ten" mapped to digits; articles a/an/the dropped; whitespace collapsed.
    """
    text = text.replace("\n", " ").replace("\t", " ").strip()
    text = _process_punctuation(text)
    words = (_NUMBER_WORDS.get(word, word) for word in text.lower().split())
    return " ".join(word for word in words if word not in _ARTICLES)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the two answers are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def vqa_accuracy(prediction: str, answers) -> float:
    """VQA soft accuracy of one prediction against the human answers to its question.

    The official metric (``vqaEval.py`` of github.com/GT-Vision-Lab/VQA): for each of the n
    human answers, leave it out and score ``min(#remaining humans who gave the prediction / 3,
    1)``; average the n scores. With the standard 10 answers this is the mean over the 10
    subsets of 9, and depends only on m, the number of humans matching the prediction:
    m=0 -> 0, m=1 -> 0.3, m=2 -> 0.6, m=3 -> 0.9, m>=4 -> 1. Answers are compared after
    :func:`normalize_answer` (both sides; see the module notes for how that differs from the
    script). At least two answers are needed: with one, every leave-one-out subset is empty and
    the metric is 0 whatever the prediction, so that raises rather than mislead.

    Example:
        >>> vqa_accuracy("Two", ["2", "2", "two", "3", "2", "2", "2", "2", "2", "2"])
        1.0
        >>> vqa_accuracy("3", ["2", "2", "two", "3", "2", "2", "2", "2", "2", "2"])
        0.3
    """
    if isinstance(answers, str) or len(answers) < 2:
        raise ValueError(f"VQA accuracy needs a list of at least 2 human answers, got {answers!r}")
    predicted = normalize_answer(prediction)
    matches = sum(normalize_answer(answer) == predicted for answer in answers)
    total = 0.0
    for answer in answers:
        left_out_matches = normalize_answer(answer) == predicted
        total += min((matches - left_out_matches) / 3.0, 1.0)
    return round(total / len(answers), 12)


def mean_vqa_accuracy(predictions, answer_lists) -> float:
    """Mean :func:`vqa_accuracy` over questions (the number VQA papers report, in [0, 1])."""
    if len(predictions) != len(answer_lists):
        raise ValueError(f"{len(predictions)} predictions but {len(answer_lists)} answer lists")
    if not predictions:
        raise ValueError("nothing to score: predictions is empty")
    return sum(vqa_accuracy(p, a) for p, a in zip(predictions, answer_lists)) / len(predictions)
