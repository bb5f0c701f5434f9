"""The relation-capacity experiment's task: its answers follow the grid, its pairs are apart."""

import numpy as np

from vit_tf.experiments.relation_capacity import GRID, KINDS, RelationTask


def test_relation_task_answers_follow_where_the_named_kinds_sit():
    task = RelationTask(seed=3)
    images, questions, answers = task.batch(200)
    assert images.shape == (200, GRID * GRID, 64) and answers.shape == (200, 1)
    assert 0.3 < answers.mean() < 0.7
    # Every question the task can ask, (A kind, B kind, relation) -> its vector.
    sums = (task.names[0][:, None, None] + task.names[1][None, :, None]
            + task.relations[None, None])                            # (K, K, 4, 64)
    for image, question, answer in zip(images, questions[:, 0], answers[:, 0]):
        fits = np.argwhere(np.abs(sums - question).max(-1) < 1e-5)
        (a, b, r), = fits
        assert a != b
        where = {}
        for kind in (a, b):   # the cell holding a kind: its token is that vector + noise
            cell = int(np.argmax(image @ task.kinds[kind] / np.linalg.norm(task.kinds[kind])))
            where[kind] = divmod(cell, GRID)
        (ra, ca), (rb, cb) = where[a], where[b]
        gap = (cb - ca, ca - cb, rb - ra, ra - rb)[r]
        assert gap != 0 and answer == (gap > 0)
