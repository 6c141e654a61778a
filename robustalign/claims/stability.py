r"""Stability: do a model's answers survive changes of prompt format, template, language ...?

:func:`assess_stability` judges, per model (or per cell of ``by``) and per design factor, whether the
answers stay put when only the presentation changes, and puts an interval on every number it reports
(METHODS 3.3, 3.9, 3.10, 4.1).

Estimands (all on the canonical scale; nothing is re-inverted)
--------------------------------------------------------------
*Position.* An answer's position is :math:`(k - 1)/(K - 1)` on [0, 1] for option *k* of a *K*-option
ordinal item (the mean over a cell's valid answers, or the expected position for probabilities); a score
answer is its score. A cell's value is the mean over its valid answers (repeated ``sample`` rows are
averaged first), and an item's value at a level is the **equally weighted** mean over the cells of the
other factors. Nothing is ever weighted by group size (METHODS 4.1 item 1).

*Factor effect.* Two levels: the paired mean difference :math:`\bar d = \frac1n\sum_q d_q`, with
:math:`d_q` the mean over the item's other-factor cells that have a valid answer at both levels of
:math:`x_{q,o,b} - x_{q,o,a}`. More levels: the SD (ddof = 1) of the level effects :math:`\beta_\ell` of
the additive model :math:`x_{s\ell} = \alpha_s + \beta_\ell + e` fitted by least squares over strata
*s* = item x other-factor cell (each item's strata share weight 1). With complete blocks
:math:`\beta_\ell` is the level mean minus the grand mean, so this is the SD across level means; with
refusals the fit compares levels within items only, so item composition cannot masquerade as an effect.
All pairwise paired differences are reported too.

*Tests and intervals.* p-values are stratified permutation tests, ``p = (1 + b) / (1 + B)``: for two
levels the labels are swapped within every item x other-factor stratum (a sign flip of the stratum's
difference, weighted so that the statistic is the item-level mean); for more levels the observed values
are permuted among the levels present in each stratum and the additive model is refitted. Intervals are
cluster bootstraps over items (BCa). p-values of the factor effects are adjusted with Benjamini-Hochberg
over the family "models x factors"; pairwise level differences over "models x factors x level pairs".
With ``sequential=True`` the answer nulls (noise floor, item-level effect) stop drawing once an exact
Clopper-Pearson interval for the permutation p-value, valid over all looks, lies on one side of alpha
(:mod:`robustalign.resampling.sequential`); the draws each used are recorded.

*Equivalence (the verdict).* The margin :math:`\delta` is ``margin=`` if given, else the human
between-group SD of mean position per item, averaged over the items the model's effect uses
(:func:`robustalign.metrics.between_group_sd`, METHODS 1.1, on the same [0, 1] scale, with
``ddof=1`` like the model's SD across levels: both estimate the spread of a population of countries or
formats from a sample of them; Khan et al.'s 0.114 uses ddof = 0). TOST at :math:`\alpha = 1 -`
``confidence_level``, on two quantities:

- the *average effect* (above): inside when the whole :math:`1 - 2\alpha` (90%) interval lies inside
  :math:`(-\delta, \delta)` (an SD: below :math:`\delta`), beyond when it lies wholly beyond;
- the *item-level effect* :math:`\tau` (SD of the item x level interaction of mean positions beyond
  within-cell noise, ordinal items with at least 2 answers per cell; see
  :mod:`robustalign.claims._stability_parts`): inside when its 90% upper bound is below :math:`\delta`,
  beyond when its lower bound is above.

**Stable** ("supported") means: the average effect is inside the margin *and* the item-level effect is
inside it (or cannot be estimated: one answer per cell). **Not stable** ("not supported"): either one is
beyond the margin, i.e. the factor moves answers on average, or it moves items in different directions
by more than the margin even when the average stays put. Otherwise "inconclusive" with the number of
items that would be needed (:func:`robustalign.power.n_for_equivalence`, or
:func:`robustalign.power.n_for_mde` when the estimate is beyond the margin); a detected average effect is
said so. For two levels the mean difference is held against the SD (the typical difference between two
countries is about 1.1-1.4 SD, so this is the stricter reading); for more levels SD is held against SD.

*No margin on the answer scale (no human reference with two or more groups, no ``margin=``).* With
``flip_margin=`` the verdict is the TOST of the mean modal flip rate against its *noise floor* plus
``flip_margin`` (the allowed excess of flips over what sampling alone produces). The noise floor is the
expected modal flip rate under no effect at the numbers of answers actually sampled per cell (answers
re-allocated among levels within strata), computed per model and factor. With one answer per cell (or
probabilities or scores) no floor can be computed; ``flip_margin`` is then the stated floor itself.
Without ``flip_margin`` either: "not supported" when a change is detected (the BH-adjusted average
effect, the item-level effect or the flips above the noise floor at :math:`p < \alpha`), since the
answers demonstrably move; else "inconclusive", naming the argument to give. A single-answer test-retest
flip rate (when ``sample`` has at least 2 levels) is reported too; it is the floor of single answers,
not of modal answers of several samples.

*Position bias* (factors that change the order shown: ``option_order`` or an order-label column): the
change in an option's share when it is shown first (or last) rather than elsewhere, per model, with an
item-bootstrap interval and a within-item permutation p (:mod:`robustalign.claims._stability_parts`).
It is reported beside the factor effect of the order, which is a different quantity (the shift of mean
canonical position, the *content-order effect*).

*Flip rates.* Per item and level the answer distribution is the mean of the cells' valid-answer
distributions; its modal set is the options within 1e-9 of the maximum. The flip between two levels is
:math:`1 -` the Jaccard overlap of the two modal sets (:func:`robustalign.metrics.plurality_agreement`):
1 or 0 without ties, 1/2 when one level ties two options and the other picks one of them, and never
a flip when both are tied on the same set. For scores the distribution is (1 - score, score), so the
modal answer is the side of 0.5 and 0.5 is a tie. The ordinal shift is :math:`|pos_a - pos_b|` in
canonical [0, 1] units, i.e. :math:`|k_a - k_b|/(K - 1)` for single answers. Rates are means over the
items with valid answers at both levels; the factor's rate is the mean over level pairs.

*Agreement across levels* (targets = items, raters = levels, ratings = item positions): ICC(2,1)
(absolute agreement, pingouin's ``ICC(A,1)``) and ICC(3,1) (consistency, ``ICC(C,1)``), from the two-way
mean squares, with F-test intervals on the items answered at every level; Krippendorff's alpha (``krippendorff`` package)
on the modal option's position (ordinal when every item is ordinal, nominal otherwise; interval on the
mean score for score data), missing values allowed, tied modes counted as missing, with a cluster
bootstrap over items.

*Ranking changes.* Units are ranked at every level: models by mean alignment with the reference
(``metric``, averaged over items and groups) when a reference is given, else by mean position; one
model alone ranks the reference groups by its alignment. For each pair of levels: Kendall's tau-b
(``scipy.stats.kendalltau``), the share of discordant pairs, and for each pair of units the bootstrap
probability that their order at one level is reversed at the other (within the same resample of items).
Each unit's mean uses the items it answered validly (differential refusal is reported as validity).

*Invalid answers* (status other than ``valid``) are never imputed: they are excluded, counted per unit
(``evidence["status_counts"]``) and, with a ``status`` column, their rates per level are reported with
Wilson intervals and a paired test (:func:`robustalign.validity.validity_rates`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from itertools import combinations
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from robustalign._errors import DegenerateResampleWarning
from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_choice, check_confidence_level, check_n_resamples
from robustalign.claims._base import AssessmentResult, nanmean
from robustalign.claims._stability_mc import add_mc_flags
from robustalign.claims._stability_parts import (
    answer_nulls,
    order_factors,
    position_bias,
    shown_positions,
)
from robustalign.resampling import (
    cluster_bootstrap,
    keyed_stream,
    permutation_p_values,
    sign_flip_test,
    stability_nulls,
)
from robustalign.resampling.sequential import SequentialRule
from robustalign.resampling.stability_nulls import spread_permutation_null
from robustalign.schema import Reference, Responses, sort_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes


__all__ = ["StabilityResult", "assess_stability"]

NOT_ASSESSED = ("sample", "steer_target")
OPTIONAL_PARTS = ("pairwise", "agreement", "retest", "ranking", "validity", "position_bias", "noise_floor",
                  "item_level")
_TIE_TOL = 1e-9


class StabilityResult(AssessmentResult):
    """Result of :func:`assess_stability` (an :class:`~robustalign.claims.AssessmentResult`).

    ``evidence`` keys: ``status_counts``, ``effects`` (per unit x factor: bootstrap and permutation
    results), ``pairwise``, ``flips``, ``retest``, ``agreement``, ``ranking``, ``validity``,
    ``variance_shares``, ``margins``.
    """

    def flip_rates(self, confidence_level: float | None = None) -> pd.DataFrame:
        """The flip-rate rows of :meth:`to_frame` (mean over level pairs and per pair)."""
        f = self.to_frame(confidence_level)
        return f[f["quantity"].isin(["flip_rate_mean", "flip_rate", "retest_flip_rate"])].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# public function
# --------------------------------------------------------------------------------------------------
def assess_stability(
    responses: Responses,
    reference: Reference | None = None,
    *,
    factors: str | Sequence[str] | None = None,
    by: str = "model",
    margin: float | None = None,
    flip_margin: float | None = None,
    metric: str = "js",
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 10_000,
    sequential: bool | float = False,
    fit: Any = None,
    adjust_method: str = "fdr_bh",
    skip: str | Sequence[str] = (),
    estimand: str = "answer-distribution",
    rng: RngLike = None,
    progress: Callable[[str], None] | None = None,
) -> StabilityResult:
    """Judge whether each model's answers are stable across the levels of each design factor.

    Parameters
    ----------
    responses : Responses
        Validated responses (:func:`robustalign.make_responses`); choices, probabilities or scores.
    reference : Reference, optional
        Human reference. Gives the equivalence margin (human between-group SD of mean position) and
        the alignment used to rank models. Without it, give ``margin=`` or ``flip_margin=``.
    factors : sequence of str, optional
        Factors to assess. Default: every design factor with at least 2 levels except ``sample`` (the
        replicate index: its test-retest flip rate is the noise floor) and ``steer_target`` (see
        ``assess_steerability``). Single-level factors are skipped and recorded in ``provenance``.
    by : str
        The unit judged (default ``"model"``).
    margin : float, optional
        Equivalence margin for the factor effect in mean-position (or score) units; overrides the
        human between-group SD.
    flip_margin : float, optional
        The allowed excess of the mean modal flip rate over its noise floor (the flip rate expected under
        no effect at the sampled answers per cell); with one answer per cell, or probabilities or
        scores, the allowed flip rate itself. Used for the verdict only when no effect margin exists
        (no reference with two or more groups and no ``margin``).
    metric : str
        Alignment metric (:data:`robustalign.metrics.METRICS`) for the ranking of models or groups
        when a reference is given. The factor effect is always on mean position (or score).
    estimand : {"answer-distribution", "plug-in"}
        What the ranking's per-item similarities estimate (:data:`robustalign.scoring.ESTIMANDS`); the
        default corrects nonlinear metrics for the answers per cell. Cells too small for it are not
        ranked; their count per factor is in ``provenance["n_not_estimable"]``.
    confidence_level : float
        Level of the reported intervals (default 0.95); the TOST uses ``1 - 2 (1 - confidence_level)``.
    n_resamples : int
        Bootstrap resamples for intervals (default 2,000).
    n_permutations : int
        Random permutations for p-values (default 10,000); with ``sequential``, the most the answer nulls take.
    sequential : bool or float
        Stop drawing the answer nulls (the noise floor's and the item-level effect's) once each p-value is
        clearly on one side of alpha (:class:`robustalign.resampling.sequential.SequentialRule`: an exact
        Clopper-Pearson interval for the permutation p-value after every 1,000 draws, at risk
        ``0.001 / looks``). ``True``: at most a 0.001 chance per test of stopping on the wrong side of alpha;
        a number in (0, 0.5): that chance. Default False: every null takes ``n_permutations`` draws. The
        draws each test used are in its evidence (``n_draws``, with ``p_mcse``) and in
        ``provenance["answer_null_draws"]``; the noise floor takes every draw when its mean is the bound of
        a ``flip_margin`` verdict.
    fit : object, optional
        A fitted Bayesian response model (``robustalign.models``) with ``variance_shares()`` and a
        ``converged`` flag; its shares are added to the table, and a fit that did not converge is
        named in the verdicts.
    adjust_method : str
        Multiplicity adjustment (:func:`robustalign.multiplicity.adjust`), default Benjamini-Hochberg.
    skip : sequence of str
        Optional parts to leave out (for large simulations): any of ``"pairwise"``, ``"agreement"``,
        ``"retest"``, ``"ranking"``, ``"validity"``, ``"position_bias"``, ``"noise_floor"``,
        ``"item_level"``. The factor effects and flip rates are always computed; leaving out the noise
        floor or the item-level effect leaves them out of the verdicts too. Skipped parts are recorded in
        ``provenance``.
    rng : int, Generator or None
        Seed; recorded in ``provenance``. Every unit (``by`` value) x factor x part draws from its own
        stream (:func:`robustalign.resampling.keyed_stream`), so a unit's numbers do not depend on which
        other units are in the data.
    progress : callable, optional
        Called with a short text before each unit x factor (``"stability: model m1, factor language (3/16)"``),
        during its null draws when they run longer than ``TICK_S`` seconds (``"...: 4,000 of 10,000 null
        draws"``) and before each part computed over all units (test-retest, ranking, valid rates, verdicts),
        so that a long run is never silent; nothing else depends on it.

    Returns
    -------
    StabilityResult
        ``verdicts`` (one row per unit x factor), ``to_frame(level)`` with quantities
        ``factor_effect``, ``level_difference``, ``human_between_group_sd``, ``flip_rate_mean``,
        ``flip_rate``, ``ordinal_shift_mean``, ``ordinal_shift``, ``retest_flip_rate``,
        ``retest_shift``, ``icc2_1``, ``icc3_1``, ``krippendorff_alpha``, ``kendall_tau``,
        ``kendall_tau_mean``, ``discordant_share``, ``p_rank_flip``, ``valid_rate`` and
        ``variance_share``; ``summary()``; ``plot()`` (factor effects against the human band).

    Raises
    ------
    ValueError
        Bad arguments (named, with the value received and the fix).

    Notes
    -----
    See the module docstring for every estimator, the tie rule of the flip rate and the verdict rule.

    Examples
    --------
    >>> from robustalign.simulate import simulate
    >>> resp, ref = simulate(n_models=2, n_items=30, factors={"template": 3}, n_orders=1, n_samples=1,
    ...                      rng=0).load()
    >>> res = assess_stability(resp, ref, n_resamples=200, n_permutations=500, rng=0)
    >>> res.verdicts.columns[:3].tolist()
    ['model', 'factor', 'verdict']
    """
    level, n_resamples, n_permutations, skip = _check_args(
        responses, reference, by, metric, adjust_method, margin, flip_margin, skip, estimand, confidence_level,
        n_resamples, n_permutations)
    rule = _sequential_rule(sequential, n_permutations, level)
    design = [f for f in responses.factors if f != by]
    factors, skipped = _choose_factors(responses, factors, design)
    gen, record = as_generator(rng)

    def stream(purpose, *unit):  # one stream per purpose and unit: a unit's numbers ignore other units
        return keyed_stream(gen, f"stability.{purpose}", *unit)

    cells = _Cells(responses, by, [f for f in design if f != "sample"])
    human = _human_positions(reference) if reference is not None else None
    ofac = order_factors(responses, factors)
    parts: dict[str, list] = {k: [] for k in ("effects", "pairwise", "flips", "agreement", "margins",
                                              "position_bias", "noise_floors", "item_level")}
    n_steps = len(cells.units) * len(factors)
    for u, unit in enumerate(cells.units):
        for j, f in enumerate(factors):
            step = f"stability: {by} {unit}, factor {f} ({u * len(factors) + j + 1}/{n_steps})"
            if progress is not None:
                progress(step)
            _unit_factor(parts, responses, cells.block(unit, f), unit, f, by, human, margin, f in ofac, skip,
                         n_resamples, n_permutations, level, stream, _ticker(progress, step), rule, flip_margin)
    effects, pairwise, flips = parts["effects"], parts["pairwise"], parts["flips"]
    floors, item_lv = parts["noise_floors"], parts["item_level"]
    _adjust_families(effects, pairwise, adjust_method)

    _say(progress, "retest" not in skip, "stability: test-retest flip rates across samples, every cell")
    retest = None if "retest" in skip else _retest(responses, by, cells, n_resamples, level, stream("retest"))
    not_est: dict = {}
    _say(progress, "ranking" not in skip, f"stability: ranking of {by}s at each level of {list(factors)}")
    ranking = [] if "ranking" in skip else _ranking(responses, reference, by, factors, metric, cells, n_resamples,
                                                    level, stream("ranking", *cells.units), estimand, not_est)
    _say(progress, "validity" not in skip, "stability: valid-answer rates across levels")
    validity = {} if "validity" in skip else _validity(responses, by, factors)
    _say(progress, True, "stability: verdicts and their Monte Carlo error")
    shares, converged = _variance_shares(fit)

    pb_of = {(p["unit"], p["factor"]): p for p in parts["position_bias"]}
    verdict_rows = [_verdict(e, fl, nf, il, flip_margin, level, by, converged, fit is not None,
                             pb_of.get((e["unit"], e["factor"]))) for e, fl, nf, il in zip(effects, flips, floors, item_lv)]
    verdicts = add_mc_flags(pd.DataFrame(verdict_rows), effects, flips, floors, item_lv, flip_margin, level,
                            n_permutations)  # Monte Carlo error of each verdict (claims/_stability_mc.py)

    evidence = {
        "status_counts": cells.status_counts, "effects": effects, "pairwise": pairwise, "flips": flips,
        "retest": retest, "agreement": parts["agreement"], "ranking": ranking, "validity": validity,
        "variance_shares": shares, "margins": pd.DataFrame(parts["margins"]), "position_bias": parts["position_bias"],
        "noise_floors": floors, "item_level": item_lv, "order_factors": ofac,
    }
    provenance = {
        "rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations,
        "confidence_level": level, "tost_level": 1 - 2 * (1 - level), "factors": list(factors),
        "skipped_factors": skipped, "by": by, "margin": margin, "flip_margin": flip_margin, "metric": metric,
        "families": {"factor_effect": f"{by}s x factors", "level_difference": f"{by}s x factors x level pairs"},
        "adjust_method": adjust_method, "responses_hash": responses.data_hash(),
        "reference_hash": reference.data_hash() if reference is not None else None,
        "fit_converged": converged, "kind": responses.kind, "skipped_parts": list(skip),
        "estimand": estimand, "n_not_estimable": not_est, "null_draws": stability_nulls.NULL_DRAWS,
        "sequential": None if rule is None else rule.to_dict(),
        "answer_null_draws": _draws_used(effects, floors, item_lv, by),
    }
    res = StabilityResult(kind="stability", verdicts=verdicts, evidence=evidence, provenance=provenance,
                          confidence_level=level)
    res.build = partial(_build, res)  # a module-level function: the result pickles whole
    res.plotter = _plot
    return res


#: Seconds after which a long run of null draws inside one unit x factor reports how far it is.
TICK_S = 5.0


def _say(progress: Callable[[str], None] | None, run: bool, text: str) -> None:
    if progress is not None and run:
        progress(text)


def _ticker(progress: Callable[[str], None] | None, step: str) -> Callable[[int, int], None] | None:
    """``tick(done, total)`` for the null draws of one unit x factor: a progress line when :data:`TICK_S`
    seconds have passed since the last line, so that a large unit is not silent for long."""
    if progress is None:
        return None
    last = [time.monotonic()]

    def tick(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= TICK_S and done < total:
            last[0] = now
            progress(f"{step}: {done:,} of {total:,} null draws")

    return tick


def _check_args(responses: Responses, reference: Reference | None, by: str, metric: str, adjust_method: str,
                margin: float | None, flip_margin: float | None, skip: str | Sequence[str], estimand: str,
                confidence_level: float, n_resamples: int, n_permutations: int) -> tuple[float, int, int, tuple]:
    """Validate the arguments of :func:`assess_stability`: (level, n_resamples, n_permutations, skip)."""
    from robustalign.metrics import METRICS
    from robustalign.multiplicity import METHODS as ADJ

    if not isinstance(responses, Responses):
        raise TypeError(f"`responses` must be a Responses object (robustalign.make_responses); got "
                        f"{type(responses).__name__}.")
    if reference is not None and not isinstance(reference, Reference):
        raise TypeError(f"`reference` must be a Reference (robustalign.make_reference) or None; got "
                        f"{type(reference).__name__}.")
    level = check_confidence_level(confidence_level)
    check_choice(estimand, ("answer-distribution", "plug-in"), "estimand")
    n_resamples = check_n_resamples(n_resamples)
    n_permutations = check_n_resamples(n_permutations, "n_permutations")
    if by not in responses.data.columns:
        raise ValueError(f"`by={by!r}` is not a column of the responses; columns are "
                         f"{list(responses.data.columns)}.")
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {sorted(METRICS)}; got {metric!r}.")
    if adjust_method not in ADJ:
        raise ValueError(f"`adjust_method` must be one of {ADJ}; got {adjust_method!r}.")
    for name, val, hi in (("margin", margin, np.inf), ("flip_margin", flip_margin, 1.0)):
        if val is not None and (isinstance(val, bool) or not np.isfinite(val) or not 0 < val <= hi):
            raise ValueError(f"`{name}` must be a positive number{' at most 1' if hi == 1 else ''} or None; "
                             f"got {val!r}.")
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    bad = [s for s in skip if s not in OPTIONAL_PARTS]
    if bad:
        raise ValueError(f"`skip` entries must be in {list(OPTIONAL_PARTS)}; got {bad}.")
    return level, n_resamples, n_permutations, skip


def _choose_factors(responses: Responses, factors: str | Sequence[str] | None,
                    design: list[str]) -> tuple[list[str], list[str]]:
    """The factors to assess (checked) and the single-level factors skipped by default."""
    skipped: list[str] = []
    if factors is None:
        chosen = []
        for f in design:
            if f in NOT_ASSESSED:
                continue
            if responses.data[f].nunique() < 2:
                skipped.append(f)
            else:
                chosen.append(f)
    else:
        chosen = [factors] if isinstance(factors, str) else list(factors)
        for f in chosen:
            if f not in design:
                raise ValueError(f"`factors` entry {f!r} is not a design factor; the factors are {design}.")
            if f == "sample":
                raise ValueError("`factors` cannot include 'sample': it numbers repeated answers to one prompt; "
                                 "its test-retest flip rate is reported as the noise floor.")
            if responses.data[f].nunique() < 2:
                raise ValueError(f"factor {f!r} has a single level ({responses.data[f].iloc[0]!r}); "
                                 "stability across it cannot be assessed. Drop it from `factors`.")
    if not chosen:
        raise ValueError(f"no design factor with at least 2 levels to assess; factors are {design} "
                         f"(single-level: {skipped}). Pass `factors=`.")
    return chosen, skipped


def _sequential_rule(sequential: bool | float | None, n_permutations: int, level: float) -> SequentialRule | None:
    """The stopping rule of the answer nulls (None: fixed count); the verdicts compare their p-values with
    alpha alone (unadjusted), so that is the one threshold."""
    if sequential is None or sequential is False:
        return None
    if sequential is True:
        return SequentialRule(n_permutations, (1 - level,))
    if isinstance(sequential, (int, float)) and not isinstance(sequential, bool):
        return SequentialRule(n_permutations, (1 - level,), risk=float(sequential))
    raise ValueError(f"`sequential` must be True, False or a risk in (0, 0.5) such as 0.001; got {sequential!r}.")


def _draws_used(effects: list, floors: list, item_lv: list, by: str) -> list[dict]:
    """The answer-null draws each unit x factor's tests used (the noise floor's and the item-level's)."""
    return [{by: e["unit"], "factor": e["factor"], "noise_floor": None if nf is None else nf["n_draws"],
             "item_level": None if il is None else il["n_draws"]} for e, nf, il in zip(effects, floors, item_lv)]


def _unit_factor(parts: dict, responses: Responses, blk: dict, unit, f: str, by: str, human, margin, is_order: bool,
                 skip: tuple, n_resamples: int, n_permutations: int, level: float, stream, tick=None,
                 rule: SequentialRule | None = None, flip_margin: float | None = None) -> None:
    """Every part of one unit x factor, appended to the lists of ``parts``."""
    eff = _factor_effect(blk, n_resamples, n_permutations, level, stream("effect", unit, f))
    eff.update(unit=unit, factor=f)
    delta, n_delta = _margin(margin, human, blk, eff["items_used"])
    eff.update(margin=delta)
    parts["margins"].append({by: unit, "factor": f, "margin": delta, "n_items": n_delta,
                             "source": "margin=" if margin is not None else ("reference" if human is not None
                                                                            else "none")})
    parts["effects"].append(eff)
    if "pairwise" not in skip:
        parts["pairwise"].append(_pairwise(blk, unit, f, n_resamples, n_permutations, level,
                                           stream("pairwise", unit, f)))
    fl = _flips(blk, unit, f, n_resamples, level, stream("flips", unit, f))
    parts["flips"].append(fl)
    obs = float(fl["flip"]["mean"].estimate[0]) if fl.get("flip") is not None else np.nan
    # the noise floor and the item-level null share one set of draws (the same null: answers re-allocated
    # among levels within strata); the item-level bootstrap keeps a stream of its own
    # the floor's mean bounds a flip_margin verdict when there is no effect margin: then it takes every draw
    floor_mean = flip_margin is not None and not (np.isfinite(delta) and np.isfinite(eff["estimate"]))
    nf, il = answer_nulls(blk, obs, n_resamples, n_permutations, level, stream("answer_null", unit, f),
                          stream("item_level", unit, f), "noise_floor" not in skip, "item_level" not in skip, tick,
                          rule, floor_mean)
    parts["noise_floors"].append(nf)
    parts["item_level"].append(il)
    if is_order and "position_bias" not in skip:
        pb = position_bias(blk, shown_positions(responses, blk, f), n_resamples, n_permutations, level,
                           stream("position_bias", unit, f))
        if pb is not None:
            parts["position_bias"].append({**pb, "unit": unit, "factor": f})
    if "agreement" not in skip:
        parts["agreement"].append(_agreement(blk, unit, f, responses.kind, n_resamples, level,
                                             stream("agreement", unit, f)))


def _adjust_families(effects: list, pairwise: list, adjust_method: str) -> None:
    """Multiplicity over the declared families: factor effects, and pairwise level differences."""
    from robustalign.multiplicity import adjust

    padj = adjust([float(e["p_value"]) for e in effects], adjust_method)
    for e, pa in zip(effects, padj):
        e["p_adjusted"] = pa
    pw_p = np.concatenate([pw["p_value"] for pw in pairwise]) if pairwise else np.array([])
    pw_adj = adjust(pw_p.tolist(), adjust_method) if pw_p.size else pw_p
    k = 0
    for pw in pairwise:
        n = len(pw["p_value"])
        pw["p_adjusted"] = pw_adj[k:k + n]
        k += n


# --------------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------------
class _Cells:
    """Cell distributions and positions per unit x item x design cell (samples pooled)."""

    def __init__(self, responses: Responses, by: str, design: list[str]):
        self.by = by
        self.design = design
        self.kind = responses.kind
        self.scales = responses.scales
        d = responses.data
        self.status_counts = responses.status_counts([by]).reset_index()
        keys, P = responses.distributions([by, "item", *design])
        self.keys = keys
        self.P = P
        self.pos = _positions(responses, keys["item"], P)
        self.units = sorted(d[by].unique(), key=str)
        self.levels = {f: sorted(d[f].unique(), key=sort_key) for f in design}

    def block(self, unit, factor) -> dict:
        """Arrays for one unit and factor: strata (item x other cells) x levels."""
        m = (self.keys[self.by] == unit).to_numpy()
        keys = self.keys[m].reset_index(drop=True)
        P, pos = self.P[m], self.pos[m]
        others = [f for f in self.design if f != factor]
        levels = self.levels[factor]
        lev = keys[factor].map({v: i for i, v in enumerate(levels)}).to_numpy()
        st_cols = ["item", *others]
        st_codes = keys.groupby(st_cols, sort=True, observed=True).ngroup().to_numpy()
        items_all = sorted(keys["item"].unique(), key=str)
        item_pos = keys["item"].map({v: i for i, v in enumerate(items_all)}).to_numpy()
        S, L, Kx = int(st_codes.max()) + 1, len(levels), P.shape[1]
        item_idx = np.zeros(S, int)
        item_idx[st_codes] = item_pos
        X = np.full((S, L), np.nan)
        X[st_codes, lev] = pos
        D = np.full((S, L, Kx), np.nan)
        D[st_codes, lev] = P
        N = None
        if self.kind == "choice":  # answer counts per cell (the noise floor and item-level noise need them)
            N = np.zeros((S, L))
            N[st_codes, lev] = keys["n"].to_numpy(float)
        Q = len(items_all)
        # item x level: equal-weight means over the item's other-factor cells
        xi = np.full((Q, L), np.nan)
        pi = np.full((Q, L, Kx), np.nan)
        for q in range(Q):
            rows = item_idx == q
            if rows.any():
                xi[q] = nanmean(X[rows])
                pi[q] = nanmean(D[rows])
        ordinal_items = np.array([self.kind == "score" or self.scales[i].ordinal for i in items_all])
        return {"X": X, "D": D, "N": N, "item_of_stratum": item_idx, "items": items_all, "levels": levels,
                "xi": xi, "pi": pi, "ordinal": ordinal_items, "K": np.array(
                    [2 if self.kind == "score" else self.scales[i].K for i in items_all])}


def _positions(responses: Responses, items, P: np.ndarray) -> np.ndarray:
    """Answer position on [0, 1] of distributions ``P`` (one row per entry of ``items``): the mean
    position on ordinal items, NaN on nominal ones; for score data the score."""
    from robustalign.metrics import mean_position

    if responses.kind == "score":
        return P[:, 1]
    codes, uniq = pd.factorize(np.asarray(items))  # one look-up per item, not per row (rows run to millions)
    K = np.array([responses.scales[i].K for i in uniq], dtype=np.int64)[codes]
    ordinal = np.array([responses.scales[i].ordinal for i in uniq], dtype=bool)[codes]
    return np.where(ordinal, mean_position(P, K, check=False), np.nan)


def _human_positions(reference: Reference) -> pd.DataFrame:
    """Mean position per item (rows) x group (columns), ordinal items only."""
    from robustalign.scoring import human_profiles

    items = reference.items
    mp = human_profiles(reference, items)
    mp[~reference.ordinal(items)] = np.nan
    return pd.DataFrame(mp, index=items, columns=reference.groups)


def _margin(margin, human, blk, items_used):
    if margin is not None:
        return float(margin), len(items_used)
    if human is None:
        return np.nan, 0
    from robustalign.metrics import between_group_sd

    h = human.reindex([i for i in items_used if i in human.index])
    if len(h) == 0:
        return np.nan, 0
    return float(between_group_sd(h.to_numpy(float), ddof=1)), int(len(h))


def _quiet(fn, *args, **kwargs):
    """Call a bootstrap; degenerate replicates (e.g. a rate that is 0 in every resample) are a finding
    reported through the interval itself, so their warning is recorded instead of raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DegenerateResampleWarning)
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, DegenerateResampleWarning)]


# --------------------------------------------------------------------------------------------------
# factor effect
# --------------------------------------------------------------------------------------------------
def _factor_effect(blk, n_resamples, n_permutations, level, gen) -> dict:
    X, item_of = blk["X"], blk["item_of_stratum"]
    # levels at which the unit has no valid answer at all cannot be compared; they are left out (recorded)
    present = np.isfinite(X).any(0)
    if present.sum() < 2:
        out = _empty_effect(blk, "factor effect", 0)
        if not blk["ordinal"].any():
            out["why_empty"] = "nominal items have no answer position"
        elif np.isfinite(blk["X"]).any(0).sum() == 1:
            out["why_empty"] = "valid answers at one level only"
        return out
    if not present.all():
        missing = [lv for lv, p in zip(blk["levels"], present) if not p]
        sub = {**blk, "X": X[:, present], "levels": [lv for lv, p in zip(blk["levels"], present) if p]}
        out = _factor_effect(sub, n_resamples, n_permutations, level, gen)
        out["levels_without_valid_answers"] = missing
        out["method"] += f"; levels without any valid answer left out: {missing}"
        return out
    L = X.shape[1]
    Q = len(blk["items"])
    g_boot, g_perm = gen.spawn(2)
    if L == 2:
        ds = X[:, 1] - X[:, 0]
        ok = np.isfinite(ds)
        per_item = np.bincount(item_of[ok], minlength=Q)
        usable_items = np.flatnonzero(per_item > 0)
        if len(usable_items) < 2:
            return _empty_effect(blk, "paired mean difference", len(usable_items))
        w = np.where(ok, 1.0 / np.maximum(per_item[item_of], 1), 0.0)
        dq = np.bincount(item_of[ok], weights=ds[ok], minlength=Q)[usable_items] / per_item[usable_items]
        boot, warn = _quiet(cluster_bootstrap, dq[:, None], labels=["effect"], n_resamples=n_resamples,
                            confidence_level=level, rng=g_boot)
        S_ok = ok.sum()
        dprime = (ds[ok] * w[ok]) * S_ok / len(usable_items)
        perm = sign_flip_test(dprime, n_resamples=n_permutations, rng=g_perm)
        return {"kind": "mean_difference", "estimate": float(dq.mean()), "boot": boot, "p_value":
                float(perm.p_value[0]), "n_items": len(usable_items), "sd_d": float(np.std(dq, ddof=1)),
                "items_used": [blk["items"][i] for i in usable_items], "levels": blk["levels"],
                "method": "paired mean difference (level b - level a), cluster bootstrap (bca); "
                          "stratified sign-flip test", "warnings": warn, "n_strata": int(S_ok)}
    obs = np.isfinite(X)
    n_s = obs.sum(1)
    use = n_s >= 2
    per_item = np.bincount(item_of[use], minlength=Q)
    usable_items = np.flatnonzero(per_item > 0)
    if len(usable_items) < 2:
        return _empty_effect(blk, "SD of level effects", len(usable_items))
    Xu, obs_u, item_u = X[use], obs[use], item_of[use]
    w = 1.0 / per_item[item_u]
    mean_s = np.nansum(Xu, 1) / obs_u.sum(1)
    c = np.where(obs_u, Xu - mean_s[:, None], 0.0)  # centred values, 0 where absent
    Cs = obs_u[:, :, None] * np.eye(L)[None] - (obs_u[:, :, None] * obs_u[:, None, :]) / obs_u.sum(1)[:, None, None]
    # per item (weighted) normal-equation pieces: the bootstrap resamples items
    remap = {q: j for j, q in enumerate(usable_items)}
    jj = np.array([remap[q] for q in item_u])
    Cq = np.zeros((len(usable_items), L, L))
    rq = np.zeros((len(usable_items), L))
    np.add.at(Cq, jj, w[:, None, None] * Cs)
    np.add.at(rq, jj, w[:, None] * c)
    est = _sd_effects(Cq[None], rq[None])[0]
    boot, warn = _quiet(cluster_bootstrap, (Cq, rq), statistic=_sd_effects_stat, labels=["effect"],
                        n_resamples=n_resamples, confidence_level=level, rng=g_boot)
    null = spread_permutation_null(c, obs_u, w, Cq.sum(0), n_permutations, g_perm)
    pval = (float(permutation_p_values(np.array([est]), null[:, None], "greater")[0])
            if np.isfinite(null).all() and np.isfinite(est) else np.nan)
    return {"kind": "spread", "estimate": float(est), "boot": boot, "p_value": float(pval),
            "n_items": len(usable_items), "items_used": [blk["items"][i] for i in usable_items],
            "levels": blk["levels"], "null": null, "warnings": warn, "n_strata": int(use.sum()),
            "method": "SD (ddof=1) of additive-model level effects, cluster bootstrap (bca); "
                      "stratified permutation test"}


def _empty_effect(blk, what, n):
    return {"kind": "mean_difference" if len(blk["levels"]) == 2 else "spread", "estimate": np.nan,
            "boot": None, "p_value": np.nan, "n_items": n, "items_used": [], "levels": blk["levels"],
            "method": f"{what}: fewer than 2 items with valid answers at 2 levels", "warnings": []}


def _effects_from(C: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Least-squares level effects (min-norm, sum to zero when connected); NaN if not connected."""
    L = C.shape[-1]
    pinv = np.linalg.pinv(C, hermitian=True)
    beta = np.einsum("...ij,...j->...i", pinv, r)
    # numerical rank with a tolerance relative to the largest eigenvalue: the null direction (all levels
    # shifted together) has an eigenvalue at rounding level, which np.linalg.matrix_rank's default
    # tolerance (eps x size x largest) sometimes counted as nonzero, giving NaN effects by chance
    ev = np.linalg.eigvalsh(C)
    rank = (ev > 1e-9 * np.maximum(ev.max(-1, keepdims=True), 1e-300)).sum(-1)
    return np.where((rank == L - 1)[..., None], beta, np.nan)


def _sd_effects(Cq, rq):
    beta = _effects_from(Cq.sum(1), rq.sum(1))
    return np.std(beta, axis=-1, ddof=1)


def _sd_effects_stat(Cq, rq):
    return _sd_effects(Cq, rq)[:, None]


# --------------------------------------------------------------------------------------------------
# pairwise level differences, flips, agreement
# --------------------------------------------------------------------------------------------------
def _pairs(L):
    return list(combinations(range(L), 2))


def _pairwise(blk, unit, factor, n_resamples, n_permutations, level, gen) -> dict:
    X, item_of = blk["X"], blk["item_of_stratum"]
    L, Q = X.shape[1], len(blk["items"])
    pairs = _pairs(L)
    dq = np.full((Q, len(pairs)), np.nan)
    for j, (a, b) in enumerate(pairs):
        ds = X[:, b] - X[:, a]
        ok = np.isfinite(ds)
        n = np.bincount(item_of[ok], minlength=Q)
        s = np.bincount(item_of[ok], weights=ds[ok], minlength=Q)
        with np.errstate(invalid="ignore", divide="ignore"):
            dq[:, j] = np.where(n > 0, s / n, np.nan)
    keep = np.isfinite(dq).sum(0) >= 2
    lab = pd.DataFrame({"level_a": [blk["levels"][a] for a, _ in pairs], "level_b": [blk["levels"][b] for _, b in pairs]})
    out = {"unit": unit, "factor": factor, "labels": lab, "boot": None, "p_value": np.full(len(pairs), np.nan),
           "n_items": np.isfinite(dq).sum(0), "estimate": nanmean(dq)}
    if L == 2 or not keep.any():
        return out
    g1, g2 = gen.spawn(2)
    rows = np.isfinite(dq[:, keep]).any(1)
    boot, _ = _quiet(cluster_bootstrap, dq[rows][:, keep], labels=lab[keep], n_resamples=n_resamples,
                     confidence_level=level, rng=g1)
    perm = sign_flip_test(dq[rows][:, keep], n_resamples=n_permutations, rng=g2)
    p = np.full(len(pairs), np.nan)
    p[keep] = perm.p_value
    out.update(boot=boot, p_value=p, keep=keep)
    return out


def _flips(blk, unit, factor, n_resamples, level, gen) -> dict:
    from robustalign.metrics import plurality_agreement

    pi, xi = blk["pi"], blk["xi"]
    Q, L = xi.shape
    pairs = _pairs(L)
    F = np.full((Q, len(pairs)), np.nan)
    Sh = np.full((Q, len(pairs)), np.nan)
    for j, (a, b) in enumerate(pairs):
        ok = np.isfinite(pi[:, a, 0]) & np.isfinite(pi[:, b, 0])
        if ok.any():
            F[ok, j] = 1.0 - plurality_agreement(pi[ok, a], pi[ok, b], tie_tol=_TIE_TOL, check=False)
        Sh[:, j] = np.abs(xi[:, b] - xi[:, a])
    lab = pd.DataFrame({"level_a": [blk["levels"][a] for a, _ in pairs],
                        "level_b": [blk["levels"][b] for _, b in pairs]})
    out = {"unit": unit, "factor": factor, "labels": lab, "F": F, "Sh": Sh, "n_items": np.isfinite(F).sum(0),
           "n_items_shift": np.isfinite(Sh).sum(0), "items": blk["items"]}
    g1, g2 = gen.spawn(2)
    for name, M, g in (("flip", F, g1), ("shift", Sh, g2)):
        keep = np.isfinite(M).sum(0) >= 1
        if not keep.any():
            out[name] = None
            continue
        rows = np.isfinite(M[:, keep]).any(1)
        boot, warn = _quiet(cluster_bootstrap, M[rows][:, keep], labels=lab[keep], n_resamples=n_resamples,
                            confidence_level=level, rng=g)
        mean = boot.apply(lambda s: _row_nanmean(s, axis=-1, keepdims=True), labels=["mean over level pairs"])
        out[name] = {"pairs": boot, "mean": mean, "keep": keep, "warnings": warn,
                     "n_items_mean": int(rows.sum())}
    return out


def _agreement(blk, unit, factor, kind, n_resamples, level, gen) -> dict:
    xi, pi, ordinal = blk["xi"], blk["pi"], blk["ordinal"]
    Q, L = xi.shape
    out = {"unit": unit, "factor": factor}
    # ICC on items answered at every level (ordinal items: positions are meaningful)
    comp = np.isfinite(xi).all(1) & ordinal
    out["icc_n_items"] = int(comp.sum())
    out["icc"] = _icc(xi[comp]) if comp.sum() >= 3 and np.nanvar(xi[comp]) > 0 else None
    # Krippendorff's alpha
    if kind == "score":
        lvl: Literal["nominal", "ordinal", "interval"] = "interval"
        values = xi.copy()
    else:
        modal = np.full((Q, L), np.nan)
        ok = np.isfinite(pi[..., 0])
        top = pi >= np.nanmax(np.where(np.isfinite(pi), pi, -1), axis=-1, keepdims=True) - _TIE_TOL
        single = ok & (top.sum(-1) == 1)
        k = np.argmax(top, axis=-1)
        if ordinal.all():
            pos = k / (blk["K"][:, None] - 1)
            modal[single] = np.round(pos[single], 12)
            lvl = "ordinal"
        else:
            code = k + 1000 * np.arange(Q)[:, None]  # option identity is item-specific
            modal[single] = code[single]
            lvl = "nominal"
        out["alpha_ties_missing"] = int((ok & ~single).sum())
        values = modal
    out["alpha_level"] = lvl
    pairable = np.isfinite(values).sum(1) >= 2
    out["alpha_n_items"] = int(pairable.sum())
    domain = np.unique(values[np.isfinite(values)])
    if pairable.sum() >= 2 and len(domain) >= 2:
        import krippendorff

        out["alpha"] = float(krippendorff.alpha(reliability_data=values.T, level_of_measurement=lvl))
        counts = np.stack([(values == v).sum(1) for v in domain], axis=1).astype(float)[pairable]
        o = _unit_coincidences(counts)
        delta2 = None if lvl == "ordinal" else _delta2(domain, lvl)
        stat = _alpha_stat(delta2, lvl)
        boot, warn = _quiet(cluster_bootstrap, o, statistic=stat, labels=["alpha"], n_resamples=n_resamples,
                            confidence_level=level, rng=gen)
        out["alpha_boot"] = boot
        out["alpha_check"] = float(stat(o[None])[0, 0])
    else:
        out["alpha"] = np.nan
        out["alpha_boot"] = None
    return out


def _icc(x: np.ndarray) -> dict:
    """ICC(A,1) and ICC(C,1) of a complete items x raters matrix from its two-way mean squares (McGraw &
    Wong 1996, the formulas of pingouin's ``intraclass_corr``, which the tests hold it to) and the mean
    squares themselves (for the F-test intervals)."""
    ms = _mean_squares(x)
    msb, msj, mse, n, k = ms["msb"], ms["msj"], ms["mse"], ms["n"], ms["k"]
    with np.errstate(invalid="ignore", divide="ignore"):  # perfect agreement: a zero error mean square
        icc_a = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
        icc_c = (msb - mse) / (msb + (k - 1) * mse)
    return {"ICC(A,1)": float(icc_a), "ICC(C,1)": float(icc_c), "ms": ms}


def _mean_squares(x: np.ndarray) -> dict:
    """Two-way ANOVA mean squares of a complete items x raters matrix (for F-test ICC intervals)."""
    n, k = x.shape
    g = x.mean()
    ssb = k * ((x.mean(1) - g) ** 2).sum()
    ssj = n * ((x.mean(0) - g) ** 2).sum()
    sse = ((x - g) ** 2).sum() - ssb - ssj
    return {"msb": ssb / (n - 1), "msj": ssj / (k - 1), "mse": sse / ((n - 1) * (k - 1)), "n": n, "k": k}


def _icc_ci(ms: dict, kind: str, level: float) -> tuple[float, float]:
    """F-test intervals of ICC(A,1) and ICC(C,1) (McGraw & Wong 1996; the formulas pingouin uses)."""
    f = stats.f
    msb, msj, mse, n, k = ms["msb"], ms["msj"], ms["mse"], ms["n"], ms["k"]
    a = 1 - level
    df1, df2 = n - 1, (n - 1) * (k - 1)
    if mse <= 0:  # perfect agreement: the F-test interval is degenerate
        return np.nan, np.nan
    f3 = msb / mse
    if kind == "ICC(C,1)":
        fl = f3 / f.ppf(1 - a / 2, df1, df2)
        fu = f3 * f.ppf(1 - a / 2, df2, df1)
        return (fl - 1) / (fl + (k - 1)), (fu - 1) / (fu + (k - 1))
    icc2 = (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)
    fj = msj / mse
    vn = df2 * (k * icc2 * fj + n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    vd = df1 * k**2 * icc2**2 * fj**2 + (n * (1 + (k - 1) * icc2) - k * icc2) ** 2
    v = vn / vd
    f2u = f.ppf(1 - a / 2, n - 1, v)
    f2l = f.ppf(1 - a / 2, v, n - 1)
    lo = n * (msb - f2u * mse) / (f2u * (k * msj + (k * n - k - n) * mse) + n * msb)
    hi = n * (f2l * msb - mse) / (k * msj + (k * n - k - n) * mse + n * f2l * msb)
    return lo, hi


def _unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Per-unit coincidence matrices o_u[c, k] = (m_c m_k - [c = k] m_c) / (m_u - 1)."""
    m = counts.sum(1)
    o = counts[:, :, None] * counts[:, None, :]
    idx = np.arange(counts.shape[1])
    o[:, idx, idx] -= counts
    return o / (m - 1)[:, None, None]


def _delta2(domain, lvl):
    if lvl == "nominal":
        return 1.0 - np.eye(len(domain))
    return (domain[:, None] - domain[None, :]) ** 2


def _alpha_stat(delta2, lvl):
    """Krippendorff's alpha from resampled per-unit coincidence matrices (vectorised over resamples)."""

    def stat(o):
        co = o.sum(1)  # coincidences (B, V, V)
        nc = co.sum(-1)
        n = nc.sum(-1)
        if lvl == "ordinal":
            cum = np.cumsum(nc, axis=-1)
            V = nc.shape[-1]
            # d2[c, k] = (sum_{g = min..max} n_g - (n_c + n_k) / 2)^2
            a = cum[:, None, :] - cum[:, :, None] + nc[:, :, None]  # c <= k
            b = cum[:, :, None] - cum[:, None, :] + nc[:, None, :]  # c >= k
            tri = np.arange(V)[:, None] <= np.arange(V)[None, :]
            d2 = (np.where(tri, a, b) - (nc[:, :, None] + nc[:, None, :]) / 2) ** 2
        else:
            d2 = delta2[None]
        do = (co * d2).sum((-2, -1))
        de = (nc[:, :, None] * nc[:, None, :] * d2).sum((-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (1 - (n - 1) * do / de)[:, None]

    return stat


# --------------------------------------------------------------------------------------------------
# test-retest noise floor
# --------------------------------------------------------------------------------------------------
def _retest(responses, by, cells, n_resamples, level, gen) -> pd.DataFrame | None:
    if "sample" not in responses.data or responses.data["sample"].nunique() < 2:
        return None
    key = [by, "item", *cells.design]
    if responses.kind == "choice":  # one answer per row: each cell's counts are all it takes (no pass per row)
        ck = cells.keys[key].copy()
        flip, shift = _retest_counts(responses, cells.keys["item"], cells.keys["n"].to_numpy(float), cells.P)
    else:
        v, P = responses.distributions([*key, "row"])  # one valid answer per row: its own distribution
        pos = _positions(responses, v["item"], P)
        g = v.groupby(key, sort=True, observed=True)
        codes = g.ngroup().to_numpy()
        ck = g.size().index.to_frame(index=False)
        if np.all((P == 0) | (P == 1)):  # one answer per row: closed forms over each cell's answers
            flip, shift = _retest_one_hot(codes, len(ck), P, pos)
        else:
            flip, shift = _retest_pairs(codes, len(ck), P, pos)
    ck["flip"], ck["shift"] = flip, shift
    per_item = ck.groupby([by, "item"], observed=True)[["flip", "shift"]].mean().reset_index()
    wide_f = per_item.pivot(index="item", columns=by, values="flip")
    wide_s = per_item.pivot(index="item", columns=by, values="shift")
    out = []
    g1, g2 = gen.spawn(2)
    for q, W, gg in (("retest_flip_rate", wide_f, g1), ("retest_shift", wide_s, g2)):
        keep = W.notna().sum(axis=0) >= 1
        if not keep.any():
            continue
        W = W.loc[:, keep]
        W = W[W.notna().any(axis=1)]
        boot, warn = _quiet(cluster_bootstrap, W.to_numpy(float), labels=pd.DataFrame({by: list(W.columns)}),
                            n_resamples=n_resamples, confidence_level=level, rng=gg)
        out.append({"quantity": q, "boot": boot, "n_items": W.notna().sum(axis=0).to_numpy(), "warnings": warn})
    return {"tables": out, "cells": ck}


def _retest_counts(responses: Responses, items: pd.Series, m: np.ndarray, P: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_retest_one_hot` from each cell's answer distribution ``P`` (cells, K_max) and number of
    answers ``m`` (choice data). With ``c_k`` answers of option k at position ``x_k = k / (K - 1)``, the
    share of pairs that differ is ``1 - sum_k c_k (c_k - 1) / (m (m - 1))`` and the sum of pairwise
    distances ``sum_{k < l} c_k c_l (x_l - x_k)``; nominal items have no positions (NaN)."""
    codes, uniq = pd.factorize(np.asarray(items))
    K = np.array([responses.scales[i].K for i in uniq], dtype=float)[codes]
    ordinal = np.array([responses.scales[i].ordinal for i in uniq], dtype=bool)[codes]
    c = np.rint(P * m[:, None])  # answer counts (P holds counts / m)
    x = np.arange(P.shape[1]) / np.maximum(K - 1, 1)[:, None]  # options beyond K have no answers
    cx = c * x
    pairs = m * (m - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        flip = 1 - (c * (c - 1)).sum(1) / pairs
        dist = (cx * (np.cumsum(c, 1) - c) - c * (np.cumsum(cx, 1) - cx)).sum(1)  # each pair once: k below l
        shift = np.where(ordinal, dist / (pairs / 2), np.nan)
    ok = m >= 2
    return np.where(ok, flip, np.nan), np.where(ok, shift, np.nan)


def _retest_one_hot(codes: np.ndarray, n_cells: int, P: np.ndarray, pos: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Mean over all pairs of a cell's answers of (option differs, |position difference|), for one-hot rows.

    With ``c_k`` answers of option k among m, the share of pairs that differ is
    ``1 - sum_k c_k (c_k - 1) / (m (m - 1))``; with the positions sorted, ``x_(0) <= ... <= x_(m-1)``, the
    sum of pairwise distances is ``sum_r (2 r - m + 1) x_(r)``. Memory and time are linear in the answers
    (all pairs of 2,000 answers per cell, as when personas pool into one cell, took tens of GB)."""
    m = np.bincount(codes, minlength=n_cells).astype(float)
    counts = np.zeros((n_cells, P.shape[1]))
    np.add.at(counts, codes, P)
    pairs = m * (m - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        flip = 1 - (counts * (counts - 1)).sum(1) / pairs
        order = np.lexsort((pos, codes))  # by cell, then position (NaN last within the cell)
        start = np.concatenate([[0], np.cumsum(m)[:-1]]).astype(int)
        rank = np.arange(len(codes)) - start[codes[order]]
        w = 2 * rank - (m[codes[order]] - 1)
        dist = np.zeros(n_cells)
        np.add.at(dist, codes[order], w * pos[order])  # NaN positions (nominal items) give NaN
        shift = dist / (pairs / 2)
    ok = m >= 2
    return np.where(ok, flip, np.nan), np.where(ok, shift, np.nan)


def _retest_pairs(codes: np.ndarray, n_cells: int, P: np.ndarray, pos: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_retest_one_hot` for rows that are distributions (probabilities): every pair compared,
    in blocks of cells small enough to keep memory bounded."""
    from robustalign.metrics import plurality_agreement

    flip = np.full(n_cells, np.nan)
    shift = np.full(n_cells, np.nan)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_cells + 1))
    sizes = np.diff(bounds)
    for m in np.unique(sizes[sizes >= 2]):  # cells with m answers at once: all their pairs of answers
        i, j = np.triu_indices(m, 1)
        cs_all = np.flatnonzero(sizes == m)
        step = max(1, 2_000_000 // max(len(i) * P.shape[1], 1))
        for s in range(0, len(cs_all), step):
            cs = cs_all[s:s + step]
            rows = order[bounds[cs][:, None] + np.arange(m)[None, :]]  # (cells, m), in row order as before
            a, b = P[rows[:, i]], P[rows[:, j]]
            flip[cs] = np.mean(1 - plurality_agreement(a, b, tie_tol=_TIE_TOL, check=False), axis=1)
            shift[cs] = np.mean(np.abs(pos[rows[:, i]] - pos[rows[:, j]]), axis=1)
    return flip, shift


# --------------------------------------------------------------------------------------------------
# ranking changes
# --------------------------------------------------------------------------------------------------
def _ranking(responses, reference, by, factors, metric, cells, n_resamples, level, gen, estimand="answer-distribution",
             not_est=None) -> list:
    out = []
    units = cells.units
    for f, g in zip(factors, gen.spawn(len(factors))):
        levels = cells.levels[f]
        if reference is not None:
            from robustalign.scoring import item_scores

            sc = item_scores(responses, reference, metric=metric, by=[by, f], estimand=estimand)
            if not_est is not None:
                not_est[f] = sc.attrs.get("n_not_estimable", 0)
            if sc.empty:
                continue
            if len(units) >= 2:
                agg = sc.groupby([by, f, "item"], observed=True)["score"].mean().reset_index()
                ukey, what = by, f"mean {metric} alignment with the reference groups"
            else:
                agg = sc.rename(columns={"group": "_unit"})[["_unit", f, "item", "score"]]
                ukey, what = "_unit", f"{metric} alignment of {units[0]} with each group"
            agg = agg.rename(columns={"score": "value"})
        elif len(units) >= 2:
            agg = pd.DataFrame({by: cells.keys[by], f: cells.keys[f], "item": cells.keys["item"], "value": cells.pos})
            agg = agg.groupby([by, f, "item"], observed=True)["value"].mean().reset_index()
            ukey, what = by, "mean position"
        else:
            continue
        agg = agg.dropna(subset=["value"])
        wide = agg.pivot_table(index="item", columns=[ukey, f], values="value", observed=True)
        rank_units = sorted(agg[ukey].unique(), key=str)
        if len(rank_units) < 2:
            continue
        cols = pd.MultiIndex.from_product([rank_units, levels])
        wide = wide.reindex(columns=cols)
        lab = pd.DataFrame({"unit": [c[0] for c in cols], "level": [c[1] for c in cols]})
        keepc = wide.notna().any(axis=0).to_numpy()
        if not keepc.all():
            wide = wide.loc[:, keepc]
            lab = lab[keepc].reset_index(drop=True)
        wide = wide[wide.notna().any(axis=1)]
        boot, warn = _quiet(cluster_bootstrap, wide.to_numpy(float), labels=lab, n_resamples=n_resamples,
                            confidence_level=level, rng=g)
        out.append(_rank_changes(boot, f, ukey if ukey != "_unit" else "group", what, warn, int(len(wide))))
    return out


def _rank_changes(boot, factor, unit_name, what, warn, n_items) -> dict:
    lab = boot.labels
    levels = list(dict.fromkeys(lab["level"]))
    units = list(dict.fromkeys(lab["unit"]))
    col = {(u, lv): i for i, (u, lv) in enumerate(zip(lab["unit"], lab["level"]))}
    upairs = list(combinations(units, 2))
    tau_rows, flip_rows = [], []
    tau_b = []
    for la, lb in combinations(levels, 2):
        us = [u for u in units if (u, la) in col and (u, lb) in col]
        if len(us) < 2:
            continue
        ia = [col[(u, la)] for u in us]
        ib = [col[(u, lb)] for u in us]
        t_obs = stats.kendalltau(boot.estimate[ia], boot.estimate[ib]).statistic
        pi, pj = np.triu_indices(len(us), 1)

        def signs(M, idx, pi=pi, pj=pj):
            return np.sign(M[..., np.array(idx)[pi]] - M[..., np.array(idx)[pj]])

        sa, sb = signs(boot.resamples, ia), signs(boot.resamples, ib)
        with np.errstate(invalid="ignore", divide="ignore"):
            tb = (sa * sb).sum(1) / np.sqrt((sa != 0).sum(1) * (sb != 0).sum(1))
        tau_b.append(tb)
        ea, eb = signs(boot.estimate[None], ia)[0], signs(boot.estimate[None], ib)[0]
        disc = float(np.mean(ea * eb < 0))
        tau_rows.append({"level_a": la, "level_b": lb, "tau": t_obs, "discordant": disc, "n_units": len(us),
                         "boot": tb})
        flip = np.mean(sa * sb < 0, axis=0)
        for k, (x, y) in enumerate(zip(pi, pj)):
            flip_rows.append({"unit_a": us[x], "unit_b": us[y], "level_a": la, "level_b": lb, "p_flip": flip[k],
                              "observed_flip": bool(ea[k] * eb[k] < 0)})
    return {"factor": factor, "unit_name": unit_name, "what": what, "boot": boot, "taus": tau_rows,
            "flips": pd.DataFrame(flip_rows), "tau_boot": np.column_stack(tau_b) if tau_b else None,
            "warnings": warn, "n_items": n_items, "unit_pairs": upairs}


# --------------------------------------------------------------------------------------------------
# validity, Bayesian shares, verdicts
# --------------------------------------------------------------------------------------------------
def _validity(responses, by, factors) -> dict:
    if "status" not in responses.data:
        return {}
    from robustalign.validity import validity_rates

    out = {}
    for f in factors:
        try:
            out[f] = validity_rates(responses, by=[by], condition=f)
        except ValueError:  # repeated answers per item x level: rates without the paired test
            out[f] = validity_rates(responses, by=[by, f])
    return out


def _variance_shares(fit):
    if fit is None:
        return None, None
    if not hasattr(fit, "variance_shares"):
        raise ValueError("`fit` must be a fitted Bayesian model from robustalign.models (with "
                         f"`variance_shares()`); got {type(fit).__name__}.")
    shares = fit.variance_shares()
    conv = getattr(fit, "converged", None)
    conv = conv() if callable(conv) else conv
    return (shares.reset_index() if isinstance(shares, pd.DataFrame) and shares.index.name else shares,
            None if conv is None else bool(conv))


def ci_frame(boot, level, n_items=None):
    """``boot.to_frame(level)`` with BCa, falling back to the percentile interval for the statistics
    whose BCa interval is undefined (e.g. a flip rate that is 0 in most resamples); ``method`` says which.

    For rates (``n_items`` given), a rate of exactly 0 or 1 has a bootstrap interval of width 0 (every
    resample agrees); it is replaced by the Wilson interval for 0 (or n) of ``n_items`` items, so that
    "no flip on 11 items" is not reported as certainty."""
    f = boot.to_frame(level, method="bca_or_percentile" if boot.method == "bca" else None)
    if n_items is not None:
        from statsmodels.stats.proportion import proportion_confint

        n = np.broadcast_to(np.asarray(n_items, float), (len(f),))
        est = f["estimate"].to_numpy(float)
        edge = ((est == 0) | (est == 1)) & (f["conf_low"].to_numpy(float) == f["conf_high"].to_numpy(float)) & (n > 0)
        if edge.any():
            lo, hi = proportion_confint(np.round(est[edge] * n[edge]), n[edge], alpha=1 - level, method="wilson")
            f.loc[edge, "conf_low"], f.loc[edge, "conf_high"] = lo, hi
            f.loc[edge, "method"] = "wilson"  # the rate is at a bound: see the docstring
    return f


def _interval(boot, level, n_items=None):
    """(low, high, standard error) of the first statistic of ``boot``: see :func:`ci_frame`."""
    return _interval_how(boot, level, n_items)[:3]


def _interval_how(boot, level, n_items=None) -> tuple[float, float, float, str]:
    """:func:`_interval` and the method token of the interval (``bca``, ``percentile`` or ``wilson``)."""
    if boot is None:
        return np.nan, np.nan, np.nan, "plug-in"
    ci = ci_frame(boot, level, n_items)
    return (float(ci["conf_low"].iloc[0]), float(ci["conf_high"].iloc[0]), float(ci["std_error"].iloc[0]),
            str(ci["method"].iloc[0]))


def _verdict(e, fl, nf, il, flip_margin, level, by, converged, has_fit, pb=None) -> dict:
    """One verdict per unit x factor from the average effect, the item-level effect and the flip rate
    against its noise floor (see the module docstring, *Equivalence*)."""
    unit, f = e["unit"], e["factor"]
    lo95, hi95, _ = _interval(e["boot"], level)
    delta, est, n = e["margin"], e["estimate"], e["n_items"]
    row = {by: unit, "factor": f, "verdict": "inconclusive", "n_needed": np.nan}
    flip = _flip_text(fl, nf, level)
    what = ("mean difference" if len(e["levels"]) == 2 else f"SD across {len(e['levels'])} levels") + " in mean position"
    eff_txt = (f"{what} {est:+.3f} ({level:.0%} CI {lo95:+.3f} to {hi95:+.3f}), p = {e['p_value']:.3g} "
               f"(BH-adjusted {e.get('p_adjusted', np.nan):.3g}), {n} items" if np.isfinite(est) else
               f"no answer-position effect ({e.get('why_empty', f'{n} items with valid answers at two levels')})")
    alpha = 1 - level
    if np.isfinite(delta) and np.isfinite(est):
        verdict, word, n_needed = _avg_verdict(e, delta, level)
        iv, itxt = _item_verdict(il, delta, level)
        if iv == "not supported" or verdict == "not supported":
            verdict = "not supported"
        elif verdict == "supported" and iv == "inconclusive":
            verdict = "inconclusive"
        row["verdict"], row["n_needed"] = verdict, n_needed
        reason = f"{unit} / {f}: {word} the margin ±{delta:.3f}; {eff_txt}; {itxt}"
        if verdict == "inconclusive" and _p_small(e, alpha):
            reason += "; a nonzero average effect is detected, its size against the margin is not yet resolved"
        elif verdict == "inconclusive" and np.isfinite(n_needed):
            reason += f"; about {int(n_needed)} items would be needed"
    elif flip_margin is not None and fl.get("flip") is not None:
        row["verdict"], word, row["n_needed"] = _flip_verdict(fl, nf, flip_margin, level)
        reason = f"{unit} / {f}: {word}; {flip}; {eff_txt}"
    elif fl.get("flip") is None and not np.isfinite(est):
        reason = f"{unit} / {f}: cannot be judged: {eff_txt} and no flip rate (no item with valid answers at two levels)"
    else:
        detected = [t for t, p in (("average effect", e.get("p_adjusted", np.nan)),
                                   ("item-level effect", np.nan if il is None else il["p_value"]),
                                   ("flips above the noise floor",
                                    nf["p_value"] if nf is not None and nf["informative"] else np.nan))
                    if np.isfinite(p) and p < alpha]
        if detected:
            row["verdict"] = "not supported"
            reason = (f"{unit} / {f}: not stable: the answers change detectably ({', '.join(detected)} at "
                      f"p < {alpha:.2g}); no margin was given to judge how large a change is acceptable "
                      f"(`margin=` or `flip_margin=`); {eff_txt}; {flip}")
        else:
            reason = (f"{unit} / {f}: inconclusive: no change detected and no equivalence margin (no human "
                      f"reference with two or more groups); pass `margin=` (mean-position units) or `flip_margin=` (allowed modal flip "
                      f"rate above its noise floor). {eff_txt}; {flip}")
    if pb is not None:
        reason += (f"; position bias (first shown option) {pb['estimate'][0]:+.3f}, p = {pb['p_value'][0]:.3g}")
    reason += "."
    if has_fit and converged is False:
        reason += " The Bayesian variance decomposition did not converge and is not used."
    row["reason"] = reason
    row["estimate"], row["conf_low"], row["conf_high"] = est, lo95, hi95
    row["margin"] = delta
    row["n_items"] = n
    return row


def _p_small(e, alpha):
    p = e.get("p_adjusted", np.nan)
    return np.isfinite(p) and p < alpha


def _avg_verdict(e, delta, level):
    from robustalign.power import n_for_equivalence, n_for_mde

    tost = 1 - 2 * (1 - level)
    lo90, hi90, se = _interval(e["boot"], tost)
    est, n = e["estimate"], e["n_items"]
    if len(e["levels"]) == 2:
        inside, beyond = (lo90 > -delta and hi90 < delta), (lo90 > delta or hi90 < -delta)
    else:
        inside, beyond = hi90 < delta, lo90 > delta
    n_needed = np.nan
    if inside:
        return "supported", "stable: the average effect is inside", n_needed
    if beyond:
        return "not supported", "not stable: the average effect is beyond", n_needed
    sd_item = e.get("sd_d", se * np.sqrt(max(n, 1)) if np.isfinite(se) else np.nan)
    if np.isfinite(sd_item) and sd_item > 0:
        if abs(est) < delta:
            n_needed = n_for_equivalence(sd_item, delta, theta=abs(est), alpha=1 - level)
        else:
            n_needed = n_for_mde(max(abs(est) - delta, 1e-9), sd=sd_item, alpha=1 - level, two_sided=False)
    return "inconclusive", f"inconclusive: the average effect's {tost:.0%} interval ({lo90:+.3f} to {hi90:+.3f}) " \
        "straddles", n_needed


def _item_verdict(il, delta, level):
    """Item-level instability (tau, SD of item x level interaction beyond noise) against the margin."""
    if il is None:
        return None, "item-level effect not estimable (needs ordinal items with >= 2 answers per cell)"
    tost = 1 - 2 * (1 - level)
    lo, hi, _ = _interval(il["boot"], tost)
    lo, hi = np.sqrt(max(lo, 0.0)), np.sqrt(max(hi, 0.0)) if np.isfinite(hi) else np.nan
    txt = (f"item-level SD {il['tau']:.3f} ({tost:.0%} CI {lo:.3f} to {hi:.3f}), p = {il['p_value']:.3g}")
    if lo > delta:
        return "not supported", f"items move in different directions beyond the margin: {txt}"
    if hi < delta:
        return "supported", f"item-level effect inside the margin: {txt}"
    return "inconclusive", f"item-level effect against the margin unresolved: {txt}"


def _flip_text(fl, nf, level):
    fr = fl.get("flip")
    if fr is None:
        return "no modal flip rate"
    fm = ci_frame(fr["mean"], level, fr["n_items_mean"])
    txt = (f"modal flip rate {fm['estimate'].iloc[0]:.2f} [{fm['conf_low'].iloc[0]:.2f}, "
           f"{fm['conf_high'].iloc[0]:.2f}]")
    if nf is not None and nf["informative"]:
        txt += f" against its noise floor {nf['floor']:.3f} at ~{nf['mean_n']:.0f} answers per cell (p = {nf['p_value']:.3g})"
    elif nf is not None:
        txt += " (one answer per cell: its noise floor equals it, so flips cannot be told from sampling noise)"
    return txt


def _flip_verdict(fl, nf, flip_margin, level):
    from robustalign.power import n_for_equivalence, n_for_mde

    tost = 1 - 2 * (1 - level)
    fr = fl["flip"]
    f_lo, f_hi, f_se = _interval(fr["mean"], tost, fr["n_items_mean"])
    rate = float(fr["mean"].estimate[0])
    use = nf is not None and nf["informative"]
    floor = nf["floor"] if use else 0.0
    bound = floor + flip_margin
    what = (f"the noise floor {floor:.3f} + flip_margin {flip_margin:.2f}" if use else
            f"flip_margin {flip_margin:.2f} (no usable noise floor: one answer per cell, or probabilities / "
            "scores; flip_margin is then the stated floor itself)")
    n_needed = np.nan
    if f_hi < bound:
        return "supported", f"stable: the modal flip rate ({tost:.0%} CI {f_lo:.2f} to {f_hi:.2f}) is below {what}", \
            n_needed
    if f_lo > bound:
        return "not supported", f"not stable: the modal flip rate ({tost:.0%} CI {f_lo:.2f} to {f_hi:.2f}) is above " \
            f"{what}", n_needed
    sd = f_se * np.sqrt(fr["n_items_mean"])
    if np.isfinite(sd) and sd > 0:
        n_needed = (n_for_equivalence(sd, bound, theta=rate, alpha=1 - level) if rate < bound else
                    n_for_mde(max(rate - bound, 1e-9), sd=sd, alpha=1 - level, two_sided=False))
    return "inconclusive", f"inconclusive: the modal flip rate ({tost:.0%} CI {f_lo:.2f} to {f_hi:.2f}) straddles " \
        f"{what}", n_needed


# --------------------------------------------------------------------------------------------------
# estimates table
# --------------------------------------------------------------------------------------------------
def _row(quantity, keys, est, lo, hi, se, level, how, note, n_items, units, p=np.nan, padj=np.nan, family=None,
         adj=None, benchmark=np.nan):
    """One row of the estimates table: ``how`` is the interval's token in :data:`robustalign._result.METHODS`,
    ``note`` says in words what was computed and tested."""
    return {"quantity": quantity, **keys, "estimate": est, "std_error": se, "conf_low": lo, "conf_high": hi,
            "conf_level": level, "method": how, "method_note": note, "p_value": p, "p_adjusted": padj,
            "adjust_method": adj, "family": family, "n_items": n_items, "units": units, "benchmark": benchmark}


def _build(res: StabilityResult, level: float) -> pd.DataFrame:
    ev, prov = res.evidence, res.provenance
    by = prov["by"]
    units = "score on [0, 1]" if prov["kind"] == "score" else "mean position on [0, 1]"
    rows = [*_effect_rows(ev, prov, level, units), *_pairwise_rows(ev, prov, level, units),
            *_flip_rows(ev, by, level, units), *_order_rows(ev, by, level, units),
            *_agreement_rows(ev, by, level, units), *_ranking_rows(ev, level),
            *_validity_rows(ev, prov, level)]
    out = pd.DataFrame(rows)
    first = ["quantity", by, "factor", "level_a", "level_b", "position", "group_a", "group_b"]
    first = [c for c in first if c in out] + [c for c in out.columns if c not in first]
    return out[first]


def _effect_rows(ev, prov, level, units) -> list:
    by, adj = prov["by"], prov["adjust_method"]
    rows: list = []
    for e in ev["effects"]:
        keys = {by: e["unit"], "factor": e["factor"]}
        lo, hi, se, how = _interval_how(e["boot"], level)
        la, lb = (e["levels"][0], e["levels"][1]) if len(e["levels"]) == 2 else (None, None)
        rows.append(_row("factor_effect", {**keys, "level_a": la, "level_b": lb}, e["estimate"], lo, hi, se, level,
                         how, e["method"], e["n_items"], units, e["p_value"], e.get("p_adjusted", np.nan),
                         prov["families"]["factor_effect"], adj, e["margin"]))
    for m in ev["margins"].to_dict("records"):
        if np.isfinite(m["margin"]):
            rows.append(_row("human_between_group_sd", {by: m[by], "factor": m["factor"]}, m["margin"], np.nan,
                             np.nan, np.nan, level, "plug-in", f"equivalence margin from {m['source']} "
                             "(SD across groups per item, ddof=1, mean over items)", m["n_items"], units))
    return rows


def _pairwise_rows(ev, prov, level, units) -> list:
    by, adj = prov["by"], prov["adjust_method"]
    rows: list = []
    for pw in ev["pairwise"]:
        if pw["boot"] is None:
            continue
        f = ci_frame(pw["boot"], level)
        keep = pw["keep"]
        for j, r in enumerate(f.itertuples(index=False)):
            k = np.flatnonzero(keep)[j]
            rows.append(_row("level_difference", {by: pw["unit"], "factor": pw["factor"], "level_a": r.level_a,
                             "level_b": r.level_b}, r.estimate, r.conf_low, r.conf_high, r.std_error, level,
                             r.method, "paired mean difference (b - a), cluster bootstrap; sign-flip test",
                             int(pw["n_items"][k]), units, pw["p_value"][k], pw["p_adjusted"][k],
                             prov["families"]["level_difference"], adj))
    return rows


def _flip_rows(ev, by, level, units) -> list:
    rows: list = []
    for fl in ev["flips"]:
        for name, q_mean, q_pair, u in (("flip", "flip_rate_mean", "flip_rate", "share of items"),
                                        ("shift", "ordinal_shift_mean", "ordinal_shift", units)):
            x = fl.get(name)
            if x is None:
                continue
            lo, hi, se, how = _interval_how(x["mean"], level, x["n_items_mean"] if name == "flip" else None)
            rows.append(_row(q_mean, {by: fl["unit"], "factor": fl["factor"]}, float(x["mean"].estimate[0]), lo, hi,
                             se, level, how, "mean over level pairs, cluster bootstrap", x["n_items_mean"], u))
            n_it = (fl["n_items"] if name == "flip" else fl["n_items_shift"])[x["keep"]]
            f = ci_frame(x["pairs"], level, n_it if name == "flip" else None)
            for j, r in enumerate(f.itertuples(index=False)):
                rows.append(_row(q_pair, {by: fl["unit"], "factor": fl["factor"], "level_a": r.level_a,
                                 "level_b": r.level_b}, r.estimate, r.conf_low, r.conf_high, r.std_error, level,
                                 r.method, "mean over items, cluster bootstrap", int(n_it[j]), u))
    return rows


def _agreement_rows(ev, by, level, units) -> list:
    rows: list = []
    if ev["retest"] is not None:
        for t in ev["retest"]["tables"]:
            f = ci_frame(t["boot"], level)
            u = "share of sample pairs" if t["quantity"] == "retest_flip_rate" else units
            for j, r in enumerate(f.itertuples(index=False)):
                rows.append(_row(t["quantity"], {by: f.iloc[j][by]},
                                 r.estimate, r.conf_low, r.conf_high, r.std_error, level, r.method,
                                 "pairs of samples of one prompt, mean over cells and items, cluster bootstrap",
                                 int(t["n_items"][j]), u))
    for a in ev["agreement"]:
        keys = {by: a["unit"], "factor": a["factor"]}
        if a["icc"] is not None:
            for q, t in (("icc2_1", "ICC(A,1)"), ("icc3_1", "ICC(C,1)")):
                lo, hi = _icc_ci(a["icc"]["ms"], t, level)
                rows.append(_row(q, keys, a["icc"][t], lo, hi, np.nan, level, "f-test",
                                 f"{t} (McGraw & Wong; as pingouin), F-test interval (items x levels)",
                                 a["icc_n_items"], "ICC"))
        if np.isfinite(a.get("alpha", np.nan)):
            lo, hi, se, how = _interval_how(a["alpha_boot"], level)
            rows.append(_row("krippendorff_alpha", keys, a["alpha"], lo, hi, se, level, how,
                             f"krippendorff ({a['alpha_level']}), cluster bootstrap over items", a["alpha_n_items"],
                             "alpha"))
    return rows


def _ranking_rows(ev, level) -> list:
    rows: list = []
    for rk in ev["ranking"]:
        f = rk["factor"]
        for t in rk["taus"]:
            lo, hi = np.nanquantile(t["boot"], [(1 - level) / 2, (1 + level) / 2]) if np.isfinite(t["boot"]).any() \
                else (np.nan, np.nan)
            rows.append(_row("kendall_tau", {"factor": f, "level_a": t["level_a"], "level_b": t["level_b"]},
                             t["tau"], lo, hi, _finite_sd(t["boot"]), level, "percentile",
                             f"Kendall tau-b of {rk['unit_name']} ranks by {rk['what']}, percentile bootstrap",
                             rk["n_items"], "tau"))
        if rk["taus"]:
            mt = _row_nanmean(rk["tau_boot"], axis=1)
            lo, hi = (np.nanquantile(mt, [(1 - level) / 2, (1 + level) / 2]) if np.isfinite(mt).any()
                      else (np.nan, np.nan))
            rows.append(_row("kendall_tau_mean", {"factor": f}, float(np.mean([t["tau"] for t in rk["taus"]])), lo,
                             hi, _finite_sd(mt), level, "percentile", f"mean over level pairs; {rk['unit_name']} ranked by "
                             f"{rk['what']}", rk["n_items"], "tau"))
            rows.append(_row("discordant_share", {"factor": f}, float(np.mean([t["discordant"] for t in rk["taus"]])),
                             np.nan, np.nan, np.nan, level, "plug-in", f"share of discordant {rk['unit_name']} pairs, mean over "
                             "level pairs", rk["n_items"], "share of pairs"))
            fp = rk["flips"].groupby(["unit_a", "unit_b"], sort=False)["p_flip"].mean().reset_index()
            for r in fp.itertuples(index=False):
                rows.append(_row("p_rank_flip", {"factor": f, "group_a": r.unit_a, "group_b": r.unit_b}, r.p_flip,
                                 np.nan, np.nan, np.nan, level, "plug-in", "bootstrap probability that the pair's order differs "
                                 "between two levels, mean over level pairs", rk["n_items"], "probability"))
    return rows


def _validity_rows(ev, prov, level) -> list:
    by = prov["by"]
    rows: list = []
    for f, vr in ev["validity"].items():
        t = vr.to_frame(level)
        cond = f if f in t else None
        for r in t.to_dict("records"):
            keys = {by: r[by], "factor": f, "level_a": r[cond] if cond else None}
            test = vr.tests
            p = np.nan
            if cond and len(test):
                m = test[test[by] == r[by]]
                p = float(m["p_value"].iloc[0]) if len(m) else np.nan
            rows.append(_row("valid_rate", keys, r["estimate"], r["conf_low"], r["conf_high"], np.nan, level, "wilson",
                             f"Wilson interval; p: paired test across {f} (Cochran's Q / exact McNemar)", np.nan,
                             "share of answers", p))
    if isinstance(ev["variance_shares"], pd.DataFrame):
        for r in ev["variance_shares"].to_dict("records"):
            est = r.get("estimate", r.get("share", r.get("mean", np.nan)))
            keys = {k: v for k, v in r.items() if isinstance(v, str)}
            rows.append(_row("variance_share", keys, est, r.get("conf_low", r.get("hdi_low", np.nan)),
                             r.get("conf_high", r.get("hdi_high", np.nan)), r.get("std_error", r.get("sd", np.nan)),
                             r.get("conf_level", np.nan), "posterior-eti", "Bayesian response model (posterior); converged="
                             f"{prov['fit_converged']}", np.nan, "share of latent variance"))
    return rows


def _order_rows(ev, by, level, units) -> list:
    """Rows for position bias, the modal flip rate's noise floor and the item-level effect."""
    rows = []
    for pb in ev.get("position_bias", []):
        f = ci_frame(pb["boot"], level)
        for j, r in enumerate(f.itertuples(index=False)):
            rows.append(_row("position_bias", {by: pb["unit"], "factor": pb["factor"], "position": pb["positions"][j]},
                             float(pb["estimate"][j]), r.conf_low, r.conf_high, r.std_error, level, r.method,
                             f"change in an option's share when shown {pb['positions'][j]} rather than elsewhere "
                             "(mean over options and items); cluster bootstrap; order levels permuted within items",
                             pb["n_items"], "share of answers", float(pb["p_value"][j])))
    for fl, nf in zip(ev["flips"], ev.get("noise_floors", [])):
        if nf is not None:
            a = (1 - level) / 2
            lo, hi = (np.quantile(nf["null"], [a, 1 - a]) if "null" in nf else (nf["null_low"], nf["null_high"]))
            rows.append(_row("flip_noise_floor", {by: fl["unit"], "factor": fl["factor"]}, nf["floor"],
                             float(lo), float(hi), np.nan, level, "permutation",
                             f"expected modal flip rate under no effect at the sampled answers per cell (mean "
                             f"{nf['mean_n']:.1f}; {nf['n_draws']} permutations of answers among levels; bounds: the "
                             f"central {level:.0%} of the null); p: "
                             "observed flip rate above it", int(np.isfinite(nf["per_item"]).sum()), "share of items",
                             nf["p_value"]))
    for e, il in zip(ev["effects"], ev.get("item_level", [])):
        if il is not None:
            lo, hi, _, how = _interval_how(il["boot"], level)
            rows.append(_row("item_level_sd", {by: e["unit"], "factor": e["factor"]}, il["tau"],
                             np.sqrt(max(lo, 0.0)), np.sqrt(max(hi, 0.0)) if np.isfinite(hi) else np.nan, np.nan,
                             level, how, "SD of the item x level interaction of mean positions beyond within-cell noise; "
                             "cluster bootstrap (on its square); p: answers permuted among levels within strata",
                             il["n_items"], units, il["p_value"], benchmark=e["margin"]))
    return rows


def _finite_sd(x) -> float:
    """SD (ddof=1) of the finite values; NaN (without a warning) when fewer than 2."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(np.std(x, ddof=1)) if len(x) >= 2 else np.nan


def _row_nanmean(a, axis, keepdims=False):
    """Mean of the finite values along ``axis``; NaN (without a warning) where there are none."""
    a = np.asarray(a, float)
    ok = np.isfinite(a)
    n = ok.sum(axis=axis, keepdims=keepdims)
    s = np.where(ok, a, 0.0).sum(axis=axis, keepdims=keepdims)
    return np.divide(s, n, out=np.full(np.shape(s), np.nan), where=n > 0)


def _plot(result, ax: Axes | None = None, **kwargs):
    from robustalign.plots.stability import plot_factor_effects

    return plot_factor_effects(result, ax=ax, **kwargs)
