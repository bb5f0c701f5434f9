"""Tests for the training callbacks: teacher-forced answer accuracy per category."""

import keras
import numpy as np
import pytest

from tests.helpers import tiny_task, write_image
from vit_tf.data.pipeline import encode_records
from vit_tf.training.callbacks import AnswerAccuracy

MAX_TEXT_LENGTH = 32  # tiny_config's data.max_text_length
CONVERSATIONS = [
    [{"from": "human", "value": "<image>\nWhat colour is the circle?"},
     {"from": "gpt", "value": "red"}],
    [{"from": "human", "value": "<image>\nIs it big"}, {"from": "gpt", "value": "yes it is big"}],
    [{"from": "human", "value": "<image>\nwhat is on the right"},
     {"from": "gpt", "value": "a green square"},
     {"from": "human", "value": "and what is on the left"},
     {"from": "gpt", "value": "a blue triangle"}],
]


def _model_inputs(ex, images):
    token_ids = ex.token_ids[:, :-1]
    mask = np.arange(token_ids.shape[1])[None, :] < ex.lengths[:, None]
    return {"images": images, "token_ids": token_ids, "padding_mask": mask}


def _force_model_answers(model, ex, images, rows):
    """Rewrite the trained tokens of ``rows`` to the model's own argmax predictions, in order."""
    for t in range(ex.token_ids.shape[1] - 1):
        if not ex.trained[rows, t + 1].any():
            continue
        predicted = np.argmax(np.asarray(model(_model_inputs(ex, images))), axis=-1)
        for r in rows:
            if ex.trained[r, t + 1]:
                ex.token_ids[r, t + 1] = predicted[r, t]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("answers")
    model, config = tiny_task(seed=0)
    assert config.data.max_text_length == MAX_TEXT_LENGTH
    records = [
        {"id": f"r{i}", "image_path": write_image(tmp / f"{i}.png", size=(16, 16), seed=i),
         "conversations": conv}
        for i, conv in enumerate(CONVERSATIONS * 2)
    ]
    ex = encode_records(records, model.preprocessor, MAX_TEXT_LENGTH)
    images = np.stack([np.asarray(keras.utils.load_img(r["image_path"]), "float32")
                       for r in records])
    _force_model_answers(model, ex, images, rows=[0, 2, 4])  # these three now match the model
    return model, ex


def test_answer_accuracy_counts_exactly_the_records_whose_trained_tokens_match(setup):
    model, ex = setup
    categories = ["a", "b", "a", "b", "a", "b"]
    callback = AnswerAccuracy(ex, categories, image_size=16, batch_size=4)  # 2 batches, 1 padded
    callback.set_model(model)
    assert callback._correct().tolist() == [True, False, True, False, True, False]
    logs = {}
    callback.on_epoch_end(0, logs)
    assert logs["val_answer_match"] == pytest.approx(0.5)
    assert logs["val_answer_match/a"] == 1.0 and logs["val_answer_match/b"] == 0.0
