"""SHA-256 of a file's bytes, read in 1 MiB blocks: the one helper every preset, cache, dataset
fingerprint and evaluation pin uses (a leaf module: anything may import it).

Example:
    >>> file_sha256("runs/x/task.weights.h5")
    '3f2a...'
"""

import hashlib
import os

BLOCK = 1 << 20


def file_sha256(path):
    """The hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file_digests(folder, digests, listed_in, error=ValueError):
    """Check that each file ``digests`` names ({relative path: SHA-256}) exists under ``folder``
    with that digest: else ``FileNotFoundError`` or ``error``, naming the file and ``listed_in``
    (the metadata file that lists it). The one check behind every preset's metadata."""
    for name, digest in digests.items():
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            raise FileNotFoundError(f"{file}: missing from the preset (listed in {listed_in})")
        if file_sha256(file) != digest:
            raise error(f"{file}: does not match {listed_in} (changed or truncated after the "
                        "preset was written)")
