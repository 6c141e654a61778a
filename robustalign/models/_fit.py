"""Public fit functions: build the graph, sample, gate, and wrap the result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from robustalign._rng import RngLike
from robustalign.models._design import ordinal_design, score_design
from robustalign.models._result import BayesFit
from robustalign.models._sampling import (
    attach_provenance,
    check_args,
    diagnose,
    gate_message,
    near_miss,
    resolve_backend,
    sample,
    warn_if_failed,
)

if TYPE_CHECKING:
    import pandas as pd
    import pymc as pm

    from robustalign.schema import Reference, Responses

#: Fits with at most this many chains x draws x cells store their pointwise log-likelihood (for
#: ``az.loo``) at once; larger ones on request (``BayesFit.add_log_likelihood``).
AUTO_LOGLIK_VALUES = 5_000_000

#: The effect tables (``Design.terms``) of each compiled model structure, by cache key.
_TERMS: dict = {}


def _run(d, build, what: str, *, backend, max_draws, options=(), extend_chains=None, **sampling) -> BayesFit:
    """Build the graph for design ``d``, sample it with explicit settings, gate it, wrap the result.

    ``options`` are the arguments that shaped ``d`` besides the data: with the data hash they key the
    process's compiled-model cache (``_sampling.compiled_for``).
    """
    backend = resolve_backend(backend)
    if extend_chains is not None and (isinstance(extend_chains, bool) or not isinstance(extend_chains, int)
                                      or extend_chains < 0):
        raise ValueError(f"`extend_chains` must be an integer >= 0 (0: never extend); got {extend_chains!r}.")
    # the fused likelihood kernel is numba (and Python) only: JAX gets the same likelihood from
    # PyTensor operations
    fused = not (backend == "jax" and d.kind == "ordinal")

    def model():
        m = build(d) if fused else build(d, fused=False)
        _TERMS[key] = list(d.terms)  # a later fit that reuses the compiled model gets the same terms
        return m

    key = (f"{build.__module__}.{build.__qualname__}", fused, d.kind, d.data_hash, d.cutpoints, repr(options))
    idata, prov, _ = sample(model, backend=backend, cache_key=key, **sampling)
    if not d.terms and key in _TERMS:  # the compiled model was reused: the graph builder, which records
        d.terms = list(_TERMS[key])    # the effect tables of the linear predictor, did not run for this design
    if d.kind == "score":
        prov["squeeze_n"] = d.squeeze_n
    diag, overall = diagnose(idata)
    extra = sampling["chains"] if extend_chains is None else extend_chains
    if extra and near_miss(overall):
        idata, prov, (diag, overall) = _extend(idata, prov, overall, model, key, backend, extra, sampling)
        what = f"{what}, with {extra} more chains after missing the gate on R-hat alone,"
    prov.update({"data_hash": d.data_hash, "n_cells": int(d.n_cells), "n_responses": int(d.n_responses),
                 "model": d.kind, "factors": list(d.factors), "cutpoints": d.cutpoints, "converged": overall["converged"],
                 "gate": {k: overall[k] for k in ("max_r_hat", "max_r_hat_each", "max_r_hat_table",
                                                  "max_share_r_hat_above", "max_spread_r_hat", "rhat_passed",
                                                  "min_ess_bulk", "min_ess_tail", "divergences", "min_e_bfmi")}})
    attach_provenance(idata, prov)
    fit = BayesFit(idata=idata, design=d, diagnostics=diag, gate=overall, provenance=prov, max_draws=max_draws)
    post = idata["posterior"]
    if post.sizes["chain"] * post.sizes["draw"] * d.n_cells <= AUTO_LOGLIK_VALUES:  # ~40 MB at most
        fit.add_log_likelihood()
    warn_if_failed(overall, what, stacklevel=4)
    return fit


def _extend(idata, prov: dict, first: dict, model, key, backend, extra: int, sampling: dict):
    """Sample ``extra`` more chains of the same compiled model (their own warm-up, a seed keyed from the
    user's) and judge the gate on all chains together (docs/bayesian.md, section 3)."""
    from robustalign.models._sampling import concat_chains
    from robustalign.resampling import keyed_stream

    more = dict(sampling, chains=int(extra), rng=keyed_stream(sampling.get("rng"), "models.gate-extension"))
    idata2, prov2, _ = sample(model, backend=backend, cache_key=key, **more)
    idata = concat_chains(idata, idata2)
    diag, overall = diagnose(idata)
    prov = dict(prov)
    prov["extension"] = {
        "reason": "the gate failed on R-hat alone (" + gate_message(first) + "), every other check passed",
        "first_gate": {k: first[k] for k in ("max_r_hat", "max_r_hat_each", "max_r_hat_table", "max_share_r_hat_above",
                                             "max_spread_r_hat", "min_ess_bulk", "min_ess_tail", "converged")},
        "chains_added": int(extra), "sampler_seed": prov2["sampler_seed"], "seed": prov2["seed"],
        "sample_s": prov2.get("sample_s"), "converged_after": overall["converged"]}
    prov["chains"] = int(prov["chains"]) + int(extra)
    prov["sample_s"] = round(prov.get("sample_s", 0.0) + prov2.get("sample_s", 0.0), 3)
    return idata, prov, (diag, overall)


def fit_response_model(
    responses: Responses,
    reference: Reference | None = None,
    *,
    factors: Sequence[str] | None = None,
    interactions: bool | Mapping[str, bool] = True,
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    rng: RngLike = None,
    sampler: str = "nutpie",
    target_accept: float = 0.8,
    backend: str = "auto",
    cores: int | None = None,
    human_n: float | None = None,
    min_df_scale: int = 4,
    max_draws: int = 1000,
    adaptation: str = "diag",
    cutpoints: str = "shared",
    extend_chains: int | None = None,
) -> BayesFit:
    """Fit the cumulative-logit response model with crossed effects (and humans, if given).

    The model (METHODS 3.3, S1) on answer counts per design cell (model x item x factor levels):

    ``P(y <= k) = logistic(tau_{K,k} - eta)``, with
    ``eta = mu_model[m] + item[q] + model_item[m, q] + sum_f (beta_f[l] + model_x_f[m, l] + item_x_f[q, l])``.

    Cutpoints per scale length ``K``: mean zero with Normal log-gaps (no humans) or the induced-Dirichlet
    prior (with humans); all SDs are HalfNormal(1); design-factor population effects are fixed
    zero-sum effects; parametrisations (centred or not) follow the data (docs/bayesian.md). With ``reference``, human
    counts per item x group enter on the same cutpoints and item locations,
    ``theta[c, q] = mu_group[c] + group_item[c, q] + item[q]``, so format effects and between-group
    differences are on one scale (:meth:`BayesFit.factor_vs_human`).

    Parameters
    ----------
    responses : Responses
        Choice (or probability) responses; ``sample``-like replicate columns are not factors.
    reference : Reference, optional
        Human answer shares with respondent counts (or pass ``human_n``).
    factors : list of str, optional
        Design factors to model (default: all of the data's factors with more than one level).
    interactions : bool or dict
        Model x factor and item x factor interactions (all, none, or per factor).
    draws, tune, chains : int
        Passed to the sampler explicitly (per chain).
    rng : int, Generator or None
        Seed; the record and the integer handed to the sampler are kept in ``provenance``.
    sampler : {"nutpie", "pymc"}
    target_accept : float
        NUTS's target acceptance rate (0.8, nutpie's and PyMC's default). At 720,000 responses it takes 24-25
        steps per draw against 31 at 0.9, with 0 divergences in 10 seeds (docs/bayesian.md, section 6). A
        fit with divergences fails the gate; raise it (0.9-0.95) for such a model.
    backend : {"auto", "numba", "jax"}
        Compiler for nutpie; ``auto`` is numba, which runs the fused likelihood kernel on dense
        designs (docs/bayesian.md, section 6: 5x faster per gradient than the PyTensor graph, which JAX
        compiles instead).
    human_n : float, optional
        Respondents per human cell when the reference does not record them.
    min_df_scale : int
        An effect table with fewer free contrasts than this (e.g. a 2- or 3-level factor's population
        effect) gets a fixed unit-scale prior instead of a learned SD.
    max_draws : int
        Draws used for derived quantities (alignment, ranks); thinned evenly.
    cutpoints : {"shared", "offset"}
        ``"shared"``: models and humans use one set of cutpoints per scale length (measurement
        invariance). ``"offset"``: the sensitivity model of METHODS 3.3, in which the models' cutpoint
        gaps are the human gaps times ``exp(cutpoint_offset)``, ``cutpoint_offset ~ N(0, 0.5)`` per gap
        (a uniform shift is the model mean, so only the spacing can differ; needs ``reference`` and
        scales of 3 or more options). Compare ``factor_vs_human()`` between the two fits.
    adaptation : {"diag", "low_rank", ...}
        nutpie's mass-matrix adaptation (recorded in ``provenance``). ``"diag"`` was faster than
        ``"low_rank"`` on the benchmark workload (92 s vs 398 s of sampling at 14,400 cells).
    extend_chains : int, optional
        When the fit misses the gate on R-hat alone (every ESS >= 400, no divergence, E-BFMI fine, no R-hat
        above 1.05), this many more chains (default: ``chains``; 0 turns it off) are sampled once, with
        their own warm-up and a seed keyed from ``rng``, and the gate judges all chains together, with the
        same thresholds. ``provenance["extension"]`` records why, the first verdict and the added seed
        (docs/bayesian.md, section 3: a simulation shows it settles R-hat's noise and still fails chains
        that disagree).

    Returns
    -------
    BayesFit
        Warns :class:`robustalign.ConvergenceWarning` when the gate fails.

    Notes
    -----
    When every item is nominal (``Scale.ordinal`` False) the model is the categorical (softmax) model
    instead (``fit.kind == "categorical"``; :mod:`robustalign.models._categorical`):
    ``eta[m, q, g, k] = alpha[q, k] + model_item[m, q, k] + sum_f u_f[m, q, l_f(g), k]`` with zero-sum
    effects over the options, one SD per model for ``model_item`` and for each factor, and human counts on
    ``theta[c, q, k] = alpha[q, k] + group_item[c, q, k]``. ``interactions`` and ``min_df_scale`` do not
    apply to it. Ordinal and nominal items mixed in one call raise a SchemaError: fit them separately.
    """
    check_args(draws, tune, chains, sampler, target_accept)
    if cutpoints not in ("shared", "offset"):
        raise ValueError(f"`cutpoints` must be 'shared' or 'offset'; got {cutpoints!r}.")
    if cutpoints == "offset" and reference is None:
        raise ValueError("`cutpoints='offset'` lets the models' cutpoints differ from the humans'; it needs "
                         "`reference=` (without humans the cutpoints are the models' own already).")
    d = ordinal_design(responses, reference, factors=factors, interactions=interactions,
                       min_df_scale=min_df_scale, human_n=human_n)
    if cutpoints == "offset":
        if d.kind != "ordinal" or d.K_item is None or d.K_item.max() < 3:
            raise ValueError("`cutpoints='offset'` needs ordinal items with 3 or more options: a 2-option scale "
                             "has one cutpoint, whose shift is the model mean.")
        d.cutpoints = "offset"
    options = (factors, interactions, min_df_scale, human_n)
    return _run(d, _response_builder(d), "The response model", backend=backend, max_draws=max_draws,
                options=options, extend_chains=extend_chains, draws=draws,
                tune=tune, chains=chains, rng=rng, sampler=sampler, target_accept=target_accept, cores=cores,
                adaptation=adaptation)


def fit_score_model(
    responses: Responses | pd.DataFrame,
    reference: Reference | None = None,
    *,
    factors: Sequence[str] | None = None,
    interactions: bool | Mapping[str, bool] = True,
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    rng: RngLike = None,
    sampler: str = "nutpie",
    target_accept: float = 0.8,
    backend: str = "auto",
    cores: int | None = None,
    squeeze_n: float | None = None,
    min_df_scale: int = 4,
    max_draws: int = 1000,
    adaptation: str = "diag",
    extend_chains: int | None = None,
) -> BayesFit:
    """Fit the Beta score model (METHODS 3.4) to answers that are scores in [0, 1].

    ``y ~ Beta(mu phi, (1 - mu) phi)`` after the squeeze ``(y (N - 1) + 1/2) / N``, with
    ``logit mu = intercept + eta`` and the same crossed effects as :func:`fit_response_model`;
    ``phi ~ Gamma(2, 0.1)``. Fitted on ``n``, ``sum log y`` and ``sum log(1 - y)`` per cell.

    ``responses`` is a score :class:`~robustalign.Responses` or a long DataFrame in the data contract;
    ``reference`` (optional) gives human scores per item x group for :meth:`BayesFit.alignment`.
    ``squeeze_n`` sets ``N`` in the squeeze (default: the number of scores). Other parameters as in
    :func:`fit_response_model`.
    """
    from robustalign.models._graph import build_score

    check_args(draws, tune, chains, sampler, target_accept)
    d = score_design(responses, reference, factors=factors, interactions=interactions,
                     min_df_scale=min_df_scale, squeeze_n=squeeze_n)
    return _run(d, build_score, "The score model", backend=backend, max_draws=max_draws,
                options=(factors, interactions, min_df_scale, squeeze_n), extend_chains=extend_chains, draws=draws,
                tune=tune, chains=chains, rng=rng, sampler=sampler, target_accept=target_accept, cores=cores,
                adaptation=adaptation)


def _response_builder(d):
    """The graph builder for a response design: cumulative logit, or softmax for nominal items."""
    if d.kind == "categorical":
        from robustalign.models._categorical import build_categorical

        return build_categorical
    from robustalign.models._graph import build_ordinal

    return build_ordinal


def build_response_model(responses: Responses, reference: Reference | None = None, **kwargs: Any) -> pm.Model:
    """The PyMC model of :func:`fit_response_model` without sampling (for inspection)."""
    d = ordinal_design(responses, reference, **kwargs)
    return _response_builder(d)(d)


def build_score_model(responses: Responses | pd.DataFrame, reference: Reference | None = None,
                      **kwargs: Any) -> pm.Model:
    """The PyMC model of :func:`fit_score_model` without sampling."""
    from robustalign.models._graph import build_score

    return build_score(score_design(responses, reference, **kwargs))
