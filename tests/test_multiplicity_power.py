"""Multiplicity and power against independent references (statsmodels power, closed forms)."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from robustalign.multiplicity import adjust, adjust_frame
from robustalign.power import (
    design_effect,
    mde_paired,
    mde_proportion,
    n_for_equivalence,
    n_for_mde,
    simulate_power,
)
from robustalign.resampling import maxt_p_values


def test_bh_and_holm_against_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # BH: sorted p (0.01, 0.03, 0.04, 0.2) * m / rank = (0.04, 0.06, 0.0533, 0.2), then cumulative min from the top
    np.testing.assert_allclose(adjust(p, "fdr_bh"), [0.04, 0.0533333, 0.0533333, 0.2], rtol=1e-5)
    # Holm: sorted * (m - rank + 1) = (0.04, 0.09, 0.08 -> 0.09 running max, 0.2)
    np.testing.assert_allclose(adjust(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    out = adjust(np.array([0.01, np.nan]), "holm")
    assert out[0] == 0.01 and np.isnan(out[1])  # NaN is not counted in the family


@pytest.mark.parametrize("method", ["fdr_bh", "fdr_by", "holm", "bonferroni"])
def test_adjust_matches_statsmodels_multipletests(method):
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 40):
        for p in (rng.random(n), np.round(rng.random(n), 1), rng.random(n) ** 8):  # ties, tiny values
            p[rng.random(n) < 0.1] = 0.0
            np.testing.assert_allclose(adjust(p, method), multipletests(p, method=method)[1], rtol=1e-14, atol=0)
    # NaN is left out of the family: the others are adjusted as a family of their own size
    p = np.array([0.02, np.nan, 0.01, 0.04, np.nan])
    ok = ~np.isnan(p)
    out = adjust(p, method)
    assert np.isnan(out[~ok]).all()
    np.testing.assert_allclose(out[ok], multipletests(p[ok], method=method)[1], rtol=1e-14)
    assert adjust([], method).shape == (0,)


def test_adjust_frame_records_family_and_rejects_bad_input():
    import pandas as pd

    f = adjust_frame(pd.DataFrame({"p_value": [0.01, 0.02]}), family="2 models", method="holm")
    assert f["family"].tolist() == ["2 models"] * 2 and f["adjust_method"].iloc[0] == "holm"
    with pytest.raises(ValueError, match="`method` must be one of"):
        adjust([0.1], "median")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        adjust([1.5])


def test_maxt_controls_familywise_error_under_dependence():
    # 4 equicorrelated null statistics; reject if adjusted p <= 0.05 anywhere: FWER must be ~5%
    rng = np.random.default_rng(11)
    n_sets, B, k = 400, 499, 4
    cov = 0.6 + 0.4 * np.eye(k)
    rej = 0
    for _ in range(n_sets):
        draws = rng.multivariate_normal(np.zeros(k), cov, size=B + 1)
        rej += (maxt_p_values(draws[0], draws[1:]) <= 0.05).any()
    assert stats.binomtest(rej, n_sets, 0.05).pvalue > 0.01


def test_mde_matches_statsmodels_normal_power():
    sd, n = 0.2, 77
    es = NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=0)
    # statsmodels also counts the far tail of the two-sided test (negligible here): agree to 1e-5
    assert mde_paired(n, omega2=sd**2) == pytest.approx(es * sd, rel=1e-5)
    # sampling noise adds sigma^2/K to the variance
    assert mde_paired(n, omega2=0.03, sigma2_a=0.02, k_a=2) == pytest.approx(mde_paired(n, omega2=0.04))
    assert mde_paired(n, omega2=0.04, deff=2.0) == pytest.approx(np.sqrt(2) * mde_paired(n, omega2=0.04))
    assert n_for_mde(0.05, sd=0.2) == int(np.ceil(((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 4) ** 2))
    assert design_effect(5, 0.1) == pytest.approx(1.4)
    assert mde_proportion(100, 0.5) == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 0.05)


def test_items_needed_for_a_zero_effect_is_infinite_not_a_huge_integer():
    # a median effect of 2.8e-17 (rounding residue of a zero effect) used to give an integer near 1e30, on which
    # np.isfinite raises TypeError
    assert n_for_mde(0.0, sd=0.2) == np.inf
    assert n_for_mde(2.8e-17, sd=0.2) == np.inf
    n = n_for_mde(1e-6, sd=0.2)  # small but not zero: finite, and a type numpy handles
    assert np.isfinite(n) and n == int(np.ceil(((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 2e5) ** 2))
    with pytest.raises(ValueError, match=">= 0"):
        n_for_mde(-0.1, sd=0.2)
    with pytest.raises(ValueError, match="must be positive"):
        n_for_mde(0.1, sd=0.0)


def test_equivalence_sample_size_closed_form_and_guard():
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.9)
    assert n_for_equivalence(0.1, 0.114, theta=0.02) == int(np.ceil((z * 0.1 / 0.094) ** 2))
    with pytest.raises(ValueError, match="must exceed"):
        n_for_equivalence(0.1, 0.05, theta=0.06)
    # power and alpha are checked as probabilities (80 used to reach int(nan) and fail obscurely)
    with pytest.raises(ValueError, match=r"`power` must be in \(0, 1\); got 80\. Did you mean 0\.8\?"):
        n_for_equivalence(0.1, 0.114, power=80)
    with pytest.raises(ValueError, match=r"`alpha` must be in \(0, 1\); got 5\. Did you mean 0\.05\?"):
        mde_paired(77, omega2=0.04, alpha=5)


def test_simulated_power_matches_closed_form_and_is_reproducible():
    n, delta, sd = 40, 0.25, 1.0

    def one(rng):
        x = rng.normal(delta, sd, n)
        return stats.ttest_1samp(x, 0).pvalue

    res = simulate_power(one, n_simulations=800, rng=5)
    exact = stats.nct.sf(stats.t.ppf(0.975, n - 1), n - 1, delta * np.sqrt(n) / sd) + stats.nct.cdf(
        -stats.t.ppf(0.975, n - 1), n - 1, delta * np.sqrt(n) / sd)
    assert res.conf_low <= exact <= res.conf_high
    assert simulate_power(one, n_simulations=50, rng=5).n_rejected == simulate_power(one, n_simulations=50, rng=5).n_rejected
