"""Write (and read) one named section of benchmarks/results.md, keeping the others."""

import os
import re

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.md")


def write_section(name, text, path=RESULTS):
    """Replace (or append) the block between ``<!-- name -->`` and ``<!-- /name -->``."""
    block = f"<!-- {name} -->\n{text.strip()}\n<!-- /{name} -->"
    old = open(path).read() if os.path.exists(path) else ""
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->", re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else (
        old.rstrip() + "\n\n" + block + "\n" if old.strip() else block + "\n")
    with open(path, "w") as f:
        f.write(new)


def read_section(name, path=RESULTS):
    """The text between ``<!-- name -->`` and ``<!-- /name -->`` (KeyError when absent)."""
    text = open(path).read() if os.path.exists(path) else ""
    match = re.search(rf"<!-- {re.escape(name)} -->\n?(.*?)<!-- /{re.escape(name)} -->", text,
                      re.S)
    if match is None:
        raise KeyError(f"{path}: no section {name!r}")
    return match.group(1)
