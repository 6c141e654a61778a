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

Monte Carlo error of the endpoints
----------------------------------
An endpoint is a quantile of ``B`` replicates, so it moves with the seed. Its Monte Carlo standard
error (the ``conf_low_mcse`` / ``conf_high_mcse`` columns of results) is the order-statistic
(binomial) estimate: the count of replicates below the true ``alpha`` quantile is
``Binomial(B, alpha)``, so the empirical quantile's SD is :math:`Q'(\alpha)\sqrt{\alpha(1-\alpha)/B}`,
with the slope :math:`Q'` read off the replicates at :math:`\alpha \pm \sqrt{\alpha(1-\alpha)/B}`
(as ArviZ's ``mcse(method="quantile")`` does). For BCa the level :math:`\alpha_1` itself is estimated
from the share :math:`p_0` of replicates below the estimate; by the delta method on the empirical
distribution function, with :math:`g = d\alpha_1/dp_0`,

.. math::

    \operatorname{SE} = Q'(\alpha_1)\sqrt{\big[\alpha_1(1-\alpha_1) + g^2 p_0(1-p_0)
    - 2g\,\min(\alpha_1,p_0)(1-\max(\alpha_1,p_0))\big] / B}.

The jackknife acceleration does not depend on the draws. The tests compare both with the spread of
the endpoints over many seeds.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr, ndtri

from robustalign._errors import DegenerateResampleWarning

__all__ = ["bca_interval", "bca_mcse", "expanded_level", "jackknife_acceleration", "percentile_interval", "percentile_mcse",
           "quantile_mcse", "t_interval", "t_mcse"]

_STACKLEVEL = 4


def _as_2d(resamples) -> tuple[np.ndarray, bool]:
    r = np.asarray(resamples, dtype=float)
    if r.ndim == 1:
        return r[:, None], True
    if r.ndim != 2:
        raise ValueError(f"`resamples` must be 1-D or 2-D (n_resamples, k); got shape {r.shape}.")
    return r, False


class _SortedCache:
    """The sorted columns of the last few replicate matrices, so that the several quantiles one result's
    table needs (interval, endpoint Monte Carlo errors, other levels) sort its replicates once.

    An entry is found only for a matrix equal bit for bit to the one it was made from (a copy is kept
    and compared, which costs a small share of a sort): a changed matrix is sorted again."""

    MAX_BYTES = 64_000_000  # copies plus sorted columns, over all entries

    def __init__(self) -> None:
        self._entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (copy, sorted (k, B), n_finite)
        self._lock = threading.Lock()

    def get(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(sorted, n_finite)``: each column of ``r`` (B, k) ascending as a row of ``sorted`` (k, B), and
        the count of its finite values (k,); only the first ``n_finite`` values of a row are to be read."""
        bits = r.view(np.int64)
        with self._lock:
            for i, (copy, srt, n) in enumerate(self._entries):
                if copy.shape == r.shape and np.array_equal(copy.view(np.int64), bits):
                    self._entries.append(self._entries.pop(i))  # most recently used last
                    return srt, n
        cols = r.T.copy()  # (k, B), one column per contiguous row
        finite = np.isfinite(cols)
        # non-finite replicates are left out (as +inf at the end of the row: NaN would take numpy off its
        # vectorised sort, several times slower)
        cols[~finite] = np.inf
        cols.sort(axis=1)
        n = finite.sum(axis=1)
        if 2 * r.nbytes <= self.MAX_BYTES // 2:
            with self._lock:
                self._entries.append((r.copy(), cols, n))
                while sum(2 * c.nbytes for c, _, _ in self._entries) > self.MAX_BYTES:
                    self._entries.pop(0)
        return cols, n


_SORTED = _SortedCache()


def quantiles_by_column(resamples: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles, a different probability per column.

    ``resamples`` is ``(B, k)``, ``probs`` is ``(m, k)``; returns ``(m, k)``. Non-finite replicates
    are ignored; a column with no finite replicate, or a NaN probability, gives NaN. The columns are
    sorted once per matrix (see :class:`_SortedCache`): the interval, its Monte Carlo errors and the
    intervals at other levels of one result then read the same sorted replicates.
    """
    probs = np.asarray(probs, dtype=float)
    r = np.asarray(resamples, dtype=float)
    B, k = r.shape
    out = np.full(probs.shape, np.nan)
    if k == 0 or B == 0:
        return out
    srt, n = _SORTED.get(r)
    ok = np.isfinite(probs) & (n > 0)[None, :]
    with np.errstate(invalid="ignore"):
        h = (n[None, :] - 1) * probs
    h = np.where(ok, h, 0.0)
    lo = np.floor(h).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0)[None, :])
    v_lo = np.take_along_axis(srt, lo.T, axis=1).T
    v_hi = np.take_along_axis(srt, hi.T, axis=1).T
    with np.errstate(invalid="ignore"):  # columns without a finite replicate read +inf; they stay NaN
        out[ok] = (v_lo + (h - lo) * (v_hi - v_lo))[ok]
    return out


