"""Simulated responses and references with known truth for every design factor.

The generator follows the cumulative-logit model of METHODS section 3.3 (model S1), so the
Bayesian models can be checked for recovery and the resampling engine for calibration:

.. math::

    P(y \\le k) = \\operatorname{logistic}(\\tau_{q,k} - \\eta), \\quad
    \\eta_{m,q,f} = \\mu_m + a_{m,q} + \\sum_j \\beta^{(j)}_{m,\\ell_j(f)} + u_{m,q,f}
                   + \\gamma_m (\\theta_{c,q} - \\bar\\theta_q)\\,[\\text{steered to } c]

Humans in group ``c`` answer item ``q`` with latent location
:math:`\\theta_{c,q} = \\mu_c + a_{c,q}` on the same cutpoints, so format effects and
between-country differences share one scale. Answers are sampled per design cell
(``n_samples`` draws: sampling noise) and reported *as shown*: ``answer_position`` under the
recorded ``option_order``, which exercises the canonical mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._rng import RngLike, RngRecord, as_generator

if TYPE_CHECKING:
    from robustalign.schema import Reference, Responses

__all__ = ["SimulatedData", "simulate", "simulate_persona"]


@dataclass
class SimulatedData:
    """A simulated data set and the truth that generated it.

    Attributes
    ----------
    responses : DataFrame
        Raw contract form: ``model, item, <factors>, option_order, sample, answer_position``.
    reference : DataFrame
        ``item, group, option, share, n`` (shares are sampled from ``n`` respondents).
    scales : DataFrame
        ``item, options, labels, ordinal``.
    truth : dict
        Every generating value: standard deviations, effects per model and level, steering slopes,
        human locations, population shares.
    rng : RngRecord
    """

    responses: pd.DataFrame
    reference: pd.DataFrame
    scales: pd.DataFrame
    truth: dict = field(repr=False)
    rng: RngRecord | None = None

    def load(self, **kwargs: Any) -> tuple[Responses, Reference]:
        """Validate through the data contract: returns ``(Responses, Reference)``."""
        from robustalign.schema import make_reference, make_responses

        ref = make_reference(self.reference, self.scales)
        return make_responses(self.responses, ref, **kwargs), ref


def _ordinal_probs(tau: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Category probabilities of a cumulative logit; tau (..., K-1), eta (...) -> (..., K)."""
    cdf = 1.0 / (1.0 + np.exp(-(tau - eta[..., None])))
    cdf = np.concatenate([np.zeros(cdf.shape[:-1] + (1,)), cdf, np.ones(cdf.shape[:-1] + (1,))], axis=-1)
    return np.diff(cdf, axis=-1)


