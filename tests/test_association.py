"""Correlation across units of two quantities measured with error (robustalign.claims.association).

The simulations here are written from the stated estimand alone: units draw true scores (t_x, t_y) from a
bivariate normal with correlation ``rho`` (the population of units), and each unit's items are its true
score plus noise of a unit-specific size. The true-score correlation ``rho`` is what the corrected
interval must cover; the permutation test must hold its size at ``rho = 0``. Coverage and size are
judged with binomial tests; the seeds are fixed, so every run gives the same counts.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustalign.claims.association import audit_correlation, items_needed, units_needed


def simulate(gen, *, n_units, n_items, rho, noise=(2.0, 4.0), shared=False, err_corr=0.0, item_sd=0.0,
             crossed=True):
    """Long tables x, y (unit, item, value) with true-score correlation ``rho`` across units.

    ``crossed``: every unit answers the same items, each with a shared effect of SD ``item_sd`` (an
    item easy for all units); otherwise each unit has its own items.
    """
    t = gen.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n_units)
    sd = gen.uniform(*noise, size=n_units)[:, None]
    ex = gen.standard_normal((n_units, n_items))
    ey = err_corr * ex + math.sqrt(1 - err_corr**2) * gen.standard_normal((n_units, n_items))
    unit = np.repeat([f"u{k}" for k in range(n_units)], n_items)
    item = np.tile(np.arange(n_items), n_units) + (0 if crossed else np.repeat(np.arange(n_units), n_items) * 1000)
    bx, by = item_sd * gen.standard_normal(n_items), item_sd * gen.standard_normal(n_items)
    x = pd.DataFrame({"unit": unit, "item": item, "value": (t[:, [0]] + bx + sd * ex).ravel()})
    y = pd.DataFrame({"unit": unit, "item": item if shared else item + 10**7,
                      "value": (t[:, [1]] + (bx if shared else by) + sd * ey).ravel()})
    return x, y


def _run(seed, reps, **design):
    gen = np.random.default_rng(seed)
    rows = []
    for r in range(reps):
        x, y = simulate(gen, **design)
        f = audit_correlation(x, y, n_resamples=20, n_permutations=199, rng=r).to_frame().set_index("quantity")
        rows.append(f)
    return rows


def _covered(rows, quantity, rho):
    return sum(bool(f.loc[quantity, "conf_low"] <= rho <= f.loc[quantity, "conf_high"]) for f in rows)


def test_corrected_interval_covers_true_score_correlation_with_9_units():
    reps = 150
    rows = _run(11, reps, n_units=9, n_items=15, rho=0.5)
    k = _covered(rows, "pearson_corrected", 0.5)
    assert stats.binomtest(k, reps, 0.95).pvalue > 0.01, f"coverage {k}/{reps}"


def test_naive_interval_undercovers_with_few_items_and_corrected_does_not():
    reps = 100
    rows = _run(12, reps, n_units=40, n_items=6, rho=0.6)
    naive, corrected = _covered(rows, "pearson_naive", 0.6), _covered(rows, "pearson_corrected", 0.6)
    assert stats.binomtest(naive, reps, 0.95, alternative="less").pvalue < 1e-4, f"naive {naive}/{reps}"
    assert stats.binomtest(corrected, reps, 0.95).pvalue > 0.01, f"corrected {corrected}/{reps}"


def test_permutation_test_holds_its_size_at_zero_correlation():
    reps = 150
    rows = _run(13, reps, n_units=9, n_items=10, rho=0.0)
    for q in ("pearson_corrected", "spearman_estimates"):
        rej = sum(bool(f.loc[q, "p_value"] <= 0.05) for f in rows)
        assert stats.binomtest(rej, reps, 0.05).pvalue > 0.01, f"{q}: {rej}/{reps} rejections"


def test_shared_item_effects_are_not_counted_as_measurement_error():
    # every unit answers the same 10 items and some items are much easier for all (item SD 3 against a
    # true-score SD of 1): per-unit SEs would call most of the spread noise; the crossed correction does not
    reps = 100
    rows = _run(14, reps, n_units=12, n_items=10, rho=0.5, item_sd=3.0, noise=(1.0, 2.0))
    k = _covered(rows, "pearson_corrected", 0.5)
    assert stats.binomtest(k, reps, 0.95).pvalue > 0.01, f"coverage {k}/{reps}"
    rel = np.median([f.loc["reliability_x", "estimate"] for f in rows])
    truth = 1 / (1 + (7 / 3) / 10)  # 1 / (1 + E[noise^2] / n); noise ~ U(1, 2) has E[noise^2] = 7/3
    assert abs(rel - truth) < 0.15, (rel, truth)


@pytest.mark.slow
@pytest.mark.parametrize("n_units,n_items", [(9, 15), (16, 8), (40, 30)])
def test_corrected_interval_coverage_slow(n_units, n_items):
    reps = 1000
    rows = _run(100 + n_units, reps, n_units=n_units, n_items=n_items, rho=0.5)
    k = _covered(rows, "pearson_corrected", 0.5)
    assert stats.binomtest(k, reps, 0.95).pvalue > 0.01
    assert 0.93 <= k / reps <= 0.97, f"coverage {k}/{reps}"


def _shared_size(seed, reps):
    gen = np.random.default_rng(seed)
    rej = 0
    for r in range(reps):
        x, y = simulate(gen, n_units=12, n_items=8, rho=0.0, shared=True, err_corr=0.6)
        f = audit_correlation(x, y, n_resamples=2, n_permutations=199, rng=r).to_frame().set_index("quantity")
        rej += bool(f.loc["pearson_corrected", "p_value"] <= 0.05)
    return rej


def test_permutation_size_with_shared_items_and_correlated_errors():
    # the same items measure both quantities and their errors correlate 0.6 within a unit. Permuting the
    # unit estimates broke that dependence (83 / 1,000 rejections at 0.05); the p-value now comes from
    # item-disjoint halves (x on one half of each unit's items, y on the other), where permuting is exact
    reps = 100
    rej = _shared_size(23, reps)
    assert stats.binomtest(rej, reps, 0.05).pvalue > 0.001, f"{rej}/{reps} rejections"


@pytest.mark.slow
def test_permutation_size_with_shared_items_and_correlated_errors_slow():
    reps = 1000
    rej = _shared_size(21, reps)  # measured 28 / 600 = 4.7% on the first 600 of these data sets
    assert stats.binomtest(rej, reps, 0.05).pvalue > 0.01, f"{rej}/{reps}"


def test_shared_items_are_flagged_in_the_verdict():
    x, y = simulate(np.random.default_rng(22), n_units=8, n_items=6, rho=0.0, shared=True, err_corr=0.6)
    res = audit_correlation(x, y, n_resamples=20, n_permutations=99, rng=0)
    assert "shared items" in res.verdicts["reason"].iloc[0]
    x, y = simulate(np.random.default_rng(22), n_units=8, n_items=6, rho=0.0)
    assert "shared items" not in audit_correlation(x, y, n_resamples=20, n_permutations=99, rng=0).summary()


def test_corrected_estimate_matches_a_hand_computation_and_the_per_unit_route():
    gen = np.random.default_rng(5)
    x, y = simulate(gen, n_units=10, n_items=12, rho=0.4, noise=(1.0, 2.0), crossed=False)
    f = audit_correlation(x, y, n_resamples=20, n_permutations=99, rng=0).to_frame().set_index("quantity")
    gx, gy = x.groupby("unit")["value"], y.groupby("unit")["value"]
    mx, my = gx.mean().to_numpy(), gy.mean().to_numpy()
    vx, vy = (gx.var() / gx.count()).to_numpy(), (gy.var() / gy.count()).to_numpy()
    sxx, syy = mx.var(ddof=1), my.var(ddof=1)
    sxy = ((mx - mx.mean()) * (my - my.mean())).sum() / 9
    expected = sxy / math.sqrt((sxx - vx.mean()) * (syy - vy.mean()))
    assert f.loc["pearson_corrected", "estimate"] == pytest.approx(expected, rel=1e-10)
    assert f.loc["pearson_naive", "estimate"] == pytest.approx(stats.pearsonr(mx, my).statistic, rel=1e-10)
    assert f.loc["spearman_estimates", "estimate"] == pytest.approx(stats.spearmanr(mx, my).statistic, rel=1e-10)
    lo, hi = stats.pearsonr(mx, my).confidence_interval(0.95)  # scipy's Fisher-z interval, uncorrected
    assert f.loc["pearson_naive", "conf_low"] == pytest.approx(lo, rel=1e-8)
    assert f.loc["pearson_naive", "conf_high"] == pytest.approx(hi, rel=1e-8)
    table = lambda m, v: pd.DataFrame({"unit": gx.mean().index, "value": m, "se": np.sqrt(v)})  # noqa: E731
    g = audit_correlation(table(mx, vx), table(my, vy), n_resamples=20, n_permutations=99, rng=0).to_frame()
    assert g.set_index("quantity").loc["pearson_corrected", "estimate"] == pytest.approx(expected, rel=1e-10)


def test_units_needed_matches_cohens_table_and_attenuation():
    # Cohen (1988) Table 3.4.1: r = 0.30, two-sided alpha 0.05, power 0.80 -> n = 85
    assert units_needed(0.3) == 85
    # attenuation: a true 0.6 seen through reliabilities 0.5 and 0.5 is an observed 0.3
    assert units_needed(0.6, rel_x=0.5, rel_y=0.5) == units_needed(0.3)
    with pytest.raises(ValueError, match="rel_x"):
        units_needed(0.3, rel_x=0.0)


def test_items_needed_is_the_smallest_sufficient_multiple():
    ix, iy = items_needed(0.5, 40, rel_x=0.4, rel_y=0.6, n_items_x=10, n_items_y=20)
    k = ix / 10

    def rel(r, k):  # Spearman-Brown
        return k * r / (1 + (k - 1) * r)

    assert units_needed(0.5, rel_x=rel(0.4, k), rel_y=rel(0.6, k)) <= 40
    assert units_needed(0.5, rel_x=rel(0.4, 0.9 * k), rel_y=rel(0.6, 0.9 * k)) > 40
    assert items_needed(0.3, 20, rel_x=0.5, rel_y=0.5, n_items_x=5, n_items_y=5) == (math.inf, math.inf)


def test_verdicts_follow_the_evidence():
    gen = np.random.default_rng(8)
    x, y = simulate(gen, n_units=30, n_items=40, rho=0.8, noise=(1.0, 1.5))
    pos = audit_correlation(x, y, expect="positive", n_resamples=50, n_permutations=999, rng=1)
    neg = audit_correlation(x, y, expect="negative", n_resamples=50, n_permutations=999, rng=1)
    assert pos.verdicts["verdict"].iloc[0] == "supported"
    assert neg.verdicts["verdict"].iloc[0] == "not supported"
    x0, y0 = simulate(gen, n_units=6, n_items=5, rho=0.0)
    weak = audit_correlation(x0, y0, expect="positive", published=0.3, n_resamples=50, n_permutations=999, rng=1)
    assert weak.verdicts["verdict"].iloc[0] == "inconclusive"
    assert weak.verdicts["n_needed"].iloc[0] >= units_needed(0.3)


def test_same_seed_same_result_and_units_keyed():
    gen = np.random.default_rng(9)
    x, y = simulate(gen, n_units=8, n_items=6, rho=0.3)
    a = audit_correlation(x, y, n_resamples=200, n_permutations=199, rng=4)
    b = audit_correlation(x, y, n_resamples=200, n_permutations=199, rng=4)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    assert a.provenance["rng"]["entropy"] == 4
    fresh = audit_correlation(x, y, n_resamples=200, n_permutations=199)  # rng=None: the recorded seed repeats it
    again = audit_correlation(x, y, n_resamples=200, n_permutations=199, rng=fresh.provenance["rng"]["entropy"])
    pd.testing.assert_frame_equal(fresh.to_frame(), again.to_frame())


@pytest.mark.parametrize("mutate,match", [
    (lambda x, y: (x[x["unit"] != "u0"], y), "same units"),
    (lambda x, y: (pd.concat([x, x.iloc[:1]]), y), "more than one"),
    (lambda x, y: (x.assign(value=x["value"].where(x.index != 3, np.nan)), y), "row 3"),
    (lambda x, y: (x[(x["unit"] != "u1") | (x["item"] == 0)], y), "at least 2 items"),
    (lambda x, y: (x.drop(columns="item"), y), "`se` column"),
])
def test_bad_input_names_the_problem(mutate, match):
    x, y = simulate(np.random.default_rng(3), n_units=6, n_items=4, rho=0.0)
    with pytest.raises(ValueError, match=match):
        audit_correlation(*mutate(x, y), n_resamples=10, n_permutations=19, rng=0)


def test_corrected_interval_is_ordered_and_inside_minus_one_one():
    from robustalign.claims.association import _corrected_interval

    for r in (-0.9, -0.3, 0.0, 0.5, 0.95):
        for rel in (0.05, 0.3, 1.0):
            lo, hi = _corrected_interval({"r_obs": r, "U": 50, "rel_x": rel, "rel_y": 0.8}, 0.95)
            assert -1 <= lo <= hi <= 1
