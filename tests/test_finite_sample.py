"""The answer-distribution estimand: finite-sample bias corrections and interval coverage.

Reference values come from closed forms (U-statistics, exact multinomial expectations by
enumeration), scipy, and a simulation written here without robustalign's ``simulate()``: answer
distributions per model x item are drawn from a population of items, n answers are sampled per cell,
and the estimand (the mean over items of the metric between the model's *answer distribution* and the
human distribution) is computed from the true distributions over many new items.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

import robustalign.metrics as M
from robustalign.schema import make_reference, make_responses
from robustalign.scoring import alignment, item_scores

K = 4
OPTIONS = [str(k + 1) for k in range(K)]


# --------------------------------------------------------------------------------------------------
# the corrections against independent computations
# --------------------------------------------------------------------------------------------------
def _answers(counts):
    return np.repeat(np.arange(len(counts)), counts)


def _shares(ans, k=K):
    return np.bincount(ans, minlength=k) / len(ans)


def _subsample_mean(fn, counts, drop: int) -> float:
    """Mean of ``fn(shares)`` over every subsample that leaves ``drop`` of the answers out (brute force)."""
    ans = _answers(counts)
    return float(np.mean([fn(_shares(np.delete(ans, list(ix))))
                          for ix in itertools.combinations(range(len(ans)), drop)]))


def _js_to(h):
    return lambda p: 1 - jensenshannon(p, h, base=2)


def test_first_order_is_the_jackknife_over_answers_computed_by_brute_force():
    counts = np.array([3, 0, 1, 2])
    h = np.array([0.1, 0.2, 0.3, 0.4])
    n = int(counts.sum())
    tv = lambda p: 1 - 0.5 * np.abs(p - h).sum()  # noqa: E731  (closed form, no scipy)
    for metric, fn, order in (("js", _js_to(h), 1), ("tv", tv, None)):
        expected = n * fn(counts / n) - (n - 1) * _subsample_mean(fn, counts, 1)
        kw = {} if order is None else {"order": order}
        got = M.finite_sample_similarity(metric, counts / n, h, n, min_n=2, **kw)
        assert got == pytest.approx(expected, abs=1e-12), metric


def test_second_order_extrapolates_subsample_means_computed_by_brute_force():
    counts = np.array([2, 1, 0, 3])
    h = np.array([0.25, 0.25, 0.4, 0.1])
    n = int(counts.sum())
    js = _js_to(h)
    s0, s1, s2 = js(counts / n), _subsample_mean(js, counts, 1), _subsample_mean(js, counts, 2)
    # quadratic in x = 1/m through (1/n, s0), (1/(n-1), s1), (1/(n-2), s2), evaluated at x = 0
    x = 1 / np.array([n, n - 1, n - 2])
    expected = np.polyval(np.polyfit(x, [s0, s1, s2], 2), 0.0)
    assert M.finite_sample_similarity("js", counts / n, h, n, min_n=2) == pytest.approx(expected, abs=1e-9)


def _exact_mean(fn, p, n):
    """E fn(counts / n) under Multinomial(n, p), by enumerating every count vector."""
    total = 0.0
    for c in itertools.product(range(n + 1), repeat=len(p)):
        if sum(c) == n:
            total += stats.multinomial.pmf(c, n, p) * fn(np.array(c) / n)
    return total


def test_jackknife_is_exactly_unbiased_for_a_quadratic_metric_on_both_sides():
    # S = 1 - sum_k (p_k - q_k)^2 / 2 has bias a/n + b/m exactly: the two-sample jackknife removes it
    def sq(p, q, K=None, ordinal=None, check=False):
        return 1 - 0.5 * ((np.asarray(p) - np.asarray(q)) ** 2).sum(-1)

    p, q, n, m = np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.6, 0.3]), 4, 3
    truth = sq(p, q)
    plug = _exact_mean(lambda a: _exact_mean(lambda b: sq(a, b), q, m), p, n)
    corr = _exact_mean(lambda a: _exact_mean(
        lambda b: M.finite_sample_similarity(sq, a, b, n, m), q, m), p, n)
    assert abs(plug - truth) > 0.05  # the plug-in is biased ...
    assert corr == pytest.approx(truth, abs=1e-12)  # ... the correction is exact here
    # and the one-sided jackknife of sum p_k^2 is the U-statistic sum n_k (n_k - 1) / (n (n - 1))
    c = np.array([3, 1, 2])
    u = (c * (c - 1)).sum() / (6 * 5)
    psq = M.finite_sample_similarity(lambda a, b, K=None, ordinal=None, check=False: (a * a).sum(-1),
                                     c / 6, q, 6, order=1)
    assert psq == pytest.approx(u, abs=1e-12)


def test_linear_metric_is_unchanged_and_too_few_answers_are_not_estimable():
    p, h = np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0]]), np.array([0.4, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(M.finite_sample_similarity("agreement", p, h, [1, 2]), [0.4, 0.35])
    js = M.finite_sample_similarity("js", p, h, [1, 4])
    assert np.isnan(js).all()  # JS needs 10 answers per cell by default (MIN_ANSWERS)
    w1 = M.finite_sample_similarity("w1", p, h, [4, 6], K=4, ordinal=True)
    assert np.isnan(w1[0]) and np.isfinite(w1[1])
    assert np.isfinite(M.finite_sample_similarity("w1", p, h, [2, 2], K=4, ordinal=True, min_n=2)).all()


def test_expected_correction_removes_most_of_the_plug_in_bias():
    # exact expectations over Multinomial(n, p) for one cell at n = 15. JS: |bias| falls by at least
    # 4x. TV is piecewise linear and p_k is within 1.3 SD of h_k on two options (near its kinks):
    # there the jackknife over-corrects, and only a reduction is guaranteed (the documented residual).
    p, h, n = np.array([0.7, 0.2, 0.1, 0.0]), np.array([0.3, 0.3, 0.2, 0.2]), 15
    for metric, factor in (("js", 4), ("tv", 1.2)):
        f = M.METRICS[metric]
        truth = float(f(p, h))
        plug = _exact_mean(lambda a, f=f: f(a, h, check=False), p, n) - truth
        corr = _exact_mean(lambda a, mt=metric: M.finite_sample_similarity(mt, a, h, n, min_n=2), p, n) - truth
        assert abs(plug) > 0.01 and abs(plug) > factor * abs(corr), (metric, plug, corr)


# --------------------------------------------------------------------------------------------------
# simulation with known truth (independent of robustalign.simulate)
# --------------------------------------------------------------------------------------------------
SHARPNESS = {"flat": 0.6, "mid": 1.5, "sharp": 4.0}  # exponent on the human-like item propensities


def _population(rng, n_items):
    """Human distributions per item and each model's answer distribution on the same items."""
    h = rng.dirichlet(np.full(K, 1.5), size=n_items)
    base = np.log(h) + rng.normal(0, 0.8, size=(n_items, K))  # what models share about the item
    out = {}
    for m, beta in SHARPNESS.items():
        z = beta * (base + rng.normal(0, 0.5, size=(n_items, K)))
        z -= z.max(-1, keepdims=True)
        out[m] = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return h, out


