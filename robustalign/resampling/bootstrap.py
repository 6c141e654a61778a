r"""Bootstrap designs: cluster (items), paired, two-way (items x groups) and human-reference Dirichlet.

Fast path
---------
Most alignment statistics are weighted means of per-item aggregates: the mean alignment of a model x
steering cell is :math:`\hat\theta_c = \sum_q w_{qc} a_{qc} / \sum_q w_{qc}` over items *q*. Resampling
items with replacement gives every replicate of every cell at once,

.. math::

    \hat\theta^*_{bc} = \frac{\sum_q W_{bq} w_{qc} a_{qc}}{\sum_q W_{bq} w_{qc}}, \qquad
    W_{b\cdot} \sim \operatorname{Multinomial}(n, 1/n),

a ``(resamples x items) @ (items x cells)`` matrix product, drawn and multiplied in chunks of resamples
so that memory stays bounded. All cells share the resample of a row, so differences, ratios and ranks
computed from the replicate matrix are paired. The delete-one-item jackknife needed by BCa has the
closed form :math:`(\sum_q w a - w_i a_i)/(\sum_q w - w_i)`.

General path
------------
Any other statistic is a callable vectorised over a leading resample axis; it receives the per-item
data indexed by integer draws, ``x[idx]`` with ``idx`` of shape ``(chunk, n)``. The draws are the same
as the fast path's for the same seed.

References
----------
Davison & Hinkley (1997), *Bootstrap Methods and their Application*, sections 3.8 (clustered data)
and 5.3 (BCa); Owen (2007), "The pigeonhole bootstrap", *Ann. Appl. Stat.* 1(2):386-411; Miller (2024),
"Adding error bars to evals", arXiv:2411.00640.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from robustalign._errors import DegenerateResampleWarning
from robustalign._result import Result
from robustalign._rng import RngLike, RngRecord, as_generator
from robustalign._validation import (
    as_float_array,
    check_chunk_size,
    check_confidence_level,
    check_method,
    check_n_resamples,
)
from robustalign.resampling import _weights as _w
from robustalign.resampling._aggregate import ItemAggregates, count_weights, group_array, item_aggregates
from robustalign.resampling.results import BootstrapResult

if TYPE_CHECKING:
    from robustalign.schema import Reference

__all__ = [
    "ReferenceDraws",
    "cluster_bootstrap",
    "dirichlet_reference",
    "paired_bootstrap",
    "two_way_bootstrap",
]

#: METHODS 3.6: respondents assumed per item x group when the source gives none, and the design effect.
DEFAULT_N_UNKNOWN = 1000
DEFAULT_DEFF = 1.5


# --------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------
@dataclass
class _Table:
    values: np.ndarray  # (n, C), NaN = absent
    weights: np.ndarray | None  # (n, C) or None (= 1 where present)
    labels: pd.DataFrame  # C rows
    meta: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return self.values.shape[0]


def labels_for(labels, n_cells: int, default_name: str = "cell") -> pd.DataFrame:
    if labels is None:
        return pd.DataFrame({default_name: np.arange(n_cells)})
    lab = labels if isinstance(labels, pd.DataFrame) else pd.DataFrame({default_name: list(labels)})
    if len(lab) != n_cells:
        raise ValueError(f"`labels` must have one row per cell ({n_cells}); got {len(lab)}.")
    return lab.reset_index(drop=True)


def _weights_array(weights, values: np.ndarray, name: str = "weights") -> np.ndarray | None:
    if weights is None:
        return None
    w = as_float_array(weights, name, (values.ndim - 1, values.ndim))
    lead = values.shape[: values.ndim - 1]
    if w.shape == lead:
        w = np.broadcast_to(w[..., None], values.shape)
    elif w.shape != values.shape:
        raise ValueError(
            f"`{name}` must have shape {lead} (one weight per cluster) or {values.shape} (per cluster and cell); "
            f"got {w.shape}."
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"`{name}` must be finite and non-negative.")
    return np.array(w, dtype=float)


def as_table(data, *, value, cluster, by, weights, labels) -> _Table:
    if isinstance(data, pd.DataFrame):
        if value is None:
            raise ValueError("`value` is required with a DataFrame: the numeric column to aggregate, e.g. value='score'.")
        data = item_aggregates(data, value, cluster=cluster, by=by)
    elif value is not None or by is not None:
        raise ValueError("`value` and `by` apply to a DataFrame; with an array, pass per-cluster aggregates directly.")
    if isinstance(data, ItemAggregates):
        w: np.ndarray | None
        if weights is None or isinstance(weights, str):
            w = data.weights("equal" if weights is None else weights)
        else:
            w = _weights_array(weights, data.values)
        meta = {"value": data.value, "cluster": data.cluster, "by": list(data.by),
                "weights": weights if isinstance(weights, str) or weights is None else "array"}
        return _Table(data.values, w, data.cells, meta)
    if isinstance(weights, str):
        raise ValueError("`weights='equal'|'rows'` needs a DataFrame; with an array give a weight array.")
    vals = as_float_array(data, "data", (1, 2))
    if vals.ndim == 1:
        vals = vals[:, None]
    if np.isinf(vals).any():
        raise ValueError("`data` contains infinite values.")
    w = _weights_array(weights, vals)
    return _Table(vals, w, labels_for(labels, vals.shape[1]), {"weights": None if weights is None else "array"})


def _check_common(n_resamples, confidence_level, method, chunk_size, allowed=("percentile", "bca")):
    return (
        check_n_resamples(n_resamples),
        check_confidence_level(confidence_level),
        check_method(method, allowed),
        check_chunk_size(chunk_size),
    )


# --------------------------------------------------------------------------------------------------
# engines
# --------------------------------------------------------------------------------------------------
def _masked(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Weighted values (0 where absent), weights (0 where absent), and whether all weights are 1."""
    present = np.isfinite(values)
    uniform = weights is None and bool(present.all())
    w = present.astype(float) if weights is None else np.where(present, weights, 0.0)
    wa = np.where(present, values, 0.0) * w
    return wa, w, uniform


