"""Shared session fixtures: simulated studies, the Bayesian fits and the example report several test
modules read, and the order in which ``make test`` hands test files to its workers.

``make test`` runs ``pytest -n 2 --dist loadfile``: each file goes to one worker, so a session fixture
read by one file is computed once. Files that share a fixture are kept on one worker by the scheduler
below (``SAME_WORKER``), and the heaviest files are handed out first (``HEAVY``), so that the two
workers finish together instead of one running a long file alone at the end. (``--dist load`` made both
workers fit the same model; ``loadgroup`` did not keep ``xdist_group`` marks together with this pytest
and xdist.) Helpers and the rules the fit tests follow are in ``_fits.py``.
"""

from __future__ import annotations

import pytest
from _fits import FIT_SETTINGS, FitRun, run_fit

from robustalign.simulate import simulate

# --------------------------------------------------------------------------------------------------
# scheduling of test files over xdist workers (make test: -n 2 --dist loadfile)
# --------------------------------------------------------------------------------------------------
#: Files whose tests read a session fixture of another file run on that file's worker: the joint fit and
#: the cutpoint-offset model compiled for ``sim_offset`` (test_models_fit.py), and the example report
#: (test_report.py).
SAME_WORKER = {
    "tests/test_models_checks.py": "tests/test_models_fit.py",
    "tests/test_report_bayes.py": "tests/test_models_fit.py",
    "tests/test_report_browser.py": "tests/test_report.py",
    "tests/test_report_figures.py": "tests/test_report.py",
}

#: Approximate seconds of the heaviest work units (a file, or the files kept together above) in one
#: ``make test`` on an idle 2-core machine; they are handed out heaviest first. Other files follow in
#: xdist's own order (most tests first). Only the order depends on these numbers, never what is tested.
HEAVY = {
    "tests/test_models_fit.py": 300,  # with test_models_checks.py and test_report_bayes.py
    "tests/test_models_sbc.py": 130,
    "tests/test_report.py": 90,  # with test_report_browser.py and test_report_figures.py
    "tests/test_models_categorical.py": 75,
    "tests/test_notebooks.py": 75,
    "tests/test_cli.py": 60,
    "tests/test_scaleout_dask.py": 45,
    "tests/test_claims_stability.py": 35,
    "tests/test_preferences_bayes.py": 30,
    "tests/test_models_kernel.py": 25,
    "tests/test_progress_notebook.py": 20,
    "tests/test_importers_inspect.py": 20,
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with the files of ``SAME_WORKER`` together and the ``HEAVY`` units first."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class HeavyFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return SAME_WORKER.get(file, file)

        def _assign_work_unit(self, node) -> None:
            heaviest = max(self.workqueue, key=lambda scope: HEAVY.get(scope, 0))  # the first on ties
            self.workqueue.move_to_end(heaviest, last=False)
            super()._assign_work_unit(node)

    return HeavyFirst(config, log)



# --------------------------------------------------------------------------------------------------
# simulated studies
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sim_joint():
    """3 models x 40 items x 3 formats x 2 option orders, 5 answers per cell, 6 human groups."""
    return simulate(n_models=3, n_items=40, n_groups=6, factors={"format": 3}, n_samples=5, rng=1)


@pytest.fixture(scope="session")
def sim_offset():
    """Models whose cutpoint gaps are 0.6 times the humans' (they pick extreme options more at the same
    latent location): 3 models x 30 items x 2 formats, one option order, 10 answers per cell, 4 groups."""
    return simulate(n_models=3, n_items=30, n_groups=4, factors={"format": 2}, n_orders=1, n_samples=10,
                    model_gap_ratio=0.6, rng=7)


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


# --------------------------------------------------------------------------------------------------
# the example report (test_report.py, test_report_browser.py and test_report_figures.py read it)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def example_report(tmp_path_factory):
    """``robustalign audit --example`` at 200 resamples and permutations, and the directory it was
    written to. Tests read both and write elsewhere."""
    from robustalign.report import run_example_audit

    rep = run_example_audit(rng=0, n_resamples=200, n_permutations=200)
    out = tmp_path_factory.mktemp("report") / "out"
    rep.write(out)
    return rep, out
