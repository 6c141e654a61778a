"""audit_claim: specifications enumerated, estimates from independent computations, joint test holds
its size, executor gives the serial numbers."""

from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from robustalign.claims import audit_claim
from robustalign.claims.multiverse import Claim, enumerate_specifications, joint_sign_flip
from robustalign.simulate import simulate


@pytest.fixture(scope="module")
def sim():
    s = simulate(n_models=3, n_items=30, n_groups=3, factors={"format": 2}, n_orders=2, n_steer=2, rng=7)
    return s, *s.load()


def test_specifications_are_the_product_of_choices(sim):
    _, r, ref = sim
    specs = enumerate_specifications(r, Claim.closer("model_1", than="model_2", group="C01"), reference=ref)
    # format 2 levels + pooled, option_order 2 + pooled; metrics js, tv, plurality, brier, w1, mean_position,
    # cramer; two aggregations except the median of plurality
    assert len(specs) == 3 * 3 * (7 * 2 - 1)
    assert "steer_target" not in specs and "sample" not in specs
    assert not ((specs["metric"] == "plurality") & (specs["aggregation"] == "median")).any()


def test_closer_estimate_matches_scipy_js_on_one_specification(sim):
    _, r, ref = sim
    claim = Claim.closer("model_1", than="model_2", group="C02")
    res = audit_claim(r, ref, claim, factors=["format"], metrics=["js"], aggregations=["mean"],
                      include_pooled=False, n_resamples=100, n_permutations=200, rng=0)
    f = res.to_frame().set_index("format")
    d = r.data[r.data["format"] == "format_1"]
    h = ref.array(r.items, ["C02"])[:, 0]
    diffs = []

    def js(x, j):
        return 1 - jensenshannon(np.bincount(x - 1, minlength=4) / len(x), h[j], base=2)

    for j, item in enumerate(r.items):
        sims = []
        for m in ("model_1", "model_2"):
            x = d[(d["item"] == item) & (d["model"] == m)]["option"].astype(int).to_numpy()
            n = len(x)
            # the answer-distribution estimand: JS of subsamples of n, n - 1 and n - 2 answers (all of
            # them), extrapolated by a quadratic in 1/m to infinitely many answers
            s_m = [np.mean([js(x[list(keep)], j) for keep in combinations(range(n), n - k)]) for k in range(3)]
            # ... minus the same extrapolation's bias estimate for the human side (1000 respondents):
            # deleting respondents of options k (and l) leaves 1000 h - e_k (- e_l), with frequency
            # h_k (and (1000 h_l - [k = l]) / 999)
            p, mh, e = np.bincount(x - 1, minlength=4) / n, 1000 * h[j], np.eye(4)
            sim = lambda c, p=p: 1 - jensenshannon(p, np.clip(c, 0, None) / np.clip(c, 0, None).sum(), base=2)  # noqa: E731
            t1 = sum(h[j][k] * sim(mh - e[k]) for k in range(4) if h[j][k] > 0)
            t2 = sum(h[j][k] * max(mh[m2] - (k == m2), 0) / 999 * sim(mh - e[k] - e[m2])
                     for k in range(4) for m2 in range(4) if h[j][k] > 0 and mh[m2] - (k == m2) > 0)
            human = np.polyval(np.polyfit(1 / np.array([1000, 999, 998]), [s_m[0], t1, t2], 2), 0.0)
            sims.append(np.polyval(np.polyfit(1 / np.array([n, n - 1, n - 2]), s_m, 2), 0.0) - (s_m[0] - human))
        diffs.append(sims[0] - sims[1])
    assert f.loc["format_1", "estimate"] == pytest.approx(np.mean(diffs), abs=1e-9)


