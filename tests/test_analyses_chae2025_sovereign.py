"""The cultural-fit-vs-safety audit (analyses/chae2025_sovereign, a simulation with known truth).

Checks: the committed tables are what run.py computes (one study per world, same seed), the units-needed
grid agrees with Cohen's (1988) table for r = 0.30 and 0.25 (85 and 123-124 pairs; 0.5 x 0.5 reliability
turns a true 0.5 into an observed 0.25), and in the world without a trade-off the committed verdict counts
do not claim one more often than a 5% test allows.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _analyses import load_analysis
from scipy import stats

run = load_analysis("chae2025_sovereign")
FIG = Path(__file__).resolve().parents[1] / "figures" / "chae2025_sovereign"


def test_committed_single_study_is_reproduced():
    d = run.audit_world("none", run.SEED)
    assert d["truth_r"] == 0.0
    f = d["result"].to_frame()
    committed = pd.read_csv(FIG / "estimates.csv").query("world == 'none'").reset_index(drop=True)
    np.testing.assert_allclose(f["estimate"].to_numpy(float), committed["estimate"].to_numpy(float),
                               rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(f["p_value"].to_numpy(float), committed["p_value"].to_numpy(float),
                               atol=1e-9, equal_nan=True)
    assert d["result"].verdicts["verdict"].iloc[0] != "supported"


def test_power_grid_matches_cohen():
    g = pd.read_csv(FIG / "power_grid.csv").set_index(["rho", "reliability"])["units_needed"]
    assert g[(0.3, 1.0)] == 85
    assert 123 <= g[(0.5, 0.5)] <= 124


def test_no_tradeoff_world_rarely_supported():
    s = pd.read_csv(FIG / "studies.csv")
    null = s[s["world"] == "none"]
    k = int((null["verdict"] == "supported").sum())
    assert stats.binomtest(k, len(null), 0.05, alternative="greater").pvalue > 0.01
    assert (null["truth_r"] == 0).all()
    assert (s.loc[s["world"] == "tradeoff", "truth_r"] > 0.8).all()


@pytest.mark.slow
def test_full_run_regenerates():
    out = run.main(write=False, n_studies=3)
    assert set(out["verdict_counts"]["world"]) == {"none", "tradeoff"}
