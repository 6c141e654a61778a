"""assess_steerability: hand computations on tiny designs, the Mantel test against a loop with scipy,
null size and power on simulated data with known truth, and the multicultural-alignment comparison."""

import warnings
from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from robustalign._errors import DegenerateResampleWarning
from robustalign.claims import assess_steerability
from robustalign.claims.steerability import _matrix_stats, _permutation_null, mantel_test
from robustalign.metrics import js_similarity
from robustalign.resampling import sign_flip_test
from robustalign.resampling.nulls import p_values
from robustalign.schema import make_reference, make_responses


@pytest.fixture(autouse=True)
def _slow_only_when_asked(request):
    if request.node.get_closest_marker("slow") and "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("long calibration run: select it with `pytest -m slow`")


# ---------------------------------------------------------------------------------------------------
# tiny design: 3 items, ordinal 1|2|3, groups A, B, C; prompts none, A, B; two answers per cell
# ---------------------------------------------------------------------------------------------------
H = {
    "q1": {"A": [0.6, 0.3, 0.1], "B": [0.1, 0.3, 0.6], "C": [0.3, 0.4, 0.3]},
    "q2": {"A": [0.2, 0.5, 0.3], "B": [0.5, 0.4, 0.1], "C": [0.3, 0.3, 0.4]},
    "q3": {"A": [0.7, 0.2, 0.1], "B": [0.2, 0.2, 0.6], "C": [0.4, 0.4, 0.2]},
}
ANS = {  # (item, prompt) -> two answers (canonical codes)
    ("q1", "none"): ["2", "2"], ("q1", "A"): ["1", "2"], ("q1", "B"): ["3", "3"],
    ("q2", "none"): ["1", "3"], ("q2", "A"): ["2", "2"], ("q2", "B"): ["1", "1"],
    ("q3", "none"): ["2", "3"], ("q3", "A"): ["1", "1"], ("q3", "B"): ["2", "3"],
}


def _tiny():
    scales = pd.DataFrame({"item": list(H), "options": "1|2|3", "ordinal": True})
    ref = make_reference(pd.DataFrame([
        {"item": i, "group": g, "option": str(k + 1), "share": s}
        for i, gs in H.items() for g, p in gs.items() for k, s in enumerate(p)
    ]), scales)
    rows = [{"model": "m", "item": i, "steer_target": s, "sample": j, "answer": a}
            for (i, s), ans in ANS.items() for j, a in enumerate(ans)]
    return make_responses(pd.DataFrame(rows), ref), ref


def _p_model(item, prompt):
    return np.bincount([int(a) - 1 for a in ANS[(item, prompt)]], minlength=3) / 2


def _mu(p):
    return float(np.dot(p, [0.0, 0.5, 1.0]))


@pytest.fixture(scope="module")
def tiny_result():
    resp, ref = _tiny()
    # two answers per cell: the hand computations below are of the plug-in, asked for by name
    return assess_steerability(resp, ref, n_resamples=200, n_permutations=200, rng=0, estimand="plug-in")


def test_default_estimand_refuses_two_answers_for_js_and_keeps_a_linear_metric():
    resp, ref = _tiny()
    with pytest.raises(ValueError, match=r"'js' is not estimable.*fewer than 10 valid answers.*estimand='plug-in'"):
        assess_steerability(resp, ref, n_resamples=20, n_permutations=20, rng=0)
    res = assess_steerability(resp, ref, metric="agreement", n_resamples=20, n_permutations=20, rng=0)
    assert res.provenance["estimand"] == "answer-distribution" and res.provenance["n_not_estimable"] == 0
    for t in ("A", "B"):  # agreement is linear in the distribution: sum_k p_k h_k, no correction
        d = [_p_model(q, t) @ H[q][t] - _p_model(q, "none") @ H[q][t] for q in H]
        assert _row(res.to_frame(), "gain", target=t)["estimate"] == pytest.approx(np.mean(d), abs=1e-12)


def _row(frame, quantity, **keys):
    m = frame["quantity"] == quantity
    for k, v in keys.items():
        m &= frame[k] == v
    assert m.sum() == 1, (quantity, keys)
    return frame[m].iloc[0]


