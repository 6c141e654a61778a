r"""Extrapolability: does alignment measured on some items carry over to items that were not evaluated?

A claim of cultural alignment is usually made on a few survey blocks, topics or dimensions and then
read as a statement about the model's culture in general. This module tests that reading with held-out
comparisons and sets every number against the same computation for real countries (METHODS 3.5):

E1 :func:`assess_extrapolability`, held-out-domain transfer
    Items are partitioned into domains *d* (survey blocks, topics, dimensions). For a model (or persona)
    *m* and target group *c*, :math:`A_d(m, c) = \operatorname{mean}_{q \in d} S(p_{m,q}, h_{c,q})`.
    The transfer between domains *e* and *h* is the Spearman correlation across targets,
    :math:`r_{e,h}(m) = \operatorname{corr}_c(A_{d_e}(m, \cdot), A_{d_h}(m, \cdot))`: if the groups a
    model is close to on one domain are the groups it is close to on another, its alignment profile
    extrapolates. The human benchmark treats each human group *c'* as a "model" (targets :math:`c \ne c'`)
    and averages its transfer over *c'*. :math:`\Delta = r_{LLM} - r_{human}` gets a two-way bootstrap
    interval (items within domain and targets resampled together, so model and human values are paired);
    :math:`r_{LLM}` gets a permutation null (target labels permuted independently in each domain).

E3 :func:`assess_extrapolability`, split-half reliability of the group ranking
    Random halves of the items; Kendall :math:`\tau` and Spearman :math:`\rho` between the two halves'
    alignment with each target, top-1 agreement, and the Spearman-Brown reliability
    :math:`2\bar\rho / (1 + \bar\rho)` of the ranking on all items. The same for human groups as
    "models". Intervals from an item bootstrap.

E2 :func:`assess_dimension_prediction`, held-out-dimension prediction (Hofstede-style indices)
    Works on tables of dimension scores (e.g. VSM-2013 indices from
    :func:`robustalign.metrics.vsm2013_indices` for personas, published scores for countries). Each
    dimension is held out in turn; the persona's own held-out score is compared with the country's
    published score, and with what the human between-country structure predicts from the persona's
    evaluated dimensions (ridge or kNN across real countries, leave-one-country-out). Errors are scaled
    by the error of a random other country: skill score :math:`SS = 1 - MAE / MAE_{perm}`.

Khan et al.'s subset-versus-full clustering ARI is not implemented as evidence: a subset of the
dimensions is part of the full set, so their agreement is partly mechanical and nothing is held out.
p-values are never summarised by a median; every unit (model) is analysed on its own, never pooled.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from robustalign._errors import RobustAlignWarning, preview
from robustalign._rng import RngLike, as_generator
from robustalign._validation import (
    check_choice,
    check_n_resamples,
    check_resampling_args,
)
from robustalign.claims._base import AssessmentResult
from robustalign.metrics import spearman_alignment
from robustalign.multiplicity import adjust
from robustalign.resampling import BootstrapResult, keyed_stream
from robustalign.resampling.draws import bootstrap_counts, half_masks, integer_draws, random_permutations
from robustalign.resampling.mcerror import (
    adjusted_p_mcse,
    p_value_mcse,
    verdict_mc_check,
)
from robustalign.resampling.permutation import permutation_p_values
from robustalign.schema import Reference, Responses

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike


__all__ = ["ExtrapolabilityResult", "assess_dimension_prediction", "assess_extrapolability", "spearman_brown"]

#: random item splits drawn inside each bootstrap resample of the split-half statistics
SPLITS_PER_RESAMPLE = 10
#: Below this many target groups a correlation across targets is too coarse to judge transfer.
MIN_TARGETS_FOR_VERDICT = 6


class ExtrapolabilityResult(AssessmentResult):
    """:class:`AssessmentResult` of :func:`assess_extrapolability` / :func:`assess_dimension_prediction`.

    ``evidence`` holds ``"bootstrap"`` (:class:`~robustalign.resampling.BootstrapResult` of every
    statistic, labelled by ``quantity`` and unit keys), ``"null"`` (permutation null of the transfer
    statistics, E1), ``"scores"`` (the per-item similarity table E1/E3 start from) and the point tables.
    """

    def table(self, quantity: str, confidence_level: float | None = None) -> pd.DataFrame:
        """Rows of :meth:`to_frame` for one quantity (e.g. ``"transfer_r"``)."""
        f = self.to_frame(confidence_level)
        known = sorted(f["quantity"].unique())
        if quantity not in known:
            raise ValueError(f"`quantity` must be one of {known}; got {quantity!r}.")
        return f[f["quantity"] == quantity].reset_index(drop=True)


# ==================================================================================================
# small vectorised statistics
# ==================================================================================================
def spearman_brown(r: ArrayLike, k: float = 2.0) -> np.ndarray:
    r"""Spearman-Brown prophecy: reliability of a test ``k`` times as long, :math:`k r / (1 + (k - 1) r)`.

    A reliability is not negative: a negative half-test correlation (no shared signal, plus noise)
    is taken as 0 before the prophecy, which otherwise runs off to minus infinity as r -> -1/(k - 1).
    """
    x = np.clip(np.asarray(r, dtype=float), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return k * x / (1.0 + (k - 1.0) * x)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation along the last axis over entries finite in both (ties averaged).

    NaN when fewer than 3 entries are jointly finite or either side is constant.
    """
    n = (np.isfinite(x) & np.isfinite(y)).sum(-1)
    return np.where(n >= 3, spearman_alignment(x, y, nan_policy="omit"), np.nan)


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis over jointly finite entries (as ``scipy.stats.kendalltau``)."""
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    m = np.isfinite(x) & np.isfinite(y)
    C = m.shape[-1]
    iu, ju = np.triu_indices(C, 1)
    x0, y0 = np.where(m, x, 0.0), np.where(m, y, 0.0)
    sx = np.sign(x0[..., iu] - x0[..., ju]).astype(np.int8)
    sy = np.sign(y0[..., iu] - y0[..., ju]).astype(np.int8)
    if m.all():
        s = np.einsum("...p,...p->...", sx, sy, dtype=float)
        n0 = np.full(s.shape, len(iu), float)
        tx = (sx == 0).sum(-1, dtype=float)
        ty = (sy == 0).sum(-1, dtype=float)
    else:
        pm = m[..., iu] & m[..., ju]
        s = np.einsum("...p,...p->...", sx * sy, pm.astype(np.int8), dtype=float)
        n0 = pm.sum(-1, dtype=float)
        tx = ((sx == 0) & pm).sum(-1, dtype=float)
        ty = ((sy == 0) & pm).sum(-1, dtype=float)
    den = np.sqrt((n0 - tx) * (n0 - ty))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = s / den
    return np.where((m.sum(-1) >= 2) & (den > 0), t, np.nan)


def _top1_agree(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 when the argmax over the last axis (finite entries) is the same target, else 0; NaN if none."""
    ok = np.isfinite(x).any(-1) & np.isfinite(y).any(-1)
    ax = np.argmax(np.where(np.isfinite(x), x, -np.inf), axis=-1)
    ay = np.argmax(np.where(np.isfinite(y), y, -np.inf), axis=-1)
    return np.where(ok, (ax == ay).astype(float), np.nan)


def _targets_needed(r: float, alpha: float, power: float = 0.8) -> float:
    """Targets needed for a one-sided Spearman test of ``r`` at ``alpha`` (Fieller et al. 1957 variance)."""
    if not np.isfinite(r) or r <= 0:
        return np.nan
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    return float(np.ceil(3 + 1.06 * (z / np.arctanh(min(r, 0.999))) ** 2))


def _fmt(x: float, d: int = 2) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "nan"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _e1_verdict(c: dict) -> str:
    """E1 verdict from its comparisons (True = the comparison holds)."""
    ok_delta = c["ok_delta"] if "ok_delta" in c else not c["below"]  # no margin: not below 0
    if c["rejected"] and ok_delta:
        return "supported"
    if c["below"] or (not c["rejected"] and c["humans_transfer"]):
        return "not supported"
    return "inconclusive"


def _e3_verdict(c: dict) -> str:
    if c["reliable"] and not c["below"] and c["defined"]:
        return "supported"
    return "not supported" if c["below"] else "inconclusive"


def _mc_check(checks: dict, decide, fixed: Mapping | None = None) -> tuple[bool, str]:
    """See :func:`robustalign.resampling.mcerror.verdict_mc_check`."""
    return verdict_mc_check(checks, decide, fixed)


