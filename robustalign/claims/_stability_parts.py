r"""Parts of :func:`robustalign.claims.assess_stability` for order experiments and item-level instability.

*Position bias* (primacy / recency), for a factor that changes the order in which options are shown.
For a stratum *s* (item x cell of the other factors) and a canonical option *k* that is shown at the
position *j* (first or last) at some levels and elsewhere at others,
:math:`d_{sk} = \bar p_{k \mid k \text{ at } j} - \bar p_{k \mid k \text{ not at } j}` (means over those
levels of the share of answers that pick *k*); :math:`d_s` is the mean over such options, an item's value
the mean over its strata, the unit's value the mean over items. Positive: answers are drawn to position *j*.
With the original and the reversed order and *j* = first it is
:math:`\frac12[(p^{orig}_1 - p^{rev}_1) + (p^{rev}_K - p^{orig}_K)]`. It is 0 when the answer distribution
over canonical options does not depend on the order, whatever the content; the *content-order effect*
(the factor effect: shift of mean canonical position) is a different quantity, which position bias also
moves. Interval: cluster bootstrap over items; p: the order levels permuted within every stratum.

*Noise floor of the modal flip rate.* The expected modal flip rate when nothing changes between
levels, at the numbers of answers actually sampled per cell: every stratum's answers are re-allocated among its levels at random, cell sizes kept (the exact null of
"the level does not matter"), and the same statistic is computed (METHODS 3.1b). With one answer per
cell this leaves every flip unchanged: the floor then equals the observed rate (single answers cannot
separate an effect on an item from sampling noise), and verdicts do not use it.

*Item-level instability.* On ordinal items with at least 2 answers per cell: the item x level
interaction of mean positions beyond within-cell noise,
:math:`\hat\tau^2 = MS_{int} - \bar v` with :math:`MS_{int} = \sum_{q,l} e_{ql}^2 / ((Q-1)(L-1))`,
:math:`e_{ql}` the residuals of the additive model items + levels on the items answered at every level,
and :math:`\bar v` the mean over item x level of the sampling variance of the cell mean (unbiased
within-cell variance / n). :math:`\tau = \sqrt{\max(\hat\tau^2, 0)}`; for two levels
:math:`\tau^2 = \mathrm{Var}_q(\delta_q)/2` of the true per-item differences. Interval: cluster bootstrap
over items (on :math:`\tau^2`); p: each stratum's answers re-allocated among its levels at random. That
is the noise floor's null too, so both read one set of draws per unit and factor (:func:`answer_nulls`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robustalign.resampling import permutation_p_values
from robustalign.resampling.sequential import SequentialRule
from robustalign.resampling.stability_nulls import (
    ModalFlipStatistic,
    answer_permutation_nulls,
    item_sums,
    level_permutation_null,
)


def cluster_bootstrap(*args, **kwargs):
    """The item bootstrap; degenerate replicates (every resample equal) are reported through the
    interval itself, so their warning is not raised (as in ``stability._quiet``)."""
    import warnings

    from robustalign._errors import DegenerateResampleWarning
    from robustalign.resampling import cluster_bootstrap as boot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateResampleWarning)
        return boot(*args, **kwargs)


def order_factors(responses, factors) -> list[str]:
    """Factors whose levels change the order shown (``option_order`` constant within item x level and
    varying across levels)."""
    d = responses.data
    if "option_order" not in d:
        return []
    out = []
    varies = d.groupby("item", observed=True)["option_order"].nunique().max() > 1
    for f in factors:
        if f == "option_order" or (varies and d.groupby(["item", f], observed=True)["option_order"].nunique().max() == 1):
            out.append(f)
    return out


def shown_positions(responses, blk, factor) -> np.ndarray:
    """(S, L, K) 0-based shown position of every canonical option per stratum and level (NaN: absent)."""
    d = responses.data
    oo = d.groupby(["item", factor], observed=True)["option_order"].first().to_dict()
    S, L, K = blk["D"].shape
    out = np.full((S, L, K), np.nan)
    for s in range(S):
        item = blk["items"][blk["item_of_stratum"][s]]
        opts = responses.scales[item].options
        for li, lv in enumerate(blk["levels"]):
            o = oo.get((item, lv))
            if o is not None:
                shown = o.split("|")
                out[s, li, :len(opts)] = [shown.index(c) for c in opts]
    return out


def position_bias(blk, SP, n_resamples, n_permutations, level, gen) -> dict | None:
    """Position bias at the first and the last shown position (see the module docstring)."""
    D = blk["D"]
    S, L, K = D.shape
    complete = np.isfinite(D[..., 0]).all(1)
    Kq = blk["K"][blk["item_of_stratum"]]
    A = np.zeros((2, S, L, L))
    okj = np.zeros((2, S), bool)
    for c, last in enumerate((False, True)):
        at = SP == (Kq[:, None, None] - 1 if last else 0)
        n_at = at.sum(1)  # (S, K)
        qual = (n_at > 0) & (n_at < L) & np.isfinite(SP).all(1)
        nq = qual.sum(1)
        okj[c] = complete & (nq > 0)
        w = np.where(at, 1.0 / np.maximum(n_at[:, None, :], 1), -1.0 / np.maximum(L - n_at[:, None, :], 1))
        w = np.where(qual[:, None, :], w, 0.0) / np.maximum(nq, 1)[:, None, None]
        Dz = np.nan_to_num(D)
        A[c] = np.einsum("slk,smk->slm", w, Dz)
    use = okj.all(0)
    if not use.any():
        return None
    item_of = blk["item_of_stratum"][use]
    items, inv = np.unique(item_of, return_inverse=True)
    if len(items) < 2:
        return None
    per_item = np.bincount(inv).astype(float)
    ds = np.einsum("csll->cs", A[:, use])  # identity assignment
    dq = np.stack([np.bincount(inv, weights=ds[c]) / per_item for c in range(2)], axis=1)
    g_boot, g_perm = gen.spawn(2)
    boot = cluster_bootstrap(dq, labels=["first", "last"], n_resamples=n_resamples, confidence_level=level,
                             rng=g_boot)
    wts = 1.0 / (per_item[inv] * len(items))
    null = level_permutation_null(A[:, use], wts, n_permutations, g_perm)
    obs = dq.mean(0)
    p = permutation_p_values(obs, null, "two-sided")
    return {"estimate": obs, "boot": boot, "p_value": p, "n_items": len(items), "positions": ["first", "last"]}


def answer_nulls(blk: dict, observed: float, n_resamples: int, n_permutations: int, level: float,
                 gen_null: np.random.Generator, gen_item: np.random.Generator, floor: bool = True, item: bool = True,
                 tick: Callable[[int, int], None] | None = None, rule: SequentialRule | None = None,
                 floor_mean_needed: bool = False) -> tuple[dict | None, dict | None]:
    """The noise floor of the modal flip rate and the item-level instability (choice data), their nulls
    from one set of draws: both re-allocate every stratum's answers among its levels at random, cell sizes
    kept, so one draw serves both (:func:`~robustalign.resampling.stability_nulls.answer_permutation_nulls`).

    ``observed``: the observed mean modal flip rate; ``gen_null`` draws the nulls, ``gen_item`` the
    item-level bootstrap; ``floor`` / ``item``: which parts to compute; ``tick(done, total)`` after each
    chunk of draws. ``rule``: stop each null when its p-value is decided
    (:class:`~robustalign.resampling.sequential.SequentialRule`); the noise floor's null then takes every
    draw when ``floor_mean_needed`` (its mean is the bound of a ``flip_margin`` verdict, not a p-value).
    Returns ``(noise floor, item-level)``, None for a part left out or not estimable.
    """
    N = blk.get("N")
    if N is None:
        return None, None
    counts = np.nan_to_num(blk["D"]) * N[..., None]
    Q = len(blk["items"])
    flip_stat = ModalFlipStatistic(N, blk["item_of_stratum"], Q) if floor and np.isfinite(observed) else None
    il = _item_level_setup(blk, counts, n_resamples, level, gen_item) if item else None
    stats = ([(None, flip_stat)] if flip_stat is not None else []) + ([il["null_stat"]] if il is not None else [])
    if not stats:
        return None, None
    obs = ([None if floor_mean_needed else observed] if flip_stat is not None else []) + \
        ([il["tau2"]] if il is not None else [])
    nulls = answer_permutation_nulls(counts, stats, n_permutations, gen_null, tick=tick, rule=rule, observed=obs)
    nf = _floor(flip_stat, nulls[0], observed, N) if flip_stat is not None else None
    return nf, (_item_level_finish(il, nulls[-1]) if il is not None else None)


def _p_and_se(observed: float, null: np.ndarray) -> tuple[float, float]:
    """Upper-tail permutation p-value and its Monte Carlo SE, ``sqrt(p (1 - p) / n)`` at the draws used."""
    p = float(permutation_p_values(np.array([observed]), null[:, None], "greater")[0])
    return p, float(np.sqrt(p * (1 - p) / len(null)))


def _floor(stat, null, observed, N) -> dict | None:
    """Modal flip rate under no effect at the observed numbers of answers per cell, from its null draws."""
    null = null[np.isfinite(null)]
    if not len(null):
        return None
    p, se = _p_and_se(observed, null)
    lo, hi = np.quantile(null, [0.025, 0.975])
    # with one answer per cell, re-allocating answers among levels leaves every flip as it is: the floor
    # equals the observed rate and says nothing about an effect, so verdicts do not use it
    informative = bool((N >= 2).any())
    return {"floor": float(null.mean()), "null_low": float(lo), "null_high": float(hi), "p_value": p,
            "p_mcse": se, "n_draws": len(null), "per_item": stat.per_item(), "mean_n": float(N[N > 0].mean()),
            "informative": informative, "null": null}


def _pos_grid(blk) -> np.ndarray:
    K = blk["K"][blk["item_of_stratum"]]
    Kx = blk["D"].shape[2]
    k = np.arange(Kx)[None, :]
    grid = np.where(k < K[:, None], k / np.maximum(K[:, None] - 1, 1), np.nan)
    ordinal = blk["ordinal"][blk["item_of_stratum"]]
    return np.where(ordinal[:, None], grid, np.nan)


def _xv(counts, N, grid, item_of, Q):
    """Item x level mean position and the sampling variance of that mean, from cell counts.

    ``counts`` (..., S, L, K), any leading (draw) axes; returns X and V of shape (..., Q, L). Sums run over
    the strata in order (:func:`~robustalign.resampling.stability_nulls.item_sums`)."""
    lead, (S, L, K) = counts.shape[:-3], counts.shape[-3:]
    B = int(np.prod(lead, dtype=np.int64))
    g = np.nan_to_num(grid)  # (S, K)
    sums = np.matmul(counts.reshape(B, S, L, K), np.stack([g, g * g], -1))  # (B, S, L, 2): sum of x, of x^2
    with np.errstate(invalid="ignore", divide="ignore"):
        m = sums[..., 0] / N
        v = (sums[..., 1] / N - m * m) / (N - 1)  # within-cell variance / n (the mean's sampling variance)
    ok = (N >= 2) & np.isfinite(grid[:, 0])[:, None]  # ordinal items (padding beyond K is NaN)
    cnt = np.stack([np.bincount(item_of[ok[:, lv]], minlength=Q) for lv in range(L)], axis=1).astype(float)
    sx = item_sums(np.where(ok, m, 0.0), item_of, Q)
    sv = item_sums(np.where(ok, v, 0.0), item_of, Q)
    with np.errstate(invalid="ignore", divide="ignore"):
        X = np.where(cnt > 0, sx / cnt, np.nan)
        V = np.where(cnt > 0, sv / cnt**2, np.nan)
    return X.reshape(*lead, Q, L), V.reshape(*lead, Q, L)


def _tau2(X, V):
    """Interaction variance beyond noise, vectorised over a leading resample axis: (..., Q, L) -> (...)."""
    Q, L = X.shape[-2:]
    e = X - X.mean(-1, keepdims=True) - X.mean(-2, keepdims=True) + X.mean((-2, -1), keepdims=True)
    return (e**2).sum((-2, -1)) / ((Q - 1) * (L - 1)) - V.mean((-2, -1))


def _item_level_setup(blk, counts, n_resamples, level, gen) -> dict | None:
    """Item x level interaction SD beyond within-cell noise (ordinal items, >= 2 answers per cell): the
    observed value, its item bootstrap and the statistic its null applies to each draw (``null_stat``,
    a ``(rows, stat)`` pair); None when fewer than 3 items qualify."""
    N = blk["N"]
    grid = _pos_grid(blk)
    Q = len(blk["items"])
    item_of = blk["item_of_stratum"]
    X, V = _xv(counts, N, grid, item_of, Q)
    comp = np.isfinite(X).all(1) & np.isfinite(V).all(1)
    if comp.sum() < 3:
        return None
    keep_items = np.flatnonzero(comp)
    t2 = float(_tau2(X[comp], V[comp]))
    g_boot = gen.spawn(1)[0]  # the first child, as when the null had a stream of its own (the second child)
    boot = cluster_bootstrap((X[comp], V[comp]), statistic=lambda x, v: _tau2(x, v)[:, None], labels=["tau2"],
                             n_resamples=n_resamples, confidence_level=level, rng=g_boot)
    rows = np.isin(item_of, keep_items)
    N_r, grid_r, item_r = N[rows], grid[rows], item_of[rows]

    def stat(c):  # a batch of draws (b, S_rows, L, K) -> (b,)
        x, v = _xv(c, N_r, grid_r, item_r, Q)
        return _tau2(x[..., comp, :], v[..., comp, :])

    return {"tau2": t2, "boot": boot, "n_items": int(comp.sum()), "null_stat": (None if rows.all() else rows, stat)}


def _item_level_finish(il, null) -> dict:
    t2 = il["tau2"]
    p, se = _p_and_se(t2, null)
    return {"tau2": t2, "tau": float(np.sqrt(max(t2, 0.0))), "boot": il["boot"], "p_value": p, "p_mcse": se,
            "n_draws": len(null), "n_items": il["n_items"], "null_mean": float(np.nanmean(null))}