def test_gain_matches_hand_computation(tiny_result):
    f = tiny_result.to_frame()
    for t in ("A", "B"):
        d = [(1 - jensenshannon(_p_model(q, t), H[q][t], base=2))
             - (1 - jensenshannon(_p_model(q, "none"), H[q][t], base=2)) for q in H]
        assert _row(f, "gain", target=t)["estimate"] == pytest.approx(np.mean(d), abs=1e-12)


def test_matrix_and_specificity_match_hand_computation(tiny_result):
    f = tiny_result.to_frame()
    M = {(s, r): np.mean([1 - jensenshannon(_p_model(q, s), H[q][r], base=2) for q in H])
         for s in ("none", "A", "B") for r in ("A", "B")}
    for (s, r), v in M.items():
        assert _row(f, "steering_matrix", steer=s, target=r)["estimate"] == pytest.approx(v, abs=1e-12)
    assert _row(f, "specificity", target="A")["estimate"] == pytest.approx(M["A", "A"] - M["B", "A"], abs=1e-12)
    assert _row(f, "discriminability", target="A")["estimate"] == pytest.approx(M["A", "A"] - M["A", "B"], abs=1e-12)
    auc = np.mean([float(M["A", "A"] > M["B", "A"]), float(M["B", "B"] > M["A", "B"])])
    assert _row(f, "identification_auc")["estimate"] == pytest.approx(auc)
    mat = tiny_result.matrix(model="m")
    assert list(mat.index) == ["none", "A", "B"] and mat.loc["A", "B"] == pytest.approx(M["A", "B"])


def test_exaggeration_slope_and_rms_match_closed_form(tiny_result):
    f = tiny_result.to_frame()
    for t in ("A", "B"):
        delta = np.array([_mu(_p_model(q, t)) - _mu(_p_model(q, "none")) for q in H])
        dev = np.array([_mu(H[q][t]) - np.mean([_mu(H[q][g]) for g in "ABC"]) for q in H])
        beta = (delta * dev).sum() / (dev**2).sum()
        assert _row(f, "exaggeration_slope", target=t)["estimate"] == pytest.approx(beta, abs=1e-12)
        rms = np.sqrt(np.mean((delta - beta * dev) ** 2))
        assert _row(f, "steering_noise_rms", target=t)["estimate"] == pytest.approx(rms, abs=1e-12)
    assert _row(f, "exaggeration_slope", target="A")["benchmark"] == 1.0


def test_frame_columns_intervals_and_families(tiny_result):
    f = tiny_result.to_frame()
    for c in ("quantity", "model", "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method",
              "p_value", "p_adjusted", "adjust_method", "family", "n_items", "units"):
        assert c in f
    g = f[f["quantity"] == "gain"]
    assert (g["p_adjusted"] >= g["p_value"] - 1e-15).all() and g["family"].str.contains("targets").all()
    ok = np.isfinite(f["conf_low"]) & np.isfinite(f["conf_high"])
    assert ((f.loc[ok, "conf_low"] <= f.loc[ok, "estimate"] + 1e-9)
            & (f.loc[ok, "estimate"] <= f.loc[ok, "conf_high"] + 1e-9)).all()
    assert tiny_result.to_frame(0.8)["conf_level"].eq(0.8).all()
    assert tiny_result.verdicts["verdict"].isin(["supported", "not supported", "inconclusive"]).all()
    assert "steerability" in tiny_result.summary()


def test_errors_name_the_argument():
    resp, ref = _tiny()
    with pytest.raises(ValueError, match=r"columns \['lang'\] are not in the responses"):
        assess_steerability(resp, ref, steer="lang")
    with pytest.raises(ValueError, match="name no reference group.*group_map"):
        assess_steerability(resp, ref, group_map={"A": "Z"})
    with pytest.raises(ValueError, match="available with `compare=` only"):
        assess_steerability(resp, ref, metric="spearman")
    with pytest.raises(ValueError, match="`metric` must be one of"):
        assess_steerability(resp, ref, metric="cosine")
    with pytest.raises(ValueError, match=r"`compare` must be \(column, level_a, level_b\)"):
        assess_steerability(resp, ref, compare=("x", "y"))


