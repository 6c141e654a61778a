r"""Correlation across units between two quantities that are each measured with error.

A claim such as "models that fit a culture better also compromise safety more" (Chae et al. 2025) is a
correlation across units (models, model x language cells, countries) between two per-unit quantities,
each a mean over items or prompts. Correlating the point estimates answers the wrong question: each
unit's estimate carries its own sampling error, which lowers the correlation (attenuation) and, where the
two quantities are measured on the same items, can add a correlation of its own.

Estimand
--------
``rho``: the Pearson correlation of the units' *true* scores (the means each unit would have over
infinitely many items of the kind measured), in the population of units the observed ones stand for.
It is estimated by the correlation of the unit estimates corrected for measurement error (Spearman's
correction, with the error variances taken from each unit's own items):

    r_c = (S_xy - mean_u c_u) / sqrt((S_xx - mean_u v_xu) (S_yy - mean_u v_yu))

where ``S`` are the across-unit (co)variances of the unit estimates, ``v_u`` each unit's squared
standard error and ``c_u`` the error covariance of its two estimates (non-zero only on shared items).
The reliability of quantity x is ``1 - mean(v_x) / S_xx``; ``r_c`` is clipped to [-1, 1] (the verdict says
when, since it signals a low, unstable reliability) and is not estimable when a reliability is not above
0 (the units differ less than their own measurement error); its interval is then [-1, 1]. The interval is the Fisher-z interval of the
error-covariance-corrected correlation ``(S_xy - mean c) / sqrt(S_xx S_yy)`` on ``U - 3`` degrees of
freedom, with both ends divided by ``sqrt(rel_x rel_y)`` (the correction applied to the interval ends).
Coverage is checked by simulation in ``tests/test_association.py``.

Spearman's rank correlation is reported for the unit *estimates* (not corrected; it describes the
ranking the data show) with a two-stage bootstrap interval: units resampled with replacement, and within
each drawn unit its items resampled, with the same draws for both quantities on shared items.

Zero correlation across units is tested by permuting one quantity's unit estimates across units
(``p = (1 + b)/(1 + B)`` from :func:`robustalign.resampling.permutation_p_values`). With shared items the
two estimates of a unit have correlated errors, which permuting units breaks (the permutation test of
the full estimates rejected 83 of 1,000 at 0.05 with error correlation 0.6, 12 units, 8 items). The
Pearson p-value then comes from item-disjoint halves: each unit's items are split at random (its own
keyed stream, ``association.split``), x is averaged over one half and y over the other, and the
half-scores are permuted; their errors share no item, so the test is exact under "no correlation across
units" (measured: 28 of 600 rejections, 4.7%), at the cost of the power that half the items give.

Public names
------------
audit_correlation, audit_tradeoff, units_needed, items_needed, report_rows
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_confidence_level
from robustalign.claims._base import AssessmentResult
from robustalign.resampling import keyed_stream, permutation_p_values
from robustalign.resampling.draws import bootstrap_counts, integer_draws, random_permutations
from robustalign.resampling.mcerror import p_value_mcse, within_mc_error
from robustalign.schema import Reference, Responses

__all__ = ["UnitMeasure", "add_measure_section", "audit_correlation", "audit_tradeoff", "items_needed", "load_unit_measure", "measure_section",
           "report_rows", "units_needed"]

EXPECT = ("positive", "negative", None)


# --------------------------------------------------------------------------------------------------
# input: per-item values or a per-unit table with standard errors
# --------------------------------------------------------------------------------------------------
def _per_unit(data: pd.DataFrame, name: str, unit: str, item: str, value: str, se: str) -> dict:
    """``{"units", "mean", "var", "n", "items": {unit: (item labels, values)} or None}`` for one quantity."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`{name}` must be a DataFrame; got {type(data).__name__}.")
    missing = [c for c in (unit, value) if c not in data.columns]
    if missing:
        raise ValueError(f"`{name}` has no column(s) {missing}; it needs `{unit}`, `{value}` and either "
                         f"`{item}` (per-item values) or `{se}` (per-unit standard errors). Columns: "
                         f"{list(data.columns)}.")
    vals = pd.to_numeric(data[value], errors="coerce")
    bad = vals.isna() | ~np.isfinite(vals)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"`{name}` column `{value}` must be finite numbers; row {row} has "
                         f"{data[value].iloc[row]!r} ({int(bad.sum())} such rows). Drop or recode them "
                         "before the audit and count them in the exclusion log.")
    if item in data.columns:
        return _from_items(data.assign(**{value: vals}), name, unit, item, value)
    if se not in data.columns:
        raise ValueError(f"`{name}` needs either an `{item}` column (per-item values) or an `{se}` column "
                         "(per-unit standard errors).")
    s = pd.to_numeric(data[se], errors="coerce")
    if s.isna().any() or (s < 0).any():
        row = int(np.flatnonzero((s.isna() | (s < 0)).to_numpy())[0])
        raise ValueError(f"`{name}` column `{se}` must be non-negative numbers; row {row} has "
                         f"{data[se].iloc[row]!r}.")
    if data[unit].duplicated().any():
        dup = data[unit][data[unit].duplicated()].iloc[0]
        raise ValueError(f"`{name}` is a per-unit table but unit {dup!r} appears more than once; give one "
                         f"row per unit or per-item values with an `{item}` column.")
    units = data[unit].astype(str).to_numpy()
    n = data["n_items"].to_numpy(float) if "n_items" in data.columns else np.full(len(units), np.nan)
    return {"units": units, "mean": vals.to_numpy(float), "var": s.to_numpy(float) ** 2, "n": n, "items": None}


