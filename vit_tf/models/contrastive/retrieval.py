"""Retrieval metrics from a similarity matrix (numpy; shared by the training callback and
``vit_tf.eval.contrastive``).

``similarity[i, j]`` scores image i against text j; ``positives[i, j]`` says whether text j
describes image i (its own text, or an identical text of another image: "a small red circle."
describes every image of one small red circle). Recall@k (image -> text) is the fraction of
images with a positive text among their k best-scored texts; text -> image likewise over
columns. Ties are broken against the positive (a stable rank counts every equal-scored
negative as ahead), so a constant model scores 0, not chance.

Example:
    >>> recall_at_k(np.eye(3), np.eye(3, dtype=bool), (1,))
    {'i2t_r1': 1.0, 't2i_r1': 1.0}
"""

import numpy as np


def positives_from_ids(image_ids, texts):
    """(n,) image ids and (n,) texts of n pairs -> (n, n) bool: pair j's text describes pair i's
    image (same image or identical text)."""
    image_ids = np.asarray(image_ids)
    _, text_ids = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
    return (image_ids[:, None] == image_ids[None, :]) | (text_ids[:, None] == text_ids[None, :])


def _best_positive_rank(scores, positives):
    """Per row: how many entries score >= the best positive, less that positive (0 = top)."""
    best = np.where(positives, scores, -np.inf).max(axis=1)              # (rows,)
    ahead = ((scores >= best[:, None]) & ~positives).sum(axis=1)
    return ahead


def recall_at_k(similarity, positives, ks=(1, 5)):
    """{"i2t_r{k}", "t2i_r{k}"} for each k, fractions in [0, 1]."""
    similarity = np.asarray(similarity, np.float64)
    positives = np.asarray(positives, bool)
    if similarity.shape != positives.shape:
        raise ValueError(f"similarity {similarity.shape} and positives {positives.shape} differ")
    i2t = _best_positive_rank(similarity, positives)
    t2i = _best_positive_rank(similarity.T, positives.T)
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = float(np.mean(i2t < k))
    for k in ks:
        out[f"t2i_r{k}"] = float(np.mean(t2i < k))
    return out


def similarity_image(similarity, cell=4):
    """(n, n) similarities -> (n*cell, n*cell, 3) uint8 heat map (low blue, high yellow),
    rows = images, columns = texts, for TensorBoard."""
    s = np.asarray(similarity, np.float64)
    lo, hi = s.min(), s.max()
    v = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    rgb = np.stack([v, v, 1.0 - v], axis=-1)                               # (n, n, 3)
    rgb = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    return (rgb * 255).round().astype(np.uint8)
