"""Sequential Monte Carlo p-values of stability's answer nulls (robustalign.resampling.sequential).

(1) agreement of the sequential verdict with the full 10,000-draw verdict on simulated data sets (the
sequential draws are the first draws of the fixed route, so they can only disagree when a test stopped
early); (2) size under a null, judged with a binomial test; (3) the stopping rule on hand-made exceedance
counts against scipy's exact (Clopper-Pearson) interval.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from robustalign.resampling.sequential import SequentialRule, clopper_pearson
from robustalign.resampling.stability_nulls import answer_permutation_nulls

ALPHA = 0.05


# --------------------------------------------------------------------------------------------------
# (3) the stopping rule
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("b,n,risk", [(0, 1000, 1e-3), (1, 1000, 1e-4), (37, 1000, 1e-3), (512, 2000, 1e-4),
                                      (1000, 1000, 1e-3), (3, 7, 0.05), (4999, 5000, 1e-4)])
def test_clopper_pearson_matches_scipy_exact(b, n, risk):
    ci = stats.binomtest(b, n).proportion_ci(confidence_level=1 - risk, method="exact")
    lo, hi = clopper_pearson(b, n, risk)
    assert lo == pytest.approx(ci.low, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(ci.high, rel=1e-9, abs=1e-12)


def test_stopping_rule_on_hand_made_counts():
    rule = SequentialRule(10_000, (ALPHA,), risk=1e-3, min_draws=1000)
    assert rule.n_looks == 9  # after 1,000 ... 9,000 draws
    assert rule.look_risk == pytest.approx(1e-3 / 9)
    cases = [(0, 1000), (5, 1000), (20, 1000), (30, 1000), (45, 1000), (50, 1000), (70, 1000), (80, 1000),
             (100, 1000), (600, 1000), (150, 3000), (120, 3000), (180, 3000), (400, 9000), (480, 9000)]
    for b, n in cases:
        ci = stats.binomtest(b, n).proportion_ci(confidence_level=1 - rule.look_risk, method="exact")
        p = (b + 1) / (n + 1)
        want = (ci.high < ALPHA and p < ALPHA) or (ci.low > ALPHA and p >= ALPHA)
        assert bool(rule.decided(b, n)) == want, (b, n, ci)
    # clear cases by hand: p about 0 or 0.6 stops at the first look, p about the level never does
    assert rule.decided(0, 1000) and rule.decided(600, 1000)
    assert not rule.decided(50, 1000) and not rule.decided(450, 9000)
    # vectorised over tests
    np.testing.assert_array_equal(rule.decided(np.array([0, 50, 600]), 1000), [True, False, True])


def test_stopping_rule_two_thresholds_and_looks():
    rule = SequentialRule(10_000, (ALPHA, ALPHA / 20), risk=1e-3)
    # between alpha / 20 and alpha: decided for alpha alone, not for both
    assert SequentialRule(10_000, (ALPHA,)).decided(10, 1000)
    assert not rule.decided(10, 1000)
    assert bool(rule.decided(0, 1000)) == bool(
        stats.binomtest(0, 1000).proportion_ci(1 - rule.look_risk, "exact").high < ALPHA / 20)
    # a look at the first chunk boundary at or past each multiple of min_draws, below the budget
    assert [d for d in range(300, 10_001, 300) if rule.is_look(d - 300, d)] == \
        [1200, 2100, 3000, 4200, 5100, 6000, 7200, 8100, 9000]
    assert not SequentialRule(1000, (ALPHA,)).is_look(0, 1000) and SequentialRule(1000, (ALPHA,)).n_looks == 0


@pytest.mark.parametrize("kw", [{"risk": 0.0}, {"risk": 0.7}, {"risk": True}, {"min_draws": 5},
                                {"thresholds": ()}, {"thresholds": (1.5,)}, {"n_max": 0}])
def test_rule_rejects_bad_arguments(kw):
    args = {"n_max": 10_000, "thresholds": (ALPHA,), **kw}
    with pytest.raises(ValueError):
        SequentialRule(**args)


# --------------------------------------------------------------------------------------------------
# simulated data sets: strata x levels x options answer counts
# --------------------------------------------------------------------------------------------------
def _tables(gen, effect, S=20, L=2, K=4, n=6):
    """(S, L, K) counts: each stratum has its own answer distribution; level l shifts it by ``effect * l``
    on the logit scale of the options' positions (0: no level effect, the exact null)."""
    base = gen.normal(size=(S, 1, K))
    logits = base + effect * np.arange(L)[None, :, None] * np.linspace(-1, 1, K)[None, None, :]
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return np.stack([[gen.multinomial(n, p[s, lv]) for lv in range(L)] for s in range(S)]).astype(float)


def _between_ss(c):
    """Between-level sum of squares of mean position within strata, (..., S, L, K) -> (...): written here
    independently of the library's statistics."""
    pos = np.arange(c.shape[-1], dtype=float)
    n = c.sum(-1)
    m = (c @ pos) / np.maximum(n, 1)
    ms = (m * n).sum(-1, keepdims=True) / np.maximum(n.sum(-1, keepdims=True), 1)
    return (n * (m - ms) ** 2).sum((-2, -1))


def _p(obs, null):
    return (1 + np.sum(null >= obs - 1e-10 * max(abs(obs), 1.0))) / (1 + len(null))