def test_without_baseline_gain_is_undefined_and_said_so():
    resp, ref = _tiny()
    keep = resp.data["steer_target"] != "none"
    rows = pd.DataFrame({"model": "m", "item": resp.data["item"], "steer_target": resp.data["steer_target"],
                         "sample": resp.data["sample"], "answer": resp.data["option"]})[keep]
    res = assess_steerability(make_responses(rows, ref), ref, n_resamples=50, n_permutations=50, rng=1,
                              estimand="plug-in")
    f = res.to_frame()
    assert "gain" not in set(f["quantity"]) and "exaggeration_slope" not in set(f["quantity"])
    assert "undefined" in res.provenance["note"] and "gain undefined" in res.summary()


# ---------------------------------------------------------------------------------------------------
# Mantel test against an independent loop over permutations
# ---------------------------------------------------------------------------------------------------
def _dist_matrix(rng, R):
    x = rng.normal(size=(R, 3))
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


def test_mantel_exact_p_against_loop_with_scipy():
    rng = np.random.default_rng(5)
    D1 = _dist_matrix(rng, 5)
    D2 = D1 + np.abs(_dist_matrix(rng, 5)) * 0.8
    np.fill_diagonal(D2, 0)
    iu = np.triu_indices(5, 1)
    r_obs = stats.pearsonr(D1[iu], D2[iu]).statistic
    rho_obs = stats.spearmanr(D1[iu], D2[iu]).statistic
    rs, rhos = [], []
    for p in permutations(range(5)):
        P = D1[np.ix_(p, p)]
        rs.append(stats.pearsonr(P[iu], D2[iu]).statistic)
        rhos.append(stats.spearmanr(P[iu], D2[iu]).statistic)
    p_loop = np.mean(np.array(rs) >= r_obs - 1e-12)
    p_rho = np.mean(np.array(rhos) >= rho_obs - 1e-12)
    out = mantel_test(D1, D2, n_permutations=1000)
    assert out["exact"] and out["n_permutations"] == 120
    assert out["r"] == pytest.approx(r_obs) and out["rho"] == pytest.approx(rho_obs)
    assert out["p_pearson"] == pytest.approx(p_loop) and out["p_spearman"] == pytest.approx(p_rho)


def test_mantel_monte_carlo_p_is_near_the_exact_one():
    rng = np.random.default_rng(6)
    D1 = _dist_matrix(rng, 6)
    D2 = D1 + 0.5 * _dist_matrix(rng, 6)
    exact = mantel_test(D1, D2, n_permutations=720)
    mc = mantel_test(D1, D2, n_permutations=700, rng=0)  # 700 < 6! = 720: Monte Carlo, (1 + b) / (1 + B)
    assert exact["exact"] and not mc["exact"]
    assert abs(mc["p_pearson"] - exact["p_pearson"]) < 4 * np.sqrt(exact["p_pearson"] * (1 - exact["p_pearson"]) / 700) + 2e-3
    with pytest.raises(ValueError, match="at least 3 groups"):
        mantel_test(D1[:2, :2], D2[:2, :2])


# ---------------------------------------------------------------------------------------------------
# null size and power: purpose-built vectorised simulation of answer distributions
# ---------------------------------------------------------------------------------------------------
def _simulate_similarities(rng, n_sets, *, Q=30, R=4, K=4, n_samples=5, weight=0.0):
    """Per data set: humans h (Q, R, K); model base p0 (Q, K); steering toward c answers from
    (1 - w) p0 + w h_c; the unsteered prompt from p0. Returns S (sets, Q, 1 + R, R)."""
    h = rng.dirichlet(np.ones(K), size=(n_sets, Q, R))
    p0 = rng.dirichlet(np.ones(K), size=(n_sets, Q))
    p = np.concatenate([p0[:, :, None], (1 - weight) * p0[:, :, None] + weight * h], axis=2)  # (sets, Q, 1+R, K)
    counts = rng.multinomial(n_samples, p)
    phat = counts / n_samples
    return js_similarity(phat[:, :, :, None, :], h[:, :, None, :, :], check=False)


def _tests_on(S, rng, B):
    """Raw p-values of the mean gain (sign flip), mean specificity and AUC (labels permuted within
    item) -- the procedures assess_steerability runs -- for one data set S (Q, 1 + R, R)."""
    R = S.shape[-1]
    gains = np.stack([S[:, 1 + r, r] - S[:, 0, r] for r in range(R)], -1)
    flip = sign_flip_test(gains.mean(-1), alternative="greater", n_resamples=B, rng=rng)
    T = S[None, :, 1:, :]
    null = _permutation_null(T, B, int(rng.integers(2**32)))  # keyed streams use a seed, not a generator's state
    obs = _matrix_stats(T.mean(1))
    p_sp = p_values(obs["specificity_mean"], null["specificity_mean"], "greater")[0]
    p_auc = p_values(obs["identification_auc"], null["identification_auc"], "greater")[0]
    return flip.p_value[0], p_sp, p_auc


