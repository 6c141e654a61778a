"""Loaders for responses and references from CSV, Parquet and JSONL files.

Files are read as data only: no pickle, no ``eval``. List-valued fields in JSONL (an ``option_order``
shown as a list) are accepted only where the schema expects them.

CSV files are read with only empty fields as missing: a group or model called ``NA`` (Namibia) or
``None`` is a name, not a missing value. The header row is read first and checked on its own: a
repeated column name, an empty column name (a pandas index written with ``to_csv``) or a trailing
comma on every row is an error that says how to fix the file, never a renamed or shifted column.
A UTF-16 file with a byte-order mark is decoded as UTF-16 (and a warning says so); any other file
that is not UTF-8 is refused with the row where decoding failed and how to re-save it.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from robustalign._errors import RobustAlignWarning, SchemaError, preview
from robustalign.schema import Reference, Responses, Scale, make_reference, make_responses

__all__ = ["load_reference", "load_responses", "read_table"]

# label columns are read as text: "01" stays "01", "NA" stays "NA"
_TEXT_COLUMNS = ("model", "item", "option", "answer", "group", "options", "labels", "option_order")
_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson")
_HEAD_ROWS = 2000


def _decode(p: Path) -> tuple[str, str]:
    """The text of a CSV/JSONL file and the encoding used (UTF-8, or UTF-16 when it has a BOM)."""
    raw = p.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError as e:
            raise SchemaError(f"{p.name}: starts with a UTF-16 byte-order mark but is not valid UTF-16 ({e.reason} "
                              f"at byte {e.start}). Re-save the file as UTF-8.") from None
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise SchemaError(
            f"{p.name}: is not UTF-8 text: it contains NUL bytes (first at line {line}), as UTF-16 files without a "
            "byte-order mark do. Re-save it as UTF-8 (e.g. `iconv -f utf-16le -t utf-8 in.csv > out.csv`, or "
            "'CSV UTF-8' in a spreadsheet)."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        bad = raw[e.start: e.start + 4]
        raise SchemaError(
            f"{p.name}: is not UTF-8 text: byte {bad[:1]!r} at line {line} (byte {e.start}) cannot be decoded. "
            "The file is probably in a legacy encoding such as latin-1 / Windows-1252. Re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`, or "
            "pandas `df.to_csv(path, encoding='utf-8')`, or 'CSV UTF-8' in a spreadsheet)."
        ) from None
    return text, "UTF-8"


def _check_header(text: str, name: str) -> list[str]:
    """Check the header row of a CSV text before pandas reads it (pandas renames and shifts silently)."""
    # the first rows show a systematic problem (pandas itself refuses rows that are ragged further on)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text)))  # any field a file can hold (a very long model name is data)
    try:
        rows = [r for r in itertools.islice(csv.reader(io.StringIO(text)), _HEAD_ROWS) if r]  # no blank lines
    finally:
        csv.field_size_limit(limit)
    if not rows:
        raise SchemaError(f"{name}: the file is empty (no header row). Write a header row with the column names.")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if len(header) == 1:
        for sep, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in header[0]:
                raise SchemaError(f"{name}: the header is one column {header[0][:60]!r}: the file seems to separate "
                                  f"fields with {word}. robustalign reads comma-separated files: re-save it as CSV "
                                  "with commas (pandas: `to_csv(path, index=False)`).")
    if not body:
        raise SchemaError(f"{name}: has a header row ({preview(header)}) but no data rows. Check that the file was "
                          "written completely.")
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        if h in seen and h:
            raise SchemaError(f"{name}: column name {h!r} appears twice in the header (columns {seen[h] + 1} and "
                              f"{j + 1}). Rename or remove one of them; robustalign does not rename columns.")
        seen.setdefault(h, j)
    extra = [len(r) - len(header) for r in body]
    if header and header[-1] == "" and all(r[-1].strip() == "" for r in body if len(r) == len(header)):
        if len(header) > 1 and all(len(r) == len(header) for r in body):
            raise SchemaError(
                f"{name}: the header and every row end with a trailing comma (an empty last column). Remove the "
                "trailing commas (or the empty column) and load again."
            )
    if body and all(e == 1 for e in extra) and all(r[-1].strip() == "" for r in body):
        raise SchemaError(
            f"{name}: every data row ends with a trailing comma, so each row has {len(header) + 1} fields under a "
            f"header of {len(header)}; read as is, the columns would shift by one. Remove the trailing commas "
            "and load again."
        )
    empty = [j + 1 for j, h in enumerate(header) if h == ""]
    if empty:
        first = empty[0]
        vals = [r[first - 1] for r in body[:50] if len(r) >= first]
        looks_index = first == 1 and all(v.strip() == str(i) for i, v in enumerate(vals))
        what = ("it holds 0, 1, 2, ...: a pandas index written by `to_csv`. Re-save with `to_csv(path, index=False)` "
                "or delete that column" if looks_index else "give it a name, or delete it")
        raise SchemaError(f"{name}: column {first} has no name in the header; {what}. Columns without a name are "
                          "never taken as design factors.")
    long = [i for i, e in enumerate(extra) if e > 0]
    if long:
        raise SchemaError(f"{name}: lines {preview([i + 2 for i in long])} of the file have more fields than the "
                          f"header ({len(header)}). Quote fields that contain commas, or fix the rows.")
    return header


def _read_csv(p: Path) -> pd.DataFrame:
    text, enc = _decode(p)
    header = _check_header(text, p.name)
    if enc != "UTF-8":
        warnings.warn(f"{p.name}: read as {enc} (byte-order mark found); re-save it as UTF-8 to silence this.",
                      RobustAlignWarning, stacklevel=3)
    dtype = {c: str for c in _TEXT_COLUMNS if c in header}
    return pd.read_csv(io.StringIO(text), dtype=dtype, keep_default_na=False, na_values=[""])


def _read_jsonl(p: Path) -> pd.DataFrame:
    text, enc = _decode(p)
    if not text.strip():
        raise SchemaError(f"{p.name}: the file is empty. Write one JSON object per line.")
    if enc != "UTF-8":
        warnings.warn(f"{p.name}: read as {enc} (byte-order mark found); re-save it as UTF-8 to silence this.",
                      RobustAlignWarning, stacklevel=3)
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{p.name}: line {i} is not valid JSON ({e.msg} at column {e.colno}). Write one JSON "
                              "object per line, e.g. {\"model\": \"m1\", \"item\": \"q1\", \"answer\": \"2\"}.") from None
        if not isinstance(rec, dict):
            raise SchemaError(f"{p.name}: line {i} is a JSON {type(rec).__name__}, not an object. Write one JSON "
                              "object per line, with the column names as keys.")
    # values as written: dtype=False also keeps columns called e.g. "date" as text
    return pd.read_json(io.StringIO(text), lines=True, dtype=False)


_READERS = {".csv": _read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet,
            ".jsonl": _read_jsonl, ".ndjson": _read_jsonl}


def read_table(path: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Read a CSV, Parquet or JSON-lines file into a DataFrame (a DataFrame passes through).

    The file's name is kept in ``df.attrs["source"]`` so that later errors can name it.
    """
    if isinstance(path, pd.DataFrame):
        return path
    p = Path(path)
    if not p.exists():
        raise SchemaError(f"file not found: {str(p)!r}. Check the path.")
    if p.is_dir():
        raise SchemaError(f"{str(p)!r} is a folder, not a file. Give the path of a {'/'.join(_SUFFIXES)} file.")
    suffix = p.suffix.lower()
    if suffix not in _READERS:
        raise SchemaError(
            f"{p.name}: unsupported file type {suffix!r}; robustalign reads {sorted(_READERS)}. "
            "Convert the file, e.g. with pandas."
        )
    try:
        df = _READERS[suffix](p)
    except SchemaError:
        raise
    except Exception as e:  # malformed file (pyarrow and the parsers raise their own types): say which and why
        why = " ".join(str(e).split()).rstrip(".")
        fix = ("Quote fields that contain commas, or fix that line" if "tokenizing" in why
               else f"Check that the file is a valid {suffix[1:]} file (re-export it)")
        raise SchemaError(f"{p.name}: could not be read as {suffix[1:]} ({type(e).__name__}: {why}). {fix}.") from None
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise SchemaError(f"{p.name}: column names appear more than once: {preview(dup.unique())}. Rename or remove "
                          "the repeats.")
    df.attrs["source"] = p.name
    return df