def _brier(p, h):  # closed forms, written here (checked against scipy below)
    return 1 - 0.5 * ((p - h) ** 2).sum(-1)


def _cramer(p, h):
    return 1 - ((np.cumsum(p, -1) - np.cumsum(h, -1))[..., :-1] ** 2).sum(-1) / (p.shape[-1] - 1)


@cache
def _truth(metric):
    """Estimand per model: the mean over 200,000 new items of S(answer distribution, human)."""
    h, p = _population(np.random.default_rng(20261203), 200_000)
    f = {"brier": _brier, "cramer": _cramer}.get(metric)
    if f is None:
        f = lambda a, b: M.METRICS[metric](a, b, K=K, ordinal=True)  # noqa: E731
    return {m: float(np.mean(f(p[m], h))) for m in p}


def _dataset(rng, n_items, n_answers, n_human=None):
    h, p = _population(rng, n_items)
    items = [f"q{i:03d}" for i in range(n_items)]
    cols = {"model": [], "item": [], "sample": [], "answer": []}
    for m, dist in p.items():
        nm = n_answers[m] if isinstance(n_answers, dict) else n_answers
        u = rng.random((n_items, nm, 1))  # inverse-CDF draws of nm answers per item
        k = (u > np.cumsum(dist, axis=1)[:, None, :-1]).sum(-1)
        cols["model"] += [m] * (n_items * nm)
        cols["item"] += list(np.repeat(items, nm))
        cols["sample"] += list(np.tile(np.arange(nm), n_items))
        cols["answer"] += list(np.array(OPTIONS)[k.ravel()])
    if n_human is not None:  # a survey of n_human respondents per item
        h = np.array([rng.multinomial(n_human, hi) for hi in h]) / n_human
    ref = pd.DataFrame([{"item": it, "group": "G1", "option": o, "share": h[i, k],
                         **({"n": n_human} if n_human else {})}
                        for i, it in enumerate(items) for k, o in enumerate(OPTIONS)])
    scales = pd.DataFrame({"item": items, "options": "|".join(OPTIONS), "ordinal": True})
    reference = make_reference(ref, scales)
    return make_responses(pd.DataFrame(cols), reference), reference


