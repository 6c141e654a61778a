"""Validity rates: Wilson intervals and paired tests against closed forms and scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robustalign.schema import make_responses
from robustalign.validity import validity_rates

SCALES = {"q": None}


def _responses(flags: np.ndarray) -> "make_responses":
    """flags: (items, levels) 1 = valid answer '1', 0 = a refusal text."""
    from robustalign.schema import Scale

    items, levels = flags.shape
    scales = {f"q{i}": Scale(("1", "2"), ("Yes", "No"), False) for i in range(items)}
    rows = [
        {"model": "m", "item": f"q{i}", "cond": f"c{j}",
         "raw_text": "Yes" if flags[i, j] else "I'm sorry, as an AI I cannot give personal opinions."}
        for i in range(items) for j in range(levels)
    ]
    return make_responses(pd.DataFrame(rows), scales=scales)


def _wilson(k, n, level):
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def test_wilson_interval_matches_closed_form_and_levels_change_without_recount():
    rng = np.random.default_rng(3)
    flags = (rng.random((40, 3)) < [0.2, 0.5, 0.9]).astype(int)
    res = validity_rates(_responses(flags), condition="cond")
    f = res.to_frame()
    assert (f["n_valid"] + f["n_refusal"] + f["n_unparseable"] + f["n_ambiguous"] == f["n"]).all()
    for level in (0.95, 0.8):
        g = res.to_frame(level)
        lo, hi = _wilson(flags.sum(0), 40, level)
        np.testing.assert_allclose(g["conf_low"], lo, rtol=1e-10)
        np.testing.assert_allclose(g["conf_high"], hi, rtol=1e-10)
        assert (g["conf_level"] == level).all()


def test_summary_states_the_level_and_counts():
    flags = np.array([[1, 0]] * 9 + [[0, 1]] * 2 + [[1, 1]] * 10)
    res = validity_rates(_responses(flags), condition="cond", confidence_level=0.29)  # 0.29 * 100 = 28.999...
    # rates 19/21 = 90.5% and 12/21 = 57.1%; McNemar exact p = 0.065 is not below 0.05
    assert res.summary() == (
        "valid rate ranges from 57.1% to 90.5% across 2 cells (29% wilson intervals). It differs across "
        "levels of 'cond' (paired by item, p < 0.05) for 0 of 1 groups."
    )


def test_cochrans_q_closed_form():
    rng = np.random.default_rng(5)
    x = (rng.random((30, 3)) < [0.3, 0.5, 0.7]).astype(int)
    res = validity_rates(_responses(x), condition="cond")
    k, col, row, n = 3, x.sum(0), x.sum(1), x.sum()
    q = (k - 1) * (k * (col**2).sum() - n**2) / (k * n - (row**2).sum())
    assert res.tests["statistic"].iloc[0] == pytest.approx(q)
    assert res.tests["p_value"].iloc[0] == pytest.approx(stats.chi2.sf(q, k - 1))


def test_two_levels_use_exact_mcnemar_binomial():
    x = np.array([[1, 0]] * 9 + [[0, 1]] * 2 + [[1, 1]] * 10)
    res = validity_rates(_responses(x), condition="cond")
    assert res.tests["test"].iloc[0] == "mcnemar_exact"
    assert res.tests["p_value"].iloc[0] == pytest.approx(stats.binomtest(2, 11, 0.5).pvalue)


def test_bad_arguments():
    r = _responses(np.ones((3, 2), int))
    with pytest.raises(ValueError, match="`status` must be one of"):
        validity_rates(r, status="ok")
    with pytest.raises(ValueError, match=r"columns \['nope'\]"):
        validity_rates(r, condition="nope")
    with pytest.raises(ValueError, match=r"Did you mean 0.95"):
        validity_rates(r, confidence_level=95)


def test_plot_draws_one_marker_per_cell():
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(1)
    res = validity_rates(_responses((rng.random((10, 3)) < 0.5).astype(int)), condition="cond")
    ax = res.plot()
    xs = np.concatenate([np.asarray(c.lines[0].get_xdata(), float) for c in ax.containers])
    np.testing.assert_allclose(np.sort(xs), np.sort(res.to_frame()["estimate"]))
