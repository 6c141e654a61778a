"""Import responses from the documented wide CSV layout (for tools without an importer).

Layout: one row per model x item x design cell, one column per canonical option::

    model,item,language,steer_target,opt_1,opt_2,opt_3,opt_4
    model-a,Q1,en,none,12,30,5,3
    model-a,Q1,en,Japan,20,25,4,1
    model-a,Q2,de,none,0.10,0.60,0.20,0.10

================== ==================================================================================
column             meaning
================== ==================================================================================
``model``          model name
``item``           item id (as in the reference)
``opt_<code>``     one column per canonical option code (``opt_1``, ``opt_SA``, ...): either the
                   **count** of answers choosing that option in the cell, or the model's
                   **probability** of it. Options an item does not have are left empty.
``option_order``   (optional) codes joined by ``|`` in the order shown, e.g. ``4|3|2|1``
anything else      a design factor (``format``, ``template``, ``language``, ``steer_target``, ...)
================== ==================================================================================

The option columns always name *canonical* codes, whatever order the options were shown in.

* **Counts** (whole numbers, ``values="counts"``) become one row per answer (column ``answer``),
  numbered ``sample = 1..n`` within the cell; rows with no answers are dropped and counted.
* **Probabilities** (each row sums to 1, ``values="probs"``) become ``prob_1..prob_K`` in the order
  shown (``option_order`` when given, else the scale order).
* ``values="auto"`` (default) decides from the numbers, and asks when a file fits both (every row a
  single answer with count 1).

Without a reference or scales, an item's options are the option columns with values in its rows, in
column order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustalign._errors import SchemaError
from robustalign.importers._common import ScalesLike, attach, check_factor_names, finish, scales_from
from robustalign.schema import SHARE_TOL, ExclusionLog, Reference, Responses, Scale

__all__ = ["from_wide_csv", "read_wide_csv"]


def read_wide_csv(
    path: str | os.PathLike[str] | pd.DataFrame,
    reference: Reference | None = None,
    *,
    scales: ScalesLike = None,
    values: str = "auto",
    option_prefix: str = "opt_",
) -> pd.DataFrame:
    """Read a wide CSV (or DataFrame) of counts or probabilities into the raw responses table.

    Parameters
    ----------
    path : path or DataFrame
        The file in the layout above.
    reference, scales : optional
        Item scales: fix each item's options and their order, and check the option columns against them.
    values : {"auto", "counts", "probs"}
        What the option columns hold.
    option_prefix : str
        Prefix of the option columns.

    Returns
    -------
    DataFrame
        Counts: ``model, item, <factors>, [option_order,] sample, answer``. Probabilities: ``model, item,
        <factors>, [option_order,] prob_1..prob_K``. ``df.attrs["exclusions"]`` counts dropped rows.
    """
    if values not in ("auto", "counts", "probs"):
        raise SchemaError(f"`values` must be 'auto', 'counts' or 'probs'; got {values!r}.")
    name, df = _read(path)
    opt_cols = [c for c in df.columns if str(c).startswith(option_prefix)]
    if not opt_cols:
        raise SchemaError(
            f"{name}: no option columns (named {option_prefix}<code>, e.g. {option_prefix}1); found {list(df.columns)}. "
            "Give one column per canonical option, or set `option_prefix=`."
        )
    for c in ("model", "item"):
        if c not in df:
            raise SchemaError(f"{name}: missing column {c!r}; found {list(df.columns)}. See the wide CSV layout.")
    codes = [str(c)[len(option_prefix):] for c in opt_cols]
    factors = [c for c in df.columns if c not in ("model", "item", "option_order", *opt_cols)]
    check_factor_names([f for f in factors if f != "sample" or values == "probs"], name, "columns")
    V = df[opt_cols].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = np.isnan(V) & df[opt_cols].notna().to_numpy() & (df[opt_cols].astype(str) != "").to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise SchemaError(
            f"{name}: row {r + 1}, column {opt_cols[c]!r} holds {df.iat[r, df.columns.get_loc(opt_cols[c])]!r}, "
            "not a number. Option columns hold counts or probabilities (empty where the item lacks the option)."
        )
    if (V < 0).any():
        r = int(np.argwhere(V < 0)[0][0])
        raise SchemaError(f"{name}: row {r + 1} has a negative value in the option columns; counts and "
                          "probabilities are non-negative.")
    sc = scales_from(reference, scales)
    item = df["item"].astype(str).str.strip()
    opts_of = _item_option_columns(item, codes, V, sc, name, option_prefix)
    mask = np.zeros_like(V, dtype=bool)
    for r, it in enumerate(item):
        mask[r, opts_of[it]] = True
    X = np.where(mask, np.nan_to_num(V), 0.0)
    gaps = mask & np.isnan(V)
    kind = _kind(X, values, name)

    log = ExclusionLog()
    base = df[["model", *factors]].copy()
    base.insert(1, "item", item)
    if "option_order" in df:
        base["option_order"] = df["option_order"].astype(str).str.strip()
    if kind == "probs":
        out = _prob_rows(base, item, X, gaps, codes, opts_of, name)
    else:
        out = _count_rows(df, base, X, codes, log, name)
    return attach(out, log, [Path(name)], "wide CSV")


def _item_option_columns(item: pd.Series, codes: list[str], V: np.ndarray, sc: Mapping[str, Scale] | None,
                         name: str, option_prefix: str) -> dict[str, list[int]]:
    """Each item's option columns (indices into ``codes``), in canonical order."""
    opts_of: dict[str, list[int]] = {}
    for it in item.unique():
        rows = (item == it).to_numpy()
        if sc is not None and it in sc:
            scale = sc[it]
            missing = [o for o in scale.options if o not in codes]
            if missing:
                raise SchemaError(
                    f"{name}: item {it!r} has options {list(scale.options)} but no columns for {missing}. Add "
                    f"{[option_prefix + m for m in missing]} (0 or empty where nobody chose them)."
                )
            cols = [codes.index(o) for o in scale.options]
            extra = [codes[j] for j in range(len(codes)) if j not in cols and np.nansum(V[rows, j]) > 0]
            if extra:
                raise SchemaError(
                    f"{name}: item {it!r} has values in option columns {extra} that are not in its scale "
                    f"{list(scale.options)}. Fix the item id or the scale."
                )
        else:
            cols = [j for j in range(len(codes)) if (~np.isnan(V[rows, j])).any()]
        opts_of[it] = cols
    return opts_of