def test_null_size_binomial():
    rng = np.random.default_rng(20260101)
    n_sets = 1000
    S = _simulate_similarities(rng, n_sets)
    p = np.array([_tests_on(S[i], rng, 199) for i in range(n_sets)])
    for j, name in enumerate(["gain", "specificity", "auc"]):
        k = int((p[:, j] <= 0.05).sum())
        bt = stats.binomtest(k, n_sets, 0.05, alternative="greater")
        assert k / n_sets <= 0.05 or bt.pvalue > 0.01, (name, k)


def test_power_on_a_realistic_steering_effect():
    rng = np.random.default_rng(7)
    n_sets = 200
    S = _simulate_similarities(rng, n_sets, weight=0.3)  # steered answers move 30% of the way to the target
    p = np.array([_tests_on(S[i], rng, 199) for i in range(n_sets)])
    power = (p <= 0.05).mean(0)
    assert power[1] > 0.8 and power[0] > 0.5, power  # specificity is detected more easily than gain


# ---------------------------------------------------------------------------------------------------
# the public path on simulate() (slow: about half a second per data set)
# ---------------------------------------------------------------------------------------------------
def _public_run(seed, slope, n_items=40):
    from robustalign.simulate import simulate

    sim = simulate(n_models=1, n_items=n_items, n_groups=6, factors={}, n_orders=1, n_steer=4, n_samples=5,
                   steer_slope=slope, rng=seed)
    resp, ref = sim.load()
    res = assess_steerability(resp, ref, n_resamples=99, n_permutations=199, rng=seed)
    f = res.to_frame().set_index("quantity")
    return (f.loc["gain_mean", "p_adjusted"] <= 0.05, f.loc["specificity_mean", "p_adjusted"] <= 0.05,
            res.verdicts["verdict"].iloc[0] == "supported")


@pytest.mark.slow
def test_public_null_size_on_simulate():
    n = 1000
    out = np.array([_public_run(s, 0.0) for s in range(n)])
    for j in range(3):
        k = int(out[:, j].sum())
        assert k / n <= 0.05 or stats.binomtest(k, n, 0.05, alternative="greater").pvalue > 0.01, (j, k)


@pytest.mark.slow
def test_public_power_on_simulate():
    out = np.array([_public_run(10_000 + s, 1.0) for s in range(200)])
    assert out[:, 1].mean() > 0.8


# ---------------------------------------------------------------------------------------------------
# coverage of the mean-gain interval when steering does nothing (independent null simulation: the
# model answers every prompt from the same distribution, so the gain estimand is exactly 0)
# ---------------------------------------------------------------------------------------------------
def _null_steering(seed, *, Q, n_samples=5, concentration=0.7, groups=("G1", "G2", "G3")):
    g = np.random.default_rng(seed)
    items = [f"q{i:02d}" for i in range(Q)]
    h = g.dirichlet(np.full(4, concentration), size=(Q, len(groups)))
    p = g.dirichlet(np.full(4, concentration), size=Q)  # one distribution for every prompt (null)
    scales = pd.DataFrame({"item": items, "options": "1|2|3|4", "ordinal": True})
    ref = make_reference(pd.DataFrame([{"item": it, "group": gr, "option": str(k + 1), "share": h[q, r, k]}
                                       for q, it in enumerate(items) for r, gr in enumerate(groups)
                                       for k in range(4)]), scales)
    rows = [{"model": "m", "item": it, "steer_target": lev, "sample": j, "answer": str(a + 1)}
            for q, it in enumerate(items) for lev in ("none", *groups)
            for j, a in enumerate(g.choice(4, size=n_samples, p=p[q]))]
    return make_responses(pd.DataFrame(rows), ref), ref


