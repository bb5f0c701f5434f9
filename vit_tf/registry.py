"""Explicit name -> class registries, so every swappable part is chosen by config.

Example:
    >>> IMAGE_ENCODERS = Registry("image encoder")
    >>> @IMAGE_ENCODERS.register("vit")
    ... class ViTEncoder: ...
    >>> IMAGE_ENCODERS.get("vit") is ViTEncoder
    True

An unknown name raises a ``KeyError`` that lists the known ones, never a silent default.
"""


class Registry:
    """A named mapping from config names to classes (or factories)."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        def decorator(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name):
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def __contains__(self, name):
        return name in self._entries


IMAGE_ENCODERS = Registry("image encoder")
PROJECTORS = Registry("projector")
DECODERS = Registry("decoder")
FUSIONS = Registry("fusion")
