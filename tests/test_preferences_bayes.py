"""The Bayesian Bradley-Terry model on a small simulated example (5 outcomes, 20 choices per pair).

Seed-independent assertions only (see tests/_fits.py): loose health bounds that a working sampler
meets with a wide margin, the gate's verdict consistent with its numbers, and the posterior close to
the known truth and to the maximum-likelihood fit (an independent estimator). Whether this particular
fit passes the gate is printed, not assumed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_preferences import simulate_choices

from robustalign.claims.preferences import fit_bradley_terry
from robustalign.models._sampling import GATE

U = np.array([-1.0, -0.4, 0.0, 0.6, 1.2])
GAMMA = 0.5


@pytest.fixture(scope="module")
def fit_and_data():
    pytest.importorskip("pymc")
    from robustalign.models import fit_bradley_terry_model

    df = simulate_choices(U, gamma=GAMMA, reps=20, rng=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_bradley_terry_model(df, draws=500, tune=500, chains=4, rng=1)
    print("Bradley-Terry gate:", fit.overall)
    return fit, df


def test_health_and_gate_consistency(fit_and_data):
    fit, _ = fit_and_data
    o = fit.overall
    assert o["max_r_hat"] < 1.05 and o["min_ess_bulk"] > 150 and o["min_ess_tail"] > 150
    assert o["divergences"] <= 5
    expected = (o["max_r_hat"] <= GATE["max_r_hat"] and o["min_ess_bulk"] >= GATE["min_ess_bulk"]
                and o["min_ess_tail"] >= GATE["min_ess_tail"] and o["divergences"] <= GATE["max_divergences"]
                and not o["min_e_bfmi"] < GATE["min_e_bfmi"])
    assert fit.converged == expected
    assert fit.to_frame()["converged"].eq(fit.converged).all()


def test_posterior_near_truth_and_mle(fit_and_data):
    fit, df = fit_and_data
    u, g = fit.draws("u"), fit.draws("gamma")
    sd = u.std(axis=0)
    # truth within 4 posterior SDs (a miss has probability ~6e-5 per parameter for a calibrated fit)
    assert np.all(np.abs(u.mean(axis=0) - (U - U.mean())) < 4 * sd)
    assert abs(g.mean() - GAMMA) < 4 * g.std()
    # 200 choices: the posterior means follow the MLE, shrunk a little towards 0 by the hierarchical
    # prior on 5 utilities (measured: 0.4 posterior SD at most); bound at 1 SD and the same order
    mle = fit_bradley_terry(df, penalty=0.0).set_index("outcome")["utility"][fit.outcomes].to_numpy()
    assert np.all(np.abs(u.mean(axis=0) - mle) < sd)
    assert np.array_equal(np.argsort(u.mean(axis=0)), np.argsort(mle))
    assert 0.0 <= fit.prefer_probability("o4", "o0") <= 1.0 and fit.prefer_probability("o4", "o0") > 0.99
    f = fit.to_frame(0.9)
    assert (f["conf_low"] <= f["estimate"]).all() and (f["estimate"] <= f["conf_high"]).all()
