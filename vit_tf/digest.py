"""SHA-256 of a file's bytes, read in 1 MiB blocks: the one helper every preset, cache, dataset
fingerprint and evaluation pin uses (a leaf module: anything may import it).

Example:
    >>> file_sha256("runs/x/task.weights.h5")
    '3f2a...'
"""

import hashlib

BLOCK = 1 << 20


def file_sha256(path):
    """The hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
