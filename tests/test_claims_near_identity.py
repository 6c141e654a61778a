"""Closer claims on few-answer data and near identity with the human distribution (audit_claim's defaults).

The data come from tests/_near_identity_sim.py (numpy only, known truth): 40 ordinal items, 3 formats, 3 human
groups with exact shares, models sampled 2, 5 or 15 times per item and format. Verdict rates are judged by
binomial tests; the chi-square of identity is recomputed here from scipy.
"""

from __future__ import annotations

import numpy as np
import pytest
from _near_identity_sim import CLAIMS, dataset, supported, true_margin
from scipy import stats

from robustalign.claims.multiverse import KINKED_METRICS, Claim, audit_claim, enumerate_specifications
from robustalign.metrics import MIN_ANSWERS, QUADRATIC_METRICS
from robustalign.scoring import item_scores

FAST = dict(n_resamples=100, n_permutations=199)


def test_default_metrics_on_five_answer_data_include_an_estimable_quadratic_metric():
    resp, ref, _ = dataset("true_difference", [3, 0])  # 5 answers per item and format
    claim = Claim.closer("close", than="far", group="G1")
    specs = enumerate_specifications(resp, claim, reference=ref)
    quad = sorted(set(specs["metric"]) & QUADRATIC_METRICS)
    assert quad == ["brier", "cramer"]  # every item is ordinal: cramer too
    for m in quad:  # estimable per format cell (5 answers), independently of the claim machinery
        assert MIN_ANSWERS[m] <= 5
        s = item_scores(resp, ref, metric=m, by=["model", "format"], groups=["G1"])
        assert s.attrs["n_not_estimable"] == 0 and len(s) == 2 * 3 * 40
    # js (10 answers) and tv (30) are not estimable per format: without brier and cramer only the pooled
    # specifications and the 5-answer metrics would be left
    js = item_scores(resp, ref, metric="js", by=["model", "format"], groups=["G1"])
    assert js.empty and js.attrs["n_not_estimable"] == 2 * 3 * 40
    res = audit_claim(resp, ref, claim, rng=0, **FAST)
    f = res.to_frame()
    assert f.loc[f["metric"].isin(quad), "estimate"].notna().all()
    # the true margin of brier is positive (close is closer); the estimate agrees in sign on the pooled spec
    brier = true_margin("true_difference", dataset("true_difference", [3, 0])[2],
                        lambda p, h: 1 - 0.5 * ((p - h) ** 2).sum(-1))
    assert brier > 0
    assert (f.loc[(f["metric"] == "brier") & (f["format"] == "(pooled)"), "estimate"] > 0).all()


def _identity_p(resp, ref, model):
    """p-value of identity of a model's pooled answers with G1 over the 40 items, from scipy: the sum of the
    per-item Pearson statistics (scipy.stats.chisquare) against a scaled chi-square with the statistic's exact
    mean (df) and variance 2(K - 1) + (sum 1/h - K^2 - 2K + 2) / n per item."""
    d = resp.data[resp.data["model"] == model]
    stat = df = var = 0.0
    for item, g in d.groupby("item", observed=True):
        h = ref.array([item], ["G1"])[0, 0]
        obs = np.bincount(g["option"].astype(int).to_numpy() - 1, minlength=4)
        n = obs.sum()
        stat += stats.chisquare(obs, n * h).statistic
        df += 3
        var += 2 * 3 + (np.sum(1 / h) - 16 - 8 + 2) / n
    a, b = var / (2 * df), 2 * df**2 / var
    return float(stats.chi2.sf(stat / a, b))


