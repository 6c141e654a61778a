"""Bootstrap designs of robustalign.resampling, checked against scipy, closed forms and explicit loops.

Reference values come from scipy.stats.bootstrap (same bootstrap distribution: exact; own draws: within
Monte Carlo error), closed-form variances, and explicit pandas resampling of rows; never from the
engine's own output.
"""

import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from robustalign._errors import DegenerateResampleWarning
from robustalign.resampling import (
    BootstrapResult,
    cluster_bootstrap,
    dirichlet_reference,
    item_aggregates,
    paired_bootstrap,
    two_way_bootstrap,
)
from robustalign.resampling import _weights as W


def _scipy_ci(data, statistic, resamples, method, level, paired=False):
    """scipy's interval from a given bootstrap distribution (no new draws)."""
    res = stats.bootstrap(
        data, statistic, n_resamples=0, method=method, confidence_level=level, paired=paired,
        bootstrap_result=SimpleNamespace(bootstrap_distribution=resamples),
    )
    return res.confidence_interval.low, res.confidence_interval.high


@pytest.fixture
def skewed():
    return np.random.default_rng(11).gamma(1.5, 1.0, size=(45, 3))


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence_level": 95}, r"`confidence_level` must be in \(0, 1\); got 95\. Did you mean 0\.95\?"),
        ({"confidence_level": 0}, r"`confidence_level` must be in \(0, 1\); got 0\.$"),
        ({"n_resamples": 0}, r"`n_resamples` must be an integer >= 1; got 0\."),
        ({"n_resamples": 99.5}, r"`n_resamples` must be an integer >= 1; got 99\.5\."),
        ({"method": "bc"}, r"`method` must be one of \['percentile', 'bca'\]; got 'bc'\."),
        ({"chunk_size": 0}, r"`chunk_size` must be an integer >= 1; got 0\."),
        ({"weights": np.ones(3)}, r"`weights` must have shape \(10,\) \(one weight per cluster\) or \(10, 2\)"),
        ({"weights": -np.ones(10)}, r"`weights` must be finite and non-negative"),
        ({"weights": "rows"}, r"`weights='equal'\|'rows'` needs a DataFrame"),
        ({"value": "score"}, r"`value` and `by` apply to a DataFrame"),
        ({"labels": ["a"]}, r"`labels` must have one row per cell \(2\); got 1\."),
        ({"rng": -1}, r"`rng` must be a non-negative integer seed"),
    ],
)
def test_cluster_bootstrap_rejects_bad_arguments(kwargs, match):
    data = np.random.default_rng(0).random((10, 2))
    with pytest.raises(ValueError, match=match):
        cluster_bootstrap(data, **kwargs)


