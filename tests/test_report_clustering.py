"""E4 (cluster agreement) in the audit report, and the design file's [cluster_agreement] and [association].

The report's numbers are compared with :func:`assess_cluster_agreement` called on a table this test builds
itself from the raw answers and shares (mean answer position rescaled to [0, 1], computed here, not by the
report code); design-file errors must name the file, the key, the value and the fix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustalign._errors import RobustAlignError, SchemaError
from robustalign.claims.clustering import assess_cluster_agreement
from robustalign.report import run_audit
from robustalign.report.design import AuditDesign, load_design
from robustalign.resampling import keyed_stream
from robustalign.schema import make_reference, make_responses

K = 5
DIMS = {"A": [f"a{i}" for i in range(6)], "B": [f"b{i}" for i in range(6)]}
CA = {"evaluated": ["A"], "held_out": ["B"], "k": 3}


def _probs(latent: np.ndarray) -> np.ndarray:
    """Ordered-logit answer probabilities on K options (cutpoints -1.5, -0.5, 0.5, 1.5)."""
    cum = 1 / (1 + np.exp(-(np.array([-1.5, -0.5, 0.5, 1.5]) - latent[..., None])))
    cdf = np.concatenate([np.zeros(latent.shape + (1,)), cum, np.ones(latent.shape + (1,))], -1)
    return np.diff(cdf, axis=-1)[..., ::-1]  # higher latent, higher option


def _world(n_groups=12, n_models=9, seed=0, models_shared=False, n_samples=8):
    """Humans in 3 clusters that hold on both dimensions; models clustered on A, independent on B unless
    ``models_shared``. Returns (responses table, reference table, scales table)."""
    gen = np.random.default_rng(seed)
    items = [i for v in DIMS.values() for i in v]
    centres = np.array([-1.5, 0.0, 1.5])

    def scores(n, shared):
        c = np.arange(n) % 3
        a = centres[c] + gen.normal(0, 0.25, n)
        b = (centres[c] if shared else centres[gen.permutation(c)]) + gen.normal(0, 0.25, n)
        return np.column_stack([a, b])

    item_eff = gen.normal(0, 0.3, len(items))
    dim_of = np.array([0 if i.startswith("a") else 1 for i in items])
    H = scores(n_groups, True)
    ref_rows = []
    for g in range(n_groups):
        p = _probs(H[g, dim_of] + item_eff + gen.normal(0, 0.2, len(items)))
        ref_rows += [(it, f"G{g:02d}", str(k + 1), round(float(p[j, k]), 6), 500)
                     for j, it in enumerate(items) for k in range(K)]
    M = scores(n_models, models_shared)
    resp_rows = []
    for m in range(n_models):
        p = _probs(M[m, dim_of] + item_eff + gen.normal(0, 0.2, len(items)))
        for j, it in enumerate(items):
            for s, a in enumerate(gen.choice(K, size=n_samples, p=p[j] / p[j].sum())):
                resp_rows.append((f"m{m}", it, s, str(a + 1)))
    resp = pd.DataFrame(resp_rows, columns=["model", "item", "sample", "answer"])
    ref = pd.DataFrame(ref_rows, columns=["item", "group", "option", "share", "n"])
    scales = pd.DataFrame({"item": items, "options": "|".join(map(str, range(1, K + 1))),
                           "labels": "|".join(f"o{k}" for k in range(1, K + 1)), "ordinal": True})
    return resp, ref, scales


@pytest.fixture(scope="module")
def world():
    resp, ref_t, scales = _world()
    ref = make_reference(ref_t, scales)
    return resp, ref_t, scales, make_responses(resp, ref), ref


def _design(**ca):
    return {"domains": {"map": {i: d for d, v in DIMS.items() for i in v}}, "metrics": ["js"],
            "stability": {"enabled": False}, "extrapolability": {"enabled": False},
            "cluster_agreement": {**CA, **ca}}


def _independent_table(resp: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """E4's input written out here: mean position / (K - 1) per unit x item, humans from shares."""
    r = resp.assign(value=(resp["answer"].astype(int) - 1) / (K - 1))
    models = r.groupby(["model", "item"], as_index=False)["value"].mean().rename(columns={"model": "unit"})
    share = ref["share"] / ref.groupby(["group", "item"])["share"].transform("sum")  # rounded shares, renormalised
    h = ref.assign(value=share * (ref["option"].astype(int) - 1) / (K - 1))
    human = h.groupby(["group", "item"], as_index=False)["value"].sum().rename(columns={"group": "unit"})
    out = pd.concat([human.assign(source="human"), models.assign(source="models")], ignore_index=True)
    out["dimension"] = out["item"].str[0].str.upper()
    return out


