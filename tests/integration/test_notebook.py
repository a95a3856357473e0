"""notebooks/utilization.ipynb runs headless on the outputs of a tiny sweep."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "utilization.ipynb"


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list[dict]:
    return [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == kind]


@pytest.mark.slow
def test_notebook_draws_the_figures_from_run_dirs(
    tiny_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    figures = tmp_path / "figures"
    monkeypatch.setenv("COLCOMPRESS_RUN_DIRS", str(tiny_sweep / "logs" / "sweep"))
    monkeypatch.setenv("COLCOMPRESS_FIGURES_DIR", str(figures))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    assert not _outputs(nb, "error")
    written = sorted(p.name for p in figures.glob("*.png"))
    assert written == [
        "correlation_inv_cv_nfcorpus.png",
        "correlation_inv_gini_nfcorpus.png",
        "utilization_grid_nfcorpus.png",
    ]
    assert all((figures / name).stat().st_size > 10_000 for name in written)
    # one column per method: none (the newest of its two runs), hpool@4, hpool@8
    text = "".join(
        str(o.get("data", {}).get("text/markdown", "")) for o in _outputs(nb, "display_data")
    )
    assert "| hpool@4 |" in text and "| hpool@8 |" in text and "| none |" in text
    assert "1/CV Pearson r" in text
    assert len([o for o in _outputs(nb, "display_data") if "image/png" in o["data"]]) == 3
