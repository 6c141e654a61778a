"""PyMC graphs of the response (cumulative-logit) and score (Beta) models, built from a Design.

The only module that builds PyMC objects. Both models share one crossed-effects block:

* ``item_effect[q] = sd_item * z``                          (shared item location)
* ``model_item[m, q] = sd_model_item[m] * z``               (each model's opinion on the item)
* per design factor ``f`` with levels ``l``:
  ``beta_f[l]`` (population effect), ``model_x_f[m, l]`` and ``item_x_f[q, l]``, all ZeroSumNormal
  (interactions sum to zero over both axes) and non-centred. Each has a learned scale
  (``sd_f``, ``sd_model_x_f``, ``sd_item_x_f``) when it has at least ``min_df_scale`` (4) free
  contrasts and a fixed unit scale otherwise: a scale learned from two or three values is prior-driven
  and makes the sampler diverge.
"""

from __future__ import annotations

import numpy as np

from robustalign.models._design import Design, Term, _flat_index

SD_PRIOR = 1.0  # HalfNormal scale of every standard deviation (logit scale)
MU_PRIOR = 1.5  # scale of model means


CENTRE_MIN = 50  # answers per level above which an item-level effect is centred


def _centred(d: Design, axes) -> bool:
    n_cell = d.counts.sum(1) if d.kind == "ordinal" else d.n
    per_level = n_cell.sum() / np.prod(d.shape(axes))
    if axes == ("item",) and d.human_n is not None:
        per_level += d.human_n.sum() / len(d.items)
    return bool(per_level >= CENTRE_MIN)


def crossed_effects(d: Design, *, model_means_free: bool):
    """Add the crossed random effects; return the linear predictor per cell (no intercept)."""
    import pymc as pm
    import pytensor.tensor as pt

    terms: list[Term] = []
    if model_means_free:
        pm.Normal("mu_model", 0.0, MU_PRIOR, dims="model")
    else:
        pm.ZeroSumNormal("mu_model", sigma=MU_PRIOR, dims="model")
    terms.append(Term("mu_model", ("model",), "model"))

    # Item effects sum to zero over items (and each model's item effects too), so the cutpoints carry
    # the overall location and the model means each model's: free means would form ridges with them.
    # An effect pinned down by many answers per level mixes badly when non-centred, one informed by
    # few answers mixes badly when centred: choose by the answers per level. Design effects (small,
    # few levels) are always non-centred.
    sd_item = pm.HalfNormal("sd_item", SD_PRIOR)
    if _centred(d, ("item",)):
        pm.ZeroSumNormal("item_effect", sigma=sd_item, dims="item")
    else:
        pm.Deterministic("item_effect", sd_item * pm.ZeroSumNormal("z_item", sigma=1.0, dims="item"), dims="item")
    terms.append(Term("item_effect", ("item",), "item"))

    sd_mi = pm.HalfNormal("sd_model_item", SD_PRIOR, dims="model")
    if _centred(d, ("model", "item")):
        pm.ZeroSumNormal("model_item", sigma=sd_mi[:, None], dims=("model", "item"), n_zerosum_axes=1)
    else:
        z_mi = pm.ZeroSumNormal("z_model_item", sigma=1.0, dims=("model", "item"), n_zerosum_axes=1)
        pm.Deterministic("model_item", sd_mi[:, None] * z_mi, dims=("model", "item"))
    terms.append(Term("model_item", ("model", "item"), "model_item"))

    for f in d.factors:
        if f in d.fixed_factors:
            pm.ZeroSumNormal(f"beta_{f}", sigma=1.0, dims=f)
        else:
            sd = pm.HalfNormal(f"sd_{f}", SD_PRIOR)
            pm.Deterministic(f"beta_{f}", sd * pm.ZeroSumNormal(f"z_{f}", sigma=1.0, dims=f), dims=f)
        terms.append(Term(f"beta_{f}", (f,), f, f))
        if d.interactions[f]:
            for other in ("model", "item"):
                # zero-sum over levels and over models (items): the population effect is then the
                # average over the models (items) in the data, and not a ridge with their deviations
                df = (len(d.coords[other]) - 1) * (len(d.levels[f]) - 1)
                if df < d.min_df_scale:
                    # a scale learned from a handful of contrasts makes the sampler diverge, so these
                    # deviations get the same fixed unit-scale prior as a fixed population effect
                    pm.ZeroSumNormal(f"model_x_{f}", sigma=1.0, dims=(other, f), n_zerosum_axes=2)
                else:
                    sd = pm.HalfNormal(f"sd_{other}_x_{f}", SD_PRIOR)
                    z = pm.ZeroSumNormal(f"z_{other}_x_{f}", sigma=1.0, dims=(other, f), n_zerosum_axes=2)
                    pm.Deterministic(f"{other}_x_{f}", sd * z, dims=(other, f))
                terms.append(Term(f"{other}_x_{f}", (other, f), f"{other}_x_{f}", f))
    d.terms = terms

    # index arrays enter as data, not constants, so that the compiled logp does not depend on the
    # design's values: the compile cache is reused across data sets with the same structure
    model = pm.modelcontext(None)
    index = {}
    eta = 0.0
    for t in terms:
        key = "idx_" + "_".join(t.axes)
        if key not in index:
            arr = d.idx[t.axes[0]] if len(t.axes) == 1 else _flat_index(d, t.axes)
            index[key] = pm.Data(key, arr.astype(np.int64))
        table = model[t.name]
        eta = eta + (table if len(t.axes) == 1 else table.flatten())[index[key]]
    return pt.as_tensor_variable(eta)


