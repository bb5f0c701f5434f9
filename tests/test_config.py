"""Tests for the typed config: type-checked ``--set`` overrides, clear errors, JSON round trip."""

import dataclasses
import json

import pytest

from vit_tf.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


def test_overrides_set_int_float_bool_and_str_with_their_types():
    cfg = apply_overrides(
        ExperimentConfig(),
        [
            "train.epochs=3",
            "train.learning_rate=3e-4",
            "train.jit_compile=false",
            "model.encoder.conv_stem=True",
            "model.projector.name=linear",
            "model.decoder.num_layers=4",
            "name=my_run",
        ],
    )
    assert cfg.train.epochs == 3 and type(cfg.train.epochs) is int
    assert cfg.train.learning_rate == 3e-4 and type(cfg.train.learning_rate) is float
    assert cfg.train.jit_compile is False
    assert cfg.model.encoder.conv_stem is True
    assert cfg.model.projector.name == "linear"
    assert cfg.model.decoder.num_layers == 4 and type(cfg.model.decoder.num_layers) is int
    assert cfg.name == "my_run"


def test_float_override_accepts_an_integer_literal_as_float():
    cfg = apply_overrides(ExperimentConfig(), ["train.learning_rate=1"])
    assert cfg.train.learning_rate == 1.0 and type(cfg.train.learning_rate) is float


def test_overrides_do_not_mutate_the_input_config():
    base = ExperimentConfig()
    apply_overrides(base, ["train.epochs=99", "model.decoder.hidden_dim=8"])
    assert base.train.epochs == TrainConfig().epochs
    assert base.model.decoder.hidden_dim == ExperimentConfig().model.decoder.hidden_dim


def test_unknown_key_error_names_the_key_and_lists_known_keys():
    with pytest.raises(ConfigError) as info:
        apply_overrides(ExperimentConfig(), ["train.epochz=3"])
    message = str(info.value)
    assert "train.epochz" in message
    for known in ("epochs", "learning_rate", "warmup_steps"):
        assert known in message


def test_unknown_section_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="trian"):
        apply_overrides(ExperimentConfig(), ["trian.epochs=3"])


def test_wrong_type_raises_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"train\.epochs.*int.*'abc'"):
        apply_overrides(ExperimentConfig(), ["train.epochs=abc"])
    with pytest.raises(ConfigError, match=r"train\.learning_rate"):
        apply_overrides(ExperimentConfig(), ["train.learning_rate=fast"])
    with pytest.raises(ConfigError, match=r"train\.jit_compile"):
        apply_overrides(ExperimentConfig(), ["train.jit_compile=maybe"])


def test_int_override_rejects_a_float_literal():
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        apply_overrides(ExperimentConfig(), ["train.epochs=2.5"])


def test_setting_a_whole_section_raises_config_error():
    with pytest.raises(ConfigError, match="section"):
        apply_overrides(ExperimentConfig(), ["model.decoder=3"])


def test_key_below_a_plain_field_raises_config_error():
    with pytest.raises(ConfigError, match="train.epochs.x"):
        apply_overrides(ExperimentConfig(), ["train.epochs.x=3"])


def test_override_without_equals_sign_raises_config_error():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(ExperimentConfig(), ["train.epochs"])


def test_from_dict_rejects_unknown_keys():
    data = to_dict(ExperimentConfig())
    data["train"]["epochz"] = 3
    with pytest.raises(ConfigError, match="epochz"):
        from_dict(ExperimentConfig, data)


def test_from_dict_rejects_wrong_value_types():
    with pytest.raises(ConfigError, match="batch_size"):
        from_dict(DataConfig, {"batch_size": "32"})
    with pytest.raises(ConfigError, match="batch_size"):
        from_dict(DataConfig, {"batch_size": True})


def test_save_then_load_config_gives_an_equal_config(tmp_path):
    cfg = apply_overrides(
        ExperimentConfig(), ["name=x", "train.learning_rate=2e-4", "model.encoder.conv_stem=false"]
    )
    path = tmp_path / "config.json"
    save_config(cfg, path)
    loaded = load_config(path)
    assert loaded == cfg
    assert dataclasses.asdict(loaded) == json.loads(path.read_text())


def test_load_config_rejects_invalid_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)
