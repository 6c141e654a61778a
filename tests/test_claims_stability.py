"""assess_stability: verdict calibration on simulations with known truth, and every statistic against an
independent implementation (hand counts, pingouin, krippendorff, scipy)."""

import warnings

import krippendorff
import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats

from robustalign.claims import assess_stability
from robustalign.claims.stability import _icc_ci, ci_frame
from robustalign.metrics import between_group_sd
from robustalign.schema import Scale, make_responses
from robustalign.simulate import _ordinal_probs, simulate

SKIP = ("pairwise", "agreement", "ranking", "validity", "retest")
LABELS = ("Strongly disagree", "Disagree", "Agree", "Strongly agree")
SCALE4 = Scale(("1", "2", "3", "4"), LABELS, True)


def _choice(table, model="m", factor="fmt"):
    """table: dict item -> list of answers (codes) per level; None = refusal."""
    rows = []
    for item, answers in table.items():
        for j, a in enumerate(answers):
            rows.append({"model": model, "item": item, factor: f"L{j}",
                         "raw_text": "I cannot answer that." if a is None else LABELS[int(a) - 1]})
    scales = {i: SCALE4 for i in table}
    return make_responses(pd.DataFrame(rows), scales=scales)


# ---------------------------------------------------------------------------------------------- hand values
def test_flip_rate_and_shift_match_hand_counts():
    # 4 items x 3 levels; q4 refused at level 2
    t = {"q1": ["1", "1", "2"], "q2": ["3", "4", "4"], "q3": ["2", "2", "2"], "q4": ["4", None, "1"]}
    res = assess_stability(_choice(t), flip_margin=0.5, n_resamples=200, n_permutations=200, rng=1,
                           skip=("agreement", "ranking"))
    f = res.to_frame()
    pair = f[f["quantity"] == "flip_rate"].set_index(["level_a", "level_b"])["estimate"]
    # L0-L1: q1 same, q2 flip, q3 same, q4 missing -> 1/3; L0-L2: q1, q2, q4 flip -> 3/4; L1-L2: q1 flip -> 1/3
    assert pair[("L0", "L1")] == pytest.approx(1 / 3)
    assert pair[("L0", "L2")] == pytest.approx(3 / 4)
    assert pair[("L1", "L2")] == pytest.approx(1 / 3)
    mean = f.loc[f["quantity"] == "flip_rate_mean", "estimate"].item()
    assert mean == pytest.approx((1 / 3 + 3 / 4 + 1 / 3) / 3)
    shift = f[f["quantity"] == "ordinal_shift"].set_index(["level_a", "level_b"])["estimate"]
    assert shift[("L0", "L2")] == pytest.approx((1 / 3 + 1 / 3 + 0 + 3 / 3) / 4)  # |k_a - k_b| / (K - 1)
    n = f[f["quantity"] == "flip_rate"].set_index(["level_a", "level_b"])["n_items"]
    assert n[("L0", "L1")] == 3 and n[("L0", "L2")] == 4
    # the refusal is excluded and counted, never imputed
    sc = res.evidence["status_counts"]
    assert int(sc["refusal"].sum()) == 1 and int(sc["valid"].sum()) == 11
    # every interval contains its estimate
    rates = f[f["quantity"].isin(["flip_rate", "flip_rate_mean"])]
    assert ((rates["conf_low"] <= rates["estimate"] + 1e-12) & (rates["estimate"] <= rates["conf_high"] + 1e-12)).all()


def test_tied_modes_count_as_half_flip():
    # one model, two levels, 2 samples per cell: level a ties options 1 and 2, level b picks 1
    rows = [{"model": "m", "item": "q", "fmt": "a", "sample": 0, "answer": "1"},
            {"model": "m", "item": "q", "fmt": "a", "sample": 1, "answer": "2"},
            {"model": "m", "item": "q", "fmt": "b", "sample": 0, "answer": "1"},
            {"model": "m", "item": "q", "fmt": "b", "sample": 1, "answer": "1"},
            {"model": "m", "item": "r", "fmt": "a", "sample": 0, "answer": "3"},
            {"model": "m", "item": "r", "fmt": "a", "sample": 1, "answer": "3"},
            {"model": "m", "item": "r", "fmt": "b", "sample": 0, "answer": "3"},
            {"model": "m", "item": "r", "fmt": "b", "sample": 1, "answer": "3"}]
    resp = make_responses(pd.DataFrame(rows), scales={"q": SCALE4, "r": SCALE4})
    res = assess_stability(resp, flip_margin=0.5, n_resamples=100, n_permutations=100, rng=0,
                           skip=("agreement", "ranking", "pairwise"))
    f = res.to_frame()
    assert f.loc[f["quantity"] == "flip_rate", "estimate"].item() == pytest.approx((0.5 + 0.0) / 2)
    # test-retest: q/a 1 of 1 sample pairs differs, q/b 0, r/a 0, r/b 0 -> per item 0.5, 0 -> 0.25
    rt = f.loc[f["quantity"] == "retest_flip_rate", "estimate"].item()
    assert rt == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------- references