def test_messages_for_dataframe_and_statistic_misuse():
    df = pd.DataFrame({"item": [1, 1, 2], "model": ["a", "b", "a"], "score": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match=r"`value` is required with a DataFrame"):
        cluster_bootstrap(df)
    with pytest.raises(ValueError, match=r"`data` has no column\(s\) \['steer'\]"):
        cluster_bootstrap(df, value="score", by="steer")
    bad = df.assign(score=[0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match=r"column 'score' has 1 missing or non-numeric values"):
        cluster_bootstrap(bad, value="score")
    with pytest.raises(ValueError, match=r"`statistic` must be vectorised over a leading resample axis"):
        cluster_bootstrap(np.arange(10.0), statistic=np.mean)
    with pytest.raises(ValueError, match=r"`statistic` \(general path\) takes per-cluster arrays"):
        cluster_bootstrap(df, statistic=np.mean)
    res = cluster_bootstrap(np.arange(10.0), n_resamples=50, rng=0)
    with pytest.raises(ValueError, match=r"`confidence_level` must be in \(0, 1\); got 90\. Did you mean 0\.9\?"):
        res.conf_int(90)
    with pytest.raises(ValueError, match=r"`method` must be one of \['percentile'\]; got 'bca'"):
        two_way_bootstrap(np.ones((4, 3)), method="bca")


# ------------------------------------------------------------------------------------------ intervals
@pytest.mark.parametrize("method", ["percentile", "BCa"])
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_intervals_equal_scipy_on_the_same_bootstrap_distribution(skewed, method, level):
    res = cluster_bootstrap(skewed, n_resamples=4000, confidence_level=level, method=method, rng=1)
    frame = res.to_frame()
    for c in range(skewed.shape[1]):
        low, high = _scipy_ci((skewed[:, c],), np.mean, res.resamples[:, c], method, level)
        assert_allclose([frame.conf_low[c], frame.conf_high[c]], [low, high], rtol=1e-12)


def test_interval_functions_on_a_replicate_vector(skewed):
    from robustalign.resampling import bca_interval, percentile_interval

    x = skewed[:, 2]
    reps = cluster_bootstrap(x, n_resamples=3000, rng=4).resamples[:, 0]
    jack = np.array([np.delete(x, i).mean() for i in range(x.size)])
    got = bca_interval(reps, x.mean(), jack, confidence_level=0.9)
    assert_allclose(got, _scipy_ci((x,), np.mean, reps, "BCa", 0.9), rtol=1e-12)
    assert_allclose(percentile_interval(reps, confidence_level=0.9), np.quantile(reps, [0.05, 0.95]), rtol=1e-13)
    with pytest.raises(ValueError, match=r"needs `jackknife` values or an `acceleration`"):
        bca_interval(reps, x.mean())


def test_bca_counts_replicates_within_rounding_noise_of_the_estimate_as_ties():
    """Medians of small integers tie with the estimate in many replicates: a last-bit change in how the
    estimate was computed must not move the interval (scipy's half-tie rule, applied up to rounding)."""
    from robustalign.resampling import bca_interval

    gen = np.random.default_rng(11)
    x = gen.integers(0, 4, size=25).astype(float)
    reps = np.median(x[gen.integers(0, x.size, size=(4000, x.size))], axis=1)
    jack = np.array([np.median(np.delete(x, i)) for i in range(x.size)])
    est = np.median(x)
    assert (reps == est).mean() > 0.2
    exact = bca_interval(reps, est, jack, confidence_level=0.9)
    for noisy in (np.nextafter(est, np.inf), np.nextafter(est, -np.inf)):
        assert_allclose(bca_interval(reps, noisy, jack, confidence_level=0.9), exact, rtol=0, atol=0)
    # with exact ties it is scipy's BCa (ties count half there too)
    assert_allclose(exact, _scipy_ci((x,), np.median, reps, "BCa", 0.9), rtol=1e-12)


def test_bca_of_a_row_weighted_mean_equals_scipy_ratio_statistic():
    gen = np.random.default_rng(5)
    n_rows = gen.integers(1, 30, size=40).astype(float)
    means = gen.beta(2, 5, size=40)
    res = cluster_bootstrap(means, weights=n_rows, n_resamples=3000, rng=2)
    low, high = _scipy_ci(
        (means * n_rows, n_rows), lambda s, n, axis=-1: s.sum(axis) / n.sum(axis), res.resamples[:, 0], "BCa",
        0.95, paired=True,
    )
    assert_allclose(res.estimate[0], (means * n_rows).sum() / n_rows.sum(), rtol=1e-13)
    assert_allclose(res.conf_int().loc[0, ["conf_low", "conf_high"]].to_numpy(float), [low, high], rtol=1e-12)


def test_cluster_bootstrap_agrees_with_scipy_within_monte_carlo_error(skewed):
    B = 40_000
    res = cluster_bootstrap(skewed[:, 0], n_resamples=B, rng=3).to_frame()
    ref = stats.bootstrap((skewed[:, 0],), np.mean, n_resamples=B, method="BCa", rng=4)
    se = ref.standard_error
    assert_allclose(res.std_error[0], se, rtol=0.03)
    # Monte Carlo SD of a 2.5% quantile with B = 40,000 is about 0.014 SE per side; allow 6 SD of the difference
    assert abs(res.conf_low[0] - ref.confidence_interval.low) < 0.12 * se
    assert abs(res.conf_high[0] - ref.confidence_interval.high) < 0.12 * se


@pytest.mark.parametrize("shape", [(10_000, 40), (999, 7), (5, 3)])
def test_tail_quantiles_equal_numpy(shape):
    """The per-column quantiles (each matrix's columns sorted once) give numpy's linear-interpolation
    quantiles, heavy tails included."""
    from robustalign.resampling.intervals import quantiles_by_column

    gen = np.random.default_rng(shape[0])
    x = np.column_stack([gen.standard_cauchy(shape[0]) if j % 3 == 0 else gen.normal(size=shape[0])
                         for j in range(shape[1])])
    x[0, 1] = np.nan  # a column with an undefined replicate
    probs = np.vstack([gen.uniform(0, 0.2, shape[1]), gen.uniform(0.8, 1, shape[1])])
    probs[:, 2] = [0.5, np.nan]
    expect = np.array([[np.nan if np.isnan(q) else np.nanquantile(x[:, j], q) for j, q in enumerate(row)]
                       for row in probs])
    assert_allclose(quantiles_by_column(x, probs), expect, rtol=1e-13, atol=1e-13)


def test_conf_int_reuses_the_stored_resamples(skewed):
    res = cluster_bootstrap(skewed, n_resamples=2000, rng=7)
    again = cluster_bootstrap(skewed, n_resamples=2000, confidence_level=0.9, method="percentile", rng=7)
    assert_allclose(res.conf_int(0.9, "percentile")[["conf_low", "conf_high"]], again.conf_int()[["conf_low", "conf_high"]])
    q = np.quantile(res.resamples, [0.05, 0.95], axis=0)
    assert_allclose(res.conf_int(0.9, "percentile")[["conf_low", "conf_high"]].to_numpy().T, q)
    assert res.conf_int(0.9)["conf_level"].eq(0.9).all()
    assert not res.resamples.flags.writeable


# ------------------------------------------------------------------------------------------ fast path
def _rows_table(seed=0):
    gen = np.random.default_rng(seed)
    rows = []
    for q in range(12):
        for m in ("a", "b", "c"):
            if (q, m) in {(3, "b"), (7, "c")}:
                continue  # missing cells
            for _ in range(gen.integers(1, 6)):
                rows.append({"item": f"q{q:02d}", "model": m, "score": gen.beta(2, 2)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("weights", ["equal", "rows"])
def test_replicates_equal_explicit_pandas_resampling_of_rows(weights):
    df = _rows_table()
    B = 60
    res = cluster_bootstrap(df, value="score", by="model", weights=weights, n_resamples=B, rng=9, method="percentile")
    items = sorted(df["item"].unique())
    idx = W.IntegerStream(np.random.default_rng(9), len(items), len(items), B).next(B)  # the same draws, replayed
    by_item = {i: g for i, g in df.groupby("item")}
    expect = np.empty((B, 3))
    for b in range(B):
        parts = [by_item[items[j]].assign(copy=k) for k, j in enumerate(idx[b])]
        sample = pd.concat(parts)
        if weights == "rows":  # pooled rows of the drawn items
            s = sample.groupby("model")["score"].mean()
        else:  # each drawn item (copy) counts once
            s = sample.groupby(["model", "copy"])["score"].mean().groupby("model").mean()
        expect[b] = s.reindex(["a", "b", "c"]).to_numpy()
    assert_allclose(res.resamples, expect, rtol=1e-12)
    assert res.labels["model"].tolist() == ["a", "b", "c"]


def test_chunk_size_does_not_change_the_result(skewed):
    a = cluster_bootstrap(skewed, n_resamples=1000, rng=5)
    b = cluster_bootstrap(skewed, n_resamples=1000, rng=5, chunk_size=7)
    assert_allclose(a.resamples, b.resamples, rtol=1e-13)  # same draws; only summation order differs


def test_jackknife_closed_form_equals_leave_one_item_out():
    agg = item_aggregates(_rows_table(1), "score", by="model")
    res = cluster_bootstrap(agg, weights="rows", n_resamples=10, rng=0)
    n = agg.values.shape[0]
    for i in range(n):
        keep = np.arange(n) != i
        v, w = agg.values[keep], agg.n_rows[keep]
        expect = np.nansum(v * w, axis=0) / w.sum(axis=0)
        assert_allclose(res.jackknife[i], expect, rtol=1e-12)


def test_dataframe_and_aggregate_inputs_give_the_same_result():
    df = _rows_table(2)
    a = cluster_bootstrap(df, value="score", by="model", n_resamples=300, rng=4)
    b = cluster_bootstrap(item_aggregates(df, "score", by="model"), n_resamples=300, rng=4)
    assert_allclose(a.resamples, b.resamples)
    per_item = df.groupby(["model", "item"])["score"].mean().groupby("model").mean()
    assert_allclose(a.estimate, per_item.to_numpy(), rtol=1e-13)


def test_aggregates_keep_only_occurring_levels_and_combinations():
    df = _rows_table(3)
    df["model"] = pd.Categorical(df["model"], categories=["z", "c", "b", "a"])  # 'z' never occurs
    df["lang"] = np.where(df.index % 2 == 0, "en", "fr")
    agg = item_aggregates(df, "score", by=["model", "lang"])
    expect = df.groupby(["item", "model", "lang"], observed=True)["score"].mean().unstack(["model", "lang"])
    assert agg.cells["model"].tolist() == ["c", "c", "b", "b", "a", "a"]  # category order, 'z' dropped
    cols = list(zip(agg.cells["model"], agg.cells["lang"]))
    assert_allclose(agg.values, expect[cols].to_numpy(), equal_nan=True)
    assert_allclose(agg.n_rows, df.groupby(["item", "model", "lang"], observed=True).size().unstack(["model", "lang"])
                    [cols].fillna(0).to_numpy())


# ------------------------------------------------------------------------------------------ paired
def _model_steer(seed=3, n=300):
    gen = np.random.default_rng(seed)
    item = gen.normal(0, 0.2, (n, 1))  # shared item difficulty
    model = np.repeat([0.50, 0.52, 0.60], 2)
    a = np.clip(model + item + gen.normal(0, 0.03, (n, 6)), 0, 1)
    lab = pd.DataFrame({"model": np.repeat(["m1", "m2", "m3"], 2), "steer": ["none", "c1"] * 3})
    return a, lab


def test_pairwise_differences_share_the_resample():
    a, lab = _model_steer()
    cells = cluster_bootstrap(a, labels=lab, n_resamples=2000, rng=1)
    diff = cells.pairwise("model")
    m = cells.resamples.reshape(-1, 3, 2).mean(axis=2)
    assert_allclose(diff.resamples, np.column_stack([m[:, 0] - m[:, 1], m[:, 0] - m[:, 2], m[:, 1] - m[:, 2]]))
    assert diff.labels.to_dict("list") == {"model_a": ["m1", "m1", "m2"], "model_b": ["m2", "m3", "m3"]}
    assert diff.design == "paired"
    via_api = paired_bootstrap(a, labels=lab, compare="model", n_resamples=2000, rng=1)
    assert_allclose(via_api.resamples, diff.resamples)
    # closed form: the bootstrap SE of a mean of n per-item differences is sd(d) * sqrt((n - 1) / n) / sqrt(n)
    d = a[:, :2].mean(1) - a[:, 2:4].mean(1)
    assert_allclose(diff.std_error[0], d.std(ddof=0) / np.sqrt(len(d)), rtol=0.05)
    # unpaired (two separate resamples) would add the shared item variance back
    sep = np.sqrt(a[:, :2].mean(1).var() / len(d) + a[:, 2:4].mean(1).var() / len(d))
    assert diff.std_error[0] < sep / 3


def test_pairwise_within_and_unbalanced_levels():
    a, lab = _model_steer()
    res = cluster_bootstrap(a, labels=lab, n_resamples=200, rng=2)
    w = res.pairwise("model", within="steer")
    assert len(w) == 6 and list(w.labels.columns) == ["steer", "model_a", "model_b"]
    expect = a[:, 0].mean() - a[:, 2].mean()  # steer 'none': m1 - m2
    assert_allclose(w.estimate[0], expect, rtol=1e-12)
    with pytest.raises(ValueError, match=r"do not share the same combinations"):
        res.subset(steer="none").contrast(np.eye(3)).apply(lambda s: s, labels=pd.DataFrame(
            {"model": ["m1", "m2", "m2"], "steer": ["x", "y", "z"]})).pairwise("model")
    with pytest.raises(ValueError, match=r"`flavour` is not a label column"):
        res.pairwise("flavour")


def test_ranks_and_flip_probability_against_normal_theory():
    gen = np.random.default_rng(8)
    n = 400
    item = gen.normal(0, 0.3, (n, 1))
    a = item + gen.normal(0, 0.1, (n, 3)) + [0.0, 0.008, 0.3]
    cells = cluster_bootstrap(a, labels=pd.DataFrame({"model": ["x", "y", "z"]}), n_resamples=10_000, rng=3)
    r = cells.ranks()
    assert r.set_index("model").loc["z", ["rank", "rank_low", "rank_high", "p_top"]].tolist() == [1, 1, 1, 1.0]
    flips = cells.pairwise("model").flip_probability().set_index(["model_a", "model_b"])
    d = a[:, 0] - a[:, 1]
    z = abs(d.mean()) / (d.std(ddof=0) / np.sqrt(n))
    assert abs(flips.loc[("x", "y"), "p_flip"] - stats.norm.sf(z)) < 0.03
    assert flips.loc[("x", "z"), "p_flip"] == 0.0


def test_apply_gives_a_ratio_with_its_jackknife():
    a, lab = _model_steer()
    res = cluster_bootstrap(a, labels=lab, n_resamples=500, rng=6)
    ratio = res.apply(lambda s: s[..., 4:5] / s[..., 0:1], labels=["m3/m1 (none)"])
    assert_allclose(ratio.estimate[0], a[:, 4].mean() / a[:, 0].mean(), rtol=1e-12)
    loo = [np.delete(a[:, 4], i).mean() / np.delete(a[:, 0], i).mean() for i in range(a.shape[0])]
    assert_allclose(ratio.jackknife[:, 0], loo, rtol=1e-12)
    assert ratio.to_frame()["method"].iloc[0] == "bca"
    logit = res.apply(lambda s: np.log(s / (1 - s)))  # same number of statistics: labels are kept
    assert logit.labels.equals(res.labels)


# ------------------------------------------------------------------------------------------ general path
def test_general_path_median_matches_scipy(skewed):
    x = skewed[:, 1]
    res = cluster_bootstrap(x, statistic=lambda xb: np.median(xb, axis=1), n_resamples=3000, rng=10)
    low, high = _scipy_ci((x,), np.median, res.resamples[:, 0], "BCa", 0.95)  # scipy's own jackknife
    assert_allclose(res.conf_int().loc[0, ["conf_low", "conf_high"]].to_numpy(float), [low, high], rtol=1e-12)
    ref = stats.bootstrap((x,), np.median, n_resamples=20_000, method="percentile", rng=11)
    big = cluster_bootstrap(x, statistic=lambda xb: np.median(xb, axis=1), n_resamples=20_000, rng=12)
    assert_allclose(big.std_error[0], ref.standard_error, rtol=0.05)


def test_general_and_fast_paths_draw_the_same_resamples(skewed):
    fast = cluster_bootstrap(skewed, n_resamples=500, rng=13)
    gen = cluster_bootstrap(skewed, statistic=lambda xb: xb.mean(axis=1), n_resamples=500, rng=13)
    assert_allclose(gen.resamples, fast.resamples, rtol=1e-12)
    assert_allclose(gen.jackknife, fast.jackknife, rtol=1e-12)


def test_general_path_jackknife_leaves_out_each_cluster_in_any_chunking(skewed):
    med = [np.median(np.delete(skewed, i, axis=0), axis=0) for i in range(skewed.shape[0])]
    for chunk_size in (None, 7):
        res = cluster_bootstrap(skewed, statistic=lambda xb: np.median(xb, axis=1), n_resamples=20, rng=0,
                                chunk_size=chunk_size)
        assert_allclose(res.jackknife, med, rtol=1e-15)


# ------------------------------------------------------------------------------------------ two-way
def _two_way_exact_variance(x):
    """Exact variance of the pigeonhole-bootstrap mean of a complete R x C table (multinomial weights)."""
    R, C = x.shape
    ew = np.full((R, R), 1 - 1 / R) + np.eye(R)  # E[W_i W_k]
    ev = np.full((C, C), 1 - 1 / C) + np.eye(C)
    return (ew * (x @ ev @ x.T)).sum() / (R * C) ** 2 - x.mean() ** 2


def test_two_way_variance_equals_closed_form():
    gen = np.random.default_rng(21)
    x = gen.normal(size=(30, 1)) + gen.normal(size=(1, 8)) + gen.normal(0, 0.5, (30, 8))
    x3 = np.stack([x, 2 * x + 1], axis=-1)
    res = two_way_bootstrap(x3, n_resamples=20_000, rng=1)
    exact = _two_way_exact_variance(x)
    assert_allclose(res.resamples.var(axis=0), [exact, 4 * exact], rtol=0.04)
    assert res.n_clusters == (30, 8) and res.jackknife is None
    item_only = x.mean(axis=1).var() / 30
    assert res.std_error[0] ** 2 > item_only * 1.5  # groups add their own variance


def test_two_way_results_do_not_depend_on_chunk_size():
    x = np.random.default_rng(3).normal(size=(12, 7, 2))
    a = two_way_bootstrap(x, n_resamples=700, rng=5)
    b = two_way_bootstrap(x, n_resamples=700, rng=5, chunk_size=33)
    assert_allclose(a.resamples, b.resamples, rtol=1e-13)


def test_two_way_dataframe_input_and_missing_cells():
    gen = np.random.default_rng(4)
    rows = [{"item": q, "group": g, "model": m, "score": gen.random()} for q in range(10) for g in range(5)
            for m in ("a", "b") if not (q == 0 and g == 0 and m == "a")]
    df = pd.DataFrame(rows)
    res = two_way_bootstrap(df, value="score", by="model", n_resamples=500, rng=2)
    assert_allclose(res.estimate, df.groupby("model")["score"].mean().to_numpy(), rtol=1e-12)
    assert res.labels["model"].tolist() == ["a", "b"]
    rows = two_way_bootstrap(df, value="score", by="model", weights="rows", n_resamples=50, rng=2)
    assert_allclose(rows.estimate, res.estimate, rtol=1e-12)  # one row per cell: the same weights
    with pytest.raises(ValueError, match=r"`weights` must be 'equal', 'rows' or an array; got 'items'"):
        two_way_bootstrap(df, value="score", by="model", weights="items")


# ------------------------------------------------------------------------------------------ Dirichlet
def test_dirichlet_moments_match_closed_form():
    h = np.array([[[0.6, 0.3, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]]])  # 1 item x 2 groups
    n = np.array([[300.0, np.nan]])
    d = dirichlet_reference(h, n, n_resamples=40_000, rng=0)
    for g, n_eff in ((0, 300 / 1.5), (1, 1000 / 1.5)):
        alpha = n_eff * h[0, g] + 0.5
        a0 = alpha.sum()
        mean, var = alpha / a0, alpha * (a0 - alpha) / (a0**2 * (a0 + 1))
        assert_allclose(d.draws[:, 0, g].mean(axis=0), mean, atol=5 * np.sqrt(var.max() / 40_000))
        assert_allclose(d.draws[:, 0, g].var(axis=0), var, rtol=0.05)
    assert d.n_known.tolist() == [[True, False]] and d.used_default
    assert d.to_frame().drop_duplicates(["item", "group"])["n_source"].tolist() == ["known", "default"]


def test_dirichlet_switches_and_padding():
    h = np.array([[[0.5, 0.5, 0.0], [np.nan, np.nan, np.nan]]])
    d = dirichlet_reference(h, None, n_resamples=100, n_unknown=np.inf, n_options=[2], rng=1)
    assert_allclose(d.draws[:, 0, 0], np.broadcast_to([0.5, 0.5, 0.0], (100, 3)))
    assert np.isnan(d.draws[:, 0, 1]).all()
    d = dirichlet_reference(h, None, n_resamples=100, n_options=[2], rng=1)
    assert (d.draws[:, 0, 0, 2] == 0).all()
    with pytest.raises(ValueError, match=r"`deff` must be a positive number; got 0"):
        dirichlet_reference(h, deff=0)
    with pytest.raises(ValueError, match=r"`n` must have shape \(n_items, n_groups\) = \(1, 2\)"):
        dirichlet_reference(h, np.ones((3, 2)))


def test_dirichlet_from_a_reference_object():
    from robustalign.simulate import simulate

    _, ref = simulate(n_models=1, n_items=4, n_groups=3, K=4, n_respondents=600, rng=0).load()
    d = dirichlet_reference(ref, n_resamples=50, deff=2.0, rng=0)
    assert d.draws.shape == (50, 4, 3, 4)
    assert_allclose(d.n_eff, 300.0)
    assert not d.used_default


def test_perturbed_adds_the_closed_form_human_variance():
    gen = np.random.default_rng(30)
    Q, K = 80, 4
    p = gen.dirichlet(np.ones(K), size=Q)  # model answer distribution per item
    h = gen.dirichlet(np.ones(K) * 3, size=Q)[:, None, :]  # one human group
    n = np.full((Q, 1), 150.0)
    B = 20_000
    d = dirichlet_reference(h, n, n_resamples=B, deff=1.0, prior=0.0, rng=1)
    a = (p * h[:, 0]).sum(-1)  # expected agreement with a random respondent, per item
    pert = (p[None] * d.draws[:, :, 0, :]).sum(-1)[..., None]  # (B, Q, 1)
    res = cluster_bootstrap(a, perturbed=pert, n_resamples=B, rng=2)
    # Var = item bootstrap variance + E[sum W_q^2 var_q] / Q^2 with E[W_q^2] = 2 - 1/Q
    alpha = 150.0 * h[:, 0]
    a0 = alpha.sum(-1, keepdims=True)
    cov = (np.einsum("qk,kl->qkl", alpha / a0, np.eye(K)) - np.einsum("qk,ql->qkl", alpha / a0, alpha / a0)) / (a0[..., None] + 1)
    var_q = np.einsum("qk,qkl,ql->q", p, cov, p)
    expect = ((a - a.mean()) ** 2).sum() / Q**2 + (2 - 1 / Q) * var_q.sum() / Q**2
    assert_allclose(res.resamples.var(), expect, rtol=0.04)
    assert res.design == "cluster+dirichlet"


# ------------------------------------------------------------------------------------------ warnings, objects
def test_degenerate_data_warn_and_give_nan_bca():
    with pytest.warns(DegenerateResampleWarning, match=r"every resample gave the same value"):
        res = cluster_bootstrap(np.full((20, 1), 0.5), n_resamples=100, rng=0)
    with pytest.warns(DegenerateResampleWarning, match=r"BCa is undefined"):
        frame = res.to_frame()
    assert np.isnan(frame.conf_low[0])
    assert res.to_frame(method="percentile").conf_low[0] == 0.5


def test_bca_or_percentile_falls_back_only_where_bca_is_undefined():
    """Column 0 varies (BCa defined), column 1 is constant (BCa undefined): the mixed method takes
    each column's interval from the method that is defined for it and says which."""
    import warnings

    a = np.column_stack([np.random.default_rng(3).normal(size=40), np.full(40, 0.5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateResampleWarning)
        res = cluster_bootstrap(a, n_resamples=500, rng=1)
        bca = res.to_frame(method="bca")
    pct = res.to_frame(method="percentile")
    mixed = res.to_frame(method="bca_or_percentile")
    assert list(mixed["method"]) == ["bca", "percentile"]
    assert mixed.loc[0, "conf_low"] == bca.loc[0, "conf_low"] and mixed.loc[0, "conf_high"] == bca.loc[0, "conf_high"]
    assert mixed.loc[1, "conf_low"] == pct.loc[1, "conf_low"] == 0.5
    assert np.isnan(bca.loc[1, "conf_low"])
    with pytest.raises(ValueError, match="bca_or_percentile"):
        res.to_frame(method="wilson")


def test_sparse_cells_warn_about_undefined_replicates():
    a = np.full((30, 2), np.nan)
    a[:, 0] = np.linspace(0, 1, 30)
    a[0, 1] = 0.3  # cell 2 has one item
    with pytest.warns(DegenerateResampleWarning) as record:
        res = cluster_bootstrap(a, n_resamples=400, rng=0, method="percentile")
    messages = [str(w.message) for w in record]
    assert any("replicates of 1 statistics are undefined" in m for m in messages)
    assert any("every resample gave the same value for 1 statistics" in m for m in messages)  # one item: constant
    assert np.isnan(res.resamples[:, 1]).mean() == pytest.approx((29 / 30) ** 30, abs=0.07)


def test_result_object_contract(skewed):
    res = cluster_bootstrap(skewed, labels=["a", "b", "c"], n_resamples=300, rng=123)
    frame = res.to_frame()
    assert list(frame.columns) == ["cell", "estimate", "std_error", "conf_low", "conf_high", "conf_level",
                                   "method", "n_resamples", "conf_low_mcse", "conf_high_mcse"]
    assert frame["n_resamples"].eq(300).all() and frame["method"].eq("bca").all()
    assert res.rng.entropy == 123 and res.n_clusters == 45 and res.design == "cluster"
    assert "300 resamples" in res.summary() and "bca 95%" in res.summary()
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.method = "percentile"
    assert isinstance(res.subset(cell="b"), BootstrapResult) and len(res.subset(cell=["a", "c"])) == 2


def test_plot_returns_axes(skewed):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    res = cluster_bootstrap(skewed, n_resamples=200, rng=0)
    ax = res.plot()
    assert len(ax.get_yticks()) == 3


def test_resampling_import_stays_light():
    code = ("import robustalign.resampling, sys; "
            "print([m for m in ('matplotlib', 'pymc', 'pytensor', 'arviz', 'dask') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docstring_examples_run():
    import doctest

    import robustalign.resampling.bootstrap as b
    import robustalign.resampling.permutation as p

    for mod in (b, p):
        out = doctest.testmod(mod, raise_on_error=False)
        assert out.attempted > 0 and out.failed == 0
