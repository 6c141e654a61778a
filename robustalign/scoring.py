"""Alignment scores between model answers and human references (``ra.alignment``, ``ra.item_scores``).

:func:`item_scores` is the one place that pairs a model's answer distribution in a design cell with a
human group's distribution on the same item and applies a metric from :mod:`robustalign.metrics`.
Everything that aggregates alignment (means over items, bootstrap intervals, claims) starts from its
tidy output: one row per design cell x item x group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._rng import RngLike
from robustalign._validation import check_choice, check_instance
from robustalign.metrics import (
    FEW_ANSWER_METRICS,
    LINEAR_METRICS,
    METRICS,
    MIN_ANSWERS,
    MIN_ANSWERS_NONLINEAR,
    NEAR_IDENTITY_METRICS,
    QUADRATIC_METRICS,
    finite_sample_similarity,
    identity_bias_bound,
    identity_chi_square,
    identity_p_value,
    mean_position,
    spearman_alignment,
    tv_identity_bias_bound,
)
from robustalign.schema import Reference, Responses

if TYPE_CHECKING:
    from robustalign.resampling import BootstrapResult

__all__ = ["ESTIMANDS", "alignment", "human_pair_scores", "human_profiles", "item_scores", "model_profiles"]

#: What a per-item score estimates. ``"answer-distribution"`` (default): the metric between the model's
#: answer distribution in the cell (what it would answer given unlimited samples) and the human
#: population distribution, bias-corrected for the number of answers per cell and of respondents
#: (:func:`robustalign.metrics.finite_sample_similarity`). ``"plug-in"``: the metric between the
#: observed shares, whose expectation moves with the number of answers sampled per cell.
ESTIMANDS = ("answer-distribution", "plug-in")

#: Near identity (:func:`alignment` with a metric in :data:`robustalign.metrics.NEAR_IDENTITY_METRICS`):
#: the test that a unit's answer distribution equals the human one on every item is made at this share
#: of the interval's alpha (0.01 for 95% intervals), and an item counts as possibly at the kink while
#: its own chi-square is below the 1 - NEAR_IDENTITY_ITEM_LEVEL quantile. Chosen by simulation
#: (docs/resampling.md, "Near identity").
NEAR_IDENTITY_TEST_SHARE = 0.2
NEAR_IDENTITY_ITEM_LEVEL = 0.3

_ROW_CHUNK = 1000  # cell x group rows per call of the corrected metric (its arrays are rows x K^3)


def item_scores(
    responses: Responses,
    reference: Reference,
    *,
    metric: str = "js",
    by: Sequence[str] = ("model",),
    against: str | None = None,
    group_map: Mapping[str, str] | None = None,
    groups: Sequence[str] | None = None,
    estimand: str = "answer-distribution",
    min_answers: int | None = None,
) -> pd.DataFrame:
    """Similarity of each design cell's answer distribution to human groups, item by item.

    Parameters
    ----------
    responses, reference
        Validated data (see :mod:`robustalign.schema`).
    metric : str
        A name in :data:`robustalign.metrics.METRICS` (``"js"``, ``"w1"``, ``"tv"``, ...). Similarities
        are in [0, 1], higher = closer. Metrics for ordinal scales give NaN on nominal items; those
        rows are dropped and counted in ``attrs["n_nominal_skipped"]``.
    by : sequence of str
        Columns that define a cell besides ``item`` (e.g. ``model``, ``format``). Answers of all other
        factors are pooled into the cell's distribution.
    against : str, optional
        A responses column whose value names the one human group each cell is compared with (e.g.
        ``"language"`` for per-language references, ``"steer_target"`` for steering). Default: every
        group in ``groups`` (or the reference).
    group_map : mapping, optional
        Maps values of ``against`` to reference group names.
    estimand : {"answer-distribution", "plug-in"}
        See :data:`ESTIMANDS`. With the default, nonlinear metrics are bias-corrected for the ``n``
        answers of each cell (sampled choices) and for the respondents of each human distribution
        where the reference gives their number (unknown counts: the shares are taken as exact). Cells
        with fewer answers than :data:`robustalign.metrics.MIN_ANSWERS` allows for the metric are not
        estimable: they are not scored, and counted in ``attrs["n_not_estimable"]``. Responses given
        as probabilities or scores are distributions per row, not samples: no model-side correction.
    min_answers : int, optional
        Raise the fewest answers per cell for a nonlinear metric above the default (e.g. 15 where the
        model distributions may lie close to the human ones; see docs/resampling.md for the residual
        bias at 5 and 10 answers). Values below 2 are refused.

    Returns
    -------
    DataFrame
        Columns ``*by, [against], item, group, score, n`` where ``n`` is the number of valid answers in
        the cell. Cell x group pairs with no human reference for that item are not scored; their count
        is in ``attrs["n_missing_reference"]`` (never silently imputed). ``attrs`` also records the
        ``estimand``, ``n_not_estimable``, ``min_answers`` and ``n_human_corrected`` (rows whose human
        side was corrected for a known number of respondents).
    """
    return item_score_rows(responses, reference, metric=metric, by=by, against=against, group_map=group_map,
                        groups=groups, estimand=estimand, min_answers=min_answers)


def item_score_rows(responses: Responses, reference: Reference, *, metric: str, by: Sequence[str], against: str | None,
                    group_map: Mapping[str, str] | None, groups: Sequence[str] | None, estimand: str,
                    min_answers: int | None, identity: bool = False) -> pd.DataFrame:
    """(Internal.) :func:`item_scores`; with ``identity`` also the per-row chi-square of identity with the human
    distribution (columns ``_x2, _x2_df, _x2_var``, :func:`robustalign.metrics.identity_chi_square`)."""
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {sorted(METRICS)}; got {metric!r}.")
    if estimand not in ESTIMANDS:
        raise ValueError(f"`estimand` must be one of {list(ESTIMANDS)}; got {estimand!r}.")
    cells = _cells(responses, by, against)
    keys, P = responses.distributions([*cells, "item"])
    items = sorted(keys["item"].unique())
    rows, names = _cell_groups(keys, reference, against, group_map, groups)  # one row per cell x group
    gl = list(dict.fromkeys(names))
    Q = reference.array(items, gl)  # (I, G, K)
    # as objects: a categorical column keeps unused categories, which map to NaN and make the codes float
    ii = keys["item"].astype(object).map({k: j for j, k in enumerate(items)}).to_numpy(np.intp)[rows]
    gi = pd.Series(names).map({k: j for j, k in enumerate(gl)}).to_numpy()
    kmax = max(P.shape[1], Q.shape[2])
    Pr, Qr = pad_options(P, kmax)[rows], pad_options(Q, kmax)[ii, gi]
    Kr, Or = reference.K(items)[ii], reference.ordinal(items)[ii]
    S = METRICS[metric](Pr, Qr, K=Kr, ordinal=Or)
    scorable = ~np.isnan(S)
    min_n = _min_answers(metric, min_answers)
    n_h = np.full(len(S), np.nan)
    n_p = keys["n"].to_numpy(float)[rows] if responses.kind == "choice" else np.full(len(S), np.inf)
    if estimand == "answer-distribution" and metric not in LINEAR_METRICS:
        n_h = reference.n_array(items, gl)[ii, gi]
        for s, e in ((s, min(s + _ROW_CHUNK, len(S))) for s in range(0, len(S), _ROW_CHUNK)):
            S[s:e] = finite_sample_similarity(metric, Pr[s:e], Qr[s:e], n_p[s:e], n_h[s:e], K=Kr[s:e],
                                              ordinal=Or[s:e], min_n=min_n)
    not_est = scorable & (n_p < min_n) & (estimand == "answer-distribution")
    out = keys.iloc[rows].reset_index(drop=True)
    out["group"] = names
    out["score"] = S
    present = _reference_cells(reference, items, gl)[ii, gi]
    keep = scorable & ~not_est
    cols = [*dict.fromkeys([*cells, "item", "group"]), "score", "n"]
    if identity:  # the sampled side(s) against the other: exact human shares where their n is unknown
        m_h = reference.n_array(items, gl)[ii, gi]
        x2 = identity_chi_square(Pr, Qr, n_p, m_h)
        with np.errstate(invalid="ignore", divide="ignore"):  # effective answers of the difference p - q
            n_eff = 1.0 / (1.0 / n_p + np.where(np.isfinite(m_h), 1.0 / m_h, 0.0))
        kink, kink_low = _kink_allowances(metric, x2[1], n_eff, Qr, n_p, m_h)
        out = out.assign(_x2=x2[0], _x2_df=x2[1], _x2_var=x2[2], _kink=kink, _kink_low=kink_low)
        cols += ["_x2", "_x2_df", "_x2_var", "_kink", "_kink_low"]
    out = out[keep].reset_index(drop=True)[cols]
    out.attrs.update(metric=metric, estimand=estimand, n_missing_reference=int((~present).sum()),
                     n_nominal_skipped=int((present & ~scorable).sum()), n_not_estimable=int(not_est.sum()),
                     min_answers=int(min_n) if estimand == "answer-distribution" else 1,
                     n_human_corrected=int((keep & np.isfinite(n_h)).sum()))
    return out


def _kink_allowances(metric: str, df: np.ndarray, n_eff: np.ndarray, q: np.ndarray, n_p: np.ndarray,
                     n_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row allowances above and below for the bias of the corrected value at the kink (identity).

    JS: :func:`robustalign.metrics.identity_bias_bound` above, none below. TV: the exact bounds of
    :func:`robustalign.metrics.tv_identity_bias_bound` over every model share (rows whose answers are
    not counts, e.g. probabilities, get none)."""
    if metric == "js":
        return identity_bias_bound(df, n_eff), np.zeros(len(df))
    if metric != "tv":
        return np.zeros(len(df)), np.zeros(len(df))
    counted = np.isfinite(n_p) & (n_p >= 2) & (np.round(n_p) == n_p)
    low, high = np.zeros(len(df)), np.zeros(len(df))
    if counted.any():
        low[counted], high[counted] = tv_identity_bias_bound(q[counted], n_p[counted], n_q[counted])
    return high, low


