"""The vectorised R-hat / ESS of robustalign.models._diagnostics against arviz_stats, scalar by scalar.

arviz_stats (the reference implementation of Vehtari et al. 2021) computes each scalar in Python; the
vectorised version must give the same numbers on every kind of chain the gate sees: independent draws,
autocorrelated and anti-correlated chains, a stuck chain, ties, constant entries, odd lengths, one chain,
and chains too short for Geyer's sequence.
"""

from __future__ import annotations

import numpy as np
import pytest
from arviz_stats.base import array_stats
from scipy import stats

from robustalign.models._diagnostics import (
    TAIL_PROB,
    average_ranks,
    diagnostics,
    ess_bulk,
    ess_tail,
    rhat_rank,
)


def _ar1(rng, chains, draws, scalars, rho):
    x = np.empty((chains, draws, scalars))
    x[:, 0] = rng.normal(size=(chains, scalars))
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=(chains, scalars))
    return x


def _cases():
    rng = np.random.default_rng(20261204)
    for chains, draws, scalars, rho in [(4, 1000, 40, 0.0), (4, 400, 40, 0.6), (4, 399, 20, 0.95),
                                        (2, 20, 30, 0.3), (4, 7, 20, 0.2), (1, 100, 20, 0.5),
                                        (4, 5, 20, -0.5), (3, 101, 20, -0.7), (4, 200, 10, 0.995)]:
        x = _ar1(rng, chains, draws, scalars, rho)
        x[:, :, 0] = 1.0                     # a constant entry
        x[:, :, 1] = np.round(x[:, :, 1])    # heavy ties
        x[0, :, 2] += 3.0                    # one chain stuck elsewhere
        yield pytest.param(x, id=f"{chains}x{draws}-rho{rho}")


def _close(ours, ref):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x", list(_cases()))
def test_rhat_and_ess_equal_arviz_stats(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        _close(rhat_rank(x), array_stats.rhat(x, chain_axis=0, draw_axis=1))
        _close(ess_bulk(x), array_stats.ess(x, chain_axis=0, draw_axis=1, method="bulk"))
        _close(ess_tail(x), array_stats.ess(x, chain_axis=0, draw_axis=1, method="tail", prob=TAIL_PROB))
        _close(ess_tail(x, prob=(0.11, 0.89)),
               array_stats.ess(x, chain_axis=0, draw_axis=1, method="tail", prob=(0.11, 0.89)))


def test_diagnostics_keeps_the_variable_shape_and_nan_draws():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 200, 3, 5))
    x[1, 7, 2, 4] = np.nan
    d = diagnostics(x)
    assert all(v.shape == (3, 5) for v in d.values())
    assert all(np.isnan(v[2, 4]) for v in d.values())
    assert np.isfinite(d["r_hat"][:2]).all()
    flat = np.moveaxis(x.reshape(4, 200, 15), 2, 0)[3]
    with np.errstate(invalid="ignore", divide="ignore"):
        assert d["ess_bulk"][0, 3] == pytest.approx(float(array_stats.ess(flat, method="bulk")), rel=1e-10)


def test_a_stuck_chain_is_caught_and_independent_draws_pass():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 1000, 50))
    assert rhat_rank(x).max() < 1.01
    x[0] += 0.5
    assert rhat_rank(x).min() > 1.01


def test_average_ranks_equal_scipy_with_ties():
    rng = np.random.default_rng(7)
    y = np.round(rng.normal(size=(60, 301)) * 2)
    y[0] = 1.0
    np.testing.assert_array_equal(average_ranks(y), stats.rankdata(y, axis=1))


@pytest.mark.parametrize("x", list(_cases())[:4])
def test_scalars_in_chunks_give_the_same_bits(x, monkeypatch):
    """Large variables are diagnosed in chunks of scalars (bounded memory): with chunks of one, three and
    seven scalars the numbers are bit-identical to one pass over all of them, NaN where arviz gives NaN."""
    from robustalign.models import _diagnostics

    x = x.copy()
    x[1, 3, 5] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        whole = diagnostics(x)
        for rows in (1, 3, 7):
            monkeypatch.setattr(_diagnostics, "_CHUNK_BYTES", rows * 8 * x.shape[0] * x.shape[1])
            parts = diagnostics(x)
            for k, v in whole.items():
                np.testing.assert_array_equal(parts[k], v, err_msg=f"{k}, chunks of {rows}")
    assert np.isnan(whole["r_hat"][5]) and np.isfinite(whole["r_hat"][6])
