r"""Steerability: does telling a model whom to answer as move it toward that group, and only that group?

METHODS 3.7. Notation: :math:`p_{m|c}(q)` is model *m*'s answer distribution on item *q* when steered
toward group *c*, :math:`p_{m|\varnothing}(q)` the unsteered prompt, :math:`h_c(q)` the human
distribution of group *c*, *S* a similarity in [0, 1] (``metric``, JS by default).

Gain
    :math:`G_{m,c} = \operatorname{mean}_q [S(p_{m|c}, h_c) - S(p_{m|\varnothing}, h_c)]`, the paired
    per-item difference; interval by cluster bootstrap over items, p by sign flips within item
    (H0: :math:`G \le 0` by default), BH over the declared family models x targets.
Steering matrix
    :math:`M_m[c_s, c_r] = \operatorname{mean}_q S(p_{m|c_s}(q), h_{c_r}(q))`; specificity
    :math:`SP_{m,c} = M[c,c] - \operatorname{mean}_{c' \ne c} M[c',c]` (is the *c* prompt better for *c*
    than other groups' prompts?), discriminability :math:`D_{m,c} = M[c,c] - \operatorname{mean}_{c'\ne c}
    M[c,c']`, identification AUC (share of other prompts that do worse for *c*, averaged over *c*).
    Null: steering labels permuted across targets *within item*.
Exaggeration slope
    :math:`\beta_{m,c} = \sum_q \Delta_q\, \delta_q / \sum_q \delta_q^2` with
    :math:`\Delta_q = \mu_{m|c}(q) - \mu_{m|\varnothing}(q)` (mean positions on [0, 1]) and
    :math:`\delta_q = \mu_c(q) - \bar\mu(q)`, the group's distinctive human deviation. 1 = the human
    difference reproduced, > 1 = caricature (stereotyping), <= 0 = wrong direction. Residual steering
    noise :math:`\mathrm{RMS}_q[\Delta_q - \beta \delta_q] = \sqrt{\overline{\Delta^2} - \overline{\Delta\delta}^2 /
    \overline{\delta^2}}`.
Structure recovery
    Between-persona distances :math:`D^{LLM}_{c,c'} = \operatorname{mean}_q d(p_{m|c}, p_{m|c'})` against
    the human :math:`D^{H}_{c,c'} = \operatorname{mean}_q d(h_c, h_{c'})`, both between *distributions*
    on the same items (:math:`d = 1 - S`), so like is compared with like (METHODS 4.1 item 8: Khan et
    al. compared single answers with population means). Mantel test (country labels permuted,
    ``p = (1 + b) / (1 + B)``, exact over all label orders when there are few) and the RSA Spearman
    correlation of the two distance matrices.

Everything that averages over items is a column of one ``items x statistics`` table, so one cluster
bootstrap gives every interval (paired across models and targets), and the derived statistics
(specificity, AUC, beta, RMS, Mantel r) are functions of the same replicates.

``compare=(column, a, b)`` runs the paired comparison of two kinds of steering instead (e.g.
congruent vs incongruent prompt language): per item, mean alignment with the steered group over
targets of kind *a* minus the mean over targets of kind *b*, with the same bootstrap and sign flips.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_alternative, check_choice, check_confidence_level, check_n_resamples
from robustalign.claims._base import AssessmentResult, nanmean
from robustalign.metrics import profile_correlation
from robustalign.multiplicity import adjust
from robustalign.resampling import BootstrapResult, cluster_bootstrap, sign_flip_test
from robustalign.resampling.intervals import expanded_level
from robustalign.resampling.mcerror import (
    adjusted_p_mcse,
    n_needed_mcse,
    p_value_mcse,
    resamples_to_resolve,
    verdict_mc_check,
    within_mc_error,
)
from robustalign.resampling.nulls import label_permutations, p_values, sign_flips, within_item_permutations
from robustalign.schema import Reference, Responses

if TYPE_CHECKING:
    from matplotlib.axes import Axes


__all__ = ["SteerabilityResult", "assess_steerability"]

_PERCENTILE_QUANTITIES = {"identification_auc", "structure_mantel_r", "structure_rsa_spearman",
                          "alignment_spearman_a", "alignment_spearman_b", "alignment_spearman_difference"}
#: Statistics that are means over items of per-item values (linear in the item means): their intervals
#: use the small-sample expanded level (:func:`robustalign.resampling.intervals.expanded_level`).
_LINEAR_QUANTITIES = {"gain", "gain_mean", "steering_matrix", "specificity", "specificity_mean", "discriminability",
                      "alignment_a", "alignment_b", "alignment_difference"}
_UNITS = {
    "js": "JS similarity (base 2) on [0, 1]",
    "w1": "W1 similarity on [0, 1]",
    "tv": "total-variation similarity on [0, 1]",
    "mean_position": "mean-position similarity on [0, 1]",
    "plurality": "plurality agreement on [0, 1]",
    "spearman": "Spearman rho across item x target cells",
}


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------
@dataclass(repr=False)
class SteerabilityResult(AssessmentResult):
    """Result of :func:`assess_steerability`: verdicts per model (or per cell of ``by``), the tidy
    estimates (``to_frame()``), the steering matrices (``matrix()``) and the evidence."""

    def __repr__(self) -> str:
        return AssessmentResult.__repr__(self)

    def matrix(self, confidence_level: float | None = None, **keys: object) -> pd.DataFrame:
        """The steering matrix as a table: rows = steering prompt, columns = human group, values =
        mean similarity, for the cell given by ``keys`` (e.g. ``model="m1"``)."""
        f = self.to_frame(confidence_level)
        f = f[f["quantity"] == "steering_matrix"]
        for k, v in keys.items():
            if k not in f:
                raise ValueError(f"`{k}` is not a key of this result; keys are {self.provenance['by']}.")
            f = f[f[k] == v]
        if f.empty:
            raise ValueError(f"no steering matrix for {keys}; this result has {self.provenance['by']} cells "
                             f"{self.verdicts[self.provenance['by']].to_dict('records')}.")
        by = self.provenance["by"]
        if f[by].drop_duplicates().shape[0] > 1:
            raise ValueError(f"several cells match {keys}; name one with keyword arguments for {by}.")
        out = f.pivot(index="steer", columns="target", values="estimate")
        order = self.provenance["steer_levels"]
        return out.reindex([s for s in order if s in out.index])


# --------------------------------------------------------------------------------------------------
# helpers: arrays from the data contract
# --------------------------------------------------------------------------------------------------
def _as_list(by) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _cell_keys(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df[by].drop_duplicates().sort_values(by).reset_index(drop=True)


def _index_of(df: pd.DataFrame, keys: pd.DataFrame, by: list[str]) -> np.ndarray:
    lookup = {tuple(r): i for i, r in enumerate(keys[by].astype(str).itertuples(index=False, name=None))}
    return np.array([lookup[tuple(r)] for r in df[by].astype(str).itertuples(index=False, name=None)], int)


def _distribution_array(responses, by, steer, levels, items):
    """Model distributions (cells, items, levels, K) with NaN where a cell has no valid answer."""
    keys, P = responses.distributions([*by, steer, "item"])
    cells = _cell_keys(keys, by)
    ci = _index_of(keys, cells, by)
    lv = {str(v): j for j, v in enumerate(levels)}
    it = {v: j for j, v in enumerate(items)}
    keep = keys[steer].astype(str).isin(lv) & keys["item"].isin(it)
    ci, keys, P = ci[keep.to_numpy()], keys[keep], P[keep.to_numpy()]
    out = np.full((len(cells), len(items), len(levels), P.shape[1]), np.nan)
    out[ci, keys["item"].map(it).to_numpy(), keys[steer].astype(str).map(lv).to_numpy()] = P
    return cells, out


# --------------------------------------------------------------------------------------------------
# statistics of steering matrices (shared by the bootstrap and the permutation null)
# --------------------------------------------------------------------------------------------------
def _matrix_stats(M: np.ndarray) -> dict[str, np.ndarray]:
    """Specificity, discriminability and identification AUC of steering matrices ``(..., R, R)``
    (rows = steering prompt, columns = human group, in the same order)."""
    R = M.shape[-1]
    diag = np.diagonal(M, axis1=-2, axis2=-1)
    with np.errstate(invalid="ignore"):
        col_other = (np.nansum(M, axis=-2) - diag) / (np.sum(np.isfinite(M), axis=-2) - 1)
        row_other = (np.nansum(M, axis=-1) - diag) / (np.sum(np.isfinite(M), axis=-1) - 1)
        sp = diag - col_other
        below = (M < diag[..., None, :]).sum(-2) + 0.5 * ((M == diag[..., None, :]).sum(-2) - 1)
        n_other = np.isfinite(M).sum(-2) - 1
        auc_c = below / n_other
        auc_c = np.where(np.isfinite(diag), auc_c, np.nan)
    return {
        "specificity": sp,
        "specificity_mean": np.nanmean(sp, axis=-1) if R else sp,
        "discriminability": diag - row_other,
        "identification_auc": np.nanmean(auc_c, axis=-1),
    }


# --------------------------------------------------------------------------------------------------
# public function
# --------------------------------------------------------------------------------------------------
def assess_steerability(
    responses: Responses,
    reference: Reference,
    *,
    steer: str = "steer_target",
    baseline: str | None = "none",
    by: str | Sequence[str] = "model",
    metric: str = "js",
    group_map: Mapping[str, str] | None = None,
    compare: tuple[str, str, str] | None = None,
    centre_groups: Sequence[str] | None = None,
    alternative: str | None = None,
    alpha: float = 0.05,
    adjust_method: str | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 10_000,
    estimand: str = "answer-distribution",
    rng: RngLike = None,
) -> SteerabilityResult:
    r"""Assess whether steering prompts move a model toward the named group, specifically.

    Parameters
    ----------
    responses : Responses
        Answers with a steering factor ``steer`` whose levels are ``baseline`` (the unsteered prompt)
        and the targets. Only valid answers enter; the others are counted per cell
        (``evidence["validity"]``), never imputed.
    reference : Reference
        Human distributions; every target must name a group (directly or through ``group_map``).
    steer : str
        The steering column (default ``"steer_target"``).
    baseline : str or None
        Level of ``steer`` that is the unsteered prompt. If it is absent (or None) the gain and the
        exaggeration slope are undefined and are not reported: the result says so instead of
        inventing a baseline.
    by : str or sequence of str
        Cells judged separately (default ``"model"``; e.g. ``["model", "language"]``).
    metric : str
        Per-item similarity from :data:`robustalign.metrics.METRICS` (default ``"js"``). With
        ``compare``, ``"spearman"`` gives the profile measure of Rystrøm et al. (Spearman across item x
        target cells between the model's mean position and the target group's).
    group_map : mapping, optional
        Steering level -> reference group name.
    compare : (column, level_a, level_b), optional
        Paired comparison of two kinds of steering, e.g. ``("congruent", "congruent", "incongruent")``:
        per item, mean alignment over targets whose ``column`` is ``level_a`` minus the mean over
        those with ``level_b`` (items lacking either kind are dropped and counted).
    centre_groups : sequence of str, optional
        Human groups whose mean is :math:`\bar\mu(q)` in the exaggeration slope (default: every group
        of the reference).
    alternative : {"greater", "two-sided", "less"}, optional
        For gains, specificity, AUC and the Mantel test the default is ``"greater"`` (METHODS 3.7:
        H0 gain <= 0); for ``compare`` it is ``"two-sided"``.
    alpha : float
        Level at which adjusted p-values count in the verdicts.
    adjust_method : str, optional
        Multiplicity method (:data:`robustalign.multiplicity.METHODS`). Default: ``"fdr_bh"`` for the
        models x targets families, ``"holm"`` for the small per-model and ``compare`` families.
    confidence_level : float
    n_resamples : int
        Item bootstrap resamples for intervals (default 2,000).
    n_permutations : int
        Sign flips / label permutations for p-values (default 10,000).
    estimand : {"answer-distribution", "plug-in"}
        What the per-item similarities estimate (:data:`robustalign.scoring.ESTIMANDS`). The default
        corrects nonlinear metrics for the number of answers per cell, so a gain compares answer
        distributions, not how many answers each prompt got; cells with too few answers are not scored
        and counted in ``provenance["n_not_estimable"]``. ``"plug-in"``: similarities of the observed
        shares. ``metric="spearman"`` (with ``compare``) correlates mean positions, which need no correction.
    rng : int, Generator or None
        Seed; recorded in ``provenance``. Independent parts get child generators.

    Returns
    -------
    SteerabilityResult
        ``verdicts`` per cell of ``by``; ``to_frame(level)`` with quantities ``gain``, ``gain_mean``,
        ``steering_matrix``, ``specificity``, ``specificity_mean``, ``discriminability``,
        ``identification_auc``, ``exaggeration_slope``, ``exaggeration_slope_pooled``,
        ``steering_noise_rms``, ``structure_mantel_r``, ``structure_rsa_spearman`` (or, with
        ``compare``, ``alignment_a``, ``alignment_b``, ``alignment_difference``).

    Raises
    ------
    ValueError
        Unknown columns, levels, metric or targets without a reference group (the message says which).

    Notes
    -----
    See the module docstring for every statistic. Items are the resampling unit; all statistics
    share one item resample, so differences between models or targets are paired.
    """
    from robustalign.metrics import METRICS
    from robustalign.scoring import ESTIMANDS

    check_choice(estimand, ESTIMANDS, "estimand")
    by_l = _as_list(by)
    data = responses.data
    missing = [c for c in [*by_l, steer] if c not in data]
    if missing:
        raise ValueError(f"columns {missing} are not in the responses (`by`/`steer`); its columns are "
                         f"{list(data.columns)}.")
    if steer in by_l:
        raise ValueError(f"`steer={steer!r}` must not also be in `by` ({by_l}).")
    if metric != "spearman" and metric not in METRICS:
        raise ValueError(f"`metric` must be one of {sorted(METRICS)} or 'spearman' (with `compare`); got {metric!r}.")
    if metric == "spearman" and compare is None:
        raise ValueError("`metric='spearman'` is a profile measure across items; it is available with `compare=` "
                         "only. Use a per-item metric such as 'js' for gains and steering matrices.")
    level = check_confidence_level(confidence_level)
    n_resamples = check_n_resamples(n_resamples)
    n_permutations = check_n_resamples(n_permutations, "n_permutations")
    alpha = check_confidence_level(alpha, "alpha")
    if alternative is not None:
        alternative = check_alternative(alternative)
    gen, record = as_generator(rng)
    group_map = dict(group_map or {})

    levels_all = [str(v) for v in responses.levels(steer)]
    has_baseline = baseline is not None and str(baseline) in levels_all
    targets = [v for v in levels_all if not (has_baseline and v == str(baseline))]
    targets_ref = [str(group_map.get(t, t)) for t in targets]
    unknown = sorted({t for t, r in zip(targets, targets_ref) if r not in reference.groups})
    if unknown:
        raise ValueError(
            f"steering targets {unknown} (levels of `{steer}`) name no reference group; groups are "
            f"{reference.groups}. Pass `group_map=` to translate them"
            + (f", or set `baseline=` to the unsteered level (got {baseline!r})." if baseline is not None else ".")
        )
    validity = _validity(responses, [*by_l, steer])
    prov = {
        "rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations,
        "metric": metric, "steer": steer, "baseline": baseline if has_baseline else None, "by": by_l,
        "targets": targets, "targets_reference": targets_ref, "confidence_level": level, "alpha": alpha,
        "responses_hash": responses.data_hash(), "reference_hash": reference.data_hash(),
        "n_invalid": int(validity["n_invalid"].sum()), "n_answers": int(validity["n_total"].sum()),
        "estimand": estimand,
    }
    if compare is not None:
        return _assess_compare(responses, reference, by_l, steer, targets, targets_ref, has_baseline, baseline,
                               metric, compare, alternative or "two-sided", alpha, adjust_method or "holm", level,
                               n_resamples, n_permutations, gen, prov, validity)
    if len(targets) < 2:
        raise ValueError(f"a steering assessment needs at least 2 targets besides the baseline; `{steer}` has "
                         f"{targets}.")
    return _assess_full(responses, reference, by_l, steer, targets, targets_ref, has_baseline, str(baseline),
                        metric, centre_groups, alternative or "greater", alpha, adjust_method, level,
                        n_resamples, n_permutations, gen, prov, validity)


def _estimable(sc: pd.DataFrame, metric: str, cells: list, prov: dict) -> None:
    """Record how many cells were too small for the estimand; refuse when none was scorable."""
    from robustalign.scoring import not_estimable_message

    if sc.empty and sc.attrs.get("n_not_estimable", 0):
        raise ValueError(not_estimable_message(metric, sc.attrs, cells))
    prov.update({k: sc.attrs[k] for k in ("estimand", "n_not_estimable", "min_answers") if k in sc.attrs})


def _validity(responses, cols) -> pd.DataFrame:
    sc = responses.status_counts(by=cols).reset_index()
    sc["n_total"] = sc["total"]
    sc["n_invalid"] = sc["total"] - sc["valid"]
    return sc


# --------------------------------------------------------------------------------------------------
# full assessment: gain, matrix, slope, structure
# --------------------------------------------------------------------------------------------------
def _assess_full(responses, reference, by, steer, targets, targets_ref, has_baseline, baseline, metric,
                 centre_groups, alternative, alpha, adjust_method, level, n_resamples, n_permutations, gen,
                 prov, validity):
    levels = ([baseline] if has_baseline else []) + targets
    R = len(targets)
    # ---- prepare: similarities (cells, items, prompts, targets), mean positions, distances
    S, items, cells = _full_scores(responses, reference, by, steer, levels, targets_ref, metric, prov)
    nb, Q = len(cells), len(items)
    T = S[:, :, (1 if has_baseline else 0):, :]  # targets only (b, q, R, R)
    _warn_incomplete(T, prov)
    pos = _positions(responses, reference, by, steer, levels, items, cells, centre_groups, targets_ref)
    pairs = [(i, j) for i in range(R) for j in range(i + 1, R)]
    X, lab, n_items = _item_columns(S, T, pos, cells, levels, targets, pairs, has_baseline, metric)

    # ---- estimate: one item bootstrap, every derived statistic a function of its replicates
    g_boot, g_flip, _, _ = gen.spawn(4)  # the label permutations and Mantel nulls use keyed streams of `gen`
    boot = _quiet_bootstrap(X, lab, n_resamples, level, g_boot, prov)
    lay = _derived_layout(lab, cells, by, targets, levels, pairs, has_baseline)
    out_lab = lay.pop("labels")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        derived = boot.apply(partial(_derive_full, lay, nb, has_baseline), labels=out_lab,
                             statistic="steerability statistics")
    qd = out_lab["quantity"].to_numpy()

    # ---- test: sign flips, label permutations, Mantel; multiplicity families
    tests = _full_tests(X, lab, out_lab, T, derived.estimate, by, cells, alternative, n_permutations, gen, g_flip,
                        has_baseline)
    dist_llm, dist_h = _take(boot.estimate, lay["dl"]), _take(boot.estimate, lay["dh"])  # item-mean distances
    tests["mantel"] = _mantel_tests(dist_llm, dist_h, R, out_lab, by, cells, tests, alternative, n_permutations, gen)
    p = tests["p_value"]
    padj, fam, meth = _full_families(qd, p, by, adjust_method)
    n_items_derived = _derived_n_items(out_lab, lab, n_items, by, np.isfinite(T).any(axis=(2, 3)).sum(1), cells)
    stored = {"p_value": p, "p_adjusted": padj, "adjust_method": meth, "family": fam,
              "alternative": tests["alternative"], "test": tests["test"], "n_items": n_items_derived,
              "units": _units_for(out_lab["quantity"], metric),
              "p_value_mcse": p_value_mcse(p, n_permutations),  # exact tests (few items) have less
              "p_adjusted_mcse": adjusted_p_mcse(padj, p, n_permutations)}

    # ---- verdict and result
    build = partial(_frame, derived, out_lab, stored)  # module-level: the result pickles whole
    verdicts = _verdicts_full(build(level), cells, by, has_baseline, alpha, level, metric, n_permutations)
    ckeys = cells.to_dict("records")
    evidence = {"bootstrap": boot, "derived": derived, "item_table": pd.DataFrame(X, index=items),
                "item_labels": lab, "permutation_null": tests["null"], "mantel": tests["mantel"],
                "validity": validity,
                "human_distance": {tuple(ckeys[b].values()): _square(dist_h[b], R) for b in range(nb) if len(pairs)},
                "persona_distance": {tuple(ckeys[b].values()): _square(dist_llm[b], R)
                                     for b in range(nb) if len(pairs)}}
    prov.update(n_items=Q, mode="full", gain_available=has_baseline, steer_levels=levels,
                note=None if has_baseline else
                f"no unsteered baseline level {baseline!r} in `{steer}`: gain and exaggeration slope are undefined "
                "and not reported (no baseline was invented).")
    return SteerabilityResult(kind="steerability", verdicts=verdicts, evidence=evidence, provenance=prov,
                              confidence_level=level, build=build, plotter=_plot)


def _full_scores(responses: Responses, reference: Reference, by: list[str], steer: str, levels: list[str],
                 targets_ref: list[str], metric: str, prov: dict) -> tuple[np.ndarray, list, pd.DataFrame]:
    """``S[b, q, s, r]``: similarity of prompt s's answers to human group r on item q, in cell b."""
    from robustalign.scoring import item_scores

    R = len(targets_ref)
    sc = item_scores(responses, reference, metric=metric, by=[*by, steer], groups=list(dict.fromkeys(targets_ref)),
                     estimand=prov["estimand"])
    _estimable(sc, metric, [*by, steer], prov)
    sc = sc[sc[steer].astype(str).isin(levels)]
    items = sorted(sc["item"].unique())
    cells = _cell_keys(sc, by)
    it = {v: j for j, v in enumerate(items)}
    lv = {v: j for j, v in enumerate(levels)}
    S = np.full((len(cells), len(items), len(levels), R), np.nan)
    bi = _index_of(sc, cells, by)
    qi = sc["item"].map(it).to_numpy()
    si = sc[steer].astype(str).map(lv).to_numpy()
    for r, g in enumerate(targets_ref):
        m = (sc["group"] == g).to_numpy()
        S[bi[m], qi[m], si[m], r] = sc["score"].to_numpy()[m]
    return S, items, cells


