"""Stratified permutation and sign-flip tests, against scipy.stats.permutation_test (paired 'samples')."""

import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from robustalign.resampling import PermutationResult, sign_flip_test, stratified_permutation_test
from robustalign.resampling import _weights as W


def _spread(*samples, axis=-1):
    m = np.stack([s.mean(axis=axis) for s in samples])
    return np.sqrt(((m - m.mean(axis=0)) ** 2).mean(axis=0))


def _mc_tol(p, B):
    """Five Monte Carlo standard deviations of a p-value estimated from B permutations, plus one step."""
    return 5 * math.sqrt(max(p * (1 - p), 1e-4) / B) + 1.0 / B


def test_sign_flip_matches_scipy_exact_test():
    d = np.random.default_rng(1).normal(0.4, 1.0, 12)  # 2**12 = 4096 sign patterns: scipy enumerates them
    ref = stats.permutation_test((d,), lambda x, axis: np.abs(x.mean(axis=axis)), permutation_type="samples",
                                 n_resamples=np.inf, vectorized=True, alternative="greater")
    B = 100_000
    res = sign_flip_test(d, n_resamples=B, rng=0)
    assert abs(res.p_value[0] - ref.pvalue) < _mc_tol(ref.pvalue, B)
    assert_allclose(res.statistic[0], d.mean())
    for alt in ("greater", "less"):
        ref = stats.permutation_test((d,), lambda x, axis: x.mean(axis=axis), permutation_type="samples",
                                     n_resamples=np.inf, vectorized=True, alternative=alt)
        p = sign_flip_test(d, n_resamples=B, alternative=alt, rng=1).p_value[0]
        assert abs(p - ref.pvalue) < _mc_tol(ref.pvalue, B)


def test_spread_matches_scipy_exact_test():
    x = np.random.default_rng(2).normal(size=(5, 3))
    x[:, 2] += 0.8  # 3!**5 = 7776 within-stratum permutations: scipy enumerates them
    ref = stats.permutation_test(tuple(x.T), _spread, permutation_type="samples", n_resamples=np.inf,
                                 vectorized=True, alternative="greater")
    B = 100_000
    res = stratified_permutation_test(x, n_resamples=B, rng=3)
    assert_allclose(res.statistic[0], ref.statistic)
    assert abs(res.p_value[0] - ref.pvalue) < _mc_tol(ref.pvalue, B)
    assert res.test == "stratified permutation" and res.n_levels == 3


def test_spread_for_several_cells_matches_scipy_monte_carlo():
    gen = np.random.default_rng(4)
    x = gen.normal(size=(40, 6, 3)) + gen.normal(size=(40, 1, 1))  # stratum effects must not matter
    x[:, :, 0] += np.linspace(0, 0.45, 6)
    x[:, :, 1] += np.linspace(0, 0.25, 6)
    B = 20_000
    res = stratified_permutation_test(x, n_resamples=B, rng=5)
    for c in range(3):
        ref = stats.permutation_test(tuple(x[:, :, c].T), _spread, permutation_type="samples", n_resamples=B,
                                     vectorized=True, alternative="greater", rng=6 + c)
        assert_allclose(res.statistic[c], ref.statistic, rtol=1e-12)
        assert abs(res.p_value[c] - ref.pvalue) < np.sqrt(2) * _mc_tol(ref.pvalue, B)


def _direct_spread(xp):
    """Spread of level means computed on the permuted array itself, in double precision."""
    return _spread(*np.moveaxis(xp, 2, 0), axis=1)


@pytest.mark.parametrize("n_levels", [3, 6, 9])
def test_fast_spread_equals_direct_permutation_of_the_data(n_levels):
    """The single-precision one-hot product gives the null of permuting the array (same draws), and
    exactly the p-values of a double-precision computation."""
    x = np.random.default_rng(7).normal(size=(25, n_levels, 2))
    fast = stratified_permutation_test(x, "spread", n_resamples=3000, rng=8)
    slow = stratified_permutation_test(x, _direct_spread, n_resamples=3000, rng=8)
    assert_allclose(fast.null_distribution, slow.null_distribution, rtol=1e-5)
    assert_allclose(fast.statistic, slow.statistic, rtol=1e-13)
    assert (fast.p_value == slow.p_value).all()


