"""Position bias, the noise floor of the modal flip rate and item-level instability, on simulated order
experiments with known truth (tests/_order_sim.py, written independently of robustalign)."""

import numpy as np
import pytest
from _order_sim import ORDER_MAP, simulate_order_experiment
from scipy import stats

from robustalign.claims import assess_stability
from robustalign.schema import make_responses, make_scales

SKIP_ALL = ("pairwise", "agreement", "retest", "ranking", "validity")


def _fit(models, seed, n_items=40, n_samples=20, skip=(), **kw):
    r, sc, truth = simulate_order_experiment(models, n_items=n_items, n_samples=n_samples, rng=seed)
    resp = make_responses(r, scales=make_scales(sc), order_column="order", order_map=ORDER_MAP)
    res = assess_stability(resp, factors=["order"], rng=seed, skip=SKIP_ALL + tuple(skip), **kw)
    return res, truth


def _coverage_counts(n_sets):
    """Model a: primacy only; model b: a content-order effect only (true position bias exactly 0)."""
    models = {"a": dict(primacy=0.8), "b": dict(content=8.0)}
    cover = {"pb": 0, "ce": 0}
    b_pb_excludes_0 = b_ce_excludes_0 = 0
    for seed in range(n_sets):
        res, truth = _fit(models, 1000 + seed, n_resamples=400, n_permutations=200,
                          skip=("noise_floor", "item_level"))
        f = res.to_frame()
        for m in models:
            pb = f[(f["quantity"] == "position_bias") & (f["model"] == m) & (f["position"] == "first")].iloc[0]
            ce = f[(f["quantity"] == "factor_effect") & (f["model"] == m)].iloc[0]
            cover["pb"] += pb["conf_low"] <= truth.loc[m, "position_bias_first"] <= pb["conf_high"]
            cover["ce"] += ce["conf_low"] <= truth.loc[m, "content_effect"] <= ce["conf_high"]
            if m == "b":
                b_pb_excludes_0 += not (pb["conf_low"] <= 0 <= pb["conf_high"])
                b_ce_excludes_0 += not (ce["conf_low"] <= 0 <= ce["conf_high"])
    return cover, b_pb_excludes_0, b_ce_excludes_0


def _check_coverage(n_sets):
    cover, b_pb, b_ce = _coverage_counts(n_sets)
    n = 2 * n_sets
    for k in ("pb", "ce"):
        # 95% intervals: the coverage is not credibly below 0.95 (items are drawn afresh, truth is the
        # mean over the drawn items, so the item bootstrap may be conservative but not liberal)
        assert stats.binomtest(int(cover[k]), n, 0.95, alternative="less").pvalue > 0.01, (k, cover[k], n)
    # separation: model b's content-order effect is found while its position bias (truly 0) is not
    assert stats.binomtest(b_pb, n_sets, 0.05, alternative="greater").pvalue > 0.01, b_pb
    assert b_ce >= 0.8 * n_sets, b_ce


def test_position_bias_and_content_order_effect_recovered_separately():
    _check_coverage(12)


@pytest.mark.slow
def test_position_bias_and_content_order_effect_coverage_full():
    _check_coverage(150)


def test_position_bias_matches_hand_count():
    """Two items, reversed order: hand-computed shares at the first shown option."""
    import pandas as pd

    rows = []
    # item x (K=4): original answers positions 1,1,1,2 ; reversed answers positions 1,3,3,3
    for o, ans in (("original", [1, 1, 1, 2]), ("reversed", [1, 3, 3, 3])):
        rows += [("m", "x", o, s, a) for s, a in enumerate(ans)]
    # item y (K=5): original 5,5,1,1 ; reversed 1,1,1,1
    for o, ans in (("original", [5, 5, 1, 1]), ("reversed", [1, 1, 1, 1])):
        rows += [("m", "y", o, s, a) for s, a in enumerate(ans)]
    r = pd.DataFrame(rows, columns=["model", "item", "order", "sample", "answer_position"])
    sc = pd.DataFrame({"item": ["x", "y"], "options": ["1|2|3|4", "1|2|3|4|5"], "ordinal": True})
    resp = make_responses(r, scales=make_scales(sc), order_column="order", order_map=ORDER_MAP)
    res = assess_stability(resp, factors=["order"], n_resamples=50, n_permutations=50, rng=0, skip=SKIP_ALL)
    f = res.to_frame()
    got = f[(f["quantity"] == "position_bias") & (f["position"] == "first")]["estimate"].item()
    # x: canonical 1 share 3/4 (orig, first) vs 0 (rev, last); canonical 4: 1/4 (rev, first) vs 0 (orig) -> 0.5
    # y: canonical 1 share 1/2 vs 0 (rev shows it last); canonical 5: 1 (rev first) vs 1/2 (orig last) -> 0.5
    assert got == pytest.approx(((0.75 + 0.25) / 2 + (0.5 + 0.5) / 2) / 2)


