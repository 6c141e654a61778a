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

Every claim is reduced, per specification, to per-item contrasts ``d_q`` (an items x J array): the
claim holds when ``min_j agg_q d_qj > 0`` by more than rounding (:data:`ZERO_RTOL` of the largest
``|d_qj|``; an estimate of exactly cancelling contrasts is zero, not a tiny positive effect). ``J = 1``
for paired contrasts (``closer``, ``steering_raises``, ``human_proxy``, ``higher_position``); for
``closest_group`` the J columns are the margins over every other group.

Verdicts: *supported* when the joint test rejects in the claimed direction and the claim holds in at
least 90% of specifications; *not supported* when it holds in fewer than half, or the joint test
rejects in the opposite direction; otherwise *inconclusive* (the claim depends on the specification
or the data are too few), with the items needed to detect the median effect at 80% power.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from robustalign._rng import as_generator
from robustalign._validation import check_confidence_level, check_n_resamples
from robustalign.claims._base import AssessmentResult, nanmean
from robustalign.multiplicity import adjust
from robustalign.resampling.permutation import maxt_p_values
from robustalign.schema import Reference, Responses

__all__ = ["Claim", "audit_claim", "enumerate_specifications"]

KINDS = ("closer", "steering_raises", "closest_group", "human_proxy", "higher_position")
AGGREGATIONS = ("mean", "median")
POOLED = "(pooled)"
SUPPORT_SHARE = 0.9
#: A specification's statistic within this fraction of the largest |per-item contrast| of zero is zero: the
#: mean of contrasts that cancel exactly comes out as a rounding residue (5.55e-17, or 1e-13 after the
#: position averages), which must neither "hold" nor reach a sample-size formula.
ZERO_RTOL = 1e-9
#: Tasks the per-specification contrasts are split into when the executor does not say how many workers
#: it has (otherwise four per worker). Chunking never changes the numbers.
CONTRAST_TASKS = 32