def test_section_numbers_equal_the_direct_call(world):
    resp_t, ref_t, _, resp, ref = world
    rep = run_audit(resp, ref, design=_design(), rng=5, n_resamples=120, n_permutations=199)
    sec = rep.section("cluster_agreement")
    assert sec.title.startswith("E4: cluster agreement")
    direct = assess_cluster_agreement(_independent_table(resp_t, ref_t), unit="unit", by="source",
                                      reference="human", n_resamples=120, n_permutations=199,
                                      rng=keyed_stream(5, "cluster_agreement"), **CA)
    want = direct.to_frame().set_index(["group", "quantity"])
    got = rep.tables["cluster_agreement"].set_index(["clustered", "quantity"])
    assert len(got) == 3  # two kinds of unit and the models - human difference
    for key in want.index:
        for col in ("estimate", "conf_low", "conf_high", "p_value", "p_adjusted", "silhouette_held_out"):
            if np.isfinite(want.loc[key, col]):
                assert got.loc[key, col] == pytest.approx(want.loc[key, col], rel=1e-9, abs=1e-12), (key, col)
    # the known structure: humans' clusters carry over (supported), the models' held-out clusters were shuffled
    v = rep.verdicts.query("assessment == 'cluster agreement (E4)'").set_index("unit")
    assert v.loc["human", "verdict"] == "supported"
    assert v.loc["models", "verdict"] != "supported"
    assert v.loc["human", "estimate"] == pytest.approx(want.loc[("human", "ARI evaluated vs held-out clustering"),
                                                               "estimate"])
    assert list(direct.verdicts["verdict"]) == [v.loc["human", "verdict"], v.loc["models", "verdict"]]
    clusters = rep.tables["cluster_agreement_clusters"]
    assert len(clusters) == 12 + 9 and set(clusters["clustered"]) == {"human", "models"}


def test_report_writes_the_section_tables_and_verdicts(world, tmp_path):
    _, _, _, resp, ref = world
    rep = run_audit(resp, ref, design=_design(units=["human"]), rng=1, n_resamples=40, n_permutations=99)
    part = rep.parts[0]  # written alone: the other sections' figures take half a minute to draw
    part.sections = [s for s in part.sections if s.key == "cluster_agreement"]
    out = rep.write(tmp_path / "out")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "E4: cluster agreement on evaluated vs held-out dimensions" in html
    v = pd.read_csv(out / "verdicts.csv").query("assessment == 'cluster agreement (E4)'")
    assert v["unit"].tolist() == ["human"]
    t = pd.read_csv(out / "cluster_agreement.csv")
    assert t["clustered"].tolist() == ["human"] and {"conf_low", "conf_high", "p_value"} <= set(t.columns)


def test_not_run_without_the_design_key_and_kinds_with_too_few_units(world):
    _, _, _, resp, ref = world
    d = _design()
    del d["cluster_agreement"]
    rep = run_audit(resp, ref, design=d, rng=1, n_resamples=20, n_permutations=19)
    assert "[cluster_agreement]" in dict(rep.parts[0].not_run)["cluster agreement (E4)"]
    # k = 5 needs 10 units: the 9 models are left out (said in a note), the 12 groups are clustered
    rep = run_audit(resp, ref, design=_design(k=5), rng=1, n_resamples=20, n_permutations=19)
    sec = rep.section("cluster_agreement")
    assert sec.tables["cluster_agreement"]["clustered"].tolist() == ["human"]
    assert any("the models (9 units) were not clustered" in n for n in sec.notes)
    with pytest.raises(RobustAlignError, match=r"units = \['models'\].*9 units.*at least 10.*Fix"):
        run_audit(resp, ref, design=_design(k=5, units=["models"]), rng=1, n_resamples=20, n_permutations=19)


