"""Accuracy against a gold answer per culture: the claims of NormAd-, BLEnD- and CulturalBench-style benchmarks.

Each response is scored right (1) or wrong (0) against a gold answer for a culture (country, region),
optionally at an ordered *context level* (e.g. NormAd's rule-of-thumb > value > country-only context).
The estimands are item-population accuracies: an item (question, story) is the sampling unit, so every
interval resamples items and keeps all rows of a drawn item together (models, samples, context levels,
cultures that share the item). Items nested in cultures are resampled within their culture.

Public names
------------
load_correctness
    Checks a long table (or CSV) of scored responses, scores ``answer`` against ``gold`` when asked,
    and returns :class:`CorrectnessData` with the exclusion log.
assess_accuracy
    Accuracy per model x culture (x context) with item-clustered intervals (Wilson for tiny cells),
    paired model differences, culture-group contrasts as claims, and the context-level effect as a
    stability assessment; every claim gets a verdict in words and the items it would need.
accuracy_report
    The report entry: the estimates table and the verdict rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import combinations
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from robustalign._errors import SchemaError, preview
from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_confidence_level
from robustalign.claims._base import AssessmentResult
from robustalign.multiplicity import adjust
from robustalign.power import n_for_equivalence, n_for_mde
from robustalign.resampling import nulls

__all__ = ["CorrectnessData", "accuracy_audit_report", "accuracy_report", "assess_accuracy", "load_correctness", "wilson_interval"]

TRUE_TEXT = {"1", "1.0", "true", "t", "yes", "y", "correct"}
FALSE_TEXT = {"0", "0.0", "false", "f", "no", "n", "incorrect", "wrong"}
UNITS = "share of correct answers"


@dataclass
class CorrectnessData:
    """Checked scored responses: ``frame`` has columns model, item, culture, [context], [sample], correct (0/1).

    ``exclusions`` counts every row left out, by reason; ``context_order`` lists the context levels from
    the first to the last (``None`` without a context column); ``source`` names the input.
    """

    frame: pd.DataFrame
    exclusions: pd.DataFrame
    context_order: list | None
    source: str
    recoded: dict = field(default_factory=dict)


def _read(data, source):
    if isinstance(data, pd.DataFrame):
        return data.copy(), source or "<DataFrame>"
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file. Pass a CSV of scored responses or a DataFrame.")
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]), source or str(path)


def _as_correct(col: pd.Series, where: str) -> pd.Series:
    """0/1 (or True/False, yes/no, correct/incorrect) -> float; NaN stays NaN; anything else is an error."""
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        x = col.astype(float)
        bad = x.notna() & ~x.isin([0.0, 1.0])
    else:
        text = col.astype("string").str.strip().str.lower()
        x = pd.Series(np.where(text.isin(TRUE_TEXT), 1.0, np.where(text.isin(FALSE_TEXT), 0.0, np.nan)),
                      index=col.index)
        bad = text.notna() & x.isna()
    if bad.any():
        rows = list(col.index[bad][:5])
        raise SchemaError(
            f"{where}: column 'correct' must be 0/1 (or true/false); rows {rows} hold "
            f"{preview(list(col[bad].unique()))}. Fix: score those answers, or leave the cell empty to exclude "
            "the row (it is counted in the exclusion log).")
    return x


def _score(df: pd.DataFrame, where: str, missing: str) -> tuple[pd.Series, dict]:
    """``correct`` from answer == gold (case and surrounding space ignored; ``|`` separates accepted golds)."""
    if df["gold"].isna().any():
        rows = list(df.index[df["gold"].isna()][:5])
        raise SchemaError(f"{where}: column 'gold' is empty in rows {rows}. Fix: give the gold answer for "
                          "every item, or drop those items before loading.")
    ans = df["answer"].astype("string").str.strip().str.casefold()
    golds = df["gold"].astype(str).str.split("|")
    hit = [a in {g.strip().casefold() for g in gs} for a, gs in zip(ans.fillna(""), golds)]
    correct = pd.Series(np.where(hit, 1.0, 0.0), index=df.index)
    no_answer = ans.isna() | (ans == "")
    if missing == "wrong":
        return correct, {"no answer scored as wrong": int(no_answer.sum())}
    return correct.where(~no_answer), {}


def _context_order(col: pd.Series, context_order, where: str) -> list:
    if context_order is None:
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered:
            return list(col.cat.categories)
        raise ValueError(f"{where}: the context column needs an order. Pass context_order=[first, ..., last] "
                         f"(levels seen: {preview(list(col.dropna().unique()))}).")
    order = list(context_order)
    unknown = sorted(set(col.dropna().astype(str)) - {str(c) for c in order})
    if unknown:
        raise SchemaError(f"{where}: context levels {preview(unknown)} are not in context_order={order}. "
                          "Fix: add them to context_order or drop those rows.")
    return order


def load_correctness(data: pd.DataFrame | str | PathLike, *, model: str = "model", item: str = "item",
                     culture: str = "culture", correct: str = "correct", answer: str = "answer", gold: str = "gold",
                     context: str | None = None, context_order: Sequence[str] | None = None,
                     sample: str | None = None,
                     missing: str = "exclude", source: str | None = None) -> CorrectnessData:
    """Check a long table of scored responses (a DataFrame or a CSV path; CSVs are read as text).

    One row per model x item x culture [x context] [x sample]. ``correct`` is 0/1; without it, ``answer``
    and ``gold`` are compared (case-insensitive, ``|`` separates several accepted gold answers). A row with
    no score (empty ``correct``, or no answer with ``missing="exclude"``) is excluded and counted;
    ``missing="wrong"`` scores an empty answer as wrong and counts that recoding. Duplicated keys, unknown
    context levels and scores other than 0/1 raise :class:`SchemaError` naming the rows and the fix.
    """
    if missing not in ("exclude", "wrong"):
        raise ValueError(f"`missing` must be 'exclude' or 'wrong'; got {missing!r}.")
    df, where = _read(data, source)
    names = {"model": model, "item": item, "culture": culture, "context": context, "sample": sample}
    need = [v for k, v in names.items() if v is not None]
    scored = correct in df.columns
    need += [correct] if scored else [answer, gold]
    absent = [c for c in need if c not in df.columns]
    if absent:
        raise SchemaError(f"{where}: missing column(s) {absent}; columns present: {preview(list(df.columns), 12)}. "
                          f"Fix: rename them or pass e.g. culture='country'; give '{correct}' (0/1) or "
                          f"'{answer}' and '{gold}' to be scored.")
    out = pd.DataFrame({k: df[v] for k, v in names.items() if v is not None})
    recoded: dict = {}
    if scored:
        out["correct"] = _as_correct(df[correct], where)
    else:
        out["correct"], recoded = _score(df.rename(columns={answer: "answer", gold: "gold"}), where, missing)
    keys = [k for k in ("model", "item", "culture", "context", "sample") if k in out.columns]
    for k in keys:
        if out[k].isna().any():
            raise SchemaError(f"{where}: column '{names[k]}' is empty in rows {list(out.index[out[k].isna()][:5])}. "
                              "Fix: fill it in or drop those rows.")
    order = _context_order(out["context"], context_order, where) if "context" in out else None
    dup = out.duplicated(keys, keep=False)
    if dup.any():
        raise SchemaError(f"{where}: {int(dup.sum())} rows repeat the same {keys}, e.g. rows "
                          f"{list(out.index[dup][:4])}. Fix: give repeated answers a 'sample' column "
                          "(sample=...) or remove the copies.")
    gone = out["correct"].isna()
    excl = pd.DataFrame({"reason": ["no score (empty correct or empty answer)"], "n_rows": [int(gone.sum())],
                         "example_rows": [list(out.index[gone][:5])]})
    frame = out.loc[~gone].reset_index(drop=True)
    for k in ("model", "item", "culture"):
        frame[k] = frame[k].astype(str)
    return CorrectnessData(frame, excl, order, where, recoded)


def wilson_interval(count: ArrayLike, nobs: ArrayLike, confidence_level: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (statsmodels' ``proportion_confint(method="wilson")``), vectorised."""
    count, nobs = np.asarray(count, float), np.asarray(nobs, float)
    z = stats.norm.ppf(0.5 + confidence_level / 2)
    p = count / nobs
    centre = (p + z * z / (2 * nobs)) / (1 + z * z / nobs)
    half = z / (1 + z * z / nobs) * np.sqrt(p * (1 - p) / nobs + z * z / (4 * nobs * nobs))
    return centre - half, centre + half