def test_higher_position_median_and_mean_match_pandas(sim):
    _, r, _ = sim
    res = audit_claim(r, None, Claim.higher_position("model_3", than="model_1"), factors=["option_order"],
                      include_pooled=False, n_resamples=100, n_permutations=200, rng=0)
    f = res.to_frame()
    d = r.data[r.data["option_order"] == "1|2|3|4"].assign(pos=lambda x: (x["option"].astype(int) - 1) / 3)
    m = d.groupby(["item", "model"], observed=True)["pos"].mean().unstack()
    diff = m["model_3"] - m["model_1"]
    row = f[(f["option_order"] == "1|2|3|4")].set_index("aggregation")
    assert row.loc["mean", "estimate"] == pytest.approx(diff.mean())
    assert row.loc["median", "estimate"] == pytest.approx(diff.median())


def test_joint_sign_flip_holds_its_size_under_correlated_null():
    # 600 null data sets: 40 items x 12 correlated specifications; reject when the joint median test p < .05
    rng = np.random.default_rng(2024)
    n_sets, rej_median, rej_share, rej_maxt = 600, 0, 0, 0
    aggs = np.array(["mean"] * 6 + ["median"] * 6)
    for _ in range(n_sets):
        item = rng.normal(0, 1, (40, 1))
        d = item + rng.normal(0, 0.7, (40, 12))  # shared item effect: specifications are dependent
        j = joint_sign_flip(d[..., None], aggs, n_permutations=199, gen=rng)
        rej_median += j["p_median_greater"] <= 0.05
        rej_share += j["p_share_significant"] <= 0.05
        rej_maxt += (j["p_maxt"] <= 0.05).any()
    for k in (rej_median, rej_share, rej_maxt):
        assert k / n_sets <= 0.05 or stats.binomtest(k, n_sets, 0.05, alternative="greater").pvalue > 0.01


def test_real_effect_is_supported_and_null_is_not(sim):
    s, r, ref = sim
    truth = s.truth["mu_model"]  # known generating locations: the highest model truly answers higher
    hi, lo = (np.argmax(truth), np.argmin(truth))
    res = audit_claim(r, None, Claim.higher_position(f"model_{hi + 1}", than=f"model_{lo + 1}"),
                      n_resamples=300, n_permutations=999, rng=1)
    assert res.verdicts["verdict"].iloc[0] == "supported"
    res = audit_claim(r, None, Claim.higher_position(f"model_{lo + 1}", than=f"model_{hi + 1}"),
                      n_resamples=300, n_permutations=999, rng=1)
    assert res.verdicts["verdict"].iloc[0] == "not supported"


def test_executor_gives_the_serial_numbers_and_levels_reuse_resamples(sim):
    _, r, ref = sim
    claim = Claim.steering_raises("model_2", target="C01")
    a = audit_claim(r, ref, claim, metrics=["js", "w1"], n_resamples=200, n_permutations=300, rng=5)
    with ThreadPoolExecutor(2) as ex:
        b = audit_claim(r, ref, claim, metrics=["js", "w1"], n_resamples=200, n_permutations=300, rng=5, executor=ex)
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    f90 = a.to_frame(0.9)
    assert (f90["conf_level"] == 0.9).all()
    w90, w95 = f90["conf_high"] - f90["conf_low"], a.to_frame()["conf_high"] - a.to_frame()["conf_low"]
    # JS cells of one format x order hold 5 answers: not estimable (NaN) at every level
    assert w90.isna().equals(w95.isna()) and (w90[w95.notna()] <= w95[w95.notna()] + 1e-12).all()


def test_names_are_checked(sim):
    _, r, ref = sim
    with pytest.raises(ValueError, match="model 'gpt' is not in the responses"):
        audit_claim(r, ref, Claim.closer("gpt", than="model_1", group="C01"))
    with pytest.raises(ValueError, match="group 'Narnia' is not in the reference"):
        audit_claim(r, ref, Claim.closest_group("model_1", group="Narnia"))
    with pytest.raises(ValueError, match="pass `reference=`"):
        audit_claim(r, None, Claim.closer("model_1", than="model_2", group="C01"))
    with pytest.raises(ValueError, match="max_specifications"):
        audit_claim(r, ref, Claim.closer("model_1", than="model_2", group="C01"), max_specifications=5)
    claim = Claim.closer("model_1", than="model_2", group="C01")
    with pytest.raises(ValueError, match="`n_permutations` must be an integer >= 1; got 0"):
        audit_claim(r, ref, claim, n_permutations=0)
    with pytest.raises(ValueError, match=r"`alpha` must be in \(0, 1\); got 5"):
        audit_claim(r, ref, claim, alpha=5)
    with pytest.raises(ValueError, match="`n_resamples` must be an integer >= 1; got 0"):
        audit_claim(r, ref, claim, n_resamples=0)


