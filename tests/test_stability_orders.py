"""Orders given as labels, and the reference-free audit of an order experiment (CLI end to end)."""

import pandas as pd
import pytest
from _order_sim import ORDER_MAP, simulate_order_experiment

from robustalign import SchemaError
from robustalign.cli import main
from robustalign.schema import make_responses, make_scales


def _data(**kw):
    return simulate_order_experiment({"m1": dict(primacy=1.0), "m2": {}}, **kw)


def test_order_labels_map_shown_positions_to_canonical_options_for_items_of_different_sizes():
    r, sc, _ = _data(n_items=10, n_samples=2, rng=1)
    resp = make_responses(r, scales=make_scales(sc), order_column="order", order_map=ORDER_MAP)
    d = resp.data
    K = d["item"].map(dict(zip(sc["item"], sc["options"].str.count(r"\|") + 1)))
    assert set(K) == {4, 5}
    # reversed: shown position j is canonical K + 1 - j (written out here, independently of the code)
    want = [str(k + 1 - j) if o == "reversed" else str(j) for k, j, o in zip(K, r["answer_position"], r["order"])]
    assert d["option"].tolist() == want
    assert "order" in resp.factors and "option_order" not in resp.factors
    assert sorted(d["order"].unique()) == ["original", "reversed"]  # one factor, two levels, whatever K


def test_order_map_per_number_of_options_and_clear_errors():
    r, sc, _ = _data(n_items=6, n_samples=1, rng=2)
    scales = make_scales(sc)
    per_k = {"original": "identity", "reversed": {"4": [4, 3, 2, 1], 5: [5, 4, 3, 2, 1]}}
    a = make_responses(r, scales=scales, order_column="order", order_map=per_k)
    b = make_responses(r, scales=scales, order_column="order", order_map=ORDER_MAP)
    assert a.data["option"].tolist() == b.data["option"].tolist()
    with pytest.raises(SchemaError, match=r"no permutation for items with 5 options"):
        make_responses(r, scales=scales, order_column="order", order_map={"original": "identity",
                                                                          "reversed": {4: [4, 3, 2, 1]}})
    with pytest.raises(SchemaError, match=r"labels \['reversed'\].*not in the order map"):
        make_responses(r, scales=scales, order_column="order", order_map={"original": "identity"})
    with pytest.raises(SchemaError, match=r"permutation of 1..[45]"):
        make_responses(r, scales=scales, order_column="order",
                       order_map={"original": "identity", "reversed": {4: [4, 4, 2, 1], 5: "x"}})
    with pytest.raises(SchemaError, match=r"`order_map`"):
        make_responses(r, scales=scales, order_column="order")


def _write(tmp_path, design: str, **kw):
    r, sc, truth = _data(**kw)
    r.to_csv(tmp_path / "r.csv", index=False)
    sc.to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "d.toml").write_text(design)
    return truth


DESIGN = """seed = 3
[stability]
margin = 0.1
skip = ["agreement", "ranking"]
[orders]
column = "order"
map = { original = "identity", reversed = "reverse" }
"""


def test_cli_audits_an_order_experiment_without_a_reference(tmp_path, capsys):
    _write(tmp_path, DESIGN, n_items=40, n_samples=20, rng=4)
    out = tmp_path / "out"
    code = main(["audit", str(tmp_path / "r.csv"), "--scales", str(tmp_path / "s.csv"), "--design",
                 str(tmp_path / "d.toml"), "--out", str(out), "--n-resamples", "200", "--n-permutations", "200",
                 "--quiet"])
    assert code == 0
    stab = pd.read_csv(out / "stability.csv")
    fe = stab[stab["quantity"] == "factor_effect"]
    assert sorted(fe["model"]) == ["m1", "m2"] and set(fe["factor"]) == {"order"}
    assert fe["estimate"].notna().all() and (fe["n_items"] == 40).all()
    text = capsys.readouterr().out
    assert "No human reference" in text and "(0 items)" not in text and "too few items" not in text
    # verdicts reached: m1 (primacy bias, true content-order effect about 0.2) does not hold, m2 (no
    # effect) holds
    v = pd.read_csv(out / "verdicts.csv").set_index("unit")["verdict"]
    assert v["m1 / order"] == "not supported" and v["m2 / order"] == "supported", v
    assert {"position_bias", "flip_noise_floor", "item_level_sd"} <= set(stab["quantity"])
    assert (out / "figures" / "stability_position_bias.png").is_file()


def test_reference_free_without_margin_files_a_detected_effect_as_not_holding():
    r, sc, _ = _data(n_items=30, n_samples=20, rng=6)
    resp = make_responses(r, scales=make_scales(sc), order_column="order", order_map=ORDER_MAP)
    from robustalign.claims import assess_stability

    res = assess_stability(resp, n_resamples=200, n_permutations=200, rng=0,
                           skip=("agreement", "ranking", "pairwise", "retest"))
    v = res.verdicts.set_index("model")
    assert v.loc["m1", "verdict"] == "not supported" and "change detectably" in v.loc["m1", "reason"]
    assert v.loc["m2", "verdict"] == "inconclusive" and "pass `margin=`" in v.loc["m2", "reason"]


def test_design_file_rejects_bad_order_and_margin_keys(tmp_path):
    from robustalign.report import load_design

    for bad, msg in (('[orders]\ncolumn = "order"\n', "needs both"),
                     ('[orders]\ncolumn = "order"\nmap = { a = "sideways" }\n', "map entry 'a'"),
                     ("[stability]\nflip_margin = 1.5\n", "flip_margin"),
                     ('[stability]\nmargin = "big"\n', "margin")):
        (tmp_path / "d.toml").write_text(bad)
        with pytest.raises(Exception, match=msg):
            load_design(tmp_path / "d.toml")
