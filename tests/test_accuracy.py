"""Accuracy against a gold answer per culture (robustalign.claims.accuracy).

Reference values come from statsmodels (Wilson), from pandas group means written here, and from
simulations with known truth: items are the sampling unit, item q of culture c has success probability
expit(mu_m + u_q + v_qm) with u_q ~ N(0, 1) shared by the models and v_qm ~ N(0, 0.5^2); the estimand is
E[expit(mu_m + z sqrt(1 + 0.25))], computed by Gauss-Hermite quadrature. Each simulated data set is a
separate culture whose items are nested in it, so its bootstrap runs on its own keyed stream and the
coverage counts are binomial.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit
from statsmodels.stats.proportion import proportion_confint

from robustalign import SchemaError
from robustalign.claims.accuracy import assess_accuracy, load_correctness, wilson_interval

MU = {"a": 0.4, "b": 0.0}
SD_U, SD_V = 1.0, 0.5


def _truth(mu: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(120)
    return float((w * expit(mu + np.hypot(SD_U, SD_V) * x)).sum() / w.sum())


def _simulate(gen, n_sets: int, n_items: int, mu: dict = MU) -> pd.DataFrame:
    """n_sets independent data sets as cultures c0..; items nested in cultures; one answer per item."""
    u = gen.normal(0, SD_U, (n_sets, n_items, 1))
    v = gen.normal(0, SD_V, (n_sets, n_items, len(mu)))
    y = (gen.random((n_sets, n_items, len(mu))) < expit(np.array(list(mu.values())) + u + v)).astype(int)
    s, q, m = np.meshgrid(np.arange(n_sets), np.arange(n_items), np.arange(len(mu)), indexing="ij")
    return pd.DataFrame({"model": np.array(list(mu))[m.ravel()], "culture": [f"c{i}" for i in s.ravel()],
                         "item": [f"c{i}-q{j}" for i, j in zip(s.ravel(), q.ravel())], "correct": y.ravel()})


def _judge(hits: int, n: int, what: str, lo=0.93, hi=0.97):
    rate = hits / n
    p = stats.binomtest(hits, n, 0.95).pvalue
    assert lo <= rate <= hi, f"{what}: coverage {rate:.3f} outside [{lo}, {hi}] (binomial p = {p:.3g})"
    assert p > 0.01, f"{what}: coverage {rate:.3f}; the binomial test against 0.95 rejects (p = {p:.3g})"


def _coverage(n_sets: int, n_items: int, seed: int):
    df = _simulate(np.random.default_rng(seed), n_sets, n_items)
    res = assess_accuracy(df, n_resamples=999, n_permutations=199, rng=seed)
    f = res.to_frame()
    acc = f[(f.quantity == "accuracy") & (f.model == "a") & (f.culture != "(all)")]
    hit_acc = int(((acc.conf_low <= _truth(MU["a"])) & (_truth(MU["a"]) <= acc.conf_high)).sum())
    d = f[(f.quantity == "paired difference") & (f.culture != "(all)")]
    diff = _truth(MU["a"]) - _truth(MU["b"])
    hit_d = int(((d.conf_low <= diff) & (diff <= d.conf_high)).sum())
    return hit_acc, len(acc), hit_d, len(d)


def test_item_clustered_intervals_cover_accuracy_and_paired_difference():
    hit_acc, n_acc, hit_d, n_d = _coverage(400, 50, 20261203)
    assert n_acc == n_d == 400
    _judge(hit_acc, n_acc, "accuracy")
    _judge(hit_d, n_d, "paired difference")


@pytest.mark.slow
def test_item_clustered_intervals_cover_long_run():
    """3000 data sets of 40 items, in batches of 300 (the per-item table is dense: items x cells)."""
    counts = np.array([_coverage(300, 40, seed) for seed in range(100, 110)]).sum(axis=0)
    _judge(counts[0], counts[1], "accuracy")
    _judge(counts[2], counts[3], "paired difference")


def _group_size(n_sets: int, seed: int) -> tuple[int, int]:
    """Models as independent data sets, 8 cultures (4 vs 4) with no group effect: rejections at 0.05."""
    gen = np.random.default_rng(seed)
    mus = {f"m{k}": 0.2 for k in range(n_sets)}
    rows = []
    for c in range(8):  # every culture has the same item distribution: culture labels are exchangeable
        part = _simulate(gen, 1, 12, mus).assign(culture=f"k{c}")
        part["item"] = f"k{c}-" + part["item"]
        rows.append(part)
    df = pd.concat(rows, ignore_index=True)
    groups = {"A": [f"k{c}" for c in range(4)], "B": [f"k{c}" for c in range(4, 8)]}
    res = assess_accuracy(df, groups=groups, pairs=[], n_resamples=199, n_permutations=999, rng=seed)
    g = res.to_frame().query("quantity == 'group contrast'")
    return int((g.p_value <= 0.05).sum()), len(g)


def test_culture_group_contrast_test_holds_its_size():
    rej, n = _group_size(400, 11)
    assert n == 400
    # a valid test rejects at most 5%: the one-sided binomial test of "rate > 0.05" must not reject
    assert stats.binomtest(rej, n, 0.05, alternative="greater").pvalue > 0.01, f"{rej}/{n} rejections"
    assert rej / n >= 0.01, f"{rej}/{n}: the test never rejects, it cannot detect anything"


def test_culture_group_contrast_detects_a_real_gap():
    gen = np.random.default_rng(5)
    rows = []
    for c in range(8):
        part = _simulate(gen, 1, 60, {"m": 1.2 if c < 4 else -0.4}).assign(culture=f"k{c}")
        part["item"] = f"k{c}-" + part["item"]
        rows.append(part)
    res = assess_accuracy(pd.concat(rows), groups={"A": ["k0", "k1", "k2", "k3"], "B": ["k4", "k5", "k6", "k7"]},
                          n_resamples=999, n_permutations=999, rng=1)
    v = res.verdicts.query("claim.str.contains('between')")
    assert v.verdict.tolist() == ["supported"], v.reason.tolist()


def test_wilson_matches_statsmodels():
    count, nobs = np.array([0, 1, 7, 19, 20]), np.array([20, 5, 12, 20, 20])
    lo, hi = wilson_interval(count, nobs, 0.9)
    ref = np.array(proportion_confint(count, nobs, alpha=0.1, method="wilson"))
    np.testing.assert_allclose(np.column_stack([lo, hi]), ref.T, rtol=1e-12, atol=1e-12)


def test_tiny_cells_get_wilson_and_estimates_are_item_means():
    df = pd.DataFrame({"model": "m", "culture": ["x"] * 6 + ["y"] * 60,
                       "item": [f"i{k // 2}" for k in range(6)] + [f"j{k}" for k in range(60)],
                       "sample": [k % 2 for k in range(6)] + [0] * 60,
                       "correct": [1, 0, 1, 1, 0, 0] + [1] * 40 + [0] * 20})
    f = assess_accuracy(df, sample="sample", n_resamples=500, rng=0).to_frame().set_index("culture")
    # item means 0.5, 1, 0 -> accuracy 0.5 over 3 items (not 3/6 rows pooled differently)
    assert f.loc["x", "estimate"] == pytest.approx(0.5)
    assert f.loc["x", "n_items"] == 3
    ref = proportion_confint(1.5, 3, alpha=0.05, method="wilson")
    assert (f.loc["x", "conf_low"], f.loc["x", "conf_high"]) == pytest.approx(ref)
    assert f.loc["x", "method"] == "wilson" and f.loc["y", "method"] == "percentile"
    assert "bootstrap" in f.loc["y", "method_note"]
    # pooled: mean over the 63 items, each item weighted equally
    assert f.loc["(all)", "estimate"] == pytest.approx((1.5 + 40) / 63)


def test_context_effect_is_paired_by_item_and_verdict_in_words():
    gen = np.random.default_rng(3)
    n = 300
    u = gen.normal(size=n)
    rows = [{"model": "m", "culture": "c", "item": q, "context": ctx,
             "correct": int(gen.random() < expit(1.0 + u[q] - 1.0 * k))}
            for q in range(n) for k, ctx in enumerate(["rule", "value", "country"])]
    res = assess_accuracy(pd.DataFrame(rows), context="context", context_order=["rule", "value", "country"],
                          n_resamples=999, n_permutations=999, rng=2)
    f = res.to_frame().query("quantity == 'context effect'")
    assert list(zip(f.level_a, f.level_b)) == [("rule", "value"), ("value", "country"), ("rule", "country")]
    assert (f.conf_high < 0).all()
    v = res.verdicts.query("claim == 'accuracy is stable across context levels'")
    assert v.verdict.tolist() == ["not supported"] and "rule -> country" in v.reason.iloc[0]


def test_stable_context_is_supported_when_every_contrast_is_within_margin():
    rows = [{"model": "m", "culture": "c", "item": q, "context": ctx, "correct": q % 2}
            for q in range(400) for ctx in ("a", "b")]
    res = assess_accuracy(pd.DataFrame(rows), context="context", context_order=["a", "b"], n_resamples=500,
                          n_permutations=199, rng=0)
    assert res.verdicts.verdict.tolist() == ["supported"]


def test_answer_and_gold_are_scored_and_exclusions_counted():
    df = pd.DataFrame({"model": "m", "item": ["1", "2", "3", "4"], "culture": "c",
                       "answer": [" Rice ", "bread", None, "tea"], "gold": ["rice", "noodles|bread", "x", "coffee"]})
    d = load_correctness(df)
    assert d.frame["correct"].tolist() == [1.0, 1.0, 0.0]
    assert d.exclusions["n_rows"].sum() == 1
    d2 = load_correctness(df, missing="wrong")
    assert d2.frame["correct"].tolist() == [1.0, 1.0, 0.0, 0.0] and d2.recoded == {"no answer scored as wrong": 1}


@pytest.mark.parametrize("bad, match", [
    (lambda d: d.drop(columns="culture"), r"missing column\(s\) \['culture'\]"),
    (lambda d: d.assign(correct=["1", "0", "maybe", "1"]), r"rows \[2\] hold \['maybe'\]"),
    (lambda d: d.assign(item=["1", "1", "2", "3"]), "repeat the same"),
])
def test_bad_input_is_named(bad, match, tmp_path):
    df = pd.DataFrame({"model": "m", "item": ["1", "2", "3", "4"], "culture": "c", "correct": [1, 0, 1, 1]})
    path = tmp_path / "scores.csv"
    bad(df).to_csv(path, index=False)
    with pytest.raises(SchemaError, match=match) as e:
        load_correctness(path)
    assert "scores.csv" in str(e.value) and "Fix" in str(e.value)


def test_unknown_context_level_and_missing_order_are_errors():
    df = pd.DataFrame({"model": "m", "item": ["1", "2"], "culture": "c", "correct": [1, 0], "context": ["a", "z"]})
    with pytest.raises(SchemaError, match=r"\['z'\] are not in context_order"):
        load_correctness(df, context="context", context_order=["a", "b"])
    with pytest.raises(ValueError, match="context_order"):
        load_correctness(df, context="context")


def test_to_frame_at_another_level_reuses_the_resamples():
    df = _simulate(np.random.default_rng(1), 2, 30)
    res = assess_accuracy(df, n_resamples=400, n_permutations=99, rng=4)
    f95, f80 = res.to_frame(), res.to_frame(0.8)
    assert (f80.conf_high - f80.conf_low <= f95.conf_high - f95.conf_low + 1e-12).all()
    assert res.to_frame().equals(f95)


def test_unknown_model_pair_is_an_error():
    df = _simulate(np.random.default_rng(2), 1, 10)
    with pytest.raises(ValueError, match=r"unknown \['zz'\]"):
        assess_accuracy(df, pairs=[("a", "zz")], n_resamples=50, rng=0)


def test_audit_report_has_an_accuracy_section_for_scored_responses():
    from robustalign.report.audit import run_audit
    from robustalign.schema import Scale, make_responses

    df = _simulate(np.random.default_rng(6), 3, 20).rename(columns={"culture": "country"})
    df["answer"] = np.where(df["correct"] == 1, "1", "2")
    scales = {i: Scale(("1", "2"), ("yes", "no"), False) for i in df["item"].unique()}
    rep = run_audit(make_responses(df, scales=scales), None, n_resamples=100, n_permutations=99, rng=1,
                    design={"stability": {"enabled": False}})
    v = rep.verdicts.query("assessment == 'accuracy'")
    assert v.unit.tolist() == ["models differ in accuracy / a / b"]
    assert v.verdict.iloc[0] in ("supported", "not supported", "inconclusive")