def _min_answers(metric: str, min_answers) -> int:
    """Fewest answers per cell for ``metric`` (1 for linear metrics), checking a user's ``min_answers``."""
    if min_answers is not None and not (isinstance(min_answers, int | np.integer) and min_answers >= 2):
        raise ValueError(f"`min_answers` must be an integer >= 2 (the jackknife needs two answers); got {min_answers!r}.")
    if metric in LINEAR_METRICS:
        return 1
    return MIN_ANSWERS.get(metric, MIN_ANSWERS_NONLINEAR) if min_answers is None else int(min_answers)


def model_profiles(responses: Responses, *, by: Sequence[str] = ("model",)) -> pd.DataFrame:
    """Mean answer position (ordinal) or mean score per cell x item: the input to profile correlations.

    Returns a DataFrame with ``*by, item, value, n``. For scores the value is the mean score; for choices
    and probabilities it is the mean canonical position on [0, 1], (k - 1) / (K - 1).
    """
    by = [c for c in by if c != "item"]
    keys, P = responses.distributions([*by, "item"])
    # scores come as two-option distributions (1 - mean, mean), whose mean position is the mean score
    K = None if responses.kind == "score" else np.array([responses.scales[i].K for i in keys["item"]])
    out = keys.copy()
    # round away float summation noise, so that equal means are ties in rank statistics whatever
    # order they were summed in (0.1 + 0.2 vs 0.3)
    out["value"] = np.round(mean_position(P, K, check=False), 12)
    return out[[*by, "item", "value", "n"]]