def _agreement_case():
    rng = np.random.default_rng(7)
    true = rng.integers(1, 5, 25)
    table = {}
    for q, t in enumerate(true):
        ans = np.clip(t + rng.choice([-1, 0, 0, 0, 1], 4), 1, 4)
        table[f"q{q:02d}"] = [str(a) for a in ans]
    return table


def test_icc_matches_pingouin_and_alpha_matches_krippendorff():
    table = _agreement_case()
    res = assess_stability(_choice(table), flip_margin=0.5, n_resamples=300, n_permutations=100, rng=3,
                           skip=("ranking", "pairwise"))
    f = res.to_frame()
    X = np.array([[int(a) for a in v] for v in table.values()], float)
    pos = (X - 1) / 3
    long = pd.DataFrame({"t": np.repeat(np.arange(len(pos)), 4), "r": np.tile(np.arange(4), len(pos)),
                         "y": pos.ravel()})
    ref = pg.intraclass_corr(long, targets="t", raters="r", ratings="y").set_index("Type")
    for q, t in (("icc2_1", "ICC(A,1)"), ("icc3_1", "ICC(C,1)")):
        row = f[f["quantity"] == q].iloc[0]
        assert row["estimate"] == pytest.approx(ref.loc[t, "ICC"], abs=1e-12)
        lo, hi = ref.loc[t, "CI95"]
        assert row["conf_low"] == pytest.approx(lo, abs=0.006) and row["conf_high"] == pytest.approx(hi, abs=0.006)
    # at another level the F-test interval is narrower and still contains the estimate
    f80 = res.to_frame(0.8)
    r80 = f80[f80["quantity"] == "icc2_1"].iloc[0]
    r95 = f[f["quantity"] == "icc2_1"].iloc[0]
    assert r95["conf_low"] < r80["conf_low"] < r80["estimate"] < r80["conf_high"] < r95["conf_high"]
    a_ref = krippendorff.alpha(reliability_data=X.T, level_of_measurement="ordinal")
    row = f[f["quantity"] == "krippendorff_alpha"].iloc[0]
    assert row["estimate"] == pytest.approx(a_ref, abs=1e-12)
    assert row["conf_low"] < row["estimate"] < row["conf_high"]
    ag = res.evidence["agreement"][0]
    assert ag["alpha_check"] == pytest.approx(a_ref, abs=1e-10)  # the bootstrap's own alpha = krippendorff's


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_vectorised_alpha_matches_krippendorff_on_resampled_units(level):
    from robustalign.claims.stability import _alpha_stat, _delta2, _unit_coincidences

    rng = np.random.default_rng(11)
    data = rng.integers(0, 5, (6, 30)).astype(float)  # raters x units
    data[rng.random(data.shape) < 0.2] = np.nan
    vals = data.T
    pair = np.isfinite(vals).sum(1) >= 2
    dom = np.unique(vals[np.isfinite(vals)])
    counts = np.stack([(vals == v).sum(1) for v in dom], 1).astype(float)[pair]
    o = _unit_coincidences(counts)
    stat = _alpha_stat(None if level == "ordinal" else _delta2(dom, level), level)
    idx = rng.integers(0, pair.sum(), (5, pair.sum()))
    got = stat(o[idx])[:, 0]
    want = [krippendorff.alpha(reliability_data=vals[pair][i].T, level_of_measurement=level) for i in idx]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_icc_interval_formula_matches_pingouin_on_its_example():
    data = pg.read_dataset("icc")
    ref = pg.intraclass_corr(data, targets="Wine", raters="Judge", ratings="Scores").set_index("Type")
    wide = data.pivot_table(index="Wine", columns="Judge", values="Scores").to_numpy(float)
    from robustalign.claims.stability import _mean_squares

    ms = _mean_squares(wide)
    for t in ("ICC(A,1)", "ICC(C,1)"):
        lo, hi = _icc_ci(ms, t, 0.95)
        assert lo == pytest.approx(ref.loc[t, "CI95"][0], abs=0.006)
        assert hi == pytest.approx(ref.loc[t, "CI95"][1], abs=0.006)


