"""Every result class answers the same calls (robustalign/_result.py): ``to_frame(confidence_level=)``,
``conf_int(confidence_level=)``, ``summary()`` in words, ``plot(ax=None) -> Axes``, ``_repr_html_``; it
survives a pickle round trip; and ``robustalign.export`` writes it with no special case.

The Bayesian fit is checked in tests/test_models_checks.py, which already holds a fitted model.
"""

from __future__ import annotations

import pickle

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from robustalign._result import Result  # noqa: E402
from robustalign.simulate import simulate  # noqa: E402


@pytest.fixture(scope="module")
def data():
    sim = simulate(n_models=2, n_items=16, n_groups=3, factors={"format": 2}, n_steer=3, n_samples=5, rng=11)
    return sim.load()


def _bootstrap(data):
    from robustalign.resampling import cluster_bootstrap

    a = np.random.default_rng(0).normal(0.5, 0.1, size=(30, 2))
    return cluster_bootstrap(a, labels=pd.DataFrame({"model": ["a", "b"]}), n_resamples=200, rng=0)


def _permutation(data):
    from robustalign.resampling import stratified_permutation_test

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"item": np.repeat(np.arange(20), 2), "format": np.tile(["x", "y"], 20),
                       "value": rng.normal(size=40)})
    return stratified_permutation_test(df, value="value", factor="format", strata="item", n_resamples=199,
                                       n_bootstrap=100, rng=2)


def _power(data):
    from robustalign.power import simulate_power

    return simulate_power(lambda g: float(g.random()), n_simulations=30, rng=3)


def _validity(data):
    from robustalign.validity import validity_rates

    return validity_rates(data[0])


