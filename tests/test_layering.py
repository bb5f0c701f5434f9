"""The import layering holds: ``lint-imports`` keeps every contract in ``pyproject.toml``.

The contracts (``[tool.importlinter]``) put the packages in layers (cli > commands >
experiments > eval | export | planning > inference > training > runs > models > layers | data >
config | registry) and keep training code out of everything that only uses a trained model.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _lint_imports(root):
    exe = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    if not os.path.exists(exe):
        pytest.fail(f"{exe} not found: install the pinned requirements "
                    "(pip install -r requirements.txt)")
    # This checkout's vit_tf, not another installed copy: lint-imports imports it from cwd.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([exe, "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_layering_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout


def test_the_contracts_catch_an_upward_import_and_an_unplaced_module(tmp_path):
    shutil.copytree(os.path.join(ROOT, "vit_tf"), tmp_path / "vit_tf",
                    ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    with open(tmp_path / "vit_tf" / "data" / "template.py", "a") as f:
        f.write("\nimport vit_tf.models.vlm  # noqa: E402,F401\n")
    (tmp_path / "vit_tf" / "helpers.py").write_text('"""Not placed in any layer."""\n')
    result = _lint_imports(str(tmp_path))
    assert result.returncode != 0
    assert "vit_tf.data is not allowed to import vit_tf.models" in result.stdout, result.stdout
    assert "vit_tf.helpers" in result.stdout, result.stdout
