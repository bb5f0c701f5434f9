"""How a VLM weighs "yes" against "no": first-answer-token probabilities and separability.

Exact match says whether a yes/no answer was right; it does not say whether the model used the
image to give it. ``yes_no_margins`` gives, per question, log P(yes) - log P(no) of the first
answer token (one forward pass, the prompt as ``generate`` writes it); ``roc_auc`` says how
well a margin separates the questions whose answer is yes from those whose answer is no. Split
by what the question cannot tell on its own (easy-VQA: whether the colour or shape it names is
in the image, within one question form), an AUC near 0.5 means the answer comes from the
question's wording, not from the image (``presence_report``).

Example:
    >>> margins = yes_no_margins(task, images, ["is there a red shape?", "is there a circle?"])
    >>> presence_report(answers, margins, present, negated)["positive form"]["auc"]
"""

import numpy as np

from vit_tf.inference.first_token import first_token_probs


def single_token_id(preprocessor, word):
    """The id of ``word`` as the first answer token; an error when it is not one token."""
    ids = [int(i) for i in np.asarray(preprocessor.tokenizer(word)).ravel()]
    if len(ids) != 1:
        raise ValueError(f"{word!r} is {len(ids)} tokens for this model's tokenizer ({ids}); "
                         "only one-token answers can be scored")
    return ids[0]


def yes_no_margins(task, images, questions, batch_size=16, words=("yes", "no")):
    """(n,) log P(yes) - log P(no) of each question's first answer token (``words``: the two
    answers, each one token)."""
    probs = first_token_probs(task, images, questions, batch_size)
    yes, no = (single_token_id(task.preprocessor, w) for w in words)
    return np.log(probs[:, yes] + 1e-12) - np.log(probs[:, no] + 1e-12)


def roc_auc(scores, labels):
    """Probability that a random positive scores above a random negative (ties count half);
    None when either class is empty."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return None
    above = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(above + 0.5 * ties)


def presence_report(answers, margins, present, negated):
    """Accuracy of the margin's sign and AUC, overall and within each question form.

    ``answers`` (n,) "yes" / "no"; ``margins`` (n,) from ``yes_no_margins``; ``present`` (n,)
    bool: the thing the question names is in the image; ``negated`` (n,) bool: the question is
    negated ("is there not a circle?"). Within one form the answer is a function of
    ``present`` alone, so the AUC there measures whether the model sees it.
    """
    margins = np.asarray(margins, float)
    truth = np.array([a == "yes" for a in answers])
    present, negated = np.asarray(present, bool), np.asarray(negated, bool)

    def accuracy(sel):
        return float(((margins[sel] > 0) == truth[sel]).mean()) if sel.any() else None

    report = {}
    for name, sel in (("all", np.ones(len(truth), bool)), ("positive form", ~negated),
                      ("negated form", negated)):
        if not sel.any():
            continue
        report[name] = {"n": int(sel.sum()), "accuracy": accuracy(sel),
                        "auc": roc_auc(margins[sel], truth[sel]),
                        "n_present": int(present[sel].sum()),
                        "accuracy_present": accuracy(sel & present),
                        "accuracy_absent": accuracy(sel & ~present)}
    return report
