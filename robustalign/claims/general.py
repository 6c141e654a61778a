"""The general claim's per-item quantities: scores of named design cells, and what a claim makes of them.

A *cell* names where a score comes from: ``{"model": "M", "language": "hi", "group": "IN"}`` is the
similarity of model M's answers prompted in Hindi to the human group IN, item by item; any key other than
``model``, ``group`` and ``human`` is a factor of the responses (a column) fixed at that level. A cell
``{"human": "P", "group": "T"}`` scores the human group P, used as a "model", against T. The group ``"*"``
(in the second cell of a contrast) stands for every group other than the first cell's, one column each.
With the metric ``"position"`` a cell's score is the model's mean answer position on [0, 1] (no reference).

Each kind reduces the cells' items x cells scores to per-item quantities ``d`` (items x J), which
:func:`robustalign.claims.multiverse.audit_claim` aggregates over items and judges:

* contrast: ``d = s_a - s_b`` (J = 1, or one column per other group for ``"*"``);
* trend: the per-item least-squares slope of the scores on the cells' positions ``x`` (times -1 for a
  claimed decrease); the mean over items of per-item slopes is the slope of the item-mean scores when
  every cell has every item (least squares is linear in the scores);
* equivalent: the differences of every pair of cells (J = K(K-1)/2), judged against the margin;
* correlation: the cells' scores themselves (J = K units), correlated across units after aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from robustalign.schema import Reference, Responses

__all__ = ["CELL_KEYS", "cell_factors", "cell_identity", "cell_scores", "describe_cell", "pair_differences",
           "per_item_slopes"]

#: Cell keys that are not factors of the responses.
CELL_KEYS = ("model", "group", "human")
ALL_OTHERS = "*"


def cell_factors(cell: dict) -> dict:
    """The factor levels a cell fixes (every key but model, group, human)."""
    return {k: v for k, v in cell.items() if k not in CELL_KEYS}


def describe_cell(cell: dict) -> str:
    """Words for a cell: ``M (language=hi)``, ``humans of P``."""
    who = f"humans of {cell['human']}" if "human" in cell else str(cell.get("model", "?"))
    lv = ", ".join(f"{k}={v}" for k, v in cell_factors(cell).items())
    return f"{who} ({lv})" if lv else who


def _filter(sub, cell: dict):
    d = sub.data
    mask = (d["model"].astype(str) == str(cell["model"])).to_numpy().copy()
    for k, v in cell_factors(cell).items():
        mask &= (d[k].astype(str) == str(v)).to_numpy()
    return sub if mask.all() else _replace(sub, d[mask])


def _replace(sub, data):
    from dataclasses import replace

    return replace(sub, data=data)


def _no_reference(cell: dict, metric: str) -> ValueError:
    return ValueError(f"the cell {describe_cell(cell)} is scored against human answers (metric {metric!r}): pass "
                      "`reference=`.")


def cell_scores(sub: Responses, reference: Reference | None, cell: dict, metric: str, items: list[str],
                first_group: str | None = None) -> np.ndarray:
    """Per-item scores (items x 1, or items x other groups for group ``"*"``) of one cell in ``sub``; NaN
    where an item has no data."""
    from robustalign.scoring import human_pair_scores, item_scores, model_profiles

    idx = pd.Index(items)
    if "human" in cell:
        if reference is None:  # audit_claim checks this first
            raise _no_reference(cell, metric)
        return np.asarray(human_pair_scores(reference, items, cell["human"], cell["group"], metric=metric),
                          dtype=np.float64)[:, None]
    d = _filter(sub, cell)
    star = cell.get("group") == ALL_OTHERS
    if len(d.valid()) == 0:  # a cell with no valid answer (or none at all) scores NaN, not an error
        return np.full((len(items), 1), np.nan)
    if metric == "position":
        p = model_profiles(d, by=["model"])
        return p.set_index("item")["value"].reindex(idx).to_numpy(float)[:, None]
    if reference is None:
        raise _no_reference(cell, metric)
    s = item_scores(d, reference, metric=metric, by=["model"], groups=None if star else [cell["group"]])
    w = _item_by_group(s).reindex(idx)
    if not star:
        return w.get(cell["group"], pd.Series(np.nan, index=idx)).to_numpy(float)[:, None]
    if first_group not in w:
        return np.full((len(items), max(1, w.shape[1] - 1)), np.nan)
    return w[[g for g in w.columns if g != first_group]].to_numpy(float)


def cell_identity(sub: Responses, reference: Reference, cell: dict, *, by: Sequence[str] = (),
                  first_group: str | None = None) -> pd.DataFrame:
    """Per item (and level of the factors ``by``) the chi-square of "the cell's answer distribution equals the
    human one" (:func:`robustalign.metrics.identity_chi_square`): columns ``*by, item, group, _x2, _x2_df,
    _x2_var`` (the statistic, its df, its null variance), one row per group the cell is scored against (as
    :func:`cell_scores`; group ``"*"``: every group but ``first_group``). A human cell is sampled where the
    reference gives respondents; exact shares on both sides give NaN (no sampling noise, no kink bias)."""
    from robustalign.metrics import identity_chi_square
    from robustalign.scoring import item_score_rows

    cols = [*by, "item", "group", "_x2", "_x2_df", "_x2_var"]
    if "human" in cell:  # a human group used as a "model"
        items = list(reference.items)
        Q = reference.array(items, [cell["human"], cell["group"]])
        N = reference.n_array(items, [cell["human"], cell["group"]])
        x2 = identity_chi_square(Q[:, 0], Q[:, 1], np.where(np.isfinite(N[:, 0]), N[:, 0], np.inf), N[:, 1])
        t = pd.DataFrame({"item": items, "group": cell["group"], "_x2": x2[0], "_x2_df": x2[1], "_x2_var": x2[2]})
        return t.merge(sub.data[list(by)].drop_duplicates(), how="cross")[cols] if by else t[cols]
    d = _filter(sub, cell)
    star = cell.get("group") == ALL_OTHERS
    if len(d.valid()) == 0:
        return pd.DataFrame(columns=cols)
    s = item_score_rows(d, reference, metric="agreement", by=["model", *by], against=None, group_map=None,
                     groups=None if star else [cell["group"]], estimand="answer-distribution", min_answers=None,
                     identity=True)
    if star:
        s = s[s["group"].astype(str) != str(first_group)]
    return s[cols].reset_index(drop=True)


def _item_by_group(s: pd.DataFrame) -> pd.DataFrame:
    """``s.pivot_table(index="item", columns="group", values="score", observed=True)``: items x groups, the
    mean score per cell, groups with no finite score left out. Scores of one model have one row per item
    and group, so the table is filled from the labels' codes (0.2 s against pivot_table's 1.1 s over the
    example audit's 100 calls; the same table, tested); repeated cells take the pivot itself."""
    ic, items = pd.factorize(s["item"], sort=True)
    gc, groups = pd.factorize(s["group"], sort=True)
    if (ic < 0).any() or (gc < 0).any() or len(np.unique(ic * len(groups) + gc)) < len(s):
        return s.pivot_table(index="item", columns="group", values="score", observed=True)
    m = np.full((len(items), len(groups)), np.nan)
    m[ic, gc] = s["score"].to_numpy(float)
    keep = ~np.isnan(m).all(axis=0)
    return pd.DataFrame(m[:, keep], index=pd.Index(items, name="item"), columns=pd.Index(groups[keep], name="group"))


