"""The categorical (softmax) response model for nominal items: PyMC graph and its numpy mirror.

On answer counts per design cell (model x item x factor levels), with ``K_q`` options on item ``q``:

``eta[m, q, g, k] = alpha[q, k] + model_item[m, q, k] + sum_f u_f[m, q, l_f(g), k]``,
``log L = sum_cells sum_k n_k log softmax(eta)_k`` (the multinomial coefficient is a constant).

* ``alpha[q, .]``: the item's baseline logits, ZeroSumNormal(1.5) over its ``K_q`` options;
* ``model_item[m, q, .]``: model ``m``'s deviation on the item, ZeroSumNormal(``sd_model_item[m]``);
* ``u_f[m, q, ., .]``: how level ``l`` of design factor ``f`` moves the model's answer distribution on the
  item, zero-sum over levels and options, scale ``sd_<f>[m]`` (one per model);
* with humans: ``theta[c, q, .] = alpha[q, .] + group_item[c, q, .]``, ``group_item`` zero-sum over groups
  and options with scale ``sd_group_item``; human counts enter with the same softmax likelihood.

Every zero-sum effect is written in orthonormal contrast coordinates: ZeroSumNormal(sigma) over the
``K`` options of an item is exactly ``sigma * B_K z`` with ``B_K`` the K x (K - 1) Helmert basis (orthonormal
columns that sum to zero) and ``z`` iid N(0, 1); over levels and options it is ``sigma (H_L kron B_K) z``.
Tables are stored with ``Kmax - 1`` coordinates per item; on an item with fewer options the extra
coordinates never enter the likelihood and keep a unit-scale prior that no SD depends on, so the padding is
exact. The logits live in the coordinates too: ``sum_k n_k eta_k = (B^T n) . c``, so the linear part of the
likelihood needs only the projected counts per cell, and the log-sum-exp is taken per scale length over the
``K`` real options only (no masked categories).

docs/bayesian.md ("Categorical model") gives the measurements behind the parametrisation choices.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import helmert

from robustalign.models._design import Design, Term, flat_index
from robustalign.models._graph import CENTRE_MIN, SD_PRIOR

ALPHA_PRIOR = 1.5  # scale of the items' baseline logits (zero-sum over options)

#: Answers per model x item x level from which a factor table is centred. Measured (docs/bayesian.md):
#: min bulk ESS centred / non-centred 24 / 1320 at 20 answers, 511 / 1150 at 60, 1258 / 1082 at 100,
#: 815 / 357 at 200. (Model opinions switch at ``CENTRE_MIN`` = 50 answers per model x item, as in the
#: ordinal model: 1320 / 865 at 60.)
FACTOR_CENTRE_MIN = 100

#: Residual variance per option utility of the multinomial logit (a standard Gumbel error, pi^2/6).
#: A ZeroSumNormal(sigma) effect moves the log-odds between any two options with variance 2 sigma^2, the
#: Gumbel errors with variance pi^2/3, so sigma^2 / (sum sigma^2 + pi^2/6) is the share on the log-odds
#: scale, the same scale as the cumulative logit's sigma^2 / (sum + pi^2/3); for K = 2 they coincide.
RESIDUAL_VAR = np.pi**2 / 6


def basis(K: int) -> np.ndarray:
    """Orthonormal zero-sum basis (K, K - 1): columns sum to 0, ``B.T @ B = I``."""
    return helmert(K, full=False).T


def item_bases(K_item: np.ndarray, kmax: int) -> np.ndarray:
    """Per-item bases padded to (items, Kmax, Kmax - 1); zero rows beyond K_q, zero columns beyond K_q - 1."""
    out = np.zeros((len(K_item), kmax, kmax - 1))
    for q, K in enumerate(K_item):
        out[q, :K, : K - 1] = basis(int(K))
    return out


def live(d: Design) -> np.ndarray:
    """(items, Kmax - 1): which contrast coordinates an item uses."""
    assert d.counts is not None and d.K_item is not None  # set for every categorical design
    kc = d.counts.shape[1] - 1
    return np.arange(kc)[None, :] < (d.K_item[:, None] - 1)


def answers_per(d: Design, axes) -> float:
    """Answers per entry of a table over ``axes`` (e.g. per model x item)."""
    assert d.counts is not None  # set for every categorical design
    return float(d.counts.sum() / np.prod(d.shape(axes)))


def centred_choice(d: Design) -> dict[str, bool]:
    """Parametrisation of each table, chosen from the data as the ordinal model does (``CENTRE_MIN``).

    ``model_item``: centred opinions when a model answers an item at least ``CENTRE_MIN`` times; each
    factor table: centred when a model answers an item under one level at least ``FACTOR_CENTRE_MIN``
    times; ``group_item``: centred when a human group has at least ``CENTRE_MIN`` respondents per item on
    average. The choice changes the sampler's geometry, not the model.
    """
    out = {"model_item": answers_per(d, ("model", "item")) >= CENTRE_MIN}
    for f in d.factors:
        out[f] = answers_per(d, ("model", "item", f)) >= FACTOR_CENTRE_MIN
    if d.human_counts is not None:
        assert d.human_n is not None  # set together with human_counts
        asked = np.asarray(d.human_n > 0)
        out["group_item"] = bool(d.human_n[asked].mean() >= CENTRE_MIN) if asked.any() else False
    return out


def categorical_data(d: Design) -> dict[str, np.ndarray]:
    """Likelihood data: projected counts ``B^T n`` and totals per cell (and per human cell)."""
    assert d.counts is not None and d.K_item is not None  # set for every categorical design
    kmax = d.counts.shape[1]
    B = item_bases(d.K_item, kmax)  # (Q, Kmax, Kc)
    q = d.idx["item"]
    out = {
        "ntilde": np.einsum("ck,ckj->cj", d.counts, B[q]),
        "N": d.counts.sum(1),
    }
    if d.human_counts is not None:
        out["h_ntilde"] = np.einsum("cqk,qkj->cqj", d.human_counts, B)
        out["hN"] = d.human_counts.sum(-1)
    return out


def _k_groups(K_item: np.ndarray) -> list[int]:
    return sorted(set(int(k) for k in K_item))


def _coords(d: Design) -> dict[str, list[str]]:
    assert d.counts is not None  # set for every categorical design
    kmax = d.counts.shape[1]
    c = dict(d.coords)
    c["category"] = [str(k + 1) for k in range(kmax)]
    c["category_contrast"] = [str(k + 1) for k in range(kmax - 1)]
    for f in d.factors:
        c[f"{f}_contrast"] = [str(i + 1) for i in range(len(d.levels[f]) - 1)]
    if d.groups:
        c["group_contrast"] = [str(i + 1) for i in range(len(d.groups) - 1)]
    return c


def build_categorical(d: Design):
    """The softmax response model (with the joint human component when the design has one)."""
    import pymc as pm
    import pytensor.tensor as pt

    M, Q = len(d.models), len(d.items)
    assert d.counts is not None and d.K_item is not None  # set for every categorical design
    kmax = d.counts.shape[1]
    kc = kmax - 1
    ks = _k_groups(d.K_item)
    Bq = item_bases(d.K_item, kmax)
    lv = live(d)  # (Q, kc)
    centred = centred_choice(d)
    data = categorical_data(d)
    terms = [Term("alpha", ("item",), "item"), Term("model_item", ("model", "item"), "model_item")]
    with pm.Model(coords=_coords(d)) as model:
        ntilde = pm.Data("ntilde", data["ntilde"])
        N = pm.Data("N", data["N"])
        idx_mq = pm.Data("idx_model_item", flat_index(d, ("model", "item")))

        a = pm.Normal("alpha_coef", 0.0, ALPHA_PRIOR, dims=("item", "category_contrast"))
        pm.Deterministic("alpha", pt.sum(a[:, None, :] * Bq, -1), dims=("item", "category"))

        sd_mi = pm.HalfNormal("sd_model_item", SD_PRIOR, dims="model")
        sd_b = sd_mi[:, None, None]
        if centred["model_item"]:
            # each model's opinion on the item, centred on the item's baseline: the likelihood sees the
            # opinion alone, so the baseline is informed through it (no ridge of alpha + deviation)
            base = pm.Normal("model_opinion_coef", mu=pt.where(lv, a, 0.0)[None], sigma=pt.where(lv[None], sd_b, 1.0),
                             dims=("model", "item", "category_contrast"))
            w = base - a[None]
        else:
            z = pm.Normal("z_model_item", 0.0, 1.0, dims=("model", "item", "category_contrast"))
            w = sd_b * z
            base = a[None] + w
        pm.Deterministic("model_item", pt.sum(w[:, :, None, :] * Bq[None], -1), dims=("model", "item", "category"))
        c = base.reshape((M * Q, kc))[idx_mq]  # (cells, kc)

        for f in d.factors:
            L = len(d.levels[f])
            H = basis(L)  # (L, L-1)
            dims: tuple[str, ...] = ("model", "item", f"{f}_contrast", "category_contrast")
            sd_f = pm.HalfNormal(f"sd_{f}", SD_PRIOR, dims="model")
            sd_fb = sd_f[:, None, None, None]
            if centred[f]:
                coef = pm.Normal(f"u_{f}_coef", 0.0, pt.where(lv[None, :, None, :], sd_fb, 1.0), dims=dims)
            else:
                coef = sd_fb * pm.Normal(f"z_u_{f}", 0.0, 1.0, dims=dims)
            U = pt.tensordot(coef, H.T, axes=[[2], [0]]).transpose(0, 1, 3, 2)  # (M, Q, L, kc)
            idx = pm.Data(f"idx_model_item_{f}", flat_index(d, ("model", "item", f)))
            c = c + U.reshape((M * Q * L, kc))[idx]
            terms.append(Term(f"u_{f}", ("model", "item", f), f, f))

        ll = pt.sum(ntilde * c) - _lse_total(c, N, d.K_item[d.idx["item"]], ks, "cells")

        if d.human_counts is not None:
            C = len(d.groups)
            Hc = basis(C)  # (C, C-1)
            h_nt = pm.Data("h_ntilde", data["h_ntilde"])
            hN = pm.Data("hN", data["hN"])
            sd_gi = pm.HalfNormal("sd_group_item", SD_PRIOR)
            dims = ("group_contrast", "item", "category_contrast")
            if centred["group_item"]:
                y = pm.Normal("group_item_coef", 0.0, pt.where(lv[None], sd_gi, 1.0), dims=dims)
            else:
                y = sd_gi * pm.Normal("z_group_item", 0.0, 1.0, dims=dims)
            gi = pt.tensordot(Hc, y, axes=[[1], [0]])  # (C, Q, kc), zero-sum over groups
            pm.Deterministic("group_item", pt.sum(gi[:, :, None, :] * Bq[None], -1), dims=("group", "item", "category"))
            theta = a[None] + gi
            ll = ll + pt.sum(h_nt * theta) - _lse_total(theta, hN, d.K_item, ks, "items")
        pm.Potential("loglik", ll)
    d.terms = terms
    return model


def _lse_total(c, N, K_rows, ks, axis_name: str):
    """``sum N * logsumexp(B_K c[:K-1])`` per scale length K, over the K real options only.

    ``c`` is (cells, kc) (``axis_name="cells"``) or (groups, items, kc) (``"items"``: K per item on axis 1).
    """
    import pymc as pm
    import pytensor.tensor as pt

    total = 0.0
    for K in ks:
        Bk = basis(K)
        if len(ks) == 1:
            ck, Nk = c[..., : K - 1], N
        else:
            sel = np.flatnonzero(K_rows == K)
            ck, Nk = (c[sel, : K - 1], N[sel]) if axis_name == "cells" else (c[:, sel, : K - 1], N[:, sel])
        eta = pt.tensordot(ck, Bk.T, axes=[[ck.ndim - 1], [0]])
        total = total + pt.sum(Nk * pm.math.logsumexp(eta, axis=-1))
    return total


# --------------------------------------------------------------------------------------------- numpy mirror
def coefficient_tables(d: Design, get, has) -> dict[str, np.ndarray]:
    """Posterior draws of the contrast coordinates, from the stored variables.

    ``get(name)`` returns draws (S, ...) and ``has(name)`` says whether a variable exists. Returns
    ``base`` (S, M, Q, kc) = alpha + model_item, ``alpha`` (S, Q, kc), one ``u_<f>`` (S, M, Q, L, kc) per
    factor and, with humans, ``theta`` (S, C, Q, kc).
    """
    a = get("alpha_coef")
    out = {"alpha": a}
    if has("model_opinion_coef"):
        out["base"] = get("model_opinion_coef")
    else:
        out["base"] = a[:, None] + get("sd_model_item")[:, :, None, None] * get("z_model_item")
    for f in d.factors:
        coef = get(f"u_{f}_coef") if has(f"u_{f}_coef") else get(f"sd_{f}")[:, :, None, None, None] * get(f"z_u_{f}")
        out[f"u_{f}"] = np.einsum("smqij,li->smqlj", coef, basis(len(d.levels[f])))
    if has("sd_group_item"):
        y = get("group_item_coef") if has("group_item_coef") else get("sd_group_item")[:, None, None, None] * get(
            "z_group_item")
        out["theta"] = a[:, None] + np.einsum("ci,siqj->scqj", basis(len(d.groups)), y)
    return out


def cell_coefficients(d: Design, tables: dict[str, np.ndarray]) -> np.ndarray:
    """Logits of every cell in contrast coordinates, (S, cells, kc)."""
    m, q = d.idx["model"], d.idx["item"]
    c = tables["base"][:, m, q]
    for f in d.factors:
        c = c + tables[f"u_{f}"][:, m, q, d.idx[f]]
    return c


def softmax_probs(coef: np.ndarray, K_rows: np.ndarray, kmax: int, axis: int = -2) -> np.ndarray:
    """Option probabilities (..., rows, Kmax) from coordinates (..., rows, kc); 0 beyond each row's K.

    ``K_rows`` gives K per row along ``axis`` (the rows axis of ``coef``).
    """
    coef = np.moveaxis(coef, axis, -2)
    out = np.zeros((*coef.shape[:-1], kmax))
    for K in _k_groups(K_rows):
        sel = K_rows == K
        eta = coef[..., sel, : K - 1] @ basis(K).T
        eta = eta - eta.max(-1, keepdims=True)
        p = np.exp(eta)
        out[..., sel, :K] = p / p.sum(-1, keepdims=True)
    return np.moveaxis(out, -2, axis)