def test_two_level_permutation_p_matches_scipy():
    rng = np.random.default_rng(5)
    n = 9
    a = rng.integers(1, 5, n)
    b = np.clip(a + rng.choice([0, 0, 1, 1, 2], n), 1, 4)
    table = {f"q{i}": [str(a[i]), str(b[i])] for i in range(n)}
    res = assess_stability(_choice(table), flip_margin=0.5, n_resamples=200, n_permutations=20_000, rng=2,
                           skip=SKIP)
    e = res.evidence["effects"][0]
    d = (b - a) / 3
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided")
    assert e["estimate"] == pytest.approx(d.mean())
    assert e["p_value"] == pytest.approx(ref.pvalue, abs=0.01)


def test_spread_permutation_p_matches_scipy_on_complete_blocks():
    # 3 levels, complete blocks: the additive-model SD is the SD of level means; compare the null with
    # scipy's within-item permutation of the same statistic
    rng = np.random.default_rng(8)
    n = 12
    base = rng.integers(1, 4, n)
    table = {f"q{i}": [str(base[i]), str(min(4, base[i] + rng.integers(0, 2))), str(base[i])] for i in range(n)}
    res = assess_stability(_choice(table), flip_margin=0.5, n_resamples=200, n_permutations=20_000, rng=4,
                           skip=SKIP)
    e = res.evidence["effects"][0]
    X = np.array([[int(v) for v in r] for r in table.values()], float) / 3
    assert e["estimate"] == pytest.approx(np.std(X.mean(0), ddof=1))

    def stat(*cols, axis=-1):
        return np.std(np.stack([np.mean(c, axis=axis) for c in cols]), axis=0, ddof=1)

    ref = stats.permutation_test(tuple(X.T), stat, permutation_type="samples", n_resamples=20_000,
                                 alternative="greater", rng=0)
    assert e["p_value"] == pytest.approx(ref.pvalue, abs=0.012)


def test_kendall_tau_matches_scipy():
    sim = simulate(n_models=5, n_items=30, factors={"template": 3}, n_orders=1, n_samples=1, sd_factor=0.5,
                   sd_model_factor=0.4, rng=12)
    resp, ref = sim.load()
    res = assess_stability(resp, n_resamples=200, n_permutations=100, margin=0.1, rng=0,
                           skip=("pairwise", "agreement", "validity", "retest"))
    f = res.to_frame()
    means = pd.DataFrame({"model": res.evidence["ranking"][0]["boot"].labels["unit"],
                          "level": res.evidence["ranking"][0]["boot"].labels["level"],
                          "m": res.evidence["ranking"][0]["boot"].estimate})
    # independent: mean position per model x template from the raw answers
    d = resp.valid().copy()
    d["pos"] = (d["option"].astype(int) - 1) / 3
    raw = d.groupby(["model", "template", "item"], observed=True)["pos"].mean().groupby(
        ["model", "template"], observed=True).mean()
    np.testing.assert_allclose(means.set_index(["model", "level"])["m"].sort_index().to_numpy(),
                               raw.sort_index().to_numpy(), atol=1e-12)
    discs = []
    for r in f[f["quantity"] == "kendall_tau"].itertuples():
        x = raw.xs(r.level_a, level="template")
        y = raw.xs(r.level_b, level="template")
        assert r.estimate == pytest.approx(stats.kendalltau(x, y).statistic)
        disc = np.mean([np.sign(x.iloc[i] - x.iloc[j]) * np.sign(y.iloc[i] - y.iloc[j]) < 0
                        for i in range(5) for j in range(i + 1, 5)])
        assert r.estimate == pytest.approx(1 - 2 * disc)  # no ties among 5 mean positions: tau = 1 - 2 D
        assert r.conf_low <= r.conf_high
        discs.append(disc)
    assert f.loc[f["quantity"] == "discordant_share", "estimate"].item() == pytest.approx(np.mean(discs))
    assert (f["quantity"] == "p_rank_flip").sum() == 10