def _linear_engine(t: _Table, gen, n_resamples: int, chunk_size, perturbed=None):
    """Estimate, replicates (B, C) and delete-one-cluster jackknife (n, C) of weighted cell means."""
    wa, w, uniform = _masked(t.values, t.weights)
    n, C = wa.shape
    num0, den0 = wa.sum(axis=0), w.sum(axis=0)
    if (den0 == 0).any():
        empty = t.labels.loc[den0 == 0].head(5).to_dict("records")
        raise ValueError(f"{int((den0 == 0).sum())} cells have no cluster with data (or zero weight), e.g. {empty}.")
    est = num0 / den0
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = (num0[None, :] - wa) / (den0[None, :] - w)
    # a weight vector shared by all cells needs one matrix-vector product for the denominators
    w_vec = None if uniform else (w[:, 0] if np.all(w == w[:, :1]) else None)
    if perturbed is not None:
        pert = _perturbed_source(perturbed, n_resamples, n, C)
        present = np.isfinite(t.values)
    rows = _w.chunk_rows(n_resamples, n * 8 * (2 if perturbed is None else 2 + C), chunk_size)
    # replicates are stored statistic-major, (C, B): each statistic's resamples are contiguous, which is
    # what the interval code reads; the result exposes the (B, C) transpose
    out = np.empty((C, n_resamples))
    wa_t = np.ascontiguousarray(wa.T)
    w_t = None if uniform or w_vec is not None else np.ascontiguousarray(w.T)
    draws = _w.IntegerStream(gen, n, n, n_resamples)
    for s, e in _w.chunks(n_resamples, rows):
        W = _w.counts_from_indices(draws.next(e - s, raw=True), n)
        if perturbed is None:
            num = wa_t @ W.T
        else:
            P = np.where(present[None], pert(s, e), 0.0) * w[None]
            num = np.matmul(W[:, None, :], P)[:, 0, :].T
        if uniform:
            out[:, s:e] = num / n
        else:
            den = (W @ w_vec)[None, :] if w_vec is not None else w_t @ W.T
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, s:e] = num / den
    return est, out.T, jack


def _perturbed_source(perturbed, n_resamples: int, n: int, C: int) -> Callable[[int, int], np.ndarray]:
    if callable(perturbed):
        def get(s, e):
            a = np.asarray(perturbed(s, e), dtype=float)
            if a.shape != (e - s, n, C):
                raise ValueError(f"`perturbed({s}, {e})` must return shape {(e - s, n, C)}; got {a.shape}.")
            return a
        return get
    arr = as_float_array(perturbed, "perturbed", (3,))
    if arr.shape != (n_resamples, n, C):
        raise ValueError(
            f"`perturbed` must have shape (n_resamples, n_clusters, n_cells) = {(n_resamples, n, C)}; got {arr.shape}."
        )
    return lambda s, e: arr[s:e]


