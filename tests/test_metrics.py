"""Alignment metrics against independent references: scipy, closed forms and hand arithmetic.

No metric is checked against its own output. References: ``scipy.spatial.distance.jensenshannon``,
``scipy.stats.wasserstein_distance``, ``scipy.stats.entropy``, ``scipy.stats.pearsonr`` /
``spearmanr`` / ``rankdata``, the one-hot closed form and uniform-model numbers of the methods notes,
subset enumeration for total variation, the VSM-2013 formulas by hand, and ``np.nanstd``.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import cosine as scipy_cosine_distance
from scipy.spatial.distance import jensenshannon

from robustalign import metrics as M
from robustalign.schema import make_reference


def _dirichlet(rng, k, size, zero_frac=0.2):
    """Random distributions with some exact zeros (to exercise 0 log 0)."""
    p = rng.dirichlet(np.ones(k), size=size)
    p[rng.random(p.shape) < zero_frac] = 0.0
    p[..., 0] += (p.sum(-1) == 0)  # keep every row a distribution
    return p / p.sum(-1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(20250311)


# --------------------------------------------------------------------------------------------------
# Jensen-Shannon
# --------------------------------------------------------------------------------------------------
def test_js_matches_scipy_base2_with_broadcasting(rng):
    p = _dirichlet(rng, 5, (6, 1))  # models
    q = _dirichlet(rng, 5, (1, 7))  # groups
    s = M.js_similarity(p, q)
    assert s.shape == (6, 7)
    ref = np.array([[1 - jensenshannon(p[i, 0], q[0, j], base=2) for j in range(7)] for i in range(6)])
    np.testing.assert_allclose(s, ref, rtol=0, atol=1e-13)
    d = M.js_distance(p, q)
    np.testing.assert_allclose(d, 1 - ref, rtol=0, atol=1e-13)


def test_js_distance_other_base_matches_scipy(rng):
    p, q = _dirichlet(rng, 4, 50), _dirichlet(rng, 4, 50)
    ref = jensenshannon(p, q, axis=1)  # scipy's default, natural log
    np.testing.assert_allclose(M.js_distance(p, q, base=np.e), ref, rtol=1e-13, atol=1e-15)
    # maximum in base e is sqrt(ln 2), not 1: the trap the base-2 default avoids
    assert M.js_distance([1, 0], [0, 1], base=np.e) == pytest.approx(np.sqrt(np.log(2)), rel=1e-14)


@pytest.mark.parametrize(
    ("h", "s_rounded"), [(0.0, 0.0), (0.25, 0.26), (0.5, 0.44), (0.75, 0.63), (0.9, 0.77), (1.0, 1.0)]
)
def test_js_one_hot_closed_form(h, s_rounded):
    # METHODS 4.2 item 3: for P = delta_k, JSD^2 = 1/2 [log2(2/(1+h)) + h log2(2h/(1+h)) + 1 - h]
    term_h = h * np.log2(2 * h / (1 + h)) if h > 0 else 0.0
    closed = 1 - np.sqrt(0.5 * (np.log2(2 / (1 + h)) + term_h + 1 - h))
    # the rest of the human mass may be spread any way: S depends on h only
    for rest in ([1 - h, 0, 0], [0, (1 - h) / 2, (1 - h) / 2], [(1 - h) / 3] * 3):
        s = M.js_similarity([0.0, 1.0, 0.0, 0.0], [rest[0], h, rest[1], rest[2]])
        assert s == pytest.approx(closed, abs=1e-12)
    assert round(float(closed), 2) == s_rounded


def test_js_uniform_model_numbers():
    u = np.full(4, 0.25)
    assert M.js_similarity(u, u) == 1.0
    assert M.js_similarity(u, [0.7, 0.1, 0.1, 0.1]) == pytest.approx(0.61, abs=0.005)


def test_js_zeros_give_no_nan_and_disjoint_supports_give_zero():
    assert M.js_similarity([0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]) == 0.0
    assert M.js_similarity([1, 0, 0], [1, 0, 0]) == 1.0
    s = M.js_similarity(np.array([[0, 1, 0], [0.5, 0, 0.5]]), np.array([[0, 0.2, 0.8], [0, 0, 1]]))
    assert np.isfinite(s).all()
    ref = [1 - jensenshannon([0, 1, 0], [0, 0.2, 0.8], base=2), 1 - jensenshannon([0.5, 0, 0.5], [0, 0, 1], base=2)]
    np.testing.assert_allclose(s, ref, atol=1e-14)


def test_missing_cells_are_nan_not_errors():
    # Reference.array marks absent item x group cells with NaN in every option
    q = np.array([[0.2, 0.8, 0], [np.nan, np.nan, np.nan]])
    p = np.array([0.2, 0.8, 0])
    for name, f in M.METRICS.items():
        s = f(p, q, K=3, ordinal=True)
        # agreement probability is sum_k p_k q_k, not 1 at p = q: 0.2^2 + 0.8^2 = 0.68
        assert s[0] == pytest.approx(0.68 if name == "agreement" else 1.0) and np.isnan(s[1])
    assert np.isnan(M.kl_divergence(p, q)[1]) and np.isnan(M.mass_on_model_answer(p, q)[1])


def test_scalars_in_scalars_out():
    s = M.js_similarity([0.5, 0.5], [0.5, 0.5])
    assert np.ndim(s) == 0 and isinstance(float(s), float)


# --------------------------------------------------------------------------------------------------
# W1, TV, KL, entropy, mean position
# --------------------------------------------------------------------------------------------------
def test_w1_matches_scipy_wasserstein_equal_spacing(rng):
    p, q = _dirichlet(rng, 5, 40), _dirichlet(rng, 5, 40)
    x = np.arange(5.0)
    w = np.array([stats.wasserstein_distance(u_values=x, v_values=x, u_weights=a, v_weights=b) for a, b in zip(p, q)])
    np.testing.assert_allclose(M.w1_distance(p, q), w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(M.w1_similarity(p, q), 1 - w / 4, rtol=1e-12, atol=1e-14)


def test_w1_matches_scipy_with_positions_and_padding(rng):
    # items with K = 3, 4, 5 padded to 5; unequal positions per item (padded positions are arbitrary)
    K = np.array([3, 4, 5])
    pos = np.array([[0.0, 1, 3, 99, 99], [0, 2, 3, 7, np.nan], [-1, 0, 0.5, 1, 4]])
    p, q = np.zeros((3, 5)), np.zeros((3, 5))
    for i, k in enumerate(K):
        p[i, :k], q[i, :k] = _dirichlet(rng, k, 1)[0], _dirichlet(rng, k, 1)[0]
    s = M.w1_similarity(p, q, K, pos)
    for i, k in enumerate(K):
        x = pos[i, :k]
        w = stats.wasserstein_distance(u_values=x, v_values=x, u_weights=p[i, :k], v_weights=q[i, :k])
        assert s[i] == pytest.approx(1 - w / (x[-1] - x[0]), rel=1e-12)


def test_w1_extremes_and_ordinal_mask():
    assert M.w1_similarity([1, 0, 0, 0], [0, 0, 0, 1]) == 0.0
    assert M.w1_similarity([1, 0, 0, 0], [0, 1, 0, 0]) == pytest.approx(2 / 3)  # one step of three
    s = M.w1_similarity(np.array([[1, 0, 0], [1, 0, 0]]), np.array([0, 1, 0]), ordinal=np.array([True, False]))
    assert s[0] == pytest.approx(0.5) and np.isnan(s[1])
    assert np.isnan(M.METRICS["mean_position"]([1, 0, 0], [0, 1, 0], K=3, ordinal=False))


def test_total_variation_equals_max_over_option_sets(rng):
    # independent definition: TV = max_A |P(A) - Q(A)| over all subsets A of the options
    p, q = _dirichlet(rng, 5, 20), _dirichlet(rng, 5, 20)
    subsets = [np.isin(np.arange(5), c) for r in range(6) for c in itertools.combinations(range(5), r)]
    ref = np.array([max(abs(a[m].sum() - b[m].sum()) for m in subsets) for a, b in zip(p, q)])
    np.testing.assert_allclose(M.total_variation(p, q), ref, atol=1e-14)
    np.testing.assert_allclose(M.METRICS["tv"](p, q), 1 - ref, atol=1e-14)


def test_kl_matches_scipy_entropy_unsmoothed_and_smoothed(rng):
    p, q = rng.dirichlet(np.ones(4), 30), rng.dirichlet(np.ones(4), 30)
    ref = stats.entropy(p, q, base=2, axis=1)
    np.testing.assert_allclose(M.kl_divergence(p, q, eps=0), ref, rtol=1e-12)
    # zero where p has mass: inf without smoothing, finite with it
    a, b = np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, 0.0])
    assert M.kl_divergence(a, b, eps=0) == np.inf == stats.entropy(a, b, base=2)
    eps = 1e-3
    sm = lambda v: (v + eps) / (1 + 3 * eps)  # noqa: E731 - documented smoothing of both sides
    assert M.kl_divergence(a, b, eps=eps) == pytest.approx(stats.entropy(sm(a), sm(b), base=2), rel=1e-12)
    # padding: options beyond K get no smoothing mass
    ap, bp = np.append(a, [0, 0]), np.append(b, [0, 0])
    assert M.kl_divergence(ap, bp, eps=eps, K=3) == pytest.approx(stats.entropy(sm(a), sm(b), base=2), rel=1e-12)
    assert M.kl_divergence(b, b) == 0.0


def test_normalized_entropy_matches_scipy_and_uses_item_K(rng):
    p = _dirichlet(rng, 6, 25)
    np.testing.assert_allclose(M.normalized_entropy(p), stats.entropy(p, base=2, axis=1) / np.log2(6), rtol=1e-12)
    padded = np.array([[0.25, 0.25, 0.25, 0.25, 0, 0], [1, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(M.normalized_entropy(padded, K=np.array([4, 3])), [1.0, 0.0], atol=1e-15)


def test_mean_position_matches_khan_linspace_formula(rng):
    # Khan's code: dot(p, linspace(0, 1, K)) for each item
    p3, p5 = _dirichlet(rng, 3, 10), _dirichlet(rng, 5, 10)
    padded = np.concatenate([np.pad(p3, ((0, 0), (0, 2))), p5])
    K = np.r_[np.full(10, 3), np.full(10, 5)]
    ref = np.r_[p3 @ np.linspace(0, 1, 3), p5 @ np.linspace(0, 1, 5)]
    np.testing.assert_allclose(M.mean_position(padded, K), ref, rtol=1e-13, atol=1e-15)
    # positions rescale to [0, 1]: (x_k - x_1) / (x_K - x_1)
    assert M.mean_position([0.5, 0.5, 0], positions=[1, 2, 5]) == pytest.approx(0.5 * 0.25)
    assert M.mean_position_distance([1, 0, 0, 0], [0, 0, 1, 0]) == pytest.approx(2 / 3)
    assert M.METRICS["mean_position"]([1, 0, 0, 0], [0, 0, 1, 0]) == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------------------
# plurality and mass on the model's answer
# --------------------------------------------------------------------------------------------------
def test_plurality_agrees_with_argmax_without_ties(rng):
    p, q = rng.dirichlet(np.ones(5), 200), rng.dirichlet(np.ones(5), 200)  # continuous: no ties
    ref = (np.argmax(p, 1) == np.argmax(q, 1)).astype(float)
    np.testing.assert_array_equal(M.plurality_agreement(p, q), ref)
    np.testing.assert_array_equal(M.mass_on_model_answer(p, q), q[np.arange(200), np.argmax(p, 1)])


def test_plurality_ties_count_as_overlap_of_modal_sets():
    # P tied on options 1 and 2, Q modal on 1: agreement 1/2 (np.argmax would give 1, and 0 after relabelling)
    assert M.plurality_agreement([0.4, 0.4, 0.2], [0.6, 0.3, 0.1]) == 0.5
    # tied on {1, 2} vs {2, 3}: |{2}| / |{1, 2, 3}|
    assert M.plurality_agreement([0.4, 0.4, 0.2], [0.2, 0.4, 0.4]) == pytest.approx(1 / 3)
    assert M.plurality_agreement([0.4, 0.4, 0.2], [0.45, 0.45, 0.1]) == 1.0  # same tie set
    assert M.plurality_agreement([1 / 3, 1 / 3, 1 / 3], [0.2, 0.3, 0.5]) == pytest.approx(1 / 3)
    assert M.plurality_agreement([0.4, 0.4, 0.2], [0.2, 0.4, 0.4]) == M.plurality_agreement(
        [0.2, 0.4, 0.4], [0.4, 0.4, 0.2]
    )
    # mass on the model's answer averages Q over P's tied options
    assert M.mass_on_model_answer([0.5, 0.5, 0], [0.6, 0.3, 0.1]) == pytest.approx(0.45)
    # one-hot model: the human share h_k on the model's answer
    assert M.mass_on_model_answer([0, 0, 1], [0.2, 0.3, 0.5]) == 0.5


# --------------------------------------------------------------------------------------------------
# registry: the call alignment code makes
# --------------------------------------------------------------------------------------------------
def test_registry_common_signature_and_bounds(rng):
    cells, groups = 12, 3
    K = rng.integers(2, 6, cells)
    P = np.zeros((cells, 5))
    Q = np.zeros((cells, groups, 5))
    for c, k in enumerate(K):
        P[c, :k] = _dirichlet(rng, k, 1)[0]
        Q[c, :, :k] = _dirichlet(rng, k, groups)
    ordinal = np.arange(cells) % 3 != 0
    assert set(M.METRICS) == {"js", "w1", "tv", "mean_position", "plurality", "agreement", "brier", "cramer"}
    for name, f in M.METRICS.items():
        s = f(P[:, None, :], Q, K=K[:, None], ordinal=ordinal[:, None])
        assert s.shape == (cells, groups), name
        ok = ~np.isnan(s)
        assert ((s[ok] >= 0) & (s[ok] <= 1)).all(), name
        if name in ("w1", "mean_position", "cramer"):
            assert np.isnan(s[~ordinal]).all() and ok[ordinal].all()
        else:
            assert ok.all()
    # the W1 entry uses each item's own K as normaliser: compare with scipy item by item
    s = M.METRICS["w1"](P[:, None, :], Q, K=K[:, None])
    for c, k in enumerate(K):
        x = np.arange(k)
        w = stats.wasserstein_distance(x, x, P[c, :k], Q[c, 0, :k])
        assert s[c, 0] == pytest.approx(1 - w / (k - 1), abs=1e-12)


# --------------------------------------------------------------------------------------------------
# profile correlations
# --------------------------------------------------------------------------------------------------
def test_profile_correlation_matches_scipy(rng):
    x = rng.random((4, 30))  # 4 models
    y = rng.random((3, 1, 30))  # 3 groups
    r = M.profile_correlation(x, y)
    assert r.shape == (3, 4)
    ref = np.array([[stats.pearsonr(x[i], y[j, 0]).statistic for i in range(4)] for j in range(3)])
    np.testing.assert_allclose(r, ref, rtol=1e-12, atol=1e-14)
    # ties (a 5-point scale) -> average ranks, as scipy
    xi, yi = rng.integers(1, 6, (4, 30)).astype(float), rng.integers(1, 6, 30).astype(float)
    rs = M.profile_correlation(xi, yi, method="spearman")
    np.testing.assert_allclose(rs, [stats.spearmanr(a, yi).statistic for a in xi], rtol=1e-12)


def test_centred_profile_correlation_and_cosine(rng):
    mu = rng.random((30, 6))  # items x groups
    centre = mu.mean(1)
    model = rng.random(30)
    r = M.profile_correlation(model, mu.T, centred_on=centre)
    ref = [stats.pearsonr(model - centre, mu[:, g] - centre).statistic for g in range(6)]
    np.testing.assert_allclose(r, ref, rtol=1e-12)
    cos = M.profile_correlation(model, mu.T, centred_on=centre, method="cosine")
    ref = [1 - scipy_cosine_distance(model - centre, mu[:, g] - centre) for g in range(6)]
    np.testing.assert_allclose(cos, ref, rtol=1e-12)
    rs = M.profile_correlation(model, mu.T, centred_on=centre, method="spearman")
    ref = [stats.spearmanr(model - centre, mu[:, g] - centre).statistic for g in range(6)]
    np.testing.assert_allclose(rs, ref, rtol=1e-12)


def test_profile_correlation_nan_policy_and_degenerate(rng):
    x, y = rng.random(20), rng.random(20)
    x[3], y[[5, 9]] = np.nan, np.nan
    assert np.isnan(M.profile_correlation(x, y))
    ok = ~np.isnan(x) & ~np.isnan(y)
    assert M.profile_correlation(x, y, nan_policy="omit") == pytest.approx(stats.pearsonr(x[ok], y[ok]).statistic)
    assert M.spearman_alignment(x, y, nan_policy="omit") == pytest.approx(
        stats.spearmanr(x, y, nan_policy="omit").statistic, rel=1e-12
    )
    assert np.isnan(M.profile_correlation(np.ones(5), np.arange(5.0)))  # constant profile
    assert np.isnan(M.profile_correlation([1.0], [2.0]))


def test_spearman_alignment_vectorised_over_leading_axes(rng):
    model = rng.random((5, 3, 37))  # bootstrap replicates x languages x items
    human = rng.random((3, 37))
    rho = M.spearman_alignment(model, human)
    assert rho.shape == (5, 3)
    ref = np.array([[stats.spearmanr(model[b, lang], human[lang]).statistic for lang in range(3)] for b in range(5)])
    np.testing.assert_allclose(rho, ref, rtol=1e-12)


def test_spearman_alignment_reproduces_published_multicultural_numbers():
    # The bundled data's README: plain Spearman by language x congruence on the steering file
    from robustalign.datasets import load_multicultural_alignment

    d = load_multicultural_alignment().steering_rows
    expected = {("da", "congruent"): 0.188, ("en", "incongruent"): 0.399, ("pt", "incongruent"): 0.169}
    for (lang, cong), rho in expected.items():
        x = d[(d["language"] == lang) & (d["congruent"] == cong)]
        assert M.spearman_alignment(x["score"].to_numpy(), x["ground_truth"].to_numpy()) == pytest.approx(
            rho, abs=5e-4
        )


# --------------------------------------------------------------------------------------------------
# rankings
# --------------------------------------------------------------------------------------------------
def test_rank_groups_matches_scipy_min_rank(rng):
    s = rng.integers(0, 5, (6, 8)) / 4  # many exact ties
    ref = stats.rankdata(-s, method="min", axis=1)
    np.testing.assert_array_equal(M.rank_groups(s), ref)


def test_closest_groups_orders_and_marks_ties():
    scores = pd.Series({"US": 0.71, "IN": 0.80, "BR": 0.71, "JP": np.nan, "DE": 0.65})
    out = M.closest_groups(scores)
    assert list(out["group"]) == ["IN", "US", "BR", "DE", "JP"]
    assert list(out["rank"].astype("float")[:4]) == [1, 2, 2, 4] and pd.isna(out["rank"].iloc[4])
    assert list(out["n_tied"][:4]) == [1, 2, 2, 1]
    # round-off is not a difference
    out = M.closest_groups([0.1 + 0.2, 0.3, 0.2], ["a", "b", "c"])
    assert list(out["rank"]) == [1, 1, 3]
    wide = pd.DataFrame([[0.2, 0.5], [0.9, 0.1]], index=["m1", "m2"], columns=["X", "Y"])
    out = M.closest_groups(wide)
    assert out[["row", "group"]].values.tolist() == [["m1", "Y"], ["m1", "X"], ["m2", "X"], ["m2", "Y"]]


# --------------------------------------------------------------------------------------------------
# human proxy baseline
# --------------------------------------------------------------------------------------------------
def test_human_proxy_similarity_against_scipy_loop(rng):
    items, groups = 9, 4
    h = _dirichlet(rng, 4, (items, groups))
    h[2, 1] = np.nan  # group 1 lacks item 2
    h[5, 3] = np.nan  # group 3 lacks item 5
    res = M.human_proxy_similarity(h, "js", groups=["A", "B", "C", "D"])
    for i in range(groups):
        for j in range(groups):
            vals = [
                1 - jensenshannon(h[q, i], h[q, j], base=2)
                for q in range(items)
                if not (np.isnan(h[q, i]).any() or np.isnan(h[q, j]).any())
            ]
            assert res.n_items[i, j] == len(vals)
            assert res.similarity[i, j] == pytest.approx(np.mean(vals), abs=1e-13)
    assert res.n_items[0, 1] == 8 and res.n_items[1, 3] == 7 and res.n_items[0, 2] == 9
    np.testing.assert_allclose(np.diag(res.similarity), 1.0)
    frame = res.to_frame()
    assert len(frame) == 12 and set(frame.columns) == {"proxy", "target", "similarity", "estimate", "n_items"}
    assert (frame["estimate"] == frame["similarity"]).all()
    # any function with the registry signature works; here total variation against its definition
    tv = M.human_proxy_similarity(h, lambda p, q, K=None, ordinal=None: 1 - 0.5 * np.abs(p - q).sum(-1))
    ok = ~np.isnan(h[:, 0, 0]) & ~np.isnan(h[:, 1, 0])
    assert tv.similarity[0, 1] == pytest.approx(np.mean(1 - 0.5 * np.abs(h[ok, 0] - h[ok, 1]).sum(-1)))


def test_human_proxy_similarity_from_reference_skips_nominal_for_w1():
    scales = pd.DataFrame({"item": ["q1", "q2"], "options": ["1|2|3|4", "a|b|c"], "ordinal": [True, False]})
    rows = []
    shares = {"X": ([0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.25]), "Y": ([0.4, 0.3, 0.2, 0.1], [0.2, 0.3, 0.5])}
    for g, (a, b) in shares.items():
        rows += [{"item": "q1", "group": g, "option": str(k + 1), "share": s} for k, s in enumerate(a)]
        rows += [{"item": "q2", "group": g, "option": o, "share": s} for o, s in zip("abc", b)]
    ref = make_reference(pd.DataFrame(rows), scales)
    res = M.human_proxy_similarity(ref, "w1")
    x = np.arange(4)
    w = stats.wasserstein_distance(x, x, shares["X"][0], shares["Y"][0])
    assert res.groups == ("X", "Y")
    assert res.similarity[0, 1] == pytest.approx(1 - w / 3) and res.n_items[0, 1] == 1  # q2 is nominal
    res = M.human_proxy_similarity(ref, "js")
    ref_js = np.mean([1 - jensenshannon(a, b, base=2) for a, b in zip(shares["X"], shares["Y"])])
    assert res.similarity[1, 0] == pytest.approx(ref_js) and res.n_items[1, 0] == 2


# --------------------------------------------------------------------------------------------------
# Khan human benchmark and VSM-2013
# --------------------------------------------------------------------------------------------------
def test_between_group_sd_matches_nanstd():
    mu = np.array(
        [
            [0.2, 0.4, 0.6, 0.8],
            [0.5, np.nan, 0.5, 0.7],
            [0.1, 0.1, 0.1, 0.1],
        ]
    )
    ref = np.nanmean(np.nanstd(mu, axis=1))
    assert M.between_group_sd(mu) == pytest.approx(ref, rel=1e-14)
    assert M.between_group_sd(mu, ddof=1) == pytest.approx(np.nanmean(np.nanstd(mu, axis=1, ddof=1)), rel=1e-14)
    # by hand: item 1 SD = sqrt(0.05) = 0.223607; item 2 (three groups, 0.5 0.5 0.7) SD =
    # sqrt((2 * 0.0667^2 + 0.1333^2) / 3) = sqrt(0.008889) = 0.094281; item 3 SD = 0; mean = 0.105963
    assert M.between_group_sd(mu) == pytest.approx(0.105963, abs=1e-6)
    # an item seen in one group only is skipped (its SD of 0 is not a between-group SD)
    mu1 = np.vstack([mu, [0.9, np.nan, np.nan, np.nan]])
    assert M.between_group_sd(mu1) == pytest.approx(ref, rel=1e-14)
    # DataFrame (items x groups) and leading axes
    assert M.between_group_sd(pd.DataFrame(mu)) == pytest.approx(ref)
    np.testing.assert_allclose(M.between_group_sd(np.stack([mu, mu])), [ref, ref])


def test_vsm2013_indices_hand_computed():
    # all items at 3, then move pairs so each index is round:
    # PDI = 35(m07 - m02) + 25(m20 - m23) = 35(4 - 3) + 25(3.4 - 3) = 35 + 10 = 45
    # IDV = 35(m04 - m01) + 35(m09 - m06) = 35(3 - 2) + 35(3.2 - 3) = 35 + 7 = 42
    # MAS = 35(m05 - m03) + 35(m08 - m10) = 35(2 - 3) + 35(3 - 3) = -35
    # UAI = 40(m18 - m15) + 25(m21 - m24) = 40(3.5 - 3) + 25(3 - 2.2) = 20 + 20 = 40
    # LTO = 40(m13 - m14) + 25(m19 - m22) = 0 + 25(4 - 3) = 25
    # IVR = 35(m12 - m11) + 40(m17 - m16) = 35(3 - 3) + 40(3.25 - 3) = 10
    m = {f"m{i:02d}": 3.0 for i in range(1, 25)}
    m.update(m07=4.0, m20=3.4, m01=2.0, m09=3.2, m05=2.0, m18=3.5, m24=2.2, m19=4.0, m17=3.25)
    expected = {"PDI": 45, "IDV": 42, "MAS": -35, "UAI": 40, "LTO": 25, "IVR": 10}
    out = M.vsm2013_indices(m)
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, abs=1e-12), k
    # constants per index, by index name or the manual's name
    out = M.vsm2013_indices(pd.Series(m), constants={"C_pd": 20, "IVR": -10})
    assert out["PDI"] == pytest.approx(65) and out["IVR"] == pytest.approx(0) and out["IDV"] == pytest.approx(42)
    df = pd.DataFrame([m, {**m, "m07": 3.0}], index=["persona_a", "persona_b"])
    out = M.vsm2013_indices(df)
    assert list(out.columns) == list(expected) and list(out.index) == ["persona_a", "persona_b"]
    assert out.loc["persona_b", "PDI"] == pytest.approx(10)


def test_vsm2013_errors_list_missing_items_and_bad_values():
    m = {f"m{i}": 3.0 for i in range(1, 25)}  # unpadded names
    with pytest.raises(ValueError, match=r"missing VSM-2013 items \['m01', 'm02'.*two digits"):
        M.vsm2013_indices(m)
    m = {f"m{i:02d}": 3.0 for i in range(1, 24)}
    with pytest.raises(ValueError, match=r"missing VSM-2013 items \['m24'\]"):
        M.vsm2013_indices(m)
    m = {f"m{i:02d}": 3.0 for i in range(1, 25)} | {"m05": 0.0}
    with pytest.raises(ValueError, match=r"must lie in \[1, 5\].*\['m05'\]"):
        M.vsm2013_indices(m)
    m["m05"] = 3.0
    with pytest.raises(ValueError, match=r"unknown key 'C_xx'"):
        M.vsm2013_indices(m, constants={"C_xx": 1})


# --------------------------------------------------------------------------------------------------
# validation messages
# --------------------------------------------------------------------------------------------------
def test_validation_messages_name_argument_and_fix():
    with pytest.raises(ValueError, match=r"`q` has negative probabilities .*-0\.1"):
        M.js_similarity([0.5, 0.5], [1.1, -0.1])
    with pytest.raises(ValueError, match=r"`p` rows must sum to 1 within 1e-06.*row \(1,\) sums to 0\.9.*Normalise"):
        M.total_variation(np.array([[0.5, 0.5], [0.4, 0.5]]), [0.5, 0.5])
    M.total_variation(np.array([[0.5, 0.5], [0.4, 0.5]]), [0.5, 0.5], check=False)  # allowed when asked
    with pytest.raises(ValueError, match=r"same number of options.*p\.shape=\(4,\), q\.shape=\(3,\).*Pad"):
        M.js_similarity(np.full(4, 0.25), np.full(3, 1 / 3))
    with pytest.raises(ValueError, match=r"do not broadcast.*length-1 axes"):
        M.js_similarity(np.full((3, 2), 0.5), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match=r"`K` must be whole numbers in \[2, 3\].*got 4"):
        M.w1_similarity([0.5, 0.5, 0], [0.5, 0.5, 0], K=4)
    with pytest.raises(ValueError, match=r"`p` puts mass on options beyond `K`.*index \(2,\)"):
        M.w1_similarity([0.5, 0.3, 0.2], [0.5, 0.5, 0], K=2)
    with pytest.raises(ValueError, match=r"`positions` must be finite and strictly increasing"):
        M.w1_similarity([0.5, 0.5, 0], [0.5, 0.5, 0], positions=[0, 2, 1])
    with pytest.raises(ValueError, match=r"`ordinal` must be booleans"):
        M.w1_similarity([0.5, 0.5], [0.5, 0.5], ordinal=1)
    with pytest.raises(ValueError, match=r"`base` must be a positive number other than 1"):
        M.js_distance([0.5, 0.5], [0.5, 0.5], base=1)
    with pytest.raises(ValueError, match=r"`method` must be one of \('pearson', 'spearman', 'cosine'\)"):
        M.profile_correlation([1, 2, 3], [1, 2, 3], method="kendall")
    with pytest.raises(ValueError, match=r"`metric` must be one of \['agreement', 'brier', 'cramer', 'js', 'mean_position'"):
        M.human_proxy_similarity(np.full((2, 2, 2), 0.5), "jsd")
    with pytest.raises(ValueError, match=r"`scores` must be 1-D"):
        M.closest_groups(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"`groups` has 2 names but `scores` has 3"):
        M.closest_groups([0.1, 0.2, 0.3], ["a", "b"])


# --------------------------------------------------------------------------------------------------
# large inputs and import weight
# --------------------------------------------------------------------------------------------------
def test_js_on_144k_cells_matches_scipy(rng):
    # speed is measured in bench/, not here; this checks the vectorised path on a large input
    p, q = rng.dirichlet(np.ones(4), 144_000), rng.dirichlet(np.ones(4), 144_000)
    s = M.js_similarity(p, q)
    assert s.shape == (144_000,)
    idx = rng.choice(144_000, 50, replace=False)
    np.testing.assert_allclose(s[idx], [1 - jensenshannon(p[i], q[i], base=2) for i in idx], atol=1e-13)


def test_metrics_module_adds_no_heavy_imports():
    code = (
        "import sys, robustalign\nbefore = set(sys.modules)\nimport robustalign.metrics\n"
        "new = set(sys.modules) - before\n"
        "print(' '.join(sorted(m for m in new if m.split('.')[0] in "
        "('scipy', 'pymc', 'pytensor', 'arviz', 'matplotlib', 'statsmodels'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
