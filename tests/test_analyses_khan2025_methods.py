"""The Khan et al. (2025) methods audit: their statistics as released reproduce the published pilot
numbers, the fast permutation equals the released loop's distribution, and at reduced size the
simulation shows the documented behaviour (robustalign's paired difference unbiased and calibrated,
WMD biased by unequal group sizes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _analyses import load_analysis


@pytest.fixture(scope="module")
def khan():
    return load_analysis("khan2025_methods")


def test_published_pilot_numbers(khan):
    # METHODS 4.1: the pilot WMD of identical means (3, 3 | 3) is 1.0; 308 vs 296 answers at 2.5 give 0.05
    assert khan.khan_wmd([3, 3, 3], ["a", "a", "b"]) == pytest.approx(1.0)
    assert khan.khan_wmd(np.full(604, 2.5), ["a"] * 308 + ["b"] * 296) == pytest.approx(0.05, abs=5e-4)
    # equal groups: half the absolute mean difference
    assert khan.khan_wmd([1, 3, 2, 4], ["a", "a", "b", "b"]) == pytest.approx(0.5)
    ex = khan.worked_examples()
    assert np.allclose(ex["published"], ex["reproduced"], atol=5e-4)


def test_double_reversal_gives_a_consistent_model_a_shift_of_at_least_one_third(khan):
    for cat in range(1, 5):
        df = pd.DataFrame({"question_idx": 0, "direction_format": ["ascending", "descending"],
                           "response_format": "identifier_only", "choice_format": "numbers",
                           "scale_position": float(cat)})
        s = khan.khan_category_shifts(df)["direction"]
        assert s["normalized_shift"] == pytest.approx(abs(2 * (cat - 1) - 3) / 3)
        assert s["normalized_shift"] >= 1 / 3
        assert s["p_value"] == 0.5  # fewer than 30 pairs: the hard-coded 'not significant'


def test_vectorised_category_shift_matches_the_released_pivot(khan):
    gen = np.random.default_rng(3)
    y = khan.simulate_design(gen, 1, np.array(khan.KHAN_K_MIX[:40]), fail="mcar", fail_rate=0.2)
    q = len(y[0])
    df = pd.DataFrame({
        "question_idx": np.repeat(np.arange(q), 8),
        "direction_format": np.tile([khan.LEVELS["direction"][v] for v in khan.CELLS["direction"]], q),
        "response_format": np.tile([khan.LEVELS["response_format"][v] for v in khan.CELLS["response_format"]], q),
        "choice_format": np.tile([khan.LEVELS["choice_format"][v] for v in khan.CELLS["choice_format"]], q),
        "scale_position": y[0].ravel(),
    })
    ref = khan.khan_category_shifts(df)
    fast = khan.khan_category_shifts_array(y)
    assert fast["direction"][0] == pytest.approx(ref["direction"]["normalized_shift"])
    assert fast["response"][0] == pytest.approx(ref["response"]["normalized_shift"])
    assert fast["direction_n"][0] == ref["direction"]["n_samples"]
    assert fast["direction_p"][0] == ref["direction"]["p_value"] == 0.01


def test_fast_permutation_has_the_released_loops_distribution(khan):
    gen = np.random.default_rng(5)
    y = gen.integers(1, 5, 200).astype(float)
    c = np.array(["a"] * 104 + ["b"] * 96)
    y[c == "b"] += gen.random(96) < 0.15  # a small shift
    y = np.minimum(y, 4)
    p_loop = khan.khan_permutation_p(y, c, n_permutations=2000, seed=42)
    p_fast = khan.khan_permutation_p_fast(y, c, 20_000, np.random.default_rng(0))
    se = np.sqrt(p_fast * (1 - p_fast) / 2000)
    assert abs(p_loop - p_fast) < 4 * se + 1e-3


def test_reduced_simulation_behaviour(khan):
    scen = [s for s in khan.SCENARIOS if s[0] in ("null_item", "effect_0.10")]
    summary, reps = khan.run_simulation(n_replicates=150, scenarios=scen, khan_n_perm=500, n_perm=1000, n_boot=400)
    s = summary.set_index(["scenario", "quantity"])["value"]
    # robustalign's paired difference: unbiased, and its interval covers (loose bounds at 150 data sets)
    assert abs(s[("null_item", "bias of the paired difference")]) < 0.01
    assert abs(s[("effect_0.10", "bias of the paired difference")]) < 0.01
    assert s[("effect_0.10", "95% BCa interval covers the true effect")] > 0.85
    assert s[("null_item", "sign-flip p < 0.05")] < 0.12
    # WMD under no effect: the item-dependent failures make it exceed the human SD in most data sets
    assert s[("null_item", "WMD > 0.114 (their reading: exceeds human SD)")] > 0.4
    assert s[("null_item", "permutation p < 0.05")] > 0.08


def test_cross_check_with_assess_stability(khan):
    cc = khan.cross_check_assess_stability()
    assert cc["estimate"].iloc[0] == pytest.approx(cc["estimate"].iloc[1], abs=1e-12)
    assert cc["conf_low"].iloc[0] == pytest.approx(cc["conf_low"].iloc[1], abs=0.01)
    assert cc["verdict"].iloc[0] == cc["verdict"].iloc[1]
