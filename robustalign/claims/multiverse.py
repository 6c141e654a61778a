"""Multiverse audit of an alignment claim (METHODS 3.8; Simonsohn, Simmons & Nelson 2020).

A claim is a statement about the data, e.g. "model A is closer to country C than model B". It rests on
one specification in a paper: one format, one option order, one template, one metric, one way of
aggregating items. :func:`audit_claim` evaluates it under **every admissible specification the data
allow** and reports

* the share of specifications under which it holds, and a specification curve (estimate and
  interval per specification, sorted, with the choices underneath);
* per specification: the estimate, a cluster-bootstrap interval over items, a sign-flip p-value
  (labels swapped within item), BH-adjusted and max-T-adjusted p-values across the family of
  specifications;
* a **joint inference across specifications**: one sign-flip null shared by every specification (the
  same flipped items in all of them, so their dependence is kept). Under it we compute the null
  distribution of (a) the median effect across specifications and (b) the share of specifications
  significant in the claimed direction; the observed values are compared with them (p = (1 + b) /
  (1 + B)). For claims that are not paired contrasts (``closest_group``), the joint evidence is the
  bootstrap probability that the claim holds in at least 90% of specifications (items resampled
  jointly for every specification).

A claim names cells of the design (a model with factor levels and a reference group; see
:mod:`robustalign.claims.general`) and has one of four general forms: a **contrast** of two cells, a
**trend** over cells with numeric positions, an **equivalence** of cells within a margin, a
**correlation** across cells with another per-unit quantity. The five earlier kinds (``closer``,
``steering_raises``, ``closest_group``, ``human_proxy``, ``higher_position``) are shorthands that build
a contrast.

Every claim is reduced, per specification, to per-item quantities ``d_q`` (an items x J array): for a
contrast or trend the claim holds when ``min_j agg_q d_qj > 0`` by more than rounding (:data:`ZERO_RTOL`
of the largest ``|d_qj|``; an estimate of exactly cancelling contrasts is zero, not a tiny positive
effect). ``J = 1`` for paired contrasts and trends (per-item slopes); for ``closest_group`` the J columns
are the margins over every other group. An equivalence holds when ``margin - max_j |agg_q d_qj| > 0``
over the pairs of cells, and is tested per specification by a bootstrap TOST; a correlation is judged by
a two-stage bootstrap and a permutation test across units (:func:`robustalign.claims.general.audit_correlation`).

Near identity: a specification whose metric has a kink where a cell's answer distribution meets the human
one (:data:`KINKED_METRICS`) is left out of the verdict, counted and named, when one of the claim's cells is
not distinguishable from the human distribution (chi-square of identity summed over items, p above 0.2 x
alpha): there the cell's corrected similarity is biased low, so a cell at identity would look farther than
one near it. The default metrics include ``brier`` and ``cramer`` (exactly unbiased), which judge the claim
there and on cells with few answers.

Verdicts: *supported* when the joint test rejects in the claimed direction and the claim holds in at
least 90% of specifications; *not supported* when it holds in fewer than half, or the joint test
rejects in the opposite direction; otherwise *inconclusive* (the claim depends on the specification
or the data are too few), with the items needed to detect the median effect at 80% power.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._rng import RngLike, as_generator
from robustalign._validation import check_confidence_level, check_n_resamples
from robustalign.claims._base import AssessmentResult, nanmean
from robustalign.multiplicity import adjust
from robustalign.resampling.mcerror import adjusted_p_mcse, p_value_mcse, verdict_mc_check
from robustalign.resampling.permutation import maxt_p_values
from robustalign.schema import Reference, Responses

if TYPE_CHECKING:
    from matplotlib.axes import Axes


__all__ = ["Claim", "ClaimResult", "audit_claim", "enumerate_specifications"]

SHORTHANDS = ("closer", "steering_raises", "closest_group", "human_proxy", "higher_position")
GENERAL = ("contrast", "trend", "equivalent", "correlation")
KINDS = SHORTHANDS + GENERAL
AGGREGATIONS = ("mean", "median")
POOLED = "(pooled)"
SUPPORT_SHARE = 0.9
#: A specification's statistic within this fraction of the largest |per-item contrast| of zero is zero: the
#: mean of contrasts that cancel exactly comes out as a rounding residue (5.55e-17, or 1e-13 after the
#: position averages), which must neither "hold" nor reach a sample-size formula.
ZERO_RTOL = 1e-9
#: Default metrics of the multiverse (:func:`enumerate_specifications`), plus DEFAULT_ORDINAL_METRICS when every
#: item is ordinal. ``brier`` and ``cramer`` are exactly unbiased for the answer distribution from 2 answers per
#: cell (robustalign.metrics.QUADRATIC_METRICS), so few-answer data (5 per cell is common) keep estimable
#: specifications where js (10 answers), tv (30) and the others (5) are not estimable.
DEFAULT_METRICS = ("js", "tv", "plurality", "brier")
DEFAULT_ORDINAL_METRICS = ("w1", "mean_position", "cramer")
#: Metrics whose per-item similarity has a kink (or, for plurality, a jump) where a cell's answer distribution
#: meets the human one: there the corrected value of a cell at identity stays biased low by about
#: 1/sqrt(answers) (docs/resampling.md, "Near identity"), so a cell at identity looks farther than a cell near
#: it. :func:`audit_claim` leaves such a specification out of the verdict when one of the claim's cells is not
#: distinguishable from the human distribution (docs/claims.md, "Near identity"). ``brier`` and ``cramer``
#: (exactly unbiased) and ``agreement`` (linear) have no such bias.
KINKED_METRICS = frozenset({"js", "tv", "w1", "mean_position", "plurality"})
#: Tasks the per-specification contrasts are split into when the executor does not say how many workers
#: it has (otherwise four per worker). Chunking never changes the numbers.
CONTRAST_TASKS = 32


def _cell(c, group: str | None = None) -> tuple:
    """A cell as a hashable tuple of (key, value) pairs (``group`` fills a missing group)."""
    if not isinstance(c, dict) or not c:
        raise ValueError(f"a cell must be a non-empty dict such as {{'model': 'M', 'language': 'hi'}}; got {c!r}.")
    c = dict(c)
    if "model" not in c and "human" not in c:
        raise ValueError(f"the cell {c!r} names no 'model' (or 'human' group); add one, e.g. {{'model': 'M', ...}}.")
    if group is not None and "group" not in c:
        c["group"] = group
    return tuple((str(k), str(v)) for k, v in c.items())


def _cells(cells, group: str | None) -> tuple:
    return tuple(_cell(c, group) for c in cells)


@dataclass(frozen=True)
class Claim:
    """A statement about the data: a contrast, trend, equivalence or correlation between named cells.

    A *cell* is a dict naming a model and, where needed, factor levels and a reference group:
    ``{"model": "M", "language": "hi", "group": "IN"}`` (see :mod:`robustalign.claims.general`). The
    factors a claim names are fixed by it and are not specification choices.

    General claims:

    ``Claim.contrast(a=..., b=..., group="IN")``: cell a is closer to the group than cell b.
    ``Claim.trend({"M1": 7, "M2": 13, "M3": 70}, group="IN")``: alignment rises with a covariate of the
    cells (or over an ordered list of cells, ``x`` their positions); ``decreasing=True`` claims a fall.
    ``Claim.equivalent(model="M", groups=["A", "B", "C"], margin=0.05)``: M is equally aligned with every
    group: every pairwise difference is within the margin.
    ``Claim.correlation({"M1": 0.12, ...}, se={...}, group="IN")``: alignment correlates with another
    measured per-unit quantity across units (models or cells).

    Shorthands (each builds the general claim and keeps its own name as ``kind``):

    ``Claim.closer("A", than="B", group="C")``: model A is closer to group C than model B.
    ``Claim.steering_raises("A", target="C")``: steering model A toward C raises its alignment with C
    (over the unsteered ``baseline`` level of the ``steer`` factor).
    ``Claim.closest_group("A", group="C")``: C is the group model A is closest to.
    ``Claim.human_proxy("C", target="D", model="A")``: humans of C are a closer proxy for D than model A.
    ``Claim.higher_position("A", than="B")``: model A's mean answer position is higher than B's (e.g.
    "more agreeing"); needs no human reference.
    """

    kind: str
    cells: tuple = ()
    x: tuple = ()
    se: tuple = ()
    metric: str | None = None
    margin: float | None = None
    steer: str = "steer_target"
    text: str = ""
    item_x: tuple = ()
    method: str = "pearson"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}; got {self.kind!r}.")

    @property
    def cell_dicts(self) -> list[dict]:
        return [dict(c) for c in self.cells]

    @property
    def form(self) -> str:
        """The general form: contrast, trend, equivalent or correlation."""
        return self.kind if self.kind in GENERAL else "contrast"

    # ---------------- general forms
    @classmethod
    def contrast(cls, a: dict, b: dict, *, group: str | None = None, metric: str | None = None,
                 text: str | None = None, steer: str = "steer_target") -> Claim:
        from robustalign.claims.general import describe_cell

        cells = _cells([a, b], group)
        g = {dict(c).get("group") for c in cells}
        about = f"closer to {g.pop()} " if len(g) == 1 and None not in g else "higher "
        words = text or f"{describe_cell(dict(cells[0]))} is {about}than {describe_cell(dict(cells[1]))}"
        return cls("contrast", cells=cells, metric=metric, steer=steer, text=words)

    @classmethod
    def trend(cls, cells, *, x: Sequence[float] | None = None, group: str | None = None, metric: str | None = None,
              decreasing: bool = False, text: str | None = None, steer: str = "steer_target") -> Claim:
        of = None
        if isinstance(cells, dict):  # {model: covariate}
            if x is not None:
                raise ValueError("give the trend's positions either as {model: x} or as `x` with a list of cells, "
                                 "not both.")
            of = "the models' covariate (" + ", ".join(f"{m} = {v:g}" for m, v in cells.items()) + ")"
            x, cells = list(cells.values()), [{"model": m} for m in cells]
        cells = list(cells)
        x = list(range(len(cells))) if x is None else list(x)
        if len(x) != len(cells) or len(cells) < 3:
            raise ValueError(f"a trend needs at least 3 cells and one position `x` per cell; got {len(cells)} cells "
                             f"and {len(x)} positions.")
        xs = np.asarray(x, float)
        if not np.all(np.isfinite(xs)) or np.ptp(xs) == 0:
            raise ValueError(f"the trend's positions `x` must be finite numbers that are not all equal; got {x}.")
        sign = "falls" if decreasing else "rises"
        of = of or f"the cells' positions {x}"
        words = text or f"alignment{' with ' + group if group else ''} {sign} with {of}"
        return cls("trend", cells=_cells(cells, group), x=tuple(float(v) * (-1 if decreasing else 1) for v in x),
                   metric=metric, steer=steer, text=words)

    @classmethod
    def equivalent(cls, cells=None, *, model: str | None = None, groups: Sequence[str] | None = None,
                   margin: float, group: str | None = None, metric: str | None = None, text: str | None = None,
                   steer: str = "steer_target") -> Claim:
        if cells is None:
            if model is None or not groups:
                raise ValueError("an equivalence claim needs `cells`, or `model` and a list of `groups`.")
            cells = [{"model": model, "group": g} for g in groups]
        cells = list(cells)
        if len(cells) < 2:
            raise ValueError(f"an equivalence claim needs at least 2 cells; got {len(cells)}.")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (np.isfinite(margin) and margin > 0):
            raise ValueError(f"`margin` must be a positive number (the largest difference that counts as equal, in "
                             f"the metric's units); got {margin!r}.")
        words = text or (f"{model} is equally aligned with {', '.join(groups)} (within {margin:g})" if model and groups
                         else f"the {len(cells)} cells are equally aligned (within {margin:g})")
        return cls("equivalent", cells=_cells(cells, group), margin=float(margin), metric=metric, steer=steer,
                   text=words)

    @classmethod
    def correlation(cls, values=None, *, cells=None, se=None, item_values: pd.DataFrame | None = None,
                    group: str | None = None, metric: str | None = None, negative: bool = False,
                    method: str = "pearson", text: str | None = None, steer: str = "steer_target") -> Claim:
        """Alignment correlates (positively, or ``negative=True``) across units with another quantity.

        ``values``: the quantity per unit, ``{model: value}`` (the units are those models) or a list in the
        order of ``cells``; ``se``: its standard errors (same shape), redrawn in every bootstrap resample.
        Or ``item_values``: a table items x units (columns: the models, or one per cell in order) whose
        item means are the quantity, resampled with the same items as the alignment.
        """
        if method not in ("pearson", "spearman"):
            raise ValueError(f"`method` must be 'pearson' or 'spearman'; got {method!r}.")
        if (values is None) == (item_values is None):
            raise ValueError("give the other quantity either as `values` (one per unit, optionally with `se`) or "
                             "as `item_values` (a table items x units), not both or neither.")
        src = values if values is not None else item_values
        units = list(src.keys() if isinstance(src, dict) else src.columns if isinstance(src, pd.DataFrame) else [])
        if cells is not None and (isinstance(values, dict) or isinstance(se, dict)):
            raise ValueError("with `cells`, give `values` (and `se`) as lists in the order of the cells.")
        if cells is None:
            if not units:
                raise ValueError("without `cells`, `values` must map each model to its value, e.g. {'M1': 0.12}.")
            cells = [{"model": u} for u in units]
        cells = list(cells)
        sign = -1.0 if negative else 1.0
        x: tuple[float, ...] = ()
        sd: tuple[float, ...] = ()
        ix: tuple[tuple[str, tuple[float, ...]], ...] = ()
        if values is not None:
            v = [values[u] for u in units] if isinstance(values, dict) else list(values)
            x = tuple(sign * float(a) for a in v)
            if se is not None:
                sd = tuple(float(a) for a in ([se[u] for u in units] if isinstance(se, dict) else se))
        else:
            assert item_values is not None  # given when `values` is not (checked above)
            cols = [c for c in units if c in item_values.columns]
            ix = tuple((str(i), tuple(sign * float(a) for a in row)) for i, row in zip(item_values.index,
                                                                                        item_values[cols].to_numpy()))
        n = len(x) if values is not None else len(units)
        if len(cells) < 3 or n != len(cells) or (sd and len(sd) != n):
            raise ValueError(f"a correlation needs at least 3 units and one value (and standard error) per unit; got "
                             f"{len(cells)} cells, {n} values{f' and {len(sd)} standard errors' if sd else ''}.")
        if sd and not all(np.isfinite(a) and a >= 0 for a in sd):
            raise ValueError(f"`se` must be finite non-negative numbers; got {list(sd)}.")
        words = text or (f"alignment{' with ' + group if group else ''} correlates "
                         f"{'negatively' if negative else 'positively'} with the units' other quantity ({method})")
        return cls("correlation", cells=_cells(cells, group), x=x, se=sd, item_x=ix, metric=metric, steer=steer,
                   method=method, text=words)

    # ---------------- shorthands
    @classmethod
    def closer(cls, model: str, *, than: str, group: str) -> Claim:
        return cls("closer", cells=_cells([{"model": model}, {"model": than}], group),
                   text=f"{model} is closer to {group} than {than}")

    @classmethod
    def steering_raises(cls, model: str, *, target: str, steer: str = "steer_target", baseline: str = "none",
                        group: str | None = None) -> Claim:
        g = group or target
        return cls("steering_raises", cells=_cells([{"model": model, steer: target}, {"model": model, steer: baseline}],
                                                   g),
                   steer=steer, text=f"steering {model} toward {target} raises its alignment with {g}")

    @classmethod
    def closest_group(cls, model: str, *, group: str) -> Claim:
        from robustalign.claims.general import ALL_OTHERS

        return cls("closest_group", cells=_cells([{"model": model, "group": group}, {"model": model,
                                                                                    "group": ALL_OTHERS}], None),
                   text=f"{model}'s closest group is {group}")

    @classmethod
    def human_proxy(cls, proxy: str, *, target: str, model: str) -> Claim:
        return cls("human_proxy", cells=_cells([{"human": proxy}, {"model": model}], target),
                   text=f"humans of {proxy} are a closer proxy for {target} than {model}")

    @classmethod
    def higher_position(cls, model: str, *, than: str) -> Claim:
        return cls("higher_position", cells=_cells([{"model": model}, {"model": than}], None), metric="position",
                   text=f"{model}'s mean answer position is higher than {than}'s")

    @property
    def needs_reference(self) -> bool:
        return self.metric != "position"

    @property
    def fixed_factors(self) -> set[str]:
        """Factors the claim's cells fix (never specification choices), and the steering factor."""
        from robustalign.claims.general import cell_factors

        return {self.steer} | {k for c in self.cell_dicts for k in cell_factors(c)}


