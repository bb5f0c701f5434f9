"""The probability of each first answer token, from the prompt ``generate`` writes.

One forward pass per batch of (image, question) pairs, no decoding loop: what scoring a fixed
set of one-token answers needs (``vit_tf.eval.yes_no``: P(yes) against P(no); the
text-to-image judge, ``vit_tf.t2i.judge``: VQAScore-style P(yes)).

Example:
    >>> probs = first_token_probs(task, images, ["Is there a red circle?"])   # (1, vocabulary)
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
