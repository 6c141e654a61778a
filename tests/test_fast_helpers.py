"""The vectorised helpers behind the audit's hot spots give exactly what an independent computation gives:
average ranks (scipy.stats.rankdata), bootstrap quantiles (numpy.nanquantile) and the reference's item x
group cells (a pandas MultiIndex lookup), on random inputs with ties, NaN and infinite values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from robustalign.metrics import _PAIRWISE_MAX, _average_ranks, profile_correlation
from robustalign.resampling.intervals import quantiles_by_column


def _with_ties_and_nan(gen: np.random.Generator, shape: tuple[int, ...], nan_share: float = 0.1) -> np.ndarray:
    x = gen.integers(0, 6, shape).astype(float) / 5  # few distinct values: many ties
    x[gen.random(shape) < nan_share] = np.nan
    return x


@pytest.mark.parametrize("n", [1, 2, 3, _PAIRWISE_MAX, _PAIRWISE_MAX + 1, 45, 320])
def test_average_ranks_equal_scipy(n):
    """Both the pairwise-count path (short rows) and the sort path (long rows) give scipy's average ranks
    exactly (they are whole or half numbers), NaN where the value is NaN."""
    gen = np.random.default_rng(n)
    x = _with_ties_and_nan(gen, (7, 5, n))
    x[0, 0] = np.nan  # a row of NaN only
    x[0, 1] = 0.4  # a row of one value
    expect = rankdata(x, axis=-1, nan_policy="omit")
    got = _average_ranks(x)
    assert got.shape == x.shape
    assert np.array_equal(got, expect, equal_nan=True)


@pytest.mark.parametrize("with_posinf", [False, True])
def test_average_ranks_with_infinite_values(with_posinf):
    """Infinite values are ranked as values (ties among them averaged), next to NaN, whether or not a
    +inf keeps NaN in the sort (with one, NaN cannot stand in for +inf)."""
    gen = np.random.default_rng(4)
    x = _with_ties_and_nan(gen, (30, 40), nan_share=0.3)
    x[gen.random(x.shape) < 0.1] = -np.inf
    if with_posinf:
        x[gen.random(x.shape) < 0.1] = np.inf
    assert np.isposinf(x).any() == with_posinf
    assert np.array_equal(_average_ranks(x), rankdata(x, axis=-1, nan_policy="omit"), equal_nan=True)


def test_average_ranks_of_broadcast_profiles():
    """A profile broadcast over leading axes (one human profile against many replicates) is ranked once
    and broadcast back: the same values as ranking every copy."""
    gen = np.random.default_rng(3)
    human = _with_ties_and_nan(gen, (4, 30))
    view = np.broadcast_to(human[None], (50, 4, 30))
    expect = rankdata(np.ascontiguousarray(view), axis=-1, nan_policy="omit")
    assert np.array_equal(_average_ranks(view), expect, equal_nan=True)
    mixed = np.broadcast_to(human[:, None, :], (4, 6, 30))  # broadcast along a middle axis
    assert np.array_equal(_average_ranks(mixed), rankdata(np.ascontiguousarray(mixed), axis=-1, nan_policy="omit"),
                          equal_nan=True)
    assert _average_ranks(np.empty((3, 0))).shape == (3, 0)


def test_spearman_profile_correlation_equals_scipy():
    """Spearman across items, many replicates against one broadcast human profile, as scipy.stats.spearmanr
    row by row (to rounding: the correlation sums in a different order)."""
    from scipy.stats import spearmanr

    gen = np.random.default_rng(11)
    model = gen.integers(0, 8, (40, 25)).astype(float)
    human = gen.integers(0, 8, 25).astype(float)
    got = profile_correlation(model, human, method="spearman")
    expect = [spearmanr(row, human).statistic for row in model]
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)


def close(got: np.ndarray, expect: np.ndarray) -> None:
    """Equal to rounding: numpy interpolates between order statistics by a differently ordered formula."""
    np.testing.assert_allclose(got, expect, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("seed", range(6))
def test_quantiles_by_column_equal_numpy(seed):
    """Linear-interpolation quantiles per column with a different probability per column, as numpy's, with
    undefined (NaN) and infinite replicates left out, ties, constant and empty columns, NaN probabilities
    and the levels 0 and 1."""
    gen = np.random.default_rng(seed)
    B, k = int(gen.integers(1, 400)), int(gen.integers(1, 12))
    x = np.round(gen.standard_cauchy((B, k)), 1)  # ties and heavy tails
    x[gen.random((B, k)) < 0.05] = np.nan
    x[gen.random((B, k)) < 0.02] = np.inf
    x[:, 0] = 2.5  # constant
    if k > 1:
        x[:, 1] = np.nan  # no defined replicate
    probs = gen.random((3, k))
    probs[0, -1], probs[1, -1], probs[2, -1] = 0.0, 1.0, np.nan
    finite = np.where(np.isfinite(x), x, np.nan)
    expect = np.array([[np.nan if np.isnan(q) or np.isnan(finite[:, j]).all() else np.nanquantile(finite[:, j], q)
                        for j, q in enumerate(row)] for row in probs])
    close(quantiles_by_column(x, probs), expect)


def test_quantiles_follow_a_changed_matrix():
    """The sorted columns are reused only for a matrix equal bit for bit to the one they came from: a
    matrix changed in place, or a new one of the same shape, is sorted again."""
    gen = np.random.default_rng(5)
    x = gen.normal(size=(500, 3))
    probs = np.full((2, 3), 0.5)
    probs[1] = 0.9
    first = quantiles_by_column(x, probs)
    np.testing.assert_array_equal(quantiles_by_column(x, probs), first)
    x[:, 1] += 10.0  # in place: same object, new values
    close(quantiles_by_column(x, probs), np.quantile(x, [0.5, 0.9], axis=0))
    y = gen.normal(size=(500, 3))
    close(quantiles_by_column(y, probs), np.quantile(y, [0.5, 0.9], axis=0))
    close(quantiles_by_column(x[:, [0, 2]], probs[:, :2]), np.quantile(x[:, [0, 2]], [0.5, 0.9], axis=0))


def test_reference_cells_equal_a_multiindex_lookup():
    """The item x group cells the reference has, as the (slower) MultiIndex membership test finds them."""
    from robustalign.scoring import _reference_cells

    gen = np.random.default_rng(2)
    items = [f"q{i}" for i in range(9)]
    groups = ["da", "en", "nl", "pt"]
    rows = [(i, g, k, 0.5) for i in items for g in groups for k in range(2) if gen.random() < 0.7]
    shares = pd.DataFrame(rows, columns=["item", "group", "option", "share"])

    class Ref:  # only the shares are read
        pass

    ref = Ref()
    ref.shares = shares  # type: ignore[attr-defined]
    ask_items, ask_groups = items[::-1] + ["absent"], ["pt", "da", "xx"]
    got = _reference_cells(ref, ask_items, ask_groups)  # type: ignore[arg-type]
    have = pd.MultiIndex.from_frame(shares[["item", "group"]].drop_duplicates())
    expect = pd.MultiIndex.from_product([ask_items, ask_groups]).isin(have).reshape(len(ask_items), len(ask_groups))
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("seed", range(6))
def test_item_by_group_is_the_pivot_table(seed):
    """claims.general's items x groups table equals pandas' pivot_table (mean per cell, observed groups,
    groups without a finite score left out), with categorical and string labels, missing cells, an all-NaN
    group, an unused category and repeated cells (which take the pivot itself)."""
    from robustalign.claims.general import _item_by_group

    rng = np.random.default_rng(seed)
    items = [f"q{i}" for i in range(12)]
    groups = ["G1", "G2", "G3", "G4"]
    rows = [(i, g) for i in items for g in groups if rng.random() < 0.8]
    s = pd.DataFrame(rows, columns=["item", "group"])
    s["score"] = rng.normal(size=len(s))
    s.loc[s["group"] == "G3", "score"] = np.nan  # a group with no finite score
    s.loc[rng.random(len(s)) < 0.1, "score"] = np.nan
    if seed % 2:
        s["group"] = pd.Categorical(s["group"], categories=[*groups, "unused"])
        s["item"] = pd.Categorical(s["item"], categories=items)
    if seed >= 4:  # repeated cells
        s = pd.concat([s, s.iloc[:5].assign(score=rng.normal(size=5))], ignore_index=True)
    want = s.pivot_table(index="item", columns="group", values="score", observed=True)
    got = _item_by_group(s)
    idx = pd.Index(items)
    pd.testing.assert_frame_equal(got.reindex(idx), want.reindex(idx), check_exact=True, check_names=False,
                                  check_column_type=False, check_index_type=False)
