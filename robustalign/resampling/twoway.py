r"""Two-way cluster-robust intervals for means over a crossed items x respondents table.

A persona experiment scores every (item, respondent) pair. Items are a sample from a population of
items and respondents a sample from a population of people, so a mean over the table is uncertain in
both directions: a new item set moves every respondent's score together, and a new set of people moves
every item's score together. An interval that resamples only items (or only respondents) misses the
other source and under-covers.

The variance here is the Cameron-Gelbach-Miller (2011) two-way cluster-robust (CRV1) variance of a
mean. With the estimate :math:`\hat\theta = \sum_{qr} y_{qr} / N` over the :math:`N` observed cells
and residual scores :math:`e_{qr} = (y_{qr} - \hat\theta) / N`,

.. math::

    \hat V = \tfrac{Q}{Q-1}\sum_q \Big(\sum_r e_{qr}\Big)^2
           + \tfrac{R}{R-1}\sum_r \Big(\sum_q e_{qr}\Big)^2
           - \tfrac{N}{N-1}\sum_{qr} e_{qr}^2,

the item-clustered plus the respondent-clustered variance minus the variance clustered on their
intersection (here one cell each), which both one-way terms count. It equals statsmodels'
``cov_cluster_2groups`` for an intercept-only regression. In the rare table where :math:`\hat V \le 0`
the larger one-way variance is used (and flagged in ``fallback``). When a cell's score also depends on
other respondents (a leave-one-out group baseline), ``influence=`` gives linearised cell scores to use
in place of :math:`y_{qr} - \hat\theta` (see :func:`robustalign.persona.loo_influence`).

Why not the pigeonhole (product) bootstrap of :func:`~robustalign.resampling.two_way_bootstrap`: it
counts the item x respondent interaction about three times (Owen 2007), and in persona data that
interaction (whether one person's answer matches one item's model answer) is most of the variance, so
the product bootstrap over-covers at moderate table sizes. The two-way CRV1 variance counts it once.
Intervals use Student t with ``min(Q, R) - 1`` degrees of freedom (the scarcer cluster limits the
information).

Public names
------------
twoway_mean
    Estimate, two-way (or one-way) standard error, t interval and p-value of a table's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["TwoWayMean", "twoway_mean"]

CLUSTERS = ("two-way", "items", "respondents")


@dataclass(frozen=True)
class TwoWayMean:
    """A mean over an items x respondents table with its cluster-robust uncertainty.

    ``var_items``, ``var_respondents`` and ``var_cells`` are the three CRV1 terms; ``std_error`` is
    the square root of the variance ``clusters`` asks for; ``df`` the t degrees of freedom.
    """

    estimate: float
    std_error: float
    conf_low: float
    conf_high: float
    p_value: float
    df: int
    n_items: int
    n_respondents: int
    n_cells: int
    var_items: float
    var_respondents: float
    var_cells: float
    clusters: str
    fallback: bool


def _crv1(e: np.ndarray, along: int) -> tuple[float, int]:
    """CRV1 variance of a mean from residual scores clustered along one axis (every cluster has data)."""
    s = e.sum(axis=along)
    g = max(s.size, 2)
    return float(g / (g - 1) * (s**2).sum()), s.size


def twoway_mean(values: ArrayLike, *, clusters: str = "two-way", confidence_level: float = 0.95,
                null: float = 0.0, influence: ArrayLike | None = None) -> TwoWayMean:
    """Mean of an ``(n_items, n_respondents)`` table (NaN = no score) with a cluster-robust t interval.

    Parameters
    ----------
    values : array (n_items, n_respondents)
        One score per observed cell (e.g. expected agreement of a model with a respondent on an item,
        or a paired difference). Every observed cell has weight 1.
    clusters : {"two-way", "items", "respondents"}
        ``"two-way"`` (the default; see the module docstring) or a one-way variance, which ignores the
        other source of variation (kept to show what it misses).
    null : float
        Value of the two-sided t test's null hypothesis.
    influence : array (n_items, n_respondents), optional
        Linearised contribution of each cell to the sum of ``values`` minus its mean, when a cell's
        score also depends on *other* respondents (a leave-one-out group baseline: each respondent is
        also a predictor of the others, see :func:`robustalign.persona.loo_influence`). Finite on every
        cell that contributes, including respondents whose own cells are not in ``values``. The
        variance is then computed from these scores instead of ``values - estimate``; the estimate is
        still the mean of ``values``.

    Returns
    -------
    TwoWayMean
    """
    if clusters not in CLUSTERS:
        raise ValueError(f"`clusters` must be one of {CLUSTERS}; got {clusters!r}.")
    if not 0 < confidence_level < 1:
        raise ValueError(f"`confidence_level` must lie in (0, 1); got {confidence_level!r}.")
    y = np.asarray(values, dtype=float)
    if y.ndim != 2:
        raise ValueError(f"`values` must be a 2-D (items x respondents) array; got shape {y.shape}.")
    ok = ~np.isnan(y)
    n = int(ok.sum())
    if n < 2:
        raise ValueError(f"a two-way interval needs at least 2 scored cells; got {n}.")
    est = float(y[ok].mean())
    if influence is None:
        e = np.where(ok, y - est, 0.0) / n
        e = e[ok.any(axis=1)][:, ok.any(axis=0)]
    else:
        f = np.asarray(influence, dtype=float)
        if f.shape != y.shape:
            raise ValueError(f"`influence` must have the shape of `values` {y.shape}; got {f.shape}.")
        fin = np.isfinite(f)
        e = (np.where(fin, f, 0.0) / n)[fin.any(axis=1)][:, fin.any(axis=0)]
        ok = fin[fin.any(axis=1)][:, fin.any(axis=0)]
    v_q, n_q = _crv1(e, 1)
    v_r, n_r = _crv1(e, 0)
    n_c = int(ok.sum())
    v_c = float(n_c / (n_c - 1) * (e**2).sum())
    fallback = False
    if clusters == "items":
        var, dof = v_q, n_q - 1
    elif clusters == "respondents":
        var, dof = v_r, n_r - 1
    else:
        var, dof = v_q + v_r - v_c, min(n_q, n_r) - 1
        if var <= 0:
            var, fallback = max(v_q, v_r), True
    se = float(np.sqrt(max(var, 0.0)))
    tq = float(stats.t.ppf(0.5 + confidence_level / 2, dof))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (est - null) / se if se > 0 else (0.0 if est == null else np.inf)
    p = float(2 * stats.t.sf(abs(t), dof))
    return TwoWayMean(est, se, est - tq * se, est + tq * se, p, int(dof), n_q, n_r, n,
                      v_q, v_r, v_c, clusters, fallback)