def test_margin_from_reference_is_between_group_sd():
    sim = simulate(n_models=1, n_items=20, n_groups=5, factors={"template": 2}, n_orders=1, n_samples=1, rng=3)
    resp, ref = sim.load()
    res = assess_stability(resp, ref, n_resamples=100, n_permutations=100, rng=0, skip=SKIP)
    sh = ref.shares.copy()
    sh["pos"] = sh["_k"] / 3 * sh["share"]
    mp = sh.groupby(["item", "group"])["pos"].sum().unstack()
    used = res.evidence["effects"][0]["items_used"]
    assert res.verdicts["margin"].item() == pytest.approx(between_group_sd(mp.loc[used].to_numpy(), ddof=1))


# ---------------------------------------------------------------------------------------------- errors
def test_errors_name_the_argument():
    resp = _choice({"q1": ["1", "2"], "q2": ["2", "2"]})
    with pytest.raises(ValueError, match="`factors` entry 'nope' is not a design factor"):
        assess_stability(resp, factors=["nope"])
    with pytest.raises(ValueError, match="`margin` must be a positive number"):
        assess_stability(resp, margin=-1)
    with pytest.raises(ValueError, match="`confidence_level` must be in"):
        assess_stability(resp, confidence_level=95)
    with pytest.raises(ValueError, match="`skip` entries must be in"):
        assess_stability(resp, skip=["effects"])
    with pytest.raises(ValueError, match="`by='country'` is not a column"):
        assess_stability(resp, by="country")


def test_no_margin_is_inconclusive_and_says_what_to_pass():
    resp = _choice({f"q{i}": ["1", "2"] for i in range(5)})
    res = assess_stability(resp, n_resamples=100, n_permutations=100, rng=0, skip=SKIP)
    assert res.verdicts["verdict"].item() == "inconclusive"
    assert "pass `margin=`" in res.verdicts["reason"].item()


def test_nonconverged_fit_is_named_in_the_verdict():
    class Fit:
        converged = False

        def variance_shares(self):
            return pd.DataFrame({"model": ["m"], "component": ["template"], "estimate": [0.1],
                                 "conf_low": [0.05], "conf_high": [0.2], "conf_level": [0.94]})

    resp = _choice({f"q{i}": ["1", "2"] for i in range(5)})
    res = assess_stability(resp, margin=0.2, n_resamples=100, n_permutations=100, rng=0, skip=SKIP, fit=Fit())
    assert "did not converge" in res.verdicts["reason"].item()
    vs = res.to_frame()
    assert (vs["quantity"] == "variance_share").sum() == 1


def test_wilson_floor_for_rates_at_zero():
    from robustalign.resampling import cluster_bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = cluster_bootstrap(np.zeros((11, 1)), n_resamples=50, rng=0)
    f = ci_frame(b, 0.95, 11)
    assert f["conf_low"].item() == 0 and f["conf_high"].item() == pytest.approx(0.2588, abs=1e-3)


# ---------------------------------------------------------------------------------------------- calibration
def _true_spread(sim, m=0, f="template"):
    """True SD (ddof=1) across levels of the mean position, from the generating model (no noise)."""
    t = sim.truth
    beta = t["beta_model"][f][m]
    eta = t["mu_model"][m] + t["a_model_item"][m][:, None] + beta[None, :] + t["u_item_format"]
    p = _ordinal_probs(t["tau"][:, None, :], eta)
    K = p.shape[-1]
    pos = (p * (np.arange(K) / (K - 1))).sum(-1)
    return np.std(pos.mean(0), ddof=1)


def _human_sd(sim):
    p = sim.truth["p_human"]
    K = p.shape[-1]
    return between_group_sd((p * (np.arange(K) / (K - 1))).sum(-1).T, ddof=1)


def _pct_like(seed, stable):
    return simulate(n_models=1, n_items=62, n_groups=10, factors={"template": 10}, n_orders=1, n_samples=1,
                    sd_factor=0.0 if stable else 1.5, sd_model_factor=0.0, sd_item_format=0.3, rng=seed)


def _mca_like(seed, stable):
    """32 items x 4 languages, a 0-1 score per cell (share of 10 sampled binary answers), 4 human groups."""
    sim = simulate(n_models=1, n_items=32, n_groups=4, factors={"language": 4}, n_orders=1, n_samples=10, K=2,
                   sd_factor=0.0 if stable else 2.5, sd_model_factor=0.0, sd_item_format=0.3, rng=seed)
    r = sim.responses
    r = r.assign(score=(r["answer_position"] == 2).astype(float))
    sc = r.groupby(["model", "item", "language"], observed=True)["score"].mean().reset_index()
    return sim, sc