def _as_arrays(data) -> tuple[np.ndarray, ...]:
    arrays = data if isinstance(data, tuple) else (data,)
    out = []
    for i, a in enumerate(arrays):
        if isinstance(a, pd.DataFrame | pd.Series):
            a = a.to_numpy()
        a = np.asarray(a)
        if a.ndim == 0:
            raise ValueError(f"`data[{i}]` must have a leading cluster axis; got a scalar.")
        out.append(a)
    n = {a.shape[0] for a in out}
    if len(n) != 1:
        raise ValueError(f"every array in `data` must have the same number of clusters (axis 0); got {sorted(n)}.")
    return tuple(out)


def _call(statistic, xs, rows: int) -> np.ndarray:
    r = np.asarray(statistic(*xs), dtype=float)
    if r.ndim == 0 or r.shape[0] != rows:
        raise ValueError(
            f"`statistic` must be vectorised over a leading resample axis: given arrays with {rows} resamples "
            f"along axis 0 it returned shape {r.shape}. Reduce over axis 1 (the clusters), e.g. "
            "`lambda x: np.median(x, axis=1)`."
        )
    return r.reshape(rows, -1)


def _general_engine(arrays, statistic, gen, n_resamples: int, chunk_size, jackknife: bool):
    n = arrays[0].shape[0]
    est = _call(statistic, [a[None] for a in arrays], 1)[0]
    per_row = sum(a[:1].nbytes for a in arrays) * n
    rows = _w.chunk_rows(n_resamples, per_row, chunk_size)
    out = np.empty((est.size, n_resamples))  # statistic-major, as in the fast path
    draws = _w.IntegerStream(gen, n, n, n_resamples)  # the same draws as the fast path
    for s, e in _w.chunks(n_resamples, rows):
        idx = draws.next(e - s)
        out[:, s:e] = _call(statistic, [a[idx] for a in arrays], e - s).T
    jack = None
    if jackknife and n > 1:
        jack = np.empty((n, est.size))
        for s, e in _w.chunks(n, _w.chunk_rows(n, per_row, chunk_size)):
            loo = _w.leave_one_out(n, s, e)
            jack[s:e] = _call(statistic, [a[loo] for a in arrays], e - s)
    return est, out.T, jack


def check_replicates(resamples: np.ndarray, labels: pd.DataFrame, stacklevel: int = 3) -> None:
    """Warn about undefined replicates and about statistics that never vary (two passes in all)."""
    if resamples.size == 0:
        return
    with np.errstate(invalid="ignore"):
        hi, lo = resamples.max(axis=0), resamples.min(axis=0)  # NaN where any replicate is undefined
    undefined = np.isnan(hi) | np.isnan(lo) | np.isinf(hi) | np.isinf(lo)
    if undefined.any():
        cols = np.flatnonzero(undefined)
        sub = resamples[:, cols]
        n_bad = int((~np.isfinite(sub)).sum())
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            hi[cols], lo[cols] = np.nanmax(sub, axis=0), np.nanmin(sub, axis=0)
        warnings.warn(
            f"{n_bad} replicates of {len(cols)} statistics are undefined (a resample drew no cluster "
            f"with data for the cell, or the statistic returned NaN), e.g. {labels.iloc[cols[:3]].to_dict('records')}; "
            "intervals use the remaining replicates. Consider a coarser cell or more clusters.",
            DegenerateResampleWarning,
            stacklevel=stacklevel,
        )
    const = hi == lo
    if const.any() and resamples.shape[0] > 1:
        cols = np.flatnonzero(const)
        warnings.warn(
            f"every resample gave the same value for {len(cols)} statistics (e.g. "
            f"{labels.iloc[cols[:3]].to_dict('records')}): the data do not vary between clusters, so the "
            "interval has zero width and BCa is undefined.",
            DegenerateResampleWarning,
            stacklevel=stacklevel,
        )


