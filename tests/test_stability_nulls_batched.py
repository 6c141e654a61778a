"""The stability nulls process a chunk of draws at once; they must give the numbers of a plain loop over
draws (the rules as written in the module docstrings), from the same random stream, up to round-off.

The draws are compared with ``method="sort"`` (one uniform key per answer, the stream the loops below read);
the default ``"tables"`` draws the same distribution from a different stream (tests/test_stability_table_draws.py).
The loops here are written from the rules, one draw and one stratum at a time, independently of the
array code under test: answers re-allocated by sorting uniform keys within each stratum, item x level
distributions as equal-weight means over strata, the modal flip as 1 - Jaccard overlap of modal sets,
and the item-level statistic from per-cell means and variances.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustalign.claims import _stability_parts as parts
from robustalign.resampling.stability_nulls import AnswerPermuter, interaction_null, modal_flip_null


def _counts(seed, S=40, L=3, K=4, n=3):
    rng = np.random.default_rng(seed)
    c = rng.multinomial(n, np.ones(K) / K, size=(S, L)).astype(float)
    c[::5, 1] = 0  # some empty cells: strata of unequal size (padding)
    c[3, :, 3] = 0
    return c


def _draw_loop(counts, gen, b):
    """One draw at a time: sort uniform keys per stratum, padding last; slot j of the stratum goes to the
    level whose block of slots contains j."""
    S, L, K = counts.shape
    n = counts.sum(-1).astype(int)
    T = int(n.sum(1).max())
    keys = gen.random((b, S, T))  # the same stream as the class: one (b, S, T) block per chunk
    out = np.zeros((b, S, L, K))
    for d in range(b):
        for s in range(S):
            answers = np.repeat(np.arange(K), counts[s].sum(0).astype(int))
            k = keys[d, s].copy()
            k[len(answers):] = np.inf
            shuffled = np.concatenate([answers, -np.ones(T - len(answers), int)])[np.argsort(k)]
            levels = np.repeat(np.arange(L), n[s])
            for j, lv in enumerate(levels):
                out[d, s, lv, shuffled[j]] += 1
    return out


def _flip(p, q):
    a = p >= p.max() - 1e-9
    b = q >= q.max() - 1e-9
    return 1 - (a & b).sum() / (a | b).sum()


def _modal_flip_loop(counts, item_of, Q, n_draws, gen, chunk=50):
    S, L, K = counts.shape
    n = counts.sum(-1)
    out, per_item = [], np.zeros(Q)
    per_n = np.zeros(Q)
    for s0 in range(0, n_draws, chunk):
        for c in _draw_loop(counts, gen, min(chunk, n_draws - s0)):
            fq = np.full(Q, np.nan)
            for q in range(Q):
                pi = []
                for lv in range(L):
                    rows = [s for s in range(S) if item_of[s] == q and n[s, lv] > 0]
                    pi.append(np.mean([c[s, lv] / n[s, lv] for s in rows], 0) if rows else None)
                f = [_flip(pi[a], pi[b]) for a in range(L) for b in range(a + 1, L)
                     if pi[a] is not None and pi[b] is not None]
                if f:
                    fq[q] = np.mean(f)
            out.append(np.nanmean(fq))
            per_item[np.isfinite(fq)] += fq[np.isfinite(fq)]
            per_n += np.isfinite(fq)
    return np.array(out), per_item / per_n


def test_answer_permuter_gives_the_draws_of_a_loop_over_strata():
    counts = _counts(0)
    got = AnswerPermuter(counts, "sort").draw(np.random.default_rng(7), 6)
    want = _draw_loop(counts, np.random.default_rng(7), 6)
    np.testing.assert_array_equal(got, want)
    assert (got.sum(2) == counts.sum(1)).all() and (got.sum(-1) == counts.sum(-1)).all()  # margins kept


def test_modal_flip_null_equals_the_loop_over_draws_items_and_level_pairs():
    counts = _counts(1)
    _assert_modal_flip_null_equals_the_loop(counts, np.repeat(np.arange(8), 5), 8, 120)


def _assert_modal_flip_null_equals_the_loop(counts, item_of, n_items, n_draws):
    """The batched modal-flip null and the loop written from its definition, on the same stream."""
    got, got_items = modal_flip_null(counts, counts.sum(-1), item_of, n_items, n_draws, np.random.default_rng(3),
                                    chunk=50, method="sort")
    want, want_items = _modal_flip_loop(counts, item_of, n_items, n_draws, np.random.default_rng(3))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_items, want_items, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk", [7, 50])
def test_item_level_null_equals_the_statistic_of_each_draw_computed_alone(chunk):
    """The batched statistic of ``item_level`` on a chunk equals the statistic of each draw by itself, written
    from its definition: per-cell mean position and its sampling variance, item x level means, tau^2."""
    counts = _counts(2, S=30, L=3, K=4, n=4)
    S, L, K = counts.shape
    N = counts.sum(-1)
    item_of = np.repeat(np.arange(6), 5)
    grid = np.tile(np.arange(K) / (K - 1), (S, 1))

    def one(c):
        X, V = np.full((6, L), np.nan), np.full((6, L), np.nan)
        for q in range(6):
            for lv in range(L):
                rows = [s for s in range(S) if item_of[s] == q and N[s, lv] >= 2]
                if rows:
                    f = [c[s, lv] / N[s, lv] for s in rows]
                    m = [fi @ grid[s] for fi, s in zip(f, rows)]
                    v = [fi @ (grid[s] - mi) ** 2 / (N[s, lv] - 1) for fi, s, mi in zip(f, rows, m)]
                    X[q, lv], V[q, lv] = np.mean(m), np.sum(v) / len(rows) ** 2
        e = X - X.mean(1, keepdims=True) - X.mean(0, keepdims=True) + X.mean()
        return (e**2).sum() / ((6 - 1) * (L - 1)) - V.mean()

    def batched(c):
        x, v = parts._xv(c, N, grid, item_of, 6)
        return parts._tau2(x, v)

    got = interaction_null(counts, batched, 30, np.random.default_rng(5), chunk=chunk, method="sort")
    # uniform doubles come off the stream in order, so chunks of draws are the rows of one block of 30
    draws = AnswerPermuter(counts, "sort").draw(np.random.default_rng(5), 30)
    want = np.array([one(c) for c in draws])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    obs_x, obs_v = parts._xv(counts, N, grid, item_of, 6)  # unbatched call: the observed statistic
    assert np.isclose(parts._tau2(obs_x, obs_v), one(counts), rtol=1e-10)


def test_modal_flip_null_with_more_options_than_bits_in_an_integer_equals_the_loop():
    """Modal sets are compared as bit sets of one 64-bit integer; beyond 64 options as boolean arrays."""
    rng = np.random.default_rng(9)
    S, L, K = 12, 2, 70
    counts = np.zeros((S, L, K))
    for s in range(S):  # three answers per cell among a few options, ties common
        for lv in range(L):
            np.add.at(counts[s, lv], rng.choice([0, 33, 64, 69], size=3), 1)
    _assert_modal_flip_null_equals_the_loop(counts, np.repeat(np.arange(4), 3), 4, 60)
