"""Per-part training policy (frozen / full / lora) and per-part learning-rate multipliers."""

import numpy as np
import pytest

from tests.training.conftest import changed, make_model, snapshot
from vit_tf.config import ConfigError, ExperimentConfig, apply_overrides, from_dict, to_dict
from vit_tf.training.optim import PartAdamW, compile_model
from vit_tf.training.policy import apply_policy, trainable_counts
from vit_tf.training.stages import stage1_records


def test_stage1_policy_trains_only_the_projector(batch):
    model, config = make_model()
    multipliers = apply_policy(model, config.train.stage1.policy, config.train.lora)
    compile_model(model, config.train, 10, lr_multipliers=multipliers)
    counts = trainable_counts(model)
    assert counts["image_encoder"] == 0 and counts["decoder"] == 0 and counts["projector"] > 0
    before = {part: snapshot(getattr(model, part))
              for part in ("image_encoder", "projector", "decoder")}
    model.train_on_batch(*batch)
    assert not changed(before["image_encoder"], model.image_encoder)
    assert not changed(before["decoder"], model.decoder)
    assert changed(before["projector"], model.projector) == set(before["projector"])


def test_learning_rate_multipliers_scale_each_parts_step(batch):
    deltas = {}
    for name, sets in (("base", []), ("scaled", ["projector_lr=0.5", "decoder_lr=0.0"])):
        model, config = make_model()
        config = apply_overrides(config, [f"train.policy.{s}" for s in sets])
        multipliers = apply_policy(model, config.train.policy, config.train.lora)
        compile_model(model, config.train, 10, lr_multipliers=multipliers)
        assert isinstance(model.optimizer, PartAdamW)          # also without multipliers
        assert bool(model.optimizer.lr_multipliers) == bool(sets)
        before = {p: snapshot(getattr(model, p)) for p in ("projector", "decoder")}
        model.train_on_batch(*batch)
        deltas[name] = {p: {v.path: v.numpy() - before[p][v.path]
                            for v in getattr(model, p).weights} for p in ("projector", "decoder")}
    for path, delta in deltas["base"]["projector"].items():
        np.testing.assert_allclose(deltas["scaled"]["projector"][path], 0.5 * delta,
                                   rtol=1e-4, atol=1e-9)
    assert any(np.abs(d).max() > 0 for d in deltas["base"]["decoder"].values())
    assert all(np.abs(d).max() == 0 for d in deltas["scaled"]["decoder"].values())


def test_policy_and_stages_are_settable_and_round_trip_through_json():
    config = apply_overrides(ExperimentConfig(), [
        "train.stage1.epochs=2", "train.stage1.policy.decoder=full", "train.policy.decoder=lora",
        "train.lora.rank=4", "train.lora.alpha=8", "train.precision=mixed_bfloat16",
        "train.policy.image_encoder_lr=0.1"])
    again = from_dict(ExperimentConfig, to_dict(config))
    assert again == config
    assert again.train.stage1.policy.decoder == "full" and again.train.policy.decoder == "lora"
    assert ExperimentConfig().train.stage1.policy.image_encoder == "frozen"


def test_an_unknown_part_mode_is_refused_naming_the_key():
    model, config = make_model()
    config = apply_overrides(config, ["train.policy.decoder=half"])
    with pytest.raises(ConfigError, match=r"train.policy.decoder='half'"):
        apply_policy(model, config.train.policy, config.train.lora)


def test_stage1_records_filter_by_category_and_explain_an_empty_match():
    records = [{"id": "a", "category": "caption"}, {"id": "b", "category": "attribute"}]
    assert [r["id"] for r in stage1_records(records, "caption,description")] == ["a"]
    assert len(stage1_records(records, "")) == 2
    with pytest.raises(ConfigError, match="present: attribute, caption"):
        stage1_records(records, "description")
