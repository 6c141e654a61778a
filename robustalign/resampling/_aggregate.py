"""Long tables to per-cluster aggregate arrays (the input of the fast path).

One pass of ``np.bincount`` over integer codes; no pandas groupby on the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustalign._validation import check_columns

__all__ = ["ItemAggregates", "item_aggregates"]


def _codes(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (as small as the column allows) and sorted unique values (categories keep order)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        uniques = pd.Index(col.cat.categories, name=col.name)
    else:
        codes, uniques = pd.factorize(col, sort=True)
        uniques = pd.Index(uniques, name=col.name)
    if codes.min(initial=0) < 0:
        raise ValueError(
            f"column {col.name!r} has {int((codes < 0).sum())} missing values; give every row an explicit "
            "level (e.g. 'none') or drop the rows before resampling."
        )
    return codes, uniques


def _axis_codes(df: pd.DataFrame, cols: Sequence[str]) -> tuple[np.ndarray | None, pd.DataFrame]:
    """One code per row for the combination of ``cols``, numbering only combinations that occur.

    Few large temporaries: codes stay in the column's small integer type where possible (the row
    count can be in the millions).
    """
    if not cols:  # one cell holding every row
        return None, pd.DataFrame({"cell": ["all"]})
    parts = [_codes(df[c]) for c in cols]
    dims = tuple(len(u) for _, u in parts)
    if len(parts) == 1:
        flat = parts[0][0]
    else:
        flat = parts[0][0].astype(np.int64)
        for (code, _), d in zip(parts[1:], dims[1:]):
            flat *= d
            flat += code
    size = int(np.prod(dims))
    seen = np.bincount(flat, minlength=size) > 0
    new = (np.cumsum(seen) - 1).astype(np.int32 if size < 2**31 else np.int64)
    present = np.flatnonzero(seen)
    idx = np.unravel_index(present, dims)
    labels = pd.DataFrame({c: u[i] for c, (_, u), i in zip(cols, parts, idx)})
    for c, (_, u) in zip(cols, parts):
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            labels[c] = pd.Categorical(labels[c], categories=u)
    if seen.all():  # every combination occurs: the numbering is already compact
        return flat, labels
    return new[flat], labels


def group_array(
    df: pd.DataFrame, value: str, axes: Sequence[Sequence[str]], *, name: str = "data"
) -> tuple[np.ndarray, np.ndarray, list[pd.DataFrame]]:
    """Means of ``value`` over rows in each combination of the axes' columns.

    Returns ``(means, counts, labels)``: arrays with one dimension per axis (NaN / 0 where a
    combination has no rows) and, per axis, a frame of its occurring combinations (an axis without
    columns has one combination, labelled ``cell="all"``).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"`{name}` must be a pandas DataFrame here; got {type(df).__name__}.")
    check_columns(df, [value, *[c for ax in axes for c in ax]], name)
    col = df[value]
    v = col.to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(col) else pd.to_numeric(col, errors="coerce").to_numpy(float)
    finite = np.isfinite(v)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"`{name}` column {value!r} has {bad.size} missing or non-numeric values (e.g. rows "
            f"{list(df.index[bad[:5]])}). Drop or fill them explicitly; resampling does not impute."
        )
    del finite
    flat: np.ndarray | None = None
    labels = []
    for ax in axes:
        codes, lab = _axis_codes(df, list(ax))
        labels.append(lab)
        if flat is None:
            flat = np.zeros(len(df), np.int64) if codes is None else codes.astype(np.int64)
        else:
            flat *= len(lab)
            if codes is not None:
                flat += codes
    assert flat is not None, "group_array needs at least one axis"
    shape = tuple(len(lab) for lab in labels)
    size = int(np.prod(shape))
    sums = np.bincount(flat, weights=v, minlength=size)
    counts = np.bincount(flat, minlength=size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means.reshape(shape), counts.reshape(shape), list(labels)


def count_weights(counts: np.ndarray, how: str) -> np.ndarray:
    """Weights from row counts: ``"equal"`` (1 wherever there are rows) or ``"rows"`` (the counts)."""
    if how == "equal":
        return (counts > 0).astype(float)
    if how == "rows":
        return counts.astype(float)
    raise ValueError(f"`weights` must be 'equal', 'rows' or an array; got {how!r}.")


@dataclass(frozen=True)
class ItemAggregates:
    """Per-cluster aggregates of a long table: the input of the fast bootstrap path.

    Attributes
    ----------
    values : ndarray (n_clusters, n_cells)
        Mean of ``value`` over the rows of each cluster x cell; NaN where a cluster has no rows in a cell.
    n_rows : ndarray (n_clusters, n_cells)
        Rows behind each aggregate.
    clusters : DataFrame
        One row per cluster (column ``cluster``).
    cells : DataFrame
        One row per cell (the ``by`` columns).
    value, cluster : str
    by : tuple of str
    """

    values: np.ndarray
    n_rows: np.ndarray
    clusters: pd.DataFrame
    cells: pd.DataFrame
    value: str
    cluster: str
    by: tuple[str, ...]

    def weights(self, how: str = "equal") -> np.ndarray:
        """Per-cluster weights of each cell: ``"equal"`` (1 for every cluster with rows) or ``"rows"``."""
        return count_weights(self.n_rows, how)


def item_aggregates(
    data: pd.DataFrame, value: str, *, cluster: str = "item", by: Sequence[str] | str | None = None
) -> ItemAggregates:
    """Mean of ``value`` per cluster (item) and cell of ``by``: an ``(n_clusters, n_cells)`` array.

    Parameters
    ----------
    data : DataFrame
        Long table, one row per response (or per scored cell).
    value : str
        Numeric column, e.g. an alignment score.
    cluster : str
        Resampling unit; default ``"item"``.
    by : str or sequence of str, optional
        Columns defining the cells (e.g. ``["model", "steer_target"]``); one cell if omitted.

    Returns
    -------
    ItemAggregates
    """
    by = [by] if isinstance(by, str) else list(by or [])
    if cluster in by:
        raise ValueError(f"`by` must not contain the cluster column {cluster!r}; got by={by}.")
    means, counts, (clusters, cells) = group_array(data, value, [[cluster], by])
    return ItemAggregates(means, counts, clusters, cells, value, cluster, tuple(by))
