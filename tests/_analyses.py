"""Load an audit script (``analyses/<name>/run.py``) as a module for the analyses tests."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_analysis(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_run", ROOT / "analyses" / name / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