def _warn_incomplete(T: np.ndarray, prov: dict) -> None:  # noqa: N803
    """Warn (and record) when some target prompts were not answered on some items of a cell."""
    asked = np.isfinite(T).any(-1)  # (b, q, prompt): the prompt was answered on the item
    if not bool((asked.any(-1) & ~asked.all(-1)).any()):
        return
    from robustalign._errors import RobustAlignWarning

    n_cells = int((asked.any(-1) & ~asked.all(-1)).sum())
    warnings.warn(
        f"the steering design is incomplete: on {n_cells} cell x item combinations some target prompts were not "
        "answered, so steering-matrix cells average different items and specificity, discriminability and the "
        "identification AUC are confounded by item mix. Restrict to items every prompt answered for a clean "
        "matrix.", RobustAlignWarning, stacklevel=4,
    )
    prov["incomplete_design"] = n_cells


def _positions(responses: Responses, reference: Reference, by: list[str], steer: str, levels: list[str],
               items: list, cells: pd.DataFrame, centre_groups: Sequence[str] | None,
               targets_ref: list[str]) -> dict[str, np.ndarray]:
    """Distributions (model ``Pm``, human ``H``, padded to one K) and the mean positions of the slope:
    model ``mu_m`` (b, Q, L) and the targets' distinctive human deviations ``dev`` (Q, R)."""
    from robustalign.metrics import mean_position
    from robustalign.scoring import human_profiles, pad_options

    nb = len(cells)
    cells_d, Pm = _distribution_array(responses, by, steer, levels, items)
    Pm = Pm[_index_of(cells, cells_d, by)] if len(cells_d) != nb or not cells_d.equals(cells) else Pm
    K = reference.K(items)
    ordinal = reference.ordinal(items)
    groups_all = list(reference.groups if centre_groups is None else centre_groups)
    bad = sorted(set(groups_all) - set(reference.groups))
    if bad:
        raise ValueError(f"`centre_groups` {bad} are not reference groups; groups are {reference.groups}.")
    H = reference.array(items, targets_ref)  # (Q, R, K)
    kmax = max(Pm.shape[-1], H.shape[-1])
    Pm, H = pad_options(Pm, kmax), pad_options(H, kmax)
    mu_h = np.where(ordinal[:, None], human_profiles(reference, items, groups_all), np.nan)  # (Q, G)
    mu_bar = nanmean(mu_h, axis=1)  # (Q,)
    dev = np.where(ordinal[:, None], human_profiles(reference, items, targets_ref), np.nan) - mu_bar[:, None]
    mu_m = np.where(ordinal[None, :, None], mean_position(Pm, K[None, :, None], check=False), np.nan)  # (b, Q, L)
    return {"Pm": Pm, "H": H, "K": K, "ordinal": ordinal, "dev": dev, "mu_m": mu_m}


