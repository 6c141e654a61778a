"""Bayesian fits against known truth: recovery, the convergence gate, and simulation-based calibration."""

import numpy as np
import pytest

from robustalign import ConvergenceWarning
from robustalign.simulate import simulate

pytestmark = pytest.mark.bayes

LEVEL = 0.9


@pytest.fixture(scope="module")
def recovery():
    from robustalign.models import fit_response_model

    sim = simulate(n_models=3, n_items=40, n_groups=6, factors={"format": 3}, n_samples=5, rng=1)
    resp, ref = sim.load()
    # 1,500 draws: max R-hat 1.004-1.006 over seeds 1-3 (1.008-1.011 at 1,000 draws before the
    # model-item opinions were centred by their signal-to-noise)
    fit = fit_response_model(resp, ref, draws=1500, tune=1000, chains=4, rng=1)
    return sim, fit


def _interval(fit, name):
    ci = fit.conf_int(LEVEL).set_index("parameter")
    return ci.loc[name, "conf_low"], ci.loc[name, "conf_high"]


def test_recovery_fit_passes_the_gate(recovery):
    sim, fit = recovery
    assert fit.converged, fit.summary()
    assert fit.gate["divergences"] == 0
    assert fit.summary().startswith("converged")
    assert fit.provenance["sampler"] == "nutpie" and fit.provenance["draws"] == 1500
    assert "robustalign_provenance" in fit.idata.attrs


def test_variance_components_recovered(recovery):
    """Every generating SD with a learned scale lies inside the 90% interval (zero truth: reaches 0).

    The 3-level format factor's population effect has a fixed prior scale (too few levels to learn
    one); its effects are checked in ``test_effects_recovered``.
    """
    sim, fit = recovery
    sd = sim.truth["sd"]
    truth = {
        "sd_item": sd["item"], "sd_model_x_format": sd["model_factor"],
        "sd_item_x_format": sd["item_format"], "sd_group": sd["group"], "sd_group_item": sd["group_item"],
        **{f"sd_model_item[{m}]": sd["model_item"] for m in sim.truth["models"]},
    }
    missed = {k: (v, _interval(fit, k)) for k, v in truth.items() if not _interval(fit, k)[0] <= v <= _interval(fit, k)[1]}
    assert not missed, missed
    # simulate() has no item x option-order interaction: its SD must be compatible with zero
    lo, hi = _interval(fit, "sd_item_x_option_order")
    assert lo < 0.05 and hi < 0.3


@pytest.fixture(scope="module")
def recovery_centred():
    """No humans and 60 answers per model x item: the centred-opinion branch and shape-only cutpoints."""
    from robustalign.models import fit_response_model

    sim = simulate(n_models=3, n_items=30, n_groups=3, factors={"format": 3}, n_samples=10, rng=5)
    resp, _ = sim.load()
    # 1,500 draws: with the fused likelihood kernel (same posterior, other rounding, so other
    # trajectories) seed 5 gave min tail ESS 351 at 1,000 draws; 731 at 1,500
    fit = fit_response_model(resp, draws=1500, tune=1000, chains=4, rng=5)
    return sim, fit


def test_centred_branch_recovers_components_and_effects(recovery_centred):
    sim, fit = recovery_centred
    assert "model_opinion" in fit.idata["posterior"].data_vars and "log_gaps_K4" in fit.idata["posterior"].data_vars
    assert fit.converged, fit.summary()
    sd = sim.truth["sd"]
    truth = {"sd_item": sd["item"], "sd_model_x_format": sd["model_factor"], "sd_item_x_format": sd["item_format"],
             **{f"sd_model_item[{m}]": sd["model_item"] for m in sim.truth["models"]}}
    truth.update({f"beta_format[{lv}]": v for lv, v in zip(fit.design.levels["format"], _format_effect_truth(sim))})
    missed = {k: (v, _interval(fit, k)) for k, v in truth.items() if not _interval(fit, k)[0] <= v <= _interval(fit, k)[1]}
    assert not missed, missed
    # the model means (relative to the centred cutpoints) are ordered as generated
    est = fit.conf_int(LEVEL).set_index("parameter")["estimate"]
    got = [est[f"mu_model[{m}]"] for m in sim.truth["models"]]
    assert np.argsort(got).tolist() == np.argsort(sim.truth["mu_model"]).tolist()
    with pytest.raises(ValueError, match="joint human component"):
        fit.alignment_draws(scope="population")


