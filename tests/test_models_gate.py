"""The convergence gate on draws with known convergence status (no sampler, seconds).

docs/bayesian.md, section 3: the reported parameters and small variables are judged scalar by scalar
(R-hat <= 1.01); a large table of effects by the share of its entries above 1.01 (at most 1%), a cap on
every entry (1.05) and the R-hat of its spread. These tests build draws whose truth is known (independent
chains from one distribution, or chains that are deliberately not converged) and check the verdicts.
Every scenario is built so that the verdict it asserts holds with a probability of failure far below
1e-6 for any seed (the margin is stated in each), so no test passes or fails by luck.
"""

from __future__ import annotations

import numpy as np
import pytest

from robustalign.models._sampling import GATE, diagnose, gate_message

CHAINS = 4


def _tree(post: dict[str, np.ndarray]):
    import arviz as az

    n_chains, n_draws = next(iter(post.values())).shape[:2]
    ss = {"diverging": np.zeros((n_chains, n_draws), bool)}
    return az.from_dict({"posterior": post, "sample_stats": ss})


def _posterior(rng: np.random.Generator, draws: int, shape=(20, 15)) -> dict[str, np.ndarray]:
    """Independent draws from one distribution in every chain: converged by construction."""
    return {"sd_item": 1.0 + 0.1 * rng.standard_normal((CHAINS, draws)),
            "mu_model": rng.standard_normal((CHAINS, draws, 5)),
            "model_item": rng.standard_normal((CHAINS, draws, *shape))}


def test_converged_chains_pass_and_the_table_rule_applies_to_tables_only():
    # 4 x 500 independent draws: ESS about 2,000 per scalar; measured on 2,000 such scalars at 4 x 1,000
    # draws, max split rank R-hat 1.003, and at 4 x 200 draws 0.7% of them above 1.01 (max 1.019)
    diag, overall = diagnose(_tree(_posterior(np.random.default_rng(0), 500)))
    rules = diag.set_index("variable")["rule"]
    assert rules.to_dict() == {"sd_item": "each", "mu_model": "each", "model_item": "table"}
    assert overall["converged"] and overall["rhat_passed"] and gate_message(overall) == ""
    assert overall["max_r_hat"] < GATE["max_r_hat"] and overall["max_spread_r_hat"] < GATE["max_r_hat"]
    row = diag.set_index("variable").loc["model_item"]
    assert row["n_scalars"] == 300 and row["share_r_hat_above"] <= GATE["table_max_share"]


def test_a_table_entry_above_1_01_passes_the_table_r_hat_rule_and_is_caught_by_ess():
    """One entry of a table with one chain's mean moved by 0.5 SD: split R-hat about 1.025 (sampling SD
    about 0.003 at 4 x 2,000 draws, both bounds 5 SDs away). The table's R-hat rule accepts it (one entry
    of 120 between 1.01 and 1.05), the same R-hat in a reported parameter fails; and the per-scalar ESS
    rule still fails the fit, because a persistent offset between chains costs bulk ESS: with 8 split
    chains, ESS is about 8 / (R-hat^2 - 1), about 160 here (docs/bayesian.md, section 3)."""
    post = _posterior(np.random.default_rng(1), 2000, shape=(12, 10))
    post["model_item"][0, :, 3, 4] += 0.5
    diag, overall = diagnose(_tree(post))
    row = diag.set_index("variable").loc["model_item"]
    assert GATE["max_r_hat"] < row["max_r_hat"] < GATE["table_max_r_hat"], row["max_r_hat"]
    assert overall["rhat_passed"] and "R-hat" not in gate_message(overall)
    assert row["min_ess_bulk"] < 300 and not overall["converged"] and "bulk ESS" in gate_message(overall)
    post["sd_model_item"] = post.pop("model_item")
    _, overall = diagnose(_tree(post))
    assert not overall["rhat_passed"] and "R-hat of the parameters" in gate_message(overall)