def test_exact_ties_are_decided_in_double_precision():
    """Relabelling the levels the same way in every stratum only reorders the level means, so the spread
    is exactly the observed one: with 3 strata x 3 levels that is 1 permutation in 36. The single-precision
    product cannot resolve such ties; the refinement must count every one of them."""
    x = np.random.default_rng(17).normal(size=(3, 3, 1)) * np.array([1.0, 1e3]) + np.array([0.0, 5e3])
    fast = stratified_permutation_test(x, n_resamples=20_000, rng=1)
    slow = stratified_permutation_test(x, _direct_spread, n_resamples=20_000, rng=1)
    assert (fast.p_value == slow.p_value).all()
    ties = (np.abs(slow.null_distribution - slow.statistic) <= 1e-9 * slow.statistic).sum(axis=0)
    assert (ties > 100).all()  # the test is about ties: there must be many


def test_permutations_are_uniform():
    codes = W.PermutationStream(np.random.default_rng(0), 24, 4, 3000).next(3000)  # 4! = 24 orders
    counts = np.bincount(codes.ravel(), minlength=24)
    assert stats.chisquare(counts).pvalue > 1e-3
    perms = W.permutations_from_codes(W.PermutationStream(np.random.default_rng(1), 10, 9, 50).next(50), 9)
    assert (np.sort(perms, axis=-1) == np.arange(9)).all()  # argsort path: every row a permutation
    first = perms[..., 0].ravel()
    assert stats.chisquare(np.bincount(first, minlength=9)).pvalue > 1e-3


def test_p_value_is_one_plus_count_over_one_plus_B():
    x = np.zeros((30, 2))
    x[:, 1] = 1.0  # every permutation is less extreme than the observed labelling
    res = stratified_permutation_test(x, n_resamples=999, rng=0)
    assert res.p_value[0] == pytest.approx(1 / 1000 * (1 + (np.abs(res.null_distribution[:, 0]) >= 1).sum()))
    flat = stratified_permutation_test(np.ones((10, 4)), n_resamples=99, rng=0)  # all ties
    assert flat.p_value[0] == 1.0


def test_dataframe_input_and_incomplete_strata():
    gen = np.random.default_rng(9)
    rows = [{"item": q, "format": f, "model": m, "rep": r, "score": gen.random() + 0.1 * (f == "f3") * (m == "a")}
            for q in range(30) for f in ("f1", "f2", "f3") for m in ("a", "b") for r in range(2)]
    df = pd.DataFrame(rows)
    res = stratified_permutation_test(df, value="score", factor="format", strata="item", by="model",
                                      n_resamples=2000, rng=1)
    arr = df.groupby(["item", "format", "model"])["score"].mean().to_numpy().reshape(30, 3, 2)
    ref = stratified_permutation_test(arr, n_resamples=2000, rng=1)
    assert_allclose(res.p_value, ref.p_value)
    assert res.labels["model"].tolist() == ["a", "b"] and res.provenance["levels"] == ["f1", "f2", "f3"]
    two = stratified_permutation_test(df, value="score", factor="format", levels=["f1", "f3"], by="model",
                                      n_resamples=500, rng=1)
    assert two.test == "sign flip" and two.statistic_name == "mean difference (f3 - f1)"
    d = arr[:, 2] - arr[:, 0]
    assert_allclose(two.statistic, d.mean(axis=0))
    holes = df[~((df["item"] < 2) & (df["format"] == "f2"))]
    with pytest.raises(ValueError, match=r"2 of 30 strata lack some level in some cell \(e\.g\. \[0, 1\]\)"):
        stratified_permutation_test(holes, value="score", factor="format", by="model")
    dropped = stratified_permutation_test(holes, value="score", factor="format", by="model", drop_incomplete=True,
                                          n_resamples=100, rng=0)
    assert dropped.n_strata == 28 and dropped.provenance["n_dropped_strata"] == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"statistic": "median"}, r"`statistic` must be one of \['auto', 'mean_difference', 'spread'\]"),
        ({"statistic": "mean_difference"}, r"statistic='mean_difference' needs exactly 2 levels; got 3"),
        ({"alternative": "less"}, r"alternative='less' is not meaningful"),
        ({"alternative": "both"}, r"`alternative` must be one of \['two-sided', 'greater', 'less'\]; got 'both'"),
        ({"n_resamples": -5}, r"`n_resamples` must be an integer >= 1; got -5\."),
        ({"n_bootstrap": -1}, r"`n_bootstrap` must be an integer >= 0; got -1\."),
        ({"confidence_level": 95}, r"Did you mean 0\.95\?"),
        ({"value": "score"}, r"`value`, `factor` and `by` apply to a DataFrame"),
        ({"levels": [0, 7]}, r"`levels` \[7\] are not levels of the factor"),
    ],
)
def test_permutation_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stratified_permutation_test(np.ones((5, 3)), **kwargs)


