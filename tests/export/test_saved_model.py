"""The exported SavedModel serves the same answers as `vit-tf generate`, in a process with only
tensorflow and tensorflow-text (no vit_tf or keras_hub)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import write_image, write_tiny_run
from vit_tf.cli import main

PROMPTS = ["What colour is the circle?", "<image>\nis it big", "how many squares are there"]
CHECK = os.path.join(os.path.dirname(__file__), "serve_check.py")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    run = str(root / "run")
    write_tiny_run(run, seed=3)
    images = [write_image(root / "a.png", (20, 12), seed=1),
              write_image(root / "b.jpg", (30, 30), seed=2, format="JPEG"),
              write_image(root / "c.png", (16, 16), mode="RGBA", seed=3)]
    assert main(["export", "--model", run, "--out", str(root / "saved")]) == 0
    return run, str(root / "saved"), images, root


@pytest.fixture(scope="module")
def served(exported):
    """The fresh process (run from an empty folder) and `saved_model_cli show`, side by side."""
    _, saved, images, root = exported
    cwd = root / "empty_cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = shutil.copy(CHECK, cwd / "serve_check.py")
    fresh = subprocess.Popen([sys.executable, "-I", script, saved, *images, "--", *PROMPTS],
                             cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    show = subprocess.run([cli, "show", "--dir", saved, "--tag_set", "serve", "--signature_def",
                           "serving_default"], cwd=cwd, env=env, capture_output=True, text=True)
    out, err = fresh.communicate()
    assert fresh.returncode == 0, err[-3000:]
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), show


def _generate_cli(run, images, capsys):
    capsys.readouterr()
    argv = ["generate", "--model", run, "--max-new-tokens", "8"]
    for image, prompt in zip(images, PROMPTS):
        argv += ["--image", image, "--prompt", prompt]
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_fresh_process_cannot_import_vit_tf_or_keras_hub(served):
    result, _ = served
    assert result["blocked"] == {"vit_tf": True, "keras_hub": True}
    assert result["loaded_modules"] == []


def test_saved_model_in_a_fresh_process_answers_as_vit_tf_generate(exported, served, capsys):
    run, _, images, _ = exported
    result, _ = served
    expected = _generate_cli(run, images, capsys)
    assert any(expected)  # the untrained model says something
    assert result["texts"] == expected
    assert result["after_errors"] == expected
    assert all(0 < n <= 8 for n in result["num_tokens"])


def test_bad_image_bytes_raise_a_clear_invalid_argument_error_and_the_process_keeps_serving(served):
    result, _ = served
    assert "[image 0 of the batch (20 bytes)]" in result["bad_bytes_error"]
    assert "not a PNG, JPEG, GIF or BMP image" in result["bad_bytes_error"]
    assert "a prompt does not fit the text context of the model" in result["long_prompt_error"]


def test_saved_model_cli_show_lists_the_serving_signature(served):
    _, show = served
    assert show.returncode == 0, show.stderr[-2000:]
    for name in ("inputs['images']", "inputs['prompts']", "inputs['max_new_tokens']",
                 "outputs['text']", "outputs['num_tokens']"):
        assert name in show.stdout


def test_export_refuses_an_existing_folder(exported, capsys):
    run, saved, _, _ = exported
    assert main(["export", "--model", run, "--out", saved]) == 2
    assert "already exists" in capsys.readouterr().err


def test_generate_cli_stream_and_decoding_flags(exported, capsys):
    run, _, images, _ = exported
    base = ["generate", "--model", run, "--image", images[0], "--prompt", PROMPTS[0],
            "--max-new-tokens", "6", "--no-xla"]
    assert main(base) == 0
    greedy = capsys.readouterr().out
    assert main(base + ["--stream"]) == 0
    assert capsys.readouterr().out == greedy
    assert main(base + ["--strategy", "beam", "--num-beams", "1"]) == 0
    assert capsys.readouterr().out == greedy
    assert main(base + ["--strategy", "top_p", "--top-p", "1.5"]) == 2
    assert "generate.top_p must be in (0, 1]" in capsys.readouterr().err


def test_chat_cli_reads_lines_until_quit(exported, capsys, monkeypatch):
    import io

    run, _, images, _ = exported
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PROMPTS[0]}\n/image {images[1]}\n/quit\nnever\n"))
    assert main(["chat", "--model", run, "--image", images[0], "--max-new-tokens", "4",
                 "--no-xla"]) == 0
    out = capsys.readouterr().out
    assert "model: " in out and f"(image: {images[1]}; new conversation)" in out
