"""The notebooks run from top to bottom (each a jupytext-paired .py next to its .ipynb)."""

import sys
from pathlib import Path

import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NB.glob("*.py"))


def test_every_notebook_is_paired():
    assert NOTEBOOKS, "no notebooks found"
    for stem in NOTEBOOKS:
        assert (NB / f"{stem}.ipynb").is_file(), f"{stem}.py has no paired .ipynb (jupytext --sync)"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_executes(stem, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(NB / f"{stem}.py")  # the .py is the source of truth; the .ipynb is its pair
    # "python3" is ipykernel's built-in kernel spec, which launches this interpreter (sys.executable):
    # the project's environment, with no global `jupyter kernelspec install` needed
    from ipykernel.kernelspec import get_kernel_dict

    assert get_kernel_dict()["argv"][0] == sys.executable
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_committed_notebook_is_executed_and_current(stem):
    """The .ipynb on the repository page shows results, and they come from the current .py source."""
    jupytext = pytest.importorskip("jupytext")
    src = [c.source for c in jupytext.read(NB / f"{stem}.py").cells if c.cell_type == "code"]
    nb = jupytext.read(NB / f"{stem}.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.source for c in code] == src, f"{stem}.ipynb is stale: re-execute it from {stem}.py"
    with_output = [c for c in code if c.get("outputs")]
    assert len(with_output) >= len(code) / 2
    kinds = {k for c in with_output for o in c["outputs"] for k in o.get("data", {})}
    assert "image/png" in kinds
    text = (NB / f"{stem}.ipynb").read_text()
    assert "Traceback" not in text and "site-packages" not in text  # no errors, no paths of a machine