# --------------------------------------------------------------------------------------------------
# specifications
# --------------------------------------------------------------------------------------------------
def enumerate_specifications(
    responses: Responses,
    claim: Claim,
    *,
    reference: Reference | None = None,
    factors: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    aggregations: Sequence[str] = AGGREGATIONS,
    include_pooled: bool = True,
    max_specifications: int = 20_000,
) -> pd.DataFrame:
    """Every admissible specification: one row per combination of factor levels, metric, aggregation.

    A design factor contributes each of its levels, plus ``"(pooled)"`` (answers of all levels
    pooled into one distribution) when ``include_pooled``. ``sample`` is never a specification choice
    (samples are replicates), nor is the claim's own steering factor. Metrics that need ordered
    options are left out when an item the claim uses is nominal, and the median of plurality agreement
    (a 0/1 quantity per item, so its median is 0 or 1 whatever the data) is not a specification. Default
    metrics: :data:`DEFAULT_METRICS`, plus :data:`DEFAULT_ORDINAL_METRICS` when every item is ordinal.
    """
    from robustalign.metrics import METRICS

    if factors is None:
        factors = [f for f in responses.factors if f != "sample" and f not in claim.fixed_factors]
    else:
        factors = list(factors)
        bad = [f for f in factors if f not in responses.data]
        if bad:
            raise ValueError(f"`factors` {bad} are not columns of the responses; factors are {list(responses.factors)}.")
    for a in aggregations:
        if a not in AGGREGATIONS:
            raise ValueError(f"`aggregations` must be drawn from {AGGREGATIONS}; got {a!r}.")
    if claim.metric == "position":
        metrics = ["mean_position"]
    elif metrics is None and claim.metric is not None:
        metrics = [claim.metric]
    if metrics is None:
        metrics = list(DEFAULT_METRICS)
        if reference is not None and all(reference.scales[i].ordinal for i in responses.items if i in reference.scales):
            metrics += list(DEFAULT_ORDINAL_METRICS)
    else:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"`metrics` {unknown} are unknown; choose from {sorted(METRICS)}.")
    choices = []
    for f in factors:
        levels = [str(v) for v in responses.levels(f)]
        choices.append(levels + ([POOLED] if include_pooled and len(levels) > 1 else []))
    n = int(np.prod([len(c) for c in choices])) * len(metrics) * len(aggregations)  # upper bound
    if n > max_specifications:
        raise ValueError(
            f"the multiverse has {n} specifications (> max_specifications={max_specifications}); restrict "
            "`factors`, `metrics` or `aggregations`, or raise `max_specifications`."
        )
    # the median of a 0/1 per-item metric (plurality agreement) is 0 or 1 whatever the data: inadmissible
    pairs = [(m, a) for m in metrics for a in aggregations if not (m == "plurality" and a == "median")]
    rows = [dict(zip(factors, combo)) | {"metric": m, "aggregation": a}
            for combo in itertools.product(*choices) for m, a in pairs]
    return pd.DataFrame(rows, columns=[*factors, "metric", "aggregation"])


