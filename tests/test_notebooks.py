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


def _outputs(nb):
    """[(source, printed text, the cell's value as text, has an image)] per code cell."""
    cells = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        printed, value, image = [], [], False
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                printed.append(o.get("text", ""))
            else:
                value.append(o.get("data", {}).get("text/plain", ""))
                image = image or "image/png" in o.get("data", {})
        cells.append((c.source, "".join(printed), "".join(value), image))
    return cells


def _cell(cells, fragment):
    matches = [cell[1:] for cell in cells if fragment in cell[0]]
    assert len(matches) == 1, fragment
    return matches[0]


# What each notebook's prose says its cells show (beyond "no cell raised").
def _check_01_quickstart(cells):
    printed, losses, _ = _cell(cells, 'result["history"]["loss"]')
    assert losses.startswith("[") and float(losses.strip("[]").split(",")[0]) > 0
    assert "epoch 1/" in printed                                # the run's epoch lines
    printed, _, _ = _cell(cells, "for r, answer in zip(records, answers)")
    lines = [line for line in printed.splitlines() if " -> " in line]
    assert len(lines) == 4 and all("(reference " in line for line in lines)
    _, beams, _ = _cell(cells, 'sampler="beam"')
    assert beams.startswith("[") and beams.count("'") >= 8          # four answers
    printed, _, image = _cell(cells, "render_overlay(result")
    assert image and printed.strip().endswith(", 2, 2)")              # (tokens, grid, grid)


def _check_02_your_own_data(cells):
    report, _, _ = _cell(cells, "print(report.format())")
    assert "broken.png" in report and "valid records: " in report
    assert "'r1'" in report.split("valid records: ")[1]
    marked, _, _ = _cell(cells, "format_trained_tokens(preprocessor")
    assert "[[" in marked and "]]" in marked and "trained" in marked
    _, shapes, _ = _cell(cells, "inputs, labels, weights = next(")
    assert "'images': (TensorShape([2, 32, 32, 3]), 'float32')" in shapes


def _check_03_export_and_serve(cells):
    _, served, _ = _cell(cells, "served = [t.decode()")
    _, local, _ = _cell(cells, "assert local == served")
    assert served == local and served.startswith("[")
    bad, _, _ = _cell(cells, "definitely not an image")
    assert "not a PNG, JPEG, GIF or BMP image" in bad


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
    globals()[f"_check_{name}"](_outputs(nb))