def _from_items(data: pd.DataFrame, name: str, unit: str, item: str, value: str) -> dict:
    dup = data.duplicated([unit, item])
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"`{name}` has more than one `{value}` for unit {data[unit].iloc[row]!r} and item "
                         f"{data[item].iloc[row]!r} (row {row}); average repeated samples per item first, "
                         "so that items are the resampled units.")
    u_lab, inv, cnt = np.unique(np.asarray(data[unit].astype(str), dtype=object).astype(str),
                                return_inverse=True, return_counts=True)
    vals = data[value].to_numpy(float)
    if (cnt < 2).any():
        k = int(np.flatnonzero(cnt < 2)[0])
        raise ValueError(f"`{name}`: unit {u_lab[k]!r} has {cnt[k]} item(s); each unit needs at least 2 items "
                         "for its own standard error.")
    mean = np.bincount(inv, vals) / cnt
    var = np.bincount(inv, (vals - mean[inv]) ** 2) / (cnt - 1)
    order = np.argsort(inv, kind="stable")
    labels, sv = data[item].to_numpy()[order], vals[order]
    bounds = np.cumsum(cnt)
    items = {u: (labels[b - k:b], sv[b - k:b]) for u, k, b in zip(u_lab, cnt, bounds)}
    return {"units": u_lab, "mean": mean, "var": var / cnt, "n": cnt.astype(float), "items": items}


def _center_crossed(q: dict) -> dict:
    """Remove shared item effects when every unit has the same items (items crossed with units).

    An item that is easy for every unit shifts all unit means alike and does not move a correlation
    across units, so it is not measurement error of the comparison. With ``A_u = sum_i r_ui^2 / (n - 1)``
    from the unit x item residuals ``r_ui = x_ui - x_u. - x_.i + x_..`` and independent errors,
    ``E[A_u] = s_u^2 (1 - 2/U) + mean(s^2)/U``, which is solved for each ``s_u^2``; the item values used
    by the bootstrap become ``x_ui - x_.i + x_..`` (same unit means, item effects removed).
    """
    items, units = q["items"], q["units"]
    if items is None or len(units) < 3:
        return q
    first = np.sort(items[units[0]][0])
    if not all(len(items[u][0]) == len(first) and np.array_equal(np.sort(items[u][0]), first) for u in units):
        return q
    order = {u: np.argsort(items[u][0], kind="stable") for u in units}
    X = np.vstack([items[u][1][order[u]] for u in units])  # (U, n) on sorted item labels
    U, n = X.shape
    centred = X - X.mean(0) + X.mean()
    R = centred - centred.mean(1, keepdims=True)
    A = (R**2).sum(1) / (n - 1)
    s2_bar = A.mean() / (1 - 1 / U)
    s2 = np.maximum((A - s2_bar / U) / (1 - 2 / U), 0.0)
    out = dict(q)
    out["items"] = {u: (first, centred[k]) for k, u in enumerate(units)}
    out["var"], out["crossed"] = s2 / n, True
    return out


def _error_cov(qx: dict, qy: dict, units: np.ndarray) -> np.ndarray:
    """Covariance of each unit's two estimates from its shared items: ``sum_shared cov / (n_x n_y)``."""
    c = np.zeros(len(units))
    if qx["items"] is None or qy["items"] is None:
        return c
    for k, u in enumerate(units):
        (la, a), (lb, b) = qx["items"][u], qy["items"][u]
        _, ia, ib = np.intersect1d(la, lb, assume_unique=True, return_indices=True)
        if len(ia) >= 2:
            c[k] = np.cov(a[ia], b[ib], ddof=1)[0, 1] * len(ia) / (len(a) * len(b))
    return c


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------
def _moments(mx, my, vx, vy, c) -> dict:
    U = len(mx)
    sxx, syy = np.var(mx, ddof=1), np.var(my, ddof=1)
    sxy = float(np.cov(mx, my, ddof=1)[0, 1])
    rel_x = 1 - np.mean(vx) / sxx if sxx > 0 else np.nan
    rel_y = 1 - np.mean(vy) / syy if syy > 0 else np.nan
    r_naive = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else np.nan
    r_obs = (sxy - np.mean(c)) / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else np.nan
    ok = rel_x > 0 and rel_y > 0
    r_raw = r_obs / math.sqrt(rel_x * rel_y) if ok else np.nan
    return {"U": U, "r_naive": r_naive, "r_obs": r_obs, "r_c": float(np.clip(r_raw, -1, 1)), "r_raw": r_raw,
            "rel_x": rel_x, "rel_y": rel_y, "clipped": bool(ok and abs(r_raw) > 1)}