def _subset(responses: Responses, spec: dict, factors: Sequence[str]) -> Responses:
    mask = np.ones(len(responses.data), bool)
    for f in factors:
        if spec[f] != POOLED:
            mask &= (responses.data[f].astype(str) == spec[f]).to_numpy()
    return replace(responses, data=responses.data[mask])


def _contrasts(responses: Responses, reference: Reference | None, claim: Claim, spec: dict,
               factors: Sequence[str], items: list[str]) -> np.ndarray:
    """Per-item quantities (items x J) of one specification; NaN where an item has no data (see
    :mod:`robustalign.claims.general` for what each form makes of its cells' scores)."""
    from robustalign.claims.general import cell_scores, pair_differences, per_item_slopes

    sub = _subset(responses, spec, factors)
    metric = "position" if claim.metric == "position" else spec["metric"]
    cells = claim.cell_dicts
    first = cells[0].get("group")
    S = [cell_scores(sub, reference, c, metric, items, first_group=first) for c in cells]
    if claim.form == "trend":
        out = per_item_slopes(np.hstack(S), np.asarray(claim.x, float))[:, None]
    elif claim.form in ("equivalent", "correlation"):
        X = np.hstack(S)
        out = pair_differences(X) if claim.form == "equivalent" else X
    else:
        out = S[0] - S[1]
    return out


