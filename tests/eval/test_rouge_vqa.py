"""ROUGE-L and VQA soft accuracy pinned to their reference implementations.

- ROUGE-L: ``pycocoevalcap`` 1.2 (PyPI) ``Rouge().compute_score(gts, res)`` with
  ``gts = {i: refs}``, ``res = {i: [prediction]}``, computed once in a scratch install (never a
  dependency). Set A was given our ``tokenize_caption`` tokens joined by spaces (the same tokens
  its PTBTokenizer gives on these captions, see test_metrics.py); sets B-D are the pre-tokenised
  sets of test_metrics.py (set B without its empty prediction, which the reference code scores
  against the token ``""``; we score it 0, tested separately).
- VQA accuracy: ``vqaEval.py`` of github.com/GT-Vision-Lab/VQA scores a prediction as the mean,
  over each human answer left out, of ``min(#other humans matching / 3, 1)``. With 10 answers of
  which m match, that is ``(m * min((m - 1) / 3, 1) + (10 - m) * min(m / 3, 1)) / 10``:
  0, 0.3, 0.6, 0.9, 1.0 for m = 0, 1, 2, 3, >= 4; checked by hand below. Which answers match
  depends on the script's normalisation rules: ``VQA_CASES`` holds what the script itself
  printed (``VQAEval(vqa, res, n=12).evaluate()``, one question per case, answer ids 1..10) at
  revision c4e6a0e (the 2017 v2.0 release, in Python 3), run once in a scratch folder (never a
  dependency); ``VQA_CASES_2021`` what commit a013f00 (2021) prints where it differs.
"""

import pytest

from tests.eval.test_metrics import (
    SET_A_PREDICTIONS, SET_A_REFERENCES, SET_B_PREDICTIONS, SET_B_REFERENCES,
    SET_C_PREDICTIONS, SET_C_REFERENCES, SET_D_PREDICTIONS, SET_D_REFERENCES,
)
from vit_tf.eval.metrics import mean_vqa_accuracy, rouge_l, rouge_l_scores, vqa_accuracy
from vit_tf.eval.rouge import lcs_length

TOL = 1e-12

SET_A_ROUGE = [1.0, 0.8798076923076923, 0.2857142857142857, 0.6708211143695014,
               0.40397350993377484]
SET_A_ROUGE_MEAN = 0.6480633204650509
SET_B_ROUGE = [1.0, 1.0, 0.7721518987341772]   # items 0, 2, 3 of set B
SET_C_ROUGE = [0.6539961013645226, 0.5454545454545454]
SET_C_ROUGE_MEAN = 0.599725323409534


def test_rouge_l_matches_pycocoevalcap_on_raw_captions():
    assert rouge_l_scores(SET_A_PREDICTIONS, SET_A_REFERENCES) == pytest.approx(SET_A_ROUGE, abs=TOL)
    assert rouge_l(SET_A_PREDICTIONS, SET_A_REFERENCES) == pytest.approx(SET_A_ROUGE_MEAN, abs=TOL)


def test_rouge_l_matches_pycocoevalcap_on_pretokenised_sets():
    preds = [SET_B_PREDICTIONS[i] for i in (0, 2, 3)]
    refs = [SET_B_REFERENCES[i] for i in (0, 2, 3)]
    assert rouge_l_scores(preds, refs, tokenize=False) == pytest.approx(SET_B_ROUGE, abs=TOL)
    assert rouge_l(SET_C_PREDICTIONS, SET_C_REFERENCES, tokenize=False) == pytest.approx(
        SET_C_ROUGE_MEAN, abs=TOL)
    assert rouge_l_scores(SET_C_PREDICTIONS, SET_C_REFERENCES, tokenize=False) == pytest.approx(
        SET_C_ROUGE, abs=TOL)
    assert rouge_l(SET_D_PREDICTIONS, SET_D_REFERENCES, tokenize=False) == 1.0