# --------------------------------------------------------------------------------------------------
# public designs
# --------------------------------------------------------------------------------------------------
def cluster_bootstrap(
    data: pd.DataFrame | ItemAggregates | ArrayLike | Sequence[ArrayLike],
    statistic: Callable | None = None,
    *,
    value: str | None = None,
    cluster: str = "item",
    by: Sequence[str] | str | None = None,
    weights: str | ArrayLike | None = None,
    labels: pd.DataFrame | Sequence | None = None,
    perturbed: ArrayLike | Callable[[int, int], np.ndarray] | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    method: str = "bca",
    rng: RngLike = None,
    chunk_size: int | None = None,
    warn: bool = True,
) -> BootstrapResult:
    r"""Cluster bootstrap over items: resample items with replacement, keeping every row of a drawn item.

    Items are treated as a sample from a population of possible items (METHODS 3.6, 4.2 item 1), so
    the intervals answer "how much would this change with other items", not "on these items".

    Parameters
    ----------
    data : DataFrame, ItemAggregates, array (n_clusters, n_cells) or tuple of arrays
        - DataFrame: a long table with ``value``, ``cluster`` and the ``by`` columns; aggregated to the
          per-cluster mean of every cell first (:func:`item_aggregates`).
        - array: per-cluster aggregates, one row per cluster (item) and one column per cell; NaN marks
          a cluster without data in a cell.
        - with ``statistic``: array(s) whose axis 0 is the cluster (general path).
    statistic : callable, optional
        General path. Called as ``statistic(*xs)`` where every ``xs[i]`` is ``data[i][idx]`` with an
        extra leading resample axis (shape ``(chunk, n_clusters, ...)``); must return ``(chunk,)`` or
        ``(chunk, k)``. Omit it for the fast path (weighted mean of each cell).
    value, cluster, by : str
        Columns of a DataFrame ``data``.
    weights : {"equal", "rows"} or array, optional
        Weight of each cluster in a cell's mean. Default ``"equal"``: every item counts once (METHODS:
        never weight by group size inside the statistic). ``"rows"`` weights by the number of rows,
        which reproduces the mean over pooled rows. An array is ``(n_clusters,)`` or
        ``(n_clusters, n_cells)``.
    labels : DataFrame or sequence, optional
        Names of the cells of an array ``data``.
    perturbed : array (n_resamples, n_clusters, n_cells) or callable(start, stop), optional
        Per-cluster aggregates recomputed for each resample under a second source of noise, e.g.
        human reference draws from :func:`dirichlet_reference`. Replicate *b* then uses
        ``perturbed[b]`` with the items of resample *b*; the estimate uses ``data``, and so does the
        item jackknife that gives the BCa acceleration.
    n_resamples : int
        Number of bootstrap resamples (METHODS: 2,000 for intervals, 10,000 for ranking probabilities).
    confidence_level : float
        Default level of :meth:`BootstrapResult.to_frame`; any other level is available afterwards.
    method : {"bca", "percentile"}
        Default interval method.
    rng : int, numpy Generator or None
        Seed; its entropy is recorded in the result.
    chunk_size : int, optional
        Resamples per chunk (default: what fits in about 16 MiB). Results do not depend on it.
    warn : bool
        Warn about undefined or constant replicates (default). ``False`` leaves that to a caller that
        warns once for many calls (e.g. ``scaleout.bootstrap_cells``).

    Returns
    -------
    BootstrapResult
        One statistic per cell; ``.pairwise("model")``, ``.contrast()``, ``.ranks()`` and ``.apply()``
        derive paired results from the same resamples.

    Warns
    -----
    DegenerateResampleWarning
        Replicates that are undefined (a resample without any item of a cell), or statistics that do
        not vary across resamples.

    Examples
    --------
    >>> import numpy as np
    >>> from robustalign.resampling import cluster_bootstrap
    >>> a = np.random.default_rng(0).normal(0.6, 0.1, size=(200, 2))   # 200 items x 2 models
    >>> res = cluster_bootstrap(a, labels=["m1", "m2"], n_resamples=2000, rng=0)
    >>> res.to_frame().columns.tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['cell', 'estimate', 'std_error', 'conf_low', 'conf_high', 'conf_level', 'method', 'n_resamples',
     'conf_low_mcse', 'conf_high_mcse']
    >>> res.conf_int(0.9)["conf_level"].tolist()   # reuses the stored resamples
    [0.9, 0.9]
    """
    n_resamples, confidence_level, method, chunk_size = _check_common(n_resamples, confidence_level, method, chunk_size)
    gen, record = as_generator(rng)
    if statistic is not None:
        if not callable(statistic):
            raise ValueError(f"`statistic` must be callable or None; got {type(statistic).__name__}.")
        if isinstance(data, pd.DataFrame) or weights is not None or perturbed is not None:
            raise ValueError(
                "`statistic` (general path) takes per-cluster arrays: aggregate the DataFrame first "
                "(`item_aggregates`) and pass `.values`; `weights` and `perturbed` belong to the fast path."
            )
        arrays = _as_arrays(data)
        est, res, jack = _general_engine(arrays, statistic, gen, n_resamples, chunk_size, jackknife=True)
        lab = labels_for(labels, est.size, "statistic")
        n_cl = arrays[0].shape[0]
        desc = getattr(statistic, "__name__", "statistic")
        meta = {"path": "general"}
    else:
        t = as_table(data, value=value, cluster=cluster, by=by, weights=weights, labels=labels)
        est, res, jack = _linear_engine(t, gen, n_resamples, chunk_size, perturbed)
        lab, n_cl = t.labels, t.n_clusters
        desc = f"mean {t.meta.get('value', 'value')}"
        meta = {"path": "fast", **t.meta}
    if warn:
        check_replicates(res, lab)
    return BootstrapResult(
        estimate=est, resamples=res, jackknife=jack, labels=lab,
        design="cluster" if perturbed is None else "cluster+dirichlet",
        method=method, confidence_level=confidence_level, n_clusters=int(n_cl), rng=record, statistic=desc,
        provenance={**meta, "cluster": meta.get("cluster"), "chunk_size": chunk_size,
                    "perturbed": perturbed is not None},
    )