# --------------------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------------------
def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmedian`` without its all-NaN warning: NaN sorts last, the middle of the finite values."""
    s = np.sort(np.moveaxis(x, axis, -1), axis=-1)
    n = (~np.isnan(s)).sum(axis=-1, keepdims=True)
    lo = np.take_along_axis(s, np.maximum((n - 1) // 2, 0), axis=-1)[..., 0]
    hi = np.take_along_axis(s, n // 2, axis=-1)[..., 0]  # = lo when n is odd, so (lo + hi) / 2 = lo exactly
    return np.where(n[..., 0] > 0, (lo + hi) / 2, np.nan)


def zero_tolerance(D: np.ndarray) -> np.ndarray:
    """(specs,) tolerance below which a statistic of ``D`` (items, specs, J) counts as zero:
    :data:`ZERO_RTOL` times the largest |per-item contrast| of the specification (0 where it has none)."""
    a = np.abs(D)
    scale = np.fmax.reduce(np.fmax.reduce(a, axis=2), axis=0) if a.size else np.zeros(D.shape[1])
    return ZERO_RTOL * np.nan_to_num(scale, nan=0.0)


def aggregate_specifications(x: np.ndarray, how: str, axis: int) -> np.ndarray:
    return nanmean(x, axis) if how == "mean" else _nanmedian(x, axis)


def _stat(D: np.ndarray, aggs: np.ndarray, margin: float | None = None) -> np.ndarray:
    """D: (..., items, specs, J) -> (..., specs): min over J of the aggregate over items; with a ``margin``
    (equivalence) the margin minus the largest |aggregate| over J (> 0: every difference within it)."""
    out = np.empty(D.shape[:-3] + D.shape[-2:-1])
    for how in ("mean", "median"):
        m = aggs == how
        if m.any():
            A = aggregate_specifications(D[..., m, :], how, axis=-3)
            # NaN only if all J are
            out[..., m] = np.fmin.reduce(A, axis=-1) if margin is None else margin - np.fmax.reduce(np.abs(A), axis=-1)
    return out


#: Bytes of the largest temporary of one evaluation of ``_stat`` on resampled data.
_CHUNK_BYTES = 32 * 2**20


def _rows_per_chunk(D: np.ndarray) -> int:
    return max(1, _CHUNK_BYTES // max(D[0].nbytes * D.shape[0], 1))


def _stat_rows(D: np.ndarray, aggs: np.ndarray, make, rows: int, margin: float | None = None) -> np.ndarray:
    """``_stat`` of ``make(s, e)`` (the resampled D of rows s..e) in memory-bounded chunks: (rows, specs)."""
    out = np.empty((rows, D.shape[1]))
    step = _rows_per_chunk(D)
    for s in range(0, rows, step):
        e = min(rows, s + step)
        out[s:e] = _stat(make(s, e), aggs, margin)
    return out


def _boot_stat(D: np.ndarray, aggs: np.ndarray, idx: np.ndarray, margin: float | None = None) -> np.ndarray:
    """Statistic of the item resamples ``idx`` (rows, items) of ``D`` (module level: tasks pickle it)."""
    return _stat_rows(D, aggs, lambda s, e: D[idx[s:e]], len(idx), margin)


def _flip_stat(D: np.ndarray, aggs: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Statistic of ``D`` (J = 1) with the items' contrasts multiplied by ``signs`` (rows, items)."""
    d = D[..., 0]
    return _stat_rows(D, aggs, lambda s, e: (signs[s:e, :, None] * d[None])[..., None], len(signs))


def _jackknife(D: np.ndarray, aggs: np.ndarray, margin: float | None = None) -> np.ndarray:
    """Delete-one-item values (items, specs), for BCa intervals from the stored replicates."""
    from robustalign.resampling._weights import leave_one_out

    n = D.shape[0]
    return _stat_rows(D, aggs, lambda s, e: D[leave_one_out(n, s, e)], n, margin)


def joint_sign_flip(D: np.ndarray, aggs: np.ndarray, *, n_permutations: int, gen, alpha: float = 0.05,
                    executor=None, key: tuple = ()) -> dict:
    """Sign-flip null shared by every specification (J = 1 contrasts).

    Returns per-specification two-sided p-values, max-T adjusted p-values, and joint p-values for the
    median effect and for the share of specifications significant in the claimed (positive) direction.

    The signs are drawn by :func:`robustalign.resampling.nulls.sign_flips` from the stream
    ``("audit_claim.sign_flip", *key)`` of the seed ``gen``, in blocks that run on ``executor`` when one is
    given; the numbers are the same either way.
    """
    from functools import partial

    from robustalign.resampling.nulls import sign_flips

    obs = _stat(D, aggs)
    null = sign_flips(partial(_flip_stat, D, aggs), D.shape[0], n_permutations=n_permutations, rng=gen,
                      key=("audit_claim.sign_flip", *key), executor=executor)
    return joint_from_null(obs, null, alpha)


#: Fewest items in a specification for the bootstrap-t joint test; below it the sign flip (exact for
#: symmetric contrasts) is used: with a handful of items the bootstrap distribution of t* is too coarse
#: (5 items give 126 distinct resamples) and its tails are not trustworthy (Hall 1992, sec. 3.10).
MIN_ITEMS_BOOTSTRAP_T = 20


def joint_bootstrap_t(D: np.ndarray, aggs: np.ndarray, *, n_permutations: int, gen: RngLike, alpha: float = 0.05,
                      executor: object = None, key: tuple = ()) -> dict:
    """Joint null of :func:`joint_sign_flip` from the studentised item bootstrap (J = 1 contrasts): the null
    of a mean of skewed per-item contrasts (e.g. similarities of models sampled 15 and 5 times) holds its
    size where the sign flip, which assumes symmetric contrasts, does not; medians get the centred
    bootstrap. Draws: :func:`robustalign.resampling.studentized.bootstrap_t_null`, stream
    ``("audit_claim.bootstrap_t", *key)``."""
    from robustalign.resampling.studentized import bootstrap_t_null

    n_items = np.isfinite(D[..., 0]).sum(0)
    n_items = n_items[n_items > 0]
    if n_items.size and n_items.min() < MIN_ITEMS_BOOTSTRAP_T:  # too few items to estimate t*'s distribution
        out = joint_sign_flip(D, aggs, n_permutations=n_permutations, gen=gen, alpha=alpha, executor=executor,
                              key=key)
        return {**out, "test": f"sign-flip (a specification has {int(n_items.min())} items, under "
                               f"{MIN_ITEMS_BOOTSTRAP_T}: too few for the bootstrap-t)"}
    null = bootstrap_t_null(D[..., 0], median=aggs == "median", n_resamples=n_permutations, rng=gen,
                            key=("audit_claim.bootstrap_t", *key), executor=executor)
    return {**joint_from_null(_stat(D, aggs), null, alpha), "test": "bootstrap-t"}


def joint_from_null(obs: np.ndarray, null: np.ndarray, alpha: float) -> dict:
    """Per-specification and joint p-values from observed statistics (specs,) and a null shared by every
    specification (draws, specs): see :func:`joint_sign_flip`."""
    from robustalign.resampling.nulls import p_values

    ok = np.isfinite(obs)  # a specification without any item has no test: NaN, not p = 1 / (1 + B)
    p_spec = np.full(obs.shape, np.nan)
    p_spec[ok] = p_values(obs[ok], null[:, ok], "two-sided")
    p_maxt = np.full(obs.shape, np.nan)
    p_maxt[ok] = maxt_p_values(obs[ok], null[:, ok])
    obs, null = obs[ok], null[:, ok]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # specifications without any defined value
        crit = np.nanquantile(null, 1 - alpha, axis=0)  # one-sided critical value per specification
    sig_obs = np.nanmean(obs > crit)
    sig_null = np.nanmean(null > crit[None], axis=1)
    med_obs = np.nanmedian(obs)
    med_null = np.nanmedian(null, axis=1)
    return {
        "p_spec": p_spec,
        "p_maxt": p_maxt,
        "share_significant": float(sig_obs),
        "p_share_significant": float(p_values(sig_obs, sig_null, "greater")[0]),
        "median_effect": float(med_obs),
        "p_median_greater": float(p_values(med_obs, med_null, "greater")[0]),
        "p_median_less": float(p_values(med_obs, med_null, "less")[0]),
    }


