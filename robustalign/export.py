r"""Results out of Python: tidy CSV and Parquet, a LaTeX table for a paper, posteriors to zarr.

Every result with a ``to_frame()`` works here (assessments and claim audits, bootstrap and permutation
results, simulated power, Bayesian fits), and so does a DataFrame. The files hold exactly
``to_frame()`` (at ``level`` when given): stable snake_case columns, one row per estimate, no
rounding. Rounding happens only in :func:`to_latex`, which is for reading.

Examples
--------
>>> import pandas as pd
>>> from robustalign.export import to_latex
>>> frame = pd.DataFrame({"model": ["gpt_4", "llama_3"], "estimate": [0.61, -0.024],
...                       "conf_low": [0.58, -0.05], "conf_high": [0.64, 0.002], "conf_level": 0.95,
...                       "p_value": [0.0001, 0.07]})
>>> print(to_latex(frame, digits=2), end="")  # doctest: +ELLIPSIS
% robustalign ...: DataFrame, 2 rows
\begin{tabular}{lrr}
\toprule
model & Estimate [95\% CI] & $p$ \\
\midrule
gpt\_4 & 0.61 [0.58, 0.64] & $<$0.01 \\
llama\_3 & $-$0.02 [$-$0.05, 0.00] & 0.07 \\
\bottomrule
\end{tabular}

With a result object, ``to_latex(res)`` does the same from ``res.to_frame()``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from robustalign._result import HasFrame

__all__ = ["csv_safe", "posterior_to_zarr", "result_frame", "to_csv", "to_latex", "to_parquet"]

#: Columns that carry a statistic or bookkeeping rather than identify a row.
VALUE_COLUMNS = (
    "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method", "method_note", "p_value",
    "p_adjusted", "adjust_method", "family", "n_items", "units", "n_resamples", "alternative", "p_maxt",
    "holds",
    "n_simulations", "alpha", "benchmark",
)

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def result_frame(result: HasFrame | pd.DataFrame, level: float | None = None) -> pd.DataFrame:
    """``result.to_frame()`` (at ``level`` when given), or a copy of ``result`` if it is a DataFrame."""
    if isinstance(result, pd.DataFrame):
        if level is not None:
            raise ValueError("`level` applies to a result object; a DataFrame is exported as it is.")
        return result.copy()
    to_frame = getattr(result, "to_frame", None)
    if not callable(to_frame):
        raise TypeError(
            f"`result` must be a robustalign result (anything with `to_frame()`) or a DataFrame; got "
            f"{type(result).__name__}."
        )
    return to_frame() if level is None else to_frame(level)


# --------------------------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def _cell_safe(x):
    if isinstance(x, str) and x.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(x):
        return "'" + x
    return x


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` in which no text cell or column name can start a spreadsheet formula.

    Text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``
    (the OWASP rule against CSV injection), unless it is a plain number such as ``-0.5``. Numeric
    columns and numbers are left exactly as they are.
    """
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
                or pd.api.types.is_datetime64_any_dtype(col)):
            out[c] = col.map(_cell_safe)
    out.columns = [_cell_safe(c) for c in out.columns]
    return out


def to_csv(result: HasFrame | pd.DataFrame, path: str | os.PathLike[str], level: float | None = None, *,
           formula_safe: bool = True, **kwargs: Any) -> Path:
    """Write ``result.to_frame()`` to a tidy CSV file (no index; floats written to round-trip exactly).

    With ``formula_safe`` (default) a text cell that a spreadsheet would run as a formula gets a
    leading ``'`` (:func:`csv_safe`); numbers are unchanged. Extra keyword arguments go to
    :meth:`pandas.DataFrame.to_csv`. Returns the path.
    """
    path = Path(path)
    frame = result_frame(result, level)
    (csv_safe(frame) if formula_safe else frame).to_csv(path, index=False, **kwargs)
    return path


