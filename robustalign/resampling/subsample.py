"""Subsets of just over half the items, drawn without replacement (a delete-d jackknife).

The delete-d jackknife (Shao & Wu 1989) recomputes a statistic on subsets of ``m = n - d`` of the ``n``
items, drawn without replacement, and estimates its variance by ``(m / d)`` times the variance of those
subset statistics. It is consistent for statistics that are not smooth in the items (quantiles, and here
the adjusted Rand index of a re-clustering), where the delete-one jackknife is not, provided ``d`` grows
with ``n``. Here ``d = max(1, floor((n - 1) / 2))``: a strict majority of the items is kept (for the ARI
of docs/claims.md's E4 simulations, exact halves gave too short an interval at n = 10, this choice
covered 0.945-0.965 for n = 5 to 20; with n <= 4 it is the delete-one jackknife, conservative). The draws
come from the keyed streams of :mod:`robustalign.resampling.nulls`, so a unit's subsets do not depend
on which other units are present.

Public names
------------
item_half_samples
    ``statistic(keep)`` for random subsets ``keep`` (``(rows, n - d)`` item indices, each row distinct
    items).
half_sample_factor
    The variance factor ``m / d``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from robustalign._rng import RngLike
from robustalign.resampling.nulls import run_blocks

__all__ = ["half_sample_factor", "item_half_samples"]


def _deleted(n: int) -> int:
    if n < 2:
        raise ValueError(f"half-samples need at least 2 items; got {n}.")
    return max(1, (n - 1) // 2)


def half_sample_factor(n_items: int) -> float:
    """``m / d`` for ``d = max(1, (n - 1) // 2)`` deleted and ``m = n - d`` kept items; the variance of the
    ``m``-item statistic over subsets times it estimates the ``n``-item statistic's variance (for a mean,
    exactly: ``(s^2 / m)(d / n) * m / d = s^2 / n``)."""
    n = int(n_items)
    d = _deleted(n)
    return (n - d) / d


def _kept(perm: np.ndarray, *, statistic: Callable[[np.ndarray], np.ndarray], m: int) -> np.ndarray:
    return statistic(np.sort(perm[:, :m], axis=1))


def item_half_samples(statistic: Callable[[np.ndarray], np.ndarray], n_items: int, *, n_resamples: int,
                      rng: RngLike, key: tuple) -> np.ndarray:
    """``statistic(keep)`` for ``n_resamples`` uniform random subsets of ``n - d`` of the ``n`` items.

    ``keep`` is ``(rows, m)`` sorted item indices without repeats. ``key`` names the purpose and the
    unit, e.g. ``("clustering.halfsample", group, dimension)``. Returns the stacked results,
    ``(n_resamples, ...)``; multiply their variance by :func:`half_sample_factor` for the ``n``-item
    statistic's.
    """
    n = int(n_items)
    return run_blocks(partial(_kept, statistic=statistic, m=n - _deleted(n)), "labels", (n,), n_resamples, rng, key, None)
