"""The test-retest noise floor's per-cell statistics, against every pair of answers compared by hand."""

from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pandas as pd

from robustalign.claims.stability import _retest_counts, _retest_one_hot, _retest_pairs


def _cells(seed: int, n_cells: int = 40, K: int = 4):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, n_cells)
    codes = rng.permutation(np.repeat(np.arange(n_cells), sizes))  # cells interleaved, as rows arrive
    options = rng.integers(0, K, len(codes))
    P = np.eye(K)[options]
    pos = options / (K - 1)
    return codes, P, pos, options


def test_closed_forms_equal_the_mean_over_every_pair_of_answers():
    codes, P, pos, options = _cells(1)
    flip, shift = _retest_one_hot(codes, 40, P, pos)
    for c in range(40):
        rows = np.flatnonzero(codes == c)
        pairs = list(combinations(rows, 2))
        if not pairs:
            assert np.isnan(flip[c]) and np.isnan(shift[c])
            continue
        assert np.isclose(flip[c], np.mean([options[a] != options[b] for a, b in pairs]), atol=1e-12)
        assert np.isclose(shift[c], np.mean([abs(pos[a] - pos[b]) for a, b in pairs]), atol=1e-12)


def test_one_hot_and_pairwise_routes_agree_and_nominal_items_give_nan():
    codes, P, pos, _ = _cells(2)
    f1, s1 = _retest_one_hot(codes, 40, P, pos)
    f2, s2 = _retest_pairs(codes, 40, P, pos)
    np.testing.assert_allclose(f1, f2, atol=1e-12)
    np.testing.assert_allclose(s1, s2, atol=1e-12)
    _, s_nominal = _retest_one_hot(codes, 40, P, np.full(len(codes), np.nan))
    assert np.isnan(s_nominal).all()


def test_a_cell_of_two_thousand_answers_costs_no_pairs():
    rng = np.random.default_rng(3)
    codes = np.repeat(np.arange(3), 2000)
    options = rng.integers(0, 4, len(codes))
    flip, _ = _retest_one_hot(codes, 3, np.eye(4)[options], options / 3)
    c = np.stack([np.bincount(options[codes == k], minlength=4) for k in range(3)])
    np.testing.assert_allclose(flip, 1 - (c * (c - 1)).sum(1) / (2000 * 1999), atol=1e-12)


def test_cell_counts_give_the_mean_over_every_pair_of_answers():
    """Choice data: the statistics from each cell's counts alone, against every pair compared by hand; items
    with 4 and 5 options (zero padding), and a nominal item (no positions)."""
    codes, _, _, _ = _cells(4, K=5)
    rng = np.random.default_rng(5)
    item_of_cell = np.array(["a", "b", "c"])[np.arange(40) % 3]  # a: K = 4, b: K = 5, c: nominal K = 5
    K = {"a": 4, "b": 5, "c": 5}
    options = np.array([rng.integers(0, K[item_of_cell[c]]) for c in codes])
    m = np.bincount(codes, minlength=40).astype(float)
    counts = np.zeros((40, 5))
    np.add.at(counts, (codes, options), 1.0)
    resp = SimpleNamespace(scales={i: SimpleNamespace(K=k, ordinal=i != "c") for i, k in K.items()})
    flip, shift = _retest_counts(resp, pd.Series(item_of_cell), m, counts / m[:, None])
    for c in range(40):
        opts = options[codes == c]
        pairs = list(combinations(opts, 2))
        if not pairs:
            assert np.isnan(flip[c]) and np.isnan(shift[c])
            continue
        assert np.isclose(flip[c], np.mean([a != b for a, b in pairs]), atol=1e-12)
        if item_of_cell[c] == "c":
            assert np.isnan(shift[c])
        else:
            k = K[item_of_cell[c]]
            assert np.isclose(shift[c], np.mean([abs(a - b) / (k - 1) for a, b in pairs]), atol=1e-12)