def _item_columns(S: np.ndarray, T: np.ndarray, pos: dict, cells: pd.DataFrame, levels: list[str],  # noqa: N803
                  targets: list[str], pairs: list[tuple[int, int]], has_baseline: bool,
                  metric: str) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """The per-item table: one column per statistic that is a mean over items, its labels and item counts
    (columns without any item are left out)."""
    from robustalign.metrics import METRICS

    nb, Q, R = S.shape[0], S.shape[1], len(targets)
    cols, labels = [], []
    ckeys = cells.to_dict("records")

    def add(values, quantity, **lab):
        cols.append(values)
        labels.append({"quantity": quantity, **lab})

    for b in range(nb):
        for s, sl in enumerate(levels):
            for r, t in enumerate(targets):
                add(S[b, :, s, r], "steering_matrix", **ckeys[b], steer=sl, target=t)
    if has_baseline:
        _gain_columns(add, S, T, pos, ckeys, targets)
    # structure: distances between steered personas and between human groups, same items
    Pt, Hp, K, ordinal = pos["Pm"][:, :, len(levels) - R:], pos["H"], pos["K"], pos["ordinal"]
    f_metric = METRICS[metric]  # K and ordinal matter to the ordinal metrics only
    with np.errstate(invalid="ignore"):
        d_llm = np.stack([1 - f_metric(Pt[:, :, i], Pt[:, :, j], K=K, ordinal=ordinal, check=False)
                          for i, j in pairs], axis=-1) if pairs else np.zeros((nb, Q, 0))
        d_h = np.stack([1 - f_metric(Hp[:, i], Hp[:, j], K=K, ordinal=ordinal, check=False)
                        for i, j in pairs], axis=-1)
    d_h = np.broadcast_to(d_h[None], d_llm.shape).copy()
    both = np.isfinite(d_llm) & np.isfinite(d_h)
    d_llm[~both], d_h[~both] = np.nan, np.nan
    for b in range(nb):
        for p, (i, j) in enumerate(pairs):
            add(d_llm[b, :, p], "_dist_llm", **ckeys[b], target=targets[i], target_b=targets[j])
            add(d_h[b, :, p], "_dist_human", **ckeys[b], target=targets[i], target_b=targets[j])
    X = np.column_stack(cols)
    lab = pd.DataFrame(labels)
    n_items = np.isfinite(X).sum(0)
    empty = n_items == 0
    if empty.any():
        keep = ~empty
        X, lab, n_items = X[:, keep], lab[keep].reset_index(drop=True), n_items[keep]
    return X, lab, n_items