def _format_effect_truth(sim):
    """The estimand: the format effect averaged over the models and items in the data.

    Interactions sum to zero over models and items, so ``beta_format`` is the generating population
    effect plus the average of the simulated model deviations and item x format terms.
    """
    t = sim.truth
    u = t["u_item_format"]  # (items, format cells); one factor, so cells are format levels
    return t["beta_model"]["format"].mean(0) + (u.mean(0) - u.mean())


def test_effects_recovered(recovery):
    sim, fit = recovery
    for lev, b in zip(fit.design.levels["format"], _format_effect_truth(sim)):
        lo, hi = _interval(fit, f"beta_format[{lev}]")
        assert lo <= b <= hi, (lev, b, lo, hi)
    # reversal shifts answers by order_effect: the difference of the two zero-sum levels
    post = fit.idata["posterior"]["beta_option_order"]
    rev = [lv for lv in fit.design.levels["option_order"] if lv.startswith("4")][0]
    can = [lv for lv in fit.design.levels["option_order"] if lv.startswith("1")][0]
    diff = (post.sel(option_order=rev) - post.sel(option_order=can)).values.ravel()
    lo, hi = np.quantile(diff, [0.05, 0.95])
    assert lo <= sim.truth["order_effect"] <= hi


def test_factor_vs_human_recovers_the_truth_ratio(recovery):
    sim, fit = recovery
    theta = sim.truth["theta_group_item"]
    sigma_country = theta.std(0).mean()
    rho = _format_effect_truth(sim).std() / sigma_country
    row = fit.factor_vs_human(LEVEL).query("factor == 'format' and model == 'all'").iloc[0]
    assert row["conf_low"] <= rho <= row["conf_high"]
    assert 0 <= row["p_exceeds"] <= 1 and bool(row["converged"])


def _population_alignment_truth(sim, n_new=200_000, seed=0):
    """1 - E|model position - human position| over new items drawn from the generating model (MC)."""
    from scipy.special import expit

    t, g = sim.truth, np.random.default_rng(seed)
    sd, K = t["sd"], t["tau"].shape[1] + 1
    base = np.log(np.arange(1, K) / (K - np.arange(1, K)))
    n_fmt, M, C = t["factors"]["format"], len(t["models"]), len(t["groups"])

    def pos(eta, loc):  # mean position on [0, 1]: sum_k P(y > k) / (K - 1), tau = base - loc
        return expit(eta[..., None] + loc.reshape(-1, *[1] * (eta.ndim - 1))[..., None] - base).sum(-1) / (K - 1)

    loc = g.normal(0, sd["item"], n_new)
    human = pos(t["mu_group"][None] + g.normal(0, sd["group_item"], (n_new, C)), loc)  # (R, C)
    eta = (t["mu_model"][None, :, None, None] + g.normal(0, sd["model_item"], (n_new, M))[:, :, None, None]
           + t["beta_model"]["format"][None, :, :, None] + g.normal(0, sd["item_format"], (n_new, 1, n_fmt, 1))
           + t["order_effect"] * np.arange(2)[None, None, None, :])  # (R, M, formats, orders)
    model = pos(eta, loc).mean((2, 3))  # every presentation equally often, as simulated
    return 1 - np.abs(model[:, :, None] - human[:, None, :]).mean(0)  # (M, C)