def _identity_p_values(responses: Responses, reference: Reference | None, claim: Claim, specs: pd.DataFrame,
                       fac: list[str]) -> np.ndarray:
    """Per specification whose metric is in :data:`KINKED_METRICS`, the largest p-value of identity with the
    human distribution over the claim's cells (and the groups each is scored against): the per-item
    chi-squares of the specification's subset (:func:`robustalign.claims.general.cell_identity`) summed over
    items and referred to :func:`robustalign.metrics.identity_p_value`. NaN for other metrics and where no
    side is sampled."""
    from robustalign.claims.general import cell_identity
    from robustalign.metrics import identity_p_value

    out = np.full(len(specs), np.nan)
    kinked = specs["metric"].isin(KINKED_METRICS).to_numpy()
    if reference is None or claim.metric == "position" or not kinked.any():
        return out
    cells = claim.cell_dicts
    first = cells[0].get("group")
    lv_all = specs[fac].astype(str).to_numpy()
    combos = list(dict.fromkeys(tuple(r) for r in lv_all[kinked]))
    patterns: dict[tuple, list[tuple]] = {}  # which factors are pooled -> the level combinations
    for c in combos:
        patterns.setdefault(tuple(v == POOLED for v in c), []).append(c)
    for pattern, rows in patterns.items():
        by = [f for f, pooled in zip(fac, pattern) if not pooled]
        tables = [cell_identity(responses, reference, c, by=by, first_group=first) for c in cells]
        for lv in rows:
            ps: list[float] = []
            for t in tables:
                m = np.ones(len(t), bool)
                for f, v in zip(fac, lv):
                    if v != POOLED:
                        m &= (t[f].astype(str) == v).to_numpy()
                g = t[m].groupby("group", observed=True)[["_x2", "_x2_df", "_x2_var"]].sum(min_count=1)
                ps += list(identity_p_value(*(g[c].to_numpy(float) for c in ("_x2", "_x2_df", "_x2_var"))))
            ps = [p for p in ps if np.isfinite(p)]
            if ps:
                out[kinked & (lv_all == np.array(lv, dtype=object)).all(axis=1)] = max(ps)
    return out


def _contrast_chunk(args) -> list[np.ndarray]:
    """Per-item contrasts of several specifications (one task; module level so that it pickles)."""
    responses, reference, claim, specs, factors, items = args
    return [_contrasts(responses, reference, claim, spec, factors, items) for spec in specs]


