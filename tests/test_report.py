"""The audit report: verdicts first, every estimate table equal to the statistics code's own frames,
figures that decode, a self-contained HTML, and a design file that is validated."""

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from robustalign._errors import RobustAlignError
from robustalign.report import AuditDesign, load_design, run_audit


@pytest.fixture(scope="module")
def example(example_report):
    """The example audit and its written directory (tests/conftest.py; shared with the browser and
    figure tests)."""
    return example_report


def test_csv_tables_equal_the_result_objects_frames(example):
    rep, out = example
    sec = rep.section("alignment")
    for metric, res in sec.results.items():
        tab = pd.read_csv(out / "alignment.csv")
        csv = tab[tab["metric"] == metric].reset_index(drop=True)
        want = res.to_frame()  # produced by the resampling code, not by the report
        np.testing.assert_allclose(csv["estimate"], want["estimate"])
        np.testing.assert_allclose(csv["conf_low"], want["conf_low"])
        np.testing.assert_allclose(csv["conf_high"], want["conf_high"])
        assert list(csv["model"]) == list(want["model"])
    st = rep.section("stability").results["stability"].to_frame()
    csv = pd.read_csv(out / "stability.csv")
    assert len(csv) == len(st)
    np.testing.assert_allclose(csv["conf_high"].to_numpy(float), st["conf_high"].to_numpy(float), equal_nan=True)
    steer = rep.section("steering_comparison_spearman", part=1).results["steering_comparison_spearman"]
    csv = pd.read_csv(out / "steering_steering_comparison_spearman.csv")
    np.testing.assert_allclose(csv["estimate"], steer.to_frame()["estimate"])


def test_every_table_has_interval_columns(example):
    _, out = example
    for f in out.glob("*.csv"):
        if f.name in ("verdicts.csv",):
            continue
        cols = pd.read_csv(f, nrows=1).columns
        if "estimate" in cols:
            assert {"conf_low", "conf_high"} <= set(cols), f.name


def test_report_opens_with_every_verdict_in_words(example):
    rep, out = example
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    v = rep.verdicts
    assert set(v["verdict"]) <= {"supported", "not supported", "inconclusive"} and len(v) > 10
    assert md.index("## Verdicts") < md.index("## Evidence") < md.index("## Diagnostics")
    assert html.index("id='verdicts'") < html.index("id='evidence'") < html.index("id='diagnostics'")
    import html as h

    from robustalign.report.render import (
        md_escape,  # report.md escapes names (checked with markdown-it in test_cli)
    )

    for reason in v["reason"]:
        assert h.escape(reason) in html
        assert md_escape(reason) in md
    # claims from the bundled design are judged; inconclusive rows say what sample size would be needed
    assert "gpt-4o is closer to en than gemma-2-27b-it" in md
    inc = v[v["verdict"] == "inconclusive"]
    assert inc["n_needed"].notna().any()
    assert "<th>items needed</th>" in html and "Needed: about" in md