def _agreement(n_sets, seed):
    gen = np.random.default_rng(seed)
    rule = SequentialRule(10_000, (ALPHA,))
    agree, early, draws = 0, 0, []
    for i in range(n_sets):
        c = _tables(gen, effect=gen.uniform(0, 0.8))
        obs = float(_between_ss(c))
        (full,) = answer_permutation_nulls(c, [(None, _between_ss)], 10_000, np.random.default_rng([seed, i]),
                                           chunk=500)
        (seq,) = answer_permutation_nulls(c, [(None, _between_ss)], 10_000, np.random.default_rng([seed, i]),
                                          chunk=500, rule=rule, observed=[obs])
        np.testing.assert_array_equal(seq, full[:len(seq)])  # the same draws, the first ones
        agree += (_p(obs, seq) < ALPHA) == (_p(obs, full) < ALPHA)
        early += len(seq) < 10_000
        draws.append(len(seq))
    return agree, early, np.array(draws)


def test_sequential_verdict_agrees_with_full_draws():
    agree, early, draws = _agreement(40, 11)
    # a disagreement needs an early stop on the wrong side: at most risk = 0.001 per test
    assert agree >= 39, (agree, early)
    assert early >= 30 and draws.mean() < 4000, draws  # most tests stop well before the budget


@pytest.mark.slow
def test_sequential_verdict_agrees_with_full_draws_many():
    agree, early, draws = _agreement(400, 12)
    assert agree >= 398, (agree, early)


# --------------------------------------------------------------------------------------------------
# (2) size under a null
# --------------------------------------------------------------------------------------------------
def _size(n_sets, seed):
    gen = np.random.default_rng(seed)
    rule = SequentialRule(10_000, (ALPHA,))
    rejections, draws = 0, 0
    for i in range(n_sets):
        c = _tables(gen, effect=0.0, S=12, L=3)
        obs = float(_between_ss(c))
        (seq,) = answer_permutation_nulls(c, [(None, _between_ss)], 10_000, np.random.default_rng([seed, i]),
                                          rule=rule, observed=[obs])
        rejections += _p(obs, seq) < ALPHA
        draws += len(seq)
    return rejections, draws / n_sets


def test_sequential_size_under_null():
    n = 300
    k, mean_draws = _size(n, 21)
    # the rejection rate is at most alpha: no evidence it is above (one-sided binomial test)
    assert stats.binomtest(k, n, ALPHA, alternative="greater").pvalue > 1e-3, k
    assert mean_draws < 2500, mean_draws


@pytest.mark.slow
def test_sequential_size_under_null_long():
    n = 3000
    k, _ = _size(n, 22)
    assert stats.binomtest(k, n, ALPHA, alternative="greater").pvalue > 1e-3, k


# --------------------------------------------------------------------------------------------------
# through assess_stability
# --------------------------------------------------------------------------------------------------
def test_assess_stability_sequential_records_draws():
    from robustalign.claims.stability import assess_stability
    from robustalign.simulate import simulate

    resp, ref = simulate(n_models=2, n_items=20, factors={"template": 3}, n_orders=1, n_samples=3, rng=0).load()
    kw = dict(n_resamples=200, n_permutations=3000, rng=1, skip=["agreement", "ranking", "retest", "pairwise"])
    fixed = assess_stability(resp, ref, **kw)
    seq = assess_stability(resp, ref, sequential=True, **kw)
    assert seq.provenance["sequential"]["risk"] == 0.001 and fixed.provenance["sequential"] is None
    used = seq.provenance["answer_null_draws"]
    assert len(used) == 2 and all(1000 <= u["noise_floor"] <= 3000 for u in used)
    for nf, il in zip(seq.evidence["noise_floors"], seq.evidence["item_level"]):
        assert len(nf["null"]) == nf["n_draws"]
        assert nf["p_mcse"] == pytest.approx(np.sqrt(nf["p_value"] * (1 - nf["p_value"]) / nf["n_draws"]))
        assert il is None or 1000 <= il["n_draws"] <= 3000
    # the factor effects do not use the answer nulls: the same numbers
    f0, f1 = (r.to_frame() for r in (fixed, seq))
    eff = f0["quantity"] == "factor_effect"
    np.testing.assert_allclose(f1.loc[eff, "p_value"], f0.loc[eff, "p_value"], rtol=1e-12)
    with pytest.raises(ValueError, match="sequential"):
        assess_stability(resp, ref, sequential="yes", **kw)


def test_sequential_numbers_do_not_depend_on_other_units_or_parts():
    import pandas as pd

    from robustalign.claims.stability import assess_stability
    from robustalign.simulate import simulate

    resp, _ = simulate(n_models=3, n_items=20, factors={"template": 3}, n_orders=1, n_samples=3, rng=5).load()
    skip = ("agreement", "ranking", "validity", "retest", "pairwise")
    kw = dict(factors=["template"], margin=0.1, n_resamples=100, n_permutations=3000, rng=11, sequential=True)
    full = assess_stability(resp, skip=skip, **kw)
    models = resp.models
    part = assess_stability(resp.subset(models=[models[2]]), skip=skip, **kw)
    floor_only = assess_stability(resp, skip=skip + ("item_level",), **kw)
    q = ["flip_noise_floor", "item_level_sd"]
    cols = ["quantity", "model", "estimate", "p_value"]
    frames = [r.to_frame() for r in (full, part)]
    a, b = (f.loc[f["quantity"].isin(q) & (f["model"] == models[2]), cols].reset_index(drop=True) for f in frames)
    assert len(a) == 2
    pd.testing.assert_frame_equal(a, b)
    # each null's stopping point is its own: the floor's draws do not depend on the item-level null
    for x, y in zip(full.evidence["noise_floors"], floor_only.evidence["noise_floors"]):
        np.testing.assert_array_equal(x["null"], y["null"])
    assert [d["noise_floor"] for d in full.provenance["answer_null_draws"]] == \
        [d["noise_floor"] for d in floor_only.provenance["answer_null_draws"]]