def _cluster_bootstrap_blocks(D, aggs, specs, *, n_resamples, level, gen, executor, key=(), margin=None):
    """Percentile cluster bootstrap over items of every specification (items resampled jointly), drawn by
    :func:`robustalign.resampling.nulls.item_bootstrap` from the stream ``("audit_claim.bootstrap", *key)``."""
    from functools import partial

    from robustalign.resampling import BootstrapResult
    from robustalign.resampling.nulls import BLOCK_SIZE, item_bootstrap
    from robustalign.scaleout import warn_degenerate

    gen, record = as_generator(gen)
    R = item_bootstrap(partial(_boot_stat, D, aggs, margin=margin), D.shape[0], n_resamples=n_resamples, rng=gen,
                       key=("audit_claim.bootstrap", *key), executor=executor)
    labels = specs.reset_index(drop=True)
    warn_degenerate(R, labels, stacklevel=4)
    # a specification's statistic is a mean over items when it aggregates one contrast (J = 1) by the
    # mean: its interval is read at the small-sample expanded level (medians, minima over J contrasts
    # and equivalence margins keep the plain level)
    mean_n = np.full(D.shape[1], np.nan)
    if D.shape[2] == 1 and margin is None:
        is_mean = aggs == "mean"
        mean_n[is_mean] = np.isfinite(D[:, is_mean, 0]).sum(axis=0)
    expanded = bool(np.isfinite(mean_n).any())
    return BootstrapResult(
        estimate=_stat(D, aggs, margin), resamples=np.asfortranarray(R), jackknife=_jackknife(D, aggs, margin),
        labels=labels, mean_n=mean_n if expanded else None,
        design="cluster", method="percentile-expanded" if expanded else "percentile", confidence_level=level,
        n_clusters=int(D.shape[0]), rng=record,
        statistic="claim margin",
        provenance={"path": "blocks", "block_size": BLOCK_SIZE, "n_blocks": -(-n_resamples // BLOCK_SIZE),
                    "stream": ["audit_claim.bootstrap", *map(str, key)]},
    )


def audit_claim(
    responses: Responses,
    reference: Reference | None,
    claim: Claim,
    *,
    factors: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    aggregations: Sequence[str] = AGGREGATIONS,
    include_pooled: bool = True,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 10_000,
    alpha: float = 0.05,
    max_specifications: int = 20_000,
    rng: RngLike = None,
    executor: Any = None,
    progress: bool | None = None,
) -> ClaimResult:
    """Evaluate ``claim`` under every admissible specification and judge it jointly.

    Parameters
    ----------
    responses, reference
        Validated data; ``reference`` may be None only for ``Claim.higher_position``.
    claim : Claim
    factors, metrics, aggregations, include_pooled
        The multiverse (see :func:`enumerate_specifications`).
    confidence_level, n_resamples
        Per-specification cluster-bootstrap intervals (items resampled jointly for all specifications).
    n_permutations
        Sign-flip permutations of the joint null (contrasts and trends: J = 1), or permutations of the
        other quantity across units (correlation).
    alpha
        Level of the per-specification tests counted in the joint share statistic and of the verdict.
    executor : concurrent.futures.Executor, optional
        Runs the heavy parts as tasks (see :func:`robustalign.scaleout.map_tasks`): the per-specification
        contrasts in chunks of specifications, the bootstrap and the sign-flip permutations in blocks of
        :data:`robustalign.scaleout.BLOCK_SIZE` resamples. Use a ``ThreadPoolExecutor``, a
        ``ProcessPoolExecutor`` or a ``dask.distributed`` client (``client.get_executor()`` or the client).
        Every block draws from its own keyed stream of ``rng`` (``robustalign.resampling.nulls``; keyed by
        the purpose, the claim and the block), and the serial run uses the same blocks and streams, so the
        numbers are identical with or without an executor.
    rng : int, Generator or None
        Seed of the bootstrap and the permutations (recorded).
    progress : bool or None
        Progress bar with an ETA on stderr or in a notebook; None: on in a terminal or notebook, off in CI
        and tests (see :mod:`robustalign._progress`). Numbers do not depend on it.

    Returns
    -------
    ClaimResult
        ``to_frame()``: one row per specification; ``verdicts``: one row with the verdict in words;
        ``evidence["joint"]``: the joint inference; ``plot()``: the specification curve.
    """
    if not isinstance(claim, Claim):
        raise TypeError(f"`claim` must be a robustalign Claim (e.g. Claim.closer(...)); got {type(claim).__name__}.")
    level = check_confidence_level(confidence_level)
    n_resamples = check_n_resamples(n_resamples)
    n_permutations = check_n_resamples(n_permutations, "n_permutations")
    alpha = check_confidence_level(alpha, "alpha")
    if claim.needs_reference and reference is None:
        raise ValueError(f"the claim '{claim.text}' compares with human answers: pass `reference=`.")
    _check_claim_names(responses, reference, claim)
    gen, record = as_generator(rng)  # bootstrap and sign flips: keyed streams of this seed, keyed by the claim
    specs = enumerate_specifications(responses, claim, reference=reference, factors=factors, metrics=metrics,
                                     aggregations=aggregations, include_pooled=include_pooled,
                                     max_specifications=max_specifications)
    from robustalign.scoring import NEAR_IDENTITY_TEST_SHARE

    id_level = NEAR_IDENTITY_TEST_SHARE * alpha
    D, items, p_id, near = _per_item(responses, reference, claim, specs, executor, progress, level=id_level)
    aggs = specs["aggregation"].to_numpy()
    if claim.form == "correlation":
        from robustalign.claims.general import audit_correlation

        prov = _provenance(responses, reference, claim, specs, record, n_resamples, n_permutations, alpha,
                           aggregations, include_pooled)
        prov.update(near_identity_level=id_level, n_specifications_near_identity=int(near.sum()))
        return audit_correlation(claim, specs, D, items, aggs, n_resamples=n_resamples, n_permutations=n_permutations,
                                 alpha=alpha, level=level, gen=gen, record=record, executor=executor,
                                 provenance=prov, near=near, p_identity=p_id)
    margin = claim.margin if claim.form == "equivalent" else None
    est = _stat(D, aggs, margin)
    tol = zero_tolerance(D)  # estimates within rounding of zero neither hold nor fail
    evaluable = np.isfinite(est)  # specifications whose subset has no item for the claim are left out
    from robustalign._progress import phase

    with phase(f"claim '{claim.text[:40]}': bootstrap and sign flips", progress=progress):
        boot = _cluster_bootstrap_blocks(D[:, evaluable], aggs[evaluable], specs[evaluable].reset_index(drop=True),
                                         n_resamples=n_resamples, level=level, gen=gen, executor=executor,
                                         key=(claim.text,), margin=margin)
        joint = None
        if D.shape[2] == 1 and margin is None:
            joint = joint_bootstrap_t(D, aggs, n_permutations=n_permutations, gen=gen, alpha=alpha,
                                      executor=executor, key=(claim.text,))
    if margin is not None:
        joint = _equivalence_tests(boot.resamples, tol[evaluable], evaluable, D.shape[0])
    holds_boot = np.mean(boot.resamples > tol[evaluable], axis=1)  # share of evaluable specs holding
    joint_boot = {
        "p_holds_in_90pct": float(np.mean(holds_boot >= SUPPORT_SHARE)),
        "p_holds_in_majority": float(np.mean(holds_boot > 0.5)),
    }
    share = float(np.mean(est[evaluable] > tol[evaluable]))
    n_eval = int(evaluable.sum())
    verdict, reason, n_needed = claim_verdict(claim, est, tol, share, joint, joint_boot, D, alpha, n_eval)
    mc, mc_txt = (False, "") if claim.form == "equivalent" else _verdict_mc(share, joint, joint_boot, alpha,
                                                                           n_permutations, n_resamples)
    reason += mc_txt
    reason = reason[:-1] + left_out_words(len(specs) - n_eval - int(near.sum()), near, specs, id_level)
    verdicts = pd.DataFrame([{"claim": claim.text, "verdict": verdict, "reason": reason,
                              "share_holds": share, "n_specifications": n_eval,
                              "n_specifications_empty": len(specs) - n_eval - int(near.sum()),
                              "n_specifications_near_identity": int(near.sum()), "n_needed": n_needed,
                              "mc_error": mc}])
    evidence = {"bootstrap": boot, "joint": joint, "joint_bootstrap": joint_boot, "specifications": specs,
                "contrasts": D, "items": items, "estimate": est, "tolerance": tol,
                "n_items": np.sum(~np.all(np.isnan(D), axis=2), axis=0), "identity_p": p_id, "near_identity": near}
    provenance = _provenance(responses, reference, claim, specs, record, n_resamples, n_permutations, alpha,
                             aggregations, include_pooled)
    provenance.update(near_identity_level=id_level, n_specifications_near_identity=int(near.sum()))
    return ClaimResult("claim", verdicts, evidence, provenance, level)


def left_out_words(n_empty: int, near: np.ndarray, specs: pd.DataFrame, level: float) -> str:
    """(Internal.) The end of a verdict's reason: the specifications left out, and why (no data; near identity)."""
    words = ""
    if n_empty:
        words += f"; {n_empty} specifications had no item with data for the claim and are left out"
    if near.any():
        ms = ", ".join(sorted(set(specs["metric"][near])))
        words += (f"; {int(near.sum())} specifications ({ms}) are left out because a cell is not distinguishable "
                  f"from the human distribution (chi-square of identity over the items, p > {level:.3g}): these "
                  "metrics have a kink at identity, where the corrected value is biased low by about "
                  "1/sqrt(answers), so a cell at identity would look farther than it is")
    return words + "."


def _provenance(responses, reference, claim, specs, record, n_resamples, n_permutations, alpha, aggregations,
                include_pooled) -> dict:
    return {"rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations,
            "alpha": alpha, "claim": claim, "factors": [c for c in specs.columns if c not in ("metric", "aggregation")],
            "metrics": sorted(set(specs["metric"])), "aggregations": list(aggregations),
            "include_pooled": include_pooled, "responses_hash": responses.data_hash(),
            "reference_hash": reference.data_hash() if reference is not None else None}


def _per_item(responses, reference, claim, specs, executor, progress=None,
              level: float = 0.0) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """The per-item quantities of every specification (items, specs, J), items without any value dropped, and
    the specifications' p-values of identity (:func:`_identity_p_values`) and which of them are left out: a
    specification with data whose metric has a kink at identity and one of whose cells is not distinguishable
    from the human distribution (p > ``level``; its quantities are set to NaN)."""
    from robustalign._progress import progress_bar

    fac = [c for c in specs.columns if c not in ("metric", "aggregation")]
    items = list(responses.items)
    # one contrast computation per (factor levels, metric); aggregations share it
    keys = specs[[*fac, "metric"]].drop_duplicates().reset_index(drop=True)
    tasks = [dict(r) for _, r in keys.iterrows()]
    with progress_bar(len(tasks), f"claim '{claim.text[:40]}': contrasts", progress=progress) as bar:
        if executor is None:  # in about 20 blocks, so the bar moves without costing anything per specification
            parts, step = [], max(1, len(tasks) // 20)
            for a in range(0, len(tasks), step):
                parts += _contrast_chunk((responses, reference, claim, tasks[a:a + step], fac, items))
                bar.advance(len(tasks[a:a + step]))
        else:  # chunks of specifications, so the data travel once per chunk rather than once per specification
            from robustalign.scaleout import map_tasks, split, tasks_for

            chunks = [(responses, reference, claim, tasks[a:b], fac, items)
                      for a, b in split(len(tasks), tasks_for(executor, len(tasks), default=CONTRAST_TASKS))]
            parts = [p for chunk in map_tasks(_contrast_chunk, chunks, executor=executor) for p in chunk]
            bar.advance(len(tasks))
    J = max(p.shape[1] for p in parts)
    block = np.full((len(items), len(tasks), J), np.nan)
    for k, p in enumerate(parts):
        block[:, k, : p.shape[1]] = p
    pos = specs[[*fac, "metric"]].merge(keys.reset_index(), on=[*fac, "metric"], how="left")["index"].to_numpy()
    D = block[:, pos, :]  # (items, specs, J)
    p_id = _identity_p_values(responses, reference, claim, specs, fac)
    near = np.isfinite(p_id) & (p_id > level) & ~np.all(np.isnan(D), axis=(0, 2))
    D[:, near, :] = np.nan
    keep_items = ~np.all(np.isnan(D), axis=(1, 2))
    D = D[keep_items]
    if D.shape[0] < 3 and near.any():
        raise ValueError(f"the claim '{claim.text}' cannot be judged by its metrics {sorted(set(specs['metric']))}: "
                         f"in {int(near.sum())} of {len(specs)} specifications a cell is not distinguishable from "
                         f"the human distribution (chi-square of identity, p > {level:.3g}), where these metrics have "
                         "a kink and their corrected values are biased low, and no other specification has data. "
                         "Add metric 'brier' (or 'cramer' on ordinal items), exactly unbiased at identity, to "
                         "`metrics`.")
    if D.shape[0] < 3:
        raise ValueError(f"the claim '{claim.text}' can be evaluated on only {D.shape[0]} items; check the names "
                         "of models, groups and factor levels in its cells, that they share items, and that the "
                         "cells have enough answers for the metric (robustalign.metrics.MIN_ANSWERS: a nonlinear "
                         "metric is not estimated for the answer distribution from fewer; metric 'agreement' is "
                         "linear and works from one answer).")
    return D, [i for i, k in zip(items, keep_items) if k], p_id, near


def _equivalence_tests(R: np.ndarray, tol: np.ndarray, evaluable: np.ndarray, n_items: int) -> dict:
    """Per-specification equivalence p-values from the bootstrap of ``margin - max|difference|``.

    The share ``q`` of resamples in which the statistic is not above 0 is the percentile bootstrap's
    one-sided p-value (TOST of every pair at once: intersection-union). The percentile bootstrap of a mean
    over ``n`` items is too narrow by the t quantile and the divisor ``n`` (Hesterberg 2015), so ``q`` is read
    as a normal quantile and converted: ``p = P(t_{n-1} > z_{1-q} sqrt(n / (n - 1)))``. ``q`` is kept within
    half a resample of 0 and 1.
    """
    from scipy import stats

    B = R.shape[0]
    q = np.clip(np.mean(R <= tol[None], axis=0), 0.5 / B, 1 - 0.5 / B)
    z = stats.norm.isf(q) * np.sqrt(n_items / max(n_items - 1, 1))
    p = np.full(evaluable.shape, np.nan)
    p[evaluable] = stats.t.sf(z, df=max(n_items - 1, 1))
    return {"p_spec": p, "p_maxt": np.full(evaluable.shape, np.nan)}


class ClaimResult(AssessmentResult):
    """The result of :func:`audit_claim`: one row per specification, the joint verdict in words."""

    def to_frame(self, confidence_level: float | None = None) -> pd.DataFrame:
        lv = self.confidence_level if confidence_level is None else check_confidence_level(confidence_level)
        ev = self.evidence
        specs, est, boot, joint = ev["specifications"], ev["estimate"], ev["bootstrap"], ev["joint"]
        claim = self.provenance["claim"]
        evaluable = np.isfinite(est)
        ci = boot.to_frame(lv)  # with the endpoints' Monte Carlo SEs
        out = specs.copy()
        out.insert(0, "quantity", "claim_margin")
        out["estimate"] = est
        for col, vals in (("std_error", boot.std_error), ("conf_low", ci["conf_low"].to_numpy()),
                          ("conf_high", ci["conf_high"].to_numpy()),
                          ("conf_low_mcse", ci["conf_low_mcse"].to_numpy()),
                          ("conf_high_mcse", ci["conf_high_mcse"].to_numpy())):
            full = np.full(len(specs), np.nan)
            full[evaluable] = vals
            out[col] = full
        out["conf_level"] = lv
        how = "two-stage bootstrap" if claim.form == "correlation" else "cluster bootstrap"
        out["method"], out["method_note"] = "percentile", how
        if "method_note" in ci:  # means over items: read at the small-sample expanded level
            for col, vals in (("method", ci["method"].to_numpy()),
                              ("method_note", [f"{how}; {x}" if x else how for x in ci["method_note"]])):
                full = np.full(len(specs), "percentile" if col == "method" else how, dtype=object)
                full[evaluable] = vals
                out[col] = full
        out["holds"] = pd.array(np.where(evaluable, est > ev["tolerance"], False), dtype="boolean")
        out.loc[~evaluable, "holds"] = pd.NA
        if joint is not None:
            out["p_value"] = joint["p_spec"]
            out["p_adjusted"] = adjust(joint["p_spec"], "fdr_bh")
            out["adjust_method"] = "fdr_bh"
            out["p_maxt"] = joint["p_maxt"]
            if claim.form != "equivalent":  # sign-flip p-values: Monte Carlo error of B permutations
                B = self.provenance["n_permutations"]
                out["p_value_mcse"] = p_value_mcse(out["p_value"].to_numpy(float), B)
                out["p_adjusted_mcse"] = adjusted_p_mcse(out["p_adjusted"].to_numpy(float),
                                                         out["p_value"].to_numpy(float), B)
        else:
            out["p_value"] = np.nan
            out["p_adjusted"] = np.nan
            out["adjust_method"] = "none"
        if "near_identity" in ev:  # kinked metrics: identity with the human distribution, specs left out
            out["identity_p"] = ev["identity_p"]
            out["near_identity"] = ev["near_identity"]
        out["family"] = f"{len(specs)} specifications of the claim"
        out["n_items"] = ev["n_items"]
        out["units"] = _units(claim)
        return out

    def plot(self, ax: Axes | None = None, **kw: Any) -> Axes:
        from robustalign.plots.multiverse import plot_specification_curve

        return plot_specification_curve(self, ax=ax, **kw)


def _units(claim: Claim) -> str:
    from robustalign.claims.general import ALL_OTHERS

    if claim.form == "trend":
        return "slope of similarity per unit of x (claimed direction positive)"
    if claim.form == "correlation":
        return f"{claim.method} correlation across units (claimed direction positive)"
    if claim.form == "equivalent":
        return f"margin {claim.margin:g} minus the largest |difference| between cells"
    if claim.metric == "position":
        return "difference in mean position on [0, 1]"
    if claim.cell_dicts[-1].get("group") == ALL_OTHERS:
        return "smallest similarity margin over the other groups"
    return "difference in similarity (metric of the specification)"


def claim_verdict(claim, est, tol, share, joint, joint_boot, D, alpha, n_specs):
    n_hold = int(np.sum(est > tol))
    base = f"'{claim.text}' holds in {n_hold} of {n_specs} specifications ({share:.0%})"
    n_needed = np.nan
    if claim.form == "equivalent":
        return _equivalence_verdict(claim, est, tol, share, joint, D, alpha, base)
    if joint is not None:
        test = "permutation (the other quantity across units)" if claim.form == "correlation" \
            else joint.get("test", "sign-flip")
        jt = (f"; joint {test} test of the median effect across specifications: median {joint['median_effect']:+.3f}, "
              f"p = {joint['p_median_greater']:.4f} (claimed direction); {joint['share_significant']:.0%} of "
              f"specifications significant at {alpha:g}, p = {joint['p_share_significant']:.4f}")
        if joint["p_median_greater"] < alpha and share >= SUPPORT_SHARE:
            return "supported", f"SUPPORTED: {base}{jt}.", n_needed
        if share < 0.5 or joint["p_median_less"] < alpha:
            return "not supported", f"NOT SUPPORTED: {base}{jt}.", n_needed
        if claim.form == "correlation":
            from robustalign.claims.general import units_needed

            n_needed, more = units_needed(joint["median_effect"], D.shape[2], alpha)
        else:
            n_needed, more = _items_needed(abs(joint["median_effect"]), D, np.max(tol, initial=0.0))
        return "inconclusive", f"INCONCLUSIVE: {base}{jt}{more}.", n_needed
    jb = (f"; the claim holds in at least 90% of specifications in {joint_boot['p_holds_in_90pct']:.0%} of "
          "bootstrap resamples of items")
    if joint_boot["p_holds_in_90pct"] >= 1 - alpha and share >= SUPPORT_SHARE:
        return "supported", f"SUPPORTED: {base}{jb}.", n_needed
    if share < 0.5:
        return "not supported", f"NOT SUPPORTED: {base}{jb}.", n_needed
    return "inconclusive", f"INCONCLUSIVE: {base}{jb}.", n_needed


def _equivalence_verdict(claim, est, tol, share, joint, D, alpha, base):
    """Supported when equivalence is shown (p < alpha) in at least 90% of the specifications."""
    p = joint["p_spec"][np.isfinite(est)]
    shown = float(np.mean(p < alpha)) if p.size else 0.0
    words = (f"; every pairwise difference is shown to lie within +-{claim.margin:g} (bootstrap TOST at {alpha:g}) "
             f"in {shown:.0%} of specifications (median p = {np.median(p):.4f})")
    if shown >= SUPPORT_SHARE:
        return "supported", f"SUPPORTED: {base}{words}.", np.nan
    if share < 0.5:
        return "not supported", f"NOT SUPPORTED: {base}{words}.", np.nan
    med = float(np.nanmedian(est))
    d = np.abs(D).max(axis=2)  # the worst pair of each item and specification: its SD over items
    n_needed, more = _items_needed(med, d[..., None], np.max(tol, initial=0.0), two_sided=False)  # TOST
    return "inconclusive", f"INCONCLUSIVE: {base}{words}{more}.", n_needed


def _decide(c: dict) -> str:
    """The verdict of :func:`claim_verdict` from its yes/no comparisons (for the Monte Carlo check)."""
    if c["joint"]:
        if c["median_greater"] and c["share_90"]:
            return "supported"
        return "not supported" if c["share_below_half"] or c["median_less"] else "inconclusive"
    if c["boot_90"] and c["share_90"]:
        return "supported"
    return "not supported" if c["share_below_half"] else "inconclusive"


def _verdict_mc(share, joint, joint_boot, alpha, n_permutations, n_resamples) -> tuple[bool, str]:
    """Is the verdict within Monte Carlo error of one of its thresholds? The share of specifications that hold
    does not move with the seed; the joint test's p-values (``n_permutations`` sign flips) and the bootstrap
    share of resamples holding in 90% of specifications (``n_resamples``) do."""
    fixed = {"joint": joint is not None, "share_90": share >= SUPPORT_SHARE, "share_below_half": share < 0.5}
    if joint is not None:
        pg, pl = joint["p_median_greater"], joint["p_median_less"]
        checks = {"median_greater": (pg < alpha, pg, alpha, p_value_mcse(pg, n_permutations), n_permutations,
                                     "the joint test's p (claimed direction)"),
                  "median_less": (pl < alpha, pl, alpha, p_value_mcse(pl, n_permutations), n_permutations,
                                  "the joint test's p (opposite direction)")}
    else:
        pb = joint_boot["p_holds_in_90pct"]
        checks = {"boot_90": (pb >= 1 - alpha, pb, 1 - alpha, p_value_mcse(pb, n_resamples), n_resamples,
                              "the bootstrap share holding in 90% of specifications")}
    return verdict_mc_check(checks, _decide, fixed)


def _items_needed(med: float, D: np.ndarray, tol: float, two_sided: bool = True) -> tuple[float, str]:
    """Items needed to detect the median effect ``med`` at 80% power, and the words for the verdict.

    A median within rounding of zero (``<= tol``) is not estimable: ``inf``, said so in words.
    """
    from robustalign.power import n_for_mde

    if not np.isfinite(med):
        return np.nan, ""
    if med <= tol:
        return np.inf, ("; the median effect is zero (to rounding), so no number of items would detect it "
                        "(items needed: not estimable)")
    d = D[..., 0]
    d = d[:, np.isfinite(d).sum(0) >= 2]  # specifications with an SD over items
    sd = np.nanmedian(np.nanstd(d, axis=0, ddof=1)) if d.shape[1] else np.nan
    if not (np.isfinite(sd) and sd > 0):
        return np.nan, ""
    n = n_for_mde(med, sd=sd, two_sided=two_sided)
    if not np.isfinite(n):
        return np.inf, "; the median effect is too small for any feasible number of items (not estimable)"
    return float(n), f"; about {n} items would detect the median effect at 80% power"


def _check_claim_names(responses: Responses, reference: Reference | None, claim: Claim) -> None:
    """Every model, group and factor level the claim's cells name exists in the data."""
    from robustalign.claims.general import ALL_OTHERS, cell_factors

    cells = claim.cell_dicts
    models = set(responses.models)
    for c in cells:
        if "model" in c and c["model"] not in models:
            raise ValueError(f"model {c['model']!r} is not in the responses; models are {sorted(models)}.")
    if reference is not None:
        groups = set(reference.groups)
        for c in cells:
            for g in (c.get("human"), c.get("group")):
                if g is not None and g != ALL_OTHERS and g not in groups:
                    raise ValueError(f"group {g!r} is not in the reference; groups are {sorted(groups)}.")
    wanted: dict[str, list[str]] = {}
    for c in cells:
        for k, v in cell_factors(c).items():
            wanted.setdefault(k, []).append(v)
    for k, vals in wanted.items():
        if k not in responses.data:
            what = "steering factor" if k == claim.steer else "factor"
            raise ValueError(f"{what} {k!r} is not a column of the responses; factors are {list(responses.factors)}.")
        levels = set(responses.data[k].astype(str))
        missing = list(dict.fromkeys(v for v in vals if v not in levels))
        if missing:
            raise ValueError(f"levels {missing} of {k!r} are not in the responses; levels are {sorted(levels)}.")
