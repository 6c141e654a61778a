"""Model checks ArviZ users expect: pointwise log-likelihood for ``az.loo`` and a posterior predictive check.

The response model is the shared joint fit (tests/conftest.py), the score model a small fit (2 chains x
200 draws): these tests check what is stored, against scipy's densities, not the fits' convergence (tests/_fits.py says why no test relies on a particular fit passing the gate).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

SETTINGS = {"draws": 200, "tune": 200, "chains": 2}


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def ordinal(fit_joint):
    """The shared joint fit (tests/conftest.py: 3 models x 40 items x 6 groups, 4 chains x 600 draws).

    Its module runs in the same test process as tests/test_models_fit.py (``make test``'s scheduler in
    conftest.py), so the model is compiled and sampled once for both. These tests add groups to its
    ``idata`` (posterior predictive, the human log-likelihood, removed again) and read the posterior.
    """
    return fit_joint.fit


@pytest.fixture(scope="module")
def scores():
    from robustalign.models import fit_score_model
    from robustalign.schema import make_responses

    rng = np.random.default_rng(7)  # data for the test, not the code under test
    models, items, langs = ["a", "b"], [f"q{i}" for i in range(10)], ["en", "da"]
    rows = []
    for m in models:
        for q in items:
            loc = rng.normal(0, 1)
            for lang in langs:
                for s in range(6):
                    rows.append({"model": m, "item": q, "language": lang, "sample": s,
                                 "score": float(rng.beta(4 * expit(loc) + 0.5, 4 * (1 - expit(loc)) + 0.5))})
    df = pd.DataFrame(rows)
    resp = make_responses(df)
    return df, _quiet(fit_score_model, resp, rng=2, **SETTINGS)


def test_response_fit_stores_a_multinomial_loglik_that_loo_reads(ordinal, monkeypatch):
    import arviz as az

    fit = ordinal
    d = fit.design
    assert "log_likelihood" in fit.idata.children  # stored by the fit itself
    ll = np.asarray(fit.idata["log_likelihood"]["y"].values)
    post = fit.idata["posterior"]
    assert ll.shape == (post.sizes["chain"], post.sizes["draw"], d.n_cells)
    # against scipy's multinomial pmf at the option probabilities of one draw (chain 1, draw 17),
    # rebuilt here from the mean position the result object computes by its own route
    from robustalign.models._checks import cell_probabilities

    p, _ = cell_probabilities(fit, np.array([17]))
    p = p.reshape(post.sizes["chain"], -1, *p.shape[1:])[1, 0]  # (cells, Kmax)
    for c in range(0, d.n_cells, 7):
        K = d.K_item[d.idx["item"][c]]
        ref = stats.multinomial.logpmf(d.counts[c, :K], d.counts[c, :K].sum(), p[c, :K])
        assert ll[1, 17, c] == pytest.approx(ref, rel=1e-9)
    assert np.allclose(p.sum(-1), 1)
    pos = (p * (np.arange(p.shape[-1]) / (d.K_item[d.idx["item"]][:, None] - 1))).sum(-1)
    # the result object's own route, over every draw (it thins to ``max_draws`` otherwise); chain-major
    monkeypatch.setattr(fit, "max_draws", post.sizes["chain"] * post.sizes["draw"])
    assert np.allclose(pos, fit._cell_mean()[post.sizes["draw"] + 17], atol=1e-10)
    loo = az.loo(fit.idata)
    assert np.isfinite(loo.elpd) and loo.n_data_points == d.n_cells
    assert np.asarray(loo.pareto_k).shape == (d.n_cells,)
    assert fit.loo().elpd == pytest.approx(loo.elpd)


def test_joint_fit_human_cells_are_a_second_variable(ordinal):
    import arviz as az

    fit = ordinal
    fit.add_log_likelihood(humans=True)
    lg = fit.idata["log_likelihood"]
    d = fit.design
    assert lg["human"].shape[-1] == int((d.human_n > 0).sum())
    assert np.isfinite(az.loo(fit.idata, var_name="human").elpd)
    fit.add_log_likelihood()
    assert list(fit.idata["log_likelihood"].data_vars) == ["y"]


def test_score_fit_loglik_equals_scipy_beta_density_of_the_raw_scores(scores):
    import arviz as az

    df, fit = scores
    d = fit.design
    ll = np.asarray(fit.idata["log_likelihood"]["y"].values)
    # one draw's Beta parameters per cell from the posterior tables, the density of each raw score
    from robustalign.models._checks import _score_params

    a, b = _score_params(fit, np.array([5]))
    a, b = a[1], b[1]  # chain 1, draw 5
    N = d.squeeze_n
    ys = (df["score"].to_numpy() * (N - 1) + 0.5) / N
    cells = pd.DataFrame({"model": np.asarray(d.models)[d.idx["model"]],
                          "item": np.asarray(d.items)[d.idx["item"]],
                          "language": np.asarray(d.levels["language"])[d.idx["language"]]})
    key = cells.reset_index().set_index(["model", "item", "language"])["index"]
    cell_of = key.loc[list(zip(df["model"], df["item"], df["language"], strict=True))].to_numpy()
    direct = np.bincount(cell_of, weights=stats.beta.logpdf(ys, a[cell_of], b[cell_of]), minlength=d.n_cells)
    assert np.allclose(ll[1, 5], direct, rtol=1e-9)
    assert np.isfinite(az.loo(fit.idata).elpd)


def test_posterior_predictive_check_separates_fitting_from_misfitting_data(ordinal):
    import xarray as xr

    fit = ordinal
    fit.posterior_predictive(n_draws=100, rng=4)
    rep = np.asarray(fit.idata["posterior_predictive"]["y"].values).reshape(-1, fit.design.n_cells)
    obs = np.asarray(fit.idata["observed_data"]["y"].values)
    assert rep.shape[0] == fit.idata["posterior"].sizes["chain"] * 100 and np.all((rep >= 0) & (rep <= 1))
    # observed cell means equal the counts' mean position, computed here from the responses' counts
    d = fit.design
    K = d.K_item[d.idx["item"]]
    direct = (d.counts * np.arange(d.counts.shape[1])).sum(1) / d.counts.sum(1) / (K - 1)
    assert np.allclose(obs, direct)
    # posterior predictive p-value of the spread of cell means: central for the data the model was
    # fitted to, extreme for the same cells squeezed towards the middle (a misfit a check must show)
    sd_rep = rep.std(1)
    ppp = (sd_rep >= obs.std()).mean()
    assert 0.001 < ppp < 0.999
    squeezed = 0.5 + 0.3 * (obs - 0.5)
    assert (sd_rep >= squeezed.std()).mean() == 1.0
    assert isinstance(fit.idata["observed_data"].to_dataset(), xr.Dataset)


def test_ppc_plot_draws_observed_and_replicates(ordinal):
    import matplotlib

    matplotlib.use("Agg")
    fit = ordinal
    ax = fit.plot_ppc(rng=5)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["replicated", "observed"]
    assert len(ax.lines) > 2
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_bayes_fit_answers_the_shared_result_calls(ordinal, tmp_path):
    import pickle

    from matplotlib.axes import Axes

    from robustalign._result import Result
    from robustalign.export import to_parquet

    fit = ordinal
    assert isinstance(fit, Result)
    f90 = fit.to_frame(confidence_level=0.9)
    assert (f90["conf_level"] == 0.9).all() and (fit.to_frame()["conf_level"] == 0.95).all()
    ci = fit.conf_int(confidence_level=0.9)
    assert {"conf_low", "conf_high", "conf_level"} <= set(ci.columns)
    with pytest.warns(DeprecationWarning):
        old = fit.conf_int(level=0.9)
    pd.testing.assert_frame_equal(old, ci)
    ax = fit.plot()
    assert isinstance(ax, Axes)
    assert "<table" in fit._repr_html_() and "converged" in fit.summary().lower()
    back = pickle.loads(pickle.dumps(fit))
    pd.testing.assert_frame_equal(back.to_frame(), fit.to_frame())
    pd.testing.assert_frame_equal(pd.read_parquet(to_parquet(fit, tmp_path / "f.parquet", level=0.9)), f90,
                                  check_dtype=False)


def test_score_model_posterior_predictive_and_plot(scores):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df, fit = scores
    ax = fit.plot_ppc(rng=6)
    rep = np.asarray(fit.idata["posterior_predictive"]["y"].values).reshape(-1, fit.design.n_cells)
    obs = np.asarray(fit.idata["observed_data"]["y"].values)
    # the observed statistic is the geometric mean of each cell's squeezed scores, from the raw data here
    N = fit.design.squeeze_n
    ys = (df["score"] * (N - 1) + 0.5) / N
    geo = np.exp(np.log(ys).groupby([df["model"], df["item"], df["language"]]).mean())
    assert np.allclose(np.sort(obs), np.sort(geo.to_numpy()))
    assert np.all((rep > 0) & (rep < 1)) and 0.001 < (rep.mean(1) >= obs.mean()).mean() < 0.999
    assert "cell mean score" in ax.get_xlabel()
    plt.close(ax.figure)
