"""Studentised bootstrap (bootstrap-t) nulls for means of per-item contrasts whose summands are skewed.

A sign flip of per-item contrasts is exact when each contrast is symmetric about 0 under the null. Per-item
differences of two bias-corrected similarities are not: two identical models sampled 15 and 5 times give
differences with mean 0 but a long tail (the 5-answer estimate is the noisier and skewed one), and a
one-sided sign-flip test of their mean then rejects about twice as often as its level. The bootstrap-t
(Efron & Tibshirani 1993, ch. 12; Hall 1992, sec. 3.10) estimates the distribution of the studentised mean
``t = mean / se`` by the distribution of ``t* = (mean* - mean) / se*`` over item resamples: its one-sided
error is O(1/n) items instead of the O(1/sqrt(n)) of a normal or sign-flip reference.

Public names
------------
bootstrap_t_null
    Null draws of per-specification statistics (mean or median of the items' contrasts) on the scale of
    the statistic, for :func:`robustalign.resampling.nulls.p_values` and max-T adjustments.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from robustalign._rng import RngLike
from robustalign.resampling.nulls import item_bootstrap

__all__ = ["bootstrap_t_null"]


def _mean_se(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the items axis (-2) of ``d`` (..., items, specs), ignoring NaN, and its standard error."""
    ok = ~np.isnan(d)
    n = ok.sum(-2)
    x = np.where(ok, d, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(-2) / n
        ss = np.where(ok, (x - np.expand_dims(mean, -2)) ** 2, 0.0).sum(-2)
        se = np.sqrt(ss / (n - 1) / n)
    return np.where(n > 0, mean, np.nan), np.where(n > 1, se, np.nan)


def _nanmedian(d: np.ndarray) -> np.ndarray:
    """Median over the items axis (-2), ignoring NaN (NaN where a column has no value)."""
    s = np.sort(d, axis=-2)  # NaN sorts last
    n = (~np.isnan(s)).sum(-2, keepdims=True)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0), axis=-2)
    hi = np.take_along_axis(s, n // 2, axis=-2)
    return np.where(n[..., 0, :] > 0, ((lo + hi) / 2)[..., 0, :], np.nan)


def _centred(d: np.ndarray, median: np.ndarray, mean0: np.ndarray, se0: np.ndarray, med0: np.ndarray,
             idx: np.ndarray) -> np.ndarray:
    """Null draws for the item resamples ``idx`` (rows, items): see :func:`bootstrap_t_null`."""
    out = np.empty((len(idx), d.shape[1]))
    step = max(1, (8 * 2**20) // max(d.nbytes, 1))
    for s in range(0, len(idx), step):
        x = d[idx[s : s + step]]  # (rows, items, specs)
        mean, se = _mean_se(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(se > 0, (mean - mean0) / se * se0, np.nan)  # bootstrap-t on the scale of the mean
        t = np.where(se0 > 0, t, mean - mean0)  # constant contrasts: nothing to studentise
        out[s : s + step] = np.where(median, _nanmedian(x) - med0, t) if median.any() else t
    return out


def bootstrap_t_null(d: np.ndarray, *, median: np.ndarray | None = None, n_resamples: int, rng: RngLike,
                     key: tuple, executor: object = None) -> np.ndarray:
    r"""Null distribution of the mean (or median) of per-item contrasts, by the studentised item bootstrap.

    Parameters
    ----------
    d : ndarray, shape (items, specs)
        Per-item contrasts of each specification (NaN: the item is absent from that specification).
    median : ndarray of bool, shape (specs,), optional
        Specifications whose statistic is the median over items rather than the mean; their null is the
        centred bootstrap ``median* - median`` (a median has no simple standard error to studentise by).
    n_resamples : int
        Item resamples, drawn by :func:`robustalign.resampling.nulls.item_bootstrap` (all specifications
        share each resample, so a joint null across specifications keeps their dependence).
    rng, key, executor
        As in :func:`robustalign.resampling.nulls.item_bootstrap`; ``key`` names the purpose and the unit.

    Returns
    -------
    ndarray, shape (n_resamples, specs)
        Draws of the statistic under the null of a zero mean, on the statistic's own scale, to be compared
        with the observed mean by :func:`robustalign.resampling.nulls.p_values`. For a mean column,

        .. math:: T^*_b = \frac{\bar d^*_b - \bar d}{\mathrm{se}^*_b}\,\mathrm{se}, \qquad
                  \mathrm{se} = s_d / \sqrt{n},

        so ``P(T* >= mean)`` is the bootstrap-t p-value ``P(t* >= t)`` of ``t = mean / se``. Resamples
        whose standard error is 0 give NaN (left out of the p-value); a column whose observed standard
        error is 0 gets the unstudentised ``mean* - mean``.
    """
    d = np.asarray(d, float)
    if d.ndim != 2:
        raise ValueError(f"`d` must be per-item contrasts of shape (items, specs); got shape {d.shape}.")
    med = np.zeros(d.shape[1], bool) if median is None else np.asarray(median, bool).reshape(d.shape[1])
    mean0, se0 = _mean_se(d)
    med0 = _nanmedian(d)
    stat = partial(_centred, d, med, mean0, se0, med0)
    return item_bootstrap(stat, d.shape[0], n_resamples=n_resamples, rng=rng, key=key, executor=executor)