@pytest.mark.parametrize("n", [1, 5, 50])
def test_noise_floor_matches_the_flip_rate_under_no_effect(n):
    """No effect: the observed modal flip rate and its floor have the same mean over data sets, and the
    test of 'flip rate above the floor' rejects at most at its level."""
    obs, floor, rej = [], [], 0
    n_sets = 16
    for seed in range(n_sets):
        res, _ = _fit({"m": {}}, 2000 + 10 * n + seed, n_items=30, n_samples=n, n_resamples=50,
                      n_permutations=200, skip=("item_level", "position_bias"))
        nf = res.evidence["noise_floors"][0]
        obs.append(float(res.evidence["flips"][0]["flip"]["mean"].estimate[0]))
        floor.append(nf["floor"])
        rej += nf["p_value"] <= 0.05
    d = np.array(obs) - np.array(floor)
    assert abs(d.mean()) <= 3 * d.std(ddof=1) / np.sqrt(n_sets) + 1e-12, (n, d.mean())
    assert stats.binomtest(rej, n_sets, 0.05, alternative="greater").pvalue > 0.01, rej
    if n == 50:  # many samples per cell: the floor is far below the single-answer retest rate
        assert np.mean(floor) < 0.5 * np.mean(obs) + 0.2


def test_noise_floor_is_used_in_the_verdict_and_a_flip_excess_is_detected():
    res, _ = _fit({"m": dict(item_flip=3.0)}, 7, n_items=40, n_samples=50, n_resamples=200, n_permutations=200,
                  flip_margin=0.05, skip=("position_bias",))
    v = res.verdicts.iloc[0]
    assert "noise floor" in v["reason"] and v["verdict"] == "not supported"


def _item_level_calls(n_sets, unstable):
    called = 0
    for seed in range(n_sets):
        models = {"m": dict(item_flip=1.6)} if unstable else {"m": {}}
        r, sc, truth = simulate_order_experiment(models, n_items=60, n_samples=50, rng=3000 + seed)
        resp = make_responses(r, scales=make_scales(sc), order_column="order", order_map=ORDER_MAP)
        # the margin plays the human per-item spread: the model's per-item spread is 1.7 x it
        delta = truth.loc["m", "item_level_sd"] / 1.7 if unstable else 0.06
        res = assess_stability(resp, factors=["order"], margin=delta, n_resamples=300, n_permutations=100,
                               rng=seed, skip=SKIP_ALL + ("position_bias", "noise_floor"))
        called += res.verdicts["verdict"].item() == "not supported"
    return called


def _check_item_level(n_sets):
    hit = _item_level_calls(n_sets, True)
    false = _item_level_calls(n_sets, False)
    assert stats.binomtest(hit, n_sets, 0.9, alternative="less").pvalue > 0.01 and hit >= 0.85 * n_sets, hit
    assert stats.binomtest(false, n_sets, 0.05, alternative="greater").pvalue > 0.01, false


def test_item_level_instability_is_called_unstable_and_null_is_not():
    _check_item_level(10)


@pytest.mark.slow
def test_item_level_instability_calibration_full():
    _check_item_level(200)


def test_noise_floor_and_item_level_keep_their_size_when_they_share_draws():
    """Both parts on (their nulls come from one set of draws): under no effect each test rejects at most
    at its level."""
    n_sets, rej_floor, rej_item = 16, 0, 0
    for seed in range(n_sets):
        res, _ = _fit({"m": {}}, 4000 + seed, n_items=30, n_samples=5, n_resamples=50, n_permutations=200,
                      skip=("position_bias",))
        nf, il = res.evidence["noise_floors"][0], res.evidence["item_level"][0]
        rej_floor += nf["p_value"] <= 0.05
        rej_item += il["p_value"] <= 0.05
    for rej in (rej_floor, rej_item):
        assert stats.binomtest(rej, n_sets, 0.05, alternative="greater").pvalue > 0.01, (rej_floor, rej_item)