def paired_bootstrap(
    data: pd.DataFrame | ItemAggregates | ArrayLike,
    *,
    compare: str,
    within: Sequence[str] | str | None = None,
    value: str | None = None,
    cluster: str = "item",
    by: Sequence[str] | str | None = None,
    weights: str | ArrayLike | None = None,
    labels: pd.DataFrame | Sequence | None = None,
    perturbed: ArrayLike | Callable[[int, int], np.ndarray] | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    method: str = "bca",
    rng: RngLike = None,
    chunk_size: int | None = None,
) -> BootstrapResult:
    """Paired cluster bootstrap of every pairwise difference between the levels of ``compare``.

    One resample of items is shared by all models (or conditions), so each difference, and any ranking,
    is computed within the same resample: the item effects common to both sides cancel, which is what
    makes a paired interval narrower than two separate ones.

    Parameters
    ----------
    data
        As in :func:`cluster_bootstrap` (fast path). For an array, ``labels`` must have a column named
        ``compare``; without ``labels`` each column is one level of ``compare``.
    compare : str
        The factor whose levels are compared (e.g. ``"model"``).
    within : str or sequence of str, optional
        Compare inside each combination of these columns (e.g. per steering prompt). Without it, each
        level's mean is the equally weighted mean over the other cells (e.g. over steering prompts).
    value, cluster, by, weights, perturbed, n_resamples, confidence_level, method, rng, chunk_size
        As in :func:`cluster_bootstrap`. With a DataFrame, ``by`` defaults to ``[compare, *within]``.

    Returns
    -------
    BootstrapResult
        One row per pair, label columns ``<compare>_a, <compare>_b`` (difference a - b) plus ``within``.
        ``flip_probability()`` gives the ranking-flip probability of each pair.

    Examples
    --------
    >>> import numpy as np
    >>> from robustalign.resampling import paired_bootstrap
    >>> rng = np.random.default_rng(1)
    >>> item = rng.normal(0, 1, 300)[:, None]                 # shared item difficulty
    >>> a = 0.5 + item + rng.normal(0, 0.1, (300, 3)) + [0.0, 0.02, 0.05]
    >>> res = paired_bootstrap(a, compare="model", n_resamples=2000, rng=0)
    >>> res.labels.columns.tolist()
    ['model_a', 'model_b']
    >>> bool(res.to_frame()["std_error"].max() < 0.02)        # item effects cancel in the pairs
    True
    """
    within_l = [within] if isinstance(within, str) else list(within or [])
    if isinstance(data, pd.DataFrame) and by is None:
        by = [compare, *within_l]
    if not isinstance(data, pd.DataFrame | ItemAggregates) and labels is None:
        ncols = 1 if np.ndim(data) == 1 else np.shape(data)[1]
        labels = pd.DataFrame({compare: np.arange(ncols)})
    res = cluster_bootstrap(
        data, value=value, cluster=cluster, by=by, weights=weights, labels=labels, perturbed=perturbed,
        n_resamples=n_resamples, confidence_level=confidence_level, method=method, rng=rng, chunk_size=chunk_size,
    )
    if compare not in res.labels:
        raise ValueError(f"`compare={compare!r}` is not a cell label; the cells are labelled by {list(res.labels.columns)}.")
    out = res.pairwise(compare, within=within_l or None)
    return out