def test_population_alignment_covers_the_truth(recovery):
    """Alignment over new items (METHODS 3.4) covers the generating model's value, and is wider than
    the estimate for the 40 evaluated items (which carries no item-sampling uncertainty)."""
    from scipy.stats import binomtest

    sim, fit = recovery
    truth = _population_alignment_truth(sim)
    pop = fit.alignment(LEVEL, scope="population", rng=3)
    ev = fit.alignment(LEVEL)
    covered = [(r.conf_low <= truth[i, j] <= r.conf_high)
               for (i, j), r in zip(np.ndindex(truth.shape), pop.itertuples())]
    # 18 model x group pairs (correlated); coverage must not be significantly below 90%
    assert binomtest(sum(covered), len(covered), LEVEL, alternative="less").pvalue > 0.01, (covered, pop, truth)
    assert ((pop["conf_high"] - pop["conf_low"]) > (ev["conf_high"] - ev["conf_low"])).all()
    assert set(pop["scope"]) == {"population"} and pop.attrs["rng"]["entropy"] == 3
    again = fit.alignment(LEVEL, scope="population", rng=3)
    assert np.array_equal(again["estimate"], pop["estimate"])  # the seed fixes the new items
    assert fit.rank_probabilities(scope="population", rng=3)["probability"].between(0, 1).all()


def _evaluated_alignment_truth(sim):
    """1 - mean over the simulated items of |true model position - true human position| (M, C)."""
    from scipy.special import expit

    t = sim.truth
    tau = t["tau_model"]  # (Q, K-1); equal to the human cutpoints unless model_gap_ratio != 1
    eta = (t["mu_model"][:, None, None, None] + t["a_model_item"][:, :, None, None]
           + t["beta_model"]["format"][:, None, :, None] + t["u_item_format"][None, :, :, None]
           + t["order_effect"] * np.arange(2)[None, None, None, :])  # (M, Q, formats, orders)
    model = expit(eta[..., None] - tau[None, :, None, None, :]).sum(-1).mean((2, 3)) / tau.shape[1]
    human = expit(t["theta_group_item"][..., None] - t["tau"][None]).sum(-1) / tau.shape[1]  # (C, Q)
    return 1 - np.abs(model[:, None, :] - human[None, :, :]).mean(-1)