def percentile_interval(resamples: ArrayLike, *, confidence_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each column of ``resamples`` ``(n_resamples, k)``.

    Returns ``(low, high)`` arrays of length ``k`` (scalars for 1-D input).
    """
    r, flat = _as_2d(resamples)
    alpha = (1.0 - confidence_level) / 2.0
    probs = np.tile(np.array([[alpha], [1.0 - alpha]]), (1, r.shape[1]))
    q = quantiles_by_column(r, probs)
    return (q[0, 0], q[1, 0]) if flat else (q[0], q[1])


def jackknife_acceleration(jackknife: ArrayLike) -> np.ndarray:
    """BCa acceleration :math:`\\hat a` from delete-one-cluster jackknife values ``(n_clusters, k)``.

    NaN where the jackknife values do not vary (acceleration undefined).
    """
    j = np.asarray(jackknife, dtype=float)
    if j.ndim == 1:
        j = j[:, None]
    if np.isfinite(j).all():
        d = j.mean(axis=0, keepdims=True) - j
        num = (d**3).sum(axis=0)
        den = 6.0 * (d**2).sum(axis=0) ** 1.5
    else:  # a deletion left a cell without data: use the defined values
        d = np.nanmean(j, axis=0, keepdims=True) - j
        num = np.nansum(d**3, axis=0)
        den = 6.0 * np.nansum(d**2, axis=0) ** 1.5
    with np.errstate(invalid="ignore", divide="ignore"):
        a = num / den
    a[den == 0] = np.nan
    return a


#: Relative distance within which a resampled statistic counts as equal to the observed one
#: (floating-point noise), in BCa bias corrections and permutation p-values alike.
TIE_REL_TOL = 1e-10


def bca_levels(resamples: np.ndarray, estimate: np.ndarray, acceleration: np.ndarray, confidence_level: float):
    """The adjusted percentile levels ``(alpha_1, alpha_2)`` and the bias correction ``z0``."""
    B = np.isfinite(resamples).sum(axis=0)
    est = np.asarray(estimate, dtype=float)[None, :]
    # ties count half (as scipy); replicates within floating-point noise of the estimate are ties, so a
    # last-bit difference in how the estimate and a replicate were summed does not move the interval
    with np.errstate(invalid="ignore"):
        tol = TIE_REL_TOL * np.maximum(np.abs(est), np.nanmax(np.abs(resamples), axis=0, initial=0.0))
    below = (resamples < est - tol).sum(axis=0) + (resamples <= est + tol).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z0 = ndtri(below / (2.0 * B))
        alpha = (1.0 - confidence_level) / 2.0
        z_alpha = float(ndtri(alpha))
        n1 = z0 + z_alpha
        a1 = ndtr(z0 + n1 / (1.0 - acceleration * n1))
        n2 = z0 - z_alpha
        a2 = ndtr(z0 + n2 / (1.0 - acceleration * n2))
    return a1, a2, z0


def _bca_inputs(resamples, estimate, jackknife, acceleration, caller: str):
    """Replicates as 2-D, the estimates and the acceleration (from the jackknife when not given)."""
    r, flat = _as_2d(resamples)
    est = np.atleast_1d(np.asarray(estimate, dtype=float))
    if acceleration is None:
        if jackknife is None:
            raise ValueError(f"`{caller}` needs `jackknife` values or an `acceleration`.")
        acceleration = jackknife_acceleration(jackknife)
    return r, flat, est, np.atleast_1d(np.asarray(acceleration, dtype=float))


def bca_interval(
    resamples: ArrayLike, estimate: ArrayLike, jackknife: ArrayLike | None = None, *, confidence_level: float = 0.95,
    acceleration: ArrayLike | None = None,
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
    r, flat, est, acc = _bca_inputs(resamples, estimate, jackknife, acceleration, "bca_interval")
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


def _quantile_slope(r: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope ``dQ/dp`` of each column's quantile function at ``probs`` (m, k), and the finite counts (k,)."""
    n = np.isfinite(r).sum(axis=0).astype(float)  # (k,)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.sqrt(probs * (1.0 - probs) / n[None, :])
        lo = np.clip(probs - h, 0.0, 1.0)
        hi = np.clip(probs + h, 0.0, 1.0)
        q = quantiles_by_column(r, np.vstack([lo, hi]))
        m = probs.shape[0]
        slope = (q[m:] - q[:m]) / (hi - lo)
    slope = np.where(hi > lo, slope, 0.0)
    return np.where(np.isfinite(probs), slope, np.nan), n


def quantile_mcse(resamples: ArrayLike, probs: ArrayLike) -> np.ndarray:
    r"""Monte Carlo SE of the empirical quantiles at ``probs`` ``(m, k)`` of the columns of ``resamples``.

    :math:`Q'(p)\sqrt{p(1-p)/B}` with ``B`` the finite replicates of the column (order-statistic
    estimate, see the module notes). Returns ``(m, k)``.
    """
    r, _ = _as_2d(resamples)
    probs = np.asarray(probs, dtype=float).reshape(-1, r.shape[1])
    slope, n = _quantile_slope(r, probs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return slope * np.sqrt(probs * (1.0 - probs) / n[None, :])


def percentile_mcse(resamples: ArrayLike, *, confidence_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo SE of the percentile interval's ``(low, high)`` endpoints (scalars for 1-D input)."""
    r, flat = _as_2d(resamples)
    alpha = (1.0 - confidence_level) / 2.0
    se = quantile_mcse(r, np.tile(np.array([[alpha], [1.0 - alpha]]), (1, r.shape[1])))
    return (se[0, 0], se[1, 0]) if flat else (se[0], se[1])


def bca_mcse(
    resamples: ArrayLike, estimate: ArrayLike, jackknife: ArrayLike | None = None, *, confidence_level: float = 0.95,
    acceleration: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo SE of the BCa interval's ``(low, high)`` endpoints, including the noise of ``z0``.

    Arguments as :func:`bca_interval`; NaN where BCa is undefined.
    """
    r, flat, est, acc = _bca_inputs(resamples, estimate, jackknife, acceleration, "bca_mcse")
    a1, a2, z0 = bca_levels(r, est, acc, confidence_level)
    slope, n = _quantile_slope(r, np.vstack([a1, a2]))
    z_alpha = float(ndtri((1.0 - confidence_level) / 2.0))
    out = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        p0 = ndtr(z0)
        for i, (a, za) in enumerate(((a1, z_alpha), (a2, -z_alpha))):
            w = z0 + za
            d = 1.0 - acc * w
            g = _phi(z0 + w / d) * (1.0 + 1.0 / d**2) / _phi(z0)  # d alpha / d p0
            var = (a * (1 - a) + g**2 * p0 * (1 - p0) - 2 * g * np.minimum(a, p0) * (1 - np.maximum(a, p0))) / n
            out.append(slope[i] * np.sqrt(np.maximum(var, 0.0)))
    return (out[0][0], out[1][0]) if flat else (out[0], out[1])


def _phi(z):
    return np.exp(-0.5 * np.asarray(z, dtype=float) ** 2) / np.sqrt(2 * np.pi)


def expanded_level(level: float, n: ArrayLike) -> np.ndarray:
    """Confidence level at which a bootstrap interval of a mean over ``n`` items has the width of the
    ``level`` t-interval: ``1 - alpha'`` with ``z_{alpha'/2} = sqrt(n / (n - 1)) t_{alpha/2, n-1}``
    (Hesterberg 2015, "expanded percentile interval"; the same replicates, read at wider quantiles).

    The plain bootstrap interval of a mean is too narrow with few items: it uses the variance with
    divisor ``n`` and normal quantiles. With 20 items a nominal 95% BCa interval of a mean steering gain
    covered 0 in 0.922 [0.897, 0.942] of 600 null data sets, the expanded one in 0.955 [0.935, 0.970]
    (tests/test_claims_steerability.py); for mean alignment over 40 items see docs/resampling.md.
    Returns NaN where ``n < 2`` (or ``n`` is NaN): no expanded level exists there.
    """
    from scipy import stats

    n_arr = np.asarray(n, dtype=float)
    z = _t_multiplier(level, n_arr)
    return np.asarray(np.where(n_arr >= 2, 1.0 - 2.0 * stats.norm.sf(z), np.nan), dtype=float)


def _t_multiplier(level: float, n: np.ndarray) -> np.ndarray:
    """``sqrt(n / (n - 1)) t_{1 - alpha/2, n - 1}``: the bootstrap SE of a mean over ``n`` items (divisor
    ``n``) times this is the t interval's half-width (divisor ``n - 1``); NaN where ``n < 2``."""
    from scipy import stats

    n_arr = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.sqrt(n_arr / (n_arr - 1.0)) * stats.t.ppf(0.5 + level / 2.0, n_arr - 1.0)
    return np.where(n_arr >= 2, m, np.nan)


def t_interval(resamples: ArrayLike, estimate: ArrayLike, n: ArrayLike, *,
               confidence_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The t interval of a mean over ``n`` items with its standard error from the bootstrap replicates:
    ``estimate +- sqrt(n / (n - 1)) t_{1 - alpha/2, n - 1} SE_boot``.

    For fixed per-item values the cluster bootstrap's SE of their mean is ``s sqrt((n - 1) / n) / sqrt(n)``
    (``s`` with divisor ``n - 1``), so this is the textbook ``mean +- t s / sqrt(n)`` up to Monte Carlo
    error (``scipy.stats.ttest_1samp(...).confidence_interval``); the replicates carry whatever else the
    resampling design propagates (e.g. Dirichlet draws of the reference). Symmetric: use it where the
    per-item values are nearly symmetric (pairwise differences of the quadratic metrics,
    docs/resampling.md), not for a skewed mean, where BCa follows the skew. NaN where ``n < 2``.
    """
    r, flat = _as_2d(resamples)
    est = np.asarray(estimate, dtype=float).reshape(-1)
    with np.errstate(invalid="ignore"):
        se = np.nanstd(r, axis=0, ddof=1)
    half = _t_multiplier(confidence_level, np.broadcast_to(np.asarray(n, dtype=float), est.shape)) * se
    lo, hi = est - half, est + half
    return (lo[0], hi[0]) if flat else (lo, hi)


def t_mcse(resamples: ArrayLike, n: ArrayLike, *, confidence_level: float = 0.95) -> np.ndarray:
    """Monte Carlo SE of :func:`t_interval`'s endpoints (the same for both): the multiplier times the
    delta-method SE of the bootstrap SD, ``sqrt(m4 - s^4) / (2 s sqrt(B))`` from the replicates' second
    and fourth central moments (``s / sqrt(2 B)`` for normal replicates)."""
    r, flat = _as_2d(resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(r)
        b = ok.sum(axis=0).astype(float)
        c = r - np.nanmean(r, axis=0)
        m2 = np.nansum(c**2, axis=0) / b
        m4 = np.nansum(c**4, axis=0) / b
        se_sd = np.sqrt(np.maximum(m4 - m2**2, 0.0)) / (2.0 * np.sqrt(m2) * np.sqrt(b))
    out = _t_multiplier(confidence_level, np.broadcast_to(np.asarray(n, dtype=float), se_sd.shape)) * se_sd
    return out[0] if flat else out
