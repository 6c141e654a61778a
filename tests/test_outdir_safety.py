"""``--out`` can never lose a user's file: a run writes only its own files, never through a link, and
moves them into place only when all are written; ``--force`` replaces only the files an earlier
robustalign report recorded as its own; input files inside ``--out`` are refused; Ctrl-C exits 130
with one line and leaves ``--out`` as it was."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import robustalign.report
from robustalign.cli import main

FAST = ["--n-resamples", "20", "--n-permutations", "20", "--quiet"]
posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and symbolic links")


def _snapshot(root: Path) -> dict:
    """Every entry under ``root`` (links not followed): file bytes, link targets, folders."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", p.read_bytes())
        else:
            out[rel] = ("dir", None)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small simulated responses, reference and scales (two factors, so stability runs)."""
    from robustalign.simulate import simulate

    d = tmp_path_factory.mktemp("data")
    sim = simulate(n_models=2, n_items=8, n_groups=2, n_samples=2, factors={"format": 2}, rng=5)
    sim.responses.to_csv(d / "responses.csv", index=False)
    sim.reference.to_csv(d / "reference.csv", index=False)
    sim.scales.to_csv(d / "scales.csv", index=False)
    (d / "stability_off.toml").write_text("[stability]\nenabled = false\n")
    return d


def _args(d: Path, out: Path, *extra, design=None) -> list[str]:
    a = ["audit", str(d / "responses.csv"), "--reference", str(d / "reference.csv"), "--scales",
         str(d / "scales.csv"), "--out", str(out), *FAST, *extra]
    return a + (["--design", str(design)] if design else [])


def _no_stage_left(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".robustalign-" in p.name], "a staging folder was left"


def _never_audit(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the audit ran although --out was refused")

    monkeypatch.setattr(robustalign.report, "run_audit", never)


def test_inputs_and_design_file_inside_out_are_refused_with_force_twice(data, tmp_path, capsys, monkeypatch):
    _never_audit(monkeypatch)
    out = tmp_path / "work"
    out.mkdir()
    for f in ("responses.csv", "reference.csv", "scales.csv"):
        (out / f).write_bytes((data / f).read_bytes())
    (out / "design.toml").write_text("[stability]\nenabled = false\n")
    (out / "notes.txt").write_text("my notes")
    before = _snapshot(tmp_path)
    args = ["audit", str(out / "responses.csv"), "--reference", str(out / "reference.csv"), "--scales",
            str(out / "scales.csv"), "--design", str(out / "design.toml"), "--out", str(out), "--force", *FAST]
    for _ in range(2):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "contains the responses file" in err and "choose an --out folder of its own" in err.lower()
        assert _snapshot(tmp_path) == before
    # only the design file inside --out is refused just the same; so is --out being an input file
    args = _args(data, out, "--force", design=out / "design.toml")
    assert main(args) == 2 and "contains the design file" in capsys.readouterr().err
    assert main(_args(data, data / "responses.csv", "--force")) == 2
    assert "is the responses file" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


@posix
def test_symlink_inside_out_is_never_followed(data, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.csv").write_text("do not touch")
    (outside / "figs").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "alignment.csv").symlink_to(outside / "precious.csv")  # a name the report writes
    (out / "link.txt").symlink_to(outside / "precious.csv")  # a name it does not write
    keep = _snapshot(outside)
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 2
    err = capsys.readouterr().err
    assert "no robustalign report recorded as its own" in err and "alignment.csv" in err
    assert _snapshot(outside) == keep and (out / "alignment.csv").is_symlink()
    (out / "alignment.csv").unlink()
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 0  # unrelated link kept
    assert (out / "link.txt").is_symlink() and (out / "report.md").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert "link.txt" not in prov["files"]
    # a recorded file replaced by a link, or the figures folder replaced by one: refused, nothing followed
    (out / "verdicts.csv").unlink()
    (out / "verdicts.csv").symlink_to(outside / "precious.csv")
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 2
    capsys.readouterr()
    (out / "verdicts.csv").unlink()
    for f in (out / "figures").iterdir():
        f.unlink()
    (out / "figures").rmdir()
    (out / "figures").symlink_to(outside / "figs", target_is_directory=True)
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 2
    assert "figures" in capsys.readouterr().err
    assert _snapshot(outside) == keep
    _no_stage_left(tmp_path)


def test_interrupted_run_then_force_run_without_stability(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(_args(data, out)) == 0
    (out / "notes.txt").write_text("my notes")
    first = _snapshot(out)
    assert "stability.csv" in first and any(k.startswith("figures/stability_") for k in first)

    import robustalign.plots._style as style

    real, calls = style.shorten_labels, []

    def interrupt_at_third_figure(fig, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(fig, *a, **k)

    monkeypatch.setattr(style, "shorten_labels", interrupt_at_third_figure)
    monkeypatch.setenv("ROBUSTALIGN_WORKERS", "1")  # the calls are counted in this process
    assert main(_args(data, out, "--force")) == 130
    err = capsys.readouterr().err
    assert "interrupted; nothing was written to" in err and "Traceback" not in err
    assert len(calls) == 3 and _snapshot(out) == first  # the interrupted run changed nothing
    _no_stage_left(tmp_path)
    monkeypatch.setattr(style, "shorten_labels", real)

    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 0
    now = _snapshot(out)
    prov = json.loads((out / "provenance.json").read_text())
    on_disk = {k for k, (kind, _) in now.items() if kind == "file"}
    assert set(prov["files"]) == on_disk - {"notes.txt", "provenance.json"}  # exactly this run's files
    assert not [k for k in now if "stability" in k], "a stale stability file was kept"
    assert now["notes.txt"] == ("file", b"my notes")
    assert prov["complete"] is True and prov["written_by"]["tool"] == "robustalign"
    assert "turned off in the design file" in (out / "report.md").read_text()
    _no_stage_left(tmp_path)


def test_force_removes_only_files_a_robustalign_manifest_lists(data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # a provenance.json robustalign did not write (or an old one that listed every file in the folder)
    (out / "provenance.json").write_text(json.dumps({"files": ["notes.txt"]}))
    before = _snapshot(out)
    assert main(_args(data, out, "--force")) == 2
    assert "provenance.json" in capsys.readouterr().err and _snapshot(out) == before
    (out / "provenance.json").unlink()
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 0
    prov = json.loads((out / "provenance.json").read_text())
    prov["files"] += ["notes.txt", "../outside.txt", "/etc/hostname"]  # a manifest edited by hand
    prov["sha256"]["../outside.txt"] = "0" * 64
    (out / "provenance.json").write_text(json.dumps(prov))
    (tmp_path / "outside.txt").write_text("outside")
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 0
    assert (out / "notes.txt").read_text() == "mine" and (tmp_path / "outside.txt").read_text() == "outside"
    assert "notes.txt" not in json.loads((out / "provenance.json").read_text())["files"]
    # a report file the user changed after the run is no longer the run's own: refused, kept
    (out / "report.md").write_text("my edits")
    assert main(_args(data, out, "--force", design=data / "stability_off.toml")) == 2
    assert "report.md" in capsys.readouterr().err and (out / "report.md").read_text() == "my edits"


def test_unwritable_or_missing_parent_is_refused_before_the_audit(data, tmp_path, capsys, monkeypatch):
    _never_audit(monkeypatch)
    assert main(_args(data, tmp_path / "no" / "such" / "out")) == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(_args(data, tmp_path / "file" / "out")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    if sys.platform != "win32" and os.geteuid() != 0:  # root may write anywhere; the folder check is the same code path
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert main(_args(data, ro / "out")) == 2
            assert "cannot write beside --out" in capsys.readouterr().err
        finally:
            ro.chmod(0o700)


@posix
def test_ctrl_c_exits_130_with_one_line_and_no_traceback(data, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(
        [str(Path(robustalign.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    args = _args(data, out)
    args.remove("--quiet")
    p = subprocess.Popen([sys.executable, "-m", "robustalign", *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        for line in p.stderr:  # progress lines; interrupt while the figures are drawn
            lines.append(line)
            if "figure" in line:
                p.send_signal(signal.SIGINT)
                break
        rest = p.communicate(timeout=120)[1]
    finally:
        if p.poll() is None:
            p.kill()
    err = "".join(lines) + rest
    assert any("figure" in x for x in lines), err
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert [x for x in err.splitlines() if x.startswith("robustalign:")] == [
        f"robustalign: interrupted; nothing was written to {out}"]
    assert not out.exists()
    _no_stage_left(tmp_path)


def test_interrupt_swallowed_in_a_weakref_callback_still_exits_130(data, tmp_path, capsys, monkeypatch):
    import weakref

    import robustalign.plots._style as style

    real = style.shorten_labels

    class Box:
        pass

    def swallowed(fig, *a, **k):  # Ctrl-C landing in a weakref callback: Python can only print it
        def callback(ref):
            raise KeyboardInterrupt

        box = Box()
        ref = weakref.ref(box, callback)  # noqa: F841
        del box
        return real(fig, *a, **k)

    monkeypatch.setattr(style, "shorten_labels", swallowed)
    monkeypatch.setenv("ROBUSTALIGN_WORKERS", "1")  # the interrupt is swallowed in this process
    out = tmp_path / "out"
    assert main(_args(data, out, design=data / "stability_off.toml")) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err and "interrupted" in err
    assert not out.exists()
    _no_stage_left(tmp_path)
