"""Long tables to per-cluster aggregate arrays (the input of the fast path).

One pass of ``np.bincount`` over integer codes; no pandas groupby on the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from robustalign.resampling._validation import check_columns

__all__ = ["ItemAggregates", "item_aggregates"]


def _codes(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and sorted unique values (categories keep their order)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.intp)
        uniques = pd.Index(col.cat.categories, name=col.name)
    else:
        codes, uniques = pd.factorize(col, sort=True)
        codes, uniques = codes.astype(np.intp), pd.Index(uniques, name=col.name)
    if (codes < 0).any():
        raise ValueError(
            f"column {col.name!r} has {int((codes < 0).sum())} missing values; give every row an explicit "
            "level (e.g. 'none') or drop the rows before resampling."
        )
    return codes, uniques


def _axis_codes(df: pd.DataFrame, cols: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """One code per row for the combination of ``cols``, numbering only combinations that occur."""
    if not cols:
        return np.zeros(len(df), np.intp), pd.DataFrame(index=range(1))
    parts = [_codes(df[c]) for c in cols]
    dims = tuple(len(u) for _, u in parts)
    flat = np.ravel_multi_index(tuple(c for c, _ in parts), dims) if len(parts) > 1 else parts[0][0]
    size = int(np.prod(dims))
    seen = np.bincount(flat, minlength=size) > 0
    new = np.cumsum(seen) - 1
    present = np.flatnonzero(seen)
    idx = np.unravel_index(present, dims)
    labels = pd.DataFrame({c: u[i] for c, (_, u), i in zip(cols, parts, idx)})
    for c, (_, u) in zip(cols, parts):
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            labels[c] = pd.Categorical(labels[c], categories=u)
    return new[flat], labels


def group_array(
    df: pd.DataFrame, value: str, axes: Sequence[Sequence[str]], *, name: str = "data"
) -> tuple[np.ndarray, np.ndarray, list[pd.DataFrame]]:
    """Means of ``value`` over rows in each combination of the axes' columns.

    Returns ``(means, counts, labels)``: arrays with one dimension per axis (NaN / 0 where a
    combination has no rows) and, per axis, a frame of its occurring combinations.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"`{name}` must be a pandas DataFrame here; got {type(df).__name__}.")
    check_columns(df, [value, *[c for ax in axes for c in ax]], name)
    v = pd.to_numeric(df[value], errors="coerce").to_numpy(float)
    bad = ~np.isfinite(v)
    if bad.any():
        raise ValueError(
            f"`{name}` column {value!r} has {int(bad.sum())} missing or non-numeric values (e.g. rows "
            f"{list(df.index[bad][:5])}). Drop or fill them explicitly; resampling does not impute."
        )
    codes, labels = zip(*[_axis_codes(df, list(ax)) for ax in axes])
    shape = tuple(len(lab) for lab in labels)
    flat = np.ravel_multi_index(codes, shape)
    size = int(np.prod(shape))
    sums = np.bincount(flat, weights=v, minlength=size)
    counts = np.bincount(flat, minlength=size).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return means.reshape(shape), counts.reshape(shape), list(labels)


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
        if how == "equal":
            return (self.n_rows > 0).astype(float)
        if how == "rows":
            return self.n_rows.astype(float)
        raise ValueError(f"`weights` must be 'equal', 'rows' or an array; got {how!r}.")


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
    if not by:
        cells = pd.DataFrame({"cell": ["all"]})
    return ItemAggregates(means, counts, clusters, cells, value, cluster, tuple(by))