def test_models_alone_need_no_reference_and_reverse_items_are_recoded(world):
    resp_t, ref_t, scales, _, ref = world
    from robustalign.schema import make_scales

    resp = make_responses(resp_t, None, scales=make_scales(scales))
    rep = run_audit(resp, None, design=_design(units=["models"]), rng=2, n_resamples=30, n_permutations=99)
    got = rep.tables["cluster_agreement"]
    tab = _independent_table(resp_t, ref_t).query("source == 'models'")
    want = assess_cluster_agreement(tab, unit="unit", n_resamples=0, n_permutations=99, rng=0, **CA).to_frame()
    assert got["estimate"].iloc[0] == pytest.approx(want["estimate"].iloc[0], rel=1e-12)
    with pytest.raises(RobustAlignError, match="'human', which needs a human reference.*--reference"):
        run_audit(resp, None, design=_design(units=["human"]), rng=2, n_resamples=30, n_permutations=99)
    # reversing every item of the held-out dimension mirrors its scores: Ward clusters, hence the ARI, unchanged;
    # reversing half of them breaks the dimension (its items now cancel), so the clustering changes
    def ari(rev):
        sec = run_audit(resp, None, design=_design(units=["models"], reverse=rev), rng=2, n_resamples=10,
                        n_permutations=19).section("cluster_agreement")
        assert any("1 - position" in n and rev[0] in n for n in sec.notes)
        return sec.tables["cluster_agreement"]["estimate"].iloc[0]

    assert ari(DIMS["B"]) == pytest.approx(got["estimate"].iloc[0], rel=1e-12)
    half = DIMS["A"][:3]
    t = tab.assign(value=np.where(tab["item"].isin(half), 1 - tab["value"], tab["value"]))
    want_half = assess_cluster_agreement(t, unit="unit", n_resamples=0, n_permutations=19, rng=0, **CA).to_frame()
    assert ari(half) == pytest.approx(want_half["estimate"].iloc[0], rel=1e-12)


@pytest.mark.parametrize("ca, pattern", [
    ({"k": "3"}, r"\[cluster_agreement\] `k` must be a whole number \(e\.g\. k = 3\); got '3'.*Fix"),
    ({"k": 1}, r"\[cluster_agreement\] k` must be an integer >= 2; got 1"),
    ({"held_out": ["A"]}, r"dimensions \['A'\] are both evaluated and held out.*Fix"),
    ({"units": ["countries"]}, r"`units` must be drawn from \['human', 'models'\].*got \['countries'\].*Fix"),
    ({"units": ["models"], "reference": "human"}, r"`reference` must be one of the units clustered"),
    ({"evaluated": 3}, r"\[cluster_agreement\] `evaluated` must be a text or a list of texts.*got 3"),
    ({"min_ari": 2}, r"`min_ari` must be in \(-1, 1\] \(an adjusted Rand index\); got 2.*Fix"),
    ({"models_by": ["model"]}, r"`models_by`.*'model' is always one"),
    ({"colour": "red"}, r"unknown keys \['colour'\] in \[cluster_agreement\]"),
])
def test_design_keys_are_type_checked(ca, pattern):
    with pytest.raises(RobustAlignError, match=pattern) as e:
        AuditDesign.from_dict(_design(**ca), source="d.toml")
    assert "design file 'd.toml'" in str(e.value)


def test_design_needs_split_k_and_domains():
    d = _design()
    del d["cluster_agreement"]["k"]
    with pytest.raises(RobustAlignError, match=r"needs keys \['k'\].*fixed before the data are seen.*Fix"):
        AuditDesign.from_dict(d)
    d = _design()
    del d["domains"]
    with pytest.raises(RobustAlignError, match=r"no item is mapped to one.*Fix: add \[domains\]"):
        AuditDesign.from_dict(d)
    assert AuditDesign.from_dict({"cluster_agreement": {"enabled": False}}).cluster_agreement == {"enabled": False}


def test_data_errors_name_the_key_value_and_fix(world):
    resp_t, ref_t, scales, resp, ref = world
    with pytest.raises(RobustAlignError, match=r"dimensions \['C'\] are not dimensions of the items.*'A', 'B'.*Fix"):
        run_audit(resp, ref, design=_design(held_out=["C"]), rng=1, n_resamples=10, n_permutations=19)
    with pytest.raises(RobustAlignError, match=r"\[cluster_agreement\] reverse entry = 'zz' is not an item"):
        AuditDesign.from_dict(_design(reverse=["zz"])).check_data(resp, ref)
    with pytest.raises(RobustAlignError, match=r"models_by entry = 'language' is not a design factor"):
        AuditDesign.from_dict(_design(models_by=["language"])).check_data(resp, ref)
    # a model that answered no item of the held-out dimension: stopped, with the units and the fix
    partial = make_responses(resp_t[~((resp_t["model"] == "m3") & resp_t["item"].str.startswith("b"))], ref)
    with pytest.raises(SchemaError, match=r"units \['m3'\] have no value on dimension 'B'.*Fix: choose"):
        run_audit(partial, ref, design=_design(), rng=1, n_resamples=10, n_permutations=19)


