"""Bayesian fits against known truth: recovery and the convergence gate (SBC is in test_models_sbc.py).

Every assertion holds for any seed and run (tests/conftest.py): recovery is judged by a binomial test
over parameters, and the gate's verdict is reported and checked for consistency, not assumed.
"""

import numpy as np
import pytest
from _fits import COVERAGE_ALPHA, FIT_SETTINGS, assert_healthy, coverage, coverage_p, run_fit

from robustalign import ConvergenceWarning
from robustalign.simulate import simulate

pytestmark = pytest.mark.bayes

LEVEL = 0.9


def _joint_truth(sim, fit) -> dict:
    """Generating values of the joint fit's learned SDs and format effects, by parameter name."""
    sd = sim.truth["sd"]
    truth = {
        "sd_item": sd["item"], "sd_model_x_format": sd["model_factor"], "sd_item_x_format": sd["item_format"],
        "sd_group": sd["group"], "sd_group_item": sd["group_item"],
        **{f"sd_model_item[{m}]": sd["model_item"] for m in sim.truth["models"]},
    }
    truth.update({f"beta_format[{lv}]": v for lv, v in zip(fit.design.levels["format"], _format_effect_truth(sim))})
    return truth


def test_joint_fit_is_healthy_and_reports_its_gate(fit_joint):
    assert_healthy(fit_joint)
    fit = fit_joint.fit
    assert fit.provenance["sampler"] == "nutpie" and fit.provenance["draws"] == FIT_SETTINGS["draws"]
    assert "robustalign_provenance" in fit.idata.attrs
    assert fit.idata.attrs["robustalign_converged"] == int(fit.converged)


