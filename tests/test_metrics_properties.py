"""Properties every alignment metric must have, explored with Hypothesis.

Bounds, identity, symmetry, invariance to relabelling the options (nominal metrics), to reversing an
ordered scale (W1, mean position) and to zero padding; JS and W1 also against scipy on random draws.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from robustalign import metrics as M

# per-test settings (not a global profile, which would change every other test module's settings)
fast = settings(max_examples=60, deadline=None)

ATOL = 1e-9  # sqrt near zero turns 1e-18 round-off in a divergence into ~1e-9 in a distance


@st.composite
def dists(draw, n=2, min_k=2, max_k=6):
    """``n`` distributions over the same K options, often with exact zeros and ties."""
    k = draw(st.integers(min_k, max_k))
    weight = st.one_of(st.just(0.0), st.sampled_from([0.25, 0.5, 1.0]), st.floats(1e-6, 1.0))
    out = []
    for _ in range(n):
        w = np.array(draw(st.lists(weight, min_size=k, max_size=k)))
        if w.sum() == 0:
            w[draw(st.integers(0, k - 1))] = 1.0
        out.append(w / w.sum())
    return tuple(out)


def dist_pair():
    return dists(2)


@st.composite
def pair_and_perm(draw):
    p, q = draw(dist_pair())
    perm = draw(st.permutations(range(len(p))))
    return p, q, np.array(perm)


SYMMETRIC = ["js", "tv", "w1", "mean_position", "plurality", "agreement", "brier", "cramer"]


@fast
@given(dist_pair())
def test_bounds_identity_symmetry(pq):
    p, q = pq
    for name, f in M.METRICS.items():
        s = f(p, q)
        assert 0.0 <= s <= 1.0, name
        if name in M.LINEAR_METRICS:  # agreement probability: sum_k p_k^2 at p = q, not 1
            assert f(p, p) == pytest.approx(float(np.sum(p * p)), abs=1e-12), name
        else:
            assert f(p, p) == pytest.approx(1.0, abs=1e-12), name
        if name in SYMMETRIC:
            assert f(q, p) == pytest.approx(s, abs=ATOL), name
    assert 0.0 <= M.normalized_entropy(p) <= 1.0 + 1e-12
    assert M.kl_divergence(p, q) >= 0.0
    assert 0.0 <= M.mass_on_model_answer(p, q) <= 1.0


@fast
@given(dist_pair())
def test_js_and_w1_against_scipy(pq):
    p, q = pq
    ref = jensenshannon(p, q, base=2)
    if np.isnan(ref):  # scipy takes the square root of a round-off negative when p == q: its own terms, clipped
        m = (np.asarray(p) + np.asarray(q)) / 2
        ref = np.sqrt(max(0.0, (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / (2 * np.log(2))))
    assert M.js_similarity(p, q) == pytest.approx(1 - ref, abs=ATOL)
    x = np.arange(len(p), dtype=float)
    w = stats.wasserstein_distance(u_values=x, v_values=x, u_weights=p, v_weights=q)
    assert M.w1_similarity(p, q) == pytest.approx(1 - w / x[-1], abs=1e-12)
    assert M.kl_divergence(p, q, eps=0) == pytest.approx(stats.entropy(p, q, base=2), rel=1e-9, abs=1e-12)
    # mean-position distance is bounded by the normalised W1
    assert M.mean_position_distance(p, q) <= w / x[-1] + 1e-12


@fast
@given(pair_and_perm())
def test_nominal_metrics_ignore_option_labels(pqp):
    p, q, perm = pqp
    pp, qp = p[perm], q[perm]
    for f in (M.js_similarity, M.tv_similarity, M.plurality_agreement, M.mass_on_model_answer):
        assert f(pp, qp) == pytest.approx(f(p, q), abs=ATOL), f.__name__
    assert M.kl_divergence(pp, qp) == pytest.approx(M.kl_divergence(p, q), rel=1e-9, abs=1e-12)
    assert M.normalized_entropy(pp) == pytest.approx(M.normalized_entropy(p), abs=1e-12)


@fast
@given(dist_pair())
def test_ordinal_metrics_invariant_to_reversing_the_scale(pq):
    p, q = pq
    assert M.w1_similarity(p[::-1], q[::-1]) == pytest.approx(M.w1_similarity(p, q), abs=1e-12)
    assert M.mean_position_distance(p[::-1], q[::-1]) == pytest.approx(M.mean_position_distance(p, q), abs=1e-12)
    assert M.mean_position(p[::-1]) == pytest.approx(1 - M.mean_position(p), abs=1e-12)


@fast
@given(dist_pair(), st.integers(1, 3))
def test_zero_padding_changes_nothing(pq, extra):
    p, q = pq
    k = len(p)
    pp, qp = np.pad(p, (0, extra)), np.pad(q, (0, extra))
    for name, f in M.METRICS.items():
        assert f(pp, qp, K=k) == pytest.approx(f(p, q), abs=1e-12), name
    assert M.kl_divergence(pp, qp, K=k) == pytest.approx(M.kl_divergence(p, q), rel=1e-12, abs=1e-12)
    assert M.normalized_entropy(pp, K=k) == pytest.approx(M.normalized_entropy(p), abs=1e-12)
    assert M.mean_position(pp, K=k) == pytest.approx(M.mean_position(p), abs=1e-12)


@fast
@given(dists(3))
def test_js_distance_triangle_inequality(pqr):
    p, q, r = pqr
    d = M.js_distance
    assert d(p, r) <= d(p, q) + d(q, r) + 1e-9


@fast
@given(
    hnp.arrays(float, st.tuples(st.integers(1, 4), st.integers(2, 9)), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
)
def test_ranks_match_scipy_with_ties(s):
    np.testing.assert_array_equal(M.rank_groups(s), stats.rankdata(-s, method="min", axis=-1))


@fast
@given(
    hnp.arrays(float, st.integers(3, 15), elements=st.integers(1, 5).map(float)),
    hnp.arrays(float, st.integers(3, 15), elements=st.floats(0, 1)),
)
def test_spearman_matches_scipy_with_ties(x, y):
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    ours = M.spearman_alignment(x, y)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