def test_kinked_specifications_are_left_out_near_identity_and_said_so():
    resp, ref, truth = dataset("near_vs_identical", [5, 1])
    assert np.allclose(truth["identical"], truth["G1"][:, None, :])  # the identical model answers as G1 does
    claim = Claim.closer("near", than="identical", group="G1")
    res = audit_claim(resp, ref, claim, rng=0, **FAST)
    f = res.to_frame()
    pooled = f[(f["format"] == "(pooled)") & (f["metric"] == "js")].iloc[0]
    want = max(_identity_p(resp, ref, "near"), _identity_p(resp, ref, "identical"))
    assert pooled["identity_p"] == pytest.approx(want, rel=1e-6)
    kinked = f["metric"].isin(KINKED_METRICS)
    high = kinked & (f["identity_p"] > 0.01)  # 0.01 = NEAR_IDENTITY_TEST_SHARE (0.2) x alpha (0.05)
    assert (f.loc[f["near_identity"], "identity_p"] > 0.01).all()
    # left out unless not estimable anyway: tv needs 30 answers, a format has 15 (pooled: 45)
    kept = f[high & ~f["near_identity"]]
    assert (kept["metric"] == "tv").all() and (kept["format"] != "(pooled)").all()
    assert res.verdicts.iloc[0]["n_specifications_empty"] == len(kept)
    assert f.loc[f["near_identity"], "estimate"].isna().all()
    assert not f.loc[~kinked, "near_identity"].any() and f.loc[~kinked, "identity_p"].isna().all()
    v = res.verdicts.iloc[0]
    assert v["n_specifications_near_identity"] == int(f["near_identity"].sum()) > 0
    assert "not distinguishable from the human distribution" in v["reason"]
    # with only kinked metrics nothing is left to judge: an error that names the fix
    with pytest.raises(ValueError, match=r"not distinguishable.*brier"):
        audit_claim(resp, ref, claim, metrics=["js"], rng=0, **FAST)


def test_a_model_far_from_the_humans_keeps_its_kinked_specifications():
    resp, ref, _ = dataset("true_difference", [3, 2], n_answers={"close": 15, "far": 15})
    # two cells of the far model (offset and sharper): identity with G1 is rejected for both (checked with
    # scipy), so every js specification is kept and judged
    assert _identity_p(resp, ref, "far") < 1e-6
    claim = Claim.contrast({"model": "far", "format": "f1"}, {"model": "far", "format": "f2"}, group="G1")
    f = audit_claim(resp, ref, claim, rng=0, **FAST).to_frame()
    assert f.loc[f["metric"].isin(KINKED_METRICS), "identity_p"].lt(0.01).all()
    assert not f["near_identity"].any()
    assert f.loc[f["metric"] == "js", "estimate"].notna().all()


def _judge_null(v: np.ndarray, p_min: float) -> None:
    k = int(np.sum(v == "supported"))
    assert stats.binomtest(k, len(v), 0.05, alternative="greater").pvalue > p_min, (k, len(v))


def test_closer_claims_between_identical_and_near_identical_models_are_rarely_supported_fast():
    # formats pooled (7 metrics x mean, where JS alone was supported in 0.067 before the near-identity rule);
    # 6 or more of 20 data sets supported fails (binomial test against 0.05, p < 1e-3): catches rates of 0.3
    kw = dict(FAST, factors=[], aggregations=["mean"])
    _judge_null(supported("identical_pair", [[11, i] for i in range(20)], **kw), 1e-3)
    _judge_null(supported("near_vs_identical", [[12, i] for i in range(20)], **kw), 1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["identical_pair", "near_vs_identical"])
def test_closer_claims_near_identity_hold_their_size_slow(case):
    # formats pooled, means (about 2 CPU-minutes per case); 19 or more of 200 (0.095) fails
    _judge_null(supported(case, [[21, i] for i in range(200)], **FAST, factors=[], aggregations=["mean"]), 0.01)


@pytest.mark.slow
def test_closer_claim_with_a_true_difference_is_supported_slow():
    v = supported("true_difference", [[22, i] for i in range(100)], **FAST, factors=[], aggregations=["mean"])
    k = int(np.sum(v == "supported"))
    assert stats.binomtest(k, len(v), 0.8, alternative="less").pvalue > 0.01, k


def test_cases_have_the_claimed_truth():
    from scipy.spatial.distance import jensenshannon

    def js(p, h):
        return 1 - jensenshannon(p, np.broadcast_to(h, p.shape), base=2, axis=-1)

    def brier(p, h):
        return 1 - 0.5 * ((p - h) ** 2).sum(-1)

    for case, sign in (("identical_pair", 0), ("near_vs_identical", -1), ("true_difference", 1)):
        _, _, _, truth = __import__("_near_identity_sim").simulate(case, [9, 0])
        for fn in (js, brier):
            m = true_margin(case, truth, fn)
            assert (m == pytest.approx(0, abs=1e-12)) if sign == 0 else np.sign(m) == sign, (case, m)
    assert set(CLAIMS) == {"identical_pair", "near_vs_identical", "true_difference"}
