"""TV similarity near identity: the exact bias bound of the corrected value and the item rule of ``alignment``.

Reference values come from an exact enumeration over the multinomial (scipy) of the delete-one jackknife
written out answer by answer here, not from robustalign's closed form. Coverage is simulated with a
population and truth written here (an ordinal cumulative-logit population of items, as in
tests/test_js_near_identity.py) and judged with binomial tests.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import robustalign.metrics as M


# --------------------------------------------------------------------------------------------------
# the bound against exact enumeration
# --------------------------------------------------------------------------------------------------
def _tv(a, b):
    return 1.0 - 0.5 * np.abs(np.asarray(a, float) - np.asarray(b, float)).sum(-1)


def _jackknife_tv(c, n, q, d=None, m=None):
    """Delete-one jackknife of the TV similarity, deleting each answer (and respondent) in turn."""
    p_hat = c / n
    q_hat = q if d is None else d / m
    s0 = _tv(p_hat, q_hat)
    loo = [_tv((c - np.eye(len(c))[k]) / (n - 1), q_hat) for k in range(len(c)) for _ in range(int(c[k]))]
    out = s0 - (n - 1) * (np.mean(loo) - s0)
    if d is not None:
        loo_q = [_tv(p_hat, (d - np.eye(len(d))[k]) / (m - 1)) for k in range(len(d)) for _ in range(int(d[k]))]
        out -= (m - 1) * (np.mean(loo_q) - s0)
    return out


def _counts(n, k):
    return np.array([c for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n], float)


def _exact_bias(p, q, n, m=None):
    """E[jackknifed TV similarity] - TV similarity of (p, q), summed over every count vector."""
    C = _counts(n, len(p))
    wc = stats.multinomial.pmf(C, n, p)
    if m is None:
        e = sum(w * _jackknife_tv(c, n, q) for w, c in zip(wc, C, strict=True))
    else:
        D = _counts(m, len(q))
        wd = stats.multinomial.pmf(D, m, q)
        e = sum(w * v * _jackknife_tv(c, n, q, d, m) for w, c in zip(wc, C, strict=True)
                for v, d in zip(wd, D, strict=True))
    return e - _tv(p, q)


@pytest.mark.parametrize("n", [4, 7])
def test_bias_at_a_given_p_is_the_enumerated_one(n):
    # with the model's range pinned to one p, the two sides of the bound are the positive and negative
    # parts of the exact bias option by option; for these p every option has the same sign, so
    # high - low is minus the enumerated bias of the similarity
    q = np.array([0.2, 0.3, 0.5])
    for p in (q, np.array([0.25, 0.3, 0.45]), np.array([0.6, 0.3, 0.1])):
        low, high = M.tv_identity_bias_bound(q, n, p_low=p, p_high=p)
        assert float(high - low) == pytest.approx(-_exact_bias(p, q, n), abs=1e-12)


def test_two_sample_bias_along_identity_is_the_enumerated_one():
    q = np.array([0.3, 0.7])
    for t in (0.3, 0.38):
        p = np.array([t, 1.0 - t])
        low, high = M.tv_identity_bias_bound(q, 5, 6, p_low=p, p_high=p)
        assert float(high - low) == pytest.approx(-_exact_bias(p, p, 5, 6), abs=1e-12)


@pytest.mark.parametrize("n", [5, 6, 9])
def test_bound_holds_for_every_p_and_is_attained_for_two_options(n):
    q = np.array([0.35, 0.65])
    low, high = M.tv_identity_bias_bound(q, n)
    grid = np.linspace(0.0, 1.0, 401)
    bias = np.array([_exact_bias(np.array([t, 1.0 - t]), q, n) for t in grid])
    assert (-bias <= high + 1e-12).all() and (bias <= low + 1e-12).all()
    # with two options both shares move together: the supremum is reached (up to the search grid)
    assert high == pytest.approx(-bias.min(), abs=2e-3) and low == pytest.approx(max(bias.max(), 0.0), abs=2e-3)


def test_bound_holds_on_random_points_of_the_simplex():
    rng = np.random.default_rng(3)
    q = np.array([0.1, 0.25, 0.3, 0.35])
    low, high = M.tv_identity_bias_bound(q, 6)
    for p in [q, *rng.dirichlet(np.ones(4), 30), *(q + rng.normal(0, 0.02, (20, 4)))]:
        p = np.abs(p) / np.abs(p).sum()
        b = _exact_bias(p, q, 6)
        assert -high - 1e-12 <= b <= low + 1e-12
    assert high > 0.0  # at identity the corrected TV is biased low
