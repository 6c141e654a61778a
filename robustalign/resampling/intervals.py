r"""Bootstrap confidence intervals from stored resamples: percentile and BCa.

Both work column by column on a ``(n_resamples, k)`` matrix of replicates, so one call gives the
intervals of every statistic of a result. Quantiles use linear interpolation between order statistics
(``numpy.quantile``'s default, as ``scipy.stats.bootstrap`` does).

BCa (Efron 1987; Efron & Tibshirani 1993, eq. 14.10 and 14.15) moves the percentile levels to

.. math::

    \alpha_{1,2} = \Phi\!\left(\hat z_0 + \frac{\hat z_0 + z_{\alpha_{1,2}}}{1 - \hat a(\hat z_0 + z_{\alpha_{1,2}})}\right),
    \qquad
    \hat z_0 = \Phi^{-1}\!\left(\frac{\#\{\theta^*_b < \hat\theta\} + \#\{\theta^*_b \le \hat\theta\}}{2B}\right),
    \qquad
    \hat a = \frac{\sum_i (\bar\theta_{(\cdot)} - \theta_{(i)})^3}{6\,[\sum_i (\bar\theta_{(\cdot)} - \theta_{(i)})^2]^{3/2}},

where :math:`\theta_{(i)}` leaves out cluster *i* (the delete-one-cluster jackknife). These are the
formulas of ``scipy.stats.bootstrap(method="BCa")``; the tests check that both give the same interval
from the same bootstrap distribution.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import ndtr, ndtri

from robustalign._errors import DegenerateResampleWarning

__all__ = ["bca_interval", "jackknife_acceleration", "percentile_interval"]

_STACKLEVEL = 4


def _as_2d(resamples) -> tuple[np.ndarray, bool]:
    r = np.asarray(resamples, dtype=float)
    if r.ndim == 1:
        return r[:, None], True
    if r.ndim != 2:
        raise ValueError(f"`resamples` must be 1-D or 2-D (n_resamples, k); got shape {r.shape}.")
    return r, False


def _order_stats(col: np.ndarray, ranks: np.ndarray, mu: float, sd: float) -> np.ndarray:
    """Exact order statistics ``sorted(col)[ranks]`` without sorting or selecting over the whole column.

    Bootstrap quantiles sit in the tails, so only the values beyond a threshold from the normal
    approximation are sorted; when the threshold catches too few values (a heavy tail), the column is
    partitioned instead. The result is exact either way.
    """
    n = col.size
    out = np.empty(ranks.size)
    low = ranks < n / 2
    if np.isfinite(sd) and sd > 0:
        if low.any():
            need = int(ranks[low].max()) + 1
            t = mu + sd * float(ndtri(min(0.5, 1.5 * need / n + 0.005)))
            cand = col[col <= t]
            if cand.size >= need:
                cand.sort()
                out[low] = cand[ranks[low]]
                low_done = True
            else:
                low_done = False
        else:
            low_done = True
        high = ~low
        if high.any():
            from_top = n - 1 - ranks[high]
            need = int(from_top.max()) + 1
            t = mu + sd * float(ndtri(max(0.5, 1.0 - 1.5 * need / n - 0.005)))
            cand = col[col >= t]
            if cand.size >= need:
                cand.sort()
                out[high] = cand[cand.size - 1 - from_top]
                high_done = True
            else:
                high_done = False
        else:
            high_done = True
        if low_done and high_done:
            return out
    return np.partition(col, np.unique(ranks))[ranks]


def quantiles_by_column(resamples: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles, a different probability per column.

    ``resamples`` is ``(B, k)``, ``probs`` is ``(m, k)``; returns ``(m, k)``. NaN replicates are
    ignored; a column with no finite replicate, or a NaN probability, gives NaN.
    """
    probs = np.asarray(probs, dtype=float)
    B, k = resamples.shape
    out = np.full(probs.shape, np.nan)
    if k == 0 or B == 0:
        return out
    cols = np.ascontiguousarray(resamples.T)
    finite = np.isfinite(cols).all(axis=1)
    with np.errstate(invalid="ignore"):
        mu = cols.mean(axis=1)
        sd = cols.std(axis=1)
    for j in range(k):
        p = probs[:, j]
        ok = np.isfinite(p)
        if not ok.any():
            continue
        col = cols[j] if finite[j] else cols[j][np.isfinite(cols[j])]
        n = col.size
        if n == 0:
            continue
        h = (n - 1) * p[ok]
        lo = np.floor(h).astype(np.intp)
        hi = np.minimum(lo + 1, n - 1)
        if finite[j]:
            v = _order_stats(col, np.concatenate([lo, hi]), mu[j], sd[j])
        else:
            v = np.partition(col, np.unique(np.concatenate([lo, hi])))[np.concatenate([lo, hi])]
        vlo, vhi = v[: lo.size], v[lo.size :]
        out[ok, j] = vlo + (h - lo) * (vhi - vlo)
    return out


