"""LoRA on the decoder: only the LoRA factors train; merging keeps the outputs."""

import keras
import numpy as np

from tests.training.conftest import changed, make_model, snapshot
from vit_tf.training.lora import has_lora, lora_variables, merge_lora
from vit_tf.training.optim import compile_model
from vit_tf.training.policy import apply_policy

LORA = ["train.policy.image_encoder=frozen", "train.policy.projector=frozen",
        "train.policy.decoder=lora", "train.lora.rank=2", "train.lora.alpha=4"]


def _lora_model(batch):
    model, config = make_model()
    from vit_tf.config import apply_overrides

    config = apply_overrides(config, LORA)
    before = snapshot(model)
    multipliers = apply_policy(model, config.train.policy, config.train.lora)
    compile_model(model, config.train, 10, lr_multipliers=multipliers)
    model.train_on_batch(*batch)
    return model, before


def test_only_the_lora_weights_change_in_a_training_step(batch):
    model, before = _lora_model(batch)
    lora_paths = {v.path for v in lora_variables(model.decoder)}
    assert lora_paths and {v.path for v in model.trainable_weights} == lora_paths
    assert not changed(before, model)  # every base weight (kernels, biases, norms) identical
    b_factors = [v for v in lora_variables(model.decoder) if v.path.endswith("lora_kernel_b")]
    assert all(np.abs(v.numpy()).max() > 0 for v in b_factors)  # B starts at 0: it trained


def test_merged_model_gives_the_same_outputs_and_has_no_lora(batch, tmp_path):
    model, _ = _lora_model(batch)
    inputs = batch[0]
    expected = np.asarray(model(inputs))
    merged = merge_lora(model)
    assert not has_lora(merged) and has_lora(model)
    np.testing.assert_allclose(np.asarray(merged(inputs)), expected, atol=1e-5)
    merged.save(tmp_path / "merged.keras")  # the export path: a plain .keras model
    reloaded = keras.saving.load_model(tmp_path / "merged.keras")
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), expected, atol=1e-5)
