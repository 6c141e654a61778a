"""Half-samples of items (robustalign.resampling.subsample): subsets without repeats, uniform inclusion, and
the delete-d jackknife variance of a mean against its closed form s^2 / n."""

import numpy as np
import pytest
from scipy import stats

from robustalign.resampling.subsample import half_sample_factor, item_half_samples


@pytest.mark.parametrize("n, expected", [(2, 1.0), (4, 3.0), (5, 1.5), (10, 1.5), (7, 4 / 3), (20, 11 / 9)])
def test_factor_is_kept_over_deleted(n, expected):
    assert half_sample_factor(n) == pytest.approx(expected)


def test_fewer_than_two_items_is_an_error():
    with pytest.raises(ValueError, match="at least 2 items"):
        item_half_samples(lambda keep: keep, 1, n_resamples=5, rng=1, key=("test",))


def test_subsets_are_distinct_items_drawn_uniformly():
    n, B = 7, 7000
    keep = item_half_samples(lambda k: k, n, n_resamples=B, rng=3, key=("test.subsets",)).astype(int)
    assert keep.shape == (B, 4)  # d = 3 of 7 deleted
    assert all(len(set(row)) == 4 for row in keep[:500])
    counts = np.bincount(keep.ravel(), minlength=n)
    # each item is kept with probability 4/7: chi-square against equal counts
    assert stats.chisquare(counts).pvalue > 0.001
    again = item_half_samples(lambda k: k, n, n_resamples=B, rng=3, key=("test.subsets",))
    assert np.array_equal(keep, again)


@pytest.mark.parametrize("n", [4, 5, 10])
def test_jackknife_variance_of_a_mean_is_s2_over_n(n):
    x = np.random.default_rng(n).normal(size=n)
    means = item_half_samples(lambda k: x[k].mean(axis=1), n, n_resamples=40000, rng=4, key=("test.mean",))
    v = half_sample_factor(n) * means.var()
    # the mean over all subsets is exactly s^2 / n; 40,000 random ones estimate it within a few percent
    assert v == pytest.approx(x.var(ddof=1) / n, rel=0.05)
