"""The optimizer's update compiled as one XLA computation: the same update as uncompiled."""

import numpy as np
import tensorflow as tf

from tests.training.conftest import make_model, snapshot
from vit_tf.training.optim import compile_model


def _train(batch, xla_update):
    """Two steps (one fit of the batch twice: one trace) of the tiny model with its step not
    XLA-compiled, the projector at learning-rate multiplier 0; -> (weights, fit logs, model)."""
    model, config = make_model(seed=0, train__jit_compile=False, train__xla_update=xla_update)
    frozen = {v.path: 0.0 for v in model.projector.trainable_variables}
    compile_model(model, config.train, total_steps=10, lr_multipliers=frozen)
    assert model.optimizer.compile_update is xla_update
    x, y, w = batch
    data = tf.data.Dataset.from_tensors((x, y, w)).repeat(2)
    logs = model.fit(data, epochs=1, verbose=0).history
    return snapshot(model), logs, model


def test_compiled_update_changes_the_weights_as_the_uncompiled_one(batch):
    start = snapshot(make_model(seed=0)[0])
    plain, plain_logs, _ = _train(batch, False)
    compiled, logs, model = _train(batch, True)
    assert model.optimizer._compiled_updates                    # the compiled path ran
    assert int(model.optimizer.iterations) == 2
    assert plain.keys() == compiled.keys()
    for path in plain:
        np.testing.assert_allclose(compiled[path], plain[path], rtol=1e-5, atol=1e-6,
                                   err_msg=path)
        moved = not np.array_equal(compiled[path], start[path])
        assert moved == (not path.startswith(model.projector.path)), path   # multiplier 0
    np.testing.assert_allclose(logs["grad_norm"], plain_logs["grad_norm"], rtol=1e-5)
