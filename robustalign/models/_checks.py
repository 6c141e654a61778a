"""Model checks that users of ArviZ expect: pointwise log-likelihood (for ``az.loo``) and posterior predictive.

The graphs add the likelihood as one ``pm.Potential`` of sufficient statistics (fast, but invisible to
``pm.compute_log_likelihood``), so both groups are computed here, in numpy, from the stored posterior.

The pointwise unit is the **design cell** (model x item x factor levels): its full log-likelihood,
constants included, is

* response models: the multinomial ``log N! - sum_k log n_k! + sum_k n_k log p_k`` of the cell's answer
  counts, with ``p`` the cell's option probabilities (cumulative logit or softmax);
* score model: ``sum_i log Beta(y_i | mu phi, (1 - mu) phi)`` over the cell's (squeezed) scores, which
  the stored sufficient statistics give exactly.

Leaving one cell out is the question "how well is a new presentation of this model on this item
predicted", which is what model comparison between crossed-effects structures is about. Human cells of a
joint fit can be added as a second variable (``human``); ``az.loo(idata)`` then needs ``var_name="y"``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, gammaln

from robustalign.models._design import cell_predictor

#: Default cap on stored values per variable (chains x draws x cells); beyond it draws are thinned
#: evenly within each chain (ESS-based ``reff`` in ``az.loo`` stays valid for thinned chains).
MAX_VALUES = 20_000_000


def _draws(fit, name: str, keep: np.ndarray) -> np.ndarray:
    x = np.asarray(fit.idata["posterior"][name].values, float)[:, keep]
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _keep(fit, n_cells: int, max_values: int) -> np.ndarray:
    post = fit.idata["posterior"]
    C, D = post.sizes["chain"], post.sizes["draw"]
    per_chain = max(1, min(D, max_values // max(1, C * n_cells)))
    return np.unique(np.linspace(0, D - 1, per_chain).round().astype(int))


def _ordinal_probs(tau: np.ndarray, eta: np.ndarray, K: int) -> np.ndarray:
    """Option probabilities (S, cells, K) of the cumulative logit with cutpoints (S, K-1)."""
    F = expit(tau[:, None, :] - eta[..., None])  # P(y <= k)
    F = np.concatenate([np.zeros_like(F[..., :1]), F, np.ones_like(F[..., :1])], axis=-1)
    return np.clip(np.diff(F, axis=-1), 1e-300, 1.0)


def cell_probabilities(fit, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Option probabilities per kept draw: model cells (S, cells, Kmax), humans (S, C, Q, Kmax) or None."""
    d = fit.design
    kmax = d.counts.shape[1]
    if d.kind == "categorical":
        from robustalign.models._categorical import cell_coefficients, coefficient_tables, softmax_probs

        tables = coefficient_tables(d, lambda n: _draws(fit, n, keep), fit._has)
        p_h = softmax_probs(tables["theta"], d.K_item, kmax) if "theta" in tables else None
        return softmax_probs(cell_coefficients(d, tables), d.K_item[d.idx["item"]], kmax), p_h
    eta = cell_predictor(d, {t.name: _draws(fit, t.name, keep) for t in d.terms}, lead=1)
    p = np.zeros((*eta.shape, kmax))
    K_cell = d.K_item[d.idx["item"]]
    for K in np.unique(K_cell):
        sel = K_cell == K
        name = f"model_cutpoints_K{K}" if fit._has(f"model_cutpoints_K{K}") else f"cutpoints_K{K}"
        p[:, sel, :K] = _ordinal_probs(_draws(fit, name, keep), eta[:, sel], int(K))
    p_h = None
    if d.human_counts is not None and fit._has("mu_group"):
        theta = (_draws(fit, "mu_group", keep)[:, :, None] + _draws(fit, "group_item", keep)
                 + _draws(fit, "item_effect", keep)[:, None, :])  # (S, C, Q)
        p_h = np.zeros((*theta.shape, kmax))
        for K in np.unique(d.K_item):
            sel = d.K_item == K
            tau = _draws(fit, f"cutpoints_K{K}", keep)
            S, C, Qk = theta[:, :, sel].shape
            p_h[:, :, sel, :K] = _ordinal_probs(tau, theta[:, :, sel].reshape(S, C * Qk), int(K)).reshape(
                S, C, Qk, int(K))
    return p, p_h


def _multinomial_loglik(counts: np.ndarray, p: np.ndarray) -> np.ndarray:
    const = gammaln(counts.sum(-1) + 1) - gammaln(counts + 1).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return const + terms.sum(-1)


def _score_params(fit, keep):
    d = fit.design
    eta = cell_predictor(d, {t.name: _draws(fit, t.name, keep) for t in d.terms}, lead=1)
    mu = expit(eta + _draws(fit, "intercept", keep)[:, None])
    phi = _draws(fit, "phi", keep)[:, None]
    return mu * phi, (1.0 - mu) * phi