def test_html_is_self_contained_and_images_decode(example):
    rep, out = example
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)=['"](?!data:|#)""", html), "external asset referenced"
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    n_figs = sum(len(s.figures) for p in rep.parts for s in p.sections)
    assert len(imgs) == n_figs and "could not be drawn" not in html
    for b in imgs:
        raw = base64.b64decode(b)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    for p in rep.parts:
        for s in p.sections:
            for f in s.figures:
                assert not (out / "figures" / f"{p.prefix}{f.name}.svg").exists()  # vector copies on request
                assert (out / "figures" / f"{p.prefix}{f.name}.png").stat().st_size > 1000


def test_diagnostics_record_exclusions_seeds_versions_and_hashes(example):
    rep, out = example
    md = (out / "report.md").read_text()
    diag = md[md.index("## Diagnostics"):]
    assert "1350" in diag and "no human reference" in diag.lower()
    assert "No Bayesian model was fitted" in diag
    from robustalign.datasets import load_multicultural_alignment

    d = load_multicultural_alignment()
    assert d.responses.data_hash() in diag and d.reference_language.data_hash() in diag
    assert "numpy" in diag and "scipy" in diag
    prov = json.loads((out / "provenance.json").read_text())
    assert "report.html" in prov["files"] and prov["versions"]["robustalign"]


def test_write_never_overwrites_silently(example, tmp_path):
    rep, _ = example
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(RobustAlignError, match="exists and is not empty"):
        rep.write(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"


def test_design_file_is_validated(tmp_path):
    p = tmp_path / "design.toml"
    p.write_text('seed = 3\nn_resamples = 300\n[alignment]\nagainst = "language"\n'
                 '[[claims]]\nkind = "closer"\nmodel = "a"\nthan = "b"\ngroup = "X"\n')
    d = load_design(p)
    assert d.seed == 3 and d.against == "language" and d.claim_objects()[0].text == "a is closer to X than b"
    p.write_text('sed = 3\n')
    with pytest.raises(RobustAlignError, match=r"unknown keys \['sed'\]"):
        load_design(p)
    p.write_text('[[claims]]\nkind = "closer"\nmodel = "a"\n')
    with pytest.raises(RobustAlignError, match=r"needs keys \['than', 'group'\]"):
        load_design(p)
    p.write_text('n_resamples = "many"')
    with pytest.raises(RobustAlignError, match="n_resamples"):
        load_design(p)
    p.write_text('= broken')
    with pytest.raises(RobustAlignError, match="not valid TOML"):
        load_design(p)


def test_run_audit_decides_assessments_from_the_design_factors():
    from robustalign.simulate import simulate

    resp, ref = simulate(n_models=2, n_items=15, factors={"format": 2}, n_orders=1, n_samples=1, n_steer=3,
                         rng=1).load()
    rep = run_audit(resp, ref, design=AuditDesign.from_dict({"steering": {"baseline": "none"}}), n_resamples=100,
                    n_permutations=100)
    keys = [s.key for s in rep.parts[0].sections]
    assert "stability" in keys and "steerability" in keys
    assert dict(rep.parts[0].not_run)["extrapolability"].startswith("no item domains")
    assert set(rep.verdicts["verdict"]) <= {"supported", "not supported", "inconclusive"}


def _no_data_uris(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


def test_no_nan_anywhere_in_the_report(example):
    _, out = example
    for text in (_no_data_uris((out / "report.html").read_text()), (out / "report.md").read_text()):
        assert not re.search(r"(?<![A-Za-z0-9_])nan(?![A-Za-z0-9_])", text, re.IGNORECASE)


def test_report_opens_with_a_summary_grid_and_contents(example):
    rep, out = example
    html, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert html.index("id='toc'") < html.index("id='summary'") < html.index("id='verdicts'")
    assert html.count("<td class='cell'>") == len(rep.verdicts)  # one badge per verdict
    assert md.index("## Summary") < md.index("## Verdicts")
    # the grid's number for a stability verdict is the stability result's own factor effect
    st = rep.section("stability").results["stability"].to_frame().query("quantity == 'factor_effect'")
    first = st.iloc[0]
    assert f"{first['estimate']:.3f} [{first['conf_low']:.3f}, {first['conf_high']:.3f}]" in md.split("## Verdicts")[0]


def test_verdicts_csv_has_numbers_and_whole_items_needed(example):
    rep, out = example
    v = pd.read_csv(out / "verdicts.csv")
    for c in ["estimate", "conf_low", "conf_high", "conf_level", "p_value", "p_adjusted"]:
        assert v[c].dtype.kind == "f", c
    n = v["n_needed"].dropna()
    assert len(n) and (n == np.round(n)).all()
    st = rep.section("stability").results["stability"].to_frame().query("quantity == 'factor_effect'")
    got = v[v["assessment"] == "stability"]
    np.testing.assert_allclose(got["estimate"], st["estimate"])
    np.testing.assert_allclose(got["p_adjusted"], st["p_adjusted"])
    assert "grid_row" not in v


def test_plain_words_in_the_report(example):
    _, out = example
    md = (out / "report.md").read_text()
    for jargon in ("fdr_bh", "congruent=congruent", "SUPPORTED:", "1/4!  ", "Holds"):
        assert jargon not in md, jargon
    assert "Benjamini-Hochberg" in md and "congruent vs incongruent steering" in md
    from robustalign.report.words import HUGE_COMMENT, MAX_SURVEY_ITEMS, plain

    assert HUGE_COMMENT in plain("about 321448 items would be needed")
    assert HUGE_COMMENT not in plain(f"about {MAX_SURVEY_ITEMS} items would be needed")
    assert plain("p can reach at most 1/4! per pair") == "p can reach at most 1/4! = 1/24 per pair"
    assert "## Terms" in md and "TOST" in md[md.index("## Terms"):md.index("## Evidence")]


def test_one_item_audit_says_why_there_is_no_interval(tmp_path):
    import os
    import subprocess
    import sys

    from robustalign.simulate import simulate

    sim = simulate(n_items=12, n_groups=3, rng=2)
    it = sim.responses["item"].iloc[0]
    sim.responses[sim.responses["item"] == it].to_parquet(tmp_path / "r.parquet")
    sim.reference[sim.reference["item"] == it].to_csv(tmp_path / "h.csv", index=False)
    sim.scales[sim.scales["item"] == it].to_csv(tmp_path / "s.csv", index=False)
    p = subprocess.run([sys.executable, "-m", "robustalign", "audit", str(tmp_path / "r.parquet"), "--reference",
                        str(tmp_path / "h.csv"), "--scales", str(tmp_path / "s.csv"), "--n-resamples", "100",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, env={**os.environ})
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr and ".py:" not in p.stderr  # no raw warnings with source paths
    md = (tmp_path / "out" / "report.md").read_text()
    html = _no_data_uris((tmp_path / "out" / "report.html").read_text())
    assert "one item gives no interval" in md and "No verdict for" in md
    for text in (md, html):
        assert not re.search(r"(?<![A-Za-z0-9_])nan(?![A-Za-z0-9_])", text, re.IGNORECASE)
