"""Calibration of the resampling engine on simulated data sets with known truth.

The data sets are simulated all at once (vectorised); each is then analysed through the public API with
its own random stream, so the coverage and rejection counts are binomial. Judged as scipy does for its own
bootstrap: the rate must lie in the stated range and a binomial test against the nominal rate must not
reject (p > 0.01).

Design (per data set): 60 items; 2 models; for item q and model m the probability that a response agrees
with the human reference is p_qm = expit(mu_m + u_q + v_qm), with an item effect u_q shared by both models
(sd 1) and a model-specific item effect v_qm (sd 0.5); 20 responses per item and model are 0/1 draws. The
per-item aggregate is the share of agreeing responses. The estimand is the population difference
E[p_q1] - E[p_q2] over items, computed by Gauss-Hermite quadrature.
"""

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit

from robustalign.resampling import (
    cluster_bootstrap,
    paired_bootstrap,
    sign_flip_test,
    stratified_permutation_test,
    two_way_bootstrap,
)

N_SETS = 2000
N_ITEMS, N_ROWS = 60, 20
MU = np.array([0.3, 0.0])
SD_ITEM, SD_MODEL_ITEM = 1.0, 0.5


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Thousands of small matrix products: BLAS threads only contend with the other test worker."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _truth() -> float:
    x, w = np.polynomial.hermite_e.hermegauss(120)  # E over z ~ N(0, 1)
    sd = np.hypot(SD_ITEM, SD_MODEL_ITEM)
    m = [(w * expit(mu + sd * x)).sum() / w.sum() for mu in MU]
    return float(m[0] - m[1])


@pytest.fixture(scope="module")
def clustered_sets():
    gen = np.random.default_rng(20261123)
    u = gen.normal(0, SD_ITEM, (N_SETS, N_ITEMS, 1))
    v = gen.normal(0, SD_MODEL_ITEM, (N_SETS, N_ITEMS, 2))
    agree = gen.binomial(N_ROWS, expit(MU + u + v))  # agreeing responses per item x model
    return agree, _truth()


def _judge(what: str, hits: int, n: int, lo: float, hi: float, nominal: float) -> None:
    rate = hits / n
    p = stats.binomtest(hits, n, nominal).pvalue
    print(f"{what}: {hits}/{n} = {rate:.4f} (binomial p = {p:.3g})")
    assert lo <= rate <= hi, f"{what}: rate {rate:.4f} outside [{lo}, {hi}] (binomial p = {p:.3g})"
    assert p > 0.01, f"{what}: rate {rate:.4f}; the binomial test against {nominal} rejects (p = {p:.3g})"


def test_cluster_bootstrap_interval_for_a_difference_covers_the_truth(clustered_sets):
    agree, truth = clustered_sets
    seeds = np.random.SeedSequence(4242).spawn(N_SETS)
    hits = {"bca": 0, "percentile": 0}
    for i in range(N_SETS):
        res = paired_bootstrap(agree[i] / N_ROWS, compare="model", n_resamples=2000, rng=seeds[i])
        for method in hits:  # both intervals from the same stored resamples
            ci = res.conf_int(method=method)
            hits[method] += bool(ci.conf_low[0] <= truth <= ci.conf_high[0])
    for method, h in hits.items():
        _judge(f"{method} coverage", h, N_SETS, 0.93, 0.97, 0.95)


