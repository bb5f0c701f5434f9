"""The NaN / Inf guard stops at the broken step and keeps the last good checkpoint."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from vit_tf.training.nan_guard import NanGuard, NonFiniteLossError


def test_a_nan_batch_stops_training_naming_the_step_and_the_last_checkpoint_loads(tmp_path):
    x = np.ones((8, 3), "float32")
    x[5] = np.nan  # epoch 2 (2 batches of 2 per epoch), batch 1 -> global step 3
    y = np.zeros((8, 1), "float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2).repeat()  # as train() feeds it
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    ckpts = tmp_path / "checkpoints"
    os.makedirs(ckpts)
    with pytest.raises(NonFiniteLossError, match=r"became nan at step 3 \(epoch 2, batch 1\)") as e:
        model.fit(data, epochs=3, steps_per_epoch=2, verbose=0,
                  callbacks=[NanGuard(str(ckpts)), keras.callbacks.ModelCheckpoint(
                      str(ckpts / "epoch_{epoch:03d}.keras"))])
    assert "epoch_001.keras" in str(e.value)
    assert sorted(os.listdir(ckpts)) == ["epoch_001.keras"]  # nothing saved from the NaN state
    good = keras.saving.load_model(ckpts / "epoch_001.keras")
    assert all(np.isfinite(w).all() for w in good.get_weights())
    assert np.isfinite(good.predict(x[:4], verbose=0)).all()