def test_one_chain_stuck_elsewhere_fails():
    """Chain 0 of every variable sits 3 SD away (a chain stuck in another mode): R-hat far above 1.05."""
    post = _posterior(np.random.default_rng(2), 400)
    for v in post:
        post[v][0] = post[v][0] * 0.05 + 3.0 * post[v].std()
    diag, overall = diagnose(_tree(post))
    assert not overall["converged"] and not overall["rhat_passed"]
    assert not diag["passed"].any()
    assert "R-hat of the parameters" in gate_message(overall)


def test_chains_started_far_apart_with_short_tuning_fail():
    """Each chain starts 5 SD from the others and drifts in with a time constant of 150 draws: the
    transient left after tuning moves the chain means of the hyperparameters apart (R-hat well above
    1.01) and the spread of the table differs between chains (its R-hat too)."""
    rng = np.random.default_rng(3)
    post = _posterior(rng, 400)
    start = np.array([-5.0, -2.0, 2.0, 5.0])[:, None] * np.exp(-np.arange(400) / 60.0)[None, :]
    post["sd_item"] = post["sd_item"] + 0.1 * start
    post["mu_model"] = post["mu_model"] + start[..., None]
    post["model_item"] = post["model_item"] * (1.0 + 0.5 * np.abs(start))[..., None, None]
    diag, overall = diagnose(_tree(post))
    d = diag.set_index("variable")
    assert not overall["converged"]
    assert d.loc["sd_item", "max_r_hat"] > 1.05 and d.loc["mu_model", "max_r_hat"] > 1.05
    assert d.loc["model_item", "spread_r_hat"] > 1.05 and not d.loc["model_item", "passed"]


def test_a_few_table_entries_not_mixing_fail_the_table():
    """3% of a table's entries have chain means 0.5 SD apart each (R-hat about 1.06): more than 1% of the
    entries above 1.01, and above the cap."""
    rng = np.random.default_rng(4)
    post = _posterior(rng, 400)
    tab = post["model_item"].reshape(CHAINS, 400, -1)
    bad = rng.choice(tab.shape[2], 9, replace=False)
    tab[:, :, bad] += np.array([-0.75, -0.25, 0.25, 0.75])[:, None, None]
    diag, overall = diagnose(_tree(post))
    row = diag.set_index("variable").loc["model_item"]
    assert row["share_r_hat_above"] >= 0.029 and row["max_r_hat"] > GATE["table_max_r_hat"]
    assert not overall["converged"]
    assert "table's entries" in gate_message(overall)


def test_a_single_table_entry_stuck_fails_on_the_cap():
    """One entry of 300 with one chain 2 SD away: the share rule alone (0.3%) would pass, the cap fails."""
    post = _posterior(np.random.default_rng(5), 400)
    post["model_item"][0, :, 7, 7] += 2.0
    diag, overall = diagnose(_tree(post))
    row = diag.set_index("variable").loc["model_item"]
    assert row["share_r_hat_above"] <= GATE["table_max_share"] and row["max_r_hat"] > GATE["table_max_r_hat"]
    assert not overall["converged"] and "table entry" in gate_message(overall)


def test_too_few_draws_fail_on_ess_whatever_the_r_hat():
    """tune=5/draws=20 in spirit: 2 chains x 20 independent draws cannot reach a bulk ESS of 400 (at most
    about 40 x 1.5 for antithetic chains)."""
    rng = np.random.default_rng(6)
    post = {k: v[:2, :20] for k, v in _posterior(rng, 20).items()}
    _, overall = diagnose(_tree(post))
    assert not overall["converged"] and overall["min_ess_bulk"] < 100
    assert "bulk ESS" in gate_message(overall)


@pytest.mark.parametrize("name", ["sd_model_item", "beta_format", "cutpoints_K4", "mu_group"])
def test_reported_parameters_are_judged_scalar_by_scalar_at_any_size(name):
    rng = np.random.default_rng(7)
    post = {name: rng.standard_normal((CHAINS, 100, 150))}
    diag, _ = diagnose(_tree(post))
    assert diag["rule"].tolist() == ["each"]


