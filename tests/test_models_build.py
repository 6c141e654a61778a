"""Response and score models: data reduction and graphs, checked against independent computations."""

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from robustalign.simulate import simulate

pytestmark = pytest.mark.bayes


def test_models_import_is_lazy():
    code = ("from robustalign.models import fit_response_model, fit_score_model, BayesFit\n"
            "import sys; print(' '.join(m for m in ('pymc', 'pytensor', 'arviz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


@pytest.fixture(scope="module")
def small():
    sim = simulate(n_models=2, n_items=5, n_groups=3, factors={"format": 3}, n_samples=4, rng=3)
    return sim, *sim.load()


def test_counts_per_cell_match_a_groupby(small):
    from robustalign.models._design import ordinal_design

    sim, resp, ref = small
    d = ordinal_design(resp, ref)
    assert d.factors == ["format", "option_order"]
    v = resp.valid()
    g = v.groupby(["model", "item", "format", "option_order", "option"], observed=True).size()
    for c in range(0, d.n_cells, 7):
        key = (d.models[d.idx["model"][c]], d.items[d.idx["item"][c]], d.levels["format"][d.idx["format"][c]],
               d.levels["option_order"][d.idx["option_order"][c]])
        expect = [g.get((*key, str(k + 1)), 0) for k in range(4)]
        assert d.counts[c].tolist() == expect
    assert d.counts.sum() == len(v) == d.n_responses


@pytest.mark.parametrize(("humans", "cuts"), [(True, "shared"), (False, "shared"), (True, "offset")])
@pytest.mark.parametrize("layout", ["fused", "dense", "gathered"])
def test_cumulative_logit_likelihood_equals_multinomial(small, humans, cuts, layout):
    """The per-cell likelihood equals the multinomial log-pmf of the cell counts (up to a constant),
    on the dense grid (fused kernel and PyTensor operations) and with one gathered row per cell, with
    and without the human component, and with the models' own cutpoint spacing (the
    measurement-invariance sensitivity model)."""
    from robustalign.models._design import ordinal_design
    from robustalign.models._graph import build_ordinal

    sim, resp, ref = small
    # drop one cell so the dense grid has an empty (zero-count) cell
    v = resp.data
    first = (v["model"] == v["model"].iloc[0]) & (v["item"] == v["item"].iloc[0]) & (v["format"] == v["format"].iloc[0])
    resp = dataclasses.replace(resp, data=v[~first].reset_index(drop=True))
    ref = ref if humans else None
    d = ordinal_design(resp, ref)
    assert d.dense  # a complete grid but for one cell
    dense = layout != "gathered"
    d = dataclasses.replace(d, max_fill=d.max_fill if dense else 0.0, cutpoints=cuts)
    assert d.dense == dense
    model = build_ordinal(d, fused=layout == "fused")
    assert ("A_mq" in model.named_vars) == (layout == "fused")
    import pytensor

    names = ("cutpoints_K4", "mu_model", "item_effect", "model_item", "beta_format", "model_x_format",
             "item_x_format", "beta_option_order", "model_x_option_order", "item_x_option_order",
             "mu_group" if humans else "mu_model", "group_item" if humans else "mu_model",
             "model_cutpoints_K4" if cuts == "offset" else "cutpoints_K4", "loglik")
    outs = model.replace_rvs_by_values([model[n] for n in names])
    # PyTensor's Python linker: this checks the graph's arithmetic, and a numba compile of each of the nine
    # graphs took 1-4 minutes on a cold cache (the fused kernel under numba is in test_models_kernel.py)
    fn = pytensor.function(model.value_vars, outs, on_unused_input="ignore", mode="FAST_COMPILE")
    rng = np.random.default_rng(0)
    lls, refs = [], []
    for _ in range(2):
        ip = model.initial_point()
        values = [ip[v.name] + rng.normal(0, 0.3, np.shape(ip[v.name])) for v in model.value_vars]
        *det, loglik = fn(*values)
        tau_h, mu, it, mi, bf, mf, qf, bo, mo, qo, mg, gi, tau = det
        assert (np.diff(tau) > 0).all() and (cuts == "shared") == np.allclose(tau, tau_h)
        m, q, fo, oo = d.idx["model"], d.idx["item"], d.idx["format"], d.idx["option_order"]
        eta = mu[m] + it[q] + mi[m, q] + bf[fo] + mf[m, fo] + qf[q, fo] + bo[oo] + mo[m, oo] + qo[q, oo]
        cdf = np.concatenate([np.zeros((len(eta), 1)), expit(tau[None] - eta[:, None]), np.ones((len(eta), 1))], 1)
        p = np.diff(cdf, axis=1)
        ll = sum(stats.multinomial.logpmf(c, c.sum(), pi) for c, pi in zip(d.counts, p))
        if humans:
            theta = mg[:, None] + gi + it[None, :]
            hc = d.human_counts
            ph = np.diff(np.concatenate([np.zeros(theta.shape + (1,)), expit(tau_h[None, None] - theta[..., None]),
                                         np.ones(theta.shape + (1,))], -1), axis=-1)
            ll += float((hc * np.log(ph)).sum())
        lls.append(float(loglik))
        refs.append(ll)
    # the multinomial coefficient is a constant: differences between points must agree
    assert lls[0] - lls[1] == pytest.approx(refs[0] - refs[1], rel=1e-8, abs=1e-6)


def test_score_sufficient_statistics_equal_beta_loglik():
    from robustalign.models._design import score_design
    from robustalign.schema import make_responses

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"model": rng.choice(["a", "b"], 300), "item": rng.choice(["q1", "q2", "q3"], 300),
                       "language": rng.choice(["en", "da"], 300), "score": rng.choice([0, 0.3, 0.5, 1.0], 300)})
    df["sample"] = df.groupby(["model", "item", "language"]).cumcount()
    resp = make_responses(df)
    d = score_design(resp, squeeze_n=10)
    ys = (df["score"] * 9 + 0.5) / 10
    a, b = 2.3, 1.7
    direct = stats.beta.logpdf(ys, a, b).sum()
    from scipy.special import betaln
    suff = ((a - 1) * d.sum_log + (b - 1) * d.sum_log1m - d.n * betaln(a, b)).sum()
    assert suff == pytest.approx(direct, rel=1e-10)
    assert d.n.sum() == 300 and d.factors == ["language"]


