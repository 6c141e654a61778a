"""robustalign.scaleout without a cluster: bootstrap_cells equals one cluster_bootstrap call (arrays and long
tables), warns once for all tasks, advances a Generator like the single call; map_tasks validates."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from robustalign import DegenerateResampleWarning
from robustalign.resampling import cluster_bootstrap
from robustalign.scaleout import bootstrap_cells, map_tasks


def test_long_table_split_into_tasks_equals_one_call():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"item": np.repeat([f"q{i}" for i in range(40)], 12),
                       "model": np.tile(np.repeat(["a", "b", "c"], 4), 40),
                       "cond": np.tile(["x", "y", "z", "w"], 120)})
    df["score"] = rng.normal(0.5, 0.2, len(df))
    df = df.drop(index=rng.choice(len(df), 30, replace=False))  # some items miss some cells
    one = cluster_bootstrap(df, value="score", by=["model", "cond"], n_resamples=300, rng=3)
    with ThreadPoolExecutor(2) as ex:
        split = bootstrap_cells(df, value="score", by=["model", "cond"], n_resamples=300, rng=3, n_tasks=5,
                                executor=ex)
    pd.testing.assert_frame_equal(split.labels, one.labels)
    np.testing.assert_allclose(split.resamples, one.resamples, rtol=1e-12, atol=0)
    np.testing.assert_allclose(split.jackknife, one.jackknife, rtol=1e-12, atol=0)
    pd.testing.assert_frame_equal(split.to_frame(), one.to_frame(), rtol=1e-10)
    assert split.rng == one.rng and split.provenance["n_tasks"] == 5
    assert split.statistic == one.statistic == "mean score"
    assert {k: split.provenance[k] for k in one.provenance} == one.provenance  # value, cluster, by, weights


def test_generator_is_advanced_like_the_single_call():
    a = np.random.default_rng(0).normal(size=(30, 8))
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    bootstrap_cells(a, n_resamples=100, rng=g1, n_tasks=3)
    cluster_bootstrap(a, n_resamples=100, rng=g2)
    assert g1.random() == g2.random()


def test_degenerate_cells_warn_once_for_all_tasks():
    a = np.random.default_rng(0).normal(size=(30, 9))
    a[:, [1, 7]] = 0.5  # constant cells in two different tasks
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        bootstrap_cells(a, n_resamples=50, rng=0, n_tasks=3)
    deg = [x for x in w if issubclass(x.category, DegenerateResampleWarning)]
    assert len(deg) == 1 and "2 statistics" in str(deg[0].message)
    assert deg[0].filename == __file__  # points at the caller


def test_docstring_examples_run():
    import doctest

    import robustalign.scaleout as mod

    out = doctest.testmod(mod, raise_on_error=False)
    assert out.attempted > 0 and out.failed == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="`n_tasks` must be a positive integer"):
        bootstrap_cells(np.ones((5, 2)) + np.arange(5)[:, None], n_tasks=0)
    with pytest.raises(ValueError, match="`value` is required"):
        bootstrap_cells(pd.DataFrame({"item": [1], "score": [1.0]}))
    with pytest.raises(TypeError, match="concurrent.futures interface"):
        map_tasks(abs, [1], executor=3)
