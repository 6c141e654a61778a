"""Progress bars: shown with an ETA when asked for (or forced by ROBUSTALIGN_PROGRESS=1), quiet under
``progress=False``, under CI and in tests; the same numbers either way."""

import numpy as np
import pytest

from robustalign._progress import enabled, progress_bar
from robustalign.power import simulate_power


def test_enabled_follows_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("ROBUSTALIGN_PROGRESS", raising=False)
    assert enabled(True) and not enabled(False)
    assert not enabled(None)  # inside pytest
    monkeypatch.setenv("ROBUSTALIGN_PROGRESS", "1")
    assert enabled(None)
    monkeypatch.setenv("ROBUSTALIGN_PROGRESS", "")
    monkeypatch.setenv("CI", "true")
    assert not enabled(None)


def test_a_forced_bar_writes_progress_with_an_eta_to_stderr(capsys):
    with progress_bar(4, "blocks of work", progress=True) as bar:
        for _ in range(4):
            bar.advance()
    err = capsys.readouterr().err
    assert "blocks of work" in err and "4/4" in err and "ETA" in err


def _pvalue(g):
    return float(g.uniform())


def test_power_simulation_shows_progress_when_forced_and_not_under_ci(capsys, monkeypatch):
    monkeypatch.setenv("ROBUSTALIGN_PROGRESS", "1")
    forced = simulate_power(_pvalue, n_simulations=30, rng=1)
    err = capsys.readouterr().err
    assert "power simulations" in err and "30/30" in err
    monkeypatch.setenv("ROBUSTALIGN_PROGRESS", "")
    monkeypatch.setenv("CI", "1")
    quiet = simulate_power(_pvalue, n_simulations=30, rng=1)
    assert capsys.readouterr().err == ""
    assert forced.n_rejected == quiet.n_rejected  # progress never changes a number


def test_audit_claim_progress_on_and_off(capsys):
    from robustalign.claims import Claim, audit_claim
    from robustalign.simulate import simulate

    resp, ref = simulate(n_models=3, n_items=20, n_groups=3, factors={"format": 2}, n_orders=2, rng=7).load()
    claim = Claim.closer("model_1", than="model_2", group="C02")
    kw = dict(factors=["format"], metrics=["js"], n_resamples=50, n_permutations=50, rng=0)
    shown = audit_claim(resp, ref, claim, progress=True, **kw)
    err = capsys.readouterr().err
    assert "contrasts" in err and "bootstrap and sign flips" in err
    quiet = audit_claim(resp, ref, claim, progress=False, **kw)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(shown.to_frame()["estimate"], quiet.to_frame()["estimate"])


@pytest.mark.parametrize("env", [{"CI": "true"}, {}])
def test_progress_is_off_by_default_in_ci_and_in_tests(monkeypatch, env):
    monkeypatch.delenv("ROBUSTALIGN_PROGRESS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert not enabled(None)


def test_a_bar_inside_another_joins_its_display(capsys):
    from robustalign._progress import phase

    with phase("audit step", progress=True):
        with progress_bar(3, "inner work", progress=True) as bar:
            for _ in range(3):
                bar.advance()
    err = capsys.readouterr().err
    assert "audit step" in err and "inner work" in err
