"""Stability: per-unit streams, extra factors, nominal items, one-level models, no stray warnings."""

import warnings

import numpy as np
import pandas as pd
import pytest

from robustalign.claims import assess_stability
from robustalign.schema import Scale, make_responses
from robustalign.simulate import simulate

SKIP = ("agreement", "ranking", "validity")


def test_a_units_numbers_do_not_depend_on_other_units():
    sim = simulate(n_models=3, n_items=25, factors={"template": 3}, n_orders=1, n_samples=3, rng=5)
    resp, _ = sim.load()
    kw = dict(factors=["template"], margin=0.1, n_resamples=200, n_permutations=200, rng=11, skip=SKIP)
    full = assess_stability(resp, **kw).to_frame()
    models = resp.models
    part = assess_stability(resp.subset(models=[models[1], models[2]]), **kw).to_frame()
    q = ["factor_effect", "flip_rate_mean", "flip_noise_floor", "item_level_sd", "level_difference"]
    cols = ["quantity", "model", "level_a", "level_b", "estimate", "conf_low", "conf_high", "p_value"]
    a = full[full["quantity"].isin(q) & (full["model"] == models[2])][cols].reset_index(drop=True)
    b = part[part["quantity"].isin(q) & (part["model"] == models[2])][cols].reset_index(drop=True)
    assert len(a) >= 5
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("n_resp", [50, 100, 150, 200])
def test_effects_with_an_extra_factor_are_finite_and_match_level_means(n_resp):
    """Complete blocks with many respondents: the SD of the level effects is the SD of the level means
    (each item weighted 1), computed here directly."""
    g = np.random.default_rng(n_resp)
    items, levels = [f"q{i}" for i in range(12)], ["t0", "t1", "t2"]
    rows = [(it, lv, f"r{k}", int(g.integers(1, 5))) for it in items for lv in levels for k in range(n_resp // 10)]
    d = pd.DataFrame(rows, columns=["item", "template", "respondent", "answer_position"]).assign(model="m")
    resp = make_responses(d, scales={i: Scale(("1", "2", "3", "4"), ("a", "b", "c", "d"), True) for i in items})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = assess_stability(resp, factors=["template"], margin=0.1, n_resamples=100, n_permutations=100, rng=0,
                               skip=SKIP + ("pairwise", "retest", "noise_floor", "item_level"))
    pos = (d["answer_position"] - 1) / 3
    lm = d.assign(pos=pos).groupby(["template", "item"])["pos"].mean().groupby("template").mean()
    assert res.verdicts["estimate"].item() == pytest.approx(np.std(lm.to_numpy(), ddof=1), rel=1e-9)
    assert np.isfinite(res.evidence["effects"][0]["p_value"])


def test_nominal_items_reach_a_flip_verdict():
    g = np.random.default_rng(1)
    items = [f"q{i}" for i in range(30)]
    rows = [("m", it, lv, s, int(g.integers(1, 4))) for it in items for lv in ("a", "b") for s in range(10)]
    d = pd.DataFrame(rows, columns=["model", "item", "fmt", "sample", "answer_position"])
    scales = {i: Scale(("x", "y", "z"), ("x", "y", "z"), False) for i in items}
    res = assess_stability(make_responses(d, scales=scales), flip_margin=0.5, n_resamples=200, n_permutations=200,
                           rng=0, skip=SKIP)
    v = res.verdicts.iloc[0]
    assert "(0 items)" not in v["reason"] and "too few items" not in v["reason"]
    assert "noise floor" in v["reason"] and v["verdict"] == "supported"


def test_a_model_at_one_level_only_is_named_as_such():
    g = np.random.default_rng(2)
    rows = [("m1", f"q{i}", lv, int(g.integers(1, 5))) for i in range(10) for lv in ("a", "b")]
    rows += [("m2", f"q{i}", "a", int(g.integers(1, 5))) for i in range(10)]
    d = pd.DataFrame(rows, columns=["model", "item", "fmt", "answer_position"])
    scales = {f"q{i}": Scale(("1", "2", "3", "4"), ("a", "b", "c", "d"), True) for i in range(10)}
    res = assess_stability(make_responses(d, scales=scales), margin=0.1, n_resamples=100, n_permutations=100, rng=0,
                           skip=SKIP)
    r = res.verdicts.set_index("model").loc["m2", "reason"]
    assert "one level only" in r and "(0 items)" not in r


def test_no_runtime_warnings_reach_the_user():
    sim = simulate(n_models=2, n_items=15, factors={"template": 3}, n_orders=2, n_samples=2, rng=3)
    resp, ref = sim.load()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = assess_stability(resp, ref, n_resamples=100, n_permutations=100, rng=0)
        res.to_frame()


def test_audit_rank_table_is_in_numeric_order():
    from robustalign.report import run_audit

    sim = simulate(n_models=12, n_items=10, n_groups=2, n_orders=1, n_samples=1, rng=4)
    resp, ref = sim.load()
    rep = run_audit(resp, ref, design={"stability": {"enabled": False}, "metrics": ["js"]}, n_resamples=30,
                    n_permutations=30, rng=0)
    sec = rep.section("alignment")
    tab = next(t for title, t in sec.display if title.startswith("Ranks"))
    for _, g in tab.groupby("group", sort=False):
        ranks = [int(x.split(" ")[0]) for x in g["rank [interval]"]]
        assert ranks == sorted(ranks) and max(ranks) >= 10


def test_factor_effect_plot_draws_an_sd_against_zero_to_margin():
    import matplotlib

    matplotlib.use("Agg")
    sim = simulate(n_models=2, n_items=15, factors={"template": 3}, n_orders=1, n_samples=1, rng=6)
    resp, _ = sim.load()
    res = assess_stability(resp, margin=0.05, n_resamples=50, n_permutations=50, rng=0,
                           skip=SKIP + ("pairwise", "retest"))
    ax = res.plot()
    assert ax.get_xlim()[0] >= 0  # an SD across levels is never negative
    from matplotlib.collections import PolyCollection

    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    for poly in bands:  # the margin bands: [0, margin], not +-margin
        xs = np.concatenate([p.vertices[:, 0] for p in poly.get_paths()])
        assert xs.min() == pytest.approx(0) and xs.max() == pytest.approx(0.05)


def test_progress_is_called_once_per_unit_and_factor_and_changes_no_number():
    resp, _ = simulate(n_models=2, n_items=8, factors={"template": 2, "format": 2}, n_orders=1, n_samples=2,
                       rng=3).load()
    kw = dict(margin=0.1, n_resamples=50, n_permutations=50, rng=1, skip=SKIP)
    seen = []
    with_progress = assess_stability(resp, progress=seen.append, **kw).to_frame()
    steps = [s for s in seen if s.endswith("/4)")]  # the line of each unit x factor
    assert len(steps) == 4 and steps[-1].endswith("(4/4)") and all(s.startswith("stability: model ") for s in steps)
    assert sum(s.startswith("stability: test-retest") for s in seen) == 1  # parts over all units are announced
    assert all(s.startswith("stability: ") for s in seen)
    pd.testing.assert_frame_equal(with_progress, assess_stability(resp, **kw).to_frame())


def test_retest_flip_of_each_cell_is_the_mean_over_its_pairs_of_answers():
    """Cells of unequal size (dropped answers): each cell's test-retest flip and shift are the means over all
    pairs of its answers of 'modal answers differ' and |position difference|, counted here pair by pair."""
    resp, _ = simulate(n_models=2, n_items=6, factors={"template": 2}, n_orders=1, n_samples=4, rng=8).load()
    d = resp.data
    resp.data = d[~((d["sample"] == 3) & (d["item"] == resp.items[0]))].reset_index(drop=True)  # 3 answers there
    res = assess_stability(resp, margin=0.1, n_resamples=20, n_permutations=20, rng=0,
                           skip=("agreement", "ranking", "validity", "pairwise", "noise_floor", "item_level"))
    cells = res.evidence["retest"]["cells"]
    K = {i: s.K for i, s in resp.scales.items()}
    for _, c in cells.iterrows():
        rows = resp.data[(resp.data["model"] == c["model"]) & (resp.data["item"] == c["item"])
                         & (resp.data["template"] == c["template"])]
        opts = [resp.scales[c["item"]].index(o) for o in rows["option"]]
        pairs = [(a, b) for n, a in enumerate(opts) for b in opts[n + 1:]]
        assert np.isclose(c["flip"], np.mean([a != b for a, b in pairs]), rtol=1e-12)
        assert np.isclose(c["shift"], np.mean([abs(a - b) / (K[c["item"]] - 1) for a, b in pairs]), rtol=1e-12)
    assert {3, 4} <= set(rows_per_cell := resp.data.groupby(["model", "item", "template"]).size()) and len(cells) == len(
        rows_per_cell)


def test_long_null_draws_report_progress_and_change_no_number(monkeypatch):
    from robustalign.claims import stability
    from robustalign.resampling import stability_nulls

    monkeypatch.setattr(stability_nulls, "CHUNK_CELLS", 1)  # one draw per chunk
    monkeypatch.setattr(stability, "TICK_S", 0.0)  # every chunk counts as long
    resp, _ = simulate(n_models=2, n_items=8, factors={"template": 2}, n_orders=1, n_samples=3, rng=4).load()
    kw = dict(margin=0.1, n_resamples=50, n_permutations=40, rng=2, skip=SKIP)
    seen = []
    with_ticks = assess_stability(resp, progress=seen.append, **kw).to_frame()
    ticks = [s for s in seen if s.endswith(" null draws")]
    assert len(ticks) == 2 * 39  # after every chunk but the last, per model
    assert ticks[0] == "stability: model " + resp.models[0] + ", factor template (1/2): 1 of 40 null draws"
    pd.testing.assert_frame_equal(with_ticks, assess_stability(resp, **kw).to_frame())


def test_noise_floor_and_item_level_share_draws_but_neither_depends_on_the_other_being_computed():
    resp, _ = simulate(n_models=2, n_items=10, factors={"template": 3}, n_orders=1, n_samples=4, rng=6).load()
    kw = dict(margin=0.1, n_resamples=50, n_permutations=300, rng=8)
    both = assess_stability(resp, skip=SKIP, **kw).evidence
    floor_only = assess_stability(resp, skip=SKIP + ("item_level",), **kw).evidence
    item_only = assess_stability(resp, skip=SKIP + ("noise_floor",), **kw).evidence
    for a, f, i in zip(both["noise_floors"], floor_only["noise_floors"], both["item_level"]):
        assert a is not None and i is not None
        np.testing.assert_array_equal(a["null"], f["null"])
    for a, i in zip(both["item_level"], item_only["item_level"]):
        assert (a["p_value"], a["null_mean"], a["tau2"]) == (i["p_value"], i["null_mean"], i["tau2"])
    assert all(f is None for f in item_only["noise_floors"])