def human_profiles(reference: Reference, items: Sequence[str] | None = None,
                   groups: Sequence[str] | None = None) -> np.ndarray:
    """Human mean position on [0, 1] per item x group, (k - 1) / (K - 1) weighted by the shares.

    For two-option scales this is the share of the second option (e.g. the "pro" share). Values are
    rounded to 12 decimals, as in :func:`model_profiles`."""
    items = list(reference.items if items is None else items)
    return np.round(mean_position(reference.array(items, groups), reference.K(items)[:, None], check=False), 12)


def human_pair_scores(reference: Reference, items: Sequence[str], proxy: str, target: str, *, metric: str = "js",
                      estimand: str = "answer-distribution") -> np.ndarray:
    """Per-item similarity of human group ``proxy``, used as a "model", to group ``target`` (one value per item).

    The human-proxy baseline on the same footing as model scores: with the default estimand both
    sides are bias-corrected for their numbers of respondents where the reference gives them (a
    group with unknown counts is taken as exact), so a model-minus-proxy margin compares two
    estimates of population similarities. NaN where either group lacks the item or the metric does
    not apply (ordinal metrics on nominal items).
    """
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {sorted(METRICS)}; got {metric!r}.")
    if estimand not in ESTIMANDS:
        raise ValueError(f"`estimand` must be one of {list(ESTIMANDS)}; got {estimand!r}.")
    items = list(items)
    Q = reference.array(items, [proxy, target])
    K, o = reference.K(items), reference.ordinal(items)
    if estimand == "plug-in" or metric in LINEAR_METRICS:
        return np.asarray(METRICS[metric](Q[:, 0], Q[:, 1], K=K, ordinal=o, check=False), float)
    N = reference.n_array(items, [proxy, target])
    n_p = np.where(np.isfinite(N[:, 0]), N[:, 0], np.inf)
    return finite_sample_similarity(metric, Q[:, 0], Q[:, 1], n_p, N[:, 1], K=K, ordinal=o, min_n=1)