def _gain_mean_interval(seed, Q, n_resamples, **kw):
    resp, ref = _null_steering(seed, Q=Q, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateResampleWarning)
        res = assess_steerability(resp, ref, n_resamples=n_resamples, n_permutations=19, rng=seed)
    row = _row(res.to_frame(0.95), "gain_mean")
    lab = res.evidence["item_labels"]
    d = res.evidence["item_table"].to_numpy()[:, (lab["quantity"] == "gain_mean").to_numpy()][:, 0]
    return row, d


def test_mean_gain_interval_is_not_too_narrow_with_few_items():
    # With 8 items the plain bootstrap interval of a mean is about 0.78 of the t-interval (divisor n and normal
    # quantiles); the expanded interval has the t-interval's width (scipy), up to Monte Carlo error.
    ratios = []
    for seed in range(3):
        row, d = _gain_mean_interval(seed, 8, 4000, concentration=3.0, n_samples=10)  # JS needs 10 answers
        lo, hi = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
        ratios.append((row["conf_high"] - row["conf_low"]) / (hi - lo))
        assert row["method"].endswith("-expanded") and row["conf_level"] == 0.95
    assert 0.9 < np.mean(ratios) < 1.1, ratios


@pytest.mark.slow
def test_mean_gain_interval_covers_zero_under_the_null():
    # 20 items, skewed answer distributions: on these 600 data sets the plain BCa interval covers 0 in 0.922
    # [0.897, 0.942] (binomial p = 0.003), the expanded one in 0.955 [0.935, 0.970] (a few minutes on one core)
    n_sets = 600
    hits = sum(_gain_mean_interval(10_000 + s, 20, 999, n_samples=10)[0][["conf_low", "conf_high"]].pipe(
        lambda r: r["conf_low"] <= 0 <= r["conf_high"]) for s in range(n_sets))
    assert 0.93 <= hits / n_sets <= 0.97, hits
    assert stats.binomtest(int(hits), n_sets, 0.95).pvalue > 0.01, hits


# ---------------------------------------------------------------------------------------------------
# multicultural alignment: congruent vs incongruent steering, per language
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def multicultural():
    from robustalign.datasets import load_multicultural_alignment

    return load_multicultural_alignment()


@pytest.mark.parametrize("metric", ["js", "spearman"])
def test_multicultural_congruent_vs_incongruent(multicultural, metric):
    d = multicultural
    res = assess_steerability(d.steering, d.reference_country, by=["model", "language"], metric=metric,
                              compare=("congruent", "congruent", "incongruent"), n_resamples=300,
                              n_permutations=300, rng=3)
    f = res.to_frame()
    diff = f[f["quantity"].str.endswith("difference")]
    assert sorted(diff["language"]) == ["da", "en", "nl", "pt"]
    assert ((diff["conf_low"] <= diff["estimate"]) & (diff["estimate"] <= diff["conf_high"])).all()
    assert (diff["p_adjusted"] >= diff["p_value"] - 1e-15).all() and diff["family"].str.contains("4 tests").all()
    assert "undefined" in res.provenance["note"]
    assert len(res.verdicts) == 4
    if metric == "js":
        # the paired difference is the mean over items of (mean over congruent - mean over incongruent)
        st = d.steering.data.query("language == 'da'")
        gt = d.reference_country.shares.query("option == 'pro'").set_index(["item", "group"])["share"]
        cell = st.groupby(["item", "steer_target", "congruent"], observed=True)["score"].mean().reset_index()
        cell = cell[[(i, g) in gt.index for i, g in zip(cell["item"], cell["steer_target"])]]  # no reference: unscored
        cell["s"] = [1 - jensenshannon([1 - m, m], [1 - gt[(i, g)], gt[(i, g)]], base=2)
                     for i, g, m in zip(cell["item"], cell["steer_target"], cell["score"])]
        per = cell.groupby(["item", "congruent"])["s"].mean().unstack().dropna()
        est = (per["congruent"] - per["incongruent"]).mean()
        assert diff.set_index("language").loc["da", "estimate"] == pytest.approx(est, abs=1e-12)


