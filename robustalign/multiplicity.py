"""Multiplicity: p-values adjusted across a declared family (METHODS 3.8).

Every result that reports several tests carries the raw p-value, the adjusted p-value, the method and
the family it was adjusted over. Benjamini-Hochberg (FDR) is the default; Holm (FWER) suits small
confirmatory families. When the tests share one permutation null (the same permuted labels for every
test), :func:`robustalign.resampling.maxt_p_values` gives the Westfall-Young single-step max-T
adjustment, which keeps the dependence between tests instead of assuming it away. p-values are never combined by a median.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["METHODS", "adjust", "adjust_frame"]

#: Methods accepted by :func:`adjust` (names as in statsmodels' ``multipletests``).
METHODS = ("fdr_bh", "holm", "bonferroni", "fdr_by", "none")


def adjust(p_values: Sequence[float] | np.ndarray, method: str = "fdr_bh") -> np.ndarray:
    """Adjusted p-values (NaN stays NaN and is not counted in the family)."""
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
    p = np.asarray(p_values, dtype=float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"`p_values` must lie in [0, 1]; got values {p[(p < 0) | (p > 1)][:5].tolist()}.")
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    out[ok] = p[ok] if method == "none" else _adjusted(p[ok], method)
    return out


def _adjusted(p: np.ndarray, method: str) -> np.ndarray:
    """Bonferroni, Holm (step-down), Benjamini-Hochberg and -Yekutieli (step-up) p-values; no NaN in ``p``.

    The arithmetic of statsmodels' ``multipletests``, without its cost per call (its Holm branch runs
    the garbage collector, tens of milliseconds each time).
    """
    m = p.size
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p)
    ps = p[order]
    rank = np.arange(1, m + 1)
    if method == "holm":
        adj = np.maximum.accumulate(ps * (m - rank + 1))
    else:  # fdr_bh, fdr_by: p_(i) m / i (times sum_j 1/j for BY), then a cumulative minimum from the top
        factor = rank / m if method == "fdr_bh" else rank / m / np.sum(1.0 / rank)
        adj = np.minimum.accumulate((ps / factor)[::-1])[::-1]
    out = np.empty_like(adj)
    out[order] = np.minimum(adj, 1.0)
    return out


def adjust_frame(
    frame: pd.DataFrame, *, family: str, method: str = "fdr_bh", p_col: str = "p_value"
) -> pd.DataFrame:
    """Add ``p_adjusted``, ``adjust_method`` and ``family`` columns to a table of tests.

    ``family`` describes, in words, the set of tests adjusted together (e.g. "models x format
    factors"); it is stored in every row so a reader always knows what was corrected for.
    """
    if p_col not in frame:
        raise ValueError(f"`frame` has no column {p_col!r}; its columns are {list(frame.columns)}.")
    out = frame.copy()
    out["p_adjusted"] = adjust(out[p_col].to_numpy(float), method)
    out["adjust_method"] = method
    out["family"] = family
    return out