def test_bootstrap_interval_is_attached_only_on_request():
    gen = np.random.default_rng(10)
    d = gen.normal(0.1, 1, (200, 2))
    res = sign_flip_test(d, n_resamples=500, rng=0)
    with pytest.raises(ValueError, match=r"run without a bootstrap"):
        res.conf_int()
    frame = res.to_frame()
    assert list(frame.columns) == ["cell", "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method",
                                   "n_resamples", "p_value", "alternative", "p_value_mcse", "conf_low_mcse",
                                   "conf_high_mcse"]
    assert frame["conf_low"].isna().all()
    withci = sign_flip_test(d, n_resamples=500, n_bootstrap=2000, rng=0)
    assert_allclose(withci.p_value, res.p_value)  # the bootstrap uses its own stream
    ci = withci.conf_int()
    ref = stats.bootstrap((d[:, 0],), np.mean, n_resamples=20_000, rng=1)
    assert abs(ci.conf_low[0] - ref.confidence_interval.low) < 0.15 * ref.standard_error
    spread = stratified_permutation_test(gen.normal(size=(50, 4)), n_resamples=200, n_bootstrap=300, rng=2)
    assert spread.to_frame()["conf_high"].iloc[0] > spread.statistic[0] > 0


def test_result_contract_and_chunk_invariance():
    x = np.random.default_rng(11).normal(size=(60, 5, 2))
    a = stratified_permutation_test(x, n_resamples=700, rng=12)
    b = stratified_permutation_test(x, n_resamples=700, rng=12, chunk_size=33)
    assert_allclose(a.null_distribution, b.null_distribution, rtol=1e-5)  # same permutations
    assert (a.p_value == b.p_value).all()
    d = x[:, 1] - x[:, 0]
    assert_allclose(sign_flip_test(d, n_resamples=300, rng=1).null_distribution,
                    sign_flip_test(d, n_resamples=300, rng=1, chunk_size=7).null_distribution)
    assert isinstance(a, PermutationResult) and a.rng.entropy == 12 and a.n_strata == 60
    assert "700 permutations" in a.summary()
    assert not a.null_distribution.flags.writeable


def test_missing_strata_in_sign_flip_count_in_no_permutation():
    d = np.random.default_rng(13).normal(0.2, 1, (40, 2))
    d[:10, 1] = np.nan
    res = sign_flip_test(d, n_resamples=4000, rng=3)
    alone = sign_flip_test(d[10:, 1], n_resamples=4000, rng=3)
    assert_allclose(res.statistic[1], d[10:, 1].mean())
    assert abs(res.p_value[1] - alone.p_value[0]) < _mc_tol(alone.p_value[0], 4000) * 1.5
