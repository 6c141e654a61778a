"""Shared plotting helpers: error bars from an estimate and its interval, and series dodged around a row."""

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from robustalign.plots import plot_split_half  # noqa: E402
from robustalign.plots._style import dodge, interval_err  # noqa: E402


def test_interval_err_is_the_distance_to_each_bound_clipped_at_zero():
    f = pd.DataFrame({"estimate": [0.5, 0.9, 2.0], "conf_low": [0.4, 0.2, 1.0], "conf_high": [0.7, 0.8, 4.0]})
    # the second interval does not contain its estimate (as a BCa interval may not): no negative bar
    np.testing.assert_allclose(interval_err(f), [[0.1, 0.7, 1.0], [0.2, 0.0, 2.0]])
    r = pd.DataFrame({"rank": [1, 3], "rank_low": [1, 2], "rank_high": [2, 3]})
    np.testing.assert_array_equal(interval_err(r, "rank", "rank_low", "rank_high"), [[0, 1], [1, 0]])


def test_dodge_centres_the_series_on_the_row():
    assert [dodge(j, 3, 0.75) for j in range(3)] == pytest.approx([-0.25, 0.0, 0.25])
    assert dodge(0, 1, 0.8) == 0.0


class _SplitHalf:
    """The part of an extrapolability result that plot_split_half reads."""

    def to_frame(self, level=None):
        return pd.DataFrame({
            "model": ["m1", "m2", ""], "subject": ["model", "model", "humans"],
            "quantity": "split_half_reliability",
            "estimate": [0.62, 0.30, 0.80], "conf_low": [0.50, 0.35, 0.70], "conf_high": [0.60, 0.50, 0.90],
            "conf_level": 0.95,
        })


def test_split_half_draws_an_interval_that_misses_its_estimate():
    import matplotlib.pyplot as plt

    ax = plot_split_half(_SplitHalf())  # each model's interval lies on one side of its estimate
    segs = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    spans = sorted(tuple(np.sort(s[:, 0])) for s in segs[0].get_segments())
    np.testing.assert_allclose(spans, [(0.30, 0.50), (0.50, 0.62)])  # from the estimate to the bound it reaches
    plt.close(ax.figure)