# ==================================================================================================
# inputs
# ==================================================================================================
def _domain_map(domains, items: Sequence[str], reference, item_table) -> dict[str, str] | None:
    """Item -> domain, from a mapping, Series, callable, or a column of an item table."""
    if domains is None:
        return None
    if isinstance(domains, str):
        table = item_table if item_table is not None else getattr(reference, "items_info", None)
        if table is None:
            raise ValueError(
                f"`domains={domains!r}` names a column, but no item table was given: pass `item_table=` (a "
                "DataFrame with an `item` column) or give `domains` as a mapping item -> domain."
            )
        if domains not in table:
            raise ValueError(
                f"`domains={domains!r}` is not a column of the item table; its columns are {list(table.columns)}."
            )
        key = table["item"] if "item" in table else pd.Series(table.index, index=table.index)
        return {str(k): str(v) for k, v in zip(key, table[domains]) if pd.notna(v)}
    if callable(domains):
        return {str(i): str(domains(i)) for i in items}
    if isinstance(domains, pd.Series):
        return {str(k): str(v) for k, v in domains.items() if pd.notna(v)}
    if isinstance(domains, Mapping):
        return {str(k): str(v) for k, v in domains.items() if v is not None}
    raise ValueError(
        "`domains` must be None, a mapping item -> domain, a Series, a callable item -> domain, or the name of "
        f"a column of `item_table`; got {type(domains).__name__}."
    )


def _score_array(scores: pd.DataFrame, by: list[str]):
    """Tidy per-item scores -> (units frame, items, targets, S (NI, U, C) with NaN where absent)."""
    units = scores[by].drop_duplicates().sort_values(by).reset_index(drop=True)
    items = sorted(scores["item"].astype(str).unique())
    targets = sorted(scores["group"].astype(str).unique())
    u_idx = pd.MultiIndex.from_frame(units).get_indexer(pd.MultiIndex.from_frame(scores[by]))
    i_idx = pd.Index(items).get_indexer(scores["item"].astype(str))
    c_idx = pd.Index(targets).get_indexer(scores["group"].astype(str))
    S = np.full((len(items), len(units), len(targets)), np.nan)
    S[i_idx, u_idx, c_idx] = scores["score"].to_numpy(float)
    return units, items, targets, S


