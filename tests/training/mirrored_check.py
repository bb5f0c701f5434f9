"""Run by test_distribute.py in a fresh process: the same steps on one device and under
MirroredStrategy over 2 logical CPU devices; prints the per-step losses, final weights and
``AnswerAccuracy``'s answer match as JSON. (Logical devices must be configured before
TensorFlow initialises its devices, hence a separate process.)

    python tests/training/mirrored_check.py OUT_DIR JIT_COMPILE
"""

import json
import os
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
keras.config.disable_traceback_filtering()
import numpy as np  # noqa: E402

from tests.helpers import tiny_config, tiny_preprocessor, write_image  # noqa: E402
from vit_tf.data.pipeline import encode_records, make_dataset  # noqa: E402
from vit_tf.models.factory import build_task  # noqa: E402
from vit_tf.training.callbacks import AnswerAccuracy  # noqa: E402
from vit_tf.training.distribute import distributable, make_strategy  # noqa: E402
from vit_tf.training.optim import compile_model  # noqa: E402

STEPS = 3


def run(strategy_name, out, jit_compile):
    config = tiny_config(train__strategy=strategy_name, train__devices="/cpu:0,/cpu:1",
                         train__jit_compile=jit_compile, data__batch_size=4)
    strategy = make_strategy(config.train)
    preprocessor = tiny_preprocessor(config)
    # Every answer is one word + <|end|>: each replica's half-batch has as many trained
    # tokens as the other, so the mean of per-replica means equals the global token mean.
    records = [{"id": f"r{i}", "image_path": write_image(os.path.join(out, f"{i}.png"),
                                                         size=(16, 16), seed=i),
                "conversations": [{"from": "human", "value": "<image>\nWhat colour is it?"},
                                  {"from": "gpt", "value": word}]}
               for i, word in enumerate(["red", "big", "yes", "two"] * 3)]
    examples = encode_records(records, preprocessor, config.data.max_text_length)
    trained = examples.trained.sum(axis=1)
    assert (trained == trained[0]).all(), trained
    ds = distributable(make_dataset(examples, 16, config.data.batch_size, repeat=True,
                                    drop_remainder=True), strategy)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_task(config, preprocessor)
        compile_model(model, config.train, STEPS)
    losses = []
    logger = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))
    model.fit(ds, epochs=1, steps_per_epoch=STEPS, verbose=0, callbacks=[logger])
    # The validation callback's forward passes under the strategy (12 examples, batches of 8).
    answers, logs = AnswerAccuracy(examples, ["all"] * len(examples), 16, batch_size=8), {}
    answers.set_model(model)
    answers.on_epoch_end(0, logs)
    return {"replicas": strategy.num_replicas_in_sync, "losses": losses,
            "weights": [float(np.abs(w).sum()) for w in model.get_weights()],
            "answer_match": logs["val_answer_match"]}


if __name__ == "__main__":
    out, jit = sys.argv[1], sys.argv[2] == "true"
    result = {name: run(name, out, jit) for name in sys.argv[3:] or ("default", "mirrored")}
    print("RESULT " + json.dumps(result))
