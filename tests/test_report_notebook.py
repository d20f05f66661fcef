"""notebooks/results.ipynb: committed without outputs, and it runs headlessly end to end (a tiny sweep of
its own, then the table, the plots and the reading through translearn.report's API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "results.ipynb"


def test_the_committed_notebook_has_no_outputs_and_a_parameters_cell() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    [params] = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert "SWEEP = None" in "".join(params["source"])


@pytest.mark.slow
def test_the_notebook_runs_a_tiny_sweep_and_shows_table_plots_and_reading(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    # papermill's way of passing parameters: a cell right after the tagged one overrides its values
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"WORK = {str(tmp_path)!r}\nEPOCHS = 1"))
    nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "2 runs, 0 cells without a result" in text
    assert "| shapes" in text and "| freeze" in text and "| finetune" in text  # the table
    assert "shapes rgb: finetune − freeze = " in text  # the reading's gap sentence
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # accuracy, params, curves, the written accuracy.png
    assert (tmp_path / "tiny-sweep" / "report" / "curves.png").is_file()
