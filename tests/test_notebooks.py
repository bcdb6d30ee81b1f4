"""Every notebook in notebooks/ runs top to bottom on a real small sweep."""

import nbformat
import pytest
from conftest import ROOT, clean_env
from nbclient import NotebookClient

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, quick_sweep, tmp_path):
    nb = nbformat.read(path, as_version=4)
    env = clean_env(SENET_SWEEP=str(quick_sweep), SENET_FIGURES=str(tmp_path / "figures"))  # the kernel's
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(
        env=env
    )
    text = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/markdown", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert "6 runs under" in text and "SE-ResNet-20 (max squeeze)" in text
    assert list((tmp_path / "figures").glob("*.png"))