def _overall(**kw) -> dict:
    """A gate verdict that missed on R-hat alone, with fields overridden by ``kw``."""
    base = {"converged": False, "rhat_passed": False, "max_r_hat": 1.015, "min_ess_bulk": 650.0,
            "min_ess_tail": 600.0, "divergences": 0, "min_e_bfmi": 0.8}
    return base | kw


def test_only_a_fit_that_missed_on_r_hat_alone_is_extended():
    from robustalign.models._sampling import near_miss

    assert near_miss(_overall())
    assert near_miss(_overall(max_r_hat=GATE["table_max_r_hat"]))  # the cap itself is still a near miss
    assert near_miss(_overall(min_e_bfmi=float("nan")))  # a sampler without energy: not judged, as in the gate
    for bad in ({"converged": True, "rhat_passed": True}, {"max_r_hat": 1.0501}, {"min_ess_bulk": 399.0},
                {"min_ess_tail": 399.0}, {"divergences": 1}, {"min_e_bfmi": 0.29}, {"rhat_passed": True}):
        assert not near_miss(_overall(**bad)), bad
    # the real verdicts: converged draws are not extended; one stuck chain is not (it fails ESS too)
    rng = np.random.default_rng(3)
    _, ok = diagnose(_tree(_posterior(rng, 500)))
    assert ok["converged"] and not near_miss(ok)
    post = _posterior(rng, 500)
    post["mu_model"][0] += 3.0
    _, stuck = diagnose(_tree(post))
    assert not stuck["converged"] and not near_miss(stuck)


def test_chains_are_concatenated_in_every_group_with_new_numbers():
    from robustalign.models._sampling import concat_chains

    rng = np.random.default_rng(4)
    a, b = _tree(_posterior(rng, 30)), _tree(_posterior(rng, 30))
    a.attrs["robustalign_seed"] = 7
    both = concat_chains(a, b)
    post = both["posterior"]
    assert post.sizes["chain"] == 2 * CHAINS and post["chain"].values.tolist() == list(range(2 * CHAINS))
    assert np.array_equal(post["model_item"].values[:CHAINS], a["posterior"]["model_item"].values)
    assert np.array_equal(post["model_item"].values[CHAINS:], b["posterior"]["model_item"].values)
    assert both["sample_stats"].sizes["chain"] == 2 * CHAINS and both.attrs["robustalign_seed"] == 7
    # the gate judges all 8 chains: 8 x 30 draws of one distribution is as converged as it looks
    d8, _ = diagnose(both)
    assert (d8["min_ess_bulk"] > diagnose(a)[0]["min_ess_bulk"]).all()


def test_threads_change_no_number_of_the_gate():
    """Variables are judged in threads: one, two or five of them give the same numbers, bit for bit,
    and the same verdict (each variable's arithmetic does not depend on what runs beside it)."""
    import pandas as pd

    rng = np.random.default_rng(5)
    post = _posterior(rng, 200, shape=(30, 20))
    post["item_effect"] = rng.standard_normal((CHAINS, 200, 40)).cumsum(axis=1)  # not converged: NaN-free, slow
    post["beta_format"] = np.broadcast_to(rng.standard_normal(3), (CHAINS, 200, 3)).copy()  # constant entries
    runs = [diagnose(_tree(post), workers=w) for w in (1, 2, 5)]
    for diag, overall in runs[1:]:
        pd.testing.assert_frame_equal(diag, runs[0][0], check_exact=True)
        assert overall.keys() == runs[0][1].keys()
        for k, v in overall.items():
            assert v == runs[0][1][k] or (np.isnan(v) and np.isnan(runs[0][1][k])), k
    assert not runs[0][1]["converged"] and runs[0][0]["variable"].tolist() == list(post)