def test_naive_row_bootstrap_under_covers_on_the_same_data(clustered_sets):
    """Resampling responses as if independent ignores that responses to one item share its effects.

    With 0/1 responses, the count of agreeing responses in a row resample of a model's n responses is
    exactly Binomial(n, share), so the naive (row-level, unpaired) bootstrap is drawn in closed form.
    """
    agree, truth = clustered_sets
    n = N_ITEMS * N_ROWS
    share = agree.sum(axis=1) / n  # (sets, 2)
    gen = np.random.default_rng(99)
    B = 2000
    rep = (gen.binomial(n, share[:, :1], (N_SETS, B)) - gen.binomial(n, share[:, 1:], (N_SETS, B))) / n
    low, high = np.quantile(rep, [0.025, 0.975], axis=1)
    hits = int(((low <= truth) & (truth <= high)).sum())
    print(f"naive row bootstrap coverage: {hits}/{N_SETS} = {hits / N_SETS:.4f}")
    assert hits / N_SETS < 0.92
    assert stats.binomtest(hits, N_SETS, 0.95, alternative="less").pvalue < 1e-6


def test_stratified_permutation_test_of_a_null_format_effect_has_its_size():
    """Six formats per item, no format effect: labels are exchangeable within item."""
    n_sets, n_items, n_formats = 4000, 50, 6
    gen = np.random.default_rng(7)
    item = gen.normal(0, 1, (n_sets, n_items, 1))
    scale = gen.gamma(2.0, 0.1, (n_sets, n_items, 1))  # heteroscedastic items
    x = expit(item + scale * gen.standard_t(4, (n_sets, n_items, n_formats)))
    seeds = np.random.SeedSequence(77).spawn(n_sets)
    rejections = sum(
        bool(stratified_permutation_test(x[i], n_resamples=999, rng=seeds[i]).p_value[0] <= 0.05)
        for i in range(n_sets)
    )
    _judge("stratified permutation size", rejections, n_sets, 0.04, 0.06, 0.05)


def test_sign_flip_test_of_a_null_two_level_effect_has_its_size():
    n_sets, n_items = 4000, 40
    gen = np.random.default_rng(8)
    d = gen.normal(0, 1, (n_sets, n_items)) * gen.gamma(2.0, 0.5, (n_sets, n_items))  # symmetric, heavy-tailed
    seeds = np.random.SeedSequence(88).spawn(n_sets)
    rejections = sum(bool(sign_flip_test(d[i], n_resamples=999, rng=seeds[i]).p_value[0] <= 0.05)
                     for i in range(n_sets))
    _judge("sign-flip size", rejections, n_sets, 0.04, 0.06, 0.05)


@pytest.mark.slow
def test_two_way_bootstrap_covers_when_groups_are_random_and_item_only_does_not():
    """Items and groups both random, with a large item x group interaction (as between countries).

    The pigeonhole interval covers at the nominal rate (a binomial test finds no under-coverage; its
    variance counts the interaction twice, which offsets the small-sample narrowness); resampling items only, as if the groups were fixed, misses the group variance. With few
    groups (say 10) every percentile interval under-covers: 10 units cannot show the tails.
    """
    n_sets, n_items, n_groups = 1000, 40, 30
    gen = np.random.default_rng(9)
    x = (gen.normal(0, 1, (n_sets, n_items, 1)) + gen.normal(0, 1, (n_sets, 1, n_groups))
         + gen.normal(0, 2, (n_sets, n_items, n_groups)))
    seeds = np.random.SeedSequence(99).spawn(n_sets)
    hits = hits_items = 0
    for i in range(n_sets):
        ci = two_way_bootstrap(x[i], n_resamples=2000, rng=seeds[i]).conf_int()
        hits += bool(ci.conf_low[0] <= 0.0 <= ci.conf_high[0])
        one = cluster_bootstrap(x[i].mean(axis=1), n_resamples=2000, method="percentile", rng=seeds[i]).conf_int()
        hits_items += bool(one.conf_low[0] <= 0.0 <= one.conf_high[0])
    print(f"two-way coverage: {hits}/{n_sets} = {hits / n_sets:.4f}; items only: {hits_items / n_sets:.4f}")
    assert hits / n_sets >= 0.93
    assert stats.binomtest(hits, n_sets, 0.95, alternative="less").pvalue > 0.01
    assert stats.binomtest(hits_items, n_sets, 0.95, alternative="less").pvalue < 1e-6
