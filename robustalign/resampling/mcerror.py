r"""Monte Carlo error of resampling results, and verdicts that do not move with the seed.

A p-value from ``B`` random permutations and an interval endpoint from ``B`` bootstrap replicates are
estimates of what infinitely many resamples would give; with another seed they move. Every such
number in a result carries its Monte Carlo standard error in a column named after it with the suffix
``_mcse``: ``p_value_mcse``, ``p_adjusted_mcse``, ``conf_low_mcse``, ``conf_high_mcse``.

p-value
    :math:`\sqrt{p(1-p)/B}`: the share of ``B`` permuted statistics at least as extreme as the observed
    one is a binomial proportion (the ``(1 + b)/(1 + B)`` form shifts it by less than ``1/B``).
adjusted p-value
    An adjusted p-value is a multiple ``c = p_adj / p`` of a raw one (Holm, BH, Bonferroni), so its MC SE is
    ``c`` times the raw one's.
interval endpoint
    :func:`~robustalign.resampling.intervals.percentile_mcse` and
    :func:`~robustalign.resampling.intervals.bca_mcse` (order-statistic estimate).
bootstrap standard error and "items needed"
    The SD of ``B`` near-normal replicates has relative SE :math:`1/\sqrt{2(B-1)}`; a sample size
    computed from it (``n_for_mde``-style, proportional to the SD squared) has twice that.

The rule
--------
A verdict compares a number with a threshold (an adjusted p-value with alpha, an interval endpoint with
0 or a margin). When the number lies within ``k = 2`` Monte Carlo SEs of the threshold, the comparison
could go the other way with another seed: :func:`mc_decision` says ``"within Monte Carlo error"``, and
:func:`resamples_to_resolve` says how many resamples would make the gap ``k`` SEs wide.
:func:`resolve_by_resampling` re-runs a computation with doubled resamples until the comparison is
outside Monte Carlo error or a stated limit is reached.

Public names
------------
p_value_mcse, adjusted_p_mcse, std_error_mcse, n_needed_mcse, within_mc_error, mc_decision,
resamples_to_resolve, resolve_by_resampling, verdict_mc_check
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MC_K",
    "WITHIN_MC_ERROR",
    "adjusted_p_mcse",
    "mc_decision",
    "n_needed_mcse",
    "p_value_mcse",
    "resamples_to_resolve",
    "resolve_by_resampling",
    "std_error_mcse",
    "verdict_mc_check",
    "within_mc_error",
]

#: A comparison closer to its threshold than this many Monte Carlo SEs is "within Monte Carlo error".
MC_K = 2.0
#: The word used in verdict tables.
WITHIN_MC_ERROR = "within Monte Carlo error"


def p_value_mcse(p: ArrayLike, n_resamples: ArrayLike) -> np.ndarray:
    """Monte Carlo SE :math:`\\sqrt{p(1-p)/B}` of permutation p-values from ``n_resamples`` draws (NaN stays NaN).

    An exact p-value (all permutations enumerated) has no Monte Carlo error: pass ``n_resamples=np.inf``.
    """
    p = np.asarray(p, dtype=float)
    B = np.asarray(n_resamples, dtype=float)
    if np.any(B <= 0):
        raise ValueError(f"`n_resamples` must be positive; got {n_resamples!r}.")
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.clip(p, 0.0, 1.0) * (1.0 - np.clip(p, 0.0, 1.0)) / B)


def adjusted_p_mcse(p_adjusted: ArrayLike, p_value: ArrayLike, n_resamples: ArrayLike) -> np.ndarray:
    """Monte Carlo SE of multiplicity-adjusted p-values: ``(p_adj / p) * sqrt(p (1 - p) / B)``.

    Adjusted p-values capped at 1 have SE 0 (the cap does not move with the seed unless the raw value
    is near ``1/c``; the raw p-value's SE covers that case).
    """
    pa = np.asarray(p_adjusted, dtype=float)
    p = np.asarray(p_value, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(p > 0, pa / p, 1.0)
        out = c * p_value_mcse(p, n_resamples)
    return np.where(pa >= 1.0, 0.0, out)


def std_error_mcse(std_error: ArrayLike, n_resamples: ArrayLike) -> np.ndarray:
    """Monte Carlo SE of a bootstrap standard error from ``n_resamples`` replicates: ``se / sqrt(2 (B - 1))``
    (the SE of a sample SD of near-normal values)."""
    B = np.asarray(n_resamples, dtype=float)
    if np.any(B < 2):
        raise ValueError(f"`n_resamples` must be at least 2; got {n_resamples!r}.")
    return np.asarray(std_error, dtype=float) / np.sqrt(2.0 * (B - 1.0))


def n_needed_mcse(n_needed: ArrayLike, n_resamples: ArrayLike) -> np.ndarray:
    """Monte Carlo SE of a sample size proportional to a squared bootstrap SE (``n_for_mde`` with
    ``sd = std_error * sqrt(n)``): ``n * sqrt(2 / (B - 1))`` (delta method: twice the SD's relative SE)."""
    B = np.asarray(n_resamples, dtype=float)
    if np.any(B < 2):
        raise ValueError(f"`n_resamples` must be at least 2; got {n_resamples!r}.")
    return np.asarray(n_needed, dtype=float) * np.sqrt(2.0 / (B - 1.0))


def within_mc_error(value: ArrayLike, threshold: ArrayLike, mcse: ArrayLike, *, k: float = MC_K) -> np.ndarray:
    """True where ``|value - threshold| <= k * mcse`` (the comparison could flip with another seed).

    NaN values or SEs give False (there is no comparison to flip).
    """
    v, t, s = (np.asarray(a, dtype=float) for a in (value, threshold, mcse))
    with np.errstate(invalid="ignore"):
        return np.abs(v - t) <= k * s


def mc_decision(value: ArrayLike, threshold: ArrayLike, mcse: ArrayLike, *, k: float = MC_K) -> np.ndarray:
    """``"below"``, ``"above"`` or ``"within Monte Carlo error"`` for each value against its threshold.

    A value equal to the threshold with zero SE is ``"above"`` (``value >= threshold``); NaN gives ``"nan"``.
    """
    v, t = np.asarray(value, dtype=float), np.asarray(threshold, dtype=float)
    close = within_mc_error(v, t, mcse, k=k)
    out = np.where(v < t, "below", "above").astype(object)
    out = np.where(close, WITHIN_MC_ERROR, out)
    return np.where(np.isnan(v) | np.isnan(t), "nan", out)


def resamples_to_resolve(value: ArrayLike, threshold: ArrayLike, mcse: ArrayLike, n_resamples: ArrayLike, *,
                         k: float = MC_K) -> np.ndarray:
    """Resamples that would put ``value`` ``k`` SEs from ``threshold`` (SE shrinks as ``1/sqrt(B)``).

    ``n_resamples`` where the comparison is already resolved; ``inf`` where the value equals the threshold.
    """
    v, t, s = (np.asarray(a, dtype=float) for a in (value, threshold, mcse))
    gap = np.abs(v - t)
    with np.errstate(invalid="ignore", divide="ignore"):
        need = np.ceil(np.asarray(n_resamples, float) * (k * s / gap) ** 2)
    need = np.where(gap == 0, np.inf, need)
    return np.maximum(need, np.asarray(n_resamples, float))


def resolve_by_resampling(
    run: Callable[[int], tuple[float, float]], threshold: float, *, n_resamples: int, max_resamples: int,
    k: float = MC_K,
) -> dict:
    """Re-run ``run(B)`` with doubled ``B`` until its value is more than ``k`` MC SEs from ``threshold``.

    Parameters
    ----------
    run : callable
        ``run(B) -> (value, mcse)``: the number a verdict compares (an adjusted p-value, an endpoint) and its
        Monte Carlo SE, from ``B`` resamples (the same seed at every ``B``).
    threshold : float
    n_resamples, max_resamples : int
        First and largest ``B`` (the stated limit).

    Returns
    -------
    dict
        ``value, mcse, n_resamples, decision`` (``"below"``, ``"above"`` or ``"within Monte Carlo error"``
        when the limit was reached first) and ``history`` (every ``(B, value, mcse)`` tried).
    """
    B, limit = int(n_resamples), int(max_resamples)
    if B < 1 or limit < B:
        raise ValueError(f"need 1 <= n_resamples <= max_resamples; got {n_resamples} and {max_resamples}.")
    history = []
    while True:
        value, se = (float(x) for x in run(B))
        history.append((B, value, se))
        decision = str(mc_decision(value, threshold, se, k=k))
        if decision != WITHIN_MC_ERROR or B >= limit:
            return {"value": value, "mcse": se, "n_resamples": B, "decision": decision, "history": history}
        B = min(2 * B, limit)


def verdict_mc_check(checks: Mapping, decide: Callable[[dict], str], fixed: Mapping | None = None, *,
                     k: float = MC_K) -> tuple[bool, str]:
    """Is a verdict within Monte Carlo error? A verdict is a function of yes/no comparisons; it is unstable
    to the seed when a comparison within ``k`` MC SEs of its threshold would, flipped, change it.

    Parameters
    ----------
    checks : mapping
        Comparison name -> ``(holds, value, threshold, mcse, n_resamples, text)``: whether it holds now, the
        number compared (an adjusted p-value, an interval endpoint), its threshold, its Monte Carlo SE, the
        resamples behind it and a short description for the message.
    decide : callable
        ``decide(flags) -> verdict`` from a dict name -> bool (the comparisons and ``fixed``).
    fixed : mapping, optional
        Further flags ``decide`` reads that do not move with the seed.

    Returns
    -------
    (bool, str)
        The flag, and a sentence for the verdict's reason naming each unstable comparison and the resamples
        that would put it ``k`` SEs from its threshold (:func:`resamples_to_resolve`); ``""`` when stable.
    """
    flags = {**(fixed or {}), **{name: bool(v[0]) for name, v in checks.items()}}
    verdict = decide(flags)
    notes = []
    for name, (_, value, thr, se, n, text) in checks.items():
        if not bool(within_mc_error(value, thr, se, k=k)) or decide({**flags, name: not flags[name]}) == verdict:
            continue
        need = float(resamples_to_resolve(value, thr, se, n, k=k))
        more = (f"about {int(need):,} resamples (now {int(n):,}) would settle it" if np.isfinite(need)
                else "more resamples cannot settle it")
        notes.append(f"{text} {float(value):.4f} is within {k:g} Monte Carlo SEs ({float(se):.4f}) of "
                     f"{float(thr):.4f}; {more}")
    if not notes:
        return False, ""
    return True, f" Verdict {WITHIN_MC_ERROR} (it could change with another seed): " + "; ".join(notes) + "."