def test_compare_spearman_keeps_exact_human_ties():
    # A and B tie on q1 at human mean position 0.6 (0.6 * 0.5 + 0.3 = 0.4 * 0.5 + 0.4), which floating point
    # sums to 0.6 and 0.6000000000000001; the model side is rounded, so the human side must be as well, or
    # the tie is broken by rounding noise and the rank correlation changes
    h = {"q1": {"A": [0.1, 0.6, 0.3], "B": [0.2, 0.4, 0.4], "C": [0.5, 0.3, 0.2], "D": [0.2, 0.3, 0.5]},
         "q2": {"A": [0.6, 0.2, 0.2], "B": [0.3, 0.3, 0.4], "C": [0.2, 0.6, 0.2], "D": [0.4, 0.4, 0.2]},
         "q3": {"A": [0.2, 0.2, 0.6], "B": [0.5, 0.4, 0.1], "C": [0.1, 0.1, 0.8], "D": [0.3, 0.5, 0.2]}}
    ans = {"A": ["2", "3", "3"], "B": ["2", "2", "3"], "C": ["1", "2", "3"], "D": ["3", "1", "2"]}  # q1..q3
    scales = pd.DataFrame({"item": list(h), "options": "1|2|3", "ordinal": True})
    ref = make_reference(pd.DataFrame([{"item": i, "group": g, "option": str(k + 1), "share": s}
                                       for i, gs in h.items() for g, p in gs.items() for k, s in enumerate(p)]), scales)
    rows = [{"model": "m", "item": q, "steer_target": t, "arm": "x" if t in "AB" else "y", "answer": a}
            for t, a_t in ans.items() for q, a in zip(h, a_t)]
    with warnings.catch_warnings():  # 3 items: some resamples have a constant arm
        warnings.simplefilter("ignore", DegenerateResampleWarning)
        res = assess_steerability(make_responses(pd.DataFrame(rows), ref), ref, metric="spearman",
                                  compare=("arm", "x", "y"), n_resamples=50, n_permutations=50, rng=0)
    f = res.to_frame().set_index("quantity")
    tenths = {(q, g): 5 * p[1] + 10 * p[2] for q, gs in h.items() for g, p in gs.items()}  # position x 10
    for arm, targets in (("a", "AB"), ("b", "CD")):
        cells = [(q, t) for t in targets for q in h]
        model = [int(ans[t][list(h).index(q)]) for q, t in cells]
        want = stats.spearmanr(model, [round(tenths[c], 9) for c in cells]).statistic
        assert f.loc[f"alignment_spearman_{arm}", "estimate"] == pytest.approx(want, abs=1e-12)


def test_plots_return_axes(tiny_result, multicultural):
    import matplotlib

    matplotlib.use("Agg")
    from robustalign.plots.steerability import plot_steering_gains, plot_steering_matrix

    ax = plot_steering_matrix(tiny_result, model="m")
    assert ax.get_images()[0].get_array().shape == (3, 2)
    ax = plot_steering_gains(tiny_result)
    assert len(ax.get_yticks()) == 2
    axes = tiny_result.plot()
    assert len(axes) == 2


def test_incomplete_design_warns_about_item_mix(multicultural):
    from robustalign._errors import RobustAlignWarning

    d = multicultural
    with pytest.warns(RobustAlignWarning, match="incomplete.*item mix"):
        res = assess_steerability(d.steering, d.reference_country, by=["model", "language"], baseline=None,
                                  n_resamples=50, n_permutations=50, rng=4)
    assert res.provenance["incomplete_design"] > 0 and not res.provenance["gain_available"]


def test_a_cells_permutation_null_does_not_depend_on_the_other_cells():
    rng = np.random.default_rng(3)
    T = rng.uniform(size=(2, 12, 3, 3))
    both = _permutation_null(T, 300, 11, keys=[("model_a",), ("model_b",)])
    alone = _permutation_null(T[1:], 300, 11, keys=[("model_b",)])
    for name in both:
        assert np.array_equal(both[name][:, 1], alone[name][:, 0]), name
    assert not np.array_equal(both["specificity_mean"][:, 0], both["specificity_mean"][:, 1])