def _fisher(r: float, U: int, level: float) -> tuple[float, float]:
    if not np.isfinite(r) or U < 4:
        return np.nan, np.nan
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    h = stats.norm.ppf(0.5 + level / 2) / math.sqrt(U - 3)
    return float(np.tanh(z - h)), float(np.tanh(z + h))


def _corrected_interval(m: dict, level: float) -> tuple[float, float]:
    lo, hi = _fisher(m["r_obs"], m["U"], level)
    if not (m["rel_x"] > 0 and m["rel_y"] > 0):  # no reliability above 0: the data cannot bound rho
        return (-1.0, 1.0) if np.isfinite(lo) else (np.nan, np.nan)
    a = math.sqrt(m["rel_x"] * m["rel_y"])
    return float(np.clip(lo / a, -1.0, 1.0)), float(np.clip(hi / a, -1.0, 1.0))


def _unit_means(q: dict, units: np.ndarray, counts: dict) -> np.ndarray:
    """``(B, U)`` bootstrap means of each unit from its ``(B, n_items)`` item counts."""
    return np.column_stack([counts[u] @ q["items"][u][1] / len(q["items"][u][1]) for u in units])


def _item_counts(q: dict, other: dict, units, rng, n_resamples: int, tag: str) -> dict:
    """Per unit, ``(B, n_items)`` bootstrap counts from the unit's own stream; shared items share draws."""
    out = {}
    for u in units:
        a = q["items"][u][0]
        shared = other["items"] is not None and np.array_equal(a, other["items"][u][0])
        gen = keyed_stream(rng, "association.items", "shared" if shared else tag, u)
        out[u] = bootstrap_counts(gen, len(a), n_resamples)
    return out