def _reference_draws(data):
    from robustalign.resampling import dirichlet_reference

    h = np.array([[[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]])
    return dirichlet_reference(h, np.array([[300, 500]]), n_resamples=200, rng=4)


def _proxy(data):
    from robustalign.metrics import human_proxy_similarity

    h = np.array([[[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.3, 0.3, 0.4]]] * 4)
    return human_proxy_similarity(h, groups=["A", "B", "C"])


def _stability(data):
    from robustalign.claims.stability import assess_stability

    return assess_stability(data[0], data[1], n_resamples=100, n_permutations=100, rng=5)


def _steerability(data):
    from robustalign.claims.steerability import assess_steerability

    return assess_steerability(data[0], data[1], n_resamples=100, n_permutations=100, rng=6)


def _claim(data):
    from robustalign.claims.multiverse import Claim, audit_claim

    return audit_claim(data[0], data[1], Claim.closer("model_1", than="model_2", group="C01"), metrics=["js"],
                       n_resamples=100, n_permutations=100, rng=7)


def _extrapolability(data):
    from robustalign.claims.extrapolability import assess_extrapolability

    resp, ref = data
    items = sorted(resp.data["item"].unique())
    domains = {q: ("d1" if i % 2 else "d2") for i, q in enumerate(items)}
    return assess_extrapolability(resp, ref, domains=domains, n_resamples=50, n_permutations=49, n_splits=4, rng=8)


def _persona(data):
    import robustalign as ra
    from robustalign.persona import assess_persona, make_respondent_reference

    sim = ra.simulate_persona(n_respondents=(12, 12), n_items=8, rng=1)
    people = make_respondent_reference(sim.reference, sim.scales)
    resp = ra.make_responses(sim.responses, people.to_reference())
    return assess_persona(resp, people)


def _accuracy(data):
    from robustalign.claims.accuracy import assess_accuracy

    rng = np.random.default_rng(9)
    rows = [{"model": m, "item": f"q{i}", "culture": c, "correct": int(rng.random() < 0.6)}
            for m in ("a", "b") for c in ("X", "Y", "Z") for i in range(25)]
    return assess_accuracy(pd.DataFrame(rows), n_resamples=100, n_permutations=99, rng=9)


def _clusters(data):
    from robustalign.claims.clustering import assess_cluster_agreement

    rng = np.random.default_rng(10)
    rows = [{"country": f"c{u}", "dimension": d, "item": f"{d}{i}", "value": float(rng.normal(u % 2, 1))}
            for u in range(8) for d in ("D1", "D2", "H1") for i in range(6)]
    return assess_cluster_agreement(pd.DataFrame(rows), evaluated=["D1", "D2"], held_out=["H1"], k=2,
                                    n_resamples=100, n_permutations=99, rng=10)


def _correlation(data):
    from robustalign.claims.association import audit_correlation

    rng = np.random.default_rng(12)
    true = rng.normal(size=8)
    x = pd.DataFrame([{"unit": f"u{u}", "item": f"q{i}", "value": true[u] + rng.normal()}
                      for u in range(8) for i in range(10)])
    y = pd.DataFrame([{"unit": f"u{u}", "item": f"r{i}", "value": 0.5 * true[u] + rng.normal()}
                      for u in range(8) for i in range(10)])
    return audit_correlation(x, y, n_resamples=100, n_permutations=99, rng=12)


def _preferences(data):
    from itertools import combinations

    from robustalign.claims.preferences import assess_preferences

    rng = np.random.default_rng(13)
    u = [0.0, 0.5, 1.0, 1.5, 2.0]
    rows = []
    for a, b in combinations(range(5), 2):
        for r in range(6):
            first = r % 2 == 0
            p = 1 / (1 + np.exp(-(u[a] - u[b] + (0.5 if first else -0.5))))
            rows.append(("m", f"o{a}", f"o{b}", "a_first" if first else "b_first", "a" if rng.random() < p else "b"))
    df = pd.DataFrame(rows, columns=["model", "outcome_a", "outcome_b", "order", "choice"])
    return assess_preferences(df, n_resamples=100, n_permutations=99, n_sims=50, rng=13)


MAKERS = {"bootstrap": _bootstrap, "permutation": _permutation, "power": _power, "validity": _validity,
          "reference_draws": _reference_draws, "proxy": _proxy, "stability": _stability,
          "steerability": _steerability, "claim": _claim, "extrapolability": _extrapolability,
          "persona": _persona, "accuracy": _accuracy, "clusters": _clusters, "correlation": _correlation,
          "preferences": _preferences}
NO_INTERVALS = {"proxy"}  # a plug-in table: refuses a level instead of pretending to have intervals


@pytest.fixture(scope="module", params=sorted(MAKERS))
def result(request, data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return request.param, MAKERS[request.param](data)


def test_result_answers_the_shared_calls(result):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    name, res = result
    assert isinstance(res, Result)
    f = res.to_frame()
    assert isinstance(f, pd.DataFrame) and len(f) and "estimate" in f.columns
    if name in NO_INTERVALS:
        with pytest.raises(ValueError, match="intervals"):
            res.to_frame(confidence_level=0.9)
    else:
        g = res.to_frame(confidence_level=0.9)
        lv = g["conf_level"].dropna()
        assert len(lv) and (lv == 0.9).all()
        ci = res.conf_int(confidence_level=0.9)
        assert {"conf_low", "conf_high", "conf_level"} <= set(ci.columns)
        # a narrower level never gives a wider interval (same stored resamples)
        wide = res.to_frame(confidence_level=0.99)
        both = np.isfinite(g["conf_low"].to_numpy(float)) & np.isfinite(wide["conf_low"].to_numpy(float))
        assert (wide["conf_low"].to_numpy(float)[both] <= g["conf_low"].to_numpy(float)[both] + 1e-12).all()
    text = res.summary()
    assert isinstance(text, str) and len(text) > 20 and any(ch.isdigit() for ch in text)
    ax = res.plot()  # an Axes, or an array of Axes for a two-panel figure (as plt.subplots returns)
    axes = np.ravel(ax) if isinstance(ax, np.ndarray) else [ax]
    assert all(isinstance(a, Axes) for a in axes) and len(axes)
    plt.close(axes[0].figure)
    page = res._repr_html_()
    assert "<table" in page


def test_result_survives_a_pickle_round_trip(result):
    name, res = result
    back = pickle.loads(pickle.dumps(res))
    pd.testing.assert_frame_equal(back.to_frame(), res.to_frame())
    if name not in NO_INTERVALS:
        pd.testing.assert_frame_equal(back.to_frame(confidence_level=0.9), res.to_frame(confidence_level=0.9))
    assert back.summary() == res.summary()


def test_export_writes_every_result_without_special_cases(result, tmp_path):
    from robustalign.export import to_csv, to_latex, to_parquet

    name, res = result
    want = res.to_frame()
    got = pd.read_parquet(to_parquet(res, tmp_path / "r.parquet"))
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_exact=True, check_dtype=False)
    assert len(pd.read_csv(to_csv(res, tmp_path / "r.csv"))) == len(want)
    assert "\\begin{tabular}" in to_latex(res)
    if name not in NO_INTERVALS:
        at = pd.read_parquet(to_parquet(res, tmp_path / "r9.parquet", level=0.9))
        pd.testing.assert_frame_equal(at, res.to_frame(0.9).reset_index(drop=True), check_exact=True, check_dtype=False,
                                      check_categorical=False)


# --------------------------------------------------------------------------------------------------
# one `method` vocabulary for every table
# --------------------------------------------------------------------------------------------------
#: Result classes whose tables still write sentences in `method` (the stability assessment's intervals
#: switch per row between BCa, percentile and Wilson, and its table does not yet record which). Delete an
#: entry when its class conforms: the test below then fails to remind you.
METHOD_VOCABULARY_PENDING: set[str] = set()


def test_method_tokens_are_short_lowercase_words():
    import re

    from robustalign._result import METHODS

    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", m) and len(m) <= 20 for m in METHODS), sorted(METHODS)
    assert {"bca", "percentile", "wilson", "plug-in", "posterior-eti", "two-way-cgm"} <= set(METHODS)


def test_the_vocabulary_check_names_the_offending_values():
    from robustalign._result import check_method_vocabulary

    check_method_vocabulary(pd.DataFrame({"method": ["bca", None, "percentile"]}))  # passes
    check_method_vocabulary(pd.DataFrame({"estimate": [1.0]}))  # no method column: nothing to check
    with pytest.raises(ValueError, match=r"'cluster bootstrap \(percentile\)'.*method_note"):
        check_method_vocabulary(pd.DataFrame({"method": ["bca", "cluster bootstrap (percentile)"]}), "x")


def test_method_column_uses_the_vocabulary(result):
    from robustalign._result import METHODS

    name, res = result
    frames = [res.to_frame()] + ([] if name in NO_INTERVALS else [res.to_frame(confidence_level=0.9)])
    found = {str(v) for f in frames if "method" in f.columns for v in f["method"].dropna().unique()}
    bad = sorted(found - set(METHODS))
    if name in METHOD_VOCABULARY_PENDING:
        assert bad, f"{name} now uses the method vocabulary: delete it from METHOD_VOCABULARY_PENDING"
        pytest.xfail(f"{name}: `method` still holds sentences: {bad[:2]}")
    assert not bad, f"{name}: `method` values outside robustalign._result.METHODS: {bad}"
    for f in frames:  # a longer description lives beside the token, never instead of it
        if "method_note" in f.columns:
            assert "method" in f.columns and f.loc[f["method_note"].notna(), "method"].notna().all()
