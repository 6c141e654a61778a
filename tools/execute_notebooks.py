"""Execute every notebook from its jupytext source (notebooks/*.py) and store the outputs in its .ipynb.

`make notebooks` runs this; tests/test_notebooks.py checks that each committed .ipynb holds outputs of
its current source. Progress bars are off (CI=true) so the outputs hold results only.
"""

import os
import pathlib
import sys
import tempfile

import jupytext
import nbclient

os.environ["CI"] = "true"
NB = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


def main() -> int:
    for py in sorted(NB.glob("*.py")):
        nb = jupytext.read(py)
        with tempfile.TemporaryDirectory() as d:
            nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                    resources={"metadata": {"path": d}}).execute()
        for c in nb.cells:
            c.get("metadata", {}).pop("execution", None)
        jupytext.write(nb, py.with_suffix(".ipynb"))
        print(f"executed {py.with_suffix('.ipynb').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
