"""`robustalign audit` on the other claim kinds: forced-choice tables, scored (correct / wrong) tables and
``--association FILE`` (a per-model measure correlated with cultural fit), end to end on small files.

Verdicts are read back from the written ``verdicts.csv`` and compared with the library call on the same
data and seed; malformed files must name the file, the column, the line and the fix.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from robustalign.cli import main


def _pairs(path, reps=6):
    gen = np.random.default_rng(3)
    u = {"apples": 1.5, "bread": 0.0, "cheese": -1.5}
    rows = []
    for a, b in combinations(u, 2):
        for r in range(reps):
            first = "a_first" if r % 2 == 0 else "b_first"
            rows.append(("m1", a, b, first, "a" if gen.random() < 1 / (1 + np.exp(u[b] - u[a])) else "b"))
    pd.DataFrame(rows, columns=["model", "outcome_a", "outcome_b", "order", "choice"]).to_csv(path, index=False)
    return path


def test_forced_choice_table_gets_the_preferences_report(tmp_path, capsys):
    from robustalign.claims.preferences import assess_preferences

    path = _pairs(tmp_path / "choices.csv")
    out = tmp_path / "out"
    assert main(["audit", str(path), "--n-resamples", "60", "--n-permutations", "99", "--seed", "4",
                 "--out", str(out), "--quiet"]) == 0
    v = pd.read_csv(out / "verdicts.csv")
    assert set(v["assessment"]) == {"preferences"}
    lib = assess_preferences(path, n_resamples=60, n_permutations=99, rng=4).verdicts
    assert sorted(v["verdict"]) == sorted(lib["verdict"])
    assert (out / "preferences.csv").exists() or any(p.name.startswith("preferences") for p in out.iterdir())


def test_forced_choice_table_refuses_a_reference_and_names_bad_values(tmp_path, capsys):
    path = _pairs(tmp_path / "choices.csv")
    assert main(["audit", str(path), "--reference", str(path), "--quiet"]) == 2
    assert "--reference does not apply" in capsys.readouterr().err
    df = pd.read_csv(path)
    df.loc[4, "order"] = "AB"
    df.to_csv(path, index=False)
    assert main(["audit", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "choices.csv" in err and "column 'order'" in err and "lines [6]" in err and "a_first" in err


def test_scored_table_gets_the_accuracy_report(tmp_path):
    from robustalign.claims.accuracy import assess_accuracy

    gen = np.random.default_rng(0)
    rows = [(m, f"q{i}", c, int(gen.random() < (0.9 if m == "b" else 0.4)))
            for m in "ab" for i in range(30) for c in ("x", "y")]
    path = tmp_path / "scored.csv"
    pd.DataFrame(rows, columns=["model", "item", "country", "correct"]).to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["audit", str(path), "--n-resamples", "200", "--n-permutations", "199", "--seed", "1",
                 "--out", str(out), "--quiet"]) == 0
    v = pd.read_csv(out / "verdicts.csv")
    assert v["assessment"].tolist() == ["accuracy"]
    assert main(["audit", str(path), "--association", str(path), "--quiet"]) == 2  # needs a reference
    lib = assess_accuracy(path, culture="country", n_resamples=200, n_permutations=199, rng=1).verdicts
    assert v["verdict"].tolist() == lib["verdict"].tolist() == ["supported"]  # 0.9 vs 0.4 on 30 items


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from robustalign.simulate import simulate

    d = tmp_path_factory.mktemp("survey")
    sim = simulate(n_models=6, n_items=10, n_groups=2, factors={"format": 1}, n_orders=1, n_samples=10, rng=2)
    sim.responses.to_csv(d / "r.csv", index=False)
    sim.reference.to_csv(d / "h.csv", index=False)
    sim.scales.to_csv(d / "s.csv", index=False)
    models = sorted(sim.responses["model"].unique())
    gen = np.random.default_rng(1)
    refusals = pd.DataFrame([(m, f"p{i}", int(gen.random() < 0.2)) for m in models for i in range(20)],
                            columns=["model", "item", "value"])
    refusals.to_csv(d / "refusals.csv", index=False)
    return d, sim


def test_association_file_adds_a_correlation_section(survey, tmp_path):
    from robustalign.claims.association import audit_tradeoff

    d, sim = survey
    out = tmp_path / "out"
    args = ["audit", str(d / "r.csv"), "--reference", str(d / "h.csv"), "--scales", str(d / "s.csv"),
            "--association", str(d / "refusals.csv"), "--association-group", "C01", "--association-expect",
            "negative", "--n-resamples", "50", "--n-permutations", "99", "--seed", "0", "--out", str(out), "--quiet"]
    assert main(args) == 0
    v = pd.read_csv(out / "verdicts.csv").query("assessment == 'association'")
    assert len(v) == 1 and "cultural_fit and refusals correlate negatively across units" in v["unit"].iloc[0]
    est = pd.read_csv(out / "association_estimates.csv").set_index("quantity")
    resp, ref = sim.load()
    lib = audit_tradeoff(resp, ref, pd.read_csv(d / "refusals.csv"), group="C01", expect="negative",
                         n_resamples=50, n_permutations=99, rng=0).to_frame().set_index("quantity")
    # the estimate is deterministic given the data (no resampling enters it)
    assert est.loc["pearson_naive", "estimate"] == pytest.approx(lib.loc["pearson_naive", "estimate"], rel=1e-9)


def test_malformed_association_file_names_file_column_line_and_fix(survey, tmp_path, capsys):
    d, _ = survey
    bad = pd.read_csv(d / "refusals.csv", dtype=str)
    bad.loc[7, "value"] = "refused"
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    base = ["audit", str(d / "r.csv"), "--reference", str(d / "h.csv"), "--scales", str(d / "s.csv"),
            "--n-resamples", "20", "--n-permutations", "19", "--quiet"]
    assert main([*base, "--association", str(path), "--association-group", "C01"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "column 'value'" in err and "lines [9]" in err and "Fix" in err
    assert main([*base, "--association", str(d / "refusals.csv")]) == 2  # two groups and no choice
    assert "--association-group" in capsys.readouterr().err