def simulate(
    *,
    n_models: int = 3,
    n_items: int = 40,
    n_groups: int = 6,
    factors: dict[str, int] | None = None,
    n_orders: int = 2,
    n_steer: int = 0,
    n_samples: int = 5,
    K: int = 4,  # noqa: N803
    sd_item: float = 1.0,
    sd_model_item: float = 1.0,
    sd_factor: float | dict[str, float] = 0.3,
    sd_model_factor: float = 0.1,
    sd_item_format: float = 0.2,
    order_effect: float = 0.3,
    sd_group: float = 0.5,
    sd_group_item: float = 0.6,
    steer_slope: float | np.ndarray = 0.8,
    model_gap_ratio: float | np.ndarray = 1.0,
    n_respondents: int = 1000,
    rng: RngLike = None,
) -> SimulatedData:
    """Simulate stored model responses and human references with known truth.

    Parameters
    ----------
    n_models, n_items, n_groups : int
        Models, items (a random sample of an item population) and human groups (countries).
    factors : dict, optional
        Design factors other than option order and steering, name -> number of levels.
        Default ``{"format": 3}``.
    n_orders : int
        1 (canonical order only) or 2 (canonical and reversed, recorded in ``option_order``).
        Reversal shifts the latent location by ``order_effect`` for every model (a primacy bias in
        canonical space).
    n_steer : int
        0 for no steering factor; otherwise ``steer_target`` has levels ``"none"`` and the first
        ``n_steer`` groups. Steering to ``c`` adds ``steer_slope * (theta_cq - mean_c theta_cq)``.
    n_samples : int
        Answers sampled per design cell (temperature > 0 noise).
    K : int
        Options per item (ordinal, codes ``"1".."K"``).
    sd_item, sd_model_item : float
        SD of the shared item location and of each model's item-specific opinion ``a_{m,q}``.
    sd_factor : float or dict
        SD of the population effects of each factor's levels (dict per factor name).
    sd_model_factor : float
        SD of model-specific deviations from the population factor effect.
    sd_item_format : float
        SD of the item x format-cell interaction ``u``.
    sd_group, sd_group_item : float
        SD of human group locations and of group x item deviations.
    model_gap_ratio : float or array of K - 2
        The models' cutpoint gaps are the humans' times this ratio (same mean cutpoint): below 1 the
        models use the extreme options more than humans at the same latent location (no measurement
        invariance). 1 means models and humans share the cutpoints.
    n_respondents : int
        Respondents per human item x group (reference shares are sampled, ``n`` recorded).
    rng : int, Generator or None
        Seed; recorded in the result.

    Returns
    -------
    SimulatedData
    """
    factors = {"format": 3} if factors is None else dict(factors)
    ratio = _check_simulate(n_orders, n_steer, n_groups, K, model_gap_ratio)
    gen, record = as_generator(rng)
    sdf = {f: (sd_factor[f] if isinstance(sd_factor, dict) else sd_factor) for f in factors}
    names = {"models": [f"model_{i + 1}" for i in range(n_models)], "items": [f"q{j + 1:03d}" for j in range(n_items)],
             "groups": [f"C{g + 1:02d}" for g in range(n_groups)], "codes": [str(k + 1) for k in range(K)]}

    # items: cutpoints at logistic quantiles of equal shares, shifted per item
    base_tau = np.log(np.arange(1, K) / (K - np.arange(1, K)))
    item_loc = gen.normal(0, sd_item, n_items)
    tau = base_tau[None, :] - item_loc[:, None]  # (Q, K-1)
    humans = _draw_humans(gen, tau, n_groups, n_items, sd_group, sd_group_item, n_respondents)
    models = _draw_models(gen, n_models, n_items, factors, sdf, sd_model_item, sd_model_factor)
    models["slopes"] = np.broadcast_to(np.asarray(steer_slope, float), (n_models,)).copy()
    steer_levels = ["none", *names["groups"][:n_steer]] if n_steer else ["none"]
    cells = _design_cells(n_models, n_items, factors, n_orders, len(steer_levels))
    eta, u = _cell_locations(gen, cells, models, humans["theta"], n_items, factors, sd_item_format, order_effect)
    raw = np.concatenate([[0.0], np.cumsum(np.diff(base_tau) * ratio)])
    tau_model = (raw - raw.mean() + base_tau.mean())[None, :] - item_loc[:, None]  # (Q, K-1)
    p_cell = _ordinal_probs(tau_model[cells["q"]], eta)  # (cells, K)

    # sample n_samples answers per cell (inverse CDF)
    cdf = np.cumsum(p_cell, axis=1)
    uu = gen.random((len(eta), n_samples))
    canon = (uu[..., None] > cdf[:, None, :-1]).sum(-1)  # (cells, S) canonical index 0..K-1
    reversed_ = np.repeat(cells["o"] == 1, n_samples)
    shown_pos = np.where(reversed_, K - 1 - canon.ravel(), canon.ravel()) + 1
    responses = _responses_frame(cells, names, factors, n_orders, steer_levels if n_steer else None, n_samples,
                                 shown_pos)
    reference, scales = _reference_frames(names, humans["shares"], n_respondents)
    truth = {
        "models": names["models"], "items": names["items"], "groups": names["groups"], "factors": factors,
        "steer_levels": steer_levels, "tau": tau, "tau_model": tau_model, "model_gap_ratio": ratio,
        "mu_model": models["mu"], "a_model_item": models["a"], "beta_pop": models["beta_pop"],
        "beta_model": models["beta"], "order_effect": order_effect, "u_item_format": u,
        "steer_slope": models["slopes"], "mu_group": humans["mu"], "theta_group_item": humans["theta"],
        "p_human": humans["p"],
        "sd": {"item": sd_item, "model_item": sd_model_item, "factor": sdf, "model_factor": sd_model_factor,
               "item_format": sd_item_format, "group": sd_group, "group_item": sd_group_item},
    }
    return SimulatedData(responses, reference, scales, truth, record)


