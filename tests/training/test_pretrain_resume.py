"""``vit-tf pretrain --resume`` after a real ``kill -9``: the per-epoch losses equal an
uninterrupted run's; a resume on other data, with --set, or of a finished run is refused."""

import json
import threading

import numpy as np

from tests.helpers import kill_after_first_checkpoint
from tests.training.test_resume_cli import shapes  # noqa: F401
from vit_tf.cli import main

TINY = [
    "data.image_size=16", "model.encoder.patch_size=8", "model.encoder.hidden_dim=8",
    "model.encoder.num_layers=1", "model.encoder.num_heads=1",
    "model.encoder.intermediate_dim=16", "pretrain.text_hidden_dim=8",
    "pretrain.text_num_layers=1", "pretrain.text_num_heads=1",
    "pretrain.text_intermediate_dim=16", "pretrain.embed_dim=8", "pretrain.text_max_length=64",
    "pretrain.text_vocabulary_size=120", "pretrain.texts=caption,description",
    "pretrain.batch_size=4", "pretrain.epochs=4", "pretrain.steps_per_epoch=3",
    "pretrain.warmup_steps=2", "train.steps_per_execution=1", "train.jit_compile=false",
    "train.checkpoint_every_steps=2",    # step 2 of 3: the first checkpoint is mid-epoch
]


def _data(shapes, train="train.json"):  # noqa: F811
    return ["--data", str(shapes / train), "--image-root", str(shapes)]


def _args(shapes, out):  # noqa: F811
    return ["pretrain", *_data(shapes), "--out", str(out),
            *[a for item in TINY for a in ("--set", item)]]


def _history(run):
    return json.loads((run / "pretrain_summary.json").read_text())["history"]


def test_kill_9_then_resume_gives_the_losses_of_an_uninterrupted_run(shapes, tmp_path,  # noqa: F811
                                                                     capsys):
    killed, errors = tmp_path / "killed", []

    def kill():   # in a thread, so that the uninterrupted run trains meanwhile (2 cores)
        try:
            kill_after_first_checkpoint(_args(shapes, killed), killed / "state",
                                         tmp_path / "log.txt")
        except AssertionError as e:
            errors.append(e)

    killer = threading.Thread(target=kill)
    killer.start()
    assert main(_args(shapes, tmp_path / "full")) == 0
    killer.join()
    assert not errors, errors[0]
    assert not (killed / "metadata.json").exists(), "the run finished before it was killed"
    capsys.readouterr()

    # Refused before anything is trained: other data, --set, a fresh start over the folder.
    other = json.loads((shapes / "train.json").read_text())
    next(r for r in other if r["category"] == "caption")["conversations"][1]["value"] = "no."
    (shapes / "other.json").write_text(json.dumps(other))
    assert main(["pretrain", *_data(shapes, "other.json"), "--out", str(killed),
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert "refusing to resume" in err and "data.texts_sha256" in err, err
    assert main(["pretrain", *_data(shapes), "--out", str(killed), "--resume",
                 "--set", "pretrain.epochs=5"]) == 2
    assert "drop --set" in capsys.readouterr().err
    assert main(_args(shapes, killed)) == 2
    assert "pass --resume" in capsys.readouterr().err

    assert main(["pretrain", *_data(shapes), "--out", str(killed), "--resume"]) == 0
    resumed_at = [line for line in capsys.readouterr().out.splitlines() if "resuming" in line]
    assert resumed_at and " at step 0 " not in resumed_at[0]
    full, resumed = _history(tmp_path / "full"), _history(killed)
    assert len(resumed["loss"]) == 4
    for key in ("loss", "logit_scale", "logit_bias"):
        np.testing.assert_allclose(resumed[key], full[key], rtol=1e-5, err_msg=key)
    assert json.loads((killed / "pretrain_summary.json").read_text())["resumed_at_step"] >= 2
    assert (killed / "image_encoder").is_dir()

    assert main(["pretrain", *_data(shapes), "--out", str(killed), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_second_pretrain_into_a_folder_being_written_is_refused(shapes, tmp_path, capsys):  # noqa: F811
    from vit_tf.runs import RunLock

    out = tmp_path / "busy"
    with RunLock(str(out)):   # as a first process holds it while it trains
        assert main(_args(shapes, out)) == 2
    err = capsys.readouterr().err
    assert "is being written by host" in err and "choose another --out" in err
    assert not (out / "config.json").exists()   # nothing written by the refused run
