"""BLEnD accuracy audit (simulation with the published design): the design matches the published one
(16 countries x 500 shared templates, a 57.34-point largest gap) and robustalign's verdicts on it."""

from __future__ import annotations

import numpy as np
import pytest
from _analyses import load_analysis


@pytest.fixture(scope="module")
def blend():
    mod = load_analysis("blend2024_accuracy")
    data = mod.simulate()
    res, gap = mod.audit(data, n_resamples=400, n_permutations=999, rng=1)
    return mod, data, res, gap


def test_design_is_the_published_one(blend):
    mod, data, _, _ = blend
    assert data.culture.nunique() == 16 and data.groupby("culture").item.nunique().eq(500).all()
    # the same template ids in every country (items crossed with countries)
    assert data.groupby("item").culture.nunique().eq(16).all()
    truth = mod.design_truth().query("model == 'strong'")["truth"]
    assert truth.max() - truth.min() == pytest.approx(0.5734, abs=1e-9)


def test_largest_gap_interval_contains_the_published_gap(blend):
    _, _, _, gap = blend
    g = gap.to_frame().query("quantity == 'group contrast'").iloc[0]
    assert g.conf_low <= 0.5734 <= g.conf_high
    assert g.p_value == 1.0  # two countries: the culture-label test cannot reject
    assert "more cultures are needed" in gap.verdicts.reason.iloc[0]


def test_group_claim_and_model_difference_are_supported(blend):
    _, _, res, _ = blend
    v = res.verdicts
    assert (v.verdict == "supported").all(), v.reason.tolist()
    f = res.to_frame()
    acc = f[(f.quantity == "accuracy") & (f.culture != "(all)")]
    assert np.all(acc.conf_high - acc.conf_low < 0.1)  # 500 templates: about +-4.5 points per country
