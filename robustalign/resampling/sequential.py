r"""Sequential Monte Carlo p-values: stop drawing a permutation null once its p-value is clearly decided.

A Monte Carlo permutation p-value estimates :math:`p = P(T^* \ge t)`, the p-value of the exact permutation
test (the limit of infinitely many draws). Most tests sit far from the level they are judged at, and
10,000 draws spent to pin :math:`p = 0.0001` or :math:`0.6` to three digits change no verdict. The idea of
stopping early goes back to Besag & Clifford (1991, *Biometrika* 78, 301-304); Gandy (2009, *JASA* 104,
1504-1511) bounds the chance that a sequential decision differs from the exact test's.

The rule here (:class:`SequentialRule`): draws come in chunks; at the first chunk boundary at or past each
multiple of ``min_draws`` below the budget ``n_max`` (a *look*; at most ``ceil(n_max / min_draws) - 1``
of them), a test with ``b`` exceedances in ``n`` draws gets the exact (Clopper-Pearson) interval for
:math:`p` at confidence ``1 - risk / n_looks``. Drawing stops for that test when the interval lies wholly
above or wholly below every threshold its verdict uses (and the reported ``(b + 1) / (n + 1)`` is on the
same side). Tests never decided draw the whole budget and are the fixed-count test.

Guarantee (union bound over the looks): for each test, the probability that it stops on the wrong side
of a threshold, compared with the exact permutation p-value, is at most ``risk``. Under a null the
rejection rate at a level :math:`\alpha` is therefore at most about :math:`\alpha` + ``risk``
(checked by simulation in the tests).

Public names
------------
clopper_pearson
    The exact two-sided interval of a binomial proportion.
SequentialRule
    When a permutation p-value is decided; the looks and their risk.
SEQUENTIAL_RISK, MIN_DRAWS
    The defaults (0.001 and 1,000).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["MIN_DRAWS", "SEQUENTIAL_RISK", "SequentialRule", "clopper_pearson"]

#: Default probability, per test, that an early stop lands on the wrong side of a threshold.
SEQUENTIAL_RISK = 0.001
#: Default number of draws before the first look (and between looks).
MIN_DRAWS = 1000


def clopper_pearson(exceed: np.ndarray | int, n: np.ndarray | int, risk: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided interval for a binomial proportion from ``exceed`` successes in ``n`` trials, at
    confidence ``1 - risk`` (``risk / 2`` in each tail): beta quantiles, ``[0, ...]`` when ``exceed = 0`` and
    ``[..., 1]`` when ``exceed = n`` (as ``scipy.stats.binomtest(...).proportion_ci(method="exact")``)."""
    b = np.asarray(exceed, dtype=float)
    m = np.asarray(n, dtype=float)
    if np.any(m < 1) or np.any(b < 0) or np.any(b > m):
        raise ValueError(f"need 0 <= exceed <= n and n >= 1; got exceed={exceed!r}, n={n!r}.")
    with np.errstate(invalid="ignore"):
        lo = np.where(b > 0, stats.beta.ppf(risk / 2, np.maximum(b, 1), m - b + 1), 0.0)
        hi = np.where(b < m, stats.beta.ppf(1 - risk / 2, b + 1, np.maximum(m - b, 1)), 1.0)
    return lo, hi


class SequentialRule:
    """When to stop drawing a permutation null (see the module docstring).

    ``n_max``: the budget (draws when never decided); ``thresholds``: every level the test's p-value is
    compared with (alpha; and alpha / m for a test adjusted over m tests whose threshold depends on the
    others: stopping below alpha / m and above alpha is then safe whatever the others do); ``risk``: the
    chance, per test, of stopping on the wrong side of a threshold; ``min_draws``: draws before the first
    look and between looks.
    """

    def __init__(self, n_max: int, thresholds: Sequence[float], risk: float = SEQUENTIAL_RISK,
                 min_draws: int = MIN_DRAWS) -> None:
        if isinstance(n_max, bool) or int(n_max) != n_max or n_max < 1:
            raise ValueError(f"`n_max` must be a positive integer; got {n_max!r}.")
        if isinstance(risk, bool) or not 0 < float(risk) < 0.5:
            raise ValueError(f"the sequential risk must be a number in (0, 0.5), such as 0.001; got {risk!r}.")
        if isinstance(min_draws, bool) or int(min_draws) != min_draws or min_draws < 10:
            raise ValueError(f"`min_draws` must be an integer of at least 10; got {min_draws!r}.")
        thr = tuple(float(t) for t in thresholds)
        if not thr or not all(0 < t < 1 for t in thr):
            raise ValueError(f"`thresholds` must be levels in (0, 1); got {thresholds!r}.")
        self.n_max, self.thresholds = int(n_max), thr
        self.risk, self.min_draws = float(risk), int(min_draws)
        #: the most looks a test can get: one per multiple of ``min_draws`` below the budget
        self.n_looks = max(0, -(-self.n_max // self.min_draws) - 1)
        #: the risk spent at each look (union bound)
        self.look_risk = self.risk / max(self.n_looks, 1)

    def is_look(self, before: int, done: int) -> bool:
        """Whether a chunk that took the draws from ``before`` to ``done`` ends at a look: it reached a
        multiple of ``min_draws`` not reached before, below the budget."""
        return done < self.n_max and done // self.min_draws > before // self.min_draws

    def decided(self, exceed: np.ndarray | int, n: int) -> np.ndarray:
        """Whether each test with ``exceed`` draws at least as extreme as observed, of ``n``, is decided:
        its interval (at confidence ``1 - look_risk``) and its reported ``(b + 1) / (n + 1)`` are on the
        same side of every threshold."""
        b = np.asarray(exceed, dtype=float)
        lo, hi = clopper_pearson(b, n, self.look_risk)
        p = (b + 1) / (n + 1)
        out = np.ones(b.shape, bool)
        for t in self.thresholds:
            out &= ((hi < t) & (p < t)) | ((lo > t) & (p >= t))
        return out

    def to_dict(self) -> dict:
        """The rule as recorded in provenance."""
        return {"n_max": self.n_max, "thresholds": list(self.thresholds), "risk": self.risk,
                "min_draws": self.min_draws, "n_looks": self.n_looks, "look_risk": self.look_risk}