def test_bad_arguments_raise(small):
    from robustalign.models import fit_response_model

    sim, resp, ref = small
    with pytest.raises(ValueError, match="`draws`"):
        fit_response_model(resp, ref, draws=0)
    with pytest.raises(ValueError, match="`sampler`"):
        fit_response_model(resp, ref, sampler="metropolis")
    with pytest.raises(ValueError, match="`cutpoints`"):
        fit_response_model(resp, ref, cutpoints="free")
    with pytest.raises(ValueError, match="needs `reference=`"):
        fit_response_model(resp, cutpoints="offset")
    with pytest.raises(ValueError, match="`interactions`"):
        fit_response_model(resp, ref, interactions={"nope": False})


def test_e_bfmi_is_arviz_bfmi_and_enters_the_gate():
    """E-BFMI per chain equals ArviZ's; iid energies (E-BFMI 2 in expectation) pass the gate, a random
    walk (E-BFMI about 6 / draws) fails it with a message naming it; no energy recorded: NaN, not judged."""
    import arviz as az

    from robustalign.models._sampling import GATE, diagnose, e_bfmi, gate_message

    g = np.random.default_rng(0)
    x = g.normal(size=(4, 1000))
    no_div = np.zeros((4, 1000), bool)
    iid, walk = g.normal(size=(4, 1000)), np.cumsum(g.normal(size=(4, 1000)), axis=1)
    for energy, want in ((iid, 2.0), (walk, 6 / 1000)):
        dt = az.from_dict({"posterior": {"x": x}, "sample_stats": {"energy": energy, "diverging": no_div}})
        got = e_bfmi(energy)
        np.testing.assert_allclose(got, az.bfmi(dt)["energy"].values, rtol=1e-10)
        assert np.all((got > want / 3) & (got < want * 3)), (got, want)
        _, overall = diagnose(dt)
        assert overall["min_e_bfmi"] == pytest.approx(got.min())
        assert overall["converged"] == (want > GATE["min_e_bfmi"])
        assert ("E-BFMI" in gate_message(overall)) == (want < GATE["min_e_bfmi"])
    _, overall = diagnose(az.from_dict({"posterior": {"x": x}, "sample_stats": {"diverging": no_div}}))
    assert np.isnan(overall["min_e_bfmi"]) and overall["converged"]