def test_rouge_l_uses_beta_1_2_and_max_precision_and_recall_separately():
    # prediction "a b c d": vs "a b" P=2/4 R=1; vs "a b c d e f g h" P=1 R=4/8. The reference
    # code combines max P=1 and max R=1 (from different references) -> 1.0.
    assert rouge_l(["a b c d"], [["a b", "a b c d e f g h"]], tokenize=False) == 1.0
    # one reference: P = 2/3, R = 2/4, F = (1 + 1.44) P R / (R + 1.44 P)
    p, r = 2 / 3, 2 / 4
    assert rouge_l(["x a b"], [["a y b z"]], tokenize=False) == pytest.approx(
        2.44 * p * r / (r + 1.44 * p), abs=TOL)


def test_rouge_l_scores_empty_and_disjoint_predictions_zero():
    assert rouge_l_scores(["", "cat"], [["a dog"], ["a dog"]]) == [0.0, 0.0]


def test_lcs_length_counts_a_subsequence_not_a_substring():
    assert lcs_length("a x b y c".split(), "a b c".split()) == 3
    assert lcs_length([], ["a"]) == 0


@pytest.mark.parametrize("matching,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0),
                                               (10, 1.0)])
def test_vqa_accuracy_over_ten_choose_nine_subsets(matching, expected):
    answers = ["blue"] * matching + ["green"] * (10 - matching)
    by_hand = (matching * min((matching - 1) / 3, 1) + (10 - matching) * min(matching / 3, 1)) / 10
    assert by_hand == pytest.approx(expected)
    assert vqa_accuracy("blue", answers) == pytest.approx(expected, abs=TOL)


# (prediction, the ten human answers, vqaEval.py c4e6a0e's accuracy)
VQA_CASES = [
    ("the two", ["2", "two", "Two.", "3", "3", "3", "3", "3", "3", "3"], 0.3),
    ("Yes", ["yes"] * 10, 1.0),
    ("two", ["Two"] * 10, 0.0),
    ("black and white", ["black-and-white"] * 5 + ["white"] * 5, 1.0),
    ("a dog", ["dog"] * 3 + ["cat"] * 7, 0.9),
    ("1000", ["1,000"] * 2 + ["1000"] * 2 + ["many"] * 6, 1.0),
    ("yes.", ["yes"] * 9 + ["no"], 1.0),
    ("yes", ["Yes"] * 4 + ["no"] * 6, 0.0),
    (" yes\n", ["yes"] * 3 + ["no"] * 7, 0.9),
    ("Two", ["2", "2", "two", "3", "2", "2", "2", "2", "2", "2"], 1.0),
    ("red", ["red"] * 10, 1.0),
    ("3.5", ["3.5"] * 3 + ["3"] * 7, 0.9),
    ("left side", ["left"] * 5 + ["left side"] * 2 + ["right"] * 3, 0.6),
]
# Where commit a013f00 (2021) prints otherwise: both sides fully normalised when the humans
# disagree, neither side when they agree.
VQA_CASES_2021 = {"the two": 0.9, "Yes": 0.0, "yes": 1.0}


@pytest.mark.parametrize("prediction,answers,official", VQA_CASES)
def test_vqa_accuracy_equals_the_official_script(prediction, answers, official):
    assert vqa_accuracy(prediction, answers) == pytest.approx(official, abs=TOL)


def test_vqa_accuracy_documented_differences_from_the_script():
    # The script maps "dont" to "don't" with its contraction table (1.0); we do not.
    assert vqa_accuracy("dont", ["don't"] * 4 + ["no"] * 6) == 0.0
    assert vqa_accuracy("don't", ["don't"] * 4 + ["no"] * 6) == 1.0
    # The 2021 commit scores these cases otherwise; we follow the 2017 release.
    for prediction, answers, official in VQA_CASES:
        if prediction in VQA_CASES_2021:
            assert vqa_accuracy(prediction, answers) != VQA_CASES_2021[prediction]


def test_vqa_accuracy_rejects_single_answer_and_mean_checks_lengths():
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy("yes", ["yes"])
    with pytest.raises(ValueError, match="at least 2"):
        vqa_accuracy("yes", "yes")
    with pytest.raises(ValueError, match="1 predictions but 2"):
        mean_vqa_accuracy(["yes"], [["yes", "no"], ["no", "no"]])
    assert mean_vqa_accuracy(["yes", "no"], [["yes"] * 10, ["yes"] * 9 + ["no"]]) == pytest.approx(
        (1.0 + 0.3) / 2, abs=TOL)
