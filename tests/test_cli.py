"""The ``vit-tf`` command line, end to end on a tiny shapes world and a tiny model."""

import json
import os

import pytest

from vit_tf.cli import main

TINY = [
    "data.image_size=32", "data.batch_size=8", "data.vocabulary_size=200",
    "model.encoder.patch_size=8", "model.encoder.hidden_dim=16", "model.encoder.num_layers=1",
    "model.encoder.num_heads=2", "model.encoder.intermediate_dim=32",
    "model.decoder.hidden_dim=16", "model.decoder.num_layers=1", "model.decoder.num_heads=2",
    "model.decoder.intermediate_dim=32", "train.epochs=2", "train.steps_per_epoch=3",
    "train.warmup_steps=1", "train.jit_compile=false", "train.num_samples_to_log=2",
    "train.xla_update=false",
    "train.relevance_maps=1",
    "generate.max_new_tokens=6",
]


def _sets(items):
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    assert main(["data", "shapes", "--out", str(out), "--train", "12", "--test", "3",
                 "--canvas-size", "32", "--max-objects", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def run(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    argv = ["train", "--data", str(shapes / "train.json"), "--image-root", str(shapes),
            "--out", str(out), "--val-data", str(shapes / "test.json"), *_sets(TINY)]
    assert main(argv) == 0
    return out


def test_train_writes_a_preset_config_checkpoints_and_tensorboard_logs(run):
    for name in ("metadata.json", "task.json", "task.weights.h5", "preprocessor.json",
                 "assets/tokenizer/vocabulary.txt", "config.json", "train_summary.json",
                 "checkpoints/epoch_001.keras", "checkpoints/epoch_002.keras"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["decoder"]["hidden_dim"] == 16  # the resolved config, overrides in
    events = [f for _, _, fs in os.walk(run / "logs") for f in fs if "tfevents" in f]
    assert len(events) >= 3  # training scalars, the sample answers, the relevance maps
    assert any("tfevents" in f for f in os.listdir(run / "logs" / "relevance"))
    summary = json.loads((run / "train_summary.json").read_text())
    assert len(summary["history"]["loss"]) == 2


def test_train_with_val_data_logs_answer_accuracy_per_category_each_epoch(run, shapes):
    history = json.loads((run / "train_summary.json").read_text())["history"]
    categories = {r["category"] for r in json.loads((shapes / "test.json").read_text())}
    for name in ["val_answer_match"] + [f"val_answer_match/{c}" for c in categories]:
        assert len(history[name]) == 2, name
        assert all(0.0 <= v <= 1.0 for v in history[name])


def test_training_again_into_a_finished_run_is_refused(run, shapes, capsys):
    argv = ["train", "--data", str(shapes / "train.json"), "--image-root", str(shapes),
            "--out", str(run), *_sets(TINY)]
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--data", str(shapes / "train.json"),
                 "--image-root", str(shapes)]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_generate_prints_one_answer_per_image(run, shapes, capsys):
    image = str(shapes / "images" / "test_000000.png")
    assert main(["generate", "--model", str(run), "--image", image, "--image", image,
                 "--prompt", "What colour is the circle?"]) == 0
    assert len(capsys.readouterr().out.strip("\n").split("\n")) == 2


def test_generate_on_a_corrupt_image_names_the_file(run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["generate", "--model", str(run), "--image", str(bad), "--prompt", "hi"]) == 2
    assert "bad.png" in capsys.readouterr().err


def test_eval_writes_predictions_and_metrics_for_every_answer(run, shapes, tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(run), "--data", str(shapes / "test.json"),
                 "--image-root", str(shapes), "--out", str(out)]) == 0
    records = json.loads((shapes / "test.json").read_text())
    n_answers = sum(len(r["conversations"]) // 2 for r in records)
    lines = (out / "predictions.jsonl").read_text().strip().split("\n")
    assert len(lines) == n_answers
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["categories"]) == {r["category"] for r in records}
    assert metrics["decoding"]["strategy"] == "greedy"


@pytest.mark.parametrize("override, phrase", [
    ("train.nope=1", "unknown config key 'train.nope'"),
    ("train.epochs=many", "expected an int"),
    ("model.decoder=3", "is a section"),
    ("epochs", "must look like key=value"),
])
def test_bad_set_overrides_exit_2_with_a_message_naming_the_key(shapes, tmp_path, capsys,
                                                               override, phrase):
    argv = ["train", "--data", str(shapes / "train.json"), "--image-root", str(shapes),
            "--out", str(tmp_path / "r"), "--set", override]
    assert main(argv) == 2
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written for a bad config


def test_unknown_experiment_lists_the_known_ones(shapes, tmp_path, capsys):
    argv = ["train", "--data", str(shapes / "train.json"), "--image-root", str(shapes),
            "--out", str(tmp_path / "r"), "--experiment", "nope"]
    assert main(argv) == 2
    assert "known: " in capsys.readouterr().err


def test_train_refuses_invalid_data_and_reports_every_problem(shapes, tmp_path, capsys):
    records = json.loads((shapes / "train.json").read_text())
    records[0]["conversations"][1]["from"] = "bot"
    records[1]["image"] = "images/missing.png"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    argv = ["train", "--data", str(bad), "--image-root", str(shapes), "--out",
            str(tmp_path / "r"), *_sets(TINY)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert records[0]["id"] in err and "conversations[1].from" in err
    assert records[1]["id"] in err and "missing.png" in err
    assert "--skip-invalid" in err


def test_skip_invalid_trains_on_the_rest_and_says_how_many_were_skipped(shapes, tmp_path, capsys):
    records = json.loads((shapes / "train.json").read_text())
    records[0]["conversations"][0]["value"] = "no image token here"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    out = tmp_path / "r"
    argv = ["train", "--data", str(bad), "--image-root", str(shapes), "--out", str(out),
            "--skip-invalid", *_sets(TINY + ["train.epochs=1", "train.num_samples_to_log=0"])]
    assert main(argv) == 0
    assert f"skipped 1 of {len(records)} records" in capsys.readouterr().out
    assert records[0]["id"] in (out / "data_report.txt").read_text()


def test_data_validate_exits_1_and_lists_problems(shapes, tmp_path, capsys):
    records = json.loads((shapes / "train.json").read_text())
    records[2]["conversations"] = []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    assert main(["data", "validate", str(bad), "--image-root", str(shapes)]) == 1
    assert records[2]["id"] in capsys.readouterr().out


def test_data_inspect_marks_only_the_assistant_tokens(shapes, capsys):
    assert main(["data", "inspect", str(shapes / "train.json"), "--image-root", str(shapes),
                 "--limit", "1"]) == 0
    out = capsys.readouterr().out
    line = [l for l in out.split("\n") if "<|user|>" in l][0]
    assert line.strip().startswith("<|user|>")
    assert line.count("[[") == 1 and line.rstrip().endswith("<|end|>]]")
    assert "<|assistant|> [[" in line


def test_a_value_error_from_vit_tf_is_a_one_line_error_one_from_elsewhere_keeps_its_traceback(
        monkeypatch, tmp_path, capsys):
    """Only vit_tf's own KeyError/ValueError (about the user's input) become "error: ..."; the
    same exception raised inside numpy (a bug, or input nothing validated) is not swallowed."""
    import numpy as np

    from vit_tf import commands

    assert main(["train", "--data", "x.json", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "error: train needs --data and --image-root (or --resume)\n"
    monkeypatch.setattr(commands, "cmd_compare", lambda args: np.percentile([1.0], 200))
    with pytest.raises(ValueError, match="Percentiles must be in the range"):
        main(["compare", "x"])


def test_a_keras_file_with_a_lambda_or_an_unknown_class_is_refused_in_safe_mode(tmp_path,
                                                                                capsys):
    import json as json_module
    import zipfile

    import keras

    lam = tmp_path / "lambda.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)]).save(lam)
    assert main(["generate", "--model", str(lam), "--image", "x.png", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {lam}: refused to load this .keras file: it holds a Lambda")

    known = tmp_path / "known.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(known)
    unknown = tmp_path / "unknown.keras"
    with zipfile.ZipFile(known) as src, zipfile.ZipFile(unknown, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json_module.loads(data)
                config["config"]["layers"][-1].update(module="evil.module",
                                                      class_name="Backdoor")
                data = json_module.dumps(config).encode()
            dst.writestr(item, data)
    assert main(["generate", "--model", str(unknown), "--image", "x.png", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {unknown}: refused to load this .keras file: it names a "
                          "class vit_tf does not know")
