"""The task API as a notebook user meets it: raw data in, fit, generate, presets, export.

The first test is written like a notebook: a tf.data of raw {image bytes, conversation} ->
``task.fit`` for a few steps -> ``task.generate`` from a file path -> ``save_to_preset`` ->
``from_preset`` in a fresh process -> identical tokens; the same preset exported and served
with identical tokens. The others give the Python API bad input and check the errors name it.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import tiny_task, write_image
from vit_tf.models.task import PresetError
from vit_tf.models.vlm import VisionLanguageModel

PROMPTS = ["What colour is the circle?", "how many squares are there"]
FRESH = """
import json, sys
from vit_tf import VisionLanguageModel
task = VisionLanguageModel.from_preset(sys.argv[1])
ids = task.generator(6, jit_compile=False).generate_ids(sys.argv[2:4], [
    [{"from": "human", "value": p}] for p in %r])
print("IDS " + json.dumps([[int(i) for i in row] for row in ids]))
""" % (PROMPTS,)
SERVE = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(images=tf.constant([open(p, "rb").read() for p in sys.argv[2:4]]),
            prompts=tf.constant(%r), max_new_tokens=tf.constant(6))
print("TEXT " + json.dumps([t.decode() for t in out["text"].numpy()]))
""" % (PROMPTS,)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    return [write_image(root / "a.png", (20, 12), seed=1),
            write_image(root / "b.jpg", (30, 30), seed=2, format="JPEG")]


def _raw_dataset(paths):
    """What a notebook user writes: encoded bytes and a conversation per example."""
    data = [open(p, "rb").read() for p in paths] * 4
    roles = [["human", "gpt", "human", "gpt"]] * len(data)
    values = [["<image>\nWhat colour is the circle?", "The circle is red.",
               "how many squares are there", "there are two squares"]] * len(data)
    return tf.data.Dataset.from_tensor_slices(
        {"images": data, "roles": tf.ragged.constant(roles), "values": tf.ragged.constant(values)})


