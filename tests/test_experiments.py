"""``vit_tf.experiments``: experiments load by name, with clear errors for anything else."""

import sys

import pytest

import vit_tf.experiments as experiments
from vit_tf.config import ConfigError, ExperimentConfig
from vit_tf.experiments import known_experiments, load_experiment


def test_every_known_experiment_loads_an_experiment_config():
    names = known_experiments()
    assert {"default", "two_stage", "ablation_fusion_decoder"} <= set(names)
    assert "shapes_breakdown" not in names   # a script over runs, not a config
    for name in names:
        assert isinstance(load_experiment(name), ExperimentConfig), name


def test_an_unknown_experiment_is_refused_listing_the_known_ones():
    for name in ("nope", "../default", ""):
        with pytest.raises(ConfigError) as info:
            load_experiment(name)
        assert f"unknown experiment {name!r}" in str(info.value)
        assert f"known: {', '.join(known_experiments())}" in str(info.value)
        assert "ablation_fusion_decoder, " in str(info.value)
        assert "smollm2_stage2_full, smollm2_stage2_lora, smollm2_stage2_plora, smollm2_stage2_wilora, smollm2_vision" in str(
            info.value)


def test_a_module_without_get_config_is_not_an_experiment():
    with pytest.raises(ConfigError, match="shapes_breakdown.py has no get_config()"):
        load_experiment("shapes_breakdown")


def test_a_get_config_that_returns_something_else_is_refused(tmp_path, monkeypatch):
    (tmp_path / "returns_a_dict.py").write_text("def get_config():\n    return {'name': 'x'}\n")
    monkeypatch.setattr(experiments, "__path__", [*experiments.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "vit_tf.experiments.returns_a_dict", raising=False)
    with pytest.raises(ConfigError, match="get_config\\(\\) must return an ExperimentConfig, "
                                          "got dict"):
        load_experiment("returns_a_dict")
    sys.modules.pop("vit_tf.experiments.returns_a_dict", None)


def test_experiments_live_in_the_package_namespace():
    assert experiments.__name__ == "vit_tf.experiments"
    assert load_experiment("two_stage").name == "two_stage"   # imports vit_tf.experiments.default
    assert "experiments" not in sys.modules   # no top-level package of that generic name


def test_smollm2_stage_mixes_a_text_chat_file_counted_and_cycled(tmp_path, capsys):
    import json

    from vit_tf.data.text_chat import chat_records
    from vit_tf.experiments.smollm2_stage2_lora import get_config
    from vit_tf.experiments.smollm2_vision import stage_main, text_chat_records

    path = tmp_path / "chat.json"
    path.write_text(json.dumps(chat_records(["Name four birds.", "Add 21 and 13."],
                                            ["Robins.", "34."], [True, True], {})))
    assert [r["id"] for r in text_chat_records(str(path))] == ["chat-0000", "chat-0001"]
    logs = []
    five = text_chat_records(str(path), 5, log=logs.append)
    assert sorted(r["id"] for r in five)[:3] == ["chat-0000", "chat-0000~1", "chat-0000~2"]
    assert all(r["image_path"] == "" for r in five) and "used 2.50 times" in logs[0]
    with pytest.raises(SystemExit):
        stage_main(get_config, "smollm2_stage2_lora", ["--data", "d", "--out", "o", "--init",
                                                       "i", "--text-chat-examples", "3"])
    assert "--text-chat-examples needs --text-chat FILE" in capsys.readouterr().err


def test_easy_vqa_presence_and_the_balanced_stage_sample(capsys):
    import numpy as np

    from vit_tf.data.sources.easy_vqa import asks_about_present
    from vit_tf.experiments.smollm2_stage2_plora import get_config
    from vit_tf.experiments.smollm2_vision import presence_balanced, stage_main

    assert asks_about_present("is there a circle?", "yes") is True
    assert asks_about_present("is there not a circle in the image?", "no") is True
    assert asks_about_present("is no black shape present?", "yes") is False
    assert asks_about_present("does the image contain a red shape?", "no") is False
    assert asks_about_present("what is the red shape?", "circle") is None

    def record(question, answer):
        return {"conversations": [{"from": "human", "value": f"<image>\n{question}"},
                                  {"from": "gpt", "value": answer}]}

    # 20 open, 10 present, 70 absent: the data's 1:4 tilt towards absent things
    records = ([record("what is the red shape?", "circle")] * 20
               + [record("is there a circle?", "yes")] * 10
               + [record("is there a square?", "no")] * 70)
    keep = presence_balanced(records, 40, np.random.default_rng(0))
    kinds = [asks_about_present(records[i]["conversations"][0]["value"][8:],
                                records[i]["conversations"][1]["value"]) for i in keep]
    assert len(keep) == len(set(keep)) == 40 and keep == sorted(keep)
    assert (kinds.count(None), kinds.count(True), kinds.count(False)) == (8, 10, 22)
    with pytest.raises(SystemExit):
        stage_main(get_config, "smollm2_stage2_plora", ["--data", "d", "--out", "o", "--init",
                                                        "i", "--balance-presence",
                                                        "--max-per-category", "0"])
    assert "--balance-presence needs --max-per-category N" in capsys.readouterr().err


def test_easy_vqa_complements_flip_the_answer_with_the_same_wording(capsys):
    import numpy as np

    from vit_tf.data.sources.easy_vqa import asks_about_present, complement, is_negated
    from vit_tf.experiments.smollm2_stage2_plora import get_config
    from vit_tf.experiments.smollm2_vision import presence_pairs, stage_main

    rng = np.random.default_rng(0)
    truth = {"color": "red", "shape": "circle"}
    assert complement("is there a blue shape?", "no", truth, rng) == ("is there a red shape?",
                                                                       "yes")
    assert complement("is there not a triangle in the image?", "yes", truth, rng) == (
        "is there not a circle in the image?", "no")
    for _ in range(20):   # named present -> some absent value, never the same
        question, answer = complement("is a red shape present?", "yes", truth, rng)
        assert answer == "no" and question.split()[2] in ("green", "blue", "black", "gray",
                                                           "teal", "brown", "yellow")
    assert complement("is there a circle?", "yes", {"color": "red"}, rng) is None  # unknown
    assert is_negated("is no red shape present?") and not is_negated("is there a red shape?")

    def record(i, image, question, answer):
        return {"id": f"q{i}", "image_path": image, "category": "easy_vqa",
                "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                                  {"from": "gpt", "value": answer}]}

    records = [record(0, "a.png", "what is the red shape?", "circle"),
               record(1, "a.png", "is there a blue shape?", "no"),
               record(2, "a.png", "is there not a triangle?", "yes"),
               record(3, "b.png", "is there a green shape?", "no")]     # b: nothing stated
    pairs = presence_pairs(records, records, rng)
    assert [(p["id"], p["image_path"], p["conversations"][0]["value"],
             p["conversations"][1]["value"]) for p in pairs] == [
        ("q1-complement", "a.png", "<image>\nis there a red shape?", "yes"),
        ("q2-complement", "a.png", "<image>\nis there not a circle?", "no")]
    # Each pair: one question about a present thing, one about an absent one.
    for original, pair in zip(records[1:3], pairs):
        kinds = {asks_about_present(r["conversations"][0]["value"][8:],
                                    r["conversations"][1]["value"]) for r in (original, pair)}
        assert kinds == {True, False}
    with pytest.raises(SystemExit):
        stage_main(get_config, "smollm2_stage2_plora", ["--data", "d", "--out", "o", "--init",
                                                        "i", "--pair-presence"])
    assert "--pair-presence needs --max-per-category N" in capsys.readouterr().err
