"""Short-answer normalisation, exact match, and VQA accuracy as the official evaluation computes it.

VQA-style answers ("Two", "two.", "the 2") must compare equal when they mean the same thing, and
published VQA numbers come from the official ``vqaEval.py`` (github.com/GT-Vision-Lab/VQA). Its
steps are reproduced here: ``processPunctuation`` and ``processDigitArticle``, applied the way the
script's evaluation loop applies them. In the VQA v2.0 release of the script (commit a4f1afd,
2017; c4e6a0e is its Python 3 port, the revision reproduced here):

- the prediction is fully normalised (whitespace, punctuation, lowercase, number words, articles);
- the human answers are used as they are when all of them agree, and otherwise only get
  ``processPunctuation`` (no lowercasing, no number words: the dataset's answers are
  pre-normalised). So "the two" against humans who wrote "2", "two", "Two." matches only the
  "2": 0.3 with seven others saying "3".

The repository's later commit a013f00 (2021, "Fixed processing answers bug") changed this: when
the humans disagree both sides are fully normalised (the example above then scores 0.9), and when
they agree neither side is (a prediction "Yes" against ten "yes" scores 0). The tests pin both
scripts' outputs on the same cases; ``vqa_accuracy`` reproduces the 2017 ones.

``normalize_answer`` / ``exact_match`` (the shapes benchmark's exact match) apply the full
normalisation to both sides; that is our metric, not the VQA script's.

Differences from ``vqaEval.py``, both deliberate:

- The script's contraction table ("dont" -> "don't", ~170 entries) is not applied to the
  prediction; apostrophes are kept exactly as the script keeps them, so "don't" still matches
  "don't", but a prediction "dont" scores 0 where the script counts it as "don't".
- The script's period pattern ``(?!<=\\d)(\\.)(?!\\d)`` is a mistyped look-behind that in effect
  removes every period not followed by a digit, at most 32 of them (``re.UNICODE`` passed as
  the count): reproduced exactly.

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
    return _PERIOD_NOT_DECIMAL.sub("", out, count=32)   # the script's count: re.UNICODE == 32


def _process_digit_article(text: str) -> str:
    """``vqaEval.processDigitArticle`` (without its contraction table): lowercase, number
    words to digits, articles dropped, whitespace collapsed."""
    words = (_NUMBER_WORDS.get(word, word) for word in text.lower().split())
    return " ".join(word for word in words if word not in _ARTICLES)


def normalize_answer(text: str) -> str:
    """Return ``text`` normalised the way the official VQA evaluation normalises a prediction.

    Steps: newlines/tabs to spaces and strip; punctuation removed (decimal points in numbers
    kept, "1,000" -> "1000", "black-and-white" -> "black and white"); lowercase; number words
    "none"/"zero".."ten" mapped to digits; articles a/an/the dropped; whitespace collapsed.
    """
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(text))


def exact_match(prediction: str, reference: str) -> float:
    """1.0 if the two answers are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def vqa_accuracy(prediction: str, answers) -> float:
    """VQA soft accuracy of one prediction against the human answers to its question, as the
    official ``vqaEval.py`` (v2.0 release, see the module notes) computes it.

    For each of the n human answers, leave it out and score ``min(#remaining humans who gave
    the prediction / 3, 1)``; average the n scores. With the standard 10 answers this depends
    only on m, the number of matching humans: m=0 -> 0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, >=4 -> 1.
    The prediction is fully normalised (:func:`normalize_answer`); the human answers are
    compared as given when they all agree, else after the punctuation step only. At least two
    answers are needed: with one, every leave-one-out subset is empty and the metric is 0
    whatever the prediction, so that raises rather than mislead.

    Example:
        >>> vqa_accuracy("Two", ["2", "2", "two", "3", "2", "2", "2", "2", "2", "2"])
        1.0
        >>> vqa_accuracy("the two", ["2", "two", "Two.", "3", "3", "3", "3", "3", "3", "3"])
        0.3
    """
    if isinstance(answers, str) or len(answers) < 2:
        raise ValueError(f"VQA accuracy needs a list of at least 2 human answers, got {answers!r}")
    predicted = normalize_answer(prediction)
    humans = list(answers)
    if len(set(humans)) > 1:   # the humans disagree: their answers lose their punctuation
        humans = [_process_punctuation(answer) for answer in humans]
    matches = sum(answer == predicted for answer in humans)
    total = sum(min((matches - (answer == predicted)) / 3.0, 1.0) for answer in humans)
    return round(total / len(humans), 12)


def mean_vqa_accuracy(predictions, answer_lists) -> float:
    """Mean :func:`vqa_accuracy` over questions (the number VQA papers report, in [0, 1])."""
    if len(predictions) != len(answer_lists):
        raise ValueError(f"{len(predictions)} predictions but {len(answer_lists)} answer lists")
    if not predictions:
        raise ValueError("nothing to score: predictions is empty")
    return sum(vqa_accuracy(p, a) for p, a in zip(predictions, answer_lists)) / len(predictions)