def _human_scores(reference, items, targets, metric: str, estimand: str = "answer-distribution") -> np.ndarray:
    """S(h_{c'}, h_c) per item: (NI, C', C), NaN on the diagonal and where a reference is absent.

    With the answer-distribution estimand both groups are bias-corrected for their numbers of
    respondents where the reference gives them (unknown counts: the shares are taken as exact), the
    same treatment as the model side in :func:`robustalign.scoring.item_scores`.
    """
    from robustalign.metrics import LINEAR_METRICS, METRICS, finite_sample_similarity

    H = reference.array(items, targets)
    K = reference.K(items)[:, None, None]
    ordinal = reference.ordinal(items)[:, None, None]
    absent = np.isnan(H).any(-1)
    Hz = np.where(np.isnan(H), 0.0, H)
    Hz[absent] = 1.0 / H.shape[-1]  # placeholder only, masked below
    S = np.asarray(METRICS[metric](Hz[:, :, None, :], Hz[:, None, :, :], K=K, ordinal=ordinal, check=False), float)
    if estimand == "answer-distribution" and metric not in LINEAR_METRICS:
        n = reference.n_array(items, targets)  # respondents per item x group, NaN = unknown (exact)
        if np.isfinite(n).any():
            n = np.where(absent, np.nan, n)
            n_p = np.where(np.isfinite(n), n, np.inf)
            C, kmax = len(targets), H.shape[-1]
            step = max(1, 2_000_000 // (C * C * kmax**3))  # the jackknife's arrays are C x C x K^3 per item
            S = np.broadcast_to(S, (len(items), C, C)).copy()
            for a in range(0, len(items), step):
                sl = slice(a, a + step)
                S[sl] = finite_sample_similarity(metric, Hz[sl, :, None, :], Hz[sl, None, :, :], n_p[sl, :, None],
                                                 n[sl, None, :], K=K[sl], ordinal=ordinal[sl], min_n=1)
    S = np.broadcast_to(S, (len(items), len(targets), len(targets))).copy()
    S[absent[:, :, None] | absent[:, None, :]] = np.nan
    idx = np.arange(len(targets))
    S[:, idx, idx] = np.nan
    return S


# ==================================================================================================
# E1: held-out-domain transfer
# ==================================================================================================
def _domain_means(Wd: list[np.ndarray], vals: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    """Weighted mean per domain: (rows, D, cols) from item weights (rows, I_d) per domain."""
    out = []
    for W, v, m in zip(Wd, vals, masks):
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((W @ v) / (W @ m))
    return np.stack(out, axis=1)


def _pair_r(A: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Spearman across the last axis (targets) for each domain pair: (..., D, C) -> (..., P)."""
    return np.stack([_spearman(A[..., e, :], A[..., h, :]) for e, h in pairs], axis=-1)


def _human_r(Ah: np.ndarray, pairs, idx: np.ndarray | None = None) -> np.ndarray:
    """Transfer of each human group as a "model": (rows, C', D, C) -> (rows, C', P).

    With target draws ``idx`` (rows, C) the "models" and targets are the drawn groups, and a drawn
    model is never compared with any copy of itself.
    """
    if idx is not None:
        Ah = np.take_along_axis(Ah, idx[:, :, None, None], axis=1)
        Ah = np.take_along_axis(Ah, idx[:, None, None, :], axis=3)
        same = idx[:, :, None] == idx[:, None, :]
        Ah = np.where(same[:, :, None, :], np.nan, Ah)
    return _pair_r(Ah, pairs)


def _transfer(S, Sh, dom_items, dom_names, pairs, rng, n_resamples, n_permutations, alternative, centre):
    """Point estimates, two-way bootstrap and permutation null of the transfer statistics.

    Draws come from streams keyed by purpose (and domain), each consumed in order, so they do not depend
    on the chunk size and hence not on the number of units.
    """
    NI, U, C = S.shape
    D = len(dom_items)
    vals, masks, vals_h, masks_h = [], [], [], []
    for ix in dom_items:
        s = S[ix].reshape(len(ix), U * C)
        vals.append(np.nan_to_num(s))
        masks.append(np.isfinite(s).astype(float))
        sh = Sh[ix].reshape(len(ix), C * C)
        vals_h.append(np.nan_to_num(sh))
        masks_h.append(np.isfinite(sh).astype(float))
    both_v = [np.hstack([a, b]) for a, b in zip(vals, vals_h)]
    both_m = [np.hstack([a, b]) for a, b in zip(masks, masks_h)]

    ones = [np.ones((1, len(ix))) for ix in dom_items]
    A_all = _domain_means(ones, both_v, both_m)[0]  # (D, U*C + C*C)
    A = A_all[:, : U * C].reshape(D, U, C).transpose(1, 0, 2)  # (U, D, C)
    Ah = A_all[:, U * C :].reshape(D, C, C).transpose(1, 0, 2)  # (C', D, C)
    if centre:
        A, Ah = _centre(A, Ah, axis=0)
    r_m = _pair_r(A, pairs)  # (U, P)
    r_h_each = _human_r(Ah[None], pairs)[0]  # (C', P)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r_h = np.nanmean(r_h_each, axis=0)  # (P,)
        est = _pack(r_m, r_h)

    # two-way bootstrap: items within domain x targets, shared by model and human statistics
    g_items = [keyed_stream(rng, "extrapolability.transfer.items", d) for d in dom_names]
    g_targets = keyed_stream(rng, "extrapolability.transfer.targets")
    reps = np.empty((n_resamples, est.size))
    chunk = max(1, min(n_resamples, 4_000_000 // max(1, (U + C) * D * C * C)))
    for s in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - s)
        Wd = [bootstrap_counts(g, len(ix), b) for g, ix in zip(g_items, dom_items)]
        Ab = _domain_means(Wd, both_v, both_m)  # (b, D, U*C + C*C)
        Am = Ab[:, :, : U * C].reshape(b, D, U, C).transpose(0, 2, 1, 3)
        Ahb = Ab[:, :, U * C :].reshape(b, D, C, C).transpose(0, 2, 1, 3)
        if centre:
            Am, Ahb = _centre(Am, Ahb, axis=1)
        idx = integer_draws(g_targets, C, (b, C))
        Am = np.take_along_axis(Am, idx[:, None, None, :], axis=3)
        rm = _pair_r(Am, pairs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rh = np.nanmean(_human_r(Ahb, pairs, idx), axis=1)
            reps[s : s + b] = _pack(rm, rh)

    # permutation null of the model transfer: target labels permuted independently in each domain
    P = len(pairs)
    null = np.empty((n_permutations, U * (P + 1)))
    g_null = keyed_stream(rng, "extrapolability.transfer.null")
    chunk = max(1, min(n_permutations, 2_000_000 // max(1, U * D * C)))
    for s in range(0, n_permutations, chunk):
        b = min(chunk, n_permutations - s)
        perm = random_permutations(g_null, (b, D - 1), C)
        Ap = np.broadcast_to(A[None], (b, U, D, C)).copy()
        Ap[:, :, 1:, :] = np.take_along_axis(Ap[:, :, 1:, :], perm[:, None, :, :], axis=3)
        rp = _pair_r(Ap, pairs)  # (b, U, P)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            null[s : s + b] = np.concatenate([rp.reshape(b, U * P), np.nanmean(rp, axis=2)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        obs = np.concatenate([r_m.reshape(U * P), np.nanmean(r_m, axis=1)])
    with np.errstate(invalid="ignore"):  # near-ties within 1e-10 of the statistic's size (at least 1)
        scale = np.maximum(np.nanmax(np.abs(null), axis=0, initial=0.0), 1.0)
    p = np.where(np.isfinite(obs), permutation_p_values(obs, null, alternative, scale), np.nan)
    return {"A": A, "A_human": Ah, "r_model": r_m, "r_human_each": r_h_each, "r_human": r_h,
            "estimate": est, "resamples": reps, "null": null, "p": p, "observed": obs}


def _centre(A: np.ndarray, Ah: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Subtract, per domain and target, the mean similarity of the human groups (``axis`` of ``Ah``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        base = np.expand_dims(np.nanmean(Ah, axis=axis), axis)
    return A - base, Ah - base


def _pack(r_m: np.ndarray, r_h: np.ndarray) -> np.ndarray:
    """Flatten transfer statistics in one fixed order (last axes: units U, pairs P).

    Order: r_model (U*P), r_human (P), delta (U*P), r_model_mean (U), r_human_mean (1), delta_mean (U).
    """
    lead = r_m.shape[:-2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rm_mean = np.nanmean(r_m, axis=-1)
        rh_mean = np.nanmean(r_h, axis=-1)[..., None]
    delta = r_m - r_h[..., None, :]
    parts = [r_m, r_h, delta, rm_mean, rh_mean, rm_mean - rh_mean]
    return np.concatenate([x.reshape(*lead, -1) for x in parts], axis=-1)


# ==================================================================================================
# E3: split-half reliability of the group ranking
# ==================================================================================================
def _split_stats(SA: np.ndarray, SB: np.ndarray) -> np.ndarray:
    """(rows, units, C) halves -> (rows, units, 3): tau-b, Spearman rho, top-1 agreement."""
    return np.stack([_kendall_tau_b(SA, SB), _spearman(SA, SB), _top1_agree(SA, SB)], axis=-1)


def _split_half(S, Sh, rng, n_splits, n_resamples):
    """Split-half statistics for model units and human "models" (mean over human groups)."""
    NI, U, C = S.shape
    V = np.hstack([np.nan_to_num(S.reshape(NI, U * C)), np.nan_to_num(Sh.reshape(NI, C * C))])
    Mv = np.hstack([np.isfinite(S.reshape(NI, U * C)), np.isfinite(Sh.reshape(NI, C * C))]).astype(float)

    def stats_for(WA, WB):  # item weights of half A and half B: (rows, NI)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = (WA @ V) / (WA @ Mv)
            b = (WB @ V) / (WB @ Mv)
        r = a.shape[0]
        sm = _split_stats(a[:, : U * C].reshape(r, U, C), b[:, : U * C].reshape(r, U, C))
        sh = _split_stats(a[:, U * C :].reshape(r, C, C), b[:, U * C :].reshape(r, C, C))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return sm, np.nanmean(sh, axis=1)  # (r, U, 3), (r, 3)

    # point estimate: mean over n_splits random halves
    acc_m, acc_h, n_done = np.zeros((U, 3)), np.zeros(3), np.zeros((U, 3))
    acc_hn = np.zeros(3)
    g_halves = keyed_stream(rng, "extrapolability.split_half.halves")
    chunk = max(1, min(n_splits, 2_000_000 // max(1, (U + C) * C * C)))
    for s in range(0, n_splits, chunk):
        b = min(chunk, n_splits - s)
        M = half_masks(g_halves, b, NI)
        sm, sh = stats_for(M, 1.0 - M)
        acc_m += np.nansum(sm, axis=0)
        n_done += np.isfinite(sm).sum(0)
        acc_h += np.nansum(sh, axis=0)
        acc_hn += np.isfinite(sh).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_m, mean_h = acc_m / n_done, acc_h / acc_hn
    est = _pack_split(mean_m, mean_h)

    # item bootstrap: each resample draws item counts, then SPLITS_PER_RESAMPLE random halves of the
    # distinct items (copies of one item stay in one half, so they cannot inflate the agreement)
    k = SPLITS_PER_RESAMPLE
    g_items = keyed_stream(rng, "extrapolability.split_half.items")
    g_boot_halves = keyed_stream(rng, "extrapolability.split_half.resample_halves")
    reps = np.empty((n_resamples, est.size))
    chunk = max(1, min(n_resamples, 2_000_000 // max(1, k * (U + C) * C * C)))
    for s in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - s)
        W = bootstrap_counts(g_items, NI, b)
        M = half_masks(g_boot_halves, b * k, NI).reshape(b, k, NI)
        WA = (W[:, None, :] * M).reshape(b * k, NI)
        WB = (W[:, None, :] * (1.0 - M)).reshape(b * k, NI)
        sm, sh = stats_for(WA, WB)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reps[s : s + b] = _pack_split(np.nanmean(sm.reshape(b, k, U, 3), 1), np.nanmean(sh.reshape(b, k, 3), 1))
    return {"estimate": est, "resamples": reps}


def _pack_split(mean_m: np.ndarray, mean_h: np.ndarray) -> np.ndarray:
    """Order: per unit (tau, rho, top1, reliability) (U*4), human (4), reliability delta (U)."""
    rel_m = spearman_brown(mean_m[..., 1])
    rel_h = spearman_brown(mean_h[..., 1])
    lead = mean_m.shape[:-2]
    m = np.concatenate([mean_m, rel_m[..., None]], axis=-1).reshape(*lead, -1)
    h = np.concatenate([mean_h, rel_h[..., None]], axis=-1)
    return np.concatenate([m, h, rel_m - rel_h[..., None]], axis=-1)


# ==================================================================================================
# public: E1 + E3
# ==================================================================================================
def assess_extrapolability(
    responses: Responses,
    reference: Reference,
    *,
    domains: Mapping[str, str] | pd.Series | Callable[[str], object] | str | None = None,
    item_table: pd.DataFrame | None = None,
    by: str | Sequence[str] = "model",
    against: str | None = None,
    metric: str = "js",
    group_map: Mapping[str, str] | None = None,
    groups: Sequence[str] | None = None,
    min_domain_items: int = 3,
    centre: bool = True,
    alternative: str = "greater",
    margin: float | None = None,
    n_splits: int = 1000,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    n_permutations: int = 10_000,
    adjust_method: str = "fdr_bh",
    estimand: str = "answer-distribution",
    rng: RngLike = None,
) -> ExtrapolabilityResult:
    r"""Does a model's alignment on one set of items carry over to held-out items, as it does for humans?

    Parameters
    ----------
    responses : Responses
        Model answers (any kind). Only ``valid`` answers are used; the others are counted per unit
        (``n_invalid`` in :attr:`verdicts`) and never imputed.
    reference : Reference
        Human answer distributions per item x group.
    domains : mapping, Series, callable or str, optional
        Item -> domain (survey block, topic, dimension), a callable ``item -> domain`` (e.g.
        ``lambda q: q[0]`` for WVS block letters), or the name of a column of ``item_table`` (default
        ``reference.items_info`` when the reference has one). Items without a domain, and domains with
        fewer than ``min_domain_items`` scored items, are left out of E1 and counted. Without domains only
        the split-half reliability (E3) is computed.
    item_table : DataFrame, optional
        Item table with an ``item`` column, for ``domains=<column name>``.
    by : str or sequence of str
        What a judged unit is (default ``"model"``; e.g. ``["model", "language"]``). Units are analysed
        separately, never pooled.
    against : str, optional
        Responses column naming the one target group each cell is compared with (e.g. ``"steer_target"``
        for personas, ``"language"`` for per-language references). Default: every unit against every group.
    metric, group_map, groups
        As in :func:`robustalign.scoring.item_scores`.
    min_domain_items : int
        Smallest domain kept for E1.
    centre : bool
        Subtract, per domain and target, the mean similarity of the human groups to that target before
        correlating (default). The transfer then asks whether the targets a model is *closer to than a
        typical human group is* are the same across domains; uncentred, it also picks up target
        properties shared by every "model" (e.g. JS similarity's ceiling tied to a target's consensus).
        The human benchmark is centred the same way.
    alternative : {"greater", "two-sided"}
        Alternative of the permutation test of the model's transfer (pre-specified: transfer means a
        positive association across targets).
    margin : float, optional
        Non-inferiority margin for the verdict: with a margin, "supported" needs the lower end of the
        interval of :math:`\Delta` above ``-margin``; without one (default), only that the interval does
        not lie below 0.
    n_splits : int
        Random item halves for the split-half point estimates.
    confidence_level, n_resamples, n_permutations, adjust_method, rng
        Interval level, bootstrap resamples, permutations, multiplicity method across units, seed.
    estimand : {"answer-distribution", "plug-in"}
        What the per-item similarities estimate (:data:`robustalign.scoring.ESTIMANDS`). The default
        corrects nonlinear metrics for the number of answers per cell (and the human benchmark for known
        respondent counts); cells with too few answers are not scored and counted in
        ``provenance["n_not_estimable"]``. ``"plug-in"`` gives the similarities of the observed shares.

    Returns
    -------
    ExtrapolabilityResult
        ``verdicts``: one row per unit with ``verdict``, ``reason``, ``n_needed`` (targets needed to detect
        the observed transfer at 80% power, when inconclusive). ``to_frame()`` quantities:
        ``transfer_r`` (per domain pair and ``"all pairs"``), ``human_transfer_r``, ``transfer_delta``,
        ``split_half_tau``, ``split_half_rho``, ``split_half_top1``, ``split_half_reliability`` (model rows,
        and human rows with ``subject="humans"``) and ``reliability_delta``.

    Notes
    -----
    Verdict per unit, at level :math:`1 - \alpha` = ``confidence_level``, from the mean transfer over
    domain pairs:

    * **supported**: the model's transfer beats its permutation null (adjusted p < :math:`\alpha`) and
      the interval of :math:`\Delta = r_{LLM} - r_{human}` does not lie below 0 (or, with ``margin``, its
      lower end is above ``-margin``);
    * **not supported**: the interval of :math:`\Delta` lies below 0, or the model's transfer is not
      distinguishable from the null while the human transfer interval lies above 0;
    * **inconclusive**: otherwise.

    Without domains the verdict comes from E3 (random item halves only, a weaker kind of held-out test):
    supported when the model's split-half reliability interval is above 0 and the interval of its
    difference from the human reliability does not lie below 0; not supported when that difference lies
    below 0.

    Uncentred (``centre=False``), the transfer correlates raw similarities across targets and so also
    picks up target properties shared by all "models" (countries whose answers are concentrated score
    higher with JS similarity on every domain); the human benchmark has the same property.
    Spearman's correlation is symmetric, so each unordered domain pair is one statistic.
    """
    by_l, confidence_level, n_resamples, n_permutations, n_splits, min_domain_items = _check_extrapolability_args(
        by, confidence_level, n_resamples, n_permutations, n_splits, min_domain_items, alternative, margin)
    gen, record = as_generator(rng)
    alpha = 1 - confidence_level
    sc = _prepare_scores(responses, reference, by_l, against, metric, group_map, groups, estimand)
    items, targets, S, Sh = sc.items, sc.targets, sc.S, sc.Sh
    C = len(targets)
    dom_names, dom_items, excluded = _split_domains(domains, items, reference, item_table, min_domain_items, C)

    # ---------------------------------------------------------------- estimates (E1 transfer, E3 split halves)
    pairs = list(combinations(range(len(dom_names)), 2))
    unit_keys = sc.units.to_dict("records")
    label_frames, est_parts, rep_parts = [], [], []
    tr = None
    if dom_names:
        tr = _transfer(S, Sh, dom_items, dom_names, pairs, gen, n_resamples, n_permutations, alternative, centre)
        label_frames.append(_transfer_labels(by_l, unit_keys, dom_names, dom_items, pairs))
        est_parts.append(tr["estimate"])
        rep_parts.append(tr["resamples"])
    sh = _split_half(S, Sh, gen, n_splits, n_resamples)
    label_frames.append(_split_labels(by_l, unit_keys, len(items)))
    est_parts.append(sh["estimate"])
    rep_parts.append(sh["resamples"])
    labels = pd.concat(label_frames, ignore_index=True)
    boot = BootstrapResult(
        estimate=np.concatenate(est_parts), resamples=np.hstack(rep_parts), jackknife=None, labels=labels,
        design="two-way" if tr is not None else "cluster", method="percentile",
        confidence_level=confidence_level, n_clusters=(len(items), C), rng=record,
        statistic="transfer and split-half statistics",
        provenance={"transfer": "items within domain x targets", "split_half": "items"},
    )

    # ---------------------------------------------------------------- tests (E1 p-values per unit and pair)
    p_frame = None if tr is None else _transfer_p_frame(tr, unit_keys, dom_names, pairs, adjust_method)
    build = partial(_extrapolability_table, boot, labels, p_frame, by_l, C, n_permutations)

    # ---------------------------------------------------------------- verdicts
    ctx = _VerdictContext(by=by_l, alpha=alpha, margin=margin, n_targets=C, n_domains=len(dom_names),
                          n_pairs=len(pairs), n_units=len(sc.units), adjust_method=adjust_method,
                          n_resamples=n_resamples, n_permutations=n_permutations)
    frame = build(confidence_level)
    verdicts = pd.DataFrame([_unit_verdict(frame, u, tr is not None, ctx, sc.n_invalid) for u in unit_keys])

    # ---------------------------------------------------------------- result
    evidence = {"bootstrap": boot, "scores": sc.scores, "targets": targets, "items": items,
                "domains": dict(zip(dom_names, [[items[i] for i in ix] for ix in dom_items])),
                "excluded": excluded}
    if tr is not None:
        evidence.update(null=tr["null"], domain_alignment=tr["A"], human_domain_alignment=tr["A_human"],
                        human_transfer_each=pd.DataFrame(tr["r_human_each"], index=targets,
                                                         columns=[f"{dom_names[e]} | {dom_names[h]}" for e, h in pairs]))
    provenance = {
        "rng": record.to_dict(), "n_resamples": n_resamples, "n_permutations": n_permutations, "n_splits": n_splits,
        "splits_per_resample": SPLITS_PER_RESAMPLE, "metric": metric, "by": by_l, "against": against,
        "alternative": alternative, "margin": margin, "centre": centre, "adjust_method": adjust_method,
        "min_domain_items": min_domain_items, "responses_hash": responses.data_hash(),
        "reference_hash": reference.data_hash(), "n_invalid": int(verdicts["n_invalid"].sum()),
        "n_missing_reference": sc.scores.attrs.get("n_missing_reference"), **sc.est_info,
    }
    return ExtrapolabilityResult(kind="extrapolability", verdicts=verdicts, evidence=evidence,
                                 provenance=provenance, confidence_level=confidence_level, build=build,
                                 plotter=_plotter)


# --------------------------------------------------------------------------------------------------
# steps of assess_extrapolability: validate -> prepare -> estimate -> test -> verdict
# --------------------------------------------------------------------------------------------------
def _check_extrapolability_args(by: str | Sequence[str], confidence_level: float, n_resamples: int,
                                n_permutations: int, n_splits: int, min_domain_items: int, alternative: str,
                                margin: float | None) -> tuple[list[str], float, int, int, int, int]:
    """Checked ``(by, confidence_level, n_resamples, n_permutations, n_splits, min_domain_items)``."""
    by_l = [by] if isinstance(by, str) else list(by)
    if not by_l:
        raise ValueError("`by` must name at least one column (e.g. 'model').")
    level, n_res, n_perm = check_resampling_args(confidence_level, n_resamples, n_permutations)
    assert n_perm is not None  # given, so checked
    n_splits = check_n_resamples(n_splits, "n_splits")
    min_domain_items = check_n_resamples(min_domain_items, "min_domain_items")
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"`alternative` must be 'greater' or 'two-sided'; got {alternative!r}.")
    if margin is not None and not (np.isfinite(margin) and margin >= 0):
        raise ValueError(f"`margin` must be a non-negative number or None; got {margin!r}.")
    return by_l, level, n_res, n_perm, n_splits, min_domain_items


@dataclass
class _Scores:
    """Per-item similarities as arrays: model (items, units, targets) and human (items, groups, targets)."""

    scores: pd.DataFrame
    units: pd.DataFrame
    items: list[str]
    targets: list[str]
    S: np.ndarray
    Sh: np.ndarray
    n_invalid: pd.Series
    est_info: dict


def _prepare_scores(responses: Responses, reference: Reference, by_l: list[str], against: str | None, metric: str,
                    group_map: Mapping[str, str] | None, groups: Sequence[str] | None, estimand: str) -> _Scores:
    """Score every item of every unit against every target, and the human groups against each other."""
    from robustalign.scoring import ESTIMANDS, item_scores, not_estimable_message

    check_choice(estimand, ESTIMANDS, "estimand")
    scores = item_scores(responses, reference, metric=metric, by=by_l, against=against,
                         group_map=group_map, groups=groups, estimand=estimand)
    if scores.empty and scores.attrs.get("n_not_estimable", 0):
        raise ValueError(not_estimable_message(metric, scores.attrs, by_l))
    if scores.empty:
        raise ValueError("no item could be scored: check that responses and reference share items and groups.")
    est_info = {k: scores.attrs[k] for k in ("estimand", "n_not_estimable", "min_answers") if k in scores.attrs}
    units, items, targets, S = _score_array(scores, by_l)
    C = len(targets)
    if C < 3:
        raise ValueError(
            f"transfer and ranking reliability correlate across target groups and need at least 3; got {C} "
            f"({targets}). Compare against more groups (e.g. `against=None` with a per-country reference)."
        )
    Sh = _human_scores(reference, items, targets, metric, estimand)
    counts = responses.status_counts(by_l)
    n_invalid = (counts["total"] - counts["valid"]).rename("n_invalid")
    return _Scores(scores, units, items, targets, S, Sh, n_invalid, est_info)


def _split_domains(domains, items: list[str], reference: Reference, item_table: pd.DataFrame | None,
                   min_domain_items: int, C: int) -> tuple[list[str], list[np.ndarray], dict[str, list[str]]]:  # noqa: N803
    """Domains kept for E1 (names, item positions) and what was left out, with a warning for each."""
    dmap = _domain_map(domains, items, reference, item_table)
    excluded: dict[str, list[str]] = {}
    dom_names: list[str] = []
    dom_items: list[np.ndarray] = []
    if dmap is not None:
        no_dom = [i for i in items if i not in dmap]
        if no_dom:
            excluded["items without a domain"] = no_dom
        by_dom: dict[str, list[int]] = {}
        for j, i in enumerate(items):
            if i in dmap:
                by_dom.setdefault(dmap[i], []).append(j)
        small = {d: len(ix) for d, ix in by_dom.items() if len(ix) < min_domain_items}
        if small:
            excluded["domains below min_domain_items"] = [f"{d} ({n} items)" for d, n in sorted(small.items())]
        for d in sorted(by_dom):
            if d not in small:
                dom_names.append(d)
                dom_items.append(np.array(by_dom[d]))
        if excluded:
            warnings.warn(
                "left out of the held-out-domain transfer: "
                + "; ".join(f"{k}: {preview(v)}" for k, v in excluded.items())
                + f". Map every item to a domain, or lower `min_domain_items` (now {min_domain_items}).",
                RobustAlignWarning,
                stacklevel=3,
            )
        if len(dom_names) < 2:
            raise ValueError(
                f"held-out-domain transfer needs at least 2 domains with >= {min_domain_items} items; got "
                f"{ {d: len(ix) for d, ix in by_dom.items()} }. Merge small domains or pass `domains=None` "
                "for the split-half reliability only."
            )
    if C < 8:
        warnings.warn(
            f"only {C} target groups: correlations across so few targets are coarse (a permutation test can "
            f"reach at most p = 1/{C}! per domain pair); read the intervals, not the points.",
            RobustAlignWarning,
            stacklevel=3,
        )
    return dom_names, dom_items, excluded


def _label_rows(by_l: list[str], quantity: str, subject: str, unit_list: list, pair_list: list,
                n_items: list[int]) -> list[dict]:
    """Label rows of one quantity: one per unit (None: the human benchmark) and domain pair."""
    out = []
    for u in unit_list:
        for pr, ni in zip(pair_list, n_items):
            row: dict[str, object] = {"quantity": quantity, "subject": subject}
            for c in by_l:
                row[c] = None if u is None else u[c]
            row["domain_a"], row["domain_b"] = pr
            row["n_items"] = ni
            out.append(row)
    return out


def _transfer_labels(by_l: list[str], unit_keys: list[dict], dom_names: list[str], dom_items: list[np.ndarray],
                     pairs: list[tuple[int, int]]) -> pd.DataFrame:
    """Labels of the transfer statistics, in the order of :func:`_pack`."""
    pair_names = [(dom_names[e], dom_names[h]) for e, h in pairs]
    pair_n = [len(dom_items[e]) + len(dom_items[h]) for e, h in pairs]
    all_n = [sum(len(ix) for ix in dom_items)]
    every = [("all pairs", "all pairs")]
    return pd.DataFrame(
        _label_rows(by_l, "transfer_r", "model", unit_keys, pair_names, pair_n)
        + _label_rows(by_l, "human_transfer_r", "humans", [None], pair_names, pair_n)
        + _label_rows(by_l, "transfer_delta", "model", unit_keys, pair_names, pair_n)
        + _label_rows(by_l, "transfer_r", "model", unit_keys, every, all_n)
        + _label_rows(by_l, "human_transfer_r", "humans", [None], every, all_n)
        + _label_rows(by_l, "transfer_delta", "model", unit_keys, every, all_n)
    )


_SPLIT_QUANTITIES = ("split_half_tau", "split_half_rho", "split_half_top1", "split_half_reliability")


def _split_labels(by_l: list[str], unit_keys: list[dict], NI: int) -> pd.DataFrame:  # noqa: N803
    """Labels of the split-half statistics, in the order of :func:`_pack_split`."""
    labs: list[dict] = []
    none = [(None, None)]
    for u in unit_keys:
        for q in _SPLIT_QUANTITIES:
            labs += _label_rows(by_l, q, "model", [u], none, [NI])
    for q in _SPLIT_QUANTITIES:
        labs += _label_rows(by_l, q, "humans", [None], none, [NI])
    labs += _label_rows(by_l, "reliability_delta", "model", unit_keys, none, [NI])
    return pd.DataFrame(labs)


def _transfer_p_frame(tr: dict, unit_keys: list[dict], dom_names: list[str], pairs: list[tuple[int, int]],
                      adjust_method: str) -> pd.DataFrame:
    """Permutation p-values of the model transfer per unit and pair, and of its mean, adjusted per family."""
    U, P = len(unit_keys), len(pairs)
    pr_pairs = tr["p"][: U * P].reshape(U, P)
    pr_mean = tr["p"][U * P:]
    p_rows = []
    for j, u in enumerate(unit_keys):
        for k, (e, h) in enumerate(pairs):
            p_rows.append({**u, "domain_a": dom_names[e], "domain_b": dom_names[h], "p_value": pr_pairs[j, k]})
    pp = pd.DataFrame(p_rows)
    pp["p_adjusted"] = adjust(pp["p_value"].to_numpy(float), adjust_method)
    pp["family"] = "units x domain pairs: permutation tests of transfer_r"
    pm = pd.DataFrame([{**u, "domain_a": "all pairs", "domain_b": "all pairs", "p_value": pr_mean[j]}
                       for j, u in enumerate(unit_keys)])
    pm["p_adjusted"] = adjust(pm["p_value"].to_numpy(float), adjust_method)
    pm["family"] = "units: permutation tests of mean transfer_r over domain pairs"
    p_frame = pd.concat([pp, pm], ignore_index=True)
    p_frame["quantity"] = "transfer_r"
    p_frame["subject"] = "model"
    p_frame["adjust_method"] = adjust_method
    return p_frame


_UNITS_TEXT = {
    "transfer_r": "Spearman r across targets", "human_transfer_r": "Spearman r across targets",
    "transfer_delta": "difference in Spearman r", "split_half_tau": "Kendall tau-b",
    "split_half_rho": "Spearman r", "split_half_top1": "share of splits",
    "split_half_reliability": "Spearman-Brown reliability", "reliability_delta": "difference in reliability",
}


def _extrapolability_table(boot: BootstrapResult, labels: pd.DataFrame, p_frame: pd.DataFrame | None,
                           by_l: list[str], C: int, n_permutations: int, level: float) -> pd.DataFrame:  # noqa: N803
    """The estimates table of :func:`assess_extrapolability` at ``level``, from the stored resamples."""
    f = boot.to_frame(level)
    out = labels.copy()
    for c in ("estimate", "std_error", "conf_low", "conf_high", "conf_level", "method", "conf_low_mcse",
              "conf_high_mcse"):
        out[c] = f[c].to_numpy()
    out["method"] = "percentile"
    out["method_note"] = np.where(out["quantity"].str.startswith(("transfer", "human_transfer")),
                                  "two-way bootstrap (items within domain x targets)", "item bootstrap")
    out["n_targets"] = C
    out["units"] = out["quantity"].map(_UNITS_TEXT)
    for c in ("p_value", "p_adjusted"):
        out[c] = np.nan
    out["adjust_method"] = None
    out["family"] = None
    if p_frame is not None:
        key = ["quantity", "subject", *by_l, "domain_a", "domain_b"]
        m = out[key].astype(str).merge(p_frame.astype({c: str for c in key})[key].assign(_j=range(len(p_frame))),
                                       on=key, how="left")
        hit = m["_j"].notna().to_numpy()
        j = m["_j"].to_numpy()[hit].astype(int)
        for c in ("p_value", "p_adjusted", "adjust_method", "family"):
            out.loc[hit, c] = p_frame[c].to_numpy()[j]
    pv, pa = out["p_value"].to_numpy(float), out["p_adjusted"].to_numpy(float)
    out["p_value_mcse"] = p_value_mcse(pv, n_permutations)
    out["p_adjusted_mcse"] = adjusted_p_mcse(pa, pv, n_permutations)
    # benchmark column: the human value of the same quantity
    bench = out[out["subject"] == "humans"].set_index(["quantity", "domain_a", "domain_b"])["estimate"]
    qmap = out["quantity"].map({"transfer_r": "human_transfer_r"}).fillna(out["quantity"])
    idx = pd.MultiIndex.from_arrays([qmap, out["domain_a"], out["domain_b"]])
    out["benchmark"] = np.where(out["subject"] == "model", bench.reindex(idx).to_numpy(), np.nan)
    out.loc[out["quantity"].isin(["transfer_delta", "reliability_delta"]), "benchmark"] = 0.0
    cols = ["quantity", "subject", *by_l, "domain_a", "domain_b", "estimate", "std_error", "conf_low",
            "conf_high", "conf_level", "method", "method_note", "p_value", "p_adjusted", "adjust_method", "family",
            "n_items", "n_targets", "units", "benchmark", "conf_low_mcse", "conf_high_mcse", "p_value_mcse",
            "p_adjusted_mcse"]
    return out[cols]


@dataclass
class _VerdictContext:
    """What every unit's verdict of :func:`assess_extrapolability` shares."""

    by: list[str]
    alpha: float
    margin: float | None
    n_targets: int
    n_domains: int
    n_pairs: int
    n_units: int
    adjust_method: str
    n_resamples: int
    n_permutations: int


def _row_of(frame: pd.DataFrame, sel: np.ndarray, q: str, subject: str = "model",
            domain: str | None = None) -> pd.Series:
    """The table row of quantity ``q`` for the selected unit (or the humans), one domain pair or none."""
    m = (frame["quantity"] == q) & (frame["subject"] == subject)
    m &= sel if subject == "model" else True
    if domain is not None:
        m &= frame["domain_a"] == domain
    else:
        m &= frame["domain_a"].isna()
    return frame[m].iloc[0]


def _unit_verdict(frame: pd.DataFrame, u: dict, transfer: bool, ctx: _VerdictContext,
                  n_invalid: pd.Series) -> dict:
    """One unit's verdict row: from the transfer (E1) when there are domains, else the split halves (E3)."""
    name = ", ".join(str(u[c]) for c in ctx.by)
    sel = np.ones(len(frame), bool)
    for c in ctx.by:
        sel &= frame[c].astype(str).to_numpy() == str(u[c])
    rel, relh = _row_of(frame, sel, "split_half_reliability"), _row_of(frame, sel, "split_half_reliability", "humans")
    reld = _row_of(frame, sel, "reliability_delta")
    rel_text = (f"split-half reliability of its group ranking {_fmt(rel.estimate)} "
                f"[{_fmt(rel.conf_low)}, {_fmt(rel.conf_high)}] vs humans {_fmt(relh.estimate)} "
                f"[{_fmt(relh.conf_low)}, {_fmt(relh.conf_high)}]")
    if transfer:
        verdict, mc_flag, reason, n_needed = _e1_unit(frame, sel, name, rel_text, ctx)
    else:
        verdict, mc_flag, reason = _e3_unit(rel, reld, name, rel_text, ctx)
        n_needed = np.nan
    key = tuple(u[c] for c in ctx.by)
    ninv = int(n_invalid.get(key if len(ctx.by) > 1 else key[0], 0))
    if ninv:
        reason += f" {ninv} invalid answers excluded."
    return {**u, "verdict": verdict, "reason": reason, "n_needed": n_needed, "n_invalid": ninv, "mc_error": mc_flag}


def _e1_unit(frame: pd.DataFrame, sel: np.ndarray, name: str, rel_text: str,
             ctx: _VerdictContext) -> tuple[str, bool, str, float]:
    """E1 verdict, Monte Carlo flag, reason and targets needed, from the mean transfer over domain pairs."""
    C, alpha, margin = ctx.n_targets, ctx.alpha, ctx.margin
    rm = _row_of(frame, sel, "transfer_r", domain="all pairs")
    rh = _row_of(frame, sel, "human_transfer_r", "humans", domain="all pairs")
    dl = _row_of(frame, sel, "transfer_delta", domain="all pairs")
    p_adj = float(rm.p_adjusted)
    rejected = p_adj < alpha
    below = dl.conf_high < 0
    ok_delta = (dl.conf_low > -margin) if margin is not None else not below
    checks = {
        "rejected": (rejected, p_adj, alpha, rm.p_adjusted_mcse, ctx.n_permutations, "adjusted p"),
        "below": (below, dl.conf_high, 0.0, dl.conf_high_mcse, ctx.n_resamples, "the upper end of the difference"),
        "humans_transfer": (rh.conf_low > 0, rh.conf_low, 0.0, rh.conf_low_mcse, ctx.n_resamples,
                            "the lower end of the human transfer"),
    }
    if margin is not None:
        checks["ok_delta"] = (ok_delta, dl.conf_low, -margin, dl.conf_low_mcse, ctx.n_resamples,
                              "the lower end of the difference")
    if C < MIN_TARGETS_FOR_VERDICT:
        verdict, mc_flag, mc_text = "inconclusive", False, ""
    else:
        verdict = _e1_verdict({k: v[0] for k, v in checks.items()})
        mc_flag, mc_text = _mc_check(checks, _e1_verdict)
    n_needed = np.nan
    if verdict == "inconclusive" and C >= MIN_TARGETS_FOR_VERDICT and not rejected:
        n_needed = _targets_needed(float(rm.estimate), alpha)
    reason = (
        f"{name}: extrapolability {verdict} - transfer of alignment across {ctx.n_domains} domains "
        f"(mean Spearman r over {ctx.n_pairs} domain pairs, {C} targets) r = {_fmt(rm.estimate)} "
        f"[{_fmt(rm.conf_low)}, {_fmt(rm.conf_high)}] vs humans {_fmt(rh.estimate)} "
        f"[{_fmt(rh.conf_low)}, {_fmt(rh.conf_high)}]; difference {_fmt(dl.estimate)} "
        f"[{_fmt(dl.conf_low)}, {_fmt(dl.conf_high)}]; permutation p = {_fmt_p(rm.p_value)} "
        f"({ctx.adjust_method}-adjusted {_fmt_p(p_adj)} over {ctx.n_units} units); {rel_text}."
    )
    if C < MIN_TARGETS_FOR_VERDICT:
        reason += (f" Only {C} target groups: a correlation across fewer than {MIN_TARGETS_FOR_VERDICT} "
                   "targets cannot judge transfer, whatever its point value; compare with more groups.")
    elif verdict == "inconclusive" and np.isfinite(n_needed):
        reason += f" About {int(n_needed)} targets would detect r = {_fmt(rm.estimate)} with 80% power."
    return verdict, mc_flag, reason + mc_text, n_needed


def _e3_unit(rel: pd.Series, reld: pd.Series, name: str, rel_text: str,
             ctx: _VerdictContext) -> tuple[str, bool, str]:
    """E3 verdict (no domains: random item halves only), Monte Carlo flag and reason."""
    C = ctx.n_targets
    checks = {
        "reliable": (rel.conf_low > 0, rel.conf_low, 0.0, rel.conf_low_mcse, ctx.n_resamples,
                     "the lower end of the reliability"),
        "below": (reld.conf_high < 0, reld.conf_high, 0.0, reld.conf_high_mcse, ctx.n_resamples,
                  "the upper end of the reliability difference"),
    }
    if C < MIN_TARGETS_FOR_VERDICT:
        verdict, mc_flag, mc_text = "inconclusive", False, ""
    else:
        defined = {"defined": bool(np.isfinite(reld.conf_high))}
        verdict = _e3_verdict({**defined, **{k: v[0] for k, v in checks.items()}})
        mc_flag, mc_text = _mc_check(checks, _e3_verdict, defined)
    reason = (
        f"{name}: extrapolability to random item halves {verdict} (no domains given, so no held-out "
        f"domain test) - {rel_text}; difference {_fmt(reld.estimate)} "
        f"[{_fmt(reld.conf_low)}, {_fmt(reld.conf_high)}]."
    )
    if C < MIN_TARGETS_FOR_VERDICT:
        reason += f" Only {C} target groups: too few to rank reliably; compare with more groups."
    return verdict, mc_flag, reason + mc_text


def _plotter(result, ax: Axes | None = None, **kwargs):
    from robustalign.plots.extrapolability import plot_extrapolability

    return plot_extrapolability(result, ax=ax, **kwargs)


# ==================================================================================================
# E2: held-out-dimension prediction from dimension-score tables
# ==================================================================================================
def _loco_predict(X: np.ndarray, y: np.ndarray, Xnew: np.ndarray, method: str, alpha: float = 1.0,
                  k: int = 5) -> np.ndarray:
    """Leave-one-country-out predictions of ``y`` from ``X`` by ridge or kNN.

    ``X`` (G, p) and ``y`` (G,) are the real countries; ``Xnew`` (G, n, p) are the inputs to predict for
    each left-out country g (rows of the persona table or the country's own evaluated scores). The
    predictor for g uses every other country, predictors standardised on those countries. ``"ridge"``:
    penalty ``alpha``, intercept unpenalised. ``"knn"``: mean held-out score of the ``k`` nearest
    countries (Euclidean distance on the standardised scores).
    """
    G, p = X.shape
    out = np.empty(Xnew.shape[:2])
    for g in range(G):
        keep = np.arange(G) != g
        Xt, yt = X[keep], y[keep]
        mu, sd = Xt.mean(0), Xt.std(0, ddof=0)
        sd = np.where(sd > 0, sd, 1.0)
        Z, Znew = (Xt - mu) / sd, (Xnew[g] - mu) / sd
        if method == "ridge":
            beta = np.linalg.solve(Z.T @ Z + alpha * np.eye(p), Z.T @ (yt - yt.mean()))
            out[g] = yt.mean() + Znew @ beta
        else:
            d = np.linalg.norm(Znew[:, None, :] - Z[None], axis=-1)
            near = np.argsort(d, axis=1, kind="stable")[:, :k]
            out[g] = yt[near].mean(1)
    return out


def assess_dimension_prediction(
    persona: pd.DataFrame,
    human: pd.DataFrame,
    *,
    by: str | Sequence[str] = "model",
    group: str = "group",
    dimensions: Sequence[str] | None = None,
    method: str = "ridge",
    alpha: float = 1.0,
    k: int = 5,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    rng: RngLike = None,
) -> ExtrapolabilityResult:
    r"""Held-out-dimension prediction (METHODS 3.5, E2) for Hofstede-style dimension scores.

    Parameters
    ----------
    persona : DataFrame
        One row per persona answer set: the ``by`` columns (e.g. ``model``), ``group`` (the country the
        persona was asked to be) and one column per dimension (e.g. the output of
        :func:`robustalign.metrics.vsm2013_indices` on the persona's item means). Several rows of one
        unit x group are averaged (their number is kept in ``n_rows``).
    human : DataFrame
        Published scores: ``group`` (column or index) and the same dimension columns, one row per country.
    by, group : str
        Unit columns of ``persona`` (units are analysed separately) and the group column.
    dimensions : sequence of str, optional
        Dimension columns (default: numeric columns present in both tables). At least 2.
    method : {"ridge", "knn"}
        Human-structure predictor of a held-out dimension from the evaluated ones, fitted across the real
        countries other than the target (leave-one-country-out).
    alpha, k : float, int
        Ridge penalty (predictors standardised) and number of neighbours.
    confidence_level, n_resamples, rng
        Interval level, bootstrap resamples over the unit's target countries, seed.

    Returns
    -------
    ExtrapolabilityResult
        Quantities per unit and dimension (``dimension="all"`` pools the errors over dimensions):
        ``ss_direct`` (persona's own held-out score), ``ss_structure`` (human structure applied to the
        persona's evaluated scores), ``ss_human`` (human structure applied to the country's true
        evaluated scores: how predictable the held-out dimension is at all), ``ss_difference``
        (``ss_direct - ss_structure``), and ``mae_direct``, ``mae_perm``.

    Notes
    -----
    For target *c* and held-out dimension *j*, errors are :math:`|\hat y_{cj} - y_{cj}|` against the
    published score :math:`y_{cj}`. The baseline is the expected error of a random other country,
    :math:`\operatorname{mean}_{c' \ne c} |y_{c'j} - y_{cj}|` (computed exactly, not sampled), and
    :math:`SS = 1 - \sum_{c} |\hat y_{cj} - y_{cj}| / \sum_c \operatorname{mean}_{c'} |y_{c'j} - y_{cj}|`.
    SS = 1 is perfect, 0 is no better than naming a random other country, below 0 is worse. Intervals:
    percentile bootstrap over the unit's target countries (errors and baseline resampled together).

    Verdict per unit (pooled over dimensions): **supported** when the interval of ``ss_direct`` lies
    above 0 and the interval of ``ss_difference`` does not lie below 0 (the persona's held-out scores are
    at least as good as what its evaluated scores imply); **not supported** when either interval lies
    below 0; **inconclusive** otherwise.

    Dimension indices are country-level constructs: scoring a single persona "respondent" with them is an
    ecological fallacy, and a persona's indices from one answer per item move in steps of 25-40 points.
    Published scores come from different eras and samples than any persona run.
    """
    by_l = [by] if isinstance(by, str) else list(by)
    confidence_level, n_resamples, _ = check_resampling_args(confidence_level, n_resamples)
    if method not in ("ridge", "knn"):
        raise ValueError(f"`method` must be 'ridge' or 'knn'; got {method!r}.")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"`alpha` must be a non-negative number; got {alpha!r}.")
    k = check_n_resamples(k, "k")
    gen, record = as_generator(rng)
    hum, dims, p = _dimension_inputs(persona, human, by_l, group, dimensions, method, k)
    agg = p.groupby([*by_l, group], sort=True)[dims].mean()
    n_rows = p.groupby([*by_l, group], sort=True).size()
    Y = hum[dims].to_numpy(float)  # (G, J)
    G, J = len(hum), len(dims)
    gi = {g: j for j, g in enumerate(hum.index)}
    # random-other-country baseline: exact mean absolute difference to every other country
    perm_err = np.abs(Y[:, None, :] - Y[None, :, :]).sum(1) / (G - 1)  # (G, J)

    rows, est, reps, verdict_rows = [], [], [], []
    for u in agg.index.droplevel(group).unique():
        sub = agg.xs(u, level=tuple(range(len(by_l)))) if len(by_l) > 1 else agg.xs(u, level=0)
        tg = [gi[g] for g in sub.index]
        E = _unit_errors(sub[dims].to_numpy(float), Y, tg, perm_err, method, alpha, k)
        n_c = len(tg)
        e0 = _skill_stats(E, np.ones((1, n_c)))[0]
        g_unit = keyed_stream(gen, "extrapolability.dimension_prediction", *(u if isinstance(u, tuple) else (u,)))
        r0 = _skill_stats(E, bootstrap_counts(g_unit, n_c, n_resamples))
        key = dict(zip(by_l, u if isinstance(u, tuple) else (u,)))
        for qi, q in enumerate(_DIM_QUANTITIES):
            for j, d in enumerate([*dims, "all"]):
                rows.append({"quantity": q, **key, "dimension": d, "n_targets": n_c})
                est.append(e0[qi, j])
                reps.append(r0[:, qi, j])
        verdict_rows.append((key, n_c, int(n_rows.xs(u, level=tuple(range(len(by_l)))).sum()
                                           if len(by_l) > 1 else n_rows.xs(u, level=0).sum())))
    labels = pd.DataFrame(rows)
    boot = BootstrapResult(estimate=np.array(est), resamples=np.column_stack(reps), jackknife=None,
                           labels=labels, design="cluster", method="percentile",
                           confidence_level=confidence_level, n_clusters=G, rng=record,
                           statistic="held-out-dimension skill scores",
                           provenance={"resampled": "target countries of each unit"})
    build = partial(_dimension_table, boot, labels, by_l, method, len(dims))
    frame = build(confidence_level)
    vrows = [_dimension_verdict(frame, key, n_c, nr, by_l, J) for key, n_c, nr in verdict_rows]
    provenance = {"rng": record.to_dict(), "n_resamples": n_resamples, "method": method, "alpha": alpha, "k": k,
                  "dimensions": dims, "n_human_groups": G, "by": by_l,
                  "caveat": "dimension scores are country-level constructs (ecological fallacy for personas)"}
    return ExtrapolabilityResult(kind="extrapolability", verdicts=pd.DataFrame(vrows),
                                 evidence={"bootstrap": boot, "persona_means": agg, "n_rows": n_rows},
                                 provenance=provenance, confidence_level=confidence_level, build=build,
                                 plotter=None)


_DIM_QUANTITIES = ("ss_direct", "ss_structure", "ss_human", "ss_difference", "mae_direct", "mae_perm")
_DIM_UNITS = {"ss_direct": "skill score", "ss_structure": "skill score", "ss_human": "skill score",
              "ss_difference": "difference in skill score", "mae_direct": "score points", "mae_perm": "score points"}


def _dimension_inputs(persona: pd.DataFrame, human: pd.DataFrame, by_l: list[str], group: str,
                      dimensions: Sequence[str] | None, method: str,
                      k: int) -> tuple[pd.DataFrame, list[str], pd.DataFrame]:
    """Checked tables: human scores indexed by group, the dimension columns, the persona table."""
    for name, df, need in (("persona", persona, [*by_l, group]), ("human", human, [])):
        if not isinstance(df, pd.DataFrame):
            raise ValueError(f"`{name}` must be a DataFrame; got {type(df).__name__}.")
        missing = [c for c in need if c not in df]
        if missing:
            raise ValueError(f"`{name}` is missing columns {missing}; found {list(df.columns)}.")
    hum = human.set_index(group) if group in human else human.copy()
    hum.index = hum.index.astype(str)
    if hum.index.duplicated().any():
        raise ValueError(f"`human` has more than one row for groups {preview(hum.index[hum.index.duplicated()])}.")
    if dimensions is None:
        dims = [c for c in hum.columns if c in persona and c not in (*by_l, group)
                and pd.api.types.is_numeric_dtype(hum[c]) and pd.api.types.is_numeric_dtype(persona[c])]
    else:
        dims = list(dimensions)
        missing = [d for d in dims if d not in hum or d not in persona]
        if missing:
            raise ValueError(f"`dimensions` {missing} are not columns of both `persona` and `human`.")
    if len(dims) < 2:
        raise ValueError(f"held-out-dimension prediction needs at least 2 dimensions; got {dims}.")
    if hum[dims].isna().any().any():
        raise ValueError("`human` has missing dimension scores; remove those countries (no imputation).")
    if persona[dims].isna().any().any():
        raise ValueError("`persona` has missing dimension scores; remove those rows (no imputation).")
    G = len(hum)
    if G < 4 or (method == "knn" and G - 1 < k):
        raise ValueError(f"need at least 4 human countries (and more than k={k} for kNN); got {G}.")
    p = persona.copy()
    p[group] = p[group].astype(str)
    unknown = sorted(set(p[group]) - set(hum.index))
    if unknown:
        raise ValueError(f"`persona` groups {preview(unknown)} have no row in `human`; add their published scores.")
    return hum, dims, p


def _unit_errors(Xp: np.ndarray, Y: np.ndarray, tg: list[int], perm_err: np.ndarray, method: str, alpha: float,
                 k: int) -> np.ndarray:  # noqa: N803
    """Absolute errors (direct, structure, human ceiling, random-other-country baseline) of one unit's
    target countries ``tg``: (4, n_c, J + 1), the last column pooled over dimensions."""
    n_c, J = len(tg), Y.shape[1]
    G = Y.shape[0]
    err_d = np.abs(Xp - Y[tg])  # (n_c, J)
    err_s = np.empty((n_c, J))
    err_h = np.empty((n_c, J))
    for j in range(J):
        others = [t for t in range(J) if t != j]
        Xnew = np.full((G, 2, J - 1), np.nan)
        Xnew[tg, 0] = Xp[:, others]
        Xnew[tg, 1] = Y[tg][:, others]
        Xnew = np.nan_to_num(Xnew)
        pred = _loco_predict(Y[:, others], Y[:, j], Xnew, method, alpha, k)
        err_s[:, j] = np.abs(pred[tg, 0] - Y[tg, j])
        err_h[:, j] = np.abs(pred[tg, 1] - Y[tg, j])
    E = np.stack([err_d, err_s, err_h, perm_err[tg]], axis=0)  # (4, n_c, J)
    return np.concatenate([E, E.sum(-1, keepdims=True)], axis=-1)  # + pooled "all"


def _skill_stats(E: np.ndarray, w: np.ndarray) -> np.ndarray:  # noqa: N803
    """Skill scores, their difference and the two MAEs under country weights ``w`` (b, n_c): (b, 6, J + 1)."""
    tot = np.einsum("bc,ecj->bej", w, E)  # (b, 4, J+1)
    n = w.sum(1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = 1 - tot[:, :3] / tot[:, 3:4]
        return np.concatenate([ss, (ss[:, 0] - ss[:, 1])[:, None], tot[:, [0]] / n[:, :, None],
                               tot[:, [3]] / n[:, :, None]], axis=1)  # (b, 6, J+1)


def _dimension_table(boot: BootstrapResult, labels: pd.DataFrame, by_l: list[str], method: str, n_dims: int,
                     level: float) -> pd.DataFrame:
    """The estimates table of :func:`assess_dimension_prediction` at ``level``, from the stored resamples."""
    f = boot.to_frame(level)
    out = labels.copy()
    for c in ("estimate", "std_error", "conf_low", "conf_high", "conf_level"):
        out[c] = f[c].to_numpy()
    out["method"] = "percentile"
    out["method_note"] = f"bootstrap over target countries; predictor {method} (leave-one-country-out)"
    out["p_value"] = np.nan
    out["p_adjusted"] = np.nan
    out["adjust_method"] = None
    out["family"] = None
    out["n_items"] = n_dims
    out["units"] = out["quantity"].map(_DIM_UNITS)
    out["benchmark"] = np.where(out["quantity"] == "ss_direct", 0.0, np.nan)
    cols = ["quantity", *by_l, "dimension", "estimate", "std_error", "conf_low", "conf_high", "conf_level",
            "method", "method_note", "p_value", "p_adjusted", "adjust_method", "family", "n_items", "n_targets", "units",
            "benchmark"]
    return out[cols]


def _dimension_verdict(frame: pd.DataFrame, key: dict, n_c: int, nr: int, by_l: list[str], J: int) -> dict:  # noqa: N803
    """One unit's verdict row, from the intervals pooled over dimensions."""
    sel = (frame["dimension"] == "all").to_numpy().copy()
    for c in by_l:
        sel &= (frame[c].astype(str) == str(key[c])).to_numpy()
    f = frame[sel].set_index("quantity")
    d, s, h, df_ = f.loc["ss_direct"], f.loc["ss_structure"], f.loc["ss_human"], f.loc["ss_difference"]
    if d.conf_low > 0 and df_.conf_high >= 0:
        verdict = "supported"
    elif d.conf_high < 0 or df_.conf_high < 0:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    name = ", ".join(str(key[c]) for c in by_l)
    reason = (
        f"{name}: held-out-dimension extrapolability {verdict} - over {n_c} countries and {J} held-out "
        f"dimensions, the persona's own held-out scores have skill {_fmt(d.estimate)} "
        f"[{_fmt(d.conf_low)}, {_fmt(d.conf_high)}] against a random other country (0) and the human "
        f"structure applied to its evaluated scores {_fmt(s.estimate)} [{_fmt(s.conf_low)}, {_fmt(s.conf_high)}] "
        f"(difference {_fmt(df_.estimate)} [{_fmt(df_.conf_low)}, {_fmt(df_.conf_high)}]; ceiling from "
        f"true evaluated scores {_fmt(h.estimate)} [{_fmt(h.conf_low)}, {_fmt(h.conf_high)}]). Country-level "
        "indices applied to personas: an ecological reading, see Notes."
    )
    return {**key, "verdict": verdict, "reason": reason, "n_needed": np.nan, "n_rows": nr}


