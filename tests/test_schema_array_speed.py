"""``Reference.array`` (plain dict look-ups instead of pandas isin/map) against an independent build of
the same array from the long shares table, on the bundled data: any items and groups, in any order,
repeated, or absent from the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def refs():
    from robustalign.datasets import load_multicultural_alignment

    data = load_multicultural_alignment()
    return data.reference_language, data.reference_country


def _independent(ref, items, groups) -> np.ndarray:
    """The (items, groups, K_max) array from a pandas pivot of the shares table: NaN for a cell the
    table does not hold, the option's share at its canonical position, 0 beyond the item's K."""
    kmax = max(ref.scales[i].K for i in items)
    out = np.full((len(items), len(groups), kmax), np.nan)
    wide = ref.shares.pivot_table(index=["item", "group"], columns="_k", values="share", aggfunc="last")
    for a, item in enumerate(items):
        for b, group in enumerate(groups):
            if (item, group) in wide.index:
                row = wide.loc[(item, group)]
                out[a, b, :] = 0.0
                for k, v in row.dropna().items():
                    out[a, b, int(k)] = v
    return out


def test_reference_array_equals_a_pivot_of_the_shares_table(refs):
    rng = np.random.default_rng(7)
    for ref in refs:
        assert np.array_equal(ref.array(), _independent(ref, ref.items, ref.groups), equal_nan=True)
        for _ in range(5):
            items = list(rng.choice(ref.items, size=rng.integers(1, len(ref.items)), replace=False))
            groups = list(rng.choice(ref.groups, size=4, replace=True))  # repeats: each gets the shares
            groups.append("no such group")  # absent: NaN
            got = ref.array(items, [np.str_(g) for g in groups])  # numpy strings look up as str
            assert got.shape == (len(items), len(groups), max(ref.scales[i].K for i in items))
            assert np.array_equal(got, _independent(ref, items, groups), equal_nan=True)
            assert np.isnan(got[:, -1]).all() and not np.isnan(got[:, 0]).all()


def test_reference_array_keeps_the_shares_table_it_was_given(refs):
    ref = refs[0]
    before = ref.shares.copy()
    ref.array(ref.items[:3], ref.groups[:2])
    pd.testing.assert_frame_equal(ref.shares, before)