def _gain_columns(add: Callable, S: np.ndarray, T: np.ndarray, pos: dict, ckeys: list[dict],  # noqa: N803
                  targets: list[str]) -> None:
    """Per-item gains and the terms of the exaggeration slope (needs the unsteered baseline, level 0)."""
    R, mu_m, dev = len(targets), pos["mu_m"], pos["dev"]
    gains = np.stack([T[:, :, r, r] - S[:, :, 0, r] for r in range(R)], axis=-1)  # (b, Q, R)
    delta = mu_m[:, :, 1:] - mu_m[:, :, :1]  # (b, Q, R)
    num, den, dsq = delta * dev[None], np.broadcast_to(dev[None] ** 2, delta.shape).copy(), delta**2
    miss = ~(np.isfinite(num) & np.isfinite(den))
    num[miss], den[miss], dsq[miss] = np.nan, np.nan, np.nan
    for b in range(len(ckeys)):
        for r, t in enumerate(targets):
            add(gains[b, :, r], "gain", **ckeys[b], target=t)
        add(nanmean(gains[b], axis=-1), "gain_mean", **ckeys[b])
        for r, t in enumerate(targets):
            add(num[b, :, r], "_beta_num", **ckeys[b], target=t)
            add(den[b, :, r], "_beta_den", **ckeys[b], target=t)
            add(dsq[b, :, r], "_delta_sq", **ckeys[b], target=t)


def _derived_layout(lab: pd.DataFrame, cells: pd.DataFrame, by: list[str], targets: list[str], levels: list[str],
                    pairs: list[tuple[int, int]], has_baseline: bool) -> dict:
    """Where each input of the derived statistics sits among the item-table columns (-1: absent), and the
    labels of the derived statistics (``"labels"``), in the order :func:`_derive_full` fills them."""
    idx = {}
    for j, row in enumerate(lab.to_dict("records")):
        key = (row["quantity"], tuple(row[c] for c in by), _nz(row.get("steer")), _nz(row.get("target")),
               _nz(row.get("target_b")))
        idx[key] = j
    keyt = [tuple(r) for r in cells[by].itertuples(index=False, name=None)]
    nb = len(cells)

    def col(q, b, steer_=None, target=None, target_b=None):
        return idx.get((q, keyt[b], steer_, target, target_b), -1)

    def target_idx(q):
        return np.array([[col(q, b, None, t) for t in targets] for b in range(nb)])

    return {
        "labels": _derived_labels(cells, targets, levels, has_baseline),
        "mat": np.array([[[col("steering_matrix", b, s, t) for t in targets] for s in targets] for b in range(nb)]),
        "full_mat": np.array([[[col("steering_matrix", b, s, t) for t in targets] for s in levels]
                              for b in range(nb)]),
        "gain": target_idx("gain"), "bn": target_idx("_beta_num"), "bd": target_idx("_beta_den"),
        "ds": target_idx("_delta_sq"), "gmean": np.array([col("gain_mean", b) for b in range(nb)]),
        "dl": np.array([[col("_dist_llm", b, None, targets[i], targets[j]) for i, j in pairs] for b in range(nb)]),
        "dh": np.array([[col("_dist_human", b, None, targets[i], targets[j]) for i, j in pairs] for b in range(nb)]),
    }


def _derived_labels(cells: pd.DataFrame, targets: list[str], levels: list[str], has_baseline: bool) -> pd.DataFrame:
    """Labels of the derived statistics, in the order :func:`_derive_full` fills them."""
    out_lab = []
    ckeys = cells.to_dict("records")

    def lab_rows(q, b, per_target=False, **kw):
        for t in targets if per_target else [None]:
            row = {"quantity": q, **ckeys[b], **kw}
            if per_target:
                row["target"] = t
            out_lab.append(row)

    for b in range(len(cells)):
        for s in levels:
            lab_rows("steering_matrix", b, per_target=True, steer=s)
        lab_rows("specificity", b, per_target=True)
        lab_rows("specificity_mean", b)
        lab_rows("discriminability", b, per_target=True)
        lab_rows("identification_auc", b)
        if has_baseline:
            lab_rows("gain", b, per_target=True)
            lab_rows("gain_mean", b)
            lab_rows("exaggeration_slope", b, per_target=True)
            lab_rows("exaggeration_slope_pooled", b)
            lab_rows("steering_noise_rms", b, per_target=True)
        lab_rows("structure_mantel_r", b)
        lab_rows("structure_rsa_spearman", b)
    return pd.DataFrame(out_lab)


def _derive_full(lay: dict, nb: int, has_baseline: bool, v: np.ndarray) -> np.ndarray:
    """Every derived statistic from the item means ``v`` (..., columns): matrix, specificity,
    discriminability, AUC, gains, slopes, noise, structure correlations."""
    v = np.asarray(v, float)
    lead = v.shape[:-1]
    ms = _matrix_stats(_take(v, lay["mat"]))  # (..., b, R, R)
    parts = [_take(v, lay["full_mat"]).reshape(*lead, nb, -1), ms["specificity"], ms["specificity_mean"][..., None],
             ms["discriminability"], ms["identification_auc"][..., None]]
    if has_baseline:
        nm, dn, dq = _take(v, lay["bn"]), _take(v, lay["bd"]), _take(v, lay["ds"])
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = nm / dn
            pooled = np.nansum(nm, -1) / np.nansum(np.where(np.isfinite(nm), dn, np.nan), -1)
            rms = np.sqrt(np.clip(dq - nm**2 / dn, 0, None))
        parts += [_take(v, lay["gain"]), _take(v, lay["gmean"])[..., None], beta, pooled[..., None], rms]
    dl, dh = _take(v, lay["dl"]), _take(v, lay["dh"])
    if dl.shape[-1] >= 2:
        r_p = profile_correlation(dl, dh)
        r_s = profile_correlation(dl, dh, method="spearman")
    else:
        r_p = r_s = np.full(dl.shape[:-1], np.nan)
    parts += [r_p[..., None], r_s[..., None]]
    return np.concatenate(parts, axis=-1).reshape(*lead, -1)


def _full_tests(X: np.ndarray, lab: pd.DataFrame, out_lab: pd.DataFrame, T: np.ndarray,  # noqa: N803
                est: np.ndarray, by: list[str], cells: pd.DataFrame, alternative: str, n_permutations: int,
                gen: np.random.Generator, g_flip: np.random.Generator, has_baseline: bool) -> dict:
    """p-values of the gains (sign flips within item) and the matrix statistics (labels permuted within
    item), with the alternative and the test of each row; the permutation null is kept."""
    q_of, qd = lab["quantity"].to_numpy(), out_lab["quantity"].to_numpy()
    p = np.full(len(out_lab), np.nan)
    alt_col = np.full(len(out_lab), None, dtype=object)
    test_col = np.full(len(out_lab), None, dtype=object)
    if has_baseline:
        gcols = np.flatnonzero(np.isin(q_of, ["gain", "gain_mean"]))
        flip = sign_flip_test(X[:, gcols], alternative=alternative, n_resamples=n_permutations, rng=g_flip)
        src = lab.iloc[gcols].reset_index(drop=True)
        for j, row in src.iterrows():
            m = (out_lab["quantity"] == row["quantity"]).to_numpy().copy()
            for c in by:
                m &= (out_lab[c] == row[c]).to_numpy()
            if row["quantity"] == "gain":
                m &= (out_lab["target"] == row["target"]).to_numpy()
            p[m] = flip.p_value[j]
            alt_col[m], test_col[m] = alternative, "sign flip within item"
    keyt = [tuple(r) for r in cells[by].itertuples(index=False, name=None)]
    perm_null = _permutation_null(T, n_permutations, gen, keys=keyt)
    for name in ("specificity", "specificity_mean", "discriminability", "identification_auc"):
        rows = np.flatnonzero(qd == name)
        nul = perm_null[name].reshape(n_permutations, -1)
        p[rows] = p_values(est[rows], nul, alternative, centre=_NULL_CENTRE[name])
        alt_col[rows], test_col[rows] = alternative, "steering labels permuted across targets within item"
    return {"p_value": p, "alternative": alt_col, "test": test_col, "null": perm_null}