def _coverage(metrics, n_answers, n_sets, *, n_items=40, n_human=None, seed=0, estimand="answer-distribution"):
    """Per metric: hits of the 95% interval of each model and of each pairwise difference."""
    hits = {(mt, kind): [] for mt in metrics for kind in ("model", "pair")}
    for d in range(n_sets):
        rng = np.random.default_rng([seed, d])
        resp, ref = _dataset(rng, n_items, n_answers, n_human)
        for mt in metrics:
            truth = _truth(mt)
            res = alignment(resp, ref, metric=mt, n_resamples=600, rng=d, estimand=estimand)
            fr = res.to_frame()
            hits[(mt, "model")] += [lo <= truth[m] <= hi for m, lo, hi in zip(fr["model"], fr["conf_low"], fr["conf_high"])]
            pw = res.pairwise("model").to_frame()
            hits[(mt, "pair")] += [lo <= truth[a] - truth[b] <= hi for a, b, lo, hi in
                                   zip(pw["model_a"], pw["model_b"], pw["conf_low"], pw["conf_high"])]
    return {k: np.array(v) for k, v in hits.items()}


def _judge(h: np.ndarray, n_units: int, lo: float, hi: float, p_min: float):
    """Coverage of one interval per data set (every n_units-th entry: one model or pair, independent
    across data sets) must not be significantly outside [lo, hi]."""
    for j in range(n_units):
        x = h[j::n_units]
        k, n = int(x.sum()), len(x)
        below = stats.binomtest(k, n, lo, alternative="less").pvalue
        above = stats.binomtest(k, n, hi, alternative="greater").pvalue
        assert below > p_min and above > p_min, (j, k, n)


def test_intervals_cover_the_answer_distribution_estimand_fast():
    # 40 data sets per configuration, one judgement per model and per pair: a rate of 0.80 or less
    # fails (the plug-in JS interval covers 0.4 of the time at 40 items and 15 answers, less with more)
    for n_answers, metrics in ((15, ("js", "w1")), (2, ("agreement",))):  # TV: from 30 answers (MIN_ANSWERS)
        hits = _coverage(metrics, n_answers, 40, seed=n_answers)
        for h in hits.values():
            _judge(h, 3, 0.93, 0.97, 1e-4)


def test_quadratic_metrics_match_scipy_and_are_exactly_unbiased_from_two_answers():
    from scipy.stats import energy_distance

    p, h = np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.1, 0.2, 0.3, 0.4])
    x = np.arange(K) / (K - 1)
    assert M.cramer_similarity(p, h) == pytest.approx(1 - energy_distance(x, x, p, h) ** 2 / 2, abs=1e-12)
    assert M.brier_similarity(p, h) == pytest.approx(1 - 0.5 * np.sum((p - h) ** 2), abs=1e-12)
    assert M.cramer_similarity(np.pad(p, (0, 2)), np.pad(h, (0, 2)), K=K) == pytest.approx(M.cramer_similarity(p, h))
    # exact expectation over Multinomial(n, p) on the model side and Multinomial(m, h) on the human side
    for metric, f in (("brier", _brier), ("cramer", _cramer)):
        for n, m in ((2, None), (3, 2), (5, 4)):
            def corrected(a, b=h, mt=metric, n=n, m=m):
                return M.finite_sample_similarity(mt, a, b, n, m, K=K, ordinal=True)

            def over_h(a, c=corrected, m=m):
                return _exact_mean(lambda b: c(a, b), h, m)

            got = _exact_mean(corrected if m is None else over_h, p, n)
            plug = _exact_mean(lambda a, f=f: f(a, h), p, n)
            assert abs(plug - f(p, h)) > 0.02  # the plug-in is biased at these counts ...
            assert got == pytest.approx(f(p, h), abs=1e-12), (metric, n, m)  # ... the correction is exact