def _check_simulate(n_orders: int, n_steer: int, n_groups: int, K: int,  # noqa: N803
                    model_gap_ratio: float | np.ndarray) -> np.ndarray:
    """Refuse impossible designs; returns the cutpoint-gap ratios (K - 2 of them)."""
    if n_orders not in (1, 2):
        raise ValueError(f"`n_orders` must be 1 or 2; got {n_orders}.")
    if n_steer > n_groups:
        raise ValueError(f"`n_steer` ({n_steer}) cannot exceed `n_groups` ({n_groups}).")
    if K < 2:
        raise ValueError(f"`K` must be at least 2; got {K}.")
    ratio = np.broadcast_to(np.asarray(model_gap_ratio, float), (max(K - 2, 0),))
    if (ratio <= 0).any():
        raise ValueError(f"`model_gap_ratio` must be positive; got {model_gap_ratio}.")
    return ratio


def _draw_humans(gen: np.random.Generator, tau: np.ndarray, n_groups: int, n_items: int, sd_group: float,
                 sd_group_item: float, n_respondents: int) -> dict[str, np.ndarray]:
    """Group locations, group x item deviations and the sampled reference shares."""
    mu_c = gen.normal(0, sd_group, n_groups)
    a_cq = gen.normal(0, sd_group_item, (n_groups, n_items))
    theta = mu_c[:, None] + a_cq  # (C, Q)
    p_human = _ordinal_probs(tau[None], theta)  # (C, Q, K)
    shares = gen.multinomial(n_respondents, p_human) / n_respondents
    return {"mu": mu_c, "theta": theta, "p": p_human, "shares": shares}


def _draw_models(gen: np.random.Generator, n_models: int, n_items: int, factors: dict[str, int],
                 sdf: dict[str, float], sd_model_item: float, sd_model_factor: float) -> dict:
    """Model locations, item opinions and factor effects (population and per model, sum to zero)."""
    mu_m = gen.normal(0, 0.5, n_models)
    a_mq = gen.normal(0, sd_model_item, (n_models, n_items))
    beta_pop = {f: gen.normal(0, sdf[f], L) for f, L in factors.items()}
    beta_pop = {f: b - b.mean() for f, b in beta_pop.items()}  # sum-to-zero population effects
    beta_m = {}
    for f, L in factors.items():
        dev = gen.normal(0, sd_model_factor, (n_models, L))
        beta_m[f] = beta_pop[f][None, :] + dev - dev.mean(1, keepdims=True)
    return {"mu": mu_m, "a": a_mq, "beta_pop": beta_pop, "beta": beta_m}


def _design_cells(n_models: int, n_items: int, factors: dict[str, int], n_orders: int,
                  n_steer_levels: int) -> dict:
    """Flat indices of every design cell: model, item, factor levels, order, steering level."""
    fac_levels = [factors[f] for f in factors]
    shape = (n_models, n_items, *fac_levels, n_orders, n_steer_levels)
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    return {"m": grids[0].ravel(), "q": grids[1].ravel(), "lev": [g.ravel() for g in grids[2: 2 + len(factors)]],
            "o": grids[2 + len(factors)].ravel(), "s": grids[3 + len(factors)].ravel()}


def _cell_locations(gen: np.random.Generator, cells: dict, models: dict, theta: np.ndarray, n_items: int,
                    factors: dict[str, int], sd_item_format: float,
                    order_effect: float) -> tuple[np.ndarray, np.ndarray]:
    """Latent location of every cell and the item x format-cell interaction ``u`` it drew."""
    m_i, q_i, lev, s_i = cells["m"], cells["q"], cells["lev"], cells["s"]
    fac_levels = [factors[f] for f in factors]
    eta = models["mu"][m_i] + models["a"][m_i, q_i]
    for f, li in zip(factors, lev):
        eta = eta + models["beta"][f][m_i, li]
    fmt_cell = np.ravel_multi_index(lev, fac_levels) if factors else np.zeros_like(m_i)
    n_cells_f = int(np.prod(fac_levels)) if factors else 1
    u = gen.normal(0, sd_item_format, (n_items, n_cells_f))
    eta = eta + u[q_i, fmt_cell] + order_effect * (cells["o"] == 1)
    theta_c = theta - theta.mean(0, keepdims=True)  # (C, Q) distinctive deviations
    steered = s_i > 0
    eta[steered] += models["slopes"][m_i[steered]] * theta_c[s_i[steered] - 1, q_i[steered]]
    return eta, u


