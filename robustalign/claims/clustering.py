"""E4: does the clustering of countries (or personas, models) on evaluated dimensions carry over to held-out ones?

Khan et al. (2025) cluster countries by k-means on a subset of the six Hofstede dimensions and compare the
result with the clustering on all six by the adjusted Rand index (ARI). The subset is part of the full
set, so part of the agreement is mechanical and nothing is held out. Here (METHODS 3.5, E4) the two
clusterings use *disjoint* dimension sets, evaluated and held-out, and

- k is fixed a priori (the same k for both sets; the silhouette of each clustering is reported: below
  about 0.25 the clusters carry little structure, which bounds what the ARI can mean);
- clustering is deterministic (Ward linkage on z-scored dimension scores), so no random restart enters
  the ARI;
- the null permutes the held-out dimension scores across units (each unit gets another unit's held-out
  profile), ``n_permutations`` >= 9,999 by default, ``p = (1 + b) / (1 + B)``;
- the interval is for the expected ARI at the study's item counts (units fixed): by default
  ``estimate +- z SE`` with the delete-d jackknife SE of half-samples of items within each dimension
  (:mod:`robustalign.resampling.subsample`); ``interval="percentile"`` gives the earlier percentile
  interval of item-bootstrap ARIs (errors rescaled by ``sqrt(n / (n - 1))`` and added to
  reliability-shrunk scores, then re-clustered). Their coverage in simulations is in docs/claims.md;
- units of different groups (e.g. personas simulated by different models, and real countries) are never
  pooled: ``by=`` gives one analysis per group, and ``reference=`` names the group (e.g. human countries)
  every other group's ARI is compared with.

Public names
------------
adjusted_rand_index
    Hubert & Arabie (1985) ARI of two labelings.
silhouette_score
    Mean silhouette width (Rousseeuw 1987), Euclidean.
assess_cluster_agreement
    The assessment: ARI with interval and permutation p-value per group, verdicts in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from os import PathLike

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist, squareform
from scipy.special import comb

from robustalign._errors import SchemaError, preview
from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_confidence_level
from robustalign.claims._base import AssessmentResult
from robustalign.multiplicity import adjust
from robustalign.resampling import nulls, subsample

__all__ = ["adjusted_rand_index", "assess_cluster_agreement", "silhouette_score"]


def _contingency_ari(codes_a: np.ndarray, ka: int, codes_b: np.ndarray, kb: int) -> np.ndarray:
    """ARI for each row of ``codes_b`` (rows x n) against ``codes_a`` (n,), labels coded 0..k-1."""
    codes_b = np.atleast_2d(codes_b)
    rows, n = codes_b.shape
    flat = (codes_a[None, :] * kb + codes_b + (ka * kb) * np.arange(rows)[:, None]).ravel()
    table = np.bincount(flat, minlength=rows * ka * kb).reshape(rows, ka, kb).astype(float)
    sum_ij = comb(table, 2).sum(axis=(1, 2))
    sum_a = comb(table.sum(2), 2).sum(1)
    sum_b = comb(table.sum(1), 2).sum(1)
    expected = sum_a * sum_b / comb(n, 2)
    top = 0.5 * (sum_a + sum_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        ari = (sum_ij - expected) / (top - expected)
    # both labelings trivial (one cluster each, or all singletons alike): identical partitions agree fully
    return np.where(top == expected, 1.0, ari)


def adjusted_rand_index(labels_a: ArrayLike, labels_b: ArrayLike) -> float:
    """Adjusted Rand index of two labelings of the same units (Hubert & Arabie 1985).

    ``ARI = (sum_ij C(n_ij, 2) - E) / ((sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2 - E)`` with
    ``E = sum_i C(a_i, 2) sum_j C(b_j, 2) / C(n, 2)``: 1 for identical partitions, 0 in expectation for
    independent ones, negative below chance.

    >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"the labelings must be 1-D, of equal length >= 2; got shapes {a.shape} and {b.shape}.")
    ca, ua = pd.factorize(a)
    cb, ub = pd.factorize(b)
    return float(_contingency_ari(ca, len(ua), cb, len(ub))[0])