def test_quadratic_metrics_cover_the_estimand_from_two_answers_fast():
    # 40 data sets x 3 models of different sharpness; a rate of 0.80 or less fails (p_min 1e-4)
    for n_answers in (2, 5):
        hits = _coverage(("brier", "cramer"), n_answers, 40, seed=300 + n_answers)
        for h in hits.values():
            _judge(h, 3, 0.93, 0.97, 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("n_answers", [2, 5, 15, 50])
def test_quadratic_metrics_cover_the_estimand_slow(n_answers):
    hits = _coverage(("brier", "cramer"), n_answers, 400, seed=3000 + n_answers)
    for h in hits.values():
        _judge(h, 3, 0.93, 0.97, 0.01)


def test_plug_in_misses_the_estimand_that_the_correction_covers():
    # 120 items: the plug-in's bias (-0.04 to -0.06 at 15 answers) is then several standard errors
    hits = _coverage(("js",), 15, 10, n_items=120, seed=99, estimand="plug-in")
    assert hits[("js", "model")].mean() < 0.2  # the plug-in targets an n-dependent quantity


def test_human_sampling_is_corrected_when_respondent_counts_are_known():
    # 30 respondents per item: the plug-in JS is biased by the human side alone
    hits = _coverage(("js",), 15, 40, n_human=30, seed=7)
    for h in hits.values():
        _judge(h, 3, 0.93, 0.97, 1e-4)


def test_one_answer_per_cell_is_reported_not_estimable():
    resp, ref = _dataset(np.random.default_rng(1), 12, 1)
    with pytest.raises(ValueError, match=r"'js' is not estimable.*fewer than 10 valid answers.*agreement.*plug-in"):
        alignment(resp, ref, metric="js", n_resamples=50, rng=0)
    s = item_scores(resp, ref, metric="tv")
    assert s.empty and s.attrs["n_not_estimable"] == 36 and s.attrs["estimand"] == "answer-distribution"
    res = alignment(resp, ref, metric="agreement", n_resamples=50, rng=0)  # linear: fine from one answer
    assert res.provenance["estimand"] == "answer-distribution" and res.provenance["n_not_estimable"] == 0
    with pytest.raises(ValueError, match=r"`min_answers` must be an integer >= 2"):
        item_scores(resp, ref, metric="tv", min_answers=1)


@pytest.mark.slow
@pytest.mark.parametrize("n_answers, metrics", [(1, ("agreement",)), (2, ("agreement",)), (5, ("agreement",)),
                                                (15, ("js", "w1", "mean_position")),
                                                (50, ("js", "tv", "w1", "mean_position"))])
def test_intervals_cover_the_answer_distribution_estimand_slow(n_answers, metrics):
    hits = _coverage(metrics, n_answers, 400, seed=1000 + n_answers)
    for h in hits.values():
        _judge(h, 3, 0.93, 0.97, 0.01)


# --------------------------------------------------------------------------------------------------
# the "closer" claim between two identical models sampled a different number of times
# --------------------------------------------------------------------------------------------------
def _identical_pair(rng, n_items, n_a, n_b, beta):
    h, p = _population(rng, n_items)
    z = beta * np.log(p["mid"])  # both models answer from the same distribution
    q = np.exp(z - z.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    items = [f"q{i:03d}" for i in range(n_items)]
    cols = {"model": [], "item": [], "sample": [], "answer": []}
    for m, nm in (("A", n_a), ("B", n_b)):
        u = rng.random((n_items, nm, 1))
        k = (u > np.cumsum(q, axis=1)[:, None, :-1]).sum(-1)
        cols["model"] += [m] * (n_items * nm)
        cols["item"] += list(np.repeat(items, nm))
        cols["sample"] += list(np.tile(np.arange(nm), n_items))
        cols["answer"] += list(np.array(OPTIONS)[k.ravel()])
    ref = pd.DataFrame([{"item": it, "group": "G1", "option": o, "share": h[i, k]}
                        for i, it in enumerate(items) for k, o in enumerate(OPTIONS)])
    reference = make_reference(ref, pd.DataFrame({"item": items, "options": "|".join(OPTIONS), "ordinal": True}))
    return make_responses(pd.DataFrame(cols), reference), reference


def _closer_supported(n_sets, n_a, n_b, metric, beta, seed):
    from robustalign.claims.multiverse import Claim, audit_claim

    out = []
    for d in range(n_sets):
        resp, ref = _identical_pair(np.random.default_rng([seed, d]), 40, n_a, n_b, beta)
        res = audit_claim(resp, ref, Claim.closer("A", than="B", group="G1"), factors=[], metrics=[metric],
                          aggregations=["mean"], n_resamples=300, n_permutations=999, rng=d)
        out.append(res.verdicts["verdict"].iloc[0] == "supported")
    return np.array(out)


def test_closer_claim_between_identical_models_is_rarely_supported_fast():
    # 5 vs 2 answers per cell: a linear metric is unbiased at both counts
    s = _closer_supported(30, 5, 2, "agreement", 1.0, seed=31)
    assert stats.binomtest(int(s.sum()), len(s), 0.05, alternative="greater").pvalue > 1e-3, s.mean()
    # a nonlinear metric cannot be judged from 2 answers per cell: an error that says so, not a verdict
    resp, ref = _identical_pair(np.random.default_rng(5), 40, 5, 2, 1.0)
    from robustalign.claims.multiverse import Claim, audit_claim

    with pytest.raises(ValueError, match=r"enough answers for the metric.*MIN_ANSWERS"):
        audit_claim(resp, ref, Claim.closer("A", than="B", group="G1"), factors=[], metrics=["w1"],
                    aggregations=["mean"], n_resamples=100, n_permutations=99, rng=0)


def test_closer_claim_between_identical_models_with_skewed_differences_fast():
    # 15 vs 5 answers, Brier similarity (exactly unbiased at both counts): the per-item differences have
    # mean 0 but are skewed; the claim's joint null is the studentised item bootstrap. A rate of 0.20 or
    # more fails (binomial test against 0.05 at p < 1e-3); measured 2 of 100 data sets.
    s = _closer_supported(30, 15, 5, "brier", 1.0, seed=33)
    assert stats.binomtest(int(s.sum()), len(s), 0.05, alternative="greater").pvalue > 1e-3, s.mean()


def test_metrics_say_where_they_are_not_estimable():
    # 1 answer per cell: no nonlinear metric is estimable (the quadratic ones need 2, JS 5); 2 answers:
    # the quadratic metrics are (exactly unbiased), JS is not
    for n, ok in ((1, ()), (2, ("brier", "cramer"))):
        resp, ref = _dataset(np.random.default_rng(n), 10, n)
        for mt in ("brier", "cramer", "js"):
            s = item_scores(resp, ref, metric=mt)
            if mt in ok:
                assert len(s) == 30 and s.attrs["n_not_estimable"] == 0, (n, mt)
            else:
                assert s.empty and s.attrs["n_not_estimable"] == 30, (n, mt)
                with pytest.raises(ValueError, match=rf"'{mt}' is not estimable"):
                    alignment(resp, ref, metric=mt, n_resamples=50, rng=0)


@pytest.mark.slow
@pytest.mark.parametrize("metric, n_a, n_b", [("agreement", 5, 2), ("js", 15, 10), ("w1", 15, 10),
                                             ("brier", 15, 5), ("cramer", 15, 5), ("brier", 5, 2)])
def test_closer_claim_between_identical_models_is_rarely_supported_slow(metric, n_a, n_b):
    s = _closer_supported(300, n_a, n_b, metric, 1.0, seed=32)
    assert stats.binomtest(int(s.sum()), len(s), 0.05, alternative="greater").pvalue > 0.01, s.mean()


def test_kl_as_a_callable_is_corrected_like_the_miller_madow_entropy_bias():
    # KL(p || q) = -H(p) - sum p log q: the plug-in is biased up by about (K - 1) / (2 n ln 2) bits
    # (Miller-Madow); the jackknife removes most of it (exact expectations over Multinomial(15, p))
    def kl(p, q, K=None, ordinal=None, check=False):
        return M.kl_divergence(p, q, eps=0.0, check=False)

    p, q, n = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.25, 0.25, 0.25, 0.25]), 15
    truth = float(stats.entropy(p, q, base=2))
    plug = _exact_mean(lambda a: kl(a, q), p, n) - truth
    corr = _exact_mean(lambda a: M.finite_sample_similarity(kl, a, q, n), p, n) - truth
    assert plug == pytest.approx(3 / (2 * n * np.log(2)), rel=0.25)
    assert abs(corr) < abs(plug) / 4


