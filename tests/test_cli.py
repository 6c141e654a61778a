"""The command: the bundled example runs; bad input gives one message and exit 2, never a traceback."""

import re
import subprocess
import sys

import pandas as pd
import pytest

# the harness run that the lm-eval importer's tests use, as fixture `harness_run` (lm_eval is imported inside it)
from test_importers_lm_eval import run as harness_run  # noqa: F401

from robustalign.cli import main


def test_example_prints_alignment_table_per_model_and_language(capsys, tmp_path):
    assert main(["audit", "--example", "--n-resamples", "200", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "gpt-4o" in out and "spearman [95% CI]" in out and "excluded: 1350 rows" in out
    tab = pd.read_csv(tmp_path / "out" / "alignment.csv")
    assert set(tab["metric"]) == {"spearman", "js"} and len(tab) == 2 * 9 * 4
    assert (tab["conf_low"] <= tab["estimate"]).all() and (tab["estimate"] <= tab["conf_high"]).all()


def test_existing_output_directory_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["audit", "--example", "--n-resamples", "50", "--out", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_output_path_that_is_a_file_is_refused_before_the_audit_runs(capsys, tmp_path, monkeypatch):
    import robustalign.report

    def never(**kwargs):
        raise AssertionError("the audit ran although --out cannot be written")

    monkeypatch.setattr(robustalign.report, "run_example_audit", never)
    (tmp_path / "out").write_text("a file, not a directory")
    for force in ([], ["--force"]):
        assert main(["audit", "--example", "--n-resamples", "50", "--out", str(tmp_path / "out"), *force]) == 2
        assert "exists and is not a directory" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "a file, not a directory"


def test_bad_input_is_one_message_and_exit_2(tmp_path):
    resp = tmp_path / "r.csv"
    ref = tmp_path / "h.csv"
    pd.DataFrame({"model": ["m"], "item": ["q1"], "answer": ["1"]}).to_csv(resp, index=False)
    pd.DataFrame({"item": ["q1", "q1"], "group": ["X", "X"], "option": ["1", "2"],
                  "shares": [0.5, 0.5]}).to_csv(ref, index=False)
    p = subprocess.run([sys.executable, "-m", "robustalign.cli", "audit", str(resp), "--reference", str(ref)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "missing columns ['share']" in p.stderr and "did you mean 'shares'" in p.stderr


def test_user_files_run_end_to_end(capsys, tmp_path):
    from robustalign.simulate import simulate

    sim = simulate(n_items=12, n_groups=3, rng=2)
    sim.responses.to_parquet(tmp_path / "r.parquet")
    sim.reference.to_csv(tmp_path / "h.csv", index=False)
    sim.scales.to_csv(tmp_path / "s.csv", index=False)
    code = main(["audit", str(tmp_path / "r.parquet"), "--reference", str(tmp_path / "h.csv"),
                 "--scales", str(tmp_path / "s.csv"), "--n-resamples", "100"])
    assert code == 0
    assert "model_1" in capsys.readouterr().out


def test_version_prints_the_version_and_exits_0(capsys):
    import robustalign

    p = subprocess.run([sys.executable, "-m", "robustalign", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"robustalign {robustalign.__version__}", p.stderr
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"robustalign {robustalign.__version__}"


SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://example.com","click")\nsecond line'
LONG = "m" * 200_000


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """An audit (stability on) of three models named with HTML, a formula with a newline, and 200,000
    characters, against a group named like a spreadsheet function."""
    from robustalign.simulate import simulate

    d = tmp_path_factory.mktemp("hostile")
    sim = simulate(n_models=3, n_items=6, n_groups=2, n_samples=2, factors={"format": 2}, rng=3)
    names = {"model_1": SCRIPT, "model_2": FORMULA, "model_3": LONG}
    resp = sim.responses.assign(model=sim.responses["model"].astype(str).map(names))
    ref = sim.reference.assign(group=sim.reference["group"].astype(str).replace({"C01": "@SUM(1+1)"}))
    resp.to_csv(d / "r.csv", index=False)
    ref.to_csv(d / "h.csv", index=False)
    sim.scales.to_csv(d / "s.csv", index=False)
    out = d / "out"
    code = main(["audit", str(d / "r.csv"), "--reference", str(d / "h.csv"), "--scales", str(d / "s.csv"),
                 "--n-resamples", "20", "--n-permutations", "20", "--quiet", "--out", str(out)])
    assert code == 0
    return out


def test_report_md_escapes_names(hostile):
    md = (hostile / "report.md").read_text(encoding="utf-8")
    assert SCRIPT not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert all("HYPERLINK" in line for line in md.splitlines() if "second line" in line)
    markdown_it = pytest.importorskip("markdown_it")
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(md)  # an independent renderer
    assert "<script" not in page and "http://example.com" not in re.findall(r"href=\"([^\"]*)\"", page)
    assert set(re.findall(r"<img src=\"([^\"]*)\"", page)) <= {f"figures/{p.name}" for p in hostile.glob("figures/*")}
    # every table row keeps its columns: as many cells as its header
    for table in re.findall(r"<table>.*?</table>", page, flags=re.S):
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, flags=re.S)}
        assert len(widths) == 1, widths
    html = (hostile / "report.html").read_text(encoding="utf-8")
    assert SCRIPT not in html


def test_csv_cells_cannot_start_a_formula_and_numbers_stay_numbers(hostile):
    import csv

    csv.field_size_limit(10 * len(LONG))
    for f in hostile.glob("*.csv"):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                        float(cell)  # only a plain number may start so
    tab = pd.read_csv(hostile / "alignment.csv")
    for col in ("estimate", "conf_low", "conf_high"):
        assert pd.api.types.is_float_dtype(tab[col]), col
    assert set(tab["model"]) == {SCRIPT, "'" + FORMULA, LONG}  # the full names, neutralised, in the table
    assert "'@SUM(1+1)" in set(tab["group"])
    st = pd.read_csv(hostile / "stability.csv")
    assert pd.api.types.is_float_dtype(st["estimate"]) and len(st)


def test_a_200000_character_name_does_not_stop_the_figures(hostile):
    md = (hostile / "report.md").read_text(encoding="utf-8")
    assert "could not be drawn" not in md
    for png in hostile.glob("figures/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 2_000_000


def test_shorten_labels_cuts_every_text_of_a_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustalign.plots import shorten_labels
    from robustalign.plots._style import LABEL_MAX_CHARS, TEXT_MAX_CHARS, TEXT_WRAP_CHARS

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label=LONG)
    ax.set_yticks([0, 1], [LONG, "short"])
    ax.set_xticks([0.5], ["x" * 1000])
    ax.set_title("t" * 5000)
    ax.set_xlabel("an axis label of many words " * 4)
    ax.legend()
    shorten_labels(fig)
    fig.canvas.draw()  # tick labels are made again from their formatter when drawn
    ticks = [t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels()]
    assert ticks[1] == "short" and max(map(len, ticks)) == LABEL_MAX_CHARS and ticks[0].endswith("\u2026")
    assert ticks[0][:-1] == LONG[: LABEL_MAX_CHARS - 1]
    title = ax.get_title().split("\n")
    assert len("".join(title)) == TEXT_MAX_CHARS and max(map(len, title)) <= TEXT_WRAP_CHARS
    xlabel = ax.get_xlabel()  # kept whole, wrapped onto lines
    assert xlabel.replace("\n", " ") == ("an axis label of many words " * 4).strip() and "\n" in xlabel
    assert max(len(t.get_text()) for t in ax.get_legend().get_texts()) <= LABEL_MAX_CHARS
    plt.close(fig)


def test_export_to_csv_neutralises_formulas_and_keeps_numbers(tmp_path):
    from robustalign.export import to_csv

    frame = pd.DataFrame({"model": ["=1+1", "+cmd", "-x", "@SUM(A1)", "\tx", "-0.5", "plain", None],
                          "estimate": [-1.5, 0.0, 1e-300, -2.0, 3.0, 4.0, 5.0, 6.0]})
    back = pd.read_csv(to_csv(frame, tmp_path / "a.csv"), keep_default_na=False)
    assert list(back["model"]) == ["'=1+1", "'+cmd", "'-x", "'@SUM(A1)", "'\tx", "-0.5", "plain", ""]
    assert back["estimate"].tolist() == frame["estimate"].tolist()  # numbers round-trip unchanged
    raw = pd.read_csv(to_csv(frame, tmp_path / "b.csv", formula_safe=False), keep_default_na=False)
    assert list(raw["model"])[:2] == ["=1+1", "+cmd"]


def test_every_plot_function_returns_axes_with_short_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import robustalign.plots as plots
    from robustalign.plots._style import LABEL_MAX_CHARS, short_labels

    unwrapped = [n for n in plots.__all__ if n.startswith("plot_") and not hasattr(getattr(plots, n), "__wrapped__")]
    assert unwrapped == []

    @short_labels
    def toy(ax=None):
        fig, ax = plt.subplots()
        ax.set_yticks([0, 1], [LONG, "b"])
        ax.plot([0, 1], [0, 1], label=LONG)
        ax.legend()
        return ax

    ax = toy()
    ax.figure.canvas.draw()
    assert max(len(t.get_text()) for t in ax.get_yticklabels() + ax.get_legend().get_texts()) == LABEL_MAX_CHARS
    plt.close(ax.figure)


def _write_reference(tmp_path, items, labels, groups):
    """Reference and scales files of a small survey (uniform shares: only the routing is under test)."""
    pd.DataFrame([{"item": i, "group": g, "option": str(k + 1), "share": 1 / len(labels)}
                  for i in items for g in groups for k in range(len(labels))]).to_csv(tmp_path / "h.csv", index=False)
    pd.DataFrame({"item": list(items), "options": "|".join(str(k + 1) for k in range(len(labels))),
                  "labels": "|".join(labels), "ordinal": True}).to_csv(tmp_path / "s.csv", index=False)
    return ["--reference", str(tmp_path / "h.csv"), "--scales", str(tmp_path / "s.csv")]


def _capture_audit(monkeypatch):
    """Stop the audit after the input step and keep the responses the command built."""
    import robustalign.cli as cli
    import robustalign.report

    seen = {}

    def fake_run_audit(resp, ref, **kwargs):
        seen["resp"], seen["ref"] = resp, ref
        return "report"

    monkeypatch.setattr(robustalign.report, "run_audit", fake_run_audit)
    monkeypatch.setattr(cli, "_run", lambda args, report, row_keys, progress: 0)
    return seen


def test_from_inspect_reads_a_folder_of_logs_as_the_importer_does(tmp_path, monkeypatch, capsys):
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval
    from test_importers_inspect import ITEMS, LABELS, _mock, _survey

    from robustalign.importers import from_inspect
    from robustalign.io import load_reference

    calls = []
    inspect_eval(_survey("dataset", "survey", epochs=2), model=[_mock("bot-a", calls), _mock("bot-b", calls)],
                 log_dir=str(tmp_path / "logs"), log_format="eval", display="none")
    files = _write_reference(tmp_path, ITEMS, LABELS, ["Japan", "Brazil"])
    seen = _capture_audit(monkeypatch)
    fields = ["--item-field", "item", "--factor-fields", "persona,fmt"]
    assert main(["audit", str(tmp_path / "logs"), "--from", "inspect", *files, *fields, "--quiet"]) == 0
    want = from_inspect(tmp_path / "logs", load_reference(tmp_path / "h.csv", scales=tmp_path / "s.csv"),
                        item_field="item", factor_fields=["persona", "fmt"])
    pd.testing.assert_frame_equal(seen["resp"].data, want.data)
    assert set(seen["resp"].models) == {"mockllm/bot-a", "mockllm/bot-b"} and len(want.data) == 2 * 9 * 2 - 2
    assert seen["resp"].exclusions.total() == 2  # bot-a declined one item x persona in both epochs
    one = next((tmp_path / "logs").glob("*.eval"))  # a single log file works too
    assert main(["audit", str(one), "--from", "inspect", *files, *fields, "--quiet"]) == 0
    assert len(seen["resp"].models) == 1


def test_from_lm_eval_reads_the_harness_samples_as_the_importer_does(tmp_path, monkeypatch, harness_run):  # noqa: F811
    """``harness_run``: the harness run of the importer's tests (two prompt templates as two tasks)."""
    from test_importers_lm_eval import ITEMS, LABELS

    from robustalign.importers import from_lm_eval
    from robustalign.io import load_reference

    out = harness_run
    files = _write_reference(tmp_path, ITEMS, LABELS, ["Japan"])
    seen = _capture_audit(monkeypatch)
    fields = ["--item-field", "qid", "--factor-fields", "country,order_id"]
    assert main(["audit", str(out["out"]), "--from", "lm-eval", *files, *fields, "--quiet"]) == 0
    want = from_lm_eval(out["out"], load_reference(tmp_path / "h.csv", scales=tmp_path / "s.csv"),
                        item_field="qid", factor_fields=["country", "order_id"])
    pd.testing.assert_frame_equal(seen["resp"].data, want.data)
    assert seen["resp"].kind == "prob" and set(seen["resp"].data["task"]) == {"survey_plain", "survey_persona"}


def test_from_a_tool_names_the_path_and_what_was_looked_for(tmp_path, capsys):
    files = _write_reference(tmp_path, ["Q1"], ["yes", "no"], ["X"])
    assert main(["audit", str(tmp_path / "nope"), "--from", "lm-eval", *files]) == 2
    err = capsys.readouterr().err
    assert "--from lm-eval" in err and "does not exist" in err and "samples_<task>_<date>.jsonl" in err
    (tmp_path / "empty").mkdir()
    assert main(["audit", str(tmp_path / "empty"), "--from", "lm-eval", *files]) == 2
    assert "no lm-eval samples files found in this folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["audit", str(tmp_path / "empty"), "--from", "csv", *files])
    assert "invalid choice: 'csv'" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "h.csv"), "--item-field", "qid", *files]) == 2
    assert "--item-field and --factor-fields apply with --from inspect or lm-eval" in capsys.readouterr().err