def _named(fn, source, *args, **kwargs):
    """Call a validator; a SchemaError names the file it came from."""
    try:
        return fn(*args, **kwargs)
    except SchemaError as e:
        msg = str(e)
        if source and not msg.startswith(source):
            note = ""
            if re.search(r"\brows \[\d", msg):
                if source.lower().endswith(".csv"):
                    note = " (Rows are counted from 0 after the header: row r is line r + 2 of the file.)"
                elif source.lower().endswith((".jsonl", ".ndjson")):
                    note = " (Rows are counted from 0: row r is the (r + 1)-th record of the file.)"
            raise SchemaError(f"{source}: {msg}{note}") from None
        raise


def load_reference(path: str | os.PathLike[str] | pd.DataFrame,
                   scales: str | os.PathLike[str] | pd.DataFrame | dict[str, Scale] | None = None, *,
                   group_col: str = "group", **kwargs: Any) -> Reference:
    """Load and validate a human-reference table (see :func:`robustalign.schema.make_reference`)."""
    sc = read_table(scales) if scales is not None and not isinstance(scales, dict) else scales
    if isinstance(sc, pd.DataFrame) and not isinstance(scales, pd.DataFrame):
        from robustalign.schema import make_scales

        sc = _named(make_scales, sc.attrs.get("source"), sc)
    df = read_table(path)
    return _named(make_reference, df.attrs.get("source"), df, sc, group_col=group_col, **kwargs)


def load_responses(path: str | os.PathLike[str] | pd.DataFrame, reference: Reference | None = None,
                   **kwargs: Any) -> Responses:
    """Load and validate a responses table (see :func:`robustalign.schema.make_responses`).

    ``allow_missing=True`` accepts empty answers (counted in the exclusion log as "missing answer").
    """
    df = read_table(path)
    return _named(make_responses, df.attrs.get("source"), df, reference, **kwargs)