@pytest.mark.slow
def test_alignment_intervals_cover_at_their_rate_over_simulated_studies(request):
    """Coverage of both alignment scopes over 30 independent studies: one model x group pair per study
    (chosen at random, so the 30 Bernoulli trials are independent), judged by a binomial test."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("30 Bayesian fits: run with -m slow")
    import warnings

    from scipy.stats import binomtest

    from robustalign.models import fit_response_model

    pick = np.random.default_rng(99)
    hits = {"population": 0, "evaluated": 0}
    n = 30
    for seed in range(n):
        sim = simulate(n_models=3, n_items=30, n_groups=4, factors={"format": 2}, n_samples=5, rng=100 + seed)
        resp, ref = sim.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_response_model(resp, ref, draws=1000, tune=1000, chains=4, rng=seed)
        m, c = pick.integers(3), pick.integers(4)
        for scope, truth in (("population", _population_alignment_truth(sim, n_new=50_000)),
                             ("evaluated", _evaluated_alignment_truth(sim))):
            row = fit.alignment(LEVEL, scope=scope, rng=seed).iloc[m * 4 + c]
            hits[scope] += bool(row.conf_low <= truth[m, c] <= row.conf_high)
    print("alignment interval coverage over", n, "studies:", hits)
    for scope, k in hits.items():
        assert binomtest(k, n, LEVEL).pvalue > 0.01, (scope, k, n)


def test_cutpoint_offset_model_recovers_the_models_own_scale_use():
    """The measurement-invariance sensitivity model (METHODS 3.3): models whose cutpoint gaps are 0.6
    times the humans' (they pick extreme options more at the same latent location); the offsets'
    90% intervals cover log(0.6) and exclude 0."""
    from robustalign.models import fit_response_model

    ratio = 0.6
    sim = simulate(n_models=3, n_items=30, n_groups=4, factors={"format": 2}, n_orders=1, n_samples=10,
                   model_gap_ratio=ratio, rng=7)
    resp, ref = sim.load()
    fit = fit_response_model(resp, ref, cutpoints="offset", draws=1000, tune=1000, chains=4, rng=7)
    assert fit.converged, fit.summary()
    assert fit.provenance["cutpoints"] == "offset"
    off = fit.idata["posterior"]["cutpoint_offset_K4"].values.reshape(-1, 2)
    lo, hi = np.quantile(off, [0.05, 0.95], axis=0)
    assert ((lo <= np.log(ratio)) & (np.log(ratio) <= hi)).all(), (lo, hi)
    assert (hi < 0).all()
    assert {"model_cutpoints_K4", "cutpoint_offset_K4"} <= {p.split("[")[0] for p in fit.to_frame()["parameter"]}


def test_outputs_are_tidy_and_flagged(recovery):
    sim, fit = recovery
    vs = fit.variance_shares()
    assert {"model", "component", "estimate", "conf_low", "conf_high", "conf_level", "converged"} <= set(vs)
    per_model = vs[~vs["component"].isin(["stability_index", "presentation_share"])].groupby("model")["estimate"]
    assert np.allclose(per_model.sum(), 1, atol=0.02)  # posterior means of shares sum to ~1
    al = fit.alignment()
    assert len(al) == 3 * 6 and al["estimate"].between(0, 1).all()
    rp = fit.rank_probabilities()
    assert np.allclose(rp.groupby(["group", "model"])["probability"].sum(), 1)
    fl = fit.flip_probabilities()
    assert fl["p_flip"].between(0, 0.5).all() and set(fl.attrs["p_any_flip"]) == set(fit.design.groups)
    assert fit.to_frame()["converged"].all()


def test_gate_flags_a_deliberately_bad_fit():
    from robustalign.models import fit_response_model

    sim = simulate(n_models=3, n_items=8, n_groups=3, factors={"format": 3}, n_orders=1, n_samples=5, K=3, rng=5)
    resp, ref = sim.load()
    with pytest.warns(ConvergenceWarning, match="NOT pass the convergence gate"):
        fit = fit_response_model(resp, ref, draws=20, tune=5, chains=2, rng=0)
    assert not fit.converged
    assert fit.summary().startswith("NOT CONVERGED")
    assert not fit.diagnostics["passed"].all()
    for frame in (fit.variance_shares(), fit.alignment(), fit.conf_int(), fit.flip_probabilities()):
        assert not frame["converged"].any() and frame.attrs["converged"] is False
    assert fit.idata.attrs["robustalign_converged"] == 0


def _sbc(n_sims, seed, centred=False):
    from robustalign.models.calibration import sbc_response_model

    res = sbc_response_model(n_sims=n_sims, rng=seed, centred=centred)
    return res, res.uniformity(bins=10)


@pytest.mark.parametrize("centred", [False, True])
def test_sbc_ranks_are_uniform(centred):
    """SBC, 100 simulations per parametrisation: ranks of every variance component, a format effect
    and a cutpoint pass a chi-square test (Bonferroni)."""
    res, uni = _sbc(100, 2026, centred)
    assert len(res.ranks) == 100
    want = {"model_opinion", "item_x_format"} if centred else set()
    assert want <= set(res.centred_tables) and (centred or not res.centred_tables), res.centred_tables
    assert (uni["p_value"] > 0.01 / len(uni)).all(), uni


@pytest.mark.slow
@pytest.mark.parametrize("centred", [False, True])
def test_sbc_ranks_are_uniform_large(request, centred):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("400-simulation SBC: run with -m slow")
    res, uni = _sbc(400, 7, centred)
    assert (uni["p_value"] > 0.01 / len(uni)).all(), uni