def _mantel_tests(dist_llm: np.ndarray, dist_h: np.ndarray, R: int, out_lab: pd.DataFrame, by: list[str],  # noqa: N803
                  cells: pd.DataFrame, tests: dict, alternative: str, n_permutations: int,
                  gen: np.random.Generator) -> dict:
    """Mantel test of each cell's persona distances against the human ones; fills the rows of ``tests``."""
    qd = out_lab["quantity"].to_numpy()
    keyt = [tuple(r) for r in cells[by].itertuples(index=False, name=None)]
    ckeys = cells.to_dict("records")
    mantel = {}
    for b in range(len(cells)):
        dl, dh = dist_llm[b], dist_h[b]
        if dl.shape[-1] >= 2 and np.isfinite(dl).all() and np.isfinite(dh).all():
            mt = mantel_test(_square(dl, R), _square(dh, R), n_permutations=n_permutations,
                             alternative=alternative, rng=gen, key=keyt[b])
            mantel[b] = mt
            for name, key in (("structure_mantel_r", "p_pearson"), ("structure_rsa_spearman", "p_spearman")):
                m = (qd == name) & _cell_mask(out_lab, by, ckeys[b])
                tests["p_value"][m] = mt[key]
                tests["alternative"][m] = alternative
                tests["test"][m] = "Mantel: group labels permuted" + (" (exact)" if mt["exact"] else "")
    return mantel