def _two_stage(qx: dict, qy: dict, units, rng, n_resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B, U)`` resampled unit estimates of both quantities: units drawn, then items within unit."""
    B, U = n_resamples, len(units)
    if qx["items"] is not None:
        cx = _item_counts(qx, qy, units, rng, B, "x")
        mx = _unit_means(qx, units, cx)
    else:
        mx = np.tile(qx["mean"], (B, 1))
    if qy["items"] is not None:
        cy = _item_counts(qy, qx, units, rng, B, "y")
        my = _unit_means(qy, units, cy)
    else:
        my = np.tile(qy["mean"], (B, 1))
    idx = integer_draws(keyed_stream(rng, "association.units"), U, (B, U))
    return np.take_along_axis(mx, idx, 1), np.take_along_axis(my, idx, 1)


def _spearman_rows(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    rx, ry = stats.rankdata(X, axis=1), stats.rankdata(Y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))


def _split_halves(qx: dict, qy: dict, units, rng) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, x's mean over a random half of its shared items and y's mean over the other half.

    The halves share no item, so under "no correlation across units" each unit's two half-scores are
    independent and permuting units is exact, whatever the error covariance on shared items. Each unit's
    split comes from its own keyed stream.
    """
    hx, hy = np.empty(len(units)), np.empty(len(units))
    for k, u in enumerate(units):
        (la, a), (lb, b) = qx["items"][u], qy["items"][u]
        labels = np.union1d(la, lb)
        order = random_permutations(keyed_stream(rng, "association.split", u), 1, len(labels))[0]
        in_a = np.isin(la, labels[order[: len(labels) // 2]])
        in_b = ~np.isin(lb, labels[order[: len(labels) // 2]])
        if not in_a.any() or not in_b.any():
            return np.full(len(units), np.nan), np.full(len(units), np.nan)
        hx[k], hy[k] = a[in_a].mean(), b[in_b].mean()
    return hx, hy


def _permutation(mx, my, c, rng, n_permutations: int, alternative: str) -> dict:
    """Permutation p-values of zero correlation across units, Pearson (error-corrected) and Spearman."""
    U = len(mx)
    perm = random_permutations(keyed_stream(rng, "association.permutation"), n_permutations, U)
    xc = mx - mx.mean()
    yp = my[perm]
    null_p = (yp - my.mean()) @ xc / (U - 1)
    obs_p = float(np.cov(mx, my, ddof=1)[0, 1] - np.mean(c))
    null_s = _spearman_rows(np.broadcast_to(mx, yp.shape), yp)
    obs_s = float(stats.spearmanr(mx, my).statistic)
    p = permutation_p_values(np.array([obs_p, obs_s]), np.column_stack([null_p, null_s]), alternative)
    return {"pearson": float(p[0]), "spearman": float(p[1]), "spearman_obs": obs_s}


# --------------------------------------------------------------------------------------------------
# power
# --------------------------------------------------------------------------------------------------
def units_needed(rho: float, *, rel_x: float = 1.0, rel_y: float = 1.0, alpha: float = 0.05, power: float = 0.8,
                 two_sided: bool = True) -> float:
    """Units needed to detect a true-score correlation ``rho`` measured with reliabilities ``rel_x, rel_y``.

    Fisher z: ``U = ((z_{1-a/2} + z_{power}) / atanh(|rho| sqrt(rel_x rel_y)))^2 + 3``, rounded up
    (the observed correlation is attenuated to ``rho sqrt(rel_x rel_y)``). ``inf`` for ``rho = 0``.
    """
    alpha, power = check_confidence_level(alpha, "alpha"), check_confidence_level(power, "power")
    if not -1 < rho < 1:
        raise ValueError(f"`rho` must lie in (-1, 1); got {rho}.")
    for nm, r in (("rel_x", rel_x), ("rel_y", rel_y)):
        if not 0 < r <= 1:
            raise ValueError(f"`{nm}` must lie in (0, 1]; got {r}.")
    r_obs = abs(rho) * math.sqrt(rel_x * rel_y)
    if r_obs == 0:
        return math.inf
    z = stats.norm.ppf(1 - alpha / (2 if two_sided else 1)) + stats.norm.ppf(power)
    return float(math.ceil((z / np.arctanh(r_obs)) ** 2 + 3))


def _rel_at(rel: float, k: float) -> float:
    """Reliability with ``k`` times the items: ``1 / (1 + (1/rel - 1)/k)`` (Spearman-Brown)."""
    return 1.0 / (1.0 + (1.0 / rel - 1.0) / k)


def items_needed(rho: float, n_units: int, *, rel_x: float, rel_y: float, n_items_x: float, n_items_y: float,
                 alpha: float = 0.05, power: float = 0.8) -> tuple[float, float]:
    """Items per unit (x, y; both scaled by one factor) for ``n_units`` to detect ``rho`` at ``power``.

    ``(inf, inf)`` when even error-free measurement of ``n_units`` units would not suffice.
    """
    if units_needed(rho, alpha=alpha, power=power) > n_units:
        return math.inf, math.inf

    def short(k):
        return units_needed(rho, rel_x=_rel_at(rel_x, k), rel_y=_rel_at(rel_y, k), alpha=alpha, power=power) > n_units

    lo, hi = 1e-3, 1.0
    while short(hi):
        lo, hi = hi, hi * 2
        if hi > 1e7:
            return math.inf, math.inf
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if short(mid) else (lo, mid)
    nx, ny = (float(math.ceil(hi * n)) if np.isfinite(n) else np.nan for n in (n_items_x, n_items_y))
    return nx, ny


# --------------------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------------------
def _align(qx: dict, qy: dict, names) -> np.ndarray:
    sx, sy = set(qx["units"]), set(qy["units"])
    if sx != sy:
        only_x, only_y = sorted(sx - sy)[:5], sorted(sy - sx)[:5]
        raise ValueError(f"`{names[0]}` and `{names[1]}` must cover the same units; only in {names[0]}: "
                         f"{only_x}, only in {names[1]}: {only_y}. Give both quantities for every unit.")
    if len(sx) < 4:
        raise ValueError(f"a correlation across units needs at least 4 units; got {len(sx)}.")
    units = np.array(sorted(sx))
    for q in (qx, qy):
        order = pd.Index(q["units"]).get_indexer(units)
        for k in ("units", "mean", "var", "n"):
            q[k] = np.asarray(q[k])[order]
    return units


def _unit_table(qx, qy, units, names, level) -> pd.DataFrame:
    z = stats.norm.ppf(0.5 + level / 2)
    out = {"unit": units}
    for nm, q in zip(names, (qx, qy)):
        se = np.sqrt(q["var"])
        out |= {f"{nm}": q["mean"], f"{nm}_std_error": se, f"{nm}_conf_low": q["mean"] - z * se,
                f"{nm}_conf_high": q["mean"] + z * se, f"{nm}_n_items": q["n"]}
    return pd.DataFrame(out).assign(conf_level=level)


def audit_correlation(
    x: pd.DataFrame,
    y: pd.DataFrame,
    *,
    unit: str = "unit",
    item: str = "item",
    value: str = "value",
    se: str = "se",
    names: Sequence[str] = ("x", "y"),
    expect: str | None = None,
    published: float | None = None,
    alpha: float = 0.05,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 9999,
    rng: RngLike = None,
) -> AssessmentResult:
    """Correlation across units of two quantities each measured with error (see the module docstring).

    Parameters
    ----------
    x, y : DataFrame
        Per-item values (columns ``unit``, ``item``, ``value``; one value per unit x item, e.g. an
        alignment score or a 0/1 refusal) or a per-unit table (``unit``, ``value``, ``se``, optional
        ``n_items``). Items with the same label in one unit are treated as shared (paired).
    names : (str, str)
        What x and y are (used in the tables and verdict).
    expect : {"positive", "negative", None}
        The claimed sign. With None the verdict is on "the two are correlated" (either sign).
    published : float, optional
        A published correlation: the power row gives the units and items needed to detect it.
    rng : None, int, SeedSequence or Generator
        Seed; streams are keyed by purpose and unit (``resampling.keyed_stream``) and recorded.

    Returns
    -------
    AssessmentResult
        ``kind="correlation"``; ``to_frame()`` rows ``pearson_corrected`` (the estimand),
        ``pearson_naive``, ``spearman_estimates``, ``reliability_<name>``; ``evidence["units"]`` holds
        each unit's two estimates with intervals, ``evidence["power"]`` the units/items needed.
    """
    if expect not in EXPECT:
        raise ValueError(f"`expect` must be one of {EXPECT}; got {expect!r}.")
    level = check_confidence_level(confidence_level)
    names = tuple(str(n) for n in names)
    rng, record = as_generator(rng)  # one seed for every keyed stream, recorded (also when rng=None)
    qx = _per_unit(x, names[0], unit, item, value, se)
    qy = _per_unit(y, names[1], unit, item, value, se)
    units = _align(qx, qy, names)
    qx, qy = _center_crossed(qx), _center_crossed(qy)
    c = _error_cov(qx, qy, units)
    m = _moments(qx["mean"], qy["mean"], qx["var"], qy["var"], c) | {"shared_items": bool(np.any(c != 0))}
    perm = _permutation(qx["mean"], qy["mean"], c, rng, n_permutations, "two-sided")
    if m["shared_items"]:  # errors on shared items may correlate: the Pearson p from item-disjoint halves
        hx, hy = _split_halves(qx, qy, units, rng)
        if np.isfinite(hx).all():
            perm["pearson"] = _permutation(hx, hy, np.zeros(len(units)), rng, n_permutations, "two-sided")["pearson"]
            perm["split_halves"] = True
    bx, by_ = _two_stage(qx, qy, units, rng, n_resamples)
    spear_boot = _spearman_rows(bx, by_)
    power = _power_table(m, qx, qy, published, alpha)
    evidence = {"moments": m, "permutation": perm, "spearman_bootstrap": spear_boot, "power": power,
                "error_cov": c, "units": _unit_table(qx, qy, units, names, level)}

    def build(lv: float) -> pd.DataFrame:
        return _frame(m, perm, spear_boot, names, lv, qx, qy)

    verdicts = _verdict(m, perm, build(level), names, expect, alpha, power, n_permutations, unit)
    prov = {"rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations,
            "estimand": "Pearson correlation of the units' true scores (population of units)",
            "stream_purposes": ["association.items", "association.units", "association.permutation",
                                "association.split"],
            "alpha": alpha, "expect": expect, "published": published}
    return AssessmentResult("correlation", verdicts, evidence, prov, level, build)


def _power_table(m, qx, qy, published, alpha) -> pd.DataFrame:
    rows = []
    targets = [("published", published)] if published is not None else []
    if np.isfinite(m["r_c"]) and abs(m["r_c"]) < 1:
        targets.append(("estimate", m["r_c"]))
    ok = np.isfinite(m["rel_x"]) and np.isfinite(m["rel_y"]) and m["rel_x"] > 0 and m["rel_y"] > 0
    for what, r in targets:
        if not ok or r == 0:
            rows.append({"target": what, "rho": r, "units_needed": np.nan,
                         "units_needed_error_free": units_needed(r, alpha=alpha) if r else np.inf,
                         "items_x_needed": np.nan, "items_y_needed": np.nan})
            continue
        nx, ny = (float(np.mean(q["n"])) for q in (qx, qy))  # NaN for a per-unit table without n_items
        ix, iy = items_needed(r, m["U"], rel_x=m["rel_x"], rel_y=m["rel_y"], alpha=alpha, n_items_x=nx,
                              n_items_y=ny)
        rows.append({"target": what, "rho": r,
                     "units_needed": units_needed(r, rel_x=m["rel_x"], rel_y=m["rel_y"], alpha=alpha),
                     "units_needed_error_free": units_needed(r, alpha=alpha),
                     "items_x_needed": ix, "items_y_needed": iy})
    return pd.DataFrame(rows, columns=["target", "rho", "units_needed", "units_needed_error_free",
                                       "items_x_needed", "items_y_needed"]).assign(n_units=m["U"], power=0.8,
                                                                                   alpha=alpha)


def _frame(m, perm, spear_boot, names, level, qx, qy) -> pd.DataFrame:
    from robustalign.resampling import percentile_interval

    lo_c, hi_c = _corrected_interval(m, level)
    lo_n, hi_n = _fisher(m["r_naive"], m["U"], level)
    fin = spear_boot[np.isfinite(spear_boot)]
    lo_s, hi_s = (percentile_interval(fin[:, None], confidence_level=level) if fin.size else ([np.nan], [np.nan]))
    n_items = float(np.nansum(qx["n"]) + np.nansum(qy["n"]))
    rel = ("plug-in", "1 - mean(se^2) / var(unit estimates)")
    rows = [
        ("pearson_corrected", m["r_c"], lo_c, hi_c, "fisher-z", "Fisher z (U-3), corrected for attenuation",
         perm["pearson"]),
        ("pearson_naive", m["r_naive"], lo_n, hi_n, "fisher-z",
         "Fisher z (U-3) of unit estimates; ignores measurement error", np.nan),
        ("spearman_estimates", perm["spearman_obs"], float(lo_s[0]), float(hi_s[0]), "percentile",
         "two-stage bootstrap (units, then items within unit)", perm["spearman"]),
        (f"reliability_{names[0]}", m["rel_x"], np.nan, np.nan, *rel, np.nan),
        (f"reliability_{names[1]}", m["rel_y"], np.nan, np.nan, *rel, np.nan),
    ]
    f = pd.DataFrame(rows, columns=["quantity", "estimate", "conf_low", "conf_high", "method", "method_note",
                                    "p_value"])
    return f.assign(std_error=np.nan, conf_level=level, p_adjusted=f["p_value"], adjust_method="none",
                    family="association", n_items=n_items, n_units=m["U"], units="correlation across units",
                    x=names[0], y=names[1])


def _verdict(m, perm, frame, names, expect, alpha, power, n_perm, unit) -> pd.DataFrame:
    row = frame.iloc[0]
    est, lo, hi, p = row["estimate"], row["conf_low"], row["conf_high"], perm["pearson"]
    sign = {"positive": 1, "negative": -1, None: 0}[expect]
    claim = (f"{names[0]} and {names[1]} correlate {expect}ly across {unit}s" if expect
             else f"{names[0]} and {names[1]} are correlated across {unit}s")
    mc = bool(within_mc_error(p, alpha, p_value_mcse(p, n_perm)))
    nums = (f"corrected r = {est:.2f} [{lo:.2f}, {hi:.2f}] over {m['U']} {unit}s, permutation p = {p:.3g}, "
            f"reliabilities {m['rel_x']:.2f} and {m['rel_y']:.2f}; the correlation of the point estimates is "
            f"{m['r_naive']:.2f}")
    if not np.isfinite(est):
        verdict, why = "inconclusive", ("the units differ less than their own measurement error (a reliability "
                                        "is not above 0), so their true-score correlation cannot be estimated")
    elif sign and ((sign > 0 and hi < 0) or (sign < 0 and lo > 0)):
        verdict, why = "not supported", "the interval lies on the other side of 0"
    elif p < alpha and (lo > 0 or hi < 0) and (not sign or np.sign(est) == sign):
        verdict, why = "supported", "the permutation test rejects 0 and the interval excludes it"
    else:
        verdict, why = "inconclusive", "the interval includes 0 or the permutation test does not reject it"
    n_needed, extra = np.nan, ""
    target = power[power["target"] == ("published" if "published" in set(power["target"]) else "estimate")]
    if verdict == "inconclusive" and len(target):
        t = target.iloc[0]
        if np.isfinite(t["units_needed"]):
            n_needed = float(t["units_needed"])
            extra = f"; about {n_needed:.0f} {unit}s would detect r = {t['rho']:.2f} at 80% power"
        elif np.isfinite(t["units_needed_error_free"]):
            n_needed = float(t["units_needed_error_free"])
            extra = (f"; at least {n_needed:.0f} {unit}s (more with measurement error) would detect "
                     f"r = {t['rho']:.2f} at 80% power")
    if m["clipped"]:
        extra += (f"; the corrected r was {m['r_raw']:.2f} before clipping to [-1, 1] (a reliability is estimated "
                  "low: the correction is unstable)")
    if perm.get("split_halves"):
        extra += (f"; {names[0]} and {names[1]} are measured on shared items, whose errors may correlate: the "
                  "permutation p-value correlates them on item-disjoint halves (exact whatever that correlation, "
                  "at some cost in power)")
    elif m.get("shared_items"):
        extra += (f"; {names[0]} and {names[1]} are measured on shared items, whose errors may correlate, and "
                  "a unit has too few items to split: the permutation test may reject too often (8% at a "
                  "nominal 5% in a simulation with error correlation 0.6)")
    if mc:
        extra += "; the p-value is within Monte Carlo error of alpha: rerun with more permutations"
    reason = f"'{claim}': {verdict} ({why}): {nums}{extra}."
    return pd.DataFrame([{"claim": claim, "verdict": verdict, "reason": reason, "n_needed": n_needed,
                          "mc_error": mc}])


# --------------------------------------------------------------------------------------------------
# cultural fit traded against safety
# --------------------------------------------------------------------------------------------------
def _unit_labels(frame: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    return frame[list(by)].astype(str).agg(" / ".join, axis=1)


def audit_tradeoff(
    responses: Responses,
    reference: Reference,
    safety: pd.DataFrame,
    *,
    by: Sequence[str] = ("model",),
    group: str | None = None,
    against: str | None = None,
    group_map: Mapping[str, str] | None = None,
    metric: str = "js",
    item: str = "item",
    safety_value: str = "value",
    expect: str | None = "positive",
    names: Sequence[str] = ("cultural_fit", "safety_violation"),
    published: float | None = None,
    alpha: float = 0.05,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 9999,
    rng: RngLike = None,
) -> AssessmentResult:
    """"Models which fit a culture better also compromise safety more" (Chae et al. 2025), audited.

    Cultural fit is each unit's per-item alignment (:func:`robustalign.item_scores`, higher = closer)
    with one human group: ``group`` for every unit, or the group named by the ``against`` column of the
    responses (e.g. ``"language"`` with ``group_map`` from language to country). ``safety`` holds one
    row per unit x prompt with the ``by`` columns, ``item`` (the prompt) and ``safety_value`` (a 0/1
    safety violation or a harm score: higher = less safe). The claim is a positive correlation across
    units (``expect="positive"``; use ``"negative"`` if ``safety_value`` is a refusal or safety rate).

    Returns :func:`audit_correlation`'s result with ``names`` (default ``("cultural_fit", "safety_violation")``);
    ``evidence["units"]`` holds both per-unit quantities with intervals and ``evidence["power"]`` the
    units and items needed to detect ``published`` (or the estimate).
    """
    from robustalign.scoring import item_scores

    by = [by] if isinstance(by, str) else list(by)
    if not isinstance(safety, pd.DataFrame):
        raise TypeError(f"`safety` must be a DataFrame; got {type(safety).__name__}.")
    missing = [c for c in (*by, item, safety_value) if c not in safety.columns]
    if missing:
        raise ValueError(f"`safety` has no column(s) {missing}; it needs one row per unit x prompt with "
                         f"{[*by, item, safety_value]}. Columns: {list(safety.columns)}.")
    groups = None if group is None else [group]
    s = item_scores(responses, reference, metric=metric, by=by, against=against, group_map=group_map,
                    groups=groups)
    if s.empty:
        raise ValueError(f"no item could be scored for cultural fit (metric {metric!r}, group {group!r}; "
                         f"{ {k: v for k, v in s.attrs.items() if k.startswith('n_')} }). Fix: check that the "
                         "group is in the reference and that every model has enough samples per item.")
    per_cell = s.groupby([*by, "item"])["group"].nunique()
    if (per_cell > 1).any():
        raise ValueError(f"cultural fit needs one human group per unit; the reference has "
                         f"{sorted(s['group'].unique())[:6]}. Pass `group=` (one group for every unit) or "
                         "`against=` (a responses column naming each unit's group).")
    fit = pd.DataFrame({"unit": _unit_labels(s, by), "item": s["item"].to_numpy(), "value": s["score"].to_numpy()})
    saf = pd.DataFrame({"unit": _unit_labels(safety, by), "item": safety[item].to_numpy(),
                        "value": safety[safety_value].to_numpy()})
    res = audit_correlation(fit, saf, names=tuple(names), expect=expect,
                            published=published, alpha=alpha, confidence_level=confidence_level,
                            n_resamples=n_resamples, n_permutations=n_permutations, rng=rng)
    res.provenance |= {"metric": metric, "by": by, "group": group, "against": against,
                       "n_scored_items": int(len(s)), "score_attrs": dict(s.attrs)}
    res.kind = "tradeoff"
    return res


def report_rows(result: AssessmentResult, *, part: str = "", assessment: str = "correlation"
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(display table, verdict rows)`` for a report: the estimates and the verdict in the report's shape."""
    f = result.to_frame()
    disp = f[["quantity", "estimate", "conf_low", "conf_high", "conf_level", "method", "p_value", "n_units"]]
    v = result.verdicts
    rows = pd.DataFrame({"part": part, "assessment": assessment, "unit": v["claim"].to_numpy(),
                         "verdict": v["verdict"].to_numpy(), "reason": v["reason"].to_numpy(),
                         "n_needed": v["n_needed"].to_numpy(float), "mc_error": v["mc_error"].to_numpy()})
    return disp.reset_index(drop=True), rows


# --------------------------------------------------------------------------------------------------
# the audit report: another per-model measure correlated with cultural fit
# --------------------------------------------------------------------------------------------------
@dataclass
class UnitMeasure:
    """A per-unit measure for the report's correlation with cultural fit (e.g. a refusal rate).

    ``table`` has one row per model x item (``model``, ``item``, numeric ``value``); ``name`` says what
    the value is, ``group`` which human group cultural fit is measured against (None: the design's
    ``against`` column, or the reference's only group), ``expect`` the claimed sign.
    """

    table: pd.DataFrame
    source: str
    name: str = "other_measure"
    group: str | None = None
    expect: str | None = None


def load_unit_measure(path: str | PathLike, *, name: str | None = None, group: str | None = None,
                      expect: str | None = None) -> UnitMeasure:
    """Read and check a per-model measure file (CSV, Parquet or JSON lines): ``model``, ``item``, ``value``.

    Raises :class:`~robustalign.SchemaError` naming the file, the column, the first bad rows (file lines,
    header = line 1) and the fix; nothing is dropped.
    """
    from pathlib import Path

    from robustalign._errors import SchemaError, preview
    from robustalign.io import read_table

    if expect not in EXPECT:
        raise ValueError(f"the expected sign must be one of {EXPECT[:2]} or none; got {expect!r}.")
    df = read_table(path)
    where = str(path)
    missing = [c for c in ("model", "item", "value") if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing}; columns present: {preview(list(df.columns), 12)}. "
                          "Fix: one row per model x item (prompt) with columns model, item and value (e.g. 1 = "
                          "refused, 0 = answered).")
    vals = pd.to_numeric(df["value"], errors="coerce")
    bad = (vals.isna() | ~np.isfinite(vals)).to_numpy()
    if bad.any():
        lines = [int(i) + 2 for i in np.flatnonzero(bad)[:5]]
        raise SchemaError(f"{where}: column 'value' is not a number in {int(bad.sum())} rows (lines {lines}, e.g. "
                          f"{df['value'].iloc[int(np.flatnonzero(bad)[0])]!r}). Fix: give a number for every "
                          "model x item, or remove those rows (and say why) before the audit.")
    for col in ("model", "item"):
        empty = (df[col].isna() | (df[col].astype(str).str.strip() == "")).to_numpy()
        if empty.any():
            lines = [int(i) + 2 for i in np.flatnonzero(empty)[:5]]
            raise SchemaError(f"{where}: column {col!r} is empty in lines {lines}. Fix: fill it in or remove "
                              "those rows.")
    table = pd.DataFrame({"model": df["model"].astype(str).str.strip(), "item": df["item"].astype(str),
                          "value": vals.to_numpy(float)})
    return UnitMeasure(table, where, name or Path(where).stem, group, expect)


def add_measure_section(report: Any, responses: Responses, reference: Reference, measure: UnitMeasure, *,
                        design: Any, rng: RngLike = None, n_resamples: int | None = None,
                        n_permutations: int | None = None) -> Any:
    """Append :func:`measure_section` to the first part of an audit report (from
    :func:`robustalign.report.run_audit`) with the design's settings, its own keyed stream
    (``association``) and cultural fit as per-item similarity on the design's first per-item metric (JS when the
    design names none); returns the report."""
    seed = design.seed if rng is None else rng
    from robustalign.metrics import METRICS

    metric = next((str(m) for m in getattr(design, "metrics", None) or () if m in METRICS), "js")
    sec = measure_section(responses, reference, measure, against=design.against,
                          rng=keyed_stream(seed, "association"), part=report.parts[0].title,
                          n_resamples=int(n_resamples or design.n_resamples),
                          n_permutations=int(n_permutations or design.n_permutations),
                          level=design.confidence_level, metric=metric)
    report.parts[0].sections.append(sec)
    return report


def measure_section(responses: Responses, reference: Reference, measure: UnitMeasure, *, against: str | None,
                    rng: RngLike, part: str, n_resamples: int, n_permutations: int, level: float,
                    metric: str = "js") -> Any:
    """The report section (:func:`robustalign.report.audit.association_section`) of :func:`audit_tradeoff`
    between each model's cultural fit and ``measure``, with the verdict on the claimed sign."""
    from robustalign._errors import SchemaError, preview
    from robustalign.report.audit import association_section

    unknown = sorted(set(measure.table["model"]) - set(map(str, responses.models)))
    if unknown:
        raise SchemaError(f"{measure.source}: models {preview(unknown)} are not in the responses (models there: "
                          f"{preview(list(map(str, responses.models)))}). Fix: name the models as the responses do.")
    group = measure.group
    if group is None and against is None:
        if len(reference.groups) != 1:
            raise SchemaError(f"{measure.source}: cultural fit needs one human group; the reference has "
                              f"{preview(list(reference.groups))}. Fix: pass --association-group GROUP (or set "
                              "[alignment] against in the design).")
        group = str(reference.groups[0])
    res = audit_tradeoff(responses, reference, measure.table, by=("model",), group=group,
                         against=None if group is not None else against, metric=metric, expect=measure.expect,
                         names=("cultural_fit", measure.name), confidence_level=level, n_resamples=n_resamples,
                         n_permutations=n_permutations, rng=rng)
    res.provenance["measure_source"] = measure.source
    return association_section(res, part=part, key="association")
