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
    >>> presence_report(questions, answers, margins)["positive form"]["auc"]
"""

import numpy as np
import tensorflow as tf


def first_token_probs(task, images, questions, batch_size=16):
    """(n,) images x (n,) questions (one human turn each) -> (n, vocabulary) float32
    probabilities of the first answer token, from the prompt ``generate`` would write."""
    pre = task.preprocessor
    probs = []
    for start in range(0, len(questions), batch_size):
        part = slice(start, start + batch_size)
        convs = [[{"from": "human", "value": q}] for q in questions[part]]
        pixels, prompts = pre.generate_preprocess(list(images[part]), convs)
        lengths = np.array([len(p) for p in prompts])
        ids = np.zeros((len(prompts), lengths.max()), np.int32)       # (b, longest prompt)
        for i, p in enumerate(prompts):
            ids[i, :len(p)] = p
        mask = np.arange(lengths.max())[None] < lengths[:, None]
        logits = task({"images": pixels, "token_ids": tf.constant(ids),
                       "padding_mask": tf.constant(mask)}, training=False)  # (b, L, vocab)
        last = tf.gather(logits, lengths - 1, batch_dims=1)               # (b, vocab)
        probs.append(tf.nn.softmax(tf.cast(last, tf.float32)).numpy())
    return np.concatenate(probs)


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


def presence_report(questions, answers, margins, present, negated):
    """Accuracy of the margin's sign and AUC, overall and within each question form.

    ``present`` (n,) bool: the thing the question names is in the image; ``negated`` (n,)
    bool: the question is negated ("is there not a circle?"). Within one form the answer is
    a function of ``present`` alone, so the AUC there measures whether the model sees it.
    """
    margins = np.asarray(margins, float)
    truth = np.array([a == "yes" for a in answers])
    present, negated = np.asarray(present, bool), np.asarray(negated, bool)
    report = {}
    for name, sel in (("all", np.ones(len(truth), bool)), ("positive form", ~negated),
                      ("negated form", negated)):
        if not sel.any():
            continue
        report[name] = {
            "n": int(sel.sum()),
            "accuracy": float(((margins[sel] > 0) == truth[sel]).mean()),
            "auc": roc_auc(margins[sel], truth[sel]),
            "n_present": int(present[sel].sum()),
            "accuracy_present": (float(((margins[sel & present] > 0)
                                        == truth[sel & present]).mean())
                                 if (sel & present).any() else None),
            "accuracy_absent": (float(((margins[sel & ~present] > 0)
                                       == truth[sel & ~present]).mean())
                                if (sel & ~present).any() else None),
        }
    return report