def silhouette_score(X: ArrayLike, labels: ArrayLike) -> float:
    """Mean silhouette width ``(b - a) / max(a, b)`` over units, Euclidean distances; 0 for singletons."""
    X = np.asarray(X, float)
    codes, uniq = pd.factorize(np.asarray(labels))
    if not 2 <= len(uniq) <= len(X) - 1:
        return math.nan
    D = squareform(pdist(X))
    onehot = np.eye(len(uniq))[codes]
    sums = D @ onehot
    sizes = onehot.sum(0)
    own = sizes[codes]
    a = np.where(own > 1, sums[np.arange(len(X)), codes] / np.maximum(own - 1, 1), 0.0)
    other = np.where(onehot > 0, np.inf, sums / sizes)
    b = other.min(1)
    s = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(s.mean())


def _zscore(S: np.ndarray) -> np.ndarray:
    sd = S.std(axis=0, ddof=1)
    return (S - S.mean(0)) / np.where(sd > 0, sd, 1.0)


def _cut(Z: np.ndarray, n: int, k: int) -> np.ndarray:
    """Codes 0..k-1 of the ``k`` clusters left when the last ``k - 1`` merges of linkage ``Z`` are undone.

    The partition of ``fcluster(Z, k, "maxclust")`` for a monotone linkage such as Ward's (the tests check
    this), ten times faster, which matters inside the bootstrap and the simulations.
    """
    parent = np.arange(2 * n - 1)
    merged = Z[: n - k, :2].astype(np.intp)
    parent[merged[:, 0]] = parent[merged[:, 1]] = n + np.arange(n - k)
    root = parent[:n]
    for _ in range(n):  # follow each leaf to the root of its cluster
        up = parent[root]
        if np.array_equal(up, root):
            break
        root = up
    return np.unique(root, return_inverse=True)[1]


def _ward(S: np.ndarray, k: int) -> np.ndarray:
    """Ward clusters (codes 0..k-1) of the z-scored columns of ``S``."""
    return _cut(linkage(_zscore(S), method="ward"), len(S), k)


def _dimension_items(df: pd.DataFrame, units: list, dims: list, where: str) -> dict:
    """Per dimension, the units x items matrix of values (item means over repeated rows; NaN = not asked)."""
    ucode = pd.Index(units).get_indexer(df["unit"])
    dim, item, val = df["dimension"].to_numpy(), df["item"].to_numpy(), df["value"].to_numpy(float)
    out = {}
    for d in dims:
        m = dim == d
        if not m.any():
            raise SchemaError(f"{where}: dimension {d!r} has no rows. Dimensions present: "
                              f"{preview(sorted(df['dimension'].unique()))}.")
        icode, items = pd.factorize(item[m])
        cell = ucode[m] * len(items) + icode
        size = len(units) * len(items)
        n = np.bincount(cell, minlength=size).reshape(len(units), len(items))
        tot = np.bincount(cell, weights=val[m], minlength=size).reshape(len(units), len(items))
        empty = (n == 0).all(axis=1)
        if empty.any():
            raise SchemaError(f"{where}: units {[units[i] for i in np.flatnonzero(empty)[:5]]} have no value on "
                              f"dimension {d!r}. Fix: give every unit at least one item of every dimension, or "
                              "leave those units out.")
        with np.errstate(invalid="ignore", divide="ignore"):
            out[d] = np.where(n > 0, tot / np.maximum(n, 1), np.nan)
    return out


