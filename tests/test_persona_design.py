"""Persona audits described in a design file ([persona]), and the persona figure.

End to end: a simulated persona experiment written to CSV files, a design file in the same folder, the
command line -> report with the persona section, its verdicts, tables and figure. The figure is checked
with the report's own figure checks (no text outside the figure area, one colour per model, distinct
in CIELAB), written independently of the plotting code in tests/test_report_figures.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import robustalign as ra
from robustalign import RobustAlignError
from robustalign.persona import assess_persona, make_respondent_reference
from robustalign.report import load_design

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_report_figures import _min_delta_e, _outside  # noqa: E402  (the report's figure checks)


@pytest.fixture(scope="module")
def sim():
    return ra.simulate_persona(n_respondents=(12, 12), n_items=8, n_samples=2, rng=6, n_truth_items=10,
                               persona_use={"m-uses": 0.6, "m-ignores": 0.0})


def _files(tmp_path: Path, sim, design: str) -> list[str]:
    sim.responses.to_csv(tmp_path / "r.csv", index=False)
    sim.reference.rename(columns={"group": "country"}).to_csv(tmp_path / "people.csv", index=False)
    sim.scales.to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "design.toml").write_text(design, encoding="utf-8")
    return ["audit", str(tmp_path / "r.csv"), "--scales", str(tmp_path / "s.csv"), "--design",
            str(tmp_path / "design.toml"), "--n-resamples", "20", "--n-permutations", "20", "--quiet"]


DESIGN = """
title = "persona audit"
[stability]
enabled = false
[persona]
reference_respondents = "people.csv"
group_col = "country"
by = "language"
baseline = "no_persona"
"""


def test_design_file_persona_audit_writes_the_section_verdicts_and_figure(sim, tmp_path, capsys, monkeypatch):
    from robustalign.cli import main

    args = _files(tmp_path, sim, DESIGN)
    monkeypatch.chdir(tmp_path.parent)  # the respondent file is found next to the design file, not in the cwd
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    # one verdict per model x language x (all, C1, C2), judged against the no-persona baseline as asked
    assert out.count("persona helps: model=") == 2 * 2 * 3
    assert "gain in agreement over the same model without a persona" in out
    assert "persona helps: model=m-uses language=native, C1" in out
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Persona experiment (respondent level)" in md and "judged against the same model without a persona" in md
    tab = pd.read_csv(tmp_path / "out" / "persona.csv")
    assert {"agreement", "agreement_no_persona", "persona_gain_agreement_vs_no_persona"} <= set(tab["quantity"])
    assert set(tab["model"]) == {"m-uses", "m-ignores"} and set(tab["language"]) == {"english", "native"}
    figs = {p.stem for p in (tmp_path / "out" / "figures").iterdir()}
    assert "persona" in figs


def test_design_flags_and_command_line_flags_give_the_same_persona_numbers(sim, tmp_path, capsys):
    from robustalign.cli import main

    args = _files(tmp_path, sim, '[persona]\nreference_respondents = "people.csv"\nby = ["language"]\n')
    flags = ["audit", *args[1:4], "--reference-respondents", str(tmp_path / "people.csv"), "--persona-by",
             "language", *args[6:]]
    sim.reference.to_csv(tmp_path / "people.csv", index=False)  # `group` column: the default name
    assert main(args) == 0
    by_design = [ln for ln in capsys.readouterr().out.splitlines() if "persona helps" in ln]
    assert main(flags) == 0
    by_flags = [ln for ln in capsys.readouterr().out.splitlines() if "persona helps" in ln]
    assert by_design == by_flags and len(by_design) == 12  # m-uses and m-ignores x 2 languages x (all, C1, C2)


@pytest.mark.parametrize(("persona", "match"), [
    ('referense_respondents = "p.csv"', r"unknown keys \['referense_respondents'\] in \[persona\]; known keys are "
                                        r"\[.*'reference_respondents'"),
    ("by = 3", r"\[persona\] `by` must be a text or a list of texts \(e.g. by = \[.*got 3"),
    ('statistic = "mode"', r"\[persona\] `statistic` must be one of \['expected', 'majority'\]; got 'mode'"),
    ('baseline = "none"', r"\[persona\] `baseline` must be one of \['group', 'no_persona'\]"),
    ('missing_codes = "DK"', r"`missing_codes` must be a list of texts or numbers \(e.g. missing_codes = \[-99"),
    ("attributes = [1]", r"\[persona\] `attributes` must be a text or a list of texts"),
])
def test_mistyped_persona_keys_name_the_key_and_the_fix(tmp_path, persona, match):
    p = tmp_path / "d.toml"
    p.write_text(f"[persona]\n{persona}\n", encoding="utf-8")
    with pytest.raises(RobustAlignError, match=match) as e:
        load_design(p)
    assert "'d.toml'" in str(e.value) and "Fix" in str(e.value)


def test_persona_by_and_a_missing_respondent_file_are_named(sim, tmp_path, capsys):
    from robustalign.cli import main

    args = _files(tmp_path, sim, '[persona]\nreference_respondents = "people.csv"\nby = "lang"\ngroup_col = '
                                 '"country"\n')
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "[persona] by entry = 'lang' is not a design factor of the responses" in err and "language" in err
    (tmp_path / "design.toml").write_text('[persona]\nreference_respondents = "nobody.csv"\n', encoding="utf-8")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "nobody.csv" in err and "does not exist" in err and "relative to its folder" in err


# --------------------------------------------------------------------------------------------------
# the figure
# --------------------------------------------------------------------------------------------------
def test_persona_figure_marks_baselines_and_gives_each_model_its_colour(sim):
    from robustalign.plots._style import PALETTE
    from robustalign.report.audit import FigureSpec
    from robustalign.report.render import draw_figure

    long_name = "a-model-with-a-very-long-name-that-would-not-fit"
    resp = sim.responses.assign(model=sim.responses["model"].replace({"m-ignores": long_name}))
    people = make_respondent_reference(sim.reference, sim.scales)
    res = assess_persona(ra.make_responses(resp, people.to_reference()), people, by=["language"])
    fig = draw_figure(FigureSpec("persona", "", lambda: res.plot()))
    assert not _outside(fig), _outside(fig)
    ax = fig.axes[0]
    f = res.to_frame()
    # every model x language x row: one interval bar (drawn data read back from the Axes)
    rows = f[(f["quantity"] == "agreement") & f["level"].isin(["all groups", "group", "attribute"])]
    drawn = [c for c in ax.containers]
    assert len(drawn) == 4 and sum(len(c.lines[0].get_xdata()) for c in drawn) == len(rows)
    xs = np.sort(np.concatenate([np.asarray(c.lines[0].get_xdata(), float) for c in drawn]))
    np.testing.assert_allclose(xs, np.sort(rows["estimate"].to_numpy()))
    # group baselines (grey ticks) and no-persona crosses at the table's values
    ticks = np.concatenate([np.asarray(ln.get_xdata(), float) for ln in ax.lines if ln.get_marker() == "|"])
    base = f[(f["quantity"] == "agreement_group_baseline") & f["level"].isin(["all groups", "group", "attribute"])]
    np.testing.assert_allclose(np.sort(ticks), np.sort(base["estimate"].to_numpy()))
    crosses = [ln for ln in ax.lines if ln.get_marker() == "x"]
    assert sum(len(ln.get_xdata()) for ln in crosses) == len(base)
    # legend: each model its palette colour, distinct side by side; baselines named
    leg = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert {"group baseline", "no persona", "english", "native"} <= set(leg)
    colours = [matplotlib.colors.to_hex(h.get_color()) for t, h in leg.items() if t.startswith(("m-", "a-"))]
    assert len(colours) == 2 and set(colours) <= {c.lower() for c in PALETTE[:2]} and _min_delta_e(colours) > 10
    assert all(len(t) <= 26 for t in leg)  # the long model name is cut in the legend
    plt.close(fig)


def test_run_audit_section_reads_the_respondents_and_the_statistic_from_the_design(sim, tmp_path):
    """The Python route: a design with [persona] and no `persona=` argument; the majority statistic of the
    design gives the same table as assess_persona(statistic="majority") on the same files."""
    from robustalign.persona import persona_section

    _files(tmp_path, sim, "")
    design = load_design(_design(tmp_path, '[persona]\nreference_respondents = "people.csv"\ngroup_col = "country"\n'
                                           'by = "language"\nstatistic = "majority"\n'))
    people = make_respondent_reference(sim.reference, sim.scales)
    resp = ra.make_responses(sim.responses, people.to_reference())
    sec = persona_section(resp, None, design=design, part="p")
    want = assess_persona(resp, people, by=["language"], statistic="majority").to_frame()
    pd.testing.assert_frame_equal(sec.tables["persona"], want)
    assert "majority of the sampled answers" in sec.intro and [f.name for f in sec.figures] == ["persona"]
    assert any("empty `persona`" in n for n in sec.notes)  # the no-persona rows are said to be the baseline


def _design(tmp_path: Path, text: str) -> Path:
    (tmp_path / "design.toml").write_text(text, encoding="utf-8")
    return tmp_path / "design.toml"
