"""Shared test helpers: a tiny config, a tiny tokenizer, tiny images and the one layer check.

Everything here is sized so a whole test file runs in seconds on two CPU cores.
"""

import json

import keras
import numpy as np
from PIL import Image

from vit_tf.config import ExperimentConfig, apply_overrides

TINY_OVERRIDES = (
    "data.image_size=16",
    "data.max_text_length=32",
    "data.vocabulary_size=128",
    "data.batch_size=4",
    "model.encoder.patch_size=8",
    "model.encoder.hidden_dim=16",
    "model.encoder.num_layers=1",
    "model.encoder.num_heads=2",
    "model.encoder.intermediate_dim=32",
    "model.encoder.conv_stem=true",
    "model.projector.name=mlp",
    "model.decoder.hidden_dim=16",
    "model.decoder.num_layers=1",
    "model.decoder.num_heads=2",
    "model.decoder.intermediate_dim=32",
    "train.epochs=1",
    "train.warmup_steps=2",
    "train.jit_compile=false",
    "train.xla_update=false",  # tests/training/test_compiled_update.py tests the compiled update
    "train.relevance_maps=0",  # default 1; tests that want the maps set it
    # default 0 (auto: 2 slices on CPU); the slices double a tiny step's ops and its tracing,
    # which dominate these tests (tests/models/test_vlm.py checks the slices themselves)
    "train.batch_slices=1",
    "generate.max_new_tokens=8",
    "generate.batch_size=4",
)

# Sentences the tiny tokenizer is trained on; repeated so whole words enter the vocabulary.
TINY_TEXTS = (
    "What colour is the circle?",
    "The circle is red.",
    "How many squares are there",
    "there are two squares",
    "Is it big",
    "yes it is big",
    "a blue triangle on the left",
    "and what is on the right",
    "a green square on the right",
)


def tiny_config(**overrides):
    """A tiny ``ExperimentConfig``; ``overrides`` use ``__`` for dots: ``train__epochs=3``."""
    extra = [f"{key.replace('__', '.')}={value}" for key, value in overrides.items()]
    return apply_overrides(ExperimentConfig(name="tiny"), [*TINY_OVERRIDES, *extra])


_TOKENIZER = None


def tiny_tokenizer():
    """A WordPiece tokenizer trained on ``TINY_TEXTS`` (trained once per test session)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from vit_tf.data.tokenizer import train_tokenizer

        _TOKENIZER = train_tokenizer(list(TINY_TEXTS) * 20, vocabulary_size=128)
    return _TOKENIZER


def write_image(path, size=(20, 12), mode="RGB", seed=0, format=None):
    """Write a random image of PIL ``mode`` ("RGB", "L", "RGBA", "P") and ``size`` (w, h)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "L":
        image = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    elif mode == "RGBA":
        image = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    elif mode == "P":
        rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        image = rgb.quantize(colors=16)
    else:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    image.save(path, format=format)
    assert Image.open(path).mode == mode or format == "JPEG"
    return str(path)


def _to_numpy(x):
    if isinstance(x, (tuple, list)):
        return [_to_numpy(v) for v in x]
    return keras.ops.convert_to_numpy(x)


def _call(layer, inputs):
    if isinstance(inputs, dict):
        return layer(**inputs)
    if isinstance(inputs, tuple):
        return layer(*inputs)
    return layer(inputs)


def _symbolic(x, name):
    x = np.asarray(x)
    return keras.Input(shape=x.shape[1:], dtype=str(x.dtype), name=name)


