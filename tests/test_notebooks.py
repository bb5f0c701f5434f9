"""The notebooks run top to bottom (nbclient) in smoke mode (VIT_TF_SMOKE=1: tiny sizes)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ("01_quickstart", "02_your_own_data", "03_export_and_serve")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all three, in order: 03 reuses the run 01 trained (as a reader would)."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode(name, workdir, monkeypatch):
    monkeypatch.setenv("VIT_TF_SMOKE", "1")
    monkeypatch.setenv("PYTHONPATH", ROOT)  # this checkout's vit_tf, whatever is installed
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