def _prob_rows(base: pd.DataFrame, item: pd.Series, X: np.ndarray, gaps: np.ndarray, codes: list[str],
               opts_of: dict[str, list[int]], name: str) -> pd.DataFrame:
    """Probabilities: one row per wide row, ``prob_j`` over the options as shown."""
    if gaps.any():
        r = int(np.argwhere(gaps)[0][0])
        raise SchemaError(f"{name}: row {r + 1} leaves an option of its item empty; give every option a "
                          "probability (0 if none).")
    kmax = max(len(c) for c in opts_of.values())
    P = np.full((len(base), kmax), np.nan)
    for r, it in enumerate(item):
        shown = _shown(base, r, [codes[j] for j in opts_of[it]], name)
        P[r, : len(shown)] = [X[r, codes.index(c)] for c in shown]
    out = base.copy()
    for j in range(kmax):
        out[f"prob_{j + 1}"] = P[:, j]
    return out


def _count_rows(df: pd.DataFrame, base: pd.DataFrame, X: np.ndarray, codes: list[str], log: ExclusionLog,
                name: str) -> pd.DataFrame:
    """Counts: one row per answer, numbered by ``sample``; rows without answers are counted as dropped."""
    if "sample" in df:
        raise SchemaError(f"{name}: a counts file cannot have a `sample` column; samples are numbered from the counts.")
    n = X.sum(1).astype(int)
    empty = np.flatnonzero(n == 0)
    log.add("responses", "wide row with no answers (all counts 0)", [int(r) + 1 for r in empty], "dropped")
    rep = np.repeat(np.arange(len(df)), n)
    answers = [codes[j] for r in range(len(df)) for j in range(len(codes)) for _ in range(int(X[r, j]))]
    out = base.iloc[rep].reset_index(drop=True)
    out["sample"] = np.concatenate([np.arange(1, k + 1) for k in n]) if len(n) else []
    out["answer"] = answers
    return out


def from_wide_csv(
    path: str | os.PathLike[str] | pd.DataFrame,
    reference: Reference | None = None,
    *,
    scales: ScalesLike = None,
    drop_unreferenced: bool = False,
    **kwargs: Any,
) -> Responses:
    """Read a wide CSV and validate it into :class:`~robustalign.Responses`; see :func:`read_wide_csv`."""
    df = read_wide_csv(path, reference, scales=scales, **kwargs)
    return finish(df, reference, scales, drop_unreferenced, "from_wide_csv")


# --------------------------------------------------------------------------------------------------
def _read(path) -> tuple[str, pd.DataFrame]:
    if isinstance(path, pd.DataFrame):
        return "wide table", path.reset_index(drop=True)
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"file not found: {str(p)!r}. Check the path.")
    try:
        df = pd.read_csv(p, dtype={"model": str, "item": str, "option_order": str})
    except (ValueError, OSError) as e:
        raise SchemaError(f"{p.name}: could not be read as CSV: {e}") from None
    return p.name, df


def _kind(X, values, name) -> str:
    whole = bool(np.all(np.isclose(X, np.round(X))))
    sums = X.sum(1)
    to_one = bool(np.all(np.abs(sums - 1) <= SHARE_TOL))
    if values == "counts":
        if not whole:
            r = int(np.flatnonzero(~np.isclose(X, np.round(X)).all(1))[0])
            raise SchemaError(f"{name}: values='counts' but row {r + 1} has non-whole numbers. Are they probabilities?")
        return "counts"
    if values == "probs":
        if not to_one:
            r = int(np.flatnonzero(np.abs(sums - 1) > SHARE_TOL)[0])
            raise SchemaError(
                f"{name}: values='probs' but row {r + 1} sums to {sums[r]:.4f}. Each row's probabilities must sum to 1."
            )
        return "probs"
    if whole and to_one:
        raise SchemaError(
            f"{name}: every row is a single answer counted once, which reads as counts or as one-hot "
            "probabilities. Pass values='counts' or values='probs'."
        )
    if whole:
        return "counts"
    if to_one:
        return "probs"
    r = int(np.flatnonzero(np.abs(sums - 1) > SHARE_TOL)[0])
    raise SchemaError(
        f"{name}: the option columns are neither counts (whole numbers) nor probabilities (rows summing to 1): "
        f"row {r + 1} sums to {sums[r]:.4f}. Fix the values, or pass values= to get the specific check."
    )


def _shown(base: pd.DataFrame, r: int, canonical: list[str], name: str) -> list[str]:
    if "option_order" not in base:
        return canonical
    order = [s.strip() for s in str(base.at[r, "option_order"]).split("|")]
    if sorted(order) != sorted(canonical):
        raise SchemaError(
            f"{name}: row {r + 1}: option_order {base.at[r, 'option_order']!r} is not a permutation of the item's "
            f"options {canonical}. Record the codes in the order shown."
        )
    return order

