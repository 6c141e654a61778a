"""Tests of the extrapolability assessment (held-out-domain transfer, split-half reliability, E2).

Reference values come from scipy (Spearman, Kendall), closed forms (Spearman-Brown, hand-computed skill
scores, least squares) and simulations with known structure; verdict rates are judged by binomtest.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from robustalign._errors import RobustAlignWarning
from robustalign.claims.extrapolability import (
    _kendall_tau_b,
    _loco_predict,
    _spearman,
    assess_dimension_prediction,
    assess_extrapolability,
    spearman_brown,
)
from robustalign.schema import make_reference, make_responses


def simulate_domains(kind, *, n_groups=12, n_domains=3, n_per=12, K=4, n_models=1, country_by_domain=False,
                     noise=0.3, rng=None):
    """Human groups and models on a 2-d latent opinion space; items in domains.

    kind="trait": a model is one point for all domains; kind="domain": a new point per domain.
    country_by_domain=True gives every group an independent point per domain (no structure to transfer).
    """
    g = np.random.default_rng(rng)
    C, D, NI = n_groups, n_domains, n_domains * n_per
    dom = np.repeat(np.arange(D), n_per)
    b = g.normal(0, 0.7, NI)
    lam = g.normal(0, 1.0, (NI, 2))
    if country_by_domain:
        fc = g.normal(0, 1, (D, C, 2))[dom]  # (I, C, 2)
    else:
        fc = np.broadcast_to(g.normal(0, 1, (C, 2)), (NI, C, 2))
    theta_c = b[:, None] + np.einsum("ik,ick->ic", lam, fc) + g.normal(0, noise, (NI, C))
    if kind == "trait":
        fm = np.broadcast_to(g.normal(0, 1, (n_models, 2))[:, None, :], (n_models, NI, 2))
    else:
        fm = g.normal(0, 1, (n_models, D, 2))[:, dom, :]
    theta_m = b[None] + np.einsum("ik,mik->mi", lam, fm) + g.normal(0, noise, (n_models, NI))
    tau = np.linspace(-1.5, 1.5, K - 1)

    def probs(theta):
        cdf = 1 / (1 + np.exp(-(tau - theta[..., None])))
        cdf = np.concatenate([cdf, np.ones(theta.shape + (1,))], -1)
        return np.diff(np.concatenate([np.zeros(theta.shape + (1,)), cdf], -1), axis=-1)

    H = probs(theta_c)  # (I, C, K)
    items = [f"q{d}_{i:02d}" for i, d in enumerate(dom)]
    rows = [{"item": items[i], "group": f"g{c:02d}", "option": str(k + 1), "share": H[i, c, k]}
            for i in range(NI) for c in range(C) for k in range(K)]
    ref = make_reference(pd.DataFrame(rows), pd.DataFrame({"item": items, "options": ["|".join(map(str, range(1, K + 1)))] * NI, "ordinal": True}))
    Pm = probs(theta_m)  # (M, I, K)
    rr = []
    for m in range(n_models):
        for i in range(NI):
            rr.append({"model": f"m{m}", "item": items[i], **{f"prob_{k+1}": Pm[m, i, k] for k in range(K)}})
    resp = make_responses(pd.DataFrame(rr), ref)
    domains = {items[i]: f"d{dom[i]}" for i in range(NI)}
    return resp, ref, domains

# --------------------------------------------------------------------------------------------------
# vectorised statistics against scipy and closed forms
# --------------------------------------------------------------------------------------------------
def test_spearman_and_kendall_match_scipy_with_ties_and_missing():
    g = np.random.default_rng(0)
    x = g.integers(0, 5, (100, 9)).astype(float)
    y = g.integers(0, 5, (100, 9)).astype(float)
    x[3, 2] = np.nan
    y[5, 7] = np.nan
    s, t = _spearman(x, y), _kendall_tau_b(x, y)
    for i in range(100):
        m = np.isfinite(x[i]) & np.isfinite(y[i])
        assert s[i] == pytest.approx(stats.spearmanr(x[i][m], y[i][m]).statistic, abs=1e-12)
        assert t[i] == pytest.approx(stats.kendalltau(x[i][m], y[i][m]).statistic, abs=1e-12)


def test_spearman_brown_closed_form():
    # r_full = 2 r / (1 + r): r = 0.5 -> 2/3; r = 0.6 -> 0.75; k = 3, r = 0.25 -> 0.5
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.6) == pytest.approx(0.75)
    assert spearman_brown(0.25, k=3) == pytest.approx(0.5)
    assert spearman_brown(1.0) == pytest.approx(1.0)
    # no shared signal: a negative half-test correlation is a reliability of 0, not below -1
    assert spearman_brown(-0.8) == 0.0 and spearman_brown(0.0) == 0.0


# --------------------------------------------------------------------------------------------------
# E1 verdicts on simulated data
# --------------------------------------------------------------------------------------------------
def _verdicts(kind, n_sets, seed):
    out = []
    for s in range(n_sets):
        resp, ref, dom = simulate_domains(kind, n_models=4, n_domains=4, n_per=9, rng=[seed, s])
        r = assess_extrapolability(resp, ref, domains=dom, n_resamples=100, n_permutations=300, n_splits=10,
                                   rng=s)
        out += r.verdicts["verdict"].tolist()
    return out


def test_verdict_rates_latent_trait_vs_domain_specific():
    # A model whose alignment is one latent point for every domain transfers like humans; one with a new
    # point per domain does not. 10 data sets x 4 models each (models share the human data within a set).
    # Observed when written: trait 40/40 "supported"; domain-specific 35/40 "not supported", 5 "supported".
    trait = _verdicts("trait", 10, 7)
    dom = _verdicts("domain", 10, 7)
    n_sup = trait.count("supported")
    n_not = dom.count("not supported")
    assert stats.binomtest(n_sup, len(trait), 0.8, alternative="greater").pvalue < 0.05
    assert stats.binomtest(n_not, len(dom), 0.6, alternative="greater").pvalue < 0.05
    assert trait.count("not supported") == 0


def test_transfer_permutation_null_size():
    # Every group and model has an independent latent point per domain: no transfer, the null holds.
    # 40 data sets x 5 models = 200 tests at 199 permutations; rejection rate at 0.05 must be ~5%.
    # Observed when written: 5/200.
    ps = []
    for s in range(40):
        resp, ref, dom = simulate_domains("domain", n_models=5, n_groups=10, n_domains=2, n_per=6,
                                          country_by_domain=True, rng=[9, s])
        r = assess_extrapolability(resp, ref, domains=dom, n_resamples=2, n_permutations=199, n_splits=2, rng=s)
        f = r.table("transfer_r")
        ps += f.loc[f["domain_a"] == "all pairs", "p_value"].tolist()
    k = int((np.array(ps) <= 0.05).sum())
    assert stats.binomtest(k, len(ps), 0.05).pvalue > 0.01
    assert k / len(ps) < 0.09


def test_result_shape_and_human_benchmark():
    resp, ref, dom = simulate_domains("trait", n_models=2, rng=3)
    r = assess_extrapolability(resp, ref, domains=dom, n_resamples=50, n_permutations=99, n_splits=10, rng=1)
    f = r.to_frame()
    assert {"quantity", "estimate", "conf_low", "conf_high", "conf_level", "p_value", "p_adjusted",
            "adjust_method", "family", "n_items", "units", "benchmark"} <= set(f.columns)
    assert set(r.verdicts["verdict"]) <= {"supported", "not supported", "inconclusive"}
    # the delta is the model transfer minus the human transfer, pair by pair
    tr, hu, de = r.table("transfer_r"), r.table("human_transfer_r"), r.table("transfer_delta")
    m = tr.merge(hu[["domain_a", "domain_b", "estimate"]], on=["domain_a", "domain_b"], suffixes=("", "_h"))
    np.testing.assert_allclose(m["estimate"] - m["estimate_h"], de["estimate"].to_numpy())
    # a 90% interval is inside the 95% one (re-read from stored resamples)
    f90 = r.to_frame(0.90)
    assert ((f90["conf_low"] >= f["conf_low"] - 1e-12) | f["conf_low"].isna()).all()
    assert "permutation tests" in tr["family"].iloc[0]


def test_transfer_point_estimates_match_scipy_on_centred_domain_means():
    # E1 by hand: JS similarity per item (scipy), domain means, centred on the mean human similarity to
    # each target (other groups only), Spearman across targets (scipy); humans as "models" likewise
    resp, ref, dom = simulate_domains("trait", n_models=1, n_groups=8, n_domains=2, n_per=6, rng=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustAlignWarning)  # 8 targets: the coarse-correlation warning
        r = assess_extrapolability(resp, ref, domains=dom, n_resamples=10, n_permutations=9, n_splits=2, rng=0)
    items, groups = resp.items, ref.groups
    H = ref.array(items, groups)  # (I, C, K)
    P = resp.data.set_index("item").loc[items, [f"prob_{k}" for k in range(1, 5)]].to_numpy(float)
    C = len(groups)
    sm = np.array([[1 - jensenshannon(P[i], H[i, c], base=2) for c in range(C)] for i in range(len(items))])
    sh = np.array([[[np.nan if a == c else 1 - jensenshannon(H[i, a], H[i, c], base=2) for c in range(C)]
                    for a in range(C)] for i in range(len(items))])
    d = np.array([dom[i] for i in items])
    am = np.stack([sm[d == k].mean(0) for k in ("d0", "d1")])  # (D, C)
    ah = np.stack([sh[d == k].mean(0) for k in ("d0", "d1")])  # (D, C', C), NaN diagonal
    base = np.nanmean(ah, axis=1)
    am, ah = am - base, ah - base[:, None, :]
    want_m = stats.spearmanr(am[0], am[1]).statistic
    want_h = np.mean([stats.spearmanr(np.delete(ah[0, a], a), np.delete(ah[1, a], a)).statistic for a in range(C)])
    tr, hu = r.table("transfer_r"), r.table("human_transfer_r")
    assert tr.loc[tr["domain_a"] == "d0", "estimate"].item() == pytest.approx(want_m, abs=1e-12)
    assert hu.loc[hu["domain_a"] == "d0", "estimate"].item() == pytest.approx(want_h, abs=1e-12)


def test_without_domains_gives_split_half_only():
    resp, ref, _ = simulate_domains("trait", n_models=1, rng=4)
    r = assess_extrapolability(resp, ref, n_resamples=50, n_permutations=99, n_splits=20, rng=1)
    assert set(r.to_frame()["quantity"]) == {"split_half_tau", "split_half_rho", "split_half_top1",
                                             "split_half_reliability", "reliability_delta"}
    rel = r.table("split_half_reliability")
    rho = r.table("split_half_rho")
    np.testing.assert_allclose(rel["estimate"], 2 * rho["estimate"] / (1 + rho["estimate"]))


def test_errors_and_warnings_are_named():
    resp, ref, dom = simulate_domains("trait", n_models=1, n_groups=5, rng=5)
    with pytest.raises(ValueError, match="`n_splits` must be an integer >= 1"):
        assess_extrapolability(resp, ref, domains=dom, n_splits=0)
    with pytest.raises(ValueError, match="`alternative` must be 'greater' or 'two-sided'"):
        assess_extrapolability(resp, ref, domains=dom, alternative="less")
    with pytest.raises(ValueError, match="names a column, but no item table"):
        assess_extrapolability(resp, ref, domains="category")
    with pytest.raises(ValueError, match="at least 2 domains"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustAlignWarning)
        assess_extrapolability(resp, ref, domains=dict.fromkeys(resp.items, "one"))
    with pytest.warns(RobustAlignWarning, match="only 5 target groups"):
        assess_extrapolability(resp, ref, domains=dom, n_resamples=5, n_permutations=9, n_splits=2, rng=0)


# --------------------------------------------------------------------------------------------------
# E2: held-out-dimension prediction
# --------------------------------------------------------------------------------------------------
def test_dimension_prediction_known_skill_scores():
    # 4 countries, 2 dimensions. Random-other-country error of country A on d1: mean(|10-0|,|20-0|,|30-0|)=20.
    human = pd.DataFrame({"group": list("ABCD"), "d1": [0.0, 10, 20, 30], "d2": [0.0, 5, 10, 15]})
    exact = pd.DataFrame({"model": "exact", "group": list("ABCD"), "d1": [0.0, 10, 20, 30], "d2": [0.0, 5, 10, 15]})
    # persona "off" is 10 points off on d1 for every country, exact on d2
    off = exact.assign(model="off", d1=exact["d1"] + 10)
    r = assess_dimension_prediction(pd.concat([exact, off]), human, n_resamples=50, rng=0)
    f = r.to_frame()
    get = lambda q, m, d: f[(f.quantity == q) & (f.model == m) & (f.dimension == d)]["estimate"].item()  # noqa: E731
    assert get("ss_direct", "exact", "all") == pytest.approx(1.0)
    # perm errors on d1: A 20, B 13.33, C 13.33, D 20 -> mean 16.67; off MAE 10 -> SS = 1 - 10/16.67 = 0.4
    assert get("mae_perm", "off", "d1") == pytest.approx(50 / 3)
    assert get("ss_direct", "off", "d1") == pytest.approx(0.4)
    assert get("ss_direct", "off", "d2") == pytest.approx(1.0)
    # pooled over dimensions: 1 - 40 / (66.67 + 33.33) = 0.6
    assert get("ss_direct", "off", "all") == pytest.approx(0.6)
    # d1 = 2 d2 exactly: near-unpenalised ridge recovers it leave-one-country-out (extrapolating at A and D)
    r0 = assess_dimension_prediction(exact, human, alpha=1e-9, n_resamples=20, rng=0)
    f0 = r0.to_frame()
    assert f0[(f0.quantity == "ss_human") & (f0.dimension == "all")]["estimate"].item() == pytest.approx(1.0)
    assert r.verdicts.set_index("model").loc["exact", "verdict"] == "supported"


def test_ridge_loco_matches_least_squares():
    g = np.random.default_rng(1)
    X = g.normal(size=(12, 3))
    y = X @ [1.0, -2.0, 0.5] + g.normal(0, 0.3, 12)
    Xnew = g.normal(size=(12, 1, 3))
    pred = _loco_predict(X, y, Xnew, "ridge", alpha=0.0)
    for i in range(12):
        keep = np.arange(12) != i
        A = np.column_stack([np.ones(11), X[keep]])
        beta = np.linalg.lstsq(A, y[keep], rcond=None)[0]
        assert pred[i, 0] == pytest.approx(beta[0] + Xnew[i, 0] @ beta[1:])


def test_knn_loco_matches_brute_force_neighbours():
    from scipy.spatial.distance import cdist

    g = np.random.default_rng(2)
    X = g.normal(size=(10, 3)) * [1.0, 10.0, 0.1]  # unequal scales: standardising changes the neighbours
    y = g.normal(size=10)
    Xnew = g.normal(size=(10, 2, 3)) * [1.0, 10.0, 0.1]
    pred = _loco_predict(X, y, Xnew, "knn", k=3)
    for i in range(10):
        others = np.flatnonzero(np.arange(10) != i)
        z = stats.zscore(X[others], axis=0)
        znew = (Xnew[i] - X[others].mean(0)) / X[others].std(0)
        near = np.argsort(cdist(znew, z), axis=1)[:, :3]
        np.testing.assert_allclose(pred[i], y[others][near].mean(1), rtol=1e-12)


def test_dimension_prediction_errors():
    human = pd.DataFrame({"group": list("ABCD"), "d1": [0.0, 1, 2, 3], "d2": [0.0, 1, 1, 2]})
    with pytest.raises(ValueError, match="`method` must be 'ridge' or 'knn'"):
        assess_dimension_prediction(human.assign(model="m"), human, method="svm")
    with pytest.raises(ValueError, match="have no row in `human`"):
        assess_dimension_prediction(human.assign(model="m", group=list("ABCE")), human)


def test_plot_draws_model_points_and_human_band():
    import matplotlib

    matplotlib.use("Agg")
    resp, ref, dom = simulate_domains("trait", n_models=2, rng=3)
    r = assess_extrapolability(resp, ref, domains=dom, n_resamples=20, n_permutations=19, n_splits=5, rng=1)
    axes = r.plot()
    assert len(axes) == 2
    # one errorbar series per model in the transfer panel, 3 domain pairs + the mean
    lines = [c for c in axes[0].containers]
    assert len(lines) == 2 and len(lines[0].lines[0].get_xdata()) == 4
    assert axes[1].get_xlabel().startswith("split-half reliability")


# --------------------------------------------------------------------------------------------------
# seeds: a unit's numbers do not depend on which other units are in the data
# --------------------------------------------------------------------------------------------------
def test_unit_numbers_do_not_depend_on_other_units():
    # every draw comes from a stream keyed by its purpose (and domain or unit), consumed in order, so
    # removing a model (which also changes the chunk sizes) leaves another model's replicates unchanged
    resp, ref, dom = simulate_domains("trait", n_models=3, n_groups=8, n_domains=2, n_per=6, rng=5)
    kw = dict(domains=dom, n_resamples=60, n_permutations=59, n_splits=4, rng=7)
    full = assess_extrapolability(resp, ref, **kw).to_frame()
    part = assess_extrapolability(resp.subset(models=["m1", "m2"]), ref, **kw).to_frame()
    cols = ["estimate", "conf_low", "conf_high", "p_value"]
    keys = ["quantity", "subject", "domain_a", "domain_b"]
    a = full[full["model"] == "m2"].set_index(keys)[cols].sort_index()
    b = part[part["model"] == "m2"].set_index(keys)[cols].sort_index()
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)
    # the same for the human benchmark rows
    ha = full[full["subject"] == "humans"].set_index(keys)[cols].sort_index()
    hb = part[part["subject"] == "humans"].set_index(keys)[cols].sort_index()
    pd.testing.assert_frame_equal(ha, hb)


def test_dimension_prediction_unit_numbers_do_not_depend_on_other_units():
    human = pd.DataFrame({"group": list("ABCDE"), "d1": [0.0, 10, 20, 30, 5], "d2": [0.0, 5, 10, 15, 9]})
    g = np.random.default_rng(0)
    personas = pd.concat([human.assign(model=m, d1=human["d1"] + g.normal(0, 5, 5), d2=human["d2"] + g.normal(0, 5, 5))
                          for m in ("a", "b", "c")])
    f_all = assess_dimension_prediction(personas, human, n_resamples=40, rng=3).to_frame()
    f_c = assess_dimension_prediction(personas[personas["model"] != "a"], human, n_resamples=40, rng=3).to_frame()
    cols = ["estimate", "conf_low", "conf_high"]
    a = f_all[f_all["model"] == "c"].set_index(["quantity", "dimension"])[cols]
    b = f_c[f_c["model"] == "c"].set_index(["quantity", "dimension"])[cols]
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------------------------------
# Monte Carlo error of the verdicts
# --------------------------------------------------------------------------------------------------
def test_verdict_within_monte_carlo_error_is_flagged():
    from robustalign.claims.extrapolability import _e1_verdict, _mc_check

    se = np.sqrt(0.048 * 0.952 / 1000)  # adjusted p 0.048 from 1000 permutations: SE 0.0068
    checks = {"rejected": (True, 0.048, 0.05, se, 1000, "adjusted p"),
              "below": (False, 0.20, 0.0, 0.01, 2000, "upper end"),
              "humans_transfer": (True, 0.004, 0.0, 0.01, 2000, "human lower end")}
    flag, text = _mc_check(checks, _e1_verdict)
    assert flag and "adjusted p 0.0480" in text and "within Monte Carlo error" in text
    # the human interval is also near 0, but flipping it cannot change a "supported" verdict: not named
    assert "human lower end" not in text
    # far from the threshold: not flagged
    far = {**checks, "rejected": (True, 0.001, 0.05, np.sqrt(0.001 * 0.999 / 1000), 1000, "adjusted p")}
    assert _mc_check(far, _e1_verdict) == (False, "")


def test_verdicts_carry_the_monte_carlo_flag_end_to_end():
    # 19 permutations: the smallest p is 1/20 = alpha, with MC SE 0.05, so every verdict that hinges on
    # "adjusted p < 0.05" is within Monte Carlo error
    resp, ref, dom = simulate_domains("trait", n_models=1, n_groups=8, n_domains=2, n_per=6, rng=3)
    r = assess_extrapolability(resp, ref, domains=dom, n_resamples=200, n_permutations=19, n_splits=4, rng=1)
    v = r.verdicts.iloc[0]
    assert bool(v["mc_error"]) and "within Monte Carlo error" in v["reason"]
    f = r.table("transfer_r")
    row = f[f["domain_a"] == "all pairs"].iloc[0]
    assert row["p_value_mcse"] == pytest.approx(np.sqrt(row["p_value"] * (1 - row["p_value"]) / 19))
    # finite everywhere; 0 where replicates pile up at a bound (r = 1 with 8 targets)
    assert np.isfinite(f[["conf_low_mcse", "conf_high_mcse"]].to_numpy()).all() and (f["conf_low_mcse"] > 0).all()