def run_layer_test(layer, inputs, tmp_path, expected_output_shape=None):
    """Build and call ``layer``; round-trip its config and a ``.keras`` model; same outputs.

    ``inputs`` is one array, a tuple of positional arrays or a dict of keyword arrays.
    Checks:
      * the layer builds and its output has ``expected_output_shape`` (if given);
      * ``get_config`` is JSON-serializable and ``serialize_keras_object`` ->
        ``deserialize_keras_object`` gives a layer of the same class and the same config;
      * the copy takes the original's weights (same count and shapes) and gives the same outputs;
      * a functional model wrapping the layer saves to ``.keras`` and reloads with identical outputs.
    Returns the layer's output (numpy).
    """
    output = _to_numpy(_call(layer, inputs))
    assert layer.built
    assert layer.weights, "the layer should own weights after being called"
    if expected_output_shape is not None:
        assert tuple(np.shape(output)) == tuple(expected_output_shape)

    config = layer.get_config()
    json.dumps(config)  # raises if the config is not plain data
    serialized = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(clone) is type(layer)
    # Compared as JSON: nested serialized layers keep build shapes as tuples live, lists reloaded.
    assert json.loads(json.dumps(clone.get_config())) == json.loads(json.dumps(config))
    _call(clone, inputs)  # build
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_to_numpy(_call(clone, inputs)), output, rtol=0, atol=1e-6)

    # A .keras file with the layer inside a functional model.
    if isinstance(inputs, dict):
        symbolic = {k: _symbolic(v, k) for k, v in inputs.items()}
        model = keras.Model(symbolic, layer(**symbolic))
        feed = dict(inputs)
    elif isinstance(inputs, tuple):
        symbolic = [_symbolic(v, f"input_{i}") for i, v in enumerate(inputs)]
        model = keras.Model(symbolic, layer(*symbolic))
        feed = list(inputs)
    else:
        symbolic = _symbolic(inputs, "input_0")
        model = keras.Model(symbolic, layer(symbolic))
        feed = inputs
    live = _to_numpy(model(feed))
    np.testing.assert_allclose(live, output, rtol=0, atol=1e-6)
    path = tmp_path / f"{layer.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(_to_numpy(reloaded(feed)), live)
    return output


_PREPROCESSORS = {}


def tiny_preprocessor(config=None):
    """The tiny WordPiece in our chat format, sized for ``config`` (default ``tiny_config()``);
    one object per size and context, so its tokenization is traced once per test process."""
    from vit_tf.data.preprocessor import VisionLanguagePreprocessor

    config = config or tiny_config()
    key = (config.data.image_size, config.data.max_text_length)
    if key not in _PREPROCESSORS:
        _PREPROCESSORS[key] = VisionLanguagePreprocessor(tiny_tokenizer(), "vit_tf", *key)
    return _PREPROCESSORS[key]


def tiny_task(seed=0, **overrides):
    """An untrained tiny task (model + preprocessor) -> (task, config)."""
    from vit_tf.models.factory import build_task

    config = tiny_config(**overrides)
    keras.utils.set_random_seed(seed)
    return build_task(config, tiny_preprocessor(config)), config


def write_tiny_run(run, seed=0, **overrides):
    """A run folder (config.json + the preset files) of an untrained tiny task -> config."""
    import os

    from vit_tf.config import save_config

    task, config = tiny_task(seed, **overrides)
    task.save_to_preset(run, generate_config=config.generate)
    save_config(config, os.path.join(run, "config.json"))
    return config


def kill_after_first_checkpoint(argv, state_dir, log_path, timeout=1200):
    """Run ``python -m vit_tf.cli ARGV`` in a subprocess and SIGKILL it as soon as a
    training-state checkpoint (``state_dir/step_*``) exists; the log goes to ``log_path``."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "vit_tf.cli", *argv], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while not (os.path.isdir(state_dir) and any(n.startswith("step_")
                                                    for n in os.listdir(state_dir))):
            if proc.poll() is not None:
                raise AssertionError(f"training exited early: {open(log_path).read()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint in {timeout} s: "
                                     f"{open(log_path).read()[-2000:]}")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def require_weights_package(name):
    """The catalogued source ``name`` (``vit_tf.pretrained.CATALOG``) when its package is
    installed; otherwise skip the test, except under CI (``CI=true``, as .ci/run), where a
    missing package fails."""
    import importlib.metadata
    import os

    import pytest

    from vit_tf import pretrained

    src = pretrained.CATALOG[name]
    try:
        importlib.metadata.version(src.package)
    except importlib.metadata.PackageNotFoundError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{src.package} not installed ({src.install_command})")
    return src