def _k_groups(d: Design):
    ks = sorted(set(int(k) for k in d.K_item))
    gid = {k: i for i, k in enumerate(ks)}
    return ks, np.array([gid[int(k)] for k in d.K_item])


def ordinal_data(d: Design) -> dict[str, np.ndarray]:
    """Likelihood data of the cumulative logit, in the form the graph uses (also for data swaps).

    With ``x_j = tau_j - eta`` the multinomial log-likelihood of a cell's counts ``n_0..n_{K-1}`` is
    ``sum_j [n_j log s(x_j) + n_{j+1} log s(-x_j)] + sum_{k=1}^{K-2} n_k log(1 - exp(tau_{k-1} - tau_k))``
    (s = logistic), exact up to a constant. The last sum depends on the cutpoints only, so it needs
    the category totals per scale length, not per cell.
    """
    ks, g_item = _k_groups(d)
    kmax = d.counts.shape[1]
    out = {}

    def ab(counts, K_rows):
        A = counts[:, : kmax - 1].copy()
        B = counts[:, 1:].copy()
        pad = np.arange(kmax - 1)[None, :] >= (K_rows[:, None] - 1)
        A[pad] = 0.0
        B[pad] = 0.0
        return A, B

    K_cell = d.K_item[d.idx["item"]]
    out["A"], out["B"] = ab(d.counts, K_cell)
    tot = np.zeros((len(ks), kmax))
    np.add.at(tot, g_item[d.idx["item"]], d.counts)
    if d.human_counts is not None:
        C, Q, _ = d.human_counts.shape
        hc = d.human_counts.reshape(C * Q, kmax)
        hA, hB = ab(hc, np.tile(d.K_item, C))
        out["hA"], out["hB"] = hA.reshape(C, Q, -1), hB.reshape(C, Q, -1)
        np.add.at(tot, g_item, d.human_counts.sum(0))
    out["cat_totals"] = tot
    return out


def build_ordinal(d: Design):
    """The cumulative-logit response model (with the joint human component when the design has one)."""
    import pymc as pm
    import pytensor.tensor as pt

    ks, g_item = _k_groups(d)
    kmax = d.counts.shape[1]
    coords = d.coords
    data = ordinal_data(d)
    with pm.Model(coords=coords) as model:
        A = pm.Data("A", data["A"])
        B = pm.Data("B", data["B"])
        cat_totals = pm.Data("cat_totals", data["cat_totals"])
        eta = crossed_effects(d, model_means_free=d.human_counts is not None)

        # cutpoints per scale length: the induced-Dirichlet prior (Betancourt 2019), anchored at 0
        rows, penalty = [], 0.0
        for gi, K in enumerate(ks):
            p = pm.Dirichlet(f"p_cut_K{K}", a=np.ones(K))
            F = pt.cumsum(p)[:-1]
            tau = pm.Deterministic(f"cutpoints_K{K}", pt.log(F) - pt.log1p(-F))
            if K > 2:
                gaps = tau[:-1] - tau[1:]  # negative
                penalty = penalty + pt.sum(cat_totals[gi, 1 : K - 1] * pt.log1mexp(gaps))
            rows.append(pt.concatenate([tau, pt.zeros(kmax - K)]) if K < kmax else tau)
        T = pt.stack(rows)  # (groups, kmax-1)

        def loglik(tau_rows, eta_, A_, B_):
            x = tau_rows - eta_[..., None]
            return -pt.sum(A_ * pt.softplus(-x)) - pt.sum(B_ * pt.softplus(x))

        tau_cells = T[0][None, :] if len(ks) == 1 else T[g_item[d.idx["item"]]]
        ll = loglik(tau_cells, eta, A, B) + penalty

        if d.human_counts is not None:
            hA = pm.Data("hA", data["hA"])
            hB = pm.Data("hB", data["hB"])
            sd_g = pm.HalfNormal("sd_group", SD_PRIOR)
            mu_g = pm.ZeroSumNormal("mu_group", sigma=sd_g, dims="group")
            sd_gi = pm.HalfNormal("sd_group_item", SD_PRIOR)
            # zero-sum over groups: the shared item location is then the human average on the item,
            # which the (large) human samples pin down; a free mean would form a ridge with it
            a_gi = pm.ZeroSumNormal("group_item", sigma=sd_gi, dims=("group", "item"), n_zerosum_axes=2)
            theta = mu_g[:, None] + a_gi + model["item_effect"][None, :]
            tau_items = T[0][None, None, :] if len(ks) == 1 else T[g_item][None, :, :]
            ll = ll + loglik(tau_items, theta, hA, hB)
        pm.Potential("loglik", ll)
    return model


def build_score(d: Design):
    """The Beta score model on per-cell sufficient statistics."""
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model(coords=d.coords) as model:
        n = pm.Data("n", d.n)
        s1 = pm.Data("sum_log", d.sum_log)
        s2 = pm.Data("sum_log1m", d.sum_log1m)
        eta = crossed_effects(d, model_means_free=False)
        alpha = pm.Normal("intercept", 0.0, MU_PRIOR)
        phi = pm.Gamma("phi", alpha=2.0, beta=0.1)
        mu = pm.math.sigmoid(alpha + eta)
        a = mu * phi
        b = (1.0 - mu) * phi
        ll = pt.sum((a - 1.0) * s1 + (b - 1.0) * s2 - n * (pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(phi)))
        pm.Potential("loglik", ll)
    return model