def alignment(
    responses: Responses,
    reference: Reference,
    *,
    metric: str = "js",
    by: Sequence[str] = ("model",),
    against: str | None = None,
    group_map: Mapping[str, str] | None = None,
    groups: Sequence[str] | None = None,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    method: str = "bca",
    rng: RngLike = None,
    estimand: str = "answer-distribution",
    min_answers: int | None = None,
    near_identity: bool = True,
) -> BootstrapResult:
    """Alignment of every cell with every (or its own) human group, with cluster-bootstrap intervals.

    Items are resampled with replacement (the questions are a sample of possible questions), one
    resample shared by all cells, so differences and rankings between cells are paired
    (``result.pairwise("model")``, ``result.ranks()``).

    **Estimand** (default ``estimand="answer-distribution"``): the mean over a population of items of
    the similarity between the model's answer distribution in each cell (what it would answer given
    unlimited samples) and the human population distribution. Per-item scores are bias-corrected for
    the answers sampled per cell (and the respondents per human distribution, where known), so the
    number does not move with how many answers were drawn; see :func:`item_scores`. The item
    bootstrap of these per-item estimates carries the within-cell sampling noise too: items are
    independent, so the spread of a per-item estimate over items is the between-item spread plus the
    within-cell noise. ``estimand="plug-in"`` gives the uncorrected similarity of the observed shares,
    whose expectation depends on the number of answers per cell.

    Parameters
    ----------
    metric : str
        ``"spearman"`` for the profile measure of Rystrøm et al. (Spearman across items between the
        model's mean score or position and the human one), or a per-item similarity from
        :data:`robustalign.metrics.METRICS` averaged over items with equal weights. The Spearman
        profile is not corrected for the number of answers: the mean positions are unbiased, but
        their sampling noise attenuates the correlation toward 0 (by about 0.07 at 5 answers per cell
        in the simulation of docs/resampling.md); its ``provenance["estimand"]`` says ``"plug-in"``.
    by, against, group_map, groups
        As in :func:`item_scores`.
    n_resamples, confidence_level, method, rng
        As in :func:`robustalign.resampling.cluster_bootstrap`. For a per-item metric every statistic is
        a mean over items, so its interval (and those of ``pairwise()`` / ``contrast()``) is read from the
        same resamples at the small-sample expanded level (Hesterberg 2015): ``method`` ``"bca"``
        becomes ``"bca-expanded"`` (4% wider at 40 items; pooled coverage of 95% intervals 0.940 for
        models and 0.936 for pairwise differences in docs/resampling.md, 0.930 / 0.925 at the plain
        level). ``to_frame(method="bca")`` gives the plain level. Spearman keeps the plain level.
    estimand : {"answer-distribution", "plug-in"}
        See above and :data:`ESTIMANDS`.
    min_answers : int, optional
        As in :func:`item_scores`.
    near_identity : bool
        For JS and TV (:data:`robustalign.metrics.NEAR_IDENTITY_METRICS`; answer-distribution estimand):
        both have a kink at identity (P = Q), where the corrected per-item value stays biased low by
        about 1/sqrt(answers), a bias the bootstrap does not see and no per-cell correction removes. Each
        unit (cell x group) is tested for "its answer distribution equals the human one on every item"
        (the sum over items of the per-cell Pearson chi-square against the human shares, or of the
        two-sample statistic where the reference gives respondent counts;
        :func:`robustalign.metrics.identity_chi_square`) at one fifth of the interval's alpha
        (:data:`NEAR_IDENTITY_TEST_SHARE`: 0.01 for 95% intervals). Where it does not reject, the
        similarity is within the noise floor of identity and the upper end is 1, the top of the scale.
        Otherwise the items whose own chi-square is below its 70% point (:data:`NEAR_IDENTITY_ITEM_LEVEL`)
        may sit at the kink: each adds its bias bound / items to the upper end. For JS the bound at
        identity (:func:`robustalign.metrics.identity_bias_bound`); for TV the exact supremum over the
        model's shares of the corrected value's bias (:func:`robustalign.metrics.tv_identity_bias_bound`,
        a binomial sum per option), which also lowers the lower end by the most the jackknife can
        over-correct there. ``to_frame()`` says so
        in ``method_note`` and a column ``widened``; ``pairwise()`` and ``contrast()`` carry the
        allowances into differences (:class:`robustalign.resampling.widened.WidenedBootstrapResult`);
        ``result.base()`` gives the intervals without them. Measured coverage of the mean JS similarity
        for models from identical to far from the humans (JS at 10, 15 and 50 answers; TV at 30, 50 and
        100): docs/resampling.md, "Near identity". ``False``: no test, the plain intervals.

    Returns
    -------
    BootstrapResult
        One statistic per cell x group (labels: ``*by, [against], group``). ``provenance`` records the
        ``estimand`` and ``n_not_estimable`` (cell x item x group rows with too few answers for the
        metric, left out of the means). For JS and TV a
        :class:`~robustalign.resampling.widened.WidenedBootstrapResult` whose ``provenance["near_identity"]``
        has, per unit, the chi-square of identity, its df and p-value, ``near_identity`` (not rejected),
        the items not distinguishable on their own and the item allowances above and below
        (``item_allowance``, ``item_allowance_low``; a plain result where neither side is sampled:
        probabilities or scores against exact shares carry no kink bias).

    Raises
    ------
    ValueError
        When no cell has enough answers for a nonlinear metric under the answer-distribution estimand.
    """
    from robustalign.resampling import cluster_bootstrap

    _check_inputs(responses, reference)
    check_choice(metric, [*METRICS, "spearman"], "metric")
    check_choice(estimand, ESTIMANDS, "estimand")
    cells = _cells(responses, by, against)
    if metric != "spearman":
        test = near_identity and metric in NEAR_IDENTITY_METRICS and estimand == "answer-distribution"
        scores = item_score_rows(responses, reference, metric=metric, by=by, against=against, group_map=group_map,
                              groups=groups, estimand=estimand, min_answers=min_answers, identity=test)
        if scores.empty and scores.attrs.get("n_not_estimable", 0):
            raise ValueError(not_estimable_message(metric, scores.attrs, cells))
        keys = list(dict.fromkeys([*cells, "group"]))
        res = cluster_bootstrap(scores, value="score", cluster="item", by=keys,
                                n_resamples=n_resamples, confidence_level=confidence_level, method=method, rng=rng)
        res.provenance.update({k: scores.attrs[k] for k in ("estimand", "n_not_estimable", "min_answers",
                                                           "n_human_corrected", "metric")})
        # means over items: intervals at the small-sample expanded level (same replicates, wider quantiles)
        # pairwise differences of the quadratic metrics: the t interval (their per-item differences are
        # nearly symmetric, where BCa's skew correction, estimated from 40 items, costs coverage)
        res = replace(res, statistic=f"mean {metric} similarity ({estimand} estimand)",
                      method=f"{res.method}-expanded", mean_n=_items_per_mean(scores, keys, res.labels),
                      pair_method="t" if metric in QUADRATIC_METRICS else None)
        return _near_identity(res, scores, keys, metric, 1.0 - confidence_level) if test else res
    return _spearman(responses, reference, cells, against, group_map, groups,
                     dict(n_resamples=n_resamples, confidence_level=confidence_level, method=method, rng=rng))