def test_a_verdict_that_changes_with_the_seed_is_flagged_within_monte_carlo_error(multicultural):
    """The Dutch congruent-vs-incongruent comparison sits near alpha: at 200 permutations its verdict
    changes between seeds. Wherever a seed's verdict differs from the others', that verdict must say it
    is within Monte Carlo error; a verdict far from its threshold (en, da, pt: p_adj = 1) never is."""
    d = multicultural
    runs = []
    for seed in range(12):
        res = assess_steerability(d.steering, d.reference_country, by=["model", "language"], metric="spearman",
                                  compare=("congruent", "congruent", "incongruent"), n_resamples=100,
                                  n_permutations=200, rng=seed)
        runs.append(res.verdicts.set_index("language")[["verdict", "mc_error", "reason"]])
    verdicts = pd.concat([r["verdict"] for r in runs], axis=1)
    flags = pd.concat([r["mc_error"] for r in runs], axis=1)
    assert verdicts.loc["nl"].nunique() > 1  # the premise: the seed decides this verdict at B = 200
    for lang in verdicts.index:
        if verdicts.loc[lang].nunique() > 1:
            assert flags.loc[lang].all(), lang
    assert not flags.loc[["da", "en", "pt"]].to_numpy().any()
    flagged = [r.loc["nl", "reason"] for r in runs if r.loc["nl", "mc_error"]]
    assert flagged and all("within Monte Carlo error" in t and "permutations would settle it" in t for t in flagged)


# ---------------------------------------------------------------------------------------------------
# Monte Carlo error of the full-mode verdict (gain and specificity)
# ---------------------------------------------------------------------------------------------------
def _strong_steering(seed=0, Q=30, n_samples=10):
    """Each target prompt answers from its target's distribution, the unsteered prompt uniformly: the mean
    gain and specificity are far above 0, so no sign flip or label permutation reaches them and their
    p-values are the smallest possible, 1 / (B + 1), at every seed (a flip of all 30 signs to +1: 2^-30)."""
    g = np.random.default_rng(seed)
    items, groups = [f"q{i:02d}" for i in range(Q)], ("G1", "G2", "G3")
    h = g.dirichlet(np.full(4, 0.3), size=(Q, 3))
    scales = pd.DataFrame({"item": items, "options": "1|2|3|4", "ordinal": True})
    ref = make_reference(pd.DataFrame([{"item": it, "group": gr, "option": str(k + 1), "share": h[q, r, k]}
                                       for q, it in enumerate(items) for r, gr in enumerate(groups)
                                       for k in range(4)]), scales)
    rows = [{"model": "m", "item": it, "steer_target": lev, "sample": j, "answer": str(a + 1)}
            for q, it in enumerate(items) for r, lev in enumerate(("none", *groups))
            for j, a in enumerate(g.choice(4, size=n_samples, p=np.full(4, 0.25) if r == 0 else h[q, r - 1]))]
    return make_responses(pd.DataFrame(rows), ref), ref


def test_full_verdict_within_monte_carlo_error_is_flagged_and_resolved_by_more_permutations():
    from robustalign.resampling.mcerror import resolve_by_resampling

    resp, ref = _strong_steering()

    def run(B):
        res = assess_steerability(resp, ref, n_resamples=200, n_permutations=B, rng=1)
        return res, _row(res.to_frame(), "gain_mean")

    # flagged: at 29 permutations the smallest p is 1/30 = 0.033, MC SE 0.033, within 2 SEs of 0.05
    res, g = run(29)
    v = res.verdicts.iloc[0]
    assert g["p_adjusted"] == pytest.approx(1 / 30) and g["p_adjusted_mcse"] == pytest.approx(
        np.sqrt(1 / 30 * 29 / 30 / 29))
    assert v["verdict"] == "supported" and bool(v["mc_error"])
    assert "within Monte Carlo error" in v["reason"] and "adjusted p" in v["reason"]
    assert "resamples (now 29) would settle it" in v["reason"]
    # resolved: doubling up to a stated limit; 1/59 is still within 2 SEs (0.0331 < 0.0339), 1/117 is not
    out = resolve_by_resampling(lambda B: tuple(run(B)[1][["p_adjusted", "p_adjusted_mcse"]]), 0.05,
                                n_resamples=29, max_resamples=1000)
    assert out["decision"] == "below" and out["n_resamples"] == 116
    assert [b for b, *_ in out["history"]] == [29, 58, 116]
    res, _ = run(116)
    assert res.verdicts.iloc[0]["verdict"] == "supported" and not bool(res.verdicts.iloc[0]["mc_error"])
    # a limit too low to settle it is reported as such
    assert resolve_by_resampling(lambda B: tuple(run(B)[1][["p_adjusted", "p_adjusted_mcse"]]), 0.05,
                                 n_resamples=29, max_resamples=58)["decision"] == "within Monte Carlo error"