@dataclass(frozen=True)
class Claim:
    """A statement about the data. Build one with the class methods.

    ``Claim.closer("A", than="B", group="C")``: model A is closer to group C than model B.
    ``Claim.steering_raises("A", target="C")``: steering model A toward C raises its alignment with C
    (over the unsteered ``baseline`` level of the ``steer`` factor).
    ``Claim.closest_group("A", group="C")``: C is the group model A is closest to.
    ``Claim.human_proxy("C", target="D", model="A")``: humans of C are a closer proxy for D than model A.
    ``Claim.higher_position("A", than="B")``: model A's mean answer position is higher than B's (e.g.
    "more agreeing"); needs no human reference.
    """

    kind: str
    model: str | None = None
    other: str | None = None
    group: str | None = None
    target: str | None = None
    steer: str = "steer_target"
    baseline: str = "none"
    text: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}; got {self.kind!r}.")

    @classmethod
    def closer(cls, model: str, *, than: str, group: str) -> Claim:
        return cls("closer", model=model, other=than, group=group,
                   text=f"{model} is closer to {group} than {than}")

    @classmethod
    def steering_raises(cls, model: str, *, target: str, steer: str = "steer_target", baseline: str = "none",
                        group: str | None = None) -> Claim:
        return cls("steering_raises", model=model, target=target, group=group or target, steer=steer,
                   baseline=baseline, text=f"steering {model} toward {target} raises its alignment with "
                   f"{group or target}")

    @classmethod
    def closest_group(cls, model: str, *, group: str) -> Claim:
        return cls("closest_group", model=model, group=group, text=f"{model}'s closest group is {group}")

    @classmethod
    def human_proxy(cls, proxy: str, *, target: str, model: str) -> Claim:
        return cls("human_proxy", model=model, group=proxy, target=target,
                   text=f"humans of {proxy} are a closer proxy for {target} than {model}")

    @classmethod
    def higher_position(cls, model: str, *, than: str) -> Claim:
        return cls("higher_position", model=model, other=than,
                   text=f"{model}'s mean answer position is higher than {than}'s")

    @property
    def needs_reference(self) -> bool:
        return self.kind != "higher_position"


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
    (a 0/1 quantity per item, so its median is 0 or 1 whatever the data) is not a specification.
    """
    from robustalign.metrics import METRICS

    if factors is None:
        factors = [f for f in responses.factors if f not in ("sample", claim.steer)]
    else:
        factors = list(factors)
        bad = [f for f in factors if f not in responses.data]
        if bad:
            raise ValueError(f"`factors` {bad} are not columns of the responses; factors are {list(responses.factors)}.")
    for a in aggregations:
        if a not in AGGREGATIONS:
            raise ValueError(f"`aggregations` must be drawn from {AGGREGATIONS}; got {a!r}.")
    if claim.kind == "higher_position":
        metrics = ["mean_position"]
    elif metrics is None:
        metrics = ["js", "tv", "plurality"]
        if reference is not None and all(reference.scales[i].ordinal for i in responses.items if i in reference.scales):
            metrics += ["w1", "mean_position"]
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
    """Per-item contrasts (items x J) of one specification; NaN where an item has no data."""
    from robustalign.scoring import human_pair_scores, item_scores, model_profiles

    sub = _subset(responses, spec, factors)
    metric = spec["metric"]
    idx = pd.Index(items)

    def scores(models, groups, by=("model",)):
        s = item_scores(sub, reference, metric=metric, by=list(by), groups=groups)
        return s[s["model"].isin(models)]

    if claim.kind == "higher_position":
        p = model_profiles(sub, by=["model"])
        w = p.pivot_table(index="item", columns="model", values="value", observed=True).reindex(idx)
        return (w.get(claim.model, np.nan) - w.get(claim.other, np.nan)).to_numpy(float)[:, None]
    if claim.kind == "closer":
        s = scores([claim.model, claim.other], [claim.group])
        w = s.pivot_table(index="item", columns="model", values="score", observed=True).reindex(idx)
        return (w.get(claim.model, np.nan) - w.get(claim.other, np.nan)).to_numpy(float)[:, None]
    if claim.kind == "steering_raises":
        s = scores([claim.model], [claim.group], by=("model", claim.steer))
        s = s[s[claim.steer].astype(str).isin([claim.target, claim.baseline])]
        w = s.pivot_table(index="item", columns=claim.steer, values="score", observed=True).reindex(idx)
        w.columns = w.columns.astype(str)
        return (w.get(claim.target, np.nan) - w.get(claim.baseline, np.nan)).to_numpy(float)[:, None]
    if claim.kind == "human_proxy":
        s = scores([claim.model], [claim.target]).set_index("item")["score"].reindex(idx)
        h = human_pair_scores(reference, items, claim.group, claim.target, metric=metric)  # same estimand
        return (h - s.to_numpy(float))[:, None]
    # closest_group: margins over every other group
    s = scores([claim.model], None)
    w = s.pivot_table(index="item", columns="group", values="score", observed=True).reindex(idx)
    if claim.group not in w:
        return np.full((len(items), max(1, w.shape[1] - 1)), np.nan)
    others = [g for g in w.columns if g != claim.group]
    return (w[[claim.group]].to_numpy(float) - w[others].to_numpy(float))


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


def _aggregate(x: np.ndarray, how: str, axis: int) -> np.ndarray:
    return nanmean(x, axis) if how == "mean" else _nanmedian(x, axis)


def _stat(D: np.ndarray, aggs: np.ndarray) -> np.ndarray:
    """D: (..., items, specs, J) -> (..., specs): min over J of the aggregate over items."""
    out = np.empty(D.shape[:-3] + D.shape[-2:-1])
    for how in ("mean", "median"):
        m = aggs == how
        if m.any():
            out[..., m] = np.fmin.reduce(_aggregate(D[..., m, :], how, axis=-3), axis=-1)  # NaN only if all are
    return out


#: Bytes of the largest temporary of one evaluation of ``_stat`` on resampled data.
_CHUNK_BYTES = 32 * 2**20


def _rows_per_chunk(D: np.ndarray) -> int:
    return max(1, _CHUNK_BYTES // max(D[0].nbytes * D.shape[0], 1))


def _stat_rows(D: np.ndarray, aggs: np.ndarray, make, rows: int) -> np.ndarray:
    """``_stat`` of ``make(s, e)`` (the resampled D of rows s..e) in memory-bounded chunks: (rows, specs)."""
    out = np.empty((rows, D.shape[1]))
    step = _rows_per_chunk(D)
    for s in range(0, rows, step):
        e = min(rows, s + step)
        out[s:e] = _stat(make(s, e), aggs)
    return out


def _boot_stat(D: np.ndarray, aggs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Statistic of the item resamples ``idx`` (rows, items) of ``D`` (module level: tasks pickle it)."""
    return _stat_rows(D, aggs, lambda s, e: D[idx[s:e]], len(idx))


