"""The report's table text (``render._text_frame``, built from plain lists) against pandas' own
element-wise map of the same cell formatter, on awkward values and on a table like the report's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from robustalign.report.render import _cell, _text_frame


def _by_pandas(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(lambda c: c.map(_cell)) if len(df.columns) else df


def test_text_frame_equals_pandas_map_on_awkward_values():
    df = pd.DataFrame({"a": [0.1, np.nan, 1e-300, -0.0], "b": pd.array([1, None, 3, 4], dtype="Int64"),
                       "c": ["x", None, "NaN", "y"], "d": [True, False, True, False],
                       "e": pd.to_datetime(["2026-01-01", None, "2026-01-03", "2026-01-04"])},
                      index=[5, 3, 9, 1])
    df.columns = ["a", "b", "a", "d", "e"]  # a repeated name stays where it was
    got, want = _text_frame(df), _by_pandas(df)
    assert list(got.columns) == list(want.columns)
    assert list(got.itertuples(index=False)) == list(want.itertuples(index=False))
    assert got.iloc[1].tolist() == ["", "", "", "False", ""]
    assert _text_frame(df.iloc[:, :0]).shape == (4, 0)


def test_text_frame_equals_pandas_map_on_a_results_like_table():
    """Estimates, intervals, counts, verdict words and missing values, as in the report's tables."""
    rng = np.random.default_rng(3)
    n = 200
    est = rng.normal(size=n)
    est[rng.random(n) < 0.1] = np.nan
    df = pd.DataFrame({"model": rng.choice(["gpt-4o", "llama_3", "m<1>"], n), "estimate": est,
                       "conf_low": est - rng.random(n), "n_items": rng.integers(0, 40, n),
                       "p_value": rng.random(n).astype(np.float32), "verdict": rng.choice(["supported", None], n),
                       "level": pd.Categorical(rng.choice(["da", "en"], n))})
    got, want = _text_frame(df), _by_pandas(df)
    assert list(got.columns) == list(want.columns)  # the report reads the texts and the names only
    assert list(got.itertuples(index=False)) == list(want.itertuples(index=False))
