"""`import robustalign` stays light: no PyMC, PyTensor, ArviZ or matplotlib until a fit or a figure."""

import subprocess
import sys

HEAVY = ("pymc", "pytensor", "arviz", "matplotlib")


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.split()


def test_import_does_not_load_heavy_packages():
    assert _loaded_after("import robustalign") == []


def test_light_paths_stay_light():
    code = (
        "import robustalign as ra\n"
        "from robustalign.datasets import load_multicultural_alignment\n"
        "ra.simulate.simulate(n_items=5, rng=0).load()\n"
        "load_multicultural_alignment()\n"
    )
    assert _loaded_after(code) == []