def _near_identity(res: BootstrapResult, scores: pd.DataFrame, keys: list[str], metric: str,
                   alpha: float) -> BootstrapResult:
    """Widen the upper ends of units whose answer distributions may sit at the metric's kink (identity).

    Unit rule: where the sum over items of the per-cell chi-square of identity does not reject at
    ``NEAR_IDENTITY_TEST_SHARE * alpha``, the upper end is 1. Item rule (other units): each item whose
    own chi-square is below the ``1 - NEAR_IDENTITY_ITEM_LEVEL`` quantile adds its bound on the bias at
    the kink / items to the upper end (JS: :func:`robustalign.metrics.identity_bias_bound`; TV:
    :func:`robustalign.metrics.tv_identity_bias_bound`, whose lower bound also widens the lower end).
    """
    from scipy import stats

    from robustalign.resampling.widened import widen

    x2, dfi = scores["_x2"].to_numpy(float), scores["_x2_df"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        near_item = (dfi > 0) & (x2 < stats.chi2.ppf(1.0 - NEAR_IDENTITY_ITEM_LEVEL, np.maximum(dfi, 1.0)))
    g = (scores.assign(_item=np.where(near_item, scores["_kink"].to_numpy(float), 0.0),
                       _item_low=np.where(near_item, scores["_kink_low"].to_numpy(float), 0.0), _near=near_item)
         .groupby(keys, observed=True, sort=False)
         .agg(_x2=("_x2", lambda v: v.sum(min_count=1)), _x2_df=("_x2_df", "sum"), _x2_var=("_x2_var", "sum"),
              _item=("_item", "mean"), _item_low=("_item_low", "mean"), _n_near=("_near", "sum")))
    tab = res.labels[keys].merge(g.reset_index(), on=keys, how="left")
    stat, df, var = (tab[c].to_numpy(float) for c in ("_x2", "_x2_df", "_x2_var"))
    level = NEAR_IDENTITY_TEST_SHARE * alpha
    pv = identity_p_value(stat, df, var)
    near = np.isfinite(pv) & (pv > level)
    if not np.isfinite(pv).any():  # nothing sampled on either side (probabilities vs exact shares): no kink bias
        return res
    item = np.where(near, 0.0, np.nan_to_num(tab["_item"].to_numpy(float)))
    item_low = np.where(near, 0.0, np.nan_to_num(tab["_item_low"].to_numpy(float)))
    n_near = np.nan_to_num(tab["_n_near"].to_numpy(float))
    mean_n = res.mean_n if res.mean_n is not None else np.full(len(res), np.nan)
    notes = np.full(len(res), "", dtype=object)
    notes[:] = [
        (f"not distinguishable from the human distribution (chi-square of identity {x:.1f} on {d:.0f} df over "
         f"{n_it:.0f} items, p = {p:.3g} > {level:.3g}): {metric} has a kink at identity, where the corrected "
         "value stays biased low by about 1/sqrt(answers), so the upper end is 1, the top of the scale")
        if a else
        (f"{k:.0f} of {n_it:.0f} items not distinguishable from the human distribution on their own: the upper "
         f"end is raised by {w:.3g}" + (f" and the lower end lowered by {wl:.3g}" if wl > 0 else "")
         + " for the bias at the kink there" if w > 0 or wl > 0 else "")
        for a, x, d, n_it, p, k, w, wl in zip(near, stat, df, mean_n, pv, n_near, item, item_low, strict=True)]
    high = np.where(near, np.clip(1.0 - res.estimate, 0.0, None), item)
    out = widen(res, low=item_low, high=high, ceiling=1.0, note=notes)
    table = tab[keys].assign(identity_chi2=stat, identity_df=df, identity_p=pv, near_identity=near,
                             items_near_identity=n_near, item_allowance=item, item_allowance_low=item_low)
    out.provenance.update(near_identity=table, near_identity_level=level)
    return out


def _items_per_mean(scores: pd.DataFrame, keys: list[str], labels: pd.DataFrame) -> np.ndarray:
    """Items with a finite score behind each statistic (row of ``labels``) of a mean over items."""
    have = scores.loc[np.isfinite(scores["score"].to_numpy(float))]
    n = have.groupby(keys, observed=True, sort=False)["item"].nunique().rename("_n").reset_index()
    out = labels[keys].merge(n, on=keys, how="left")["_n"].to_numpy(float)
    return np.where(np.isnan(out), 0.0, out)


def _spearman(responses, reference, cells, against, group_map, groups, boot):
    """Spearman profile alignment per cell x group, resampling items (general path)."""
    from robustalign.resampling import cluster_bootstrap

    prof = model_profiles(responses, by=cells)
    items = sorted(prof["item"].unique())
    keys = prof[cells].drop_duplicates().sort_values(cells).reset_index(drop=True)
    rows, names = _cell_groups(keys, reference, against, group_map, groups)
    labels = keys.iloc[rows].reset_index(drop=True)
    labels["group"] = names
    gl = sorted(set(names))
    H = human_profiles(reference, items, gl)
    gidx = {g: j for j, g in enumerate(gl)}
    wide = prof.pivot_table(index="item", columns=cells, values="value", observed=True).reindex(items)
    cell_index = pd.MultiIndex.from_frame(labels[cells]) if len(cells) > 1 else pd.Index(labels[cells[0]])
    X = wide.reindex(columns=cell_index).to_numpy(float)  # (items, cells)
    Hm = H[:, [gidx[g] for g in labels["group"]]]  # (items, cells)

    def stat(x, h):  # x, h: (chunk, items, cells)
        return spearman_alignment(np.swapaxes(x, 1, 2), np.swapaxes(h, 1, 2), nan_policy="omit")

    res = cluster_bootstrap((X, Hm), stat, labels=labels, **boot)
    # the mean positions are unbiased at any n, but their sampling noise attenuates the correlation
    # across items; it is not corrected, but measured: the reliability of each cell's profile
    rel = _profile_reliability(responses, cells, labels[cells])
    res.provenance.update(estimand="plug-in", metric="spearman", profile_reliability=rel,
                          attenuation_factor=np.sqrt(np.clip(rel, 0.0, 1.0)),
                          note="Spearman of mean positions is attenuated toward 0 by the sampling noise of the "
                               "model's means: expect about r * attenuation_factor (sqrt of profile_reliability).")
    return res


def _profile_reliability(responses: Responses, cells: list[str], keys: pd.DataFrame) -> np.ndarray:
    """Share of the across-item variance of a cell's mean positions that is not sampling noise, per row of
    ``keys``: 1 - mean_q Var(mean_q) / Var_q(mean_q), with Var(mean_q) = s_q^2 / n_q from the answers
    (sample variance of the positions). A Pearson correlation with an exact profile is attenuated by
    sqrt(reliability) (Spearman 1904); NaN for probabilities and scores (no answer-level noise known)."""
    if responses.kind != "choice":
        return np.full(len(keys), np.nan)
    kd, P = responses.distributions([*cells, "item"])
    K = np.array([responses.scales[i].K for i in kd["item"]])
    pos = np.arange(P.shape[1])[None, :] / np.maximum(K[:, None] - 1, 1)
    mu = (P * pos).sum(1)
    var = np.clip((P * pos**2).sum(1) - mu**2, 0.0, None)
    n = kd["n"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        kd = kd.assign(_mu=mu, _err=np.where(n >= 2, var / (n - 1), np.nan))  # s^2 / n with s^2 = var n / (n - 1)
    g = kd.groupby(cells, observed=True)
    rel = 1.0 - g["_err"].mean() / g["_mu"].var(ddof=1)
    idx = pd.MultiIndex.from_frame(keys) if len(cells) > 1 else pd.Index(keys[cells[0]])
    return rel.reindex(idx).to_numpy(float)


def not_estimable_message(metric: str, attrs: Mapping[str, Any], cells: Sequence[str]) -> str:
    """Why no row could be scored for ``metric``, and the metrics that are unbiased from fewer answers."""
    few = ", ".join(f"{m!r} (from {k} answer{'s' if k > 1 else ''})" for m, k in FEW_ANSWER_METRICS.items()
                    if k < attrs["min_answers"])
    return (
        f"metric {metric!r} is not estimable for the answer distribution from these data: all "
        f"{attrs['n_not_estimable']} cell x item x group rows have fewer than "
        f"{attrs['min_answers']} valid answers (cells: {list(cells)} x item). A nonlinear metric from so "
        "few answers says little about the model's answer distribution and is biased by an amount "
        "that depends on the number of answers (robustalign.metrics.MIN_ANSWERS). Use a metric that is "
        f"exactly unbiased from fewer answers: {few} (agreement is linear; brier and cramer are "
        "quadratic), pool cells (fewer `by` columns), sample more answers, or pass estimand='plug-in' "
        "to get the similarity of the observed shares, knowing that it moves with the number of answers."
    )


def _cells(responses: Responses, by: Sequence[str], against: str | None) -> list[str]:
    """The columns that define a cell besides ``item``: ``by`` and then ``against``, checked."""
    cells = list(dict.fromkeys([*(c for c in by if c != "item"), *([against] if against else [])]))
    missing = [c for c in cells if c not in responses.data]
    if missing:
        raise ValueError(
            f"columns {missing} are not in the responses; its columns are {list(responses.data.columns)}."
        )
    return cells


def _cell_groups(keys: pd.DataFrame, reference: Reference, against: str | None,
                 group_map: Mapping[str, str] | None, groups: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Pair each cell (row of ``keys``) with the human groups it is compared with.

    Returns the row of ``keys`` and the reference group name of every cell x group pair: every group in
    ``groups`` (default: the reference's) for each cell, or, with ``against``, the one group that the
    cell's value of ``against`` names (through ``group_map``).
    """
    if against is None:
        gl = list(reference.groups if groups is None else groups)
        unknown = sorted(set(gl) - set(reference.groups))
        if unknown:
            raise ValueError(f"`groups` {unknown} are not in the reference; it has {reference.groups}.")
        return np.repeat(np.arange(len(keys)), len(gl)), np.tile(gl, len(keys))
    target = keys[against].astype(str)
    if group_map is not None:
        target = target.map(lambda v: group_map.get(v, v))
    unknown = sorted(set(target) - set(reference.groups))
    if unknown:
        raise ValueError(
            f"values of `{against}` {unknown} name no reference group; groups are {reference.groups}. "
            "Pass `group_map=` to translate them."
        )
    return np.arange(len(keys)), target.to_numpy()


def pad_options(a: np.ndarray, k: int) -> np.ndarray:
    if a.shape[-1] == k:
        return a
    width = [(0, 0)] * (a.ndim - 1) + [(0, k - a.shape[-1])]
    return np.pad(a, width)


def _reference_cells(reference: Reference, items: Sequence[str], groups: Sequence[str]) -> np.ndarray:
    """``(items, groups)``: True where the reference has shares for the item x group."""
    s = reference.shares
    ix = s["item"].map({k: j for j, k in enumerate(items)})
    gx = s["group"].map({k: j for j, k in enumerate(groups)})
    ok = (ix.notna() & gx.notna()).to_numpy()
    out = np.zeros((len(items), len(groups)), bool)
    out[ix.to_numpy()[ok].astype(np.intp), gx.to_numpy()[ok].astype(np.intp)] = True
    return out


def _check_inputs(responses, reference) -> None:
    check_instance(responses, Responses, "responses",
                   "Make one from a table with `ra.make_responses(df, reference)` or read a file with "
                   "`ra.load_responses(path, reference)`.")
    check_instance(reference, Reference, "reference",
                   "Make one with `ra.make_reference(df, scales)` or read a file with `ra.load_reference(path, "
                   "scales=...)`.")