def _run(kind, seed, stable, n_resamples=300):
    if kind == "pct":
        sim = _pct_like(seed, stable)
        resp, _ = sim.load()
    else:
        sim, sc = _mca_like(seed, stable)
        resp = make_responses(sc, scales={i: Scale(("con", "pro"), ("con", "pro"), True) for i in sc["item"]})
    delta = _human_sd(sim)
    res = assess_stability(resp, margin=delta, n_resamples=n_resamples, n_permutations=100, rng=seed, skip=SKIP)
    return res.verdicts["verdict"].item(), _true_spread(sim, f="template" if kind == "pct" else "language"), delta


def _calibrate(kind, n_sims):
    hits = {True: 0, False: 0}
    ran = {True: 0, False: 0}
    seed = 0
    for stable in (True, False):
        while ran[stable] < n_sims:
            seed += 1
            verdict, truth, delta = _run(kind, seed, stable)
            # known truth: stable = true spread well inside the margin, unstable = well beyond it
            if stable and truth > 0.5 * delta or not stable and truth < 1.5 * delta:
                continue
            ran[stable] += 1
            hits[stable] += verdict == ("supported" if stable else "not supported")
    for stable in (True, False):
        rate = hits[stable] / n_sims
        p_below = stats.binomtest(hits[stable], n_sims, 0.9, alternative="less").pvalue
        assert rate >= 0.9 and p_below > 0.05, (kind, stable, hits[stable], n_sims, p_below)
    return hits


@pytest.mark.parametrize("kind", ["pct", "mca"])
def test_verdict_calibration(kind):
    _calibrate(kind, 12)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pct", "mca"])
def test_verdict_calibration_full(kind):
    _calibrate(kind, 100)


# ---------------------------------------------------------------------------------------------- bundled data
def test_llm_values_pct_paraphrase_and_forcing():
    from robustalign.datasets import load_llm_values_pct

    resp = load_llm_values_pct("paraphrase")
    res = assess_stability(resp, flip_margin=0.10, n_resamples=400, n_permutations=400, rng=2024,
                           skip=("pairwise", "ranking"))
    f = res.to_frame()
    fr = f[f["quantity"] == "flip_rate_mean"]
    assert len(fr) == 8 and fr["estimate"].between(0, 1).all()
    pairs = f[f["quantity"] == "flip_rate"]
    assert len(pairs) == 8 * 45
    for q in ("flip_rate_mean", "flip_rate"):
        r = f[f["quantity"] == q]
        assert ((r["conf_low"] <= r["estimate"] + 1e-12) & (r["estimate"] <= r["conf_high"] + 1e-12)).all()
    # rows accounted for: valid + excluded = all rows
    sc = res.evidence["status_counts"]
    assert int(sc["total"].sum()) == len(resp.data) == 4960
    assert int(sc["valid"].sum()) == int((resp.data["status"] == "valid").sum())
    assert set(res.verdicts["verdict"]) <= {"supported", "not supported", "inconclusive"}
    assert (f["quantity"] == "valid_rate").sum() == 80
    forcing = assess_stability(load_llm_values_pct("forcing"), flip_margin=0.10, n_resamples=200,
                               n_permutations=200, rng=2024, skip=("pairwise", "ranking", "agreement"))
    v = forcing.to_frame()
    v = v[v["quantity"] == "valid_rate"]
    assert len(v) == 50
    assert ((v["conf_low"] <= v["estimate"] + 1e-9) & (v["estimate"] <= v["conf_high"] + 1e-9)).all()


def test_plots_return_axes():
    import matplotlib

    matplotlib.use("Agg")
    from robustalign.plots.stability import plot_flip_rates

    sim = simulate(n_models=2, n_items=20, factors={"template": 3}, n_orders=1, n_samples=2, rng=1)
    resp, ref = sim.load()
    res = assess_stability(resp, ref, n_resamples=100, n_permutations=100, rng=0, skip=("agreement", "ranking"))
    ax = res.plot()
    assert len(ax.get_yticklabels()) == 2
    ax2 = plot_flip_rates(res)
    assert ax2.get_xlim()[1] > 1