def test_joint_fit_recovers_the_truth_at_the_nominal_rate(fit_joint):
    """The 90% intervals of 5 SDs, 3 per-model SDs, 3 format effects, the option-order effect and the
    format-vs-country ratio cover their generating values at a rate a binomial test cannot reject
    (alpha 0.001, one-sided); the same judgment rejects values moved away from the truth."""
    sim, fit = fit_joint.sim, fit_joint.fit
    truth = _joint_truth(sim, fit)
    k, n, misses = coverage(truth, fit, LEVEL)
    # reversal shifts answers by order_effect: the difference of the two zero-sum levels
    post = fit.idata["posterior"]["beta_option_order"]
    rev = [lv for lv in fit.design.levels["option_order"] if lv.startswith("4")][0]
    can = [lv for lv in fit.design.levels["option_order"] if lv.startswith("1")][0]
    diff = (post.sel(option_order=rev) - post.sel(option_order=can)).values.ravel()
    lo, hi = np.quantile(diff, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    rho = _format_effect_truth(sim).std() / sim.truth["theta_group_item"].std(0).mean()
    row = fit.factor_vs_human(LEVEL).query("factor == 'format' and model == 'all'").iloc[0]
    extra = {"order_effect": (sim.truth["order_effect"], lo, hi), "rho": (rho, row["conf_low"], row["conf_high"])}
    k += sum(lo_ <= v <= hi_ for v, lo_, hi_ in extra.values())
    n += len(extra)
    print(f"joint fit: {k}/{n} intervals cover; misses {misses}")
    assert coverage_p(k, n, LEVEL) > COVERAGE_ALPHA, (k, n, misses, extra)
    # power: SDs 2.5 times the truth and effects shifted by 1 are rejected by the same judgment
    moved = {p: (2.5 * v if p.startswith("sd_") else v + 1.0) for p, v in truth.items()}
    k_moved, _, _ = coverage(moved, fit, LEVEL)
    assert coverage_p(k_moved, len(moved), LEVEL) <= COVERAGE_ALPHA, k_moved
    # simulate() has no item x option-order interaction: its SD is compatible with zero
    ci = fit.conf_int(LEVEL).set_index("parameter").loc["sd_item_x_option_order"]
    assert ci["conf_low"] < 0.05 and ci["conf_high"] < 0.35
    assert 0 <= row["p_exceeds"] <= 1 and bool(row["converged"]) == fit.converged


def test_centred_branch_recovers_components_and_effects(fit_centred):
    assert_healthy(fit_centred)
    sim, fit = fit_centred.sim, fit_centred.fit
    assert "model_opinion" in fit.idata["posterior"].data_vars and "log_gaps_K4" in fit.idata["posterior"].data_vars
    sd = sim.truth["sd"]
    truth = {"sd_item": sd["item"], "sd_model_x_format": sd["model_factor"], "sd_item_x_format": sd["item_format"],
             **{f"sd_model_item[{m}]": sd["model_item"] for m in sim.truth["models"]}}
    truth.update({f"beta_format[{lv}]": v for lv, v in zip(fit.design.levels["format"], _format_effect_truth(sim))})
    k, n, misses = coverage(truth, fit, LEVEL)
    print(f"centred fit: {k}/{n} intervals cover; misses {misses}")
    assert coverage_p(k, n, LEVEL) > COVERAGE_ALPHA, (k, n, misses)
    # the model means (relative to the centred cutpoints) are ordered as in the data: the generating
    # means plus each model's mean opinion over the 30 items are 0.15, 0.47 and 1.46, so their order is a
    # property of the posterior, which a sampler's Monte Carlo error (about 0.01 here) cannot change
    realised = sim.truth["mu_model"] + sim.truth["a_model_item"].mean(1)
    assert np.diff(np.sort(realised)).min() > 0.3
    est = fit.conf_int(LEVEL).set_index("parameter")["estimate"]
    got = [est[f"mu_model[{m}]"] for m in sim.truth["models"]]
    assert np.argsort(got).tolist() == np.argsort(realised).tolist()
    with pytest.raises(ValueError, match="joint human component"):
        fit.alignment_draws(scope="population")


def test_gate_flags_a_deliberately_bad_fit(sim_centred):
    """tune=5, draws=20 on the centred study (its compiled model is reused when the fixture's fit ran
    in this process): 2 x 20 draws cannot reach a bulk ESS of 400, so the gate fails on any run."""
    from robustalign.models import fit_response_model
    from robustalign.models._sampling import gate_message

    resp, _ = sim_centred.load()
    with pytest.warns(ConvergenceWarning, match="NOT pass the convergence gate"):
        fit = fit_response_model(resp, draws=20, tune=5, chains=2, rng=0)
    assert not fit.converged and fit.gate["min_ess_bulk"] < 400
    # E-BFMI is judged too (nutpie records the energy); this fit fails on R-hat and ESS, and names
    # E-BFMI only if it is below 0.3 as well (0.51 in a measured run of a similar bad fit)
    assert np.isfinite(fit.gate["min_e_bfmi"])
    assert ("E-BFMI" in fit.summary()) and (("min E-BFMI" in gate_message(fit.gate)) == (fit.gate["min_e_bfmi"] < 0.3))
    assert fit.summary().startswith("NOT CONVERGED")
    assert not fit.diagnostics["passed"].all()
    with pytest.raises(ValueError, match="alignment needs human reference data"):
        fit.alignment()  # no humans: a clear error (it was a TypeError from the model side)
    for frame in (fit.variance_shares(), fit.conf_int(), fit.to_frame()):
        assert not frame["converged"].any() and frame.attrs["converged"] is False
    assert fit.idata.attrs["robustalign_converged"] == 0
    # a second fit of the same data samples the compiled model again: same seed, same draws in this
    # process, and another seed gives other draws
    with pytest.warns(ConvergenceWarning):
        again = fit_response_model(resp, draws=20, tune=5, chains=2, rng=0)
        other = fit_response_model(resp, draws=20, tune=5, chains=2, rng=1)
    assert again.provenance["compiled_reused"] and again.provenance["compile_s"] < 1.0
    a, b, c = (f.idata["posterior"]["sd_item"].values for f in (fit, again, other))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the reused compiled model still knows its effect tables: the log-likelihood is computed from them
    assert [t.name for t in again.design.terms] == [t.name for t in fit.design.terms]
    assert np.allclose(again.idata["log_likelihood"]["y"].values, fit.idata["log_likelihood"]["y"].values)



def test_a_near_miss_gets_more_chains_judged_together(sim_centred, monkeypatch):
    """The extension (docs/bayesian.md, section 3) on a real fit: the rule is forced to fire once, so the
    fit samples 2 more chains with a seed keyed from its own and the gate judges all 4; the added chains
    are exactly a fit with the recorded seed (same compiled model, same process)."""
    import robustalign.models._fit as fitmod
    from robustalign.models import fit_response_model
    from robustalign.resampling import keyed_stream

    resp, _ = sim_centred.load()
    calls = []
    monkeypatch.setattr(fitmod, "near_miss", lambda overall: not calls.append(overall))  # always True; calls recorded
    with pytest.warns(ConvergenceWarning, match="2 more chains after missing the gate on R-hat alone"):
        fit = fit_response_model(resp, draws=20, tune=5, chains=2, rng=0)
    ext = fit.provenance["extension"]
    assert len(calls) == 1 and fit.provenance["chains"] == 4 and fit.idata["posterior"].sizes["chain"] == 4
    assert ext["chains_added"] == 2 and ext["first_gate"]["min_ess_bulk"] == calls[0]["min_ess_bulk"]
    assert fit.gate["n_draws"] == 4 * 20 and not fit.converged  # 4 x 20 draws still cannot reach ESS 400
    assert "4 chains: 2 added after the first 2 missed the gate on R-hat alone" in fit.summary()
    with pytest.warns(ConvergenceWarning):
        added = fit_response_model(resp, draws=20, tune=5, chains=2, extend_chains=0,
                                   rng=keyed_stream(0, "models.gate-extension"))
    assert added.provenance["sampler_seed"] == ext["sampler_seed"] and "extension" not in added.provenance
    assert np.array_equal(fit.idata["posterior"]["sd_item"].values[2:], added.idata["posterior"]["sd_item"].values)
    # without the forced rule, this fit (it fails on ESS) is not extended
    monkeypatch.undo()
    with pytest.warns(ConvergenceWarning):
        plain = fit_response_model(resp, draws=20, tune=5, chains=2, rng=0)
    assert "extension" not in plain.provenance and plain.idata["posterior"].sizes["chain"] == 2
    with pytest.raises(ValueError, match="extend_chains"):
        fit_response_model(resp, draws=20, tune=5, chains=2, rng=0, extend_chains=-1)

def _format_effect_truth(sim):
    """The estimand: the format effect averaged over the models and items in the data.

    Interactions sum to zero over models and items, so ``beta_format`` is the generating population
    effect plus the average of the simulated model deviations and item x format terms.
    """
    t = sim.truth
    u = t["u_item_format"]  # (items, format cells); one factor, so cells are format levels
    return t["beta_model"]["format"].mean(0) + (u.mean(0) - u.mean())


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


def test_population_alignment_covers_the_truth(fit_joint):
    """Alignment over new items (METHODS 3.4) covers the generating model's value, and is wider than
    the estimate for the 40 evaluated items (which carries no item-sampling uncertainty)."""
    from scipy.stats import binomtest

    sim, fit = fit_joint.sim, fit_joint.fit
    truth = _population_alignment_truth(sim)
    pop = fit.alignment(LEVEL, scope="population", rng=3)
    ev = fit.alignment(LEVEL)
    covered = [(r.conf_low <= truth[i, j] <= r.conf_high)
               for (i, j), r in zip(np.ndindex(truth.shape), pop.itertuples())]
    # 18 model x group pairs (correlated); coverage must not be significantly below 90%
    assert binomtest(sum(covered), len(covered), LEVEL, alternative="less").pvalue > COVERAGE_ALPHA, (covered, pop)
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
        assert binomtest(k, n, LEVEL).pvalue > COVERAGE_ALPHA, (scope, k, n)


def test_cutpoint_offset_model_recovers_the_models_own_scale_use(sim_offset):
    """The measurement-invariance sensitivity model (METHODS 3.3): models whose cutpoint gaps are 0.6
    times the humans' (they pick extreme options more at the same latent location). Each offset's
    99.8% interval covers log(0.6) (a calibrated fit misses one of the two with probability 0.004)
    and its 95% upper bound is below 0 (the truth is about 5 posterior SDs from 0)."""
    from robustalign.models import fit_response_model

    ratio = 0.6
    resp, ref = sim_offset.load()
    # factors as an audit of these data names them (format, the one factor with two levels), so that the
    # audit's sensitivity fit in test_report_bayes.py reuses this compiled model in the same process
    run = run_fit(fit_response_model, resp, ref, factors=["format"], cutpoints="offset", rng=7, **FIT_SETTINGS)
    assert_healthy(run)
    fit = run.fit
    assert fit.provenance["cutpoints"] == "offset"
    off = fit.idata["posterior"]["cutpoint_offset_K4"].values.reshape(-1, 2)
    lo, hi = np.quantile(off, [0.001, 0.999], axis=0)
    assert ((lo <= np.log(ratio)) & (np.log(ratio) <= hi)).all(), (lo, hi)
    assert (np.quantile(off, 0.95, axis=0) < 0).all()
    assert {"model_cutpoints_K4", "cutpoint_offset_K4"} <= {p.split("[")[0] for p in fit.to_frame()["parameter"]}


def test_outputs_are_tidy_and_flagged(fit_joint):
    fit = fit_joint.fit
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
    for frame in (vs, al, rp, fl, fit.to_frame()):
        assert frame["converged"].eq(fit.converged).all() and frame.attrs["converged"] is fit.converged