def test_association_keys_and_relative_path(tmp_path):
    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "design.toml"
    p.write_text('[association]\nfile = "refusals.csv"\ngroup = "C01"\nexpect = "negative"\n', encoding="utf-8")
    d = load_design(p)
    assert d.association == {"file": str(tmp_path / "sub" / "refusals.csv"), "group": "C01", "expect": "negative"}
    for body, pattern in [('expect = "up"\nfile = "x.csv"', r"`expect` must be 'positive' or 'negative'.*got 'up'"),
                          ('group = "C01"', r"\[association\] needs `file`.*Fix"),
                          ("file = 3", r"\[association\] `file` must be a text in quotes.*got 3.*Fix"),
                          ('file = "x.csv"\nsign = "+"', r"unknown keys \['sign'\] in \[association\]")]:
        p.write_text(f"[association]\n{body}\n", encoding="utf-8")
        with pytest.raises(RobustAlignError, match=pattern) as e:
            load_design(p)
        assert "design.toml" in str(e.value)


def _files(tmp_path, world):
    resp_t, ref_t, scales, _, _ = world
    for name, t in (("r.csv", resp_t), ("h.csv", ref_t), ("s.csv", scales)):
        t.to_csv(tmp_path / name, index=False)
    gen = np.random.default_rng(4)
    pd.DataFrame([(f"m{m}", f"p{i}", int(gen.random() < 0.3)) for m in range(9) for i in range(15)],
                 columns=["model", "item", "value"]).to_csv(tmp_path / "refusals.csv", index=False)
    return ["audit", str(tmp_path / "r.csv"), "--reference", str(tmp_path / "h.csv"), "--scales",
            str(tmp_path / "s.csv"), "--n-resamples", "30", "--n-permutations", "49", "--seed", "0", "--quiet"]


def _toml(d: dict) -> str:
    # brier: estimable from the fixture's 8 answers per cell (JS needs 10)
    out = ['metrics = ["brier"]', "[stability]", "enabled = false", "[extrapolability]", "enabled = false",
           "[domains.map]", *[f'{i} = "{dim}"' for dim, v in DIMS.items() for i in v]]
    for sec, keys in d.items():
        out.append(f"[{sec}]")
        out += [f"{k} = {v!r}".replace("'", '"') for k, v in keys.items()]
    return "\n".join(out) + "\n"


def test_cli_design_file_adds_e4_and_the_association(tmp_path, world, capsys):
    from robustalign.cli import main

    base = _files(tmp_path, world)
    (tmp_path / "cfg").mkdir()
    design = tmp_path / "cfg" / "design.toml"
    design.write_text(_toml({"cluster_agreement": CA, "association": {"file": "../refusals.csv", "group": "G00"}}),
                      encoding="utf-8")
    assert main([*base, "--design", str(design)]) == 0
    out = capsys.readouterr().out
    assert "cluster agreement (E4): human:" in out and "cluster agreement (E4): models:" in out
    assert "association: 'cultural_fit and refusals are correlated" in out  # file relative to the design file
    # the command-line flag wins over the design file's entry: a malformed flag file is the one read
    bad = pd.read_csv(tmp_path / "refusals.csv", dtype=str)
    bad.loc[3, "value"] = "yes"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    assert main([*base, "--design", str(design), "--association", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "column 'value'" in err and "lines [5]" in err and "Fix" in err
    # the design's file, malformed: the same checks and message
    design.write_text(_toml({"association": {"file": "../bad.csv", "group": "G00"}}), encoding="utf-8")
    assert main([*base, "--design", str(design)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "column 'value'" in err and "lines [5]" in err
    # the design's group is checked against the reference before the audit runs
    design.write_text(_toml({"association": {"file": "../refusals.csv", "group": "XX"}}), encoding="utf-8")
    assert main([*base, "--design", str(design)]) == 2
    assert "[association] group = 'XX' is not a group of the reference" in capsys.readouterr().err
    # without a reference the design's association is refused, naming the design file's key
    design.write_text(_toml({"association": {"file": "../refusals.csv"}}), encoding="utf-8")
    noref = [a for a in base if a not in ("--reference", str(tmp_path / "h.csv"))]
    assert main([*noref, "--design", str(design)]) == 2
    err = capsys.readouterr().err
    assert "design file 'design.toml': [association] file" in err and "needs a human reference" in err


def test_cli_refuses_a_design_association_for_forced_choices(tmp_path, capsys):
    from robustalign.cli import main

    path = tmp_path / "choices.csv"
    pd.DataFrame({"model": "m", "outcome_a": ["x", "y"], "outcome_b": ["y", "x"], "order": "a_first",
                  "choice": "a"}).to_csv(path, index=False)
    design = tmp_path / "design.toml"
    design.write_text('[association]\nfile = "refusals.csv"\n', encoding="utf-8")
    assert main(["audit", str(path), "--design", str(design), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "design file 'design.toml': [association] does not apply" in err and "Fix" in err
