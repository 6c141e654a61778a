"""Is the closest model identified? The verdict on the ranking of models within each human group.

The alignment of every model with every group is estimated by :func:`robustalign.scoring.alignment`,
with a cluster-bootstrap interval over items and, from the same resamples, a rank interval for each
model (:meth:`~robustalign.scoring.AlignmentResult.ranks`). The closest model of a group is
*identified* ("supported") when the leader's rank interval is [1, 1] and no other model's rank interval
includes 1; otherwise the verdict is "inconclusive", with the leader's margin over the runner-up, its
interval, and the number of items that would separate the two at 80% power
(:func:`robustalign.power.n_for_mde`). A verdict whose deciding P(rank 1) lies within 2 Monte Carlo
SEs of its rank-interval cut is marked ``mc_error``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robustalign.power import n_for_mde
from robustalign.resampling.mcerror import n_needed_mcse, p_value_mcse, within_mc_error

__all__ = ["closest_model_verdicts"]


def int_or_na(x: float) -> str:
    """A rank as an integer, or "n/a" when it is undefined (e.g. Spearman against a one-group reference).

    Internal: shared with the report's rank table."""
    return str(int(x)) if np.isfinite(x) else "n/a"


def _interval(est: Any, lo: Any, hi: Any, d: int = 3) -> str:
    """``est [lo, hi]`` with ``d`` decimals for a verdict's reason; never ``nan``."""
    def ok(x: Any) -> bool:
        try:
            return x is not None and math.isfinite(float(x))
        except (TypeError, ValueError):
            return False

    if not ok(est):
        return "no estimate"
    if ok(lo) and ok(hi):
        return f"{float(est):.{d}f} [{float(lo):.{d}f}, {float(hi):.{d}f}]"
    return f"{float(est):.{d}f} (no interval: the resamples gave no spread)"


def closest_model_verdicts(result: Any, ranks: pd.DataFrame, estimates: pd.DataFrame, *, metric: str,
                           n_items: int, confidence_level: float) -> pd.DataFrame:
    """One verdict per human group: is the model closest to the group identified?

    Parameters
    ----------
    result : AlignmentResult
        The alignment of every model with every group for ``metric`` (its resamples give the margins).
    ranks : DataFrame
        ``result.ranks(within="group")``: ``group, model, rank, rank_low, rank_high, p_top``.
    estimates : DataFrame
        ``result.to_frame()``: ``group, model, estimate, conf_low, conf_high, conf_level``.
    metric : str
        The metric's name, for the reasons.
    n_items : int
        Items in the audit (scales the margin's SE to one item for :func:`robustalign.power.n_for_mde`).
    confidence_level : float
        Level of the rank intervals (their cuts are a/2 and 1 - a/2 on P(rank 1)).

    Returns
    -------
    DataFrame
        ``group, verdict, reason, n_needed, mc_error, estimate, conf_low, conf_high, conf_level`` (the
        leader's alignment); groups with one model have no verdict and no row.
    """
    rows = []
    for grp, r in ranks.groupby("group", sort=False):
        r = r.sort_values("rank")
        lead = r.iloc[0]
        tied = r[r["rank_low"] <= 1]
        e = estimates[(estimates["group"] == grp) & (estimates["model"] == lead["model"])].iloc[0]
        head = (f"{metric} alignment with {grp}: {lead['model']} ranks first, "
                f"{_interval(e['estimate'], e['conf_low'], e['conf_high'])}, "
                f"rank interval {int_or_na(lead['rank_low'])}-{int_or_na(lead['rank_high'])}, "
                f"P(rank 1) = {lead['p_top']:.2f}")
        n_needed = np.nan
        if len(r) < 2:
            continue
        if len(tied) == 1 and lead["rank_high"] == 1:
            verdict = "supported"
            reason = f"{head}; no other model's rank interval includes 1."
        else:
            verdict = "inconclusive"
            n_needed, margin = _lead_margin(result, grp, lead, r.iloc[1], n_items)
            reason = f"{head}; but {len(tied)} models have rank intervals that include 1 " \
                     f"({', '.join(tied['model'].astype(str))}); {margin}"
        mc = _near_rank_cut(r, lead, verdict, confidence_level, result.n_resamples)
        if mc:
            reason += (" Verdict within Monte Carlo error: a P(rank 1) is within 2 Monte Carlo SEs of its "
                       "rank-interval cut, so another seed could change it; more resamples would settle it.")
        rows.append({"group": grp, "verdict": verdict, "reason": reason, "n_needed": n_needed, "mc_error": mc,
                     "estimate": e["estimate"], "conf_low": e["conf_low"], "conf_high": e["conf_high"],
                     "conf_level": e["conf_level"]})
    return pd.DataFrame(rows)


def _lead_margin(result: Any, grp: Any, lead: pd.Series, second: pd.Series, n_items: int) -> tuple[float, str]:
    """The leader's margin over the runner-up in words, and the items needed to separate the two."""
    sub = result.subset(group=grp, model=[lead["model"], second["model"]])
    d = sub.pairwise("model").to_frame().iloc[0]
    sign = 1 if d["model_a"] == lead["model"] else -1
    dd, dlo, dhi = sign * d["estimate"], *(sorted([sign * d["conf_low"], sign * d["conf_high"]]))
    n_needed = np.nan
    if abs(dd) > 0 and d["std_error"] > 0:
        n_needed = n_for_mde(abs(dd), sd=d["std_error"] * np.sqrt(n_items))
    n_se = n_needed_mcse(n_needed, result.n_resamples)
    words = (f"the lead over {second['model']} is {_interval(dd, dlo, dhi)}"
             + (f"; about {int(n_needed)} (Monte Carlo SE {n_se:.0f}) items would be needed to separate "
                "the two at 80% power." if np.isfinite(n_needed) else "."))
    return n_needed, words


def _near_rank_cut(r: pd.DataFrame, lead: pd.Series, verdict: str, level: float, n_resamples: int) -> bool:
    """Is the verdict within Monte Carlo error? The leader's P(rank 1) is cut at 1 - a/2, the others' at
    a/2; "supported" flips if any is near its cut, "inconclusive" only if every blocking one is."""
    p_top = r["p_top"].to_numpy(float)
    cut = np.r_[1 - (1 - level) / 2, np.full(len(r) - 1, (1 - level) / 2)]
    near = within_mc_error(p_top, cut, p_value_mcse(p_top, n_resamples))
    blocking = np.r_[lead["rank_high"] > 1, r["rank_low"].to_numpy()[1:] <= 1]
    return bool(near.any()) if verdict == "supported" else bool(near[blocking].all())