# --------------------------------------------------------------------------------------------------
# per-item table and the item-clustered bootstrap
# --------------------------------------------------------------------------------------------------
def _counts_times(idx, *, values, present, n):
    """Numerator and denominator sums of a resample given as item indices (rows x n)."""
    rows = idx.shape[0]
    counts = np.bincount((idx + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n).reshape(rows, n)
    counts = counts.astype(float)
    return np.stack([counts @ values, counts @ present], axis=1)  # (rows, 2, cells)


def _bootstrap_means(A: np.ndarray, strata: np.ndarray, *, n_resamples: int, rng, key: tuple) -> np.ndarray:
    """Replicates ``(B, cells)`` of the item-mean of each column of ``A``, items resampled within strata."""
    present = np.isfinite(A).astype(float)
    values = np.where(present > 0, A, 0.0)
    num = np.zeros((n_resamples, A.shape[1]))
    den = np.zeros_like(num)
    for s in pd.unique(strata):
        rows = np.flatnonzero(strata == s)
        cols = np.flatnonzero(present[rows].any(0))  # only the cells this stratum has data for
        stat = partial(_counts_times, values=values[np.ix_(rows, cols)], present=present[np.ix_(rows, cols)],
                       n=len(rows))
        out = nulls.item_bootstrap(stat, len(rows), n_resamples=n_resamples, rng=rng, key=(*key, str(s)))
        num[:, cols] += out[:, 0]
        den[:, cols] += out[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _col_mean(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(A)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, A, 0).sum(0) / ok.sum(0), ok.sum(0)


def _interval(reps: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - level) / 2
    if reps.shape[1] == 0:
        return np.empty(0), np.empty(0)
    if np.isfinite(reps).all():
        q = np.quantile(reps, [a, 1 - a], axis=0)
    else:
        with np.errstate(invalid="ignore"):
            q = np.nanquantile(reps, [a, 1 - a], axis=0)
    return q[0], q[1]


def _sign_flip_p(D: np.ndarray, *, n_permutations: int, rng, key: tuple) -> np.ndarray:
    """Two-sided sign-flip p-value of the mean of each column of per-item differences ``D`` (NaN = absent)."""
    ok = np.isfinite(D)
    d0 = np.where(ok, D, 0.0)
    n = ok.sum(0)
    obs = d0.sum(0) / np.maximum(n, 1)
    null = nulls.sign_flips(lambda s: (s @ d0) / np.maximum(n, 1), D.shape[0], n_permutations=n_permutations,
                            rng=rng, key=key)
    return nulls.p_values(obs, null, "two-sided", scale=np.full(obs.shape, 1.0))


# --------------------------------------------------------------------------------------------------
# the columns analysed: accuracy cells, paired model differences, context contrasts
# --------------------------------------------------------------------------------------------------
ALL = "(all)"


def _cells(frame: pd.DataFrame, has_context: bool) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Per-item accuracy for every model x culture (and pooled "(all)") [x context, and pooled]."""
    parts = [frame, frame.assign(culture=ALL)]
    if has_context:
        parts += [p.assign(context=ALL) for p in parts]
    long = pd.concat(parts, ignore_index=True).astype({"culture": str})
    if has_context:
        long["context"] = long["context"].astype(str)
    keys = ["model", "culture", *(["context"] if has_context else [])]
    per = long.groupby(["item", *keys], sort=True)["correct"].mean().unstack(keys)
    cells = per.columns.to_frame(index=False).astype(object)
    home = frame.groupby("item")["culture"].nunique()
    first = frame.groupby("item")["culture"].first().reindex(per.index)
    strata = first.to_numpy() if bool((home == 1).all()) else np.zeros(len(per), dtype=int)
    return per.to_numpy(float), cells, strata


def _col(cells: pd.DataFrame, **want) -> int | None:
    """Column of the cell with these labels (a dict lookup, built once per cells table)."""
    keys = [k for k in ("model", "culture", "context") if k in cells]
    lookup = cells.attrs.get("lookup")
    if lookup is None:
        lookup = {tuple(str(v) for v in row): i for i, row in enumerate(cells[keys].itertuples(index=False))}
        cells.attrs["lookup"] = lookup
    return lookup.get(tuple(str(want.get(k, ALL)) for k in keys))


def _contrasts(A, cells, models, cultures, order, pairs):
    """Per-item differences: every model pair on every culture, and each model's context-level contrasts."""
    cols, labels = [], []
    ctx = {"context": ALL} if order else {}
    for a, b in (combinations(models, 2) if pairs == "all" else pairs):
        for c in [ALL, *cultures]:
            i, j = _col(cells, model=a, culture=c, **ctx), _col(cells, model=b, culture=c, **ctx)
            if i is not None and j is not None:
                cols.append(A[:, i] - A[:, j])
                labels.append({"quantity": "paired difference", "model": a, "model_b": b, "culture": c})
    pairs = [(order[k], order[k + 1]) for k in range(len(order or []) - 1)]
    if order and len(order) > 2:
        pairs.append((order[0], order[-1]))
    for m in models:
        for la, lb in pairs:
            i, j = _col(cells, model=m, culture=ALL, context=lb), _col(cells, model=m, culture=ALL, context=la)
            if i is not None and j is not None:
                cols.append(A[:, i] - A[:, j])
                labels.append({"quantity": "context effect", "model": m, "culture": ALL,
                               "level_a": str(la), "level_b": str(lb)})
    D = np.column_stack(cols) if cols else np.empty((A.shape[0], 0))
    return D, pd.DataFrame(labels)


def _group_contrasts(acc, reps, cells, models, groups, order, n_permutations, rng):
    """Difference of group means of culture accuracies per model: item-bootstrap reps and a culture-label
    permutation p-value (exact when few cultures)."""
    (ga, ca), (gb, cb) = list(groups.items())
    rows, rep_cols = [], []
    ctx = {"context": ALL} if order else {}
    for m in models:
        idx = [_col(cells, model=m, culture=c, **ctx) for c in [*ca, *cb]]
        if any(i is None for i in idx) or len(ca) == 0 or len(cb) == 0:
            continue
        x, R = acc[idx], reps[:, idx]
        na = len(ca)
        est = x[:na].mean() - x[na:].mean()
        null, exact = nulls.label_permutations(partial(_group_diff, x=x, na=na), len(x),
                                               n_permutations=n_permutations, rng=rng,
                                               key=("accuracy.group_contrast", m))
        p = nulls.p_values([est], null[:, None], "two-sided", scale=np.ones(1))[0]
        rows.append({"quantity": "group contrast", "model": m, "culture": ALL, "group_a": ga, "group_b": gb,
                     "estimate": est, "p_value": p, "n_cultures": int(len(x)), "exact_null": exact,
                     "min_p": nulls.p_values([np.nanmax(np.abs(null))], null[:, None], "two-sided",
                                             scale=np.ones(1))[0]})
        rep_cols.append(R[:, :na].mean(1) - R[:, na:].mean(1))
    reps_g = np.column_stack(rep_cols) if rep_cols else np.empty((reps.shape[0], 0))
    return pd.DataFrame(rows), reps_g


def _group_diff(perm, *, x, na):
    y = x[perm]
    return y[:, :na].mean(1) - y[:, na:].mean(1)


# --------------------------------------------------------------------------------------------------
# verdicts
# --------------------------------------------------------------------------------------------------
def _items_needed(est: float, se: float, n: int, alpha: float) -> float:
    """Items for 80% power to detect ``est`` when the standard error with ``n`` items is ``se``."""
    if not (np.isfinite(est) and np.isfinite(se)) or se <= 0:
        return math.nan
    return n_for_mde(abs(est), sd=se * math.sqrt(n), alpha=alpha)


def _fmt(r) -> str:
    return f"{r['estimate']:+.3f} [{r['conf_low']:+.3f}, {r['conf_high']:+.3f}]"


def _verdict_difference(r, alpha, margin, what):
    """Paired model difference or group contrast: a difference exists (supported) / is below the margin."""
    p = r["p_adjusted"] if np.isfinite(r.get("p_adjusted", np.nan)) else r["p_value"]
    ci_excl = r["conf_low"] > 0 or r["conf_high"] < 0
    if p < alpha and ci_excl:
        v, why = "supported", f"{what}: {_fmt(r)}, p = {p:.3g}"
    elif r["conf_low"] > -margin and r["conf_high"] < margin:
        v, why = "not supported", f"{what}: {_fmt(r)} lies within ±{margin:g}, p = {p:.3g}"
    else:
        v, why = "inconclusive", f"{what}: {_fmt(r)}, p = {p:.3g}"
    n_needed = math.nan
    if v == "inconclusive":
        n_needed = _items_needed(r["estimate"], r["std_error"], r["n_items"], alpha)
        why += f"; about {n_needed:g} items would detect a difference of this size at 80% power"
        if r.get("min_p", 0) >= alpha:
            why += f" (but with {int(r['n_cultures'])} cultures the culture permutation test cannot reach p < {alpha:g}:" \
                   " more cultures are needed, not more items)"
    return v, why, n_needed


def _verdict_context(rows: pd.DataFrame, alpha, margin, model):
    """Stability of accuracy across context levels for one model."""
    worst = rows.loc[rows["estimate"].abs().idxmax()]
    if ((rows["conf_low"] > -margin) & (rows["conf_high"] < margin)).all():
        return "supported", (f"{model}: accuracy is stable across context levels: every contrast lies within "
                             f"±{margin:g}; largest {worst['level_a']} -> {worst['level_b']} {_fmt(worst)}"), math.nan
    sig = rows[(rows["p_adjusted"] < alpha) & ((rows["conf_low"] > 0) | (rows["conf_high"] < 0))]
    if len(sig):
        r = sig.loc[sig["estimate"].abs().idxmax()]
        return "not supported", (f"{model}: accuracy changes with context, {r['level_a']} -> {r['level_b']} "
                                 f"{_fmt(r)}, Holm p = {r['p_adjusted']:.3g}"), math.nan
    sd = float(worst["std_error"]) * math.sqrt(worst["n_items"])
    if worst["conf_low"] > 0 or worst["conf_high"] < 0:
        need = _items_needed(worst["estimate"], worst["std_error"], worst["n_items"], alpha)
        goal = "would detect an effect of this size at 80% power (after the Holm adjustment it is not shown)"
    else:
        need = n_for_equivalence(sd, margin, theta=0.0, alpha=alpha) if sd > 0 else math.nan
        goal = f"would show |effect| < {margin:g} if there is none"
    return "inconclusive", (f"{model}: context effect neither shown nor excluded; largest {worst['level_a']} -> "
                            f"{worst['level_b']} {_fmt(worst)}; about {need:g} items {goal}"), need


def _verdicts(frame: pd.DataFrame, alpha: float, margin: float) -> pd.DataFrame:
    out = []
    for _, r in frame[(frame["quantity"] == "paired difference") & (frame["culture"] == ALL)].iterrows():
        v, why, need = _verdict_difference(r, alpha, margin, f"{r['model']} - {r['model_b']} accuracy, all cultures")
        out.append({"claim": "models differ in accuracy", "model": r["model"], "model_b": r["model_b"],
                    "verdict": v, "reason": why, "n_needed": need})
    for _, r in frame[frame["quantity"] == "group contrast"].iterrows():
        what = f"{r['model']}: accuracy on {r['group_a']} minus {r['group_b']} cultures"
        v, why, need = _verdict_difference(r, alpha, margin, what)
        out.append({"claim": f"accuracy differs between {r['group_a']} and {r['group_b']} cultures",
                    "model": r["model"], "verdict": v, "reason": why, "n_needed": need})
    ctx = frame[frame["quantity"] == "context effect"]
    for m, rows in ctx.groupby("model", sort=False):
        v, why, need = _verdict_context(rows, alpha, margin, m)
        out.append({"claim": "accuracy is stable across context levels", "model": m, "verdict": v,
                    "reason": why, "n_needed": need})
    cols = ["claim", "model", "model_b", "verdict", "reason", "n_needed"]
    return pd.DataFrame(out).reindex(columns=cols)


# --------------------------------------------------------------------------------------------------
# the assessment
# --------------------------------------------------------------------------------------------------
def _frame_at(ev: dict, level: float) -> pd.DataFrame:
    """The estimates table at ``level`` from the stored replicates (no resampling)."""
    parts = []
    for name in ("cells", "contrasts", "groups"):
        base, reps = ev[name], ev[f"{name}_reps"]
        if base.empty:
            continue
        f = base.copy()
        f["conf_low"], f["conf_high"] = _interval(reps, level)
        if name == "cells":
            wl, wh = wilson_interval(f["estimate"] * f["n_items"], f["n_items"], level)
            f["wilson_low"], f["wilson_high"] = wl, wh
            tiny = (f["n_items"] < ev["small_cell"]).to_numpy()
            f.loc[tiny, ["conf_low", "conf_high"]] = np.column_stack([wl, wh])[tiny]
            f["method"] = np.where(tiny, "wilson", "percentile")
            f["method_note"] = np.where(tiny, "items as trials; tiny cell", "item cluster bootstrap")
        parts.append(f)
    f = pd.concat(parts, ignore_index=True)
    f["conf_level"], f["units"] = level, UNITS
    return f


def _p_adjust(contrasts: pd.DataFrame) -> pd.DataFrame:
    c = contrasts.copy()
    c["p_adjusted"], c["adjust_method"], c["family"] = np.nan, "", ""
    for q, method in (("paired difference", "fdr_bh"), ("context effect", "holm")):
        sub = c[c["quantity"] == q]
        by = sub["model"] if q == "context effect" else np.where(sub["culture"] == ALL, "all cultures", "per culture")
        for m, idx in sub.groupby(by).groups.items():
            c.loc[idx, "p_adjusted"] = adjust(c.loc[idx, "p_value"].to_numpy(), method)
            c.loc[idx, "adjust_method"] = method
            c.loc[idx, "family"] = f"{q}s of {m}" if q == "context effect" else f"paired differences, {m}"
    return c


def assess_accuracy(data: CorrectnessData | pd.DataFrame | str | PathLike, *, groups: dict | None = None,
                    pairs: str | Sequence[tuple[str, str]] = "all", margin: float = 0.05, alpha: float = 0.05,
                    small_cell: int = 20, n_resamples: int = 2000, n_permutations: int = 9999,
                    confidence_level: float = 0.95, rng: RngLike = None, **load_kwargs: Any) -> AssessmentResult:
    """Accuracy per culture with item-clustered intervals, and the benchmark's claims with verdicts.

    Parameters
    ----------
    data : CorrectnessData, DataFrame or CSV path
        Scored responses (see :func:`load_correctness`; ``load_kwargs`` go there).
    groups : {name_a: [cultures], name_b: [cultures]}, optional
        Two culture groups for the claim "models do better on group a than on group b": the difference
        of the groups' mean culture accuracy, an item-bootstrap interval (cultures fixed) and a permutation
        test of culture labels between the groups (cultures exchangeable; exact when there are few).
    pairs : "all" or list of (model_a, model_b)
        The model pairs whose paired difference (same items) is estimated and tested; ``[]`` for none.
    margin : float
        Differences smaller than this (accuracy points) count as no difference: a paired difference or
        contrast whose interval lies inside ``±margin`` is "not supported"; context effects all inside it
        make accuracy "stable".
    small_cell : int
        Cells with fewer items get the Wilson interval (items as trials) instead of the bootstrap one.
    rng : seed
        Recorded; every unit draws from its own keyed stream.
    """
    d = data if isinstance(data, CorrectnessData) else load_correctness(data, **load_kwargs)
    level = check_confidence_level(confidence_level)
    frame, order = d.frame, d.context_order
    A, cells, strata = _cells(frame, order is not None)
    models = sorted(frame["model"].unique())
    cultures = sorted(frame["culture"].unique())
    if pairs != "all":
        named = [tuple(str(m) for m in pr) for pr in pairs]
        unknown = sorted({m for pr in named for m in pr} - set(models))
        if unknown or any(len(pr) != 2 for pr in named):
            raise ValueError(f"`pairs` must be 'all' or a list of (model_a, model_b) of models in the data; unknown "
                             f"{preview(unknown)}; models present: {preview(models, 10)}.")
        pairs = [(a, b) for a, b in named]
    D, clabels = _contrasts(A, cells, models, cultures, order, pairs)
    R = _bootstrap_means(np.column_stack([A, D]), strata, n_resamples=n_resamples, rng=rng,
                         key=("accuracy.bootstrap",))
    acc, n_items = _col_mean(A)
    cells_f = cells.assign(quantity="accuracy", estimate=acc, n_items=n_items,
                           std_error=np.nanstd(R[:, : A.shape[1]], axis=0, ddof=1))
    ev = {"cells": cells_f, "cells_reps": R[:, : A.shape[1]], "small_cell": small_cell,
          "contrasts": pd.DataFrame(), "contrasts_reps": R[:, A.shape[1]:], "groups": pd.DataFrame(),
          "groups_reps": np.empty((n_resamples, 0))}
    if D.shape[1]:
        est, n = _col_mean(D)
        p = _sign_flip_p(D, n_permutations=n_permutations, rng=rng, key=("accuracy.sign_flip",))
        ev["contrasts"] = _p_adjust(clabels.assign(estimate=est, n_items=n, p_value=p,
                                                   std_error=np.nanstd(R[:, A.shape[1]:], axis=0, ddof=1),
                                                   method="percentile",
                                                   method_note="item cluster bootstrap; sign-flip test"))
    if groups:
        if len(groups) != 2:
            raise ValueError(f"`groups` must name exactly two culture groups; got {list(groups)}.")
        unknown = sorted({str(c) for cs in groups.values() for c in cs} - set(cultures))
        if unknown:
            raise ValueError(f"`groups` names cultures not in the data: {preview(unknown)}; cultures present: "
                             f"{preview(cultures, 10)}.")
        g, gr = _group_contrasts(acc, R[:, : A.shape[1]], cells, models,
                                 {k: [str(c) for c in v] for k, v in groups.items()}, order, n_permutations, rng)
        if len(g):
            g["std_error"] = np.nanstd(gr, axis=0, ddof=1)
            g["n_items"] = int(len(A))
            g["method"], g["method_note"] = "percentile", "item cluster bootstrap; culture-label permutation test"
        ev["groups"], ev["groups_reps"] = g, gr
    table = _frame_at(ev, level)
    _, record = as_generator(rng)
    prov = {"rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations,
            "alpha": alpha, "margin": margin, "small_cell": small_cell, "source": d.source,
            "context_order": order, "items_nested_in_cultures": bool(len(set(strata)) > 1 or len(cultures) == 1),
            "exclusions": d.exclusions, "recoded": d.recoded}
    return AssessmentResult(kind="accuracy", verdicts=_verdicts(table, alpha, margin), evidence=ev,
                            provenance=prov, confidence_level=level, build=partial(_frame_at, ev))


def accuracy_report(data: CorrectnessData | pd.DataFrame | str | PathLike, **kwargs: Any
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The report entry for scored (correctness) data: ``(estimates table, verdict rows)``."""
    res = assess_accuracy(data, **kwargs)
    return res.to_frame(), res.verdicts


def accuracy_audit_report(data: pd.DataFrame | str | PathLike, *, culture: str = "culture", design: Any = None,
                          rng: RngLike = None, n_resamples: int | None = None, n_permutations: int | None = None,
                          title: str | None = None, prefix: str = "") -> Any:
    """An audit report (:class:`robustalign.report.audit.AuditReport`) of scored answers alone: one section
    with accuracy per model x culture, the paired model differences and their verdicts.

    ``data`` is a path or DataFrame for :func:`load_correctness` (``culture`` names its culture column;
    a ``context`` or ``sample`` column is used when present). Settings come from the design (``seed``,
    ``n_resamples``, ``n_permutations``, ``confidence_level``) unless given here.
    """
    from robustalign.report.audit import (
        AuditPart,
        AuditReport,
        Section,
        headline,
        package_versions,
        verdict_rows,
    )
    from robustalign.report.design import AuditDesign

    design = AuditDesign.coerce(design)
    raw = data if isinstance(data, pd.DataFrame) else _read(data, None)[0]
    kw = {k: k for k in ("context", "sample") if k in raw.columns}
    d = data if isinstance(data, CorrectnessData) else load_correctness(data, culture=culture, **kw)
    nres, nperm = int(n_resamples or design.n_resamples), int(n_permutations or design.n_permutations)
    res = assess_accuracy(d, n_resamples=nres, n_permutations=nperm, confidence_level=design.confidence_level,
                          rng=design.seed if rng is None else rng)
    name = title or design.title or "Accuracy against a gold answer"
    f = res.to_frame()
    sec = Section("accuracy", "Accuracy against a gold answer per culture", "Item-clustered bootstrap intervals "
                  "(Wilson for small cells) and sign-flip tests of paired model differences (docs/claims.md, "
                  "'Accuracy against a gold answer').", verdict_rows(name, "accuracy", res.verdicts,
                                                               ["claim", "model", "model_b"]),
                  {"accuracy": f}, [("Accuracy", headline(f, ["quantity", "model", "culture"]))],
                  results={"accuracy": res})
    settings = {"seed": res.provenance["rng"], "n_resamples": nres, "n_permutations": nperm,
                "confidence_level": design.confidence_level, "design_file": design.source}
    fr = d.frame
    desc = (f"{len(fr):,} scored answers of {fr['model'].nunique()} models to {fr['item'].nunique()} items in "
            f"{fr['culture'].nunique()} cultures.")
    ex = d.exclusions[d.exclusions["n_rows"] > 0]
    excl = pd.DataFrame({"table": d.source, "reason": ex["reason"], "action": "excluded", "n_rows": ex["n_rows"],
                         "example_rows": ex["example_rows"].map(str)})
    p = AuditPart(name, desc, [sec], excl, {"scored": None}, settings, [], [], {}, prefix)
    return AuditReport(name, [p], {"versions": package_versions(False), "parts": [{"title": name, **settings}]})