def two_way_bootstrap(
    data: pd.DataFrame | ArrayLike,
    *,
    value: str | None = None,
    clusters: tuple[str, str] = ("item", "group"),
    by: Sequence[str] | str | None = None,
    weights: str | ArrayLike | None = None,
    labels: pd.DataFrame | Sequence | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    method: str = "percentile",
    rng: RngLike = None,
    chunk_size: int | None = None,
) -> BootstrapResult:
    r"""Two-way (pigeonhole) bootstrap when both items and groups (or formats) are random factors.

    Items and groups are resampled independently (Owen 2007); a replicate is the weighted mean with
    product weights :math:`W^{item}_{bq} W^{group}_{bg} w_{qgc}`:

    .. math::

        \hat\theta^*_{bc} = \frac{\sum_{q,g} W^{item}_{bq} W^{group}_{bg} w_{qgc} a_{qgc}}
                                 {\sum_{q,g} W^{item}_{bq} W^{group}_{bg} w_{qgc}}.

    The variance it estimates counts the item x group interaction twice, so intervals are somewhat
    conservative (Owen 2007, theorem 2); use it when the claim generalises over both factors.

    Parameters
    ----------
    data : DataFrame or array (n_items, n_groups) or (n_items, n_groups, n_cells)
        Long table (aggregated to means per item x group x cell) or the aggregates; NaN = absent.
    value : str
        Numeric column of a DataFrame.
    clusters : (str, str)
        The two crossed random factors, default ``("item", "group")``.
    by : str or sequence of str, optional
        Cell columns (e.g. ``"model"``).
    weights : {"equal", "rows"} or array (n_items, n_groups[, n_cells]), optional
    method : {"percentile"}
        BCa is not offered: it needs a jackknife over one kind of cluster.
    n_resamples, confidence_level, rng, chunk_size, labels
        As in :func:`cluster_bootstrap`.

    Returns
    -------
    BootstrapResult
        ``n_clusters`` is ``(n_items, n_groups)``; ``jackknife`` is None.
    """
    n_resamples, confidence_level, method, chunk_size = _check_common(
        n_resamples, confidence_level, method, chunk_size, allowed=("percentile",)
    )
    gen, record = as_generator(rng)
    if isinstance(data, pd.DataFrame):
        if value is None:
            raise ValueError("`value` is required with a DataFrame, e.g. value='score'.")
        if len(clusters) != 2:
            raise ValueError(f"`clusters` must name two columns; got {clusters!r}.")
        by_l = [by] if isinstance(by, str) else list(by or [])
        vals, counts, (_, _, lab) = group_array(data, value, [[clusters[0]], [clusters[1]], by_l])
        w: np.ndarray | None
        if weights is None or isinstance(weights, str):
            w = count_weights(counts, "equal" if weights is None else weights)
        else:
            w = _weights_array(weights, vals)
    else:
        if isinstance(weights, str):
            raise ValueError("`weights='equal'|'rows'` needs a DataFrame; with an array give a weight array.")
        vals = as_float_array(data, "data", (2, 3))
        if vals.ndim == 2:
            vals = vals[:, :, None]
        w = _weights_array(weights, vals)
        lab = labels_for(labels, vals.shape[2])
    wa, w, _ = _masked(vals, w)
    Q, G, C = wa.shape
    den0 = w.sum(axis=(0, 1))
    if (den0 == 0).any():
        raise ValueError(f"{int((den0 == 0).sum())} cells have no data.")
    est = wa.sum(axis=(0, 1)) / den0
    wa_g = wa.transpose(1, 0, 2).reshape(G, Q * C)
    w_g = w.transpose(1, 0, 2).reshape(G, Q * C)
    rows = _w.chunk_rows(n_resamples, Q * C * 8 * 2, chunk_size)
    out = np.empty((C, n_resamples))  # statistic-major
    gen_q, gen_g = gen.spawn(2)  # one stream per factor: results do not depend on the chunk size
    draws_q = _w.IntegerStream(gen_q, Q, Q, n_resamples)
    draws_g = _w.IntegerStream(gen_g, G, G, n_resamples)
    for s, e in _w.chunks(n_resamples, rows):
        Wq = _w.counts_from_indices(draws_q.next(e - s, raw=True), Q)
        Wg = _w.counts_from_indices(draws_g.next(e - s, raw=True), G)
        num = np.matmul(Wq[:, None, :], (Wg @ wa_g).reshape(e - s, Q, C))[:, 0, :]
        den = np.matmul(Wq[:, None, :], (Wg @ w_g).reshape(e - s, Q, C))[:, 0, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, s:e] = (num / den).T
    out = out.T
    check_replicates(out, lab)
    return BootstrapResult(
        estimate=est, resamples=out, jackknife=None, labels=lab, design="two-way", method=method,
        confidence_level=confidence_level, n_clusters=(int(Q), int(G)), rng=record,
        statistic=f"mean {value or 'value'}",
        provenance={"path": "two-way", "clusters": list(clusters), "by": by, "chunk_size": chunk_size},
    )