def percentile_interval(resamples, confidence_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of ``resamples`` ``(n_resamples, k)``.

    Returns ``(low, high)`` arrays of length ``k`` (scalars for 1-D input).
    """
    r, flat = _as_2d(resamples)
    alpha = (1.0 - confidence_level) / 2.0
    probs = np.tile(np.array([[alpha], [1.0 - alpha]]), (1, r.shape[1]))
    q = quantiles_by_column(r, probs)
    return (q[0, 0], q[1, 0]) if flat else (q[0], q[1])


def jackknife_acceleration(jackknife) -> np.ndarray:
    """BCa acceleration :math:`\\hat a` from delete-one-cluster jackknife values ``(n_clusters, k)``.

    NaN where the jackknife values do not vary (acceleration undefined).
    """
    j = np.asarray(jackknife, dtype=float)
    if j.ndim == 1:
        j = j[:, None]
    d = np.nanmean(j, axis=0, keepdims=True) - j
    num = np.nansum(d**3, axis=0)
    den = 6.0 * np.nansum(d**2, axis=0) ** 1.5
    with np.errstate(invalid="ignore", divide="ignore"):
        a = num / den
    a[den == 0] = np.nan
    return a


def bca_levels(resamples: np.ndarray, estimate: np.ndarray, acceleration: np.ndarray, confidence_level: float):
    """The adjusted percentile levels ``(alpha_1, alpha_2)`` and the bias correction ``z0``."""
    B = np.isfinite(resamples).sum(axis=0)
    est = np.asarray(estimate, dtype=float)[None, :]
    below = (resamples < est).sum(axis=0) + (resamples <= est).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z0 = ndtri(below / (2.0 * B))
        alpha = (1.0 - confidence_level) / 2.0
        z_alpha = float(ndtri(alpha))
        n1 = z0 + z_alpha
        a1 = ndtr(z0 + n1 / (1.0 - acceleration * n1))
        n2 = z0 - z_alpha
        a2 = ndtr(z0 + n2 / (1.0 - acceleration * n2))
    return a1, a2, z0


def bca_interval(
    resamples, estimate, jackknife=None, confidence_level: float = 0.95, *, acceleration=None
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected and accelerated interval of each column of ``resamples``.

    Parameters
    ----------
    resamples : array (n_resamples, k) or (n_resamples,)
    estimate : array (k,) or scalar
        The statistics on the original data.
    jackknife : array (n_clusters, k), optional
        Delete-one-cluster values of the statistics; gives the acceleration.
    confidence_level : float
    acceleration : array (k,), optional
        Given directly instead of ``jackknife``.

    Returns
    -------
    (low, high)
        NaN, with a :class:`~robustalign.DegenerateResampleWarning`, where BCa is undefined (every
        replicate on one side of the estimate, or a jackknife that does not vary); use
        ``method="percentile"`` there.
    """
    r, flat = _as_2d(resamples)
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    if acceleration is None:
        if jackknife is None:
            raise ValueError("`bca_interval` needs `jackknife` values or an `acceleration`.")
        jk = np.asarray(jackknife, dtype=float)
        acceleration = jackknife_acceleration(jk[:, None] if jk.ndim == 1 else jk)
    acc = np.atleast_1d(np.asarray(acceleration, dtype=float))
    a1, a2, _ = bca_levels(r, est, acc, confidence_level)
    bad = ~(np.isfinite(a1) & np.isfinite(a2))
    if bad.any():
        warnings.warn(
            f"BCa is undefined for {int(bad.sum())} of {bad.size} statistics (all resamples on one side of "
            "the estimate, or a jackknife that does not vary); their interval is NaN. "
            "Use method='percentile' for them.",
            DegenerateResampleWarning,
            stacklevel=_STACKLEVEL,
        )
    q = quantiles_by_column(r, np.vstack([a1, a2]))
    return (q[0, 0], q[1, 0]) if flat else (q[0], q[1])