def _shrunk(M: np.ndarray) -> np.ndarray:
    """Each unit's score on a dimension shrunk towards the dimension mean by ``sqrt(reliability)``.

    The observed scores spread by the true-score variance plus the mean error variance
    ``mean_u(s_u^2 / n_u)``; scaling deviations by ``sqrt(1 - error / observed)`` leaves the spread of the
    true scores, so that adding resampled errors to them gives scores as noisy, relative to their
    structure, as the observed ones are relative to the truth.
    """
    n = np.isfinite(M).sum(axis=1)
    S = np.nanmean(M, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.nanvar(M, axis=1, ddof=1) / n
    err = np.where(n > 1, err, np.nan)
    total = S.var(ddof=1) if S.size > 1 else 0.0
    rel = 1.0 - np.nanmean(err) / total if total > 0 and np.isfinite(err).any() else 1.0
    return S.mean() + np.sqrt(float(np.clip(rel, 0.0, 1.0))) * (S - S.mean())


def _scores_from(idx, *, M, base):
    """Bootstrap dimension scores ``(rows, units)``: ``base`` plus each unit's resampled error, rescaled.

    The error is the resampled mean minus the unit's own score; a resampled mean of ``n`` items varies by
    ``(n - 1) / n`` times the error variance of a mean (a fifth too little with 5 items), so it is scaled
    up by ``sqrt(n / (n - 1))``. ``base`` are the shrunk scores (:func:`_shrunk`): a parametric-style
    bootstrap whose world has the data's structure and the data's noise.
    """
    X = M[:, idx]
    ok = np.isfinite(X)
    n = np.isfinite(M).sum(axis=1)
    own = np.nanmean(M, axis=1)
    scale = np.sqrt(np.where(n > 1, n / np.maximum(n - 1, 1), 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (np.where(ok, X, 0.0).sum(axis=2) / ok.sum(axis=2)).T
    return base + scale * (mean - own)


def _ari_from_scores(Se: np.ndarray, Sh: np.ndarray, k: int) -> float:
    return float(_contingency_ari(_ward(Se, k), k, _ward(Sh, k)[None, :], k)[0])


def _permuted_ari(perm, *, codes_e, codes_h, k):
    """ARI of the evaluated clustering with the held-out clustering of permuted units."""
    return _contingency_ari(codes_e, k, codes_h[perm], k)


def _half_scores(keep: np.ndarray, *, M: np.ndarray) -> np.ndarray:
    """Dimension scores ``(rows, units)`` from the kept items ``keep`` (``(rows, m)``) of ``M`` (units x items)."""
    X = M[:, keep]
    ok = np.isfinite(X)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, X, 0.0).sum(axis=2) / ok.sum(axis=2)).T


def _replicate_aris(scores: dict, dims: list, ne: int, k: int, n_resamples: int) -> np.ndarray:
    """ARI of each resample's dimension scores (NaN where a unit drew none of its items on a dimension)."""
    reps = np.full(n_resamples, np.nan)
    for b in range(n_resamples):
        Sb = np.column_stack([scores[d][b] for d in dims])
        if np.isfinite(Sb).all():  # else undefined, counted
            reps[b] = _ari_from_scores(Sb[:, :ne], Sb[:, ne:], k)
    return reps


def _resampled(mats: dict, dims: list, ne: int, k: int, ari: float, interval: str, n_resamples: int,
               rng: RngLike, group: str) -> np.ndarray:
    """Replicate ARIs of the interval method: bootstrap ARIs ("percentile"), or half-sample ARIs turned
    into pseudo-replicates ``ari + sqrt(f) (a_b - mean a)`` ("half-sample"), whose SD is the delete-d
    jackknife SE (``f`` = mean over dimensions of ``m / d``); NaN when a dimension has a single item."""
    if interval == "percentile":
        boot = {d: nulls.item_bootstrap(partial(_scores_from, M=m, base=_shrunk(m)), m.shape[1],
                                        n_resamples=n_resamples, rng=rng,
                                        key=("clustering.bootstrap", str(group), str(d))) for d, m in mats.items()}
        return _replicate_aris(boot, dims, ne, k, n_resamples)
    if min(m.shape[1] for m in mats.values()) < 2:
        return np.full(n_resamples, np.nan)
    half = {d: subsample.item_half_samples(partial(_half_scores, M=m), m.shape[1], n_resamples=n_resamples,
                                           rng=rng, key=("clustering.halfsample", str(group), str(d)))
            for d, m in mats.items()}
    a = _replicate_aris(half, dims, ne, k, n_resamples)
    f = float(np.mean([subsample.half_sample_factor(m.shape[1]) for m in mats.values()]))
    return ari + math.sqrt(f) * (a - np.nanmean(a)) if np.isfinite(a).sum() > 1 else a


def _one_group(df, group, evaluated, held_out, k, n_resamples, n_permutations, rng, where, interval):
    units = sorted(df["unit"].unique())
    if len(units) < 2 * k:
        raise ValueError(f"{where}: group {group!r} has {len(units)} units; k = {k} clusters need at least {2 * k}.")
    dims = [*evaluated, *held_out]
    mats = _dimension_items(df, units, dims, where)
    S = np.column_stack([np.nanmean(mats[d], axis=1) for d in dims])
    ne = len(evaluated)
    ce, ch = _ward(S[:, :ne], k), _ward(S[:, ne:], k)
    ari = float(_contingency_ari(ce, k, ch[None, :], k)[0])
    null, exact = nulls.label_permutations(partial(_permuted_ari, codes_e=ce, codes_h=ch, k=k), len(units),
                                           n_permutations=n_permutations, rng=rng,
                                           key=("clustering.null", str(group)))
    p = float(nulls.p_values([ari], null[:, None], "greater", scale=np.ones(1))[0])
    reps = _resampled(mats, dims, ne, k, ari, interval, n_resamples, rng, group) if n_resamples else \
        np.full(0, np.nan)
    row = {"group": group, "quantity": "ARI evaluated vs held-out clustering", "estimate": ari,
           "std_error": float(np.nanstd(reps, ddof=1)) if np.isfinite(reps).sum() > 1 else math.nan, "p_value": p,
           "null_mean": float(np.nanmean(null)), "exact_null": exact, "n_units": len(units), "k": k,
           "silhouette_evaluated": silhouette_score(_zscore(S[:, :ne]), ce),
           "silhouette_held_out": silhouette_score(_zscore(S[:, ne:]), ch),
           "n_items": int(sum(m.shape[1] for m in mats.values())),
           "min_items_per_dimension": int(min(m.shape[1] for m in mats.values())),
           "n_undefined_resamples": int(np.isnan(reps).sum())}
    clusters = pd.DataFrame({"group": group, "unit": units, "cluster_evaluated": ce, "cluster_held_out": ch})
    return row, reps, clusters


_NOTES = {"percentile": ("bootstrap of items within dimension (rescaled errors on shrunk scores)",
                          "bootstrap of items within dimension, both groups (rescaled errors on shrunk scores)"),
          "half-sample": ("estimate +- z SE, SE by the delete-d jackknife of items within dimension (half-samples)",
                          "estimate +- z SE, SEs of the two groups' half-sample jackknifes combined")}


def _frame_at(ev: dict, level: float) -> pd.DataFrame:
    """The interval for the expected ARI at the study's item counts (units fixed), at ``level``.

    Estimand: the mean ARI over new draws of the same number of items per dimension for these units
    (``E_n``). ``ev["interval"]`` is "half-sample" (default): ``estimate +- z SE`` with the delete-d
    jackknife SE of half-samples of items (:func:`_resampled`), or "percentile": the percentile interval of
    item-bootstrap ARIs on reliability-shrunk scores, with ``bootstrap_bias`` (mean replicate minus
    estimate). Their coverage in the simulations of docs/claims.md (E4) is tabulated there; the ARI of
    infinitely many items is covered by neither.
    """
    f = ev["table"].copy()
    method = ev.get("interval", "percentile")
    R = ev["reps"]
    q = np.full((2, R.shape[1]), np.nan)
    se = np.full(R.shape[1], np.nan)
    ok = np.isfinite(R).sum(0) > 1
    est = f["estimate"].to_numpy(float)
    if ok.any():
        with np.errstate(invalid="ignore"):
            se[ok] = np.nanstd(R[:, ok], axis=0, ddof=1)
            if method == "percentile":
                a = (1 - level) / 2
                q[:, ok] = np.nanquantile(R[:, ok], [a, 1 - a], axis=0)
                f["bootstrap_bias"] = np.where(ok, np.nanmean(np.where(np.isfinite(R), R, np.nan), axis=0),
                                               np.nan) - est
    diff = f["quantity"].str.startswith("ARI difference").to_numpy()
    if method != "percentile":
        z = float(stats.norm.ppf(0.5 + level / 2))
        q = np.vstack([est - z * se, np.where(diff, est + z * se, np.minimum(est + z * se, 1.0))])  # ARI <= 1
    f["std_error"] = se
    f["conf_low"], f["conf_high"], f["conf_level"] = q[0], q[1], level
    f["method"] = "percentile" if method == "percentile" else "wald"  # estimate +- z SE (method_note: which SE)
    one, two = _NOTES[method]
    f["method_note"] = np.where(diff, two, one + "; permutation of held-out profiles across units")
    f["estimand"] = "expected ARI at the study's item counts (units fixed)"
    f["units"] = "adjusted Rand index"
    return f


def _verdict(r, alpha: float, min_ari: float) -> tuple[str, str]:
    ci = f"{r['estimate']:.2f} [{r['conf_low']:.2f}, {r['conf_high']:.2f}]"
    p = r["p_adjusted"]
    if p < alpha and r["conf_low"] > 0:
        v, why = "supported", f"ARI {ci} beats its permutation null (adjusted p = {p:.3g})"
    elif p >= alpha and r["conf_high"] < min_ari:
        v, why = "not supported", f"ARI {ci}: agreement below {min_ari:g} (adjusted p = {p:.3g})"
    else:
        v, why = "inconclusive", f"ARI {ci}, adjusted p = {p:.3g}"
    sil = min(r["silhouette_evaluated"], r["silhouette_held_out"])
    if sil < 0.25:
        why += f"; silhouette {sil:.2f} < 0.25: the clusters carry little structure, so the ARI means little"
    return v, f"{r['group']}: clustering on the evaluated dimensions -> held-out dimensions: {why}"


def _prepare(data, unit, dimension, item, value, by, source):
    if not isinstance(data, pd.DataFrame):
        source = source or str(data)
        data = pd.read_csv(data)
    where = source or "<DataFrame>"
    cols = {"unit": unit, "dimension": dimension, "item": item, "value": value, **({"group": by} if by else {})}
    absent = [c for c in cols.values() if c not in data.columns]
    if absent:
        raise SchemaError(f"{where}: missing column(s) {absent}; columns present: {preview(list(data.columns), 12)}. "
                          "Fix: pass unit=, dimension=, item=, value= (and by=) naming your columns.")
    df = pd.DataFrame({k: data[v] for k, v in cols.items()})
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    gone = int(df["value"].isna().sum())
    df = df.dropna(subset=["value"])
    if "group" not in df:
        df["group"] = "all"
    for c in ("unit", "dimension", "item", "group"):
        df[c] = df[c].astype(str)
    return df, where, gone


def assess_cluster_agreement(data: pd.DataFrame | str | PathLike, *, evaluated: Sequence[str],
                             held_out: Sequence[str], k: int, unit: str = "country",
                             dimension: str = "dimension", item: str = "item", value: str = "value",
                             by: str | None = None, reference: str | None = None, n_resamples: int = 1000,
                             n_permutations: int = 9999, alpha: float = 0.05, min_ari: float = 0.2,
                             confidence_level: float = 0.95, interval: str = "half-sample", rng: RngLike = None,
                             source: str | None = None) -> AssessmentResult:
    """E4: agreement (ARI) between the clustering of units on evaluated and on held-out dimensions.

    Parameters
    ----------
    data : DataFrame or CSV path
        Long table: one row per unit x item (``unit``, ``dimension`` the item belongs to, ``item``,
        numeric ``value`` oriented so that a dimension score is the mean of its items). Rows with a
        non-numeric value are excluded and counted in the provenance.
    evaluated, held_out : lists of dimensions
        Disjoint sets.
    k : int
        Number of clusters, fixed a priori (for both sets).
    by : column, optional
        One analysis per group (e.g. "source": human countries and each model's personas): units of
        different groups are never clustered together.
    reference : str, optional
        A group (e.g. "human") whose ARI every other group's is compared with (difference and interval).
    min_ari : float
        The claim "the clustering carries over" is *not supported* when the permutation test does not reject
        and the ARI interval lies below it.
    interval : "half-sample" or "percentile"
        The interval for the expected ARI at the study's item counts: "half-sample" (default), the
        estimate +- z SE with the delete-d jackknife SE of half-samples of items within dimension (needs
        at least 2 items per dimension, else no interval); "percentile", the percentile interval of an
        item bootstrap on reliability-shrunk scores (the earlier default). Coverage of both in
        docs/claims.md (E4).
    """
    evaluated, held_out = [str(d) for d in evaluated], [str(d) for d in held_out]
    if set(evaluated) & set(held_out) or not evaluated or not held_out:
        raise ValueError(f"`evaluated` {evaluated} and `held_out` {held_out} must be non-empty and disjoint: a "
                         "held-out dimension that is also evaluated makes part of the agreement mechanical.")
    if int(k) < 2:
        raise ValueError(f"`k` must be at least 2 clusters; got {k}.")
    level = check_confidence_level(confidence_level)
    if interval not in _NOTES:
        raise ValueError(f"`interval` must be one of {list(_NOTES)}; got {interval!r}.")
    df, where, gone = _prepare(data, unit, dimension, item, value, by, source)
    groups = sorted(df["group"].unique())
    if reference is not None and reference not in groups:
        raise ValueError(f"`reference` {reference!r} is not a group of column {by!r}: {preview(groups)}.")
    rows, reps, clusters = [], [], []
    for g, sub in df.groupby("group", sort=True):
        r, rep, cl = _one_group(sub, g, evaluated, held_out, int(k), n_resamples,
                                n_permutations, rng, where, interval)
        rows.append(r)
        reps.append(rep)
        clusters.append(cl)
    table = pd.DataFrame(rows)
    table["p_adjusted"] = adjust(table["p_value"].to_numpy(), "fdr_bh")
    table["adjust_method"], table["family"] = "fdr_bh", "E4 groups"
    R = np.column_stack(reps)
    if reference is not None:
        i = groups.index(reference)
        diffs = [{"group": g, "reference": reference, "quantity": "ARI difference from reference",
                  "estimate": table.loc[j, "estimate"] - table.loc[i, "estimate"], "n_items": table.loc[j, "n_items"]}
                 for j, g in enumerate(groups) if j != i]
        Rd = np.column_stack([R[:, j] - R[:, i] for j in range(len(groups)) if j != i]) if diffs else R[:, :0]
        table = pd.concat([table, pd.DataFrame(diffs)], ignore_index=True)
        R = np.column_stack([R, Rd])
    ev = {"table": table, "reps": R, "clusters": pd.concat(clusters, ignore_index=True), "interval": interval}
    frame = _frame_at(ev, level)
    main = frame[frame["quantity"].str.startswith("ARI evaluated")]
    verdicts = pd.DataFrame([{"group": r["group"], **dict(zip(("verdict", "reason"), _verdict(r, alpha, min_ari))),
                              "n_needed": math.nan} for _, r in main.iterrows()])
    _, record = as_generator(rng)
    prov = {"rng": record.to_dict(), "interval": interval, "n_resamples": n_resamples,
            "n_permutations": n_permutations, "k": int(k),
            "evaluated": evaluated, "held_out": held_out, "clustering": "Ward linkage on z-scored dimension scores",
            "excluded_rows": {"non-numeric or empty value": gone}, "source": where}
    return AssessmentResult(kind="extrapolability (E4 clustering)", verdicts=verdicts, evidence=ev,
                            provenance=prov, confidence_level=level, build=partial(_frame_at, ev))