def test_human_pair_scores_jackknife_both_surveys_by_brute_force():
    from robustalign.scoring import human_pair_scores

    a, b = np.array([3, 1, 2, 0]), np.array([1, 1, 1, 3])  # respondents per option, 6 per group
    rows = [{"item": "q1", "group": g, "option": o, "share": c[k] / 6, "n": 6}
            for g, c in (("A", a), ("B", b)) for k, o in enumerate(OPTIONS)]
    scales = pd.DataFrame({"item": ["q1"], "options": "|".join(OPTIONS), "ordinal": True})
    ref = make_reference(pd.DataFrame(rows), scales)
    tv = lambda x, y: 1 - 0.5 * np.abs(_shares(x) - _shares(y)).sum()  # noqa: E731
    xa, xb = _answers(a), _answers(b)
    s0 = tv(xa, xb)
    bias_a = 5 * (np.mean([tv(np.delete(xa, i), xb) for i in range(6)]) - s0)
    bias_b = 5 * (np.mean([tv(xa, np.delete(xb, i)) for i in range(6)]) - s0)
    got = human_pair_scores(ref, ["q1"], "A", "B", metric="tv")
    assert got[0] == pytest.approx(s0 - bias_a - bias_b, abs=1e-12)
    assert human_pair_scores(ref, ["q1"], "A", "B", metric="tv", estimand="plug-in")[0] == pytest.approx(s0)


