"""Loaders for responses and references from CSV, Parquet and JSONL files.

Files are read as data only: no pickle, no ``eval``. List-valued fields in JSONL (an ``option_order``
shown as a list) are accepted only where the schema expects them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustalign._errors import SchemaError
from robustalign.schema import Reference, Responses, make_reference, make_responses

__all__ = ["load_reference", "load_responses", "read_table"]

_READERS = {
    ".csv": lambda p: pd.read_csv(p, dtype={"item": str, "option": str, "answer": str}, keep_default_na=True),
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False),
    ".ndjson": lambda p: pd.read_json(p, lines=True, dtype=False),
}


def read_table(path) -> pd.DataFrame:
    """Read a CSV, Parquet or JSON-lines file into a DataFrame (a DataFrame passes through)."""
    if isinstance(path, pd.DataFrame):
        return path
    p = Path(path)
    if not p.exists():
        raise SchemaError(f"file not found: {str(p)!r}. Check the path.")
    suffix = p.suffix.lower()
    if suffix not in _READERS:
        raise SchemaError(
            f"{p.name}: unsupported file type {suffix!r}; robustalign reads {sorted(_READERS)}. "
            "Convert the file, e.g. with pandas."
        )
    try:
        return _READERS[suffix](p)
    except (ValueError, OSError) as e:  # malformed file: say which and why
        raise SchemaError(f"{p.name}: could not be read as {suffix[1:]}: {e}") from None


def load_reference(path, scales=None, *, group_col: str = "group", **kwargs) -> Reference:
    """Load and validate a human-reference table (see :func:`robustalign.schema.make_reference`)."""
    sc = read_table(scales) if scales is not None and not isinstance(scales, dict) else scales
    return make_reference(read_table(path), sc, group_col=group_col, **kwargs)


def load_responses(path, reference: Reference | None = None, **kwargs) -> Responses:
    """Load and validate a responses table (see :func:`robustalign.schema.make_responses`)."""
    return make_responses(read_table(path), reference, **kwargs)
