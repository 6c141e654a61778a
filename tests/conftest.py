"""Shared session fixtures: simulated studies and the Bayesian fits several test modules read.

Each fit is read by one test module, and ``make test`` runs ``pytest -n 2 --dist loadfile``, so each
fit runs in one worker only (with ``--dist load`` both workers fitted the same model; ``loadgroup``
did not keep ``xdist_group`` marks together with this pytest and xdist). Helpers and the rules these
tests follow are in ``_fits.py``.
"""

from __future__ import annotations

import pytest
from _fits import FIT_SETTINGS, FitRun, run_fit

from robustalign.simulate import simulate


# --------------------------------------------------------------------------------------------------
# simulated studies
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sim_joint():
    """3 models x 40 items x 3 formats x 2 option orders, 5 answers per cell, 6 human groups."""
    return simulate(n_models=3, n_items=40, n_groups=6, factors={"format": 3}, n_samples=5, rng=1)


@pytest.fixture(scope="session")
def sim_centred():
    """No humans, 60 answers per model x item: the centred-opinion branch and shape-only cutpoints."""
    return simulate(n_models=3, n_items=30, n_groups=3, factors={"format": 3}, n_samples=10, rng=5)


# --------------------------------------------------------------------------------------------------
# fits (each compiles its own model structure once per test process)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def fit_joint(sim_joint) -> FitRun:
    from robustalign.models import fit_response_model

    resp, ref = sim_joint.load()
    return run_fit(fit_response_model, resp, ref, sim=sim_joint, rng=1, **FIT_SETTINGS)


@pytest.fixture(scope="session")
def fit_centred(sim_centred) -> FitRun:
    from robustalign.models import fit_response_model

    resp, _ = sim_centred.load()
    return run_fit(fit_response_model, resp, sim=sim_centred, rng=5, **FIT_SETTINGS)
