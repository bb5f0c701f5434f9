"""Tests for vit_tf.eval.yes_no: first-answer-token probabilities, margins, AUC, presence report."""

import numpy as np
import pytest

from tests.helpers import tiny_task
from vit_tf.data.sources.easy_vqa import asks_about_present, is_negated
from vit_tf.eval.yes_no import presence_report, roc_auc, single_token_id, yes_no_margins
from vit_tf.inference.first_token import first_token_probs


def test_roc_auc_counts_pairs_and_ties():
    assert roc_auc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert roc_auc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert roc_auc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    assert roc_auc([2, 0, 1], [True, False, True]) == 1.0
    assert roc_auc([1, 2], [True, True]) is None


def test_presence_report_splits_by_form_and_presence():
    questions = ["is there a red shape?", "is there a blue shape?",
                 "is there not a red shape?", "is there not a blue shape?"] * 2
    answers = ["yes", "no", "no", "yes"] * 2
    present = [asks_about_present(q, a) for q, a in zip(questions, answers)]
    negated = [is_negated(q) for q in questions]
    assert present == [True, False, True, False] * 2 and negated == [False, False, True, True] * 2
    # A model that reads the form only: "no" to positive questions, "yes" to negated ones.
    blind = np.array([-1.0, -1.0, 1.0, 1.0] * 2)
    report = presence_report(answers, blind, present, negated)
    assert report["all"]["accuracy"] == 0.5
    assert report["positive form"]["auc"] == 0.5 and report["negated form"]["auc"] == 0.5
    assert report["positive form"]["accuracy_absent"] == 1.0
    assert report["positive form"]["accuracy_present"] == 0.0
    # A model that sees: the margin follows the answer.
    seeing = np.array([2.0, -2.0, -1.0, 1.0] * 2)
    report = presence_report(answers, seeing, present, negated)
    assert report["all"]["auc"] == 1.0 and report["negated form"]["accuracy"] == 1.0


def test_margins_are_log_odds_of_the_first_answer_token():
    task, _ = tiny_task(seed=0)
    images = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3)).astype("uint8")
    questions = ["Is there a red circle?", "Is it big?", "Is the circle left of the square?"]
    probs = first_token_probs(task, images, questions, batch_size=2)   # two batches
    assert probs.shape == (3, task.preprocessor.vocabulary_size)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    words = ("yes", "big")                          # ("no" is not one token of the tiny vocabulary)
    yes, no = (single_token_id(task.preprocessor, w) for w in words)
    np.testing.assert_allclose(yes_no_margins(task, images, questions, words=words),
                               np.log(probs[:, yes] + 1e-12) - np.log(probs[:, no] + 1e-12),
                               rtol=1e-4, atol=1e-5)
    # The prompt is generate's: the first token generate picks is the argmax here.
    ids = task.generator(max_new_tokens=1, jit_compile=False).generate_ids(
        images, [[{"from": "human", "value": q}] for q in questions])
    assert [row[0] if row else task.preprocessor.stop_id for row in ids] == \
        probs.argmax(axis=1).tolist()
    with pytest.raises(ValueError, match="tokens for this model"):
        single_token_id(task.preprocessor, "no")