# --------------------------------------------------------------------------------------------------
# human reference uncertainty
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
class ReferenceDraws(Result):
    """Dirichlet draws of human reference distributions.

    Attributes
    ----------
    draws : ndarray (n_resamples, n_items, n_groups, K)
        One resampled distribution per item x group per resample (NaN where the reference is absent;
        options beyond an item's scale stay 0).
    shares : ndarray (n_items, n_groups, K)
        The published shares.
    n_eff : ndarray (n_items, n_groups)
        Effective sample size used, ``n / deff``.
    n_known : ndarray of bool (n_items, n_groups)
        True where the respondent count came from the data; False where ``n_unknown`` was used.
    deff, n_unknown, prior : float
        The design effect, the count assumed when unknown, and the Dirichlet prior (1/2 = Jeffreys).
    items, groups : list or None
    rng : RngRecord
    """

    draws: np.ndarray
    shares: np.ndarray
    n_eff: np.ndarray
    n_known: np.ndarray
    deff: float
    n_unknown: float
    prior: float
    items: list | None
    groups: list | None
    rng: RngRecord | None

    @property
    def n_resamples(self) -> int:
        return int(self.draws.shape[0])

    @property
    def used_default(self) -> bool:
        """Whether any item x group fell back to ``n_unknown`` (report it, and run the sensitivity)."""
        return bool((~self.n_known & np.isfinite(self.shares).all(-1)).any())

    def __repr__(self) -> str:
        return (
            f"ReferenceDraws({self.n_resamples} resamples, {self.draws.shape[1]} items x {self.draws.shape[2]} groups, "
            f"deff={self.deff}, n_unknown={self.n_unknown} used for {int((~self.n_known).sum())} cells)"
        )

    def to_frame(self, confidence_level: float | None = None) -> pd.DataFrame:
        """One row per item x group x option: ``item, group, option, estimate`` (the published share),
        ``conf_low, conf_high`` (equal-tailed interval of the Dirichlet draws at ``confidence_level``,
        default 0.95), ``conf_level, method, n_eff, n_source`` (``"known"`` or ``"default"``)."""
        level = check_confidence_level(0.95 if confidence_level is None else confidence_level)
        Q, G, K = self.shares.shape
        items = self.items if self.items is not None else list(range(Q))
        groups = self.groups if self.groups is not None else list(range(G))
        a = (1 - level) / 2
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: no reference there
            lo, hi = np.nanquantile(self.draws, [a, 1 - a], axis=0)
        return pd.DataFrame({
            "item": np.repeat(items, G * K),
            "group": np.tile(np.repeat(groups, K), Q),
            "option": np.tile(np.arange(K), Q * G),
            "estimate": self.shares.ravel(),
            "conf_low": lo.ravel(),
            "conf_high": hi.ravel(),
            "conf_level": level,
            "method": "dirichlet-percentile",
            "n_eff": np.repeat(self.n_eff.ravel(), K),
            "n_source": np.repeat(np.where(self.n_known.ravel(), "known", "default"), K),
        })

    def summary(self) -> str:
        """The draws in words: how many, over what, and where the respondent count was assumed."""
        n_def = int((~self.n_known & np.isfinite(self.shares).all(-1)).sum())
        Q, G, _ = self.shares.shape
        return (f"{self.n_resamples} Dirichlet draws of {Q} items x {G} groups (design effect {self.deff:g}); "
                + (f"{n_def} item x group cells had no respondent count and assume {self.n_unknown:g} respondents."
                   if n_def else "every respondent count came from the data."))