def _responses_frame(cells: dict, names: dict, factors: dict[str, int], n_orders: int,
                     steer_levels: list[str] | None, n_samples: int, shown_pos: np.ndarray) -> pd.DataFrame:
    """The raw contract form: one row per sampled answer, as shown under its option order."""
    rep = np.repeat
    codes = names["codes"]
    data = {
        "model": pd.Categorical.from_codes(rep(cells["m"], n_samples), names["models"]),
        "item": pd.Categorical.from_codes(rep(cells["q"], n_samples), names["items"]),
    }
    for f, li in zip(factors, cells["lev"]):
        data[f] = pd.Categorical.from_codes(rep(li, n_samples), [f"{f}_{k + 1}" for k in range(factors[f])])
    orders = ["|".join(codes), "|".join(reversed(codes))][:n_orders]
    data["option_order"] = pd.Categorical.from_codes(rep(cells["o"], n_samples), orders)
    if steer_levels is not None:
        data["steer_target"] = pd.Categorical.from_codes(rep(cells["s"], n_samples), steer_levels)
    data["sample"] = np.tile(np.arange(n_samples), len(cells["m"]))
    data["answer_position"] = shown_pos
    return pd.DataFrame(data)


def _reference_frames(names: dict, shares: np.ndarray, n_respondents: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference (``item, group, option, share, n``) and the scales table."""
    items, groups, codes = names["items"], names["groups"], names["codes"]
    gi, qi, ki = np.meshgrid(np.arange(len(groups)), np.arange(len(items)), np.arange(len(codes)), indexing="ij")
    reference = pd.DataFrame({"item": np.array(items)[qi.ravel()], "group": np.array(groups)[gi.ravel()],
                              "option": np.array(codes)[ki.ravel()], "share": shares.ravel(), "n": n_respondents})
    scales = pd.DataFrame(
        {"item": items, "options": "|".join(codes), "labels": "|".join(f"option {c}" for c in codes), "ordinal": True}
    )
    return reference, scales


def _persona_types(n: int) -> np.ndarray:
    return np.array([-1.0, 0.0, 1.0])[np.arange(n) % 3]


def simulate_persona(
    *,
    n_respondents: tuple[int, ...] = (60, 60),
    n_items: int = 20,
    persona_use: dict[str, float] | None = None,
    n_samples: int = 5,
    K: int = 4,  # noqa: N803
    sd_type: float = 1.2,
    sd_group_item: float = 0.6,
    sd_model_item: float = 0.5,
    native_error_ratio: float = 0.5,
    no_persona: bool = True,
    n_truth_items: int = 20000,
    rng: RngLike = None,
) -> SimulatedData:
    """A persona experiment with known truth: models role-play respondents of two (or more) countries.

    Respondent ``r`` of country ``c`` has a type :math:`t_r \\in \\{-1, 0, 1\\}` (the attribute
    ``age_group``: young, middle, old, in equal thirds) and answers item ``q`` from a cumulative logit
    at :math:`\\theta_{cq} + s\\,t_r` with :math:`\\theta_{cq} = \\mu_c + a_{cq}`. A model role-playing
    ``r`` answers at :math:`\\theta_{cq} + w_m s\\,t_r + \\lambda_\\ell e_{mq}`: ``w_m`` (``persona_use``)
    is how much of the persona it uses, :math:`e_{mq} \\sim N(0, \\text{sd\\_model\\_item})` its item
    errors, :math:`\\lambda_\\ell` 1 in ``english`` and ``native_error_ratio`` in the ``native`` language.
    Rows without a persona (``persona`` empty) answer at :math:`\\bar\\theta_q + e_{mq}`.

    Returns
    -------
    SimulatedData
        ``responses`` (``model, item, language, persona, sample, answer``), ``reference`` (the
        respondent table, wide: ``respondent, group, age_group`` and one column per item), ``scales``
        and ``truth``: ``agreement`` and ``agreement_group_baseline`` per (model, language, country) over a
        population of ``n_truth_items`` new items and respondents, and their difference ``gain``.
    """
    use = {"uses_persona": 0.6, "ignores_persona": 0.0} if persona_use is None else dict(persona_use)
    gen, record = as_generator(rng)
    n_groups = len(n_respondents)
    groups = [f"C{g + 1}" for g in range(n_groups)]
    codes = [str(k + 1) for k in range(K)]
    items = [f"q{j + 1:03d}" for j in range(n_items)]
    base_tau = np.log(np.arange(1, K) / (K - np.arange(1, K)))
    mu_c = np.linspace(-0.5, 0.5, n_groups)
    langs = {"english": 1.0, "native": native_error_ratio}

    def draw_items(n):
        loc = gen.normal(0, 1.0, n)
        return base_tau[None, :] - loc[:, None], mu_c[:, None] + gen.normal(0, sd_group_item, (n_groups, n)), \
            gen.normal(0, sd_model_item, (len(use), n))

    tau, theta, e = draw_items(n_items)
    grp = np.repeat(np.arange(n_groups), n_respondents)
    typ = np.concatenate([gen.permutation(_persona_types(n)) for n in n_respondents])
    people = [f"{groups[g]}-{i + 1:03d}" for g, i in zip(grp, np.concatenate([np.arange(n) for n in n_respondents]))]
    p_resp = _ordinal_probs(tau[None], theta[grp] + sd_type * typ[:, None])  # (R, Q, K)
    cdf = np.cumsum(p_resp, -1)
    answers = (gen.random(p_resp.shape[:2])[..., None] > cdf[..., :-1]).sum(-1)
    rows = []
    for m, (model, w) in enumerate(use.items()):
        for lang, lam in langs.items():
            eta = theta[grp] + w * sd_type * typ[:, None] + lam * e[m][None, :]
            p = _ordinal_probs(tau[None], eta)
            draws = (gen.random((*p.shape[:2], n_samples))[..., None] > np.cumsum(p, -1)[:, :, None, :-1]).sum(-1)
            r_i, q_i, s_i = np.meshgrid(np.arange(len(people)), np.arange(n_items), np.arange(n_samples),
                                        indexing="ij")
            rows.append(pd.DataFrame({"model": model, "item": np.array(items)[q_i.ravel()], "language": lang,
                                      "persona": np.array(people)[r_i.ravel()], "sample": s_i.ravel(),
                                      "answer": np.array(codes)[draws.ravel()]}))
            if no_persona:
                p0 = _ordinal_probs(tau, theta.mean(0) + lam * e[m])
                d0 = (gen.random((n_items, n_samples))[..., None] > np.cumsum(p0, -1)[:, None, :-1]).sum(-1)
                q0, s0 = np.meshgrid(np.arange(n_items), np.arange(n_samples), indexing="ij")
                rows.append(pd.DataFrame({"model": model, "item": np.array(items)[q0.ravel()], "language": lang,
                                          "persona": None, "sample": s0.ravel(),
                                          "answer": np.array(codes)[d0.ravel()]}))
    respondents = pd.DataFrame({"respondent": people, "group": np.array(groups)[grp],
                                "age_group": np.array(["young", "middle", "old"])[(typ + 1).astype(int)]})
    respondents = pd.concat([respondents, pd.DataFrame(np.array(codes)[answers], columns=items)], axis=1)
    scales = pd.DataFrame({"item": items, "options": "|".join(codes), "ordinal": True})
    truth = _persona_truth(draw_items(n_truth_items), use, langs, sd_type, K)
    truth.update({"persona_use": use, "types": typ, "theta": theta, "model_item_error": e})
    return SimulatedData(pd.concat(rows, ignore_index=True), respondents, scales, truth, record)


def _persona_truth(item_draws, use, langs, sd_type, K) -> dict:
    """Population expected agreement per (model, language, country) and of the leave-one-out group baseline."""
    tau, theta, e = item_draws
    t = np.array([-1.0, 0.0, 1.0])
    p_r = _ordinal_probs(tau[None, None], theta[:, None, :] + sd_type * t[None, :, None])  # (C, 3, Q, K)
    pbar = p_r.mean(1)  # the group's answer distribution (types in equal thirds)
    base = (pbar**2).sum(-1).mean(-1)  # (C,)
    agree, gain = {}, {}
    for m, (model, w) in enumerate(use.items()):
        for lang, lam in langs.items():
            eta = theta[:, None, :] + w * sd_type * t[None, :, None] + lam * e[m][None, None, :]
            pm = _ordinal_probs(tau[None, None], eta)
            a = (pm * p_r).sum(-1).mean(axis=(1, 2))  # (C,)
            agree[(model, lang)] = a
            gain[(model, lang)] = a - base
    return {"agreement": agree, "agreement_group_baseline": base, "gain": gain}