def test_specifications_without_items_are_left_out_not_counted_against(sim):
    _, r, ref = sim
    from dataclasses import replace

    # model_2 never answers under format_1: those specifications have no item for the claim
    d = r.data[~((r.data["model"] == "model_2") & (r.data["format"] == "format_1"))]
    r2 = replace(r, data=d)
    res = audit_claim(r2, ref, Claim.closer("model_1", than="model_2", group="C01"), factors=["format"],
                      metrics=["js"], aggregations=["mean"], n_resamples=100, n_permutations=200, rng=0)
    f = res.to_frame().set_index("format")
    assert np.isnan(f.loc["format_1", "estimate"]) and np.isnan(f.loc["format_1", "p_value"])
    assert pd.isna(f.loc["format_1", "holds"])
    v = res.verdicts.iloc[0]
    assert v["n_specifications"] == 2 and v["n_specifications_empty"] == 1
    assert v["share_holds"] == pytest.approx(np.mean(f.drop(index="format_1")["estimate"] > 0))
    assert "left out" in v["reason"]


def _two_model_data(pairs_by_format):
    """Responses of models A and B, one answer per item and format: {format: [(answer A, answer B), ...]}."""
    from robustalign.schema import Scale, make_responses

    scale = Scale(("1", "2", "3", "4"), ("SD", "D", "A", "SA"), ordinal=True)
    rows = [dict(model=m, item=f"q{q}", format=f, answer=str(x))
            for f, pairs in pairs_by_format.items() for q, ab in enumerate(pairs) for m, x in zip("AB", ab)]
    n = max(len(p) for p in pairs_by_format.values())
    return make_responses(pd.DataFrame(rows), scales={f"q{q}": scale for q in range(n)}, factors=["format"])


def test_an_estimate_that_is_zero_up_to_rounding_does_not_hold():
    # per-item position differences -1/3, -1/3, -1/3, +1, 0, 0: the mean is exactly 0 in exact arithmetic; the
    # computed one is a rounding residue (it used to count as "holds" and to reach n_for_mde with ~1e30 items,
    # which raised TypeError: ufunc 'isfinite' not supported)
    pairs = [(1, 2), (1, 2), (1, 2), (4, 1), (3, 3), (3, 3)]
    r = _two_model_data({"f1": pairs, "f2": pairs})
    res = audit_claim(r, None, Claim.higher_position("A", than="B"), aggregations=["mean"],
                      n_resamples=200, n_permutations=200, rng=1)
    f = res.to_frame()
    assert (f["estimate"].abs() < 1e-9).all()
    assert not f["holds"].any()
    v = res.verdicts.iloc[0]
    assert v["share_holds"] == 0 and v["verdict"] == "not supported"


def test_zero_median_effect_gives_no_finite_items_needed():
    # +1/6 under f1, -1/6 under f2: holds in half the specifications, median effect 0 -> inconclusive, and
    # no number of items detects a zero effect
    up = [(2, 1), (2, 1), (2, 1), (3, 3), (3, 3), (3, 3)]
    down = [(b, a) for a, b in up]
    r = _two_model_data({"f1": up, "f2": down})
    res = audit_claim(r, None, Claim.higher_position("A", than="B"), aggregations=["mean"], include_pooled=False,
                      n_resamples=200, n_permutations=200, rng=1)
    f = res.to_frame().set_index("format")
    assert f.loc["f1", "estimate"] == pytest.approx(1 / 6) and f.loc["f2", "estimate"] == pytest.approx(-1 / 6)
    v = res.verdicts.iloc[0]
    assert v["verdict"] == "inconclusive"
    assert v["n_needed"] == np.inf
    assert "not estimable" in v["reason"]