def _flip_stat(D: np.ndarray, aggs: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Statistic of ``D`` (J = 1) with the items' contrasts multiplied by ``signs`` (rows, items)."""
    d = D[..., 0]
    return _stat_rows(D, aggs, lambda s, e: (signs[s:e, :, None] * d[None])[..., None], len(signs))


def _jackknife(D: np.ndarray, aggs: np.ndarray) -> np.ndarray:
    """Delete-one-item values (items, specs), for BCa intervals from the stored replicates."""
    from robustalign.resampling._weights import leave_one_out

    n = D.shape[0]
    return _stat_rows(D, aggs, lambda s, e: D[leave_one_out(n, s, e)], n)


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

    from robustalign.resampling.nulls import p_values, sign_flips

    obs = _stat(D, aggs)
    null = sign_flips(partial(_flip_stat, D, aggs), D.shape[0], n_permutations=n_permutations, rng=gen,
                      key=("audit_claim.sign_flip", *key), executor=executor)
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


def _contrast_chunk(args) -> list[np.ndarray]:
    """Per-item contrasts of several specifications (one task; module level so that it pickles)."""
    responses, reference, claim, specs, factors, items = args
    return [_contrasts(responses, reference, claim, spec, factors, items) for spec in specs]


def _cluster_bootstrap_blocks(D, aggs, specs, *, n_resamples, level, gen, executor, key=()):
    """Percentile cluster bootstrap over items of every specification (items resampled jointly), drawn by
    :func:`robustalign.resampling.nulls.item_bootstrap` from the stream ``("audit_claim.bootstrap", *key)``."""
    from functools import partial

    from robustalign.resampling import BootstrapResult
    from robustalign.resampling.nulls import BLOCK_SIZE, item_bootstrap
    from robustalign.scaleout import warn_degenerate

    gen, record = as_generator(gen)
    R = item_bootstrap(partial(_boot_stat, D, aggs), D.shape[0], n_resamples=n_resamples, rng=gen,
                       key=("audit_claim.bootstrap", *key), executor=executor)
    labels = specs.reset_index(drop=True)
    warn_degenerate(R, labels, stacklevel=4)
    return BootstrapResult(
        estimate=_stat(D, aggs), resamples=np.asfortranarray(R), jackknife=_jackknife(D, aggs), labels=labels,
        design="cluster", method="percentile", confidence_level=level, n_clusters=int(D.shape[0]), rng=record,
        statistic="claim margin",
        provenance={"path": "blocks", "block_size": BLOCK_SIZE, "n_blocks": -(-n_resamples // BLOCK_SIZE),
                    "stream": ["audit_claim.bootstrap", *map(str, key)]},
    )


@dataclass
class _Evidence:
    specs: pd.DataFrame
    D: np.ndarray = field(repr=False)
    aggs: np.ndarray = field(repr=False)
    estimate: np.ndarray = field(repr=False)
    boot: np.ndarray = field(repr=False)


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
    rng=None,
    executor=None,
    progress: bool | None = None,
) -> AssessmentResult:
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
        Sign-flip permutations of the joint null (paired contrasts).
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
        and tests (see :mod:`robustalign._progress`).

    Returns
    -------
    AssessmentResult
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
    fac = [c for c in specs.columns if c not in ("metric", "aggregation")]
    items = list(responses.items)
    # one contrast computation per (factor levels, metric); aggregations share it
    keys = specs[[*fac, "metric"]].drop_duplicates().reset_index(drop=True)
    tasks = [dict(r) for _, r in keys.iterrows()]

    from robustalign._progress import phase, progress_bar

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
    aggs = specs["aggregation"].to_numpy()
    keep_items = ~np.all(np.isnan(D), axis=(1, 2))
    D = D[keep_items]
    if D.shape[0] < 3:
        raise ValueError(f"the claim '{claim.text}' can be evaluated on only {D.shape[0]} items; check the names "
                         "of models, groups and steering levels, and that they share items, and that the cells have "
                         "enough answers for the metric (robustalign.metrics.MIN_ANSWERS: a nonlinear metric is not "
                         "estimated for the answer distribution from fewer; metric 'agreement' is linear and works "
                         "from one answer).")
    est = _stat(D, aggs)
    tol = zero_tolerance(D)  # estimates within rounding of zero neither hold nor fail
    n_items = np.sum(~np.all(np.isnan(D), axis=2), axis=0)

    evaluable = np.isfinite(est)  # specifications whose subset has no item for the claim are left out
    with phase(f"claim '{claim.text[:40]}': bootstrap and sign flips", progress=progress):
        boot = _cluster_bootstrap_blocks(D[:, evaluable], aggs[evaluable],
                                         specs[evaluable].reset_index(drop=True), n_resamples=n_resamples,
                                         level=level, gen=gen, executor=executor, key=(claim.text,))
        joint = None
        if J == 1:
            joint = joint_sign_flip(D, aggs, n_permutations=n_permutations, gen=gen, alpha=alpha,
                                    executor=executor, key=(claim.text,))
    holds_boot = np.mean(boot.resamples > tol[evaluable], axis=1)  # share of evaluable specs holding
    joint_boot = {
        "p_holds_in_90pct": float(np.mean(holds_boot >= SUPPORT_SHARE)),
        "p_holds_in_majority": float(np.mean(holds_boot > 0.5)),
    }
    share = float(np.mean(est[evaluable] > tol[evaluable]))
    evidence = {"bootstrap": boot, "joint": joint, "joint_bootstrap": joint_boot, "specifications": specs,
                "contrasts": D, "items": [i for i, k in zip(items, keep_items) if k]}

    def build(lv: float) -> pd.DataFrame:
        ci = boot.conf_int(lv)
        out = specs.copy()
        out.insert(0, "quantity", "claim_margin")
        out["estimate"] = est
        for col, vals in (("std_error", boot.std_error), ("conf_low", ci["conf_low"].to_numpy()),
                          ("conf_high", ci["conf_high"].to_numpy())):
            full = np.full(len(specs), np.nan)
            full[evaluable] = vals
            out[col] = full
        out["conf_level"] = lv
        out["method"] = "cluster bootstrap (percentile)"
        out["holds"] = pd.array(np.where(evaluable, est > tol, False), dtype="boolean")
        out.loc[~evaluable, "holds"] = pd.NA
        if joint is not None:
            out["p_value"] = joint["p_spec"]
            out["p_adjusted"] = adjust(joint["p_spec"], "fdr_bh")
            out["adjust_method"] = "fdr_bh"
            out["p_maxt"] = joint["p_maxt"]
        else:
            out["p_value"] = np.nan
            out["p_adjusted"] = np.nan
            out["adjust_method"] = "none"
        out["family"] = f"{len(specs)} specifications of the claim"
        out["n_items"] = n_items
        out["units"] = _units(claim)
        return out

    n_eval = int(evaluable.sum())
    verdict, reason, n_needed = _verdict(claim, est, tol, share, joint, joint_boot, D, alpha, n_eval)
    if n_eval < len(specs):
        reason = reason[:-1] + (f"; {len(specs) - n_eval} specifications had no item with data for the claim "
                                "and are left out.")
    verdicts = pd.DataFrame([{"claim": claim.text, "verdict": verdict, "reason": reason,
                              "share_holds": share, "n_specifications": n_eval,
                              "n_specifications_empty": len(specs) - n_eval, "n_needed": n_needed}])
    provenance = {"rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations,
                  "alpha": alpha, "claim": claim, "factors": fac, "metrics": sorted(set(specs["metric"])),
                  "aggregations": list(aggregations), "include_pooled": include_pooled,
                  "responses_hash": responses.data_hash(),
                  "reference_hash": reference.data_hash() if reference is not None else None}

    def plotter(result, ax=None, **kw):
        from robustalign.plots.multiverse import plot_specification_curve

        return plot_specification_curve(result, ax=ax, **kw)

    return AssessmentResult("claim", verdicts, evidence, provenance, level, build, plotter)


def _units(claim: Claim) -> str:
    if claim.kind == "higher_position":
        return "difference in mean position on [0, 1]"
    if claim.kind == "closest_group":
        return "smallest similarity margin over the other groups"
    return "difference in similarity (metric of the specification)"


def _verdict(claim, est, tol, share, joint, joint_boot, D, alpha, n_specs):
    n_hold = int(np.sum(est > tol))
    base = f"'{claim.text}' holds in {n_hold} of {n_specs} specifications ({share:.0%})"
    n_needed = np.nan
    if joint is not None:
        jt = (f"; joint sign-flip test of the median effect across specifications: median {joint['median_effect']:+.3f}, "
              f"p = {joint['p_median_greater']:.4f} (claimed direction); {joint['share_significant']:.0%} of "
              f"specifications significant at {alpha:g}, p = {joint['p_share_significant']:.4f}")
        if joint["p_median_greater"] < alpha and share >= SUPPORT_SHARE:
            return "supported", f"SUPPORTED: {base}{jt}.", n_needed
        if share < 0.5 or joint["p_median_less"] < alpha:
            return "not supported", f"NOT SUPPORTED: {base}{jt}.", n_needed
        n_needed, more = _items_needed(abs(joint["median_effect"]), D, np.max(tol, initial=0.0))
        return "inconclusive", f"INCONCLUSIVE: {base}{jt}{more}.", n_needed
    jb = (f"; the claim holds in at least 90% of specifications in {joint_boot['p_holds_in_90pct']:.0%} of "
          "bootstrap resamples of items")
    if joint_boot["p_holds_in_90pct"] >= 1 - alpha and share >= SUPPORT_SHARE:
        return "supported", f"SUPPORTED: {base}{jb}.", n_needed
    if share < 0.5:
        return "not supported", f"NOT SUPPORTED: {base}{jb}.", n_needed
    return "inconclusive", f"INCONCLUSIVE: {base}{jb}.", n_needed


def _items_needed(med: float, D: np.ndarray, tol: float) -> tuple[float, str]:
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
    n = n_for_mde(med, sd=sd)
    if not np.isfinite(n):
        return np.inf, "; the median effect is too small for any feasible number of items (not estimable)"
    return float(n), f"; about {n} items would detect the median effect at 80% power"


def _check_claim_names(responses: Responses, reference: Reference | None, claim: Claim) -> None:
    models = set(responses.models)
    for m in (claim.model, claim.other if claim.kind in ("closer", "higher_position") else None):
        if m is not None and m not in models:
            raise ValueError(f"model {m!r} is not in the responses; models are {sorted(models)}.")
    if reference is not None:
        groups = set(reference.groups)
        for g in (claim.group, claim.target if claim.kind == "human_proxy" else None):
            if g is not None and g not in groups:
                raise ValueError(f"group {g!r} is not in the reference; groups are {sorted(groups)}.")
    if claim.kind == "steering_raises":
        if claim.steer not in responses.data:
            raise ValueError(f"steering factor {claim.steer!r} is not a column of the responses.")
        levels = set(responses.data[claim.steer].astype(str))
        missing = [v for v in (claim.target, claim.baseline) if v not in levels]
        if missing:
            raise ValueError(f"levels {missing} of {claim.steer!r} are not in the responses; levels are {sorted(levels)}.")