def pointwise_loglik(fit, *, max_values: int = MAX_VALUES, humans: bool = False) -> dict[str, np.ndarray]:
    """Log-likelihood per cell, ``{"y": (chains, draws, cells)[, "human": (chains, draws, groups*items)]}``."""
    d = fit.design
    post = fit.idata["posterior"]
    C = post.sizes["chain"]
    keep = _keep(fit, d.n_cells, max_values)
    if d.kind == "score":
        a, b = _score_params(fit, keep)
        ll = ((a - 1.0) * d.sum_log + (b - 1.0) * d.sum_log1m
              - d.n * (gammaln(a) + gammaln(b) - gammaln(a + b)))
        return {"y": ll.reshape(C, len(keep), -1)}
    p, p_h = cell_probabilities(fit, keep)
    out = {"y": _multinomial_loglik(d.counts, p).reshape(C, len(keep), -1)}
    if humans and p_h is not None:
        hc = np.nan_to_num(d.human_counts)
        ll_h = _multinomial_loglik(hc[None], p_h).reshape(len(p_h), -1)
        asked = (d.human_n > 0).ravel()
        out["human"] = ll_h[:, asked].reshape(C, len(keep), -1)
    return out


def _dataset(arrays: dict[str, np.ndarray], dims: dict[str, str], draws: np.ndarray):
    import xarray as xr

    n_chains = next(iter(arrays.values())).shape[0]
    return xr.Dataset({k: (("chain", "draw", dims[k]), v) for k, v in arrays.items()},
                      coords={"chain": np.arange(n_chains), "draw": draws})


def add_log_likelihood(fit, *, max_values: int = MAX_VALUES, humans: bool = False):
    """Store the pointwise log-likelihood as the ``log_likelihood`` group of ``fit.idata`` (for ``az.loo``).

    With ``humans=True`` a joint fit's human cells are a second variable, ``human``; ``az.loo`` then
    needs ``var_name``.
    """
    ll = pointwise_loglik(fit, max_values=max_values, humans=humans)
    keep = _keep(fit, fit.design.n_cells, max_values)
    draws = np.asarray(fit.idata["posterior"]["draw"].values)[keep]
    fit.idata["log_likelihood"] = _dataset(ll, {"y": "cell", "human": "human_cell"}, draws)
    return fit.idata


def add_posterior_predictive(fit, *, gen, n_draws: int = 200):
    """Replicated data per cell from ``n_draws`` posterior draws per chain, with the observed values.

    Stored as ``posterior_predictive`` and ``observed_data`` groups, both with variable ``y`` on dim
    ``cell``: the cell's **mean answer** (mean position on [0, 1] for response models; for the score
    model the geometric mean of the squeezed scores, which its sufficient statistics keep), the statistic the stability and alignment estimands are built from. ``gen`` is
    the Generator of one stream (models/ may draw).
    """
    d = fit.design
    post = fit.idata["posterior"]
    C, D = post.sizes["chain"], post.sizes["draw"]
    keep = np.unique(np.linspace(0, D - 1, min(D, n_draws)).round().astype(int))
    S = C * len(keep)
    if d.kind == "score":
        a, b = _score_params(fit, keep)
        n = d.n.astype(int)
        rep_stat = np.empty((S, d.n_cells))
        for j in range(d.n_cells):  # cells have their own sizes; draws vectorised over posterior draws
            y = gen.beta(a[:, j, None], b[:, j, None], size=(S, n[j]))
            rep_stat[:, j] = np.exp(np.log(np.clip(y, 1e-300, None)).mean(-1))
        # the design keeps sufficient statistics, so the cell statistic is the geometric mean score
        obs_stat = np.exp(d.sum_log / np.maximum(d.n, 1))
    else:
        p, _ = cell_probabilities(fit, keep)
        N = d.counts.sum(-1).astype(int)
        K_cell = d.K_item[d.idx["item"]]
        pos = np.arange(p.shape[-1])[None, :] / np.maximum(K_cell[:, None] - 1, 1)  # (cells, Kmax)
        counts = gen.multinomial(N[None, :], p / p.sum(-1, keepdims=True))  # (S, cells, Kmax)
        rep_stat = (counts * pos).sum(-1) / np.maximum(N, 1)
        obs_stat = (d.counts * pos).sum(-1) / np.maximum(N, 1)
    import xarray as xr

    draws = np.asarray(post["draw"].values)[keep]
    fit.idata["posterior_predictive"] = _dataset({"y": rep_stat.reshape(C, len(keep), -1)}, {"y": "cell"}, draws)
    fit.idata["observed_data"] = xr.Dataset({"y": (("cell",), obs_stat)})
    return fit.idata