def per_item_slopes(S: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``S`` (items x cells) on ``x`` over the row's finite cells
    (NaN with fewer than two distinct positions)."""
    ok = np.isfinite(S)
    w = ok.astype(float)
    n = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = (w * x).sum(1) / n
        xc = np.where(ok, x[None] - xbar[:, None], 0.0)
        sxx = (xc**2).sum(1)
        b = (xc * np.where(ok, S, 0.0)).sum(1) / sxx
    return np.where((n >= 2) & (sxx > 0), b, np.nan)


def pair_differences(S: np.ndarray) -> np.ndarray:
    """Differences of every pair of columns of ``S`` (items x K) -> items x K(K-1)/2."""
    pairs = list(combinations(range(S.shape[1]), 2))
    return np.stack([S[:, i] - S[:, j] for i, j in pairs], axis=1)


# --------------------------------------------------------------------------------------------------
# correlation across units
# --------------------------------------------------------------------------------------------------
def _unit_aggregates(D: np.ndarray, aggs: np.ndarray) -> np.ndarray:
    """(..., items, specs, K) -> (..., specs, K): each unit's scores aggregated over items."""
    from robustalign.claims.multiverse import aggregate_specifications

    out = np.empty(D.shape[:-3] + D.shape[-2:])
    for how in ("mean", "median"):
        m = aggs == how
        if m.any():
            out[..., m, :] = aggregate_specifications(D[..., m, :], how, axis=-3)
    return out


def correlate(A: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Correlation across the last axis of ``A`` (..., K) with ``y`` (broadcast); NaN where undefined."""
    from scipy.stats import rankdata

    A, y = np.broadcast_arrays(A, y)
    if method == "spearman":
        A, y = rankdata(A, axis=-1), rankdata(y, axis=-1)
    a = A - A.mean(-1, keepdims=True)
    b = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    return np.clip(r, -1.0, 1.0)


def _other_quantity(claim, items: list[str]):
    """The other quantity per unit ``y`` (K,), its per-item table (items, K) or None, its SEs or None."""
    if claim.item_x:
        table = dict(claim.item_x)
        K = len(claim.cells)
        Y = np.array([table.get(i, (np.nan,) * K) for i in items], float)
        from robustalign.claims._base import nanmean

        return nanmean(Y, 0), Y, None
    return np.asarray(claim.x, float), None, (np.asarray(claim.se, float) if claim.se else None)


def _corr_boot(D, aggs, y, Y, se, method, draws):
    """Correlation of the resampled unit aggregates with the resampled other quantity (rows, specs); module
    level so that tasks pickle it. ``draws = (idx, z)``: item indices and standard normal deviates."""
    from robustalign.claims._base import nanmean

    idx, z = draws
    out = np.empty((len(idx), D.shape[1]))
    step = max(1, (32 * 2**20) // max(D.nbytes, 1))
    for s in range(0, len(idx), step):
        e = min(len(idx), s + step)
        A = _unit_aggregates(D[idx[s:e]], aggs)  # (rows, specs, K)
        if Y is not None:
            yb = nanmean(Y[idx[s:e]], axis=1)  # the same items: the quantity's own item sampling
        elif se is not None:
            yb = y + se * z[s:e]
        else:
            yb = np.broadcast_to(y, (e - s, len(y)))
        out[s:e] = correlate(A, yb[:, None, :], method)
    return out


def _perm_corr(A, y, method, perm):
    """Null: the other quantity permuted across units (rows of ``perm``)."""
    return correlate(A[None], y[perm][:, None, :], method)


def audit_correlation(claim, specs, D, items, aggs, *, n_resamples, n_permutations, alpha, level, gen, record,
                      executor, provenance, near=None, p_identity=None):
    """The correlation form of :func:`robustalign.claims.multiverse.audit_claim`.

    Per specification: the correlation across units of each unit's aggregate alignment with the other
    quantity. Interval: a bootstrap in two stages, the items resampled (jointly for every unit and
    specification, so the units' shared items keep their dependence) and, within the same resample, the
    other quantity redrawn from its standard errors or from the same resampled items; the correlation is
    then recomputed across units. Test: the other quantity permuted across units (all orders when there
    are few units), one null shared by every specification for the joint test. ``near``: specifications
    left out near identity (their columns of ``D`` are NaN), counted apart from those without data.
    """
    from functools import partial

    from robustalign.claims.multiverse import (
        SUPPORT_SHARE,
        ZERO_RTOL,
        ClaimResult,
        claim_verdict,
        joint_from_null,
    )
    from robustalign.resampling import BootstrapResult
    from robustalign.resampling.nulls import BLOCK_SIZE, item_bootstrap_normals, label_permutations

    y, Y, se = _other_quantity(claim, items)
    K = D.shape[2]
    est = correlate(_unit_aggregates(D, aggs), y, claim.method)
    evaluable = np.isfinite(est)
    tol = np.full(est.shape, ZERO_RTOL)
    R = item_bootstrap_normals(partial(_corr_boot, D[:, evaluable], aggs[evaluable], y, Y, se, claim.method),
                               D.shape[0], K, n_resamples=n_resamples, rng=gen,
                               key=("audit_claim.bootstrap", claim.text), executor=executor)
    boot = BootstrapResult(
        estimate=est[evaluable], resamples=np.asfortranarray(R), jackknife=None,
        labels=specs[evaluable].reset_index(drop=True), design="two-stage (items, then the other quantity)",
        method="percentile", confidence_level=level, n_clusters=int(D.shape[0]), rng=record,
        statistic=f"{claim.method} correlation across {K} units",
        provenance={"block_size": BLOCK_SIZE, "stream": ["audit_claim.bootstrap", claim.text]})
    A = _unit_aggregates(D, aggs)
    null, exact = label_permutations(partial(_perm_corr, A, y, claim.method), K, n_permutations=n_permutations,
                                     rng=gen, key=("audit_claim.permutation", claim.text))
    joint = joint_from_null(est, null, alpha)
    holds_boot = np.mean(R > tol[evaluable], axis=1)
    joint_boot = {"p_holds_in_90pct": float(np.mean(holds_boot >= SUPPORT_SHARE)),
                  "p_holds_in_majority": float(np.mean(holds_boot > 0.5))}
    share = float(np.mean(est[evaluable] > tol[evaluable]))
    n_eval = int(evaluable.sum())
    verdict, reason, n_needed = claim_verdict(claim, est, tol, share, joint, joint_boot, D, alpha, n_eval)
    near = np.zeros(len(specs), bool) if near is None else np.asarray(near, bool)
    if near.any():
        from robustalign.claims.multiverse import left_out_words

        reason = reason[:-1] + left_out_words(0, near, specs, provenance.get("near_identity_level", np.nan))
    verdicts = pd.DataFrame([{"claim": claim.text, "verdict": verdict, "reason": reason, "share_holds": share,
                              "n_specifications": n_eval,
                              "n_specifications_empty": len(specs) - n_eval - int(near.sum()),
                              "n_specifications_near_identity": int(near.sum()), "n_needed": n_needed}])
    evidence = {"bootstrap": boot, "joint": joint, "joint_bootstrap": joint_boot, "specifications": specs,
                "contrasts": D, "items": items, "estimate": est, "tolerance": tol, "other_quantity": y,
                "unit_alignment": A, "n_items": np.sum(~np.all(np.isnan(D), axis=2), axis=0),
                "permutations": {"n": len(null), "exact": exact}, "near_identity": near,
                "identity_p": np.full(len(specs), np.nan) if p_identity is None else p_identity}
    return ClaimResult("claim", verdicts, evidence, provenance, level)


def units_needed(r: float, n_units: int, alpha: float) -> tuple[float, str]:
    """Units needed to detect a correlation ``r`` at 80% power (Fisher z: ``((z_a/2 + z_0.8) / atanh r)^2 + 3``)."""
    from scipy import stats

    if not np.isfinite(r) or abs(r) >= 1:
        return np.nan, ""
    if r <= 0:
        return np.inf, "; the median correlation is not in the claimed direction, so no number of units would detect it"
    n = int(np.ceil(((stats.norm.isf(alpha / 2) + stats.norm.isf(0.2)) / np.arctanh(r)) ** 2 + 3))
    return float(n), (f"; about {n} units (not items; there are {n_units}) would detect the median correlation "
                      "at 80% power")
