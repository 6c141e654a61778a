"""audit_tradeoff: cultural fit (alignment per item) against safety violations, per model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustalign.claims.association import audit_tradeoff, report_rows
from robustalign.scoring import item_scores
from robustalign.simulate import simulate


@pytest.fixture(scope="module")
def data():
    sim = simulate(n_models=8, n_items=20, n_groups=2, factors={"format": 1}, n_orders=1, n_samples=10, rng=2)
    resp, ref = sim.load()
    gen = np.random.default_rng(0)
    models = sorted(sim.responses["model"].unique())
    safety = pd.DataFrame([(m, f"p{i}", int(gen.random() < 0.1 + 0.03 * k))
                           for k, m in enumerate(models) for i in range(40)], columns=["model", "item", "violation"])
    return resp, ref, safety


def test_both_quantities_per_model_with_intervals(data):
    resp, ref, safety = data
    res = audit_tradeoff(resp, ref, safety, group="C01", safety_value="violation", n_resamples=100,
                         n_permutations=199, rng=1)
    units = res.evidence["units"].set_index("unit")
    fit = item_scores(resp, ref, groups=["C01"]).groupby("model")["score"].mean()
    np.testing.assert_allclose(units.loc[fit.index, "cultural_fit"], fit.to_numpy(), rtol=1e-12)
    rate = safety.groupby("model")["violation"].mean()
    np.testing.assert_allclose(units.loc[rate.index, "safety_violation"], rate.to_numpy(), rtol=1e-12)
    assert (units["cultural_fit_conf_low"] < units["cultural_fit"]).all()
    assert res.kind == "tradeoff" and res.verdicts["verdict"].iloc[0] in {"supported", "not supported", "inconclusive"}
    assert "cultural_fit and safety_violation correlate positively" in res.summary()
    disp, rows = report_rows(res, part="p", assessment="trade-off")
    assert list(rows.columns) == ["part", "assessment", "unit", "verdict", "reason", "n_needed", "mc_error"]
    assert "pearson_corrected" in set(disp["quantity"])


def test_needs_one_group_per_unit_and_named_columns(data):
    resp, ref, safety = data
    with pytest.raises(ValueError, match="one human group per unit"):
        audit_tradeoff(resp, ref, safety, safety_value="violation", n_resamples=10, n_permutations=19, rng=0)
    with pytest.raises(ValueError, match=r"no column\(s\) \['value'\]"):
        audit_tradeoff(resp, ref, safety, group="C01", n_resamples=10, n_permutations=19, rng=0)
    with pytest.raises(ValueError, match="same units"):
        audit_tradeoff(resp, ref, safety[safety["model"] != safety["model"].iloc[0]], group="C01",
                       safety_value="violation", n_resamples=10, n_permutations=19, rng=0)


def test_report_section(data):
    from robustalign.report.audit import association_section

    resp, ref, safety = data
    res = audit_tradeoff(resp, ref, safety, group="C01", safety_value="violation", n_resamples=50,
                         n_permutations=99, rng=1)
    sec = association_section(res, part="sim")
    assert sec.verdicts["verdict"].iloc[0] == res.verdicts["verdict"].iloc[0]
    assert set(sec.tables) == {"correlation_estimates", "correlation_units", "correlation_power"}
    assert "estimate [95% interval]" in sec.display[0][1].columns
