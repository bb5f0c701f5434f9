"""vit_tf.training.feature_training: a stage on cached encoder tokens trains the task itself,
with the stage's policy (projector alone; projector + LoRA), and refuses a trainable encoder."""

import numpy as np
import pytest

from tests.smollm2_tiny import tiny_llama_preset, tiny_llama_task, tiny_records
from vit_tf.config import ConfigError, PolicyConfig
from vit_tf.models.image_features import ImageFeatureCache
from vit_tf.training.feature_training import fit_on_features
from vit_tf.training.lora import merge_lora


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature_training")
    task, config = tiny_llama_task(tiny_llama_preset(root))
    records = tiny_records(root, 6)
    cache = ImageFeatureCache.build(task, [r["image_path"] for r in records], str(root / "c"),
                                    log=lambda m: None)
    return task, config, records, cache


def _weights(layer):
    return [np.array(w) for w in layer.weights]


def test_stage1_policy_leaves_only_the_projector_trainable(setup):
    task, config, records, cache = setup
    from vit_tf.models.image_features import feature_model
    from vit_tf.training.policy import apply_policy

    apply_policy(task, PolicyConfig(image_encoder="frozen", projector="full", decoder="frozen"),
                 config.train.lora)
    trainable = {id(v) for v in feature_model(task).trainable_weights}
    assert trainable and trainable == {id(v) for v in task.projector.weights}


def test_stage2_lora_on_features_trains_projector_and_lm(setup):
    task, config, records, cache = setup
    logs = []
    projector, lm = _weights(task.projector), _weights(task.decoder)
    policy = PolicyConfig(image_encoder="frozen", projector="full", decoder="lora")
    summary = fit_on_features(task, records, cache, config.train, policy, steps=3, batch_size=2,
                              max_text_length=40, label="stage 2", log=logs.append)
    assert summary["examples"] == 6 and summary["steps"] == 3 and summary["epochs"] == 1.0
    assert 0 < summary["trainable_parameters"]["decoder"] < sum(w.size for w in lm)
    assert summary["peak_memory_gib"] > 0 and np.isfinite(summary["final_loss"])
    assert any("stage 2: step 3/3" in line for line in logs)
    assert any(not np.allclose(a, b) for a, b in zip(projector, _weights(task.projector)))
    merged = merge_lora(task)
    assert any(not np.allclose(a, b) for a, b in zip(lm, _weights(merged.decoder)))


def test_a_trainable_encoder_is_refused(setup):
    task, config, records, cache = setup
    with pytest.raises(ConfigError, match="cached image features need a frozen image encoder"):
        fit_on_features(task, records, cache, config.train, PolicyConfig(), steps=1,
                        batch_size=2, max_text_length=40)


def test_precision_copy_trains_in_bfloat16_and_saves_float32(setup):
    import json

    from vit_tf.training.policy import apply_policy
    from vit_tf.training.precision import precision_copy

    task = merge_lora(setup[0])          # as a stage saves it (another test adds LoRA)
    assert precision_copy(task, "float32") is task                 # nothing to change
    bf16 = precision_copy(task, "mixed_bfloat16")
    assert {bf16.decoder.dtype_policy.name, bf16.projector.dtype_policy.name,
            bf16.image_encoder.dtype_policy.name} == {"mixed_bfloat16"}
    for a, b in zip(task.weights, bf16.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # as run_stage: LoRA on the bfloat16 copy, merged, saved as a float32 copy
    apply_policy(bf16, PolicyConfig(image_encoder="frozen", projector="full", decoder="lora"),
                 setup[1].train.lora)
    lora = [v for v in bf16.decoder.trainable_weights if "lora" in v.path]
    assert lora
    lora[-1].assign(np.ones(lora[-1].shape, "float32"))   # B factor: the merge changes W
    merged = merge_lora(bf16)
    back = precision_copy(merged, "float32")
    assert "mixed_bfloat16" not in json.dumps(back.get_config())
    assert back.preprocessor is task.preprocessor
    changed = 0
    for a, m, c in zip(task.weights, merged.weights, back.weights):
        assert a.path == m.path == c.path and c.dtype == "float32"
        np.testing.assert_array_equal(np.asarray(m), np.asarray(c))
        changed += not np.array_equal(np.asarray(a), np.asarray(c))
    assert changed >= 1                                    # the merged kernel(s)


def test_time_budget_stops_after_the_call_that_ends_it():
    import time

    from vit_tf.training.feature_training import TimeBudget

    class Stub:
        stop_training = False

    budget = TimeBudget(0.05, steps_per_call=2)
    stub = Stub()
    budget.set_model(stub)
    budget.on_train_begin()
    budget.on_train_batch_end(0)            # the first call (compilation) starts the clock
    assert not stub.stop_training
    time.sleep(0.06)
    budget.on_train_batch_end(1)
    assert stub.stop_training and budget.steps == 4


def test_text_only_examples_train_beside_image_ones(setup):
    from vit_tf.data.pipeline import encode_records
    from vit_tf.training.feature_training import feature_dataset

    task, config, records, cache = setup
    text = [{"id": f"t{i}", "image_path": "", "category": "text_chat", "finished": i == 0,
             "conversations": [{"from": "human", "value": "hello"},
                               {"from": "gpt", "value": "where is the user"}]}
            for i in range(2)]
    examples = encode_records(records[:2] + text, task.preprocessor, 40)
    batch = next(iter(feature_dataset(examples, cache, 4, shuffle=False,
                                      text_only_rows=True)))[0]
    assert batch["image_present"].numpy().tolist() == [True, True, False, False]
    with pytest.raises(ValueError, match="2 examples have no image"):
        feature_dataset(examples, cache, 4)
    logs = []
    policy = PolicyConfig(image_encoder="frozen", projector="full", decoder="lora")
    summary = fit_on_features(task, records + text, cache, config.train, policy, steps=2,
                              batch_size=4, max_text_length=40, log=logs.append)
    assert summary["text_only_examples"] == 2 and np.isfinite(summary["final_loss"])
    assert any("2 text-only examples (image prefix masked), 1 of them cut" in m for m in logs)