# --------------------------------------------------------------------------------------------------
# Spearman of mean positions: not corrected, but its attenuation is measured and reported
# --------------------------------------------------------------------------------------------------
def test_spearman_profile_reports_its_attenuation_at_five_answers():
    pos = np.arange(K) / (K - 1)
    obs, truth, factor, rel_true = [], [], [], []
    for d in range(12):
        rng = np.random.default_rng([77, d])
        resp, ref = _dataset(rng, 150, 5)
        h, p = _population(np.random.default_rng([77, d]), 150)  # the same draws as _dataset's
        res = alignment(resp, ref, metric="spearman", n_resamples=50, rng=d)
        fr = res.to_frame().set_index("model")
        for j, m in enumerate(res.labels["model"]):
            mu = p[m] @ pos
            within = (p[m] @ pos**2 - mu**2) / 5  # variance of a 5-answer mean, from the true distributions
            rel_true.append(np.var(mu, ddof=1) / (np.var(mu, ddof=1) + within.mean()))
            truth.append(stats.spearmanr(mu, h @ pos).statistic)
            obs.append(fr.loc[m, "estimate"])
            factor.append(res.provenance["attenuation_factor"][j])
            assert res.provenance["profile_reliability"][j] == pytest.approx(rel_true[-1], abs=0.12)
    obs, truth, factor = map(np.array, (obs, truth, factor))
    assert np.mean(truth - obs) > 0.02  # the premise: attenuated at 5 answers
    # the reported factor predicts the attenuation: observed ~ truth x factor, on average over data sets
    assert np.mean(obs - truth * factor) == pytest.approx(0.0, abs=0.015), (np.mean(truth - obs),
                                                                             np.mean(truth * (1 - factor)))
