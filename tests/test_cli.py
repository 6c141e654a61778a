"""The command: the bundled example runs; bad input gives one message and exit 2, never a traceback."""

import subprocess
import sys

import pandas as pd

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