def dirichlet_reference(
    reference: Reference | ArrayLike,
    n: ArrayLike | None = None,
    *,
    n_resamples: int = 2000,
    deff: float = DEFAULT_DEFF,
    n_unknown: float = DEFAULT_N_UNKNOWN,
    prior: float = 0.5,
    n_options: ArrayLike | None = None,
    items: Sequence | None = None,
    groups: Sequence | None = None,
    rng: RngLike = None,
) -> ReferenceDraws:
    r"""Resample human reference distributions to propagate survey sampling error (METHODS 3.6).

    Each item x group distribution *h* with *n* respondents is redrawn as

    .. math::  h^* \sim \operatorname{Dirichlet}(n_{\mathrm{eff}}\, h + \tfrac12), \qquad n_{\mathrm{eff}} = n / \mathrm{deff}.

    Parameters
    ----------
    reference : Reference or array (n_items, n_groups, K)
        A validated :class:`robustalign.Reference` (shares, counts and scale sizes are read from it) or
        an array of shares (NaN where a reference is absent).
    n : array (n_items, n_groups), optional
        Respondents per item x group; NaN = unknown. Ignored for a ``Reference``.
    deff : float
        Design effect of weighting and clustering in the survey (default 1.5, METHODS 3.6).
    n_unknown : float
        Respondents assumed when the count is unknown (default 1000; GlobalOpinionQA gives none).
        This is the sensitivity switch: repeat the analysis with e.g. ``n_unknown=300`` and ``3000``;
        ``np.inf`` treats unknown references as exact (no human noise), which is optimistic.
        The result records which cells used it (``n_known``, ``to_frame()``).
    prior : float
        Dirichlet pseudo-count per option (1/2 = Jeffreys).
    n_options : array (n_items,), optional
        Options per item when scales differ (padded options get no mass). Read from a ``Reference``.
    items, groups : sequence, optional
        Subset and order for a ``Reference``.
    n_resamples : int
    rng : int, Generator or None

    Returns
    -------
    ReferenceDraws
        Combine with the item bootstrap through ``cluster_bootstrap(..., perturbed=...)``, by computing
        per-item aggregates from ``draws[b]``.

    Examples
    --------
    >>> import numpy as np
    >>> from robustalign.resampling import dirichlet_reference
    >>> h = np.array([[[0.5, 0.3, 0.2]]])                   # 1 item x 1 group x 3 options
    >>> d = dirichlet_reference(h, np.array([[600.0]]), n_resamples=20000, rng=0)
    >>> np.round(d.draws.mean(axis=0)[0, 0], 2).tolist()  # mean (400 h + 1/2) / (400 + 3/2)
    [0.5, 0.3, 0.2]
    >>> d.used_default
    False
    """
    from robustalign.schema import Reference

    n_resamples = check_n_resamples(n_resamples)
    for name, val, lo_ok in (("deff", deff, False), ("prior", prior, True)):
        if not np.isfinite(val) or val < 0 or (val == 0 and not lo_ok):
            raise ValueError(f"`{name}` must be a {'non-negative' if lo_ok else 'positive'} number; got {val!r}.")
    if not (n_unknown > 0):
        raise ValueError(f"`n_unknown` must be a positive number or np.inf; got {n_unknown!r}.")
    if isinstance(reference, Reference):
        items = list(reference.items if items is None else items)
        groups = list(reference.groups if groups is None else groups)
        shares = reference.array(items, groups)
        n = reference.n_array(items, groups)
        n_options = reference.K(items)
    else:
        shares = as_float_array(reference, "reference", (3,))
        items = list(items) if items is not None else None
        groups = list(groups) if groups is not None else None
    Q, G, K = shares.shape
    if n is None:
        n = np.full((Q, G), np.nan)
    n = as_float_array(n, "n", (2,))
    if n.shape != (Q, G):
        raise ValueError(f"`n` must have shape (n_items, n_groups) = {(Q, G)}; got {n.shape}.")
    if (n[np.isfinite(n)] <= 0).any():
        raise ValueError("`n` must be positive where known (NaN = unknown).")
    valid = np.ones((Q, K), bool) if n_options is None else (np.arange(K)[None, :] < np.asarray(n_options)[:, None])
    absent = np.isnan(shares).any(axis=-1)
    s = np.nan_to_num(shares)
    tot = s.sum(-1)
    if (np.abs(tot[~absent] - 1) > 1e-6).any():
        raise ValueError("`reference` shares must sum to 1 over options in every present item x group.")
    known = np.isfinite(n)
    n_eff = np.where(known, n, n_unknown) / deff
    est_bytes = n_resamples * Q * G * K * 8
    if est_bytes > 2 * 2**30:
        raise ValueError(
            f"{n_resamples} draws of {Q} x {G} x {K} distributions need {est_bytes / 2**30:.1f} GiB; draw fewer "
            "resamples or pass a subset of items/groups."
        )
    gen, record = as_generator(rng)
    alpha = np.where(valid[:, None, :], np.nan_to_num(n_eff)[..., None] * s + prior, 0.0)
    alpha[absent] = np.nan
    exact = ~known & np.isinf(n_eff) & ~absent  # n_unknown=inf: unknown references taken as exact
    alpha[exact] = 1.0  # placeholder; replaced by the shares below
    draws = _w.dirichlet(gen, alpha, n_resamples)
    if exact.any():
        draws[:, exact] = s[exact]
    return ReferenceDraws(
        draws=draws, shares=shares, n_eff=n_eff, n_known=known, deff=float(deff), n_unknown=float(n_unknown),
        prior=float(prior), items=items, groups=groups, rng=record,
    )
