"""Monte Carlo error of the stability verdicts.

A stability verdict compares interval endpoints (the TOST interval of the average effect, the interval of
the item-level variance, the modal flip rate's interval) with a margin, or an adjusted p-value with alpha.
Each endpoint comes from ``n_resamples`` bootstrap replicates and each p-value from ``n_permutations``
permutations, so it moves with the seed. :func:`add_mc_flags` rebuilds the verdict from those comparisons
(the rules of :func:`robustalign.claims.stability._verdict`) and flags it when a comparison within
:data:`~robustalign.resampling.mcerror.MC_K` Monte Carlo SEs of its threshold would change it
(:func:`~robustalign.resampling.mcerror.verdict_mc_check`), naming the resamples that would settle it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustalign.resampling.mcerror import adjusted_p_mcse, verdict_mc_check

__all__ = ["add_mc_flags"]


def _ends(boot, level, n_items=None) -> tuple[float, float, float, float, int]:
    """Interval endpoints as the verdict reads them, their MC SEs (0 where a Wilson interval replaced a
    degenerate bootstrap one: it does not depend on the seed) and the resamples behind them."""
    from robustalign.claims.stability import ci_frame

    if boot is None:
        return np.nan, np.nan, np.nan, np.nan, 0
    f = ci_frame(boot, level, n_items).iloc[0]
    wilson = str(f["method"]).startswith("wilson")
    lo_se, hi_se = (0.0, 0.0) if wilson else (float(f["conf_low_mcse"]), float(f["conf_high_mcse"]))
    return float(f["conf_low"]), float(f["conf_high"]), lo_se, hi_se, int(boot.n_resamples)


def _combine(avg: str, item: str | None) -> str:
    if avg == "not supported" or item == "not supported":
        return "not supported"
    if avg == "supported" and item == "inconclusive":
        return "inconclusive"
    return avg


def _three(c: dict, ok: str, bad: str) -> str:
    return "supported" if c[ok] else "not supported" if c[bad] else "inconclusive"


def _margin_checks(e, il, level) -> tuple[dict, dict]:
    tost = 1 - 2 * (1 - level)
    delta = e["margin"]
    lo, hi, lo_se, hi_se, B = _ends(e["boot"], tost)
    checks = {}
    if len(e["levels"]) == 2:
        checks["lo_above_minus"] = (lo > -delta, lo, -delta, lo_se, B, "the average effect's lower TOST end")
        checks["hi_below"] = (hi < delta, hi, delta, hi_se, B, "the average effect's upper TOST end")
        checks["lo_above"] = (lo > delta, lo, delta, lo_se, B, "the average effect's lower TOST end")
        checks["hi_below_minus"] = (hi < -delta, hi, -delta, hi_se, B, "the average effect's upper TOST end")
    else:
        checks["lo_above_minus"] = (True, np.nan, np.nan, np.nan, B, "")
        checks["hi_below"] = (hi < delta, hi, delta, hi_se, B, "the average effect's upper TOST end")
        checks["lo_above"] = (lo > delta, lo, delta, lo_se, B, "the average effect's lower TOST end")
        checks["hi_below_minus"] = (False, np.nan, np.nan, np.nan, B, "")
    fixed = {"item": il is not None}
    if il is not None:  # the item-level variance against delta^2 (its interval is on the variance scale)
        ilo, ihi, ilo_se, ihi_se, iB = _ends(il["boot"], tost)
        checks["item_lo_above"] = (ilo > delta**2, ilo, delta**2, ilo_se, iB, "the item-level variance's lower end")
        checks["item_hi_below"] = (ihi < delta**2, ihi, delta**2, ihi_se, iB, "the item-level variance's upper end")
    return checks, fixed


def _margin_decide(c: dict) -> str:
    inside = c["lo_above_minus"] and c["hi_below"]
    beyond = c["lo_above"] or c["hi_below_minus"]
    avg = "supported" if inside else "not supported" if beyond else "inconclusive"
    item = _three(c, "item_hi_below", "item_lo_above") if c["item"] else None
    return _combine(avg, item)


def _flip_checks(fl, nf, flip_margin, level) -> dict:
    tost = 1 - 2 * (1 - level)
    fr = fl["flip"]
    lo, hi, lo_se, hi_se, B = _ends(fr["mean"], tost, fr["n_items_mean"])
    bound = (nf["floor"] if nf is not None and nf["informative"] else 0.0) + flip_margin
    return {"hi_below": (hi < bound, hi, bound, hi_se, B, "the modal flip rate's upper end"),
            "lo_above": (lo > bound, lo, bound, lo_se, B, "the modal flip rate's lower end")}


def _detect_checks(e, alpha, n_permutations) -> dict:
    p, pa = e.get("p_value", np.nan), e.get("p_adjusted", np.nan)
    se = float(adjusted_p_mcse(pa, p, n_permutations)) if np.isfinite(pa) else np.nan
    return {"detected": (bool(np.isfinite(pa) and pa < alpha), pa, alpha, se, n_permutations,
                         "the average effect's adjusted p")}


def _one(e, fl, nf, il, flip_margin, level, n_permutations) -> tuple[bool, str]:
    delta, est = e["margin"], e["estimate"]
    if np.isfinite(delta) and np.isfinite(est):
        checks, fixed = _margin_checks(e, il, level)
        return verdict_mc_check(checks, _margin_decide, fixed)
    if flip_margin is not None and fl.get("flip") is not None:
        return verdict_mc_check(_flip_checks(fl, nf, flip_margin, level), lambda c: _three(c, "hi_below", "lo_above"))
    if fl.get("flip") is None and not np.isfinite(est):
        return False, ""
    # no margin: "not supported" when a change is detected; the item-level and noise-floor tests also count,
    # so only a flip of the average effect's test that would change the verdict on its own is flagged
    others = any(np.isfinite(p) and p < 1 - level for p in (
        np.nan if il is None else il["p_value"], nf["p_value"] if nf is not None and nf["informative"] else np.nan))
    return verdict_mc_check(_detect_checks(e, 1 - level, n_permutations),
                            lambda c: "not supported" if c["detected"] or c["others"] else "inconclusive",
                            {"others": bool(others)})


def add_mc_flags(verdicts: pd.DataFrame, effects, flips, floors, item_lv, flip_margin, level: float,
                 n_permutations: int) -> pd.DataFrame:
    """``verdicts`` with an ``mc_error`` column (True = another seed could change the verdict) and, for the
    flagged rows, a sentence in ``reason`` naming the comparison and the resamples that would settle it."""
    out = verdicts.copy()
    flags, texts = [], []
    for e, fl, nf, il in zip(effects, flips, floors, item_lv):
        f, t = _one(e, fl, nf, il, flip_margin, level, n_permutations)
        flags.append(bool(f))
        texts.append(t)
    out["mc_error"] = flags
    out["reason"] = out["reason"].astype(str) + pd.Series(texts, index=out.index)
    return out