def to_parquet(result: HasFrame | pd.DataFrame, path: str | os.PathLike[str], level: float | None = None,
               **kwargs: Any) -> Path:
    """Write ``result.to_frame()`` to Parquet (pyarrow): column types kept, no index. Returns the path."""
    path = Path(path)
    result_frame(result, level).to_parquet(path, index=False, **kwargs)
    return path


# --------------------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------------------
def latex_escape(text) -> str:
    """Escape LaTeX's special characters in ``text`` (``_``, ``%``, ``&``, ``$``, ``#``, braces, ...)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _num(x, digits: int) -> str:
    if x is None or (isinstance(x, float | np.floating) and not np.isfinite(x)):
        return "--"
    s = f"{float(x):.{digits}f}"
    if float(s) == 0:
        s = s.lstrip("-")  # no "-0.00"
    return f"$-${s[1:]}" if s.startswith("-") else s


def _pvalue(p, digits: int) -> str:
    if p is None or not np.isfinite(p):
        return "--"
    floor = 10.0 ** -digits
    return f"$<${floor:.{digits}f}" if p < floor else f"{p:.{digits}f}"


def _key_columns(frame: pd.DataFrame) -> list[str]:
    keys = [c for c in frame.columns if c not in VALUE_COLUMNS and not c.endswith("_mcse")]  # MC SEs are values
    # a key that is the same in every row (e.g. quantity) says nothing in a table; keep it only if alone
    varying = [c for c in keys if frame[c].astype(str).nunique() > 1]
    return varying or keys[:1]


def to_latex(
    result: HasFrame | pd.DataFrame,
    path: str | os.PathLike[str] | None = None,
    *,
    columns: Sequence[str] | None = None,
    level: float | None = None,
    digits: int = 3,
    p_values: bool | None = None,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    r"""A booktabs LaTeX table of any result: one row per estimate, "estimate [low, high]".

    Parameters
    ----------
    result
        Anything with ``to_frame()``, or a DataFrame with ``estimate, conf_low, conf_high``.
    path : str or Path, optional
        Also write the table to this file.
    columns : sequence of str, optional
        The columns that identify a row, in order (e.g. ``["model", "metric"]``). Default: every column
        that is not a statistic or bookkeeping and that varies between rows.
    level : float, optional
        Confidence level of the intervals (re-read from stored resamples); default the result's.
    digits : int
        Decimals of estimates, bounds and p-values (p below ``10**-digits`` shows as ``<0.001``).
    p_values : bool, optional
        Add ``p_value`` (and ``p_adjusted`` when present) columns. Default: when the frame has any
        finite p-value.
    caption, label : str, optional
        When either is given the tabular is wrapped in a ``table`` float with ``\caption`` and
        ``\label``. The caption is escaped; the label is used as given.

    Returns
    -------
    str
        The LaTeX source. It needs ``\usepackage{booktabs}`` in the preamble.
    """
    frame = result_frame(result, level)
    if "estimate" not in frame:
        raise ValueError(f"the result's frame has no 'estimate' column; its columns are {list(frame.columns)}.")
    has_ci = "conf_low" in frame and "conf_high" in frame  # plug-in tables have none: estimates only
    if not isinstance(digits, int | np.integer) or digits < 0:
        raise ValueError(f"`digits` must be a non-negative integer; got {digits!r}.")
    if columns is None:
        columns = _key_columns(frame)
    else:
        columns = [columns] if isinstance(columns, str) else list(columns)
        bad = [c for c in columns if c not in frame]
        if bad:
            raise ValueError(f"`columns` {bad} are not columns of the result's frame; columns are {list(frame.columns)}.")
    pcols = [c for c in ("p_value", "p_adjusted") if c in frame and pd.to_numeric(frame[c], errors="coerce").notna().any()]
    if p_values is False:
        pcols = []
    elif p_values and not pcols:
        raise ValueError("`p_values=True` but the result has no p-values.")

    levels = pd.to_numeric(frame["conf_level"], errors="coerce").dropna().unique() if "conf_level" in frame else []
    ci = f"{_pct(levels[0])} CI" if len(levels) == 1 else "CI"
    header = [latex_escape(c) for c in columns] + [latex_escape(f"Estimate [{ci}]" if has_ci else "Estimate")]
    header += [{"p_value": "$p$", "p_adjusted": r"$p_{\mathrm{adj}}$"}[c] for c in pcols]
    lines = [" & ".join(header) + r" \\"]
    for _, row in frame.iterrows():
        cells = [latex_escape(_cell(row[c])) for c in columns]
        cells.append(f"{_num(row['estimate'], digits)} [{_num(row['conf_low'], digits)}, {_num(row['conf_high'], digits)}]"
                     if has_ci else _num(row["estimate"], digits))
        cells += [_pvalue(pd.to_numeric(row[c], errors="coerce"), digits) for c in pcols]
        lines.append(" & ".join(cells) + r" \\")
    spec = "l" * len(columns) + "r" * (1 + len(pcols))
    from robustalign import __version__

    body = [
        f"% robustalign {__version__}: {latex_escape(type(result).__name__)}, {len(frame)} rows",
        rf"\begin{{tabular}}{{{spec}}}", r"\toprule", lines[0], r"\midrule", *lines[1:], r"\bottomrule",
        r"\end{tabular}",
    ]
    if caption is not None or label is not None:
        head = [r"\begin{table}[htbp]", r"\centering"]
        if caption is not None:
            head.append(rf"\caption{{{latex_escape(caption)}}}")
        if label is not None:
            head.append(rf"\label{{{label}}}")
        body = [body[0], *head, *body[1:], r"\end{table}"]
    text = "\n".join(body) + "\n"
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _pct(level: float) -> str:
    p = 100 * float(level)
    return f"{p:g}%"


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "--"
    return str(v)


# --------------------------------------------------------------------------------------------------
# posteriors
# --------------------------------------------------------------------------------------------------
def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return json.dumps(value, default=str)


def posterior_to_zarr(fit_or_datatree: Any, path: str | os.PathLike[str], *, mode: Literal["w-", "w", "a"] = "w-") -> Path:
    """Write a posterior (an arviz 1 ``xarray.DataTree``, or a fit holding one in ``.idata``) to a zarr store.

    Every group (posterior, sample_stats, observed_data, ...) is kept. Attributes that JSON cannot hold
    (e.g. the provenance dictionaries robustalign records) are stored as JSON text. Read it back with
    ``xarray.open_datatree(path, engine="zarr")``.

    Parameters
    ----------
    fit_or_datatree
        ``xarray.DataTree`` or an object with an ``idata`` DataTree (a robustalign Bayesian fit).
    path : str or Path
        Directory of the zarr store.
    mode : {"w-", "w", "a"}
        ``"w-"`` (default) refuses to overwrite an existing store; ``"w"`` replaces it.

    Returns
    -------
    Path
    """
    import xarray as xr

    try:
        import zarr  # noqa: F401
    except ImportError as e:  # pragma: no cover - zarr is a dependency
        raise ImportError("posterior_to_zarr needs the zarr package: pip install zarr") from e
    tree = getattr(fit_or_datatree, "idata", fit_or_datatree)
    if not isinstance(tree, xr.DataTree):
        raise TypeError(
            f"`fit_or_datatree` must be an xarray.DataTree (arviz 1) or a fit with one in `.idata`; got "
            f"{type(fit_or_datatree).__name__}."
        )
    tree = tree.copy()
    for node in tree.subtree:
        node.attrs = {k: _jsonable(v) for k, v in node.attrs.items()}
        for var in node.variables.values():
            var.attrs = {k: _jsonable(v) for k, v in var.attrs.items()}
    path = Path(path)
    import warnings

    with warnings.catch_warnings():  # zarr 3 notes that consolidated metadata is outside its spec; xarray reads it
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        tree.to_zarr(path, mode=mode)
    return path