def _full_families(qd: np.ndarray, p: np.ndarray, by: list[str],
                   adjust_method: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjusted p-values, family names and methods: one family per statistic (models x targets or models)."""
    fam = np.full(len(qd), None, dtype=object)
    padj = np.full(len(qd), np.nan)
    meth = np.full(len(qd), None, dtype=object)
    by_txt = " x ".join(by)
    families = [
        (["gain"], f"gain: {by_txt} x targets", adjust_method or "fdr_bh"),
        (["gain_mean"], f"mean gain: {by_txt}", adjust_method or "holm"),
        (["specificity"], f"specificity: {by_txt} x targets", adjust_method or "fdr_bh"),
        (["specificity_mean"], f"mean specificity: {by_txt}", adjust_method or "holm"),
        (["discriminability"], f"discriminability: {by_txt} x targets", adjust_method or "fdr_bh"),
        (["identification_auc"], f"identification AUC: {by_txt}", adjust_method or "holm"),
        (["structure_mantel_r"], f"Mantel r: {by_txt}", adjust_method or "holm"),
        (["structure_rsa_spearman"], f"RSA Spearman: {by_txt}", adjust_method or "holm"),
    ]
    for qs, name, method in families:
        m = np.isin(qd, qs)
        if m.any():
            padj[m] = adjust(p[m], method)
            fam[m], meth[m] = name, method
    return padj, fam, meth


def _plot(result, ax: Axes | None = None, **kwargs):
    from robustalign.plots.steerability import plot_steerability

    return plot_steerability(result, ax=ax, **kwargs)


def _quiet_bootstrap(X, lab, n_resamples, level, gen, prov):
    """Item bootstrap of every column of ``X``. Degenerate columns are recorded in ``provenance``; a
    warning is raised only when a reported quantity (not an internal helper column) is affected."""
    from robustalign._errors import DegenerateResampleWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateResampleWarning)
        boot = cluster_bootstrap(X, labels=lab, n_resamples=n_resamples, confidence_level=level, method="bca",
                                 rng=gen)
    msgs = [str(w.message) for w in caught if issubclass(w.category, DegenerateResampleWarning)]
    if msgs:
        prov["resampling_warnings"] = msgs
        res = boot.resamples
        public = ~lab["quantity"].astype(str).str.startswith("_").to_numpy()
        with np.errstate(invalid="ignore"):
            nan_cols = ~np.isfinite(res).all(0)
        if (public & nan_cols).any():
            bad = lab[public & nan_cols].head(3).to_dict("records")
            warnings.warn(
                f"{int((public & nan_cols).sum())} statistics have undefined bootstrap replicates (a resample drew "
                f"no item with data for them), e.g. {bad}; their intervals use the remaining replicates.",
                DegenerateResampleWarning, stacklevel=4,
            )
    return boot


def _nz(v):
    """None for a missing label (NaN from a DataFrame record), the value otherwise."""
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v


def _take(v: np.ndarray, ix) -> np.ndarray:
    """Columns ``ix`` (any shape) of the last axis of ``v``; NaN where ``ix`` is -1 (no such column)."""
    ix = np.asarray(ix)
    res = np.full(v.shape[:-1] + ix.shape, np.nan)
    ok = ix >= 0
    res[..., ok] = v[..., ix[ok]]
    return res


def _square(v: np.ndarray, R: int) -> np.ndarray:
    D = np.zeros((R, R))
    iu = np.triu_indices(R, 1)
    D[iu] = v
    return D + D.T


def _cell_mask(frame, by, key) -> np.ndarray:
    m = np.ones(len(frame), bool)
    for c in by:
        m &= (frame[c] == key[c]).to_numpy()
    return m


#: Bytes of the largest temporary of one permuted steering matrix computation.
_CHUNK_BYTES = 32 * 2**20
#: Centre of the permutation null of each matrix statistic (for two-sided p-values): a permuted prompt is
#: as good for a group as any other, so specificity and discriminability are 0 and the AUC is 1/2.
_NULL_CENTRE = {"specificity": 0.0, "specificity_mean": 0.0, "discriminability": 0.0, "identification_auc": 0.5}


def _permuted_matrix_stats(X: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Matrix statistics of one cell after permuting its prompts within item: ``X`` is ``(items, prompt,
    group)``, ``perm`` ``(rows, items, prompts)``; -> ``(rows, 2 R + 2)`` (specificity, its mean,
    discriminability, AUC). A missing answer moves with its label."""
    Q, R, G = X.shape
    M = np.empty((len(perm), R, G))
    step = max(1, _CHUNK_BYTES // max(Q * R * G * 8 * 3, 1))  # bounded temporaries
    for s in range(0, len(perm), step):
        Xp = X[np.arange(Q)[None, :, None], perm[s: s + step]]  # (rows, Q, prompt, group)
        fin = np.isfinite(Xp)
        with np.errstate(invalid="ignore", divide="ignore"):
            M[s: s + step] = np.where(fin, Xp, 0).sum(1) / fin.sum(1)  # (rows, prompt, group)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        st = _matrix_stats(M)
    return np.concatenate([st["specificity"], st["specificity_mean"][:, None], st["discriminability"],
                           st["identification_auc"][:, None]], axis=1)


def _permutation_null(T: np.ndarray, B: int, rng, keys=None) -> dict[str, np.ndarray]:
    """Matrix statistics when steering labels are permuted across targets within each item.

    ``T`` is ``(cells, items, R, R)`` (prompt x group). Each cell's permutations come from its own stream
    (``keyed_stream(rng, "steerability.label_permutation", *cell labels)``; ``keys`` gives the labels,
    default the cell's position), so a cell's null does not depend on the other cells.
    """
    from functools import partial

    nb, Q, R, _ = T.shape
    keys = [(b,) for b in range(nb)] if keys is None else [tuple(k) for k in keys]
    out = {"specificity": np.empty((B, nb, R)), "specificity_mean": np.empty((B, nb)),
           "discriminability": np.empty((B, nb, R)), "identification_auc": np.empty((B, nb))}
    for b in range(nb):
        null = within_item_permutations(partial(_permuted_matrix_stats, T[b]), Q, R, n_permutations=B, rng=rng,
                                        key=("steerability.label_permutation", *keys[b]))
        out["specificity"][:, b] = null[:, :R]
        out["specificity_mean"][:, b] = null[:, R]
        out["discriminability"][:, b] = null[:, R + 1: 2 * R + 1]
        out["identification_auc"][:, b] = null[:, 2 * R + 1]
    return out


def _mantel_stats(D1: np.ndarray, y: np.ndarray, iu, perms: np.ndarray) -> np.ndarray:
    """Pearson and Spearman correlation of ``y`` with the upper triangle of ``D1`` under each label order."""
    Xp = D1[perms[:, :, None], perms[:, None, :]][:, iu[0], iu[1]]  # (P, pairs)
    return np.column_stack([profile_correlation(Xp, y[None]), profile_correlation(Xp, y[None], method="spearman")])


def mantel_test(D1, D2, *, n_permutations: int = 10_000, alternative: str = "greater", rng: RngLike = None,
                key: tuple = ()) -> dict:
    """Mantel test of two distance matrices by permuting the group labels of the first.

    Returns the Pearson correlation of the upper triangles (``r``), the Spearman (RSA) correlation
    (``rho``) and their p-values. With ``R! <= n_permutations`` (and R <= 7) every label order is
    enumerated and ``p = #{r* >= r} / R!`` (exact); otherwise ``p = (1 + b) / (1 + B)``, the orders drawn
    from ``keyed_stream(rng, "steerability.mantel", *key)``.
    """
    from functools import partial

    D1, D2 = np.asarray(D1, float), np.asarray(D2, float)
    R = D1.shape[0]
    if D1.shape != (R, R) or D2.shape != (R, R):
        raise ValueError(f"`D1` and `D2` must be square matrices of the same size; got {D1.shape} and {D2.shape}.")
    if R < 3:
        raise ValueError(f"a Mantel test needs at least 3 groups; got {R}.")
    alternative = check_alternative(alternative)
    iu = np.triu_indices(R, 1)
    y = D2[iu]
    null, exact = label_permutations(partial(_mantel_stats, D1, y, iu), R, n_permutations=n_permutations, rng=rng,
                                     key=("steerability.mantel", *key))
    r = float(profile_correlation(D1[iu], y))
    rho = float(profile_correlation(D1[iu], y, method="spearman"))
    pv = p_values([r, rho], null, alternative)
    return {"r": r, "rho": rho, "exact": exact, "n_permutations": len(null) + exact,
            "p_pearson": float(pv[0]), "p_spearman": float(pv[1])}


def _derived_n_items(out_lab, lab, n_items, by, n_cell, cells) -> np.ndarray:
    """Items behind each derived statistic: its own column where it is one, else the items with any
    steered answer in its cell."""
    cell_of = out_lab.groupby(by, sort=False).ngroup().to_numpy()
    order = cells.merge(out_lab[by].drop_duplicates().reset_index(drop=True).reset_index(), on=by, how="left")
    per = np.zeros(int(cell_of.max()) + 1, int)
    per[order["index"].to_numpy()] = n_cell
    res = per[cell_of]
    key_cols = ["quantity", *by, "steer", "target"]
    a = out_lab.reindex(columns=key_cols).astype(object).where(out_lab.reindex(columns=key_cols).notna(), None)
    b = lab.reindex(columns=key_cols).astype(object).where(lab.reindex(columns=key_cols).notna(), None)
    look = dict(zip(map(tuple, b.to_numpy()), n_items))
    own = np.array([look.get(tuple(r), -1) for r in a.to_numpy()])
    return np.where(own >= 0, own, res).astype(int)


def _units_for(quantity: pd.Series, metric: str) -> np.ndarray:
    u = {
        "exaggeration_slope": "ratio (1 = human deviation reproduced) on mean position",
        "exaggeration_slope_pooled": "ratio (1 = human deviation reproduced) on mean position",
        "steering_noise_rms": "mean position on [0, 1]",
        "identification_auc": "probability (0.5 = chance)",
        "structure_mantel_r": "Pearson r of distance matrices",
        "structure_rsa_spearman": "Spearman rho of distance matrices",
    }
    base = _UNITS.get(metric, metric)
    return np.array([u.get(q, base if not q.startswith("alignment_spearman") else _UNITS["spearman"])
                     for q in quantity], dtype=object)


def _frame(derived, labels, stored, level) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of absent cells
        fb = derived.to_frame(level, "bca_or_percentile")
        fp = derived.to_frame(level, "percentile")
        f = fb.copy()
        use_p = labels["quantity"].isin(_PERCENTILE_QUANTITIES).to_numpy()
        for c in ("conf_low", "conf_high", "method", "conf_low_mcse", "conf_high_mcse"):
            f[c] = np.where(use_p, fp[c], fb[c])
        # means over items: intervals at the small-sample expanded level (same replicates, wider quantiles)
        linear = labels["quantity"].isin(_LINEAR_QUANTITIES).to_numpy()
        lev_n = expanded_level(level, stored["n_items"])
        for lv in np.unique(lev_n[linear & np.isfinite(lev_n)]):
            rows = linear & (lev_n == lv)
            fe = derived.to_frame(float(lv), "bca_or_percentile")
            for c in ("conf_low", "conf_high", "conf_low_mcse", "conf_high_mcse"):
                f.loc[rows, c] = fe.loc[rows, c]
            f.loc[rows, "method"] = fe.loc[rows, "method"].astype(str) + "-expanded"
    for c, v in stored.items():
        f[c] = v
    keys = [c for c in labels.columns if c != "quantity"]
    cols = ["quantity", *keys, "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method", "p_value",
            "p_adjusted", "adjust_method", "family", "alternative", "test", "n_items", "units", "n_resamples"]
    cols += [c for c in ("conf_low_mcse", "conf_high_mcse", "p_value_mcse", "p_adjusted_mcse") if c in f]
    f = f[cols]
    f.loc[f["quantity"].isin(["exaggeration_slope", "exaggeration_slope_pooled"]), "benchmark"] = 1.0
    return f.reset_index(drop=True)


def _needed_text(n_need: float, n_resamples) -> str:
    """"Items needed" with its Monte Carlo SE (it is proportional to a squared bootstrap SE)."""
    if not np.isfinite(n_need):
        return ""
    se = float(n_needed_mcse(n_need, n_resamples))
    return f"; about {int(n_need)} items (Monte Carlo SE {se:.0f}) would be needed at 80% power"


def _fmt_ci(row) -> str:
    return f"{row['estimate']:.3f} [{row['conf_low']:.3f}, {row['conf_high']:.3f}]"


def _n_needed(est, se, n, alpha=0.05):
    from robustalign.power import n_for_mde

    if not (np.isfinite(est) and np.isfinite(se)) or est == 0 or se <= 0 or n < 2:
        return np.nan
    return n_for_mde(abs(est), sd=se * math.sqrt(n), alpha=alpha)


def _full_verdict(c: dict) -> str:
    """The steerability verdict from its yes/no comparisons (names as in :func:`_full_checks`)."""
    spec_ok = c["spec_p"] and c["spec_low"]
    if c["has_baseline"]:
        if c["gain_p"] and c["gain_low"] and spec_ok:
            return "supported"
        return "not supported" if c["gain_high"] or c["spec_high"] else "inconclusive"
    return "supported" if spec_ok else "not supported" if c["spec_high"] else "inconclusive"


def _full_checks(g, sp, alpha, n_permutations) -> dict:
    """Comparisons a verdict rests on: ``name -> (holds, value, threshold, mcse, resamples, text)``."""
    out = {}
    for name, r, what in (("gain", g, "mean gain"), ("spec", sp, "mean specificity")):
        if r is None:
            continue
        out[f"{name}_p"] = (r["p_adjusted"] <= alpha, r["p_adjusted"], alpha, r["p_adjusted_mcse"], n_permutations,
                            f"the {what}'s adjusted p")
        out[f"{name}_low"] = (r["conf_low"] > 0, r["conf_low"], 0.0, r["conf_low_mcse"], r["n_resamples"],
                              f"the {what}'s lower end")
        out[f"{name}_high"] = (r["conf_high"] < 0, r["conf_high"], 0.0, r["conf_high_mcse"], r["n_resamples"],
                               f"the {what}'s upper end")
    return out


def _verdicts_full(frame, cells, by, has_baseline, alpha, level, metric, n_permutations):
    rows = []
    pct = f"{level:.0%}"
    for key in cells.to_dict("records"):
        m = _cell_mask(frame, by, key)
        name = ", ".join(f"{k}={v}" for k, v in key.items())
        sp = frame[m & (frame["quantity"] == "specificity_mean")].iloc[0]
        auc = frame[m & (frame["quantity"] == "identification_auc")].iloc[0]
        g = frame[m & (frame["quantity"] == "gain_mean")].iloc[0] if has_baseline else None
        checks = _full_checks(g, sp, alpha, n_permutations)
        flags = {"has_baseline": has_baseline, **{k: bool(v[0]) for k, v in checks.items()}}
        verdict = _full_verdict(flags)
        gain_ok, spec_ok = has_baseline and flags["gain_p"] and flags["gain_low"], flags["spec_p"] and flags["spec_low"]
        parts = [f"mean specificity {_fmt_ci(sp)} (p_adj = {sp['p_adjusted']:.3g})",
                 f"identification AUC {_fmt_ci(auc)}"]
        n_need = np.nan
        if has_baseline:
            parts.insert(0, f"mean gain {_fmt_ci(g)} (p_adj = {g['p_adjusted']:.3g})")
            b = frame[m & (frame["quantity"] == "exaggeration_slope_pooled")].iloc[0]
            parts.append(f"exaggeration slope {_fmt_ci(b)}" + (" (caricature: beta > 1)" if b["conf_low"] > 1 else ""))
            if verdict == "supported":
                why = "steering raises alignment with the target, specifically"
            elif verdict == "not supported":
                why = ("steering lowers alignment with the target" if flags["gain_high"]
                       else "the target's prompt fits the target worse than others' prompts")
            else:
                why = ("gain but no clear specificity" if gain_ok else
                       "specific but no clear gain over the unsteered prompt" if spec_ok else "neither gain nor "
                       "specificity is established")
                cand = [] if gain_ok else [_n_needed(g["estimate"], g["std_error"], g["n_items"], alpha)]
                if not spec_ok:
                    cand.append(_n_needed(sp["estimate"], sp["std_error"], sp["n_items"], alpha))
                cand = [c for c in cand if np.isfinite(c)]
                n_need = max(cand) if cand else np.nan
        else:
            parts.insert(0, "gain undefined (no unsteered baseline)")
            why = {"supported": "prompts are specific to their targets (gain not assessable)",
                   "not supported": "the target's prompt fits the target worse than others' prompts",
                   "inconclusive": "specificity is not established"}[verdict]
            if verdict == "inconclusive":
                n_need = _n_needed(sp["estimate"], sp["std_error"], sp["n_items"], alpha)
        mt = frame[m & (frame["quantity"] == "structure_mantel_r")]
        if len(mt) and np.isfinite(mt.iloc[0]["estimate"]):
            parts.append(f"structure recovery Mantel r {_fmt_ci(mt.iloc[0])} (p = {mt.iloc[0]['p_value']:.3g})")
        extra = _needed_text(n_need, frame["n_resamples"].iloc[0])
        mc, mc_txt = verdict_mc_check(checks, _full_verdict, {"has_baseline": has_baseline})
        reason = (f"{name}: steerability {verdict} — {why}: " + "; ".join(parts)
                  + f" ({pct} intervals, {_UNITS.get(metric, metric)}){extra}." + mc_txt)
        rows.append({**key, "verdict": verdict, "reason": reason, "n_needed": n_need, "mc_error": mc})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# paired comparison of two kinds of steering
# --------------------------------------------------------------------------------------------------
def _assess_compare(responses, reference, by, steer, targets, targets_ref, has_baseline, baseline, metric, compare,
                    alternative, alpha, adjust_method, level, n_resamples, n_permutations, gen, prov, validity):
    arms = _compare_arms(responses, by, steer, targets, targets_ref, compare)
    column, a, b_, cells = arms["column"], arms["a"], arms["b"], arms["cells"]
    nb = len(cells)
    items, Xm, Y = _compare_values(responses, reference, by, steer, targets, arms["tmap"], cells, metric, prov)
    fin = np.isfinite(Xm)
    has_a = (fin & arms["in_a"][:, None, :]).any(-1)
    has_b = (fin & arms["in_b"][:, None, :]).any(-1)
    paired = has_a & has_b  # (b, Q)
    n_dropped = (~paired & (has_a | has_b)).sum(1)
    g_boot, g_flip = gen.spawn(2)
    ckeys = cells.to_dict("records")
    lab = pd.DataFrame([{"quantity": q, **ckeys[i]} for i in range(nb) for q in
                        ("alignment_a", "alignment_b", "alignment_difference")])
    if metric != "spearman":
        boot, p_diff, test, sd = _compare_means(Xm, paired, arms, lab, alternative, level, n_resamples,
                                                n_permutations, g_boot, g_flip, prov)
    else:
        lab["quantity"] = lab["quantity"].str.replace("alignment_", "alignment_spearman_")
        boot, p_diff, test, sd = _compare_profiles(Xm, Y, paired, arms, lab, alternative, level, n_resamples,
                                                   n_permutations, g_boot, gen)
    qd = lab["quantity"].to_numpy()
    p = np.full(len(lab), np.nan)
    is_diff = np.char.endswith(qd.astype(str), "difference")
    p[is_diff] = p_diff
    padj = np.full(len(lab), np.nan)
    padj[is_diff] = adjust(p_diff, adjust_method)
    fam = np.where(is_diff, f"{column}: {a} - {b_} across {' x '.join(by)} ({nb} tests)", None)
    stored = {"p_value": p, "p_adjusted": padj, "adjust_method": np.where(is_diff, adjust_method, None),
              "family": fam, "alternative": np.where(is_diff, alternative, None),
              "test": np.where(is_diff, test, None), "n_items": np.repeat(paired.sum(1), 3),
              "units": np.array([_UNITS.get(metric, metric)] * len(lab), dtype=object),
              "p_value_mcse": p_value_mcse(p, n_permutations), "p_adjusted_mcse": adjusted_p_mcse(padj, p, n_permutations)}
    build = partial(_compare_frame, boot, lab, stored, len(by), a, b_)  # module-level: the result pickles whole
    frame = build(level)
    ctx = {"column": column, "a": a, "b": b_, "metric": metric, "alpha": alpha, "level": level,
           "adjust_method": adjust_method, "n_permutations": n_permutations}
    verdicts = pd.DataFrame([_compare_verdict(frame, key, by, int(n_dropped[i]), sd[i], ctx)
                             for i, key in enumerate(ckeys)])
    note = None if has_baseline else (
        f"no unsteered baseline level {baseline!r} in `{steer}`: the gain over the unsteered prompt is undefined "
        "and is not reported (no baseline was invented)."
    )
    prov.update(mode="compare", compare=[column, a, b_], n_items=len(items), gain_available=False if not has_baseline
                else None, note=note,
                n_items_dropped={" / ".join(map(str, k)): int(v) for k, v in zip(arms["keyt"], n_dropped)})
    evidence = {"bootstrap": boot, "validity": validity, "arms": pd.DataFrame(arms["arm"], columns=targets).assign(
        **{c: cells[c] for c in by})}
    return SteerabilityResult(kind="steerability", verdicts=verdicts, evidence=evidence, provenance=prov,
                              confidence_level=level, build=build, plotter=_plot)


def _compare_arms(responses: Responses, by: list[str], steer: str, targets: list[str], targets_ref: list[str],
                  compare: tuple[str, str, str]) -> dict:
    """Check ``compare`` and find each cell's arm (kind of steering) per target."""
    if not (isinstance(compare, (tuple, list)) and len(compare) == 3):
        raise ValueError(f"`compare` must be (column, level_a, level_b), e.g. ('congruent', 'congruent', "
                         f"'incongruent'); got {compare!r}.")
    column, a, b_ = (str(x) for x in compare)
    data = responses.data
    if column not in data:
        raise ValueError(f"`compare` column {column!r} is not in the responses; its columns are {list(data.columns)}.")
    d = data[data[steer].astype(str).isin(targets)]
    kinds = d[[*by, steer, column]].astype(str).drop_duplicates()
    dup = kinds.duplicated([*by, steer], keep=False)
    if dup.any():
        raise ValueError(f"`{column}` must be constant within each {by} x {steer} cell (it labels the kind of "
                         f"steering); it varies in {kinds[dup].head(4).to_dict('records')}.")
    present = set(kinds[column])
    for lv in (a, b_):
        if lv not in present:
            raise ValueError(f"`compare` level {lv!r} is not a value of {column!r}; values are {sorted(present)}.")
    tmap = dict(zip(targets, targets_ref))
    kinds["ref"] = kinds[steer].map(tmap)
    cells = _cell_keys(kinds, by)
    kind_of = {(tuple(r[c] for c in by), r[steer]): r[column] for r in kinds.to_dict("records")}
    keyt = [tuple(str(x) for x in r) for r in cells[by].itertuples(index=False, name=None)]
    arm = np.zeros((len(cells), len(targets)), dtype="U64")
    for bi_, kt in enumerate(keyt):
        for s, t in enumerate(targets):
            arm[bi_, s] = kind_of.get((kt, t), "")
    return {"column": column, "a": a, "b": b_, "tmap": tmap, "cells": cells, "keyt": keyt, "arm": arm,
            "in_a": arm == a, "in_b": arm == b_}


def _compare_values(responses: Responses, reference: Reference, by: list[str], steer: str, targets: list[str],
                    tmap: dict, cells: pd.DataFrame, metric: str,
                    prov: dict) -> tuple[list, np.ndarray, np.ndarray | None]:
    """Items and (cells, items, targets) values: per-item similarities, or with ``metric="spearman"`` the
    model's mean positions and the human ones (``Y``), missing where either is."""
    from robustalign.scoring import human_profiles, item_scores, model_profiles

    if metric == "spearman":
        prof = model_profiles(responses, by=[*by, steer])
        prof = prof[prof[steer].astype(str).isin(targets)]
        items = sorted(prof["item"].unique())
        Xm = _fill(prof, cells, by, steer, targets, items, "value")
        mu_h = human_profiles(reference, items, [tmap[t] for t in targets])  # (Q, R), rounded like the model's
        Y = np.broadcast_to(mu_h[None], Xm.shape).copy()
        Y[~np.isfinite(Xm)] = np.nan
        Xm[~np.isfinite(Y)] = np.nan
        return items, Xm, Y
    sc = item_scores(responses, reference, metric=metric, by=[*by, steer], against=steer,
                     group_map={t: r for t, r in tmap.items()}, estimand=prov["estimand"])
    _estimable(sc, metric, [*by, steer], prov)
    sc = sc[sc[steer].astype(str).isin(targets)]
    items = sorted(sc["item"].unique())
    return items, _fill(sc, cells, by, steer, targets, items, "score"), None


def _compare_means(Xm: np.ndarray, paired: np.ndarray, arms: dict, lab: pd.DataFrame, alternative: str,  # noqa: N803
                   level: float, n_resamples: int, n_permutations: int, g_boot: np.random.Generator,
                   g_flip: np.random.Generator, prov: dict) -> tuple:
    """Per-item mean alignment of each arm and their difference: item bootstrap and sign flips within item.
    Returns ``(bootstrap, p of the differences, test name, per-item SD of the differences)``."""
    in_a, in_b = arms["in_a"], arms["in_b"]
    nb, Q = paired.shape
    with np.errstate(invalid="ignore"):
        ma = nanmean(np.where(in_a[:, None, :], Xm, np.nan), -1)
        mb = nanmean(np.where(in_b[:, None, :], Xm, np.nan), -1)
    ma[~paired], mb[~paired] = np.nan, np.nan
    diff = ma - mb  # (b, Q)
    X = np.stack([ma, mb, diff], axis=-1).transpose(1, 0, 2).reshape(Q, nb * 3)
    keep_items = paired.any(0)
    X, diff_q = X[keep_items], diff[:, keep_items].T
    boot = _quiet_bootstrap(X, lab, n_resamples, level, g_boot, prov)
    flip = sign_flip_test(diff_q, alternative=alternative, n_resamples=n_permutations, rng=g_flip)
    return boot, flip.p_value, "sign flip within item", np.nanstd(diff_q, axis=0, ddof=1)


def _compare_profiles(Xm: np.ndarray, Y: np.ndarray, paired: np.ndarray, arms: dict, lab: pd.DataFrame,  # noqa: N803
                      alternative: str, level: float, n_resamples: int, n_permutations: int,
                      g_boot: np.random.Generator, gen: np.random.Generator) -> tuple:
    """Spearman profile correlation of each arm and their difference: item bootstrap (percentile) and arms
    swapped within random items. Returns as :func:`_compare_means` (no per-item SD: NaN)."""
    in_a, in_b = arms["in_a"], arms["in_b"]
    nb = paired.shape[0]
    keep_items = paired.any(0)
    Xk, Yk = Xm[:, keep_items], Y[:, keep_items]
    Xk = np.where(paired[:, keep_items, None], Xk, np.nan)
    Yk = np.where(paired[:, keep_items, None], Yk, np.nan)
    xs, ys = Xk.transpose(1, 0, 2), Yk.transpose(1, 0, 2)  # (Q, b, R)
    boot = cluster_bootstrap((xs, ys), statistic=partial(_spearman_arms, in_a=in_a, in_b=in_b), labels=lab,
                             n_resamples=n_resamples, confidence_level=level, method="percentile", rng=g_boot)
    p_diff = _arm_swap_p(xs, ys, in_a, in_b, boot.estimate.reshape(nb, 3)[:, 2], alternative, n_permutations,
                         gen, arms["keyt"])
    return boot, p_diff, "arms swapped within item", np.full(nb, np.nan)


def _compare_frame(boot: BootstrapResult, lab: pd.DataFrame, stored: dict, n_by: int, a: str, b: str,
                   level: float) -> pd.DataFrame:
    """The estimates table of a ``compare`` assessment at ``level``, with the two levels compared."""
    f = _frame(boot, lab, stored, level)
    f.insert(1 + n_by, "level_a", a)
    f.insert(2 + n_by, "level_b", b)
    return f


def _compare_verdict(frame: pd.DataFrame, key: dict, by: list[str], n_dropped: int, sd: float, ctx: dict) -> dict:
    """One cell's verdict row from the interval and adjusted p of the difference between the arms."""
    a, b_, metric, alpha = ctx["a"], ctx["b"], ctx["metric"], ctx["alpha"]
    f = frame[_cell_mask(frame, by, key)].set_index("quantity")
    dname = "alignment_spearman_difference" if metric == "spearman" else "alignment_difference"
    aname, bname = dname.replace("difference", "a"), dname.replace("difference", "b")
    r = f.loc[dname]
    if r["p_adjusted"] <= alpha and r["conf_low"] > 0:
        verdict, why = "supported", f"steering toward {a} targets aligns better than toward {b_} targets"
    elif r["conf_high"] < 0:
        verdict, why = "not supported", f"steering toward {a} targets aligns worse than toward {b_} targets"
    else:
        verdict, why = "inconclusive", f"no clear difference between {a} and {b_} steering"
    n_need = np.nan
    if verdict == "inconclusive":
        n_need = _n_needed(r["estimate"], r["std_error"], r["n_items"], alpha)
    name = ", ".join(f"{k}={v}" for k, v in key.items())
    extra = _needed_text(n_need, frame["n_resamples"].iloc[0])
    mc, mc_txt = _p_within_mc_error(r["p_adjusted"], r["p_value"], alpha, ctx["n_permutations"])
    column = ctx["column"]
    reason = (f"{name}: {column}={a} vs {column}={b_} — {verdict} ({why}): {a} {_fmt_ci(f.loc[aname])}, {b_} "
              f"{_fmt_ci(f.loc[bname])}, difference {_fmt_ci(r)} ({ctx['level']:.0%} interval, "
              f"{_UNITS.get(metric, metric)}), p = {r['p_value']:.3g}, p_adj = {r['p_adjusted']:.3g} "
              f"({ctx['adjust_method']}); {int(r['n_items'])} paired items ({n_dropped} with only one kind "
              f"dropped){extra}{mc_txt}.")
    return {**key, "verdict": verdict, "reason": reason, "n_needed": n_need, "sd_item": sd, "mc_error": mc}


def _fill(tab, cells, by, steer, targets, items, value) -> np.ndarray:
    out = np.full((len(cells), len(items), len(targets)), np.nan)
    bi = _index_of(tab, cells, by)
    it = {v: j for j, v in enumerate(items)}
    tv = {v: j for j, v in enumerate(targets)}
    out[bi, tab["item"].map(it).to_numpy(), tab[steer].astype(str).map(tv).to_numpy()] = tab[value].to_numpy(float)
    return out


def _arm_spearman(x, y, arm):
    """Spearman across the item x target cells of one arm: x, y (chunk, Q, b, R), ``arm`` a mask that
    broadcasts against them; -> (chunk, b)."""
    from robustalign.metrics import spearman_alignment

    c, _, nb, _ = x.shape
    xa = np.where(arm, x, np.nan).transpose(0, 2, 1, 3).reshape(c, nb, -1)
    ya = np.where(arm, y, np.nan).transpose(0, 2, 1, 3).reshape(c, nb, -1)
    return np.asarray(spearman_alignment(xa, ya, nan_policy="omit"), float)


def _spearman_arms(x, y, in_a, in_b):
    """Spearman across item x target cells per arm, and the difference; x, y (chunk, Q, b, R)."""
    ra, rb = _arm_spearman(x, y, in_a[None, None]), _arm_spearman(x, y, in_b[None, None])
    return np.stack([ra, rb, ra - rb], axis=-1).reshape(x.shape[0], -1)


def _arm_swap_stats(xs, ys, in_a, in_b, signs) -> np.ndarray:
    """Spearman difference of the arms when they are swapped in the items with a negative sign; -> (rows, b)."""
    Q, nb, R = xs.shape
    c = signs.shape[0]
    flip = signs < 0  # (c, Q)
    fa = np.where(flip[:, :, None, None], in_b[None, None], in_a[None, None])  # (c, Q, b, R)
    fb = np.where(flip[:, :, None, None], in_a[None, None], in_b[None, None])
    x = np.broadcast_to(xs[None], (c, Q, nb, R))
    y = np.broadcast_to(ys[None], (c, Q, nb, R))
    return _arm_spearman(x, y, fa) - _arm_spearman(x, y, fb)


def _p_within_mc_error(p_adjusted: float, p_value: float, alpha: float, n_permutations: int) -> tuple[bool, str]:
    """Is the adjusted p-value within Monte Carlo error of ``alpha`` (another seed could flip the verdict)?

    Returns the flag and a clause for the verdict's reason naming the permutations that would settle it.
    """
    se = float(adjusted_p_mcse(p_adjusted, p_value, n_permutations))
    if not bool(within_mc_error(p_adjusted, alpha, se)):
        return False, ""
    need = float(resamples_to_resolve(p_adjusted, alpha, se, n_permutations))
    more = f"about {int(need):,} permutations would settle it" if np.isfinite(need) else "more permutations cannot settle it"
    return True, (f"; p_adj is within Monte Carlo error of {alpha:g} (MC SE {se:.3f} at {n_permutations:,} "
                  f"permutations: another seed could change this verdict; {more})")


def _arm_swap_p(xs, ys, in_a, in_b, observed, alternative, B, rng, keys):
    """p of the Spearman difference when the two arms swap within random items (sign-flip analogue); each
    cell's swaps from its own stream ``("steerability.arm_swap", *cell labels)``."""
    from functools import partial

    Q, nb, _ = xs.shape
    null = np.empty((B, nb))
    for b in range(nb):
        stat = partial(_arm_swap_stats, xs[:, b: b + 1], ys[:, b: b + 1], in_a[b: b + 1], in_b[b: b + 1])
        null[:, b] = sign_flips(stat, Q, n_permutations=B, rng=rng, key=("steerability.arm_swap", *keys[b]))[:, 0]
    return p_values(np.asarray(observed, float), null, alternative)  # swapping arms negates: centre 0
