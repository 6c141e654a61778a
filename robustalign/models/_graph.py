"""PyMC graphs of the response (cumulative-logit) and score (Beta) models, built from a Design.

The only module that builds PyMC objects. Both models share one crossed-effects block:

* ``item_effect[q]``, zero-sum over items (shared item location, SD ``sd_item``);
* ``model_item[m, q]`` with one SD per model: each model's own view of the item. When the data pin
  the opinions down they are sampled as ``opinion[m, q] ~ N(mu_model[m] + item[q], sd[m])``;
* per design factor ``f`` with levels ``l``: ``beta_f[l]`` (a fixed, zero-sum population effect),
  ``model_x_f[m, l]`` and ``item_x_f[q, l]`` (zero-sum over both axes, learned SD, centred only when
  the data show a clear spread; a fixed unit scale below ``min_df_scale`` free contrasts).

The linear predictor is evaluated per observed cell or on the dense model x item x G grid
(``Design.dense``). docs/bayesian.md gives the measurements behind each choice.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from robustalign.models._design import Design, Term, flat_index

SD_PRIOR = 1.0  # HalfNormal scale of every standard deviation (logit scale)
MU_PRIOR = 1.5  # scale of model means


CENTRE_MIN = 50  # answers per level above which an item-level effect is centred


def _centred(d: Design, axes) -> bool:
    n_cell = cast(np.ndarray, d.counts).sum(1) if d.kind == "ordinal" else cast(np.ndarray, d.n)
    per_level = n_cell.sum() / np.prod(d.shape(axes))
    if axes == ("item",) and d.human_n is not None:
        per_level += d.human_n.sum() / len(d.items)
    return bool(per_level >= CENTRE_MIN)


SNR_CENTRE = 2.0  # observed interaction SD / its sampling SE above which an interaction is centred


def signal_to_noise(d: Design, axes: tuple[str, str]) -> float:
    """Observed spread of a two-way interaction relative to its sampling noise (0 for score data).

    Mean answer positions per (``axes[0]``, ``axes[1]``) level pair are double-centred; the SD of what
    is left, net of the expected sampling variance of those means, is divided by their sampling SE.
    Used only to choose a parametrisation (the model is the same either way).
    """
    if d.kind != "ordinal":
        return 0.0
    assert d.counts is not None and d.K_item is not None  # set for every ordinal design
    K = d.K_item[d.idx["item"]]
    pos = np.arange(d.counts.shape[1])[None, :] / np.maximum(K[:, None] - 1, 1)
    n = d.counts.sum(1)
    s1 = (d.counts * pos).sum(1)
    s2 = (d.counts * pos**2).sum(1)
    shp = d.shape(axes)
    key = flat_index(d, axes)
    N = np.bincount(key, n, int(np.prod(shp)))
    if (N == 0).any():
        return 0.0
    mean = (np.bincount(key, s1, N.size) / N).reshape(shp)
    within = (s2.sum() - (s1.sum() ** 2) / n.sum()) / n.sum()  # pooled answer variance (upper bound)
    r = mean - mean.mean(0, keepdims=True) - mean.mean(1, keepdims=True) + mean.mean()
    dof = (shp[0] - 1) * (shp[1] - 1)
    noise = within * np.mean(1.0 / N)
    signal = max(float((r**2).sum() / dof) - noise, 0.0)
    return float(np.sqrt(signal / noise)) if noise > 0 else np.inf


def _effect(name: str, sd, dims: tuple[str, ...], n_zerosum_axes: int, centred: bool, z_name: str | None = None):
    """A zero-sum effect table with scale ``sd``, centred or non-centred (``z_name`` holds the unit draws).

    An effect pinned down by many answers per level mixes badly when non-centred, one near zero or
    informed by few answers mixes badly when centred (the funnel); callers choose from the data.
    """
    import pymc as pm

    if centred:
        return pm.ZeroSumNormal(name, sigma=sd, dims=dims, n_zerosum_axes=n_zerosum_axes)
    z = pm.ZeroSumNormal(z_name or f"z_{name}", sigma=1.0, dims=dims, n_zerosum_axes=n_zerosum_axes)
    return pm.Deterministic(name, sd * z, dims=dims)


def crossed_effects(d: Design, *, model_means_free: bool, tables: bool = False):
    """Add the crossed random effects; return the linear predictor (no intercept).

    The predictor is per observed cell, or on the dense (models, items, G) grid when ``d.dense``; with
    ``tables`` (dense designs only) its three parts ``(a[m, q], c[m, g], e[q, g])`` are returned instead.
    """
    import pymc as pm

    terms: list[Term] = []
    if model_means_free:
        mu = pm.Normal("mu_model", 0.0, MU_PRIOR, dims="model")
    else:
        mu = pm.ZeroSumNormal("mu_model", sigma=MU_PRIOR, dims="model")
    terms.append(Term("mu_model", ("model",), "model"))

    # Item effects sum to zero over items, so they do not form a ridge with whatever carries the
    # overall location (the model means, the cutpoints with humans, the score model's intercept).
    sd_item = pm.HalfNormal("sd_item", SD_PRIOR)
    item = _effect("item_effect", sd_item, ("item",), 1, _centred(d, ("item",)), z_name="z_item")
    terms.append(Term("item_effect", ("item",), "item"))

    sd_mi = pm.HalfNormal("sd_model_item", SD_PRIOR, dims="model")
    # centred when many answers per model-item or a clear spread of the model-item means (the rule
    # the interactions use): at 15 answers per model-item and SD 1, non-centred sd_model_item mixed
    # slowly (chain means 5 SE apart, R-hat 1.010 at 4 x 1,500 draws; centred 1.005)
    opinion = _centred(d, ("model", "item")) or signal_to_noise(d, ("model", "item")) >= SNR_CENTRE
    if opinion:
        # Each model's opinion on each item, centred on its mean and the item's location:
        # opinion[m, q] ~ N(mu[m] + item[q], sd[m]). The likelihood sees the opinion alone, so the
        # item location and the model means are informed through it and do not form a ridge with the
        # deviations (with `item + deviation` in the likelihood they would, and R-hat reached 1.1).
        op = pm.Normal("model_opinion", mu=mu[:, None] + item[None, :], sigma=sd_mi[:, None],
                       dims=("model", "item"))
        pm.Deterministic("model_item", op - mu[:, None] - item[None, :], dims=("model", "item"))
    else:
        _effect("model_item", sd_mi[:, None], ("model", "item"), 1, centred=False)
    terms.append(Term("model_item", ("model", "item"), "model_item"))

    for f in d.factors:
        # Population effects of design factors are fixed effects (zero-sum, N(0, 1) on the logit scale):
        # every answer informs them, a scale learned from a handful of levels is prior-driven, and a
        # near-zero scale (a factor without a main effect) turns a learned-scale effect into a funnel
        # that no parametrisation samples well. Variance shares use the realised spread of the levels.
        pm.ZeroSumNormal(f"beta_{f}", sigma=1.0, dims=f)
        terms.append(Term(f"beta_{f}", (f,), f, f))
        if not d.interactions[f]:
            continue
        for other in ("model", "item"):
            # zero-sum over levels and over models (items): the population effect is then the
            # average over the models (items) in the data, and not a ridge with their deviations
            name, dims = f"{other}_x_{f}", (other, f)
            if (len(d.coords[other]) - 1) * (len(d.levels[f]) - 1) < d.min_df_scale:
                # a scale learned from a handful of contrasts makes the sampler diverge, so these
                # deviations get the same fixed unit-scale prior as a population effect
                _effect(name, 1.0, dims, 2, centred=True)
            else:
                # deviations near zero make a centred table a funnel, large well-measured ones make a
                # non-centred table mix slowly: centre only when the data show a clear spread
                sd = pm.HalfNormal(f"sd_{name}", SD_PRIOR)
                _effect(name, sd, dims, 2, centred=signal_to_noise(d, dims) >= SNR_CENTRE)
            terms.append(Term(name, dims, name, f))
    d.terms = terms
    # the likelihood sees the sampled opinion instead of its three parts when there is one
    parts = ("mu_model", "item_effect", "model_item")
    used = ([Term("model_opinion", ("model", "item"), "model_item")] + [t for t in terms if t.name not in parts]
            if opinion else terms)
    model = pm.modelcontext(None)
    if tables:
        return _dense_tables(used, d, model)
    if d.dense:
        a, c, e = _dense_tables(used, d, model)
        return a[:, :, None] + c[:, None, :] + e[None, :, :]
    return _gathered_eta(used, d, model)


def _gathered_eta(terms: list[Term], d: Design, model):
    """The linear predictor per observed cell (cells,), one gather per term."""
    import pymc as pm
    import pytensor.tensor as pt

    # index arrays enter as data, not constants, so that the compiled logp does not depend on the
    # design's values: the compile cache is reused across data sets with the same structure
    index = {}
    eta = 0.0
    for t in terms:
        key = "idx_" + "_".join(t.axes)
        if key not in index:
            arr = d.idx[t.axes[0]] if len(t.axes) == 1 else flat_index(d, t.axes)
            index[key] = pm.Data(key, arr.astype(np.int64))
        table = model[t.name]
        eta = eta + (table if len(t.axes) == 1 else table.flatten())[index[key]]
    return pt.as_tensor_variable(eta)


def _dense_tables(terms: list[Term], d: Design, model):
    """The linear predictor on the (models, items, G) grid of factor-level combinations, in three parts.

    Every term depends on model and item, model and factors, or item and factors, so the predictor is
    ``a[m, q] + c[m, g] + e[q, g]`` with three small tables: two broadcast additions per cell instead of
    a gather per term, and a gradient that is three sums instead of scatters. Returns ``(a, c, e)``.
    """
    import pytensor.tensor as pt

    M, Q, G = len(d.models), len(d.items), d.n_combos
    a, c, e = pt.zeros((M, Q)), pt.zeros((M, G)), pt.zeros((Q, G))
    for t in terms:
        tab = model[t.name]
        fs = [x for x in t.axes if x not in ("model", "item")]
        if fs:  # one factor per term: spread its levels over the G combinations
            tab = tab[..., d.combo_codes(fs[0])]
        if t.axes[0] == "model" and "item" in t.axes:
            a = a + tab
        elif t.axes == ("model",):
            a = a + tab[:, None]
        elif t.axes == ("item",):
            a = a + tab[None, :]
        elif t.axes[0] == "model":
            c = c + tab
        elif t.axes[0] == "item":
            e = e + tab
        else:
            c = c + tab[None, :]
    return a, c, e


def cell_layout(d: Design, x: np.ndarray) -> np.ndarray:
    """Per-cell data in the layout the likelihood uses: the dense grid or one row per cell."""
    return d.to_grid(x) if d.dense else x


def _k_groups(d: Design) -> tuple[list[int], np.ndarray]:
    assert d.K_item is not None  # set for every ordinal or categorical design
    ks = sorted(set(int(k) for k in d.K_item))
    gid = {k: i for i, k in enumerate(ks)}
    return ks, np.array([gid[int(k)] for k in d.K_item])


def fused_likelihood(d: Design, fused: bool | None = None) -> bool:
    """Whether the graph of ``d`` uses the fused kernel (``_kernel``): by default on every dense grid."""
    if fused is None:
        return d.dense
    if fused and not d.dense:
        raise ValueError("The fused likelihood kernel needs a dense design grid (`Design.dense`).")
    return bool(fused)


def ordinal_data(d: Design, fused: bool | None = None) -> dict[str, np.ndarray]:
    """Likelihood data of the cumulative logit, in the form the graph uses (also for data swaps).

    With ``x_j = tau_j - eta`` the multinomial log-likelihood of a cell's counts ``n_0..n_{K-1}`` is
    ``sum_j [A_j log s(x_j) + B_j log s(-x_j)] + sum_{k=1}^{K-2} n_k log(1 - exp(tau_{k-1} - tau_k))``
    with ``A_j = n_j``, ``B_j = n_{j+1}`` (s = logistic), exact up to a constant. As
    ``log s(-x) = log s(x) - x``, the first sum is ``sum_j A_j x_j - N_j log(1 + e^{x_j})`` with
    ``N_j = A_j + B_j``; the linear part needs only ``sum_j A_j`` per cell and ``A_j`` totalled per item
    (``A_item``). The last sum depends on the cutpoints only: category totals per scale length.

    With the fused kernel (``fused``) ``N`` is laid out (models, items, cutpoints, G) and the linear part
    ``sum A eta`` needs only the margins of ``A_sum`` over the three predictor tables (``A_mq``,
    ``A_mg``, ``A_qg``).
    """
    ks, g_item = _k_groups(d)
    assert d.counts is not None and d.K_item is not None  # set for every ordinal design
    kmax = d.counts.shape[1]
    Q = len(d.items)
    out = {}

    def parts(counts, K_rows, item_rows):
        A = counts[:, : kmax - 1].copy()
        B = counts[:, 1:].copy()
        pad = np.arange(kmax - 1)[None, :] >= (K_rows[:, None] - 1)
        A[pad] = 0.0
        B[pad] = 0.0
        A_item = np.zeros((Q, kmax - 1))
        np.add.at(A_item, item_rows, A)
        return A + B, A.sum(1), A_item

    N, A_sum, A_item = parts(d.counts, d.K_item[d.idx["item"]], d.idx["item"])
    out["N"], out["A_sum"], out["A_item"] = cell_layout(d, N), cell_layout(d, A_sum), A_item
    if fused_likelihood(d, fused):
        out["N"] = np.ascontiguousarray(out["N"].transpose(0, 1, 3, 2))
        A = out.pop("A_sum")
        out["A_mq"], out["A_mg"], out["A_qg"] = A.sum(2), A.sum(1), A.sum(0)
    tot = np.zeros((len(ks), kmax))
    np.add.at(tot, g_item[d.idx["item"]], d.counts)
    out["cat_totals"] = tot
    if d.human_counts is not None:  # kept apart: with `cutpoints="offset"` humans have their own cutpoints
        C = d.human_counts.shape[0]
        hc = d.human_counts.reshape(C * Q, kmax)
        hN, hA_sum, hA_item = parts(hc, np.tile(d.K_item, C), np.tile(np.arange(Q), C))
        out["hN"], out["hA_sum"], out["hA_item"] = hN.reshape(C, Q, -1), hA_sum.reshape(C, Q), hA_item
        htot = np.zeros((len(ks), kmax))
        np.add.at(htot, g_item, d.human_counts.sum(0))
        out["h_cat_totals"] = htot
    return out


def _centred_cutpoints(K: int):
    """Cutpoints with mean zero, from K - 2 log-gaps with a Normal prior centred on equal shares.

    ``log gap_k ~ N(log(logit((k+1)/K) - logit(k/K)), 1)``: the prior median spacing gives every option
    the same share at the centre, and a factor of e either way is one prior SD. Centring removes the
    location, which the model means carry, and a log-gap parametrisation has no direction the data
    leave to the prior alone (a Dirichlet over K shares would keep one: R-hat 1.10 on it).
    """
    import pymc as pm
    import pytensor.tensor as pt

    if K == 2:
        return pt.zeros(1)
    q = np.arange(1, K) / K
    equal = np.log(q / (1 - q))
    h = pm.Normal(f"log_gaps_K{K}", mu=np.log(np.diff(equal)), sigma=1.0, shape=K - 2)
    raw = pt.concatenate([pt.zeros(1), pt.cumsum(pt.exp(h))])
    return raw - pt.mean(raw)


OFFSET_SD = 0.5  # prior SD of the log ratio of a model cutpoint gap to the human one (cutpoints="offset")


def _pad(tau, K: int, kmax: int):
    """The K - 1 cutpoints padded with zeros to kmax - 1 (padded slots carry zero counts)."""
    import pytensor.tensor as pt

    return tau if K == kmax else pt.concatenate([tau, pt.zeros(kmax - K)])


def _gap_penalty(totals, rows, ks):
    """sum_k n_k log(1 - exp(tau_{k-1} - tau_k)) over the inner categories, per scale length."""
    import pytensor.tensor as pt

    out = 0.0
    for gi, K in enumerate(ks):
        if K > 2:
            tau = rows[gi][: K - 1]
            out = out + pt.sum(totals[gi, 1 : K - 1] * pt.log1mexp(tau[:-1] - tau[1:]))
    return out


def _offset_cutpoints(tau, K: int):
    """Model cutpoints whose gaps are the human gaps times exp(offset), at the human cutpoints' mean.

    The sensitivity model for measurement invariance (METHODS 3.3): a uniform shift of the model
    cutpoints is the model mean, so only the spacing can differ; ``offset ~ N(0, OFFSET_SD)`` per gap.
    """
    import pymc as pm
    import pytensor.tensor as pt

    off = pm.Normal(f"cutpoint_offset_K{K}", 0.0, OFFSET_SD, shape=K - 2)
    raw = pt.concatenate([pt.zeros(1), pt.cumsum((tau[1:] - tau[:-1]) * pt.exp(off))])
    return pm.Deterministic(f"model_cutpoints_K{K}", raw - pt.mean(raw) + pt.mean(tau))


def build_ordinal(d: Design, fused: bool | None = None):
    """The cumulative-logit response model (with the joint human component when the design has one).

    ``fused`` (default: on dense grids) evaluates the cells' likelihood with the fused kernel of
    ``_kernel`` (numba, and the C/Python backends through its ``perform``); ``False`` builds the same
    likelihood from PyTensor operations (needed for the JAX backend).
    """
    import pymc as pm
    import pytensor.tensor as pt

    ks, g_item = _k_groups(d)
    assert d.counts is not None  # set for every ordinal design
    kmax = d.counts.shape[1]
    coords = d.coords
    fused = fused_likelihood(d, fused)
    data = ordinal_data(d, fused)
    with pm.Model(coords=coords) as model:
        N = pm.Data("N", data["N"])
        A_item = pm.Data("A_item", data["A_item"])
        cat_totals = pm.Data("cat_totals", data["cat_totals"])
        if fused:
            margins = [pm.Data(k, data[k]) for k in ("A_mq", "A_mg", "A_qg")]
            tables = crossed_effects(d, model_means_free=True, tables=True)
        else:
            A_sum = pm.Data("A_sum", data["A_sum"])
            eta = crossed_effects(d, model_means_free=True)
        # Without humans the cutpoints are centred (their shape only) and the model means carry the
        # location: with free cutpoints, a shift of every cutpoint and every model opinion together is a
        # ridge that only the priors resolve (R-hat 1.07 on the cutpoints at 14,400 cells). With humans,
        # their answers pin the cutpoints and the human locations are zero-sum.
        centre_cuts = d.human_counts is None

        # cutpoints per scale length: shape-only log-gaps without humans, else the induced-Dirichlet
        # prior (Betancourt 2019) anchored at 0; with `cutpoints="offset"` the models' spacing may differ
        offset = d.cutpoints == "offset" and not centre_cuts
        rows_h, rows_m = [], []
        for K in ks:
            if centre_cuts:
                tau = pm.Deterministic(f"cutpoints_K{K}", _centred_cutpoints(K))
            else:
                p = pm.Dirichlet(f"p_cut_K{K}", a=np.ones(K))
                F = pt.cumsum(p)[:-1]
                tau = pm.Deterministic(f"cutpoints_K{K}", pt.log(F) - pt.log1p(-F))
            tau_m = _offset_cutpoints(tau, K) if offset and K > 2 else tau
            rows_h.append(_pad(tau, K, kmax))
            rows_m.append(_pad(tau_m, K, kmax))
        T_items = pt.stack(rows_m)[g_item]  # (items, kmax-1); g_item is all zeros with one scale length

        def loglik(tau_rows, eta_, N_, A_sum_):
            # the cutpoint-free part of the cells' log-likelihood (ordinal_data): -sum A_j eta - N_j log(1 + e^x_j);
            # e^x as e^tau e^-eta takes one exponential per cell instead of one per cutpoint
            ex = pt.exp(tau_rows) * pt.exp(-eta_)[..., None]
            return -pt.sum(A_sum_ * eta_) - pt.sum(N_ * pt.log1p(ex))

        if fused:
            from robustalign.models._kernel import dense_softplus

            cells = cast("list[Any]", dense_softplus(*tables, T_items, N))[0] - sum(
                pt.sum(A * t) for A, t in zip(margins, tables, strict=True))
        else:
            if d.dense:
                tau_cells = T_items[None, :, None, :]
            elif len(ks) == 1:
                tau_cells = rows_m[0][None, :]  # broadcast instead of a gather per cell
            else:
                tau_cells = T_items[d.idx["item"]]
            cells = loglik(tau_cells, eta, N, A_sum)
        ll = cells + pt.sum(A_item * T_items) + _gap_penalty(cat_totals, rows_m, ks)

        if d.human_counts is not None:
            hN = pm.Data("hN", data["hN"])
            hA_sum = pm.Data("hA_sum", data["hA_sum"])
            hA_item = pm.Data("hA_item", data["hA_item"])
            h_tot = pm.Data("h_cat_totals", data["h_cat_totals"])
            H_items = pt.stack(rows_h)[g_item]
            sd_g = pm.HalfNormal("sd_group", SD_PRIOR)
            mu_g = pm.ZeroSumNormal("mu_group", sigma=sd_g, dims="group")
            sd_gi = pm.HalfNormal("sd_group_item", SD_PRIOR)
            # zero-sum over groups: the shared item location is then the human average on the item,
            # which the (large) human samples pin down; a free mean would form a ridge with it
            a_gi = pm.ZeroSumNormal("group_item", sigma=sd_gi, dims=("group", "item"), n_zerosum_axes=2)
            theta = mu_g[:, None] + a_gi + model["item_effect"][None, :]
            ll = (ll + loglik(H_items[None], theta, hN, hA_sum) + pt.sum(hA_item * H_items)
                  + _gap_penalty(h_tot, rows_h, ks))
        pm.Potential("loglik", ll)
    return model


def build_score(d: Design):
    """The Beta score model on per-cell sufficient statistics."""
    import pymc as pm
    import pytensor.tensor as pt

    assert d.n is not None and d.sum_log is not None and d.sum_log1m is not None  # set for every score design
    with pm.Model(coords=d.coords) as model:
        n = pm.Data("n", cell_layout(d, d.n))
        s1 = pm.Data("sum_log", cell_layout(d, d.sum_log))
        s2 = pm.Data("sum_log1m", cell_layout(d, d.sum_log1m))
        eta = crossed_effects(d, model_means_free=False)
        alpha = pm.Normal("intercept", 0.0, MU_PRIOR)
        phi = pm.Gamma("phi", alpha=2.0, beta=0.1)
        mu = pm.math.sigmoid(alpha + eta)
        a = mu * phi
        b = (1.0 - mu) * phi
        ll = pt.sum((a - 1.0) * s1 + (b - 1.0) * s2 - n * (pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(phi)))
        pm.Potential("loglik", ll)
    return model