def _fresh(script, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.getcwd()
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_notebook_fit_generate_save_load_in_a_fresh_process_and_export(images, tmp_path):
    task, _ = tiny_task(seed=4)
    task.compile(learning_rate=5e-3, warmup_steps=1, jit_compile=False)
    history = task.fit(_raw_dataset(images).batch(4), epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]   # it learned something

    answer = task.generate(images[0], PROMPTS[0], max_new_tokens=6, jit_compile=False)
    assert isinstance(answer, str)
    ids = task.generator(6, jit_compile=False).generate_ids(
        images, [[{"from": "human", "value": p}] for p in PROMPTS])
    assert any(ids)
    texts = task.generate({"images": images, "prompts": PROMPTS}, max_new_tokens=6,
                          jit_compile=False)
    assert texts[0] == answer
    assert "".join(task.generate_stream(images[0], PROMPTS[0], max_new_tokens=6,
                                        jit_compile=False)).strip() == answer

    preset = str(tmp_path / "preset")
    task.save_to_preset(preset)
    assert sorted(os.listdir(preset)) == ["assets", "metadata.json", "preprocessor.json",
                                          "task.json", "task.weights.h5"]
    line = next(l for l in _fresh(FRESH, preset, *images).splitlines() if l.startswith("IDS "))
    assert json.loads(line[4:]) == [list(map(int, row)) for row in ids]

    from vit_tf.export.saved_model import export_run

    export_run(preset, str(tmp_path / "saved"))
    line = next(l for l in _fresh(SERVE, str(tmp_path / "saved"), *images).splitlines()
                if l.startswith("TEXT "))
    assert json.loads(line[5:]) == texts


def test_keras_file_round_trip_keeps_the_preprocessor(images, tmp_path):
    task, _ = tiny_task(seed=5)
    expected = task.generate(images, PROMPTS, max_new_tokens=5, jit_compile=False)
    task.save(tmp_path / "task.keras")
    reloaded = keras.saving.load_model(tmp_path / "task.keras")
    assert reloaded.preprocessor.tokenizer.get_vocabulary() == \
        task.preprocessor.tokenizer.get_vocabulary()
    assert reloaded.generate(images, PROMPTS, max_new_tokens=5, jit_compile=False) == expected


def test_unbatched_raw_data_is_batched_and_prompts_responses_train_too(images):
    task, _ = tiny_task(seed=6)
    task.compile(jit_compile=False)
    pairs = tf.data.Dataset.from_tensor_slices({"images": images, "prompts": PROMPTS,
                                                "responses": ["red", "two"]})
    assert np.isfinite(task.fit(pairs, epochs=1, verbose=0).history["loss"]).all()
    assert np.isfinite(task.evaluate(pairs.batch(2), verbose=0)[0])


def test_fit_and_evaluate_hand_keras_datasets_without_the_autotune_thread(images, monkeypatch):
    task, _ = tiny_task(seed=6)
    seen = {}
    monkeypatch.setattr(keras.Model, "fit", lambda self, x, y=None, batch_size=None,
                        validation_data=None, **kw: seen.update(x=x, val=validation_data))
    monkeypatch.setattr(keras.Model, "evaluate",
                        lambda self, x, y=None, batch_size=None, **kw: seen.update(ev=x))
    raw = _raw_dataset(images)
    task.fit(raw, validation_data=raw.batch(2))
    task.evaluate(tf.data.Dataset.range(2))
    assert [seen[k].options().autotune.enabled for k in ("x", "val", "ev")] == [False] * 3
    task.fit(np.zeros((2, 3)))   # arrays pass through untouched
    assert isinstance(seen["x"], np.ndarray)


def test_unreadable_image_path_and_bytes_are_named(images, tmp_path):
    task, _ = tiny_task()
    with pytest.raises(tf.errors.NotFoundError, match="missing.png"):
        task.generate(str(tmp_path / "missing.png"), PROMPTS[0], jit_compile=False)
    bad = tmp_path / "notes.png"
    bad.write_text("these are not pixels")
    with pytest.raises(tf.errors.InvalidArgumentError, match="notes.png"):
        task.generate(str(bad), PROMPTS[0], jit_compile=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a PNG, JPEG, GIF or BMP"):
        task.generate(b"\x00garbage", PROMPTS[0], jit_compile=False)


def test_bad_conversations_and_long_prompts_are_named(images):
    task, config = tiny_task()
    with pytest.raises(ValueError, match="conversation 0: .*end with a human turn"):
        task.generate({"images": images[:1], "conversations": [
            [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yes"}]]})
    with pytest.raises(ValueError, match="conversation 0 turn 0 field from: unknown role 'bot'"):
        task.generate({"images": images[:1], "conversations": [[{"from": "bot", "value": "x"}]]})
    with pytest.raises(ValueError, match="does not fit the model's text context"):
        task.generate(images[0], "is it big " * config.data.max_text_length, jit_compile=False)
    with pytest.raises(ValueError, match="2 images but 3 prompts"):
        task.generate(images, PROMPTS + ["one more"])
    # training data: a conversation (roles / values) follows the validator's rules and names
    # its record; one longer than the context is refused naming the context
    task.compile(jit_compile=False)

    def conversation(values, roles=("human", "gpt")):
        return tf.data.Dataset.from_tensor_slices({
            "images": images[:1], "id": ["rec-9"], "roles": tf.constant([list(roles)]),
            "values": tf.constant([values])}).batch(1)

    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"<image> must stand exactly once, in the first human turn[\s\S]*rec-9"):
        task.fit(conversation(["Is it big", "yes"]), epochs=1, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"turns must alternate[\s\S]*rec-9"):
        task.fit(conversation(["<image>\nIs it big", "yes"], roles=("gpt", "human")), epochs=1,
                 verbose=0)
    long = tf.data.Dataset.from_tensor_slices({"images": images[:1], "prompts": [
        "is it big " * 40], "responses": ["yes"]}).batch(1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than the text context"):
        task.fit(long, epochs=1, verbose=0)


def test_preset_with_a_missing_or_mismatched_file_is_refused_naming_it(tmp_path):
    task, _ = tiny_task()
    preset = tmp_path / "p"
    task.save_to_preset(str(preset))
    with pytest.raises(FileExistsError, match="already holds a preset"):
        task.save_to_preset(str(preset))

    weights = preset / "task.weights.h5"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])            # truncated
    with pytest.raises(PresetError, match="task.weights.h5: does not match"):
        VisionLanguageModel.from_preset(str(preset))
    weights.write_bytes(data)
    VisionLanguageModel.from_preset(str(preset))            # intact again: loads

    os.remove(preset / "assets" / "tokenizer" / "vocabulary.txt")
    with pytest.raises(FileNotFoundError, match="vocabulary.txt: missing from the preset"):
        VisionLanguageModel.from_preset(str(preset))
    os.remove(preset / "metadata.json")
    with pytest.raises(FileNotFoundError, match="not a vit_tf preset"):
        VisionLanguageModel.from_preset(str(preset))
    with pytest.raises(FileNotFoundError, match="no such preset folder"):
        VisionLanguageModel.from_preset(str(tmp_path / "nowhere"))


def test_preset_of_another_shape_is_refused_naming_the_weights(tmp_path):
    small, _ = tiny_task()
    big, _ = tiny_task(model__decoder__hidden_dim=32)
    small.save_to_preset(str(tmp_path / "small"))
    big.save_to_preset(str(tmp_path / "big"))
    for name in ("task.weights.h5",):  # swap the weights, then make the metadata agree
        os.replace(tmp_path / "big" / name, tmp_path / "small" / name)
    meta = json.loads((tmp_path / "small" / "metadata.json").read_text())
    from vit_tf.digest import file_sha256

    meta["files"]["task.weights.h5"] = file_sha256(tmp_path / "small" / "task.weights.h5")
    (tmp_path / "small" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PresetError, match="task.weights.h5: does not fit"):
        VisionLanguageModel.from_preset(str(tmp_path / "small"))


def test_compile_defaults_are_adamw_masked_mean_loss_token_accuracy_and_xla():
    task, _ = tiny_task()
    task.compile()
    assert isinstance(task.optimizer, keras.optimizers.AdamW)
    assert task.optimizer.global_clipnorm == 1.0
    assert task.loss.reduction == "mean_with_sample_weight"
    assert task.jit_compile is True


def test_a_preset_of_a_model_compiled_for_training_holds_no_optimizer(tmp_path):
    """A run's task is compiled with vit_tf.training's optimizer; its preset must load where
    that code is absent, so task.json carries no compile config."""
    from vit_tf.training.optim import compile_model

    task, config = tiny_task()
    compile_model(task, config.train, total_steps=4)
    task.save_to_preset(str(tmp_path / "p"))
    assert "compile_config" not in json.loads((tmp_path / "p" / "task.json").read_text())
    assert not VisionLanguageModel.from_preset(str(tmp_path / "p")).compiled
