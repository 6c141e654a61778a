"""The audit's steps in two forked worker processes give the report of the serial run: every table, verdict,
section, note and figure, compared against a serial run in the same test (no stored numbers). Then the
machinery itself on stand-in steps: report order, step times, progress lines, warnings and errors
carried back from the workers, and the switches that force the serial route."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from robustalign.report import Section, run_example_audit
from robustalign.report._steps import execute, fork_workers
from robustalign.report.audit import FigureSpec, _Progress


def _machine_can_fork() -> bool:
    import multiprocessing as mp
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return "fork" in mp.get_all_start_methods() and cpus >= 2


needs_fork = pytest.mark.skipif(not _machine_can_fork(), reason="needs the fork start method and 2 processors")
FRESH = "ROBUSTALIGN_TEST_FRESH_PROCESS"


@pytest.fixture
def here(request) -> bool:
    """True: run this fork-route test in this process. False: it has just run, and passed, in a fresh one.

    The audit forks only from a process with no other Python thread (``_can_fork``). A test process often
    has some: pytest-timeout's timer (``make test``), or threads left by libraries that an earlier test file
    used (tqdm's monitor, zarr's I/O loop, Dask's offload pool). The audit then rightly takes the serial
    route, so the test runs in a fresh pytest process of its own, without the timer; its result is this
    test's. A fresh process that still has other threads fails the test, naming them.
    """
    import os
    import subprocess
    import sys
    import threading

    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if not others:
        return True
    assert not os.environ.get(FRESH), f"threads running in a fresh test process: {others}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env[FRESH] = "1"
    cmd = [sys.executable, "-m", "pytest", request.node.nodeid, "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "-p", "no:timeout"]
    run = subprocess.run(cmd, cwd=request.config.rootpath, env=env, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0 and "1 passed" in run.stdout, (others, run.stdout[-4000:], run.stderr[-2000:])
    return False


KW = dict(rng=0, n_resamples=40, n_permutations=40)


@pytest.fixture(scope="module")
def both():
    serial = run_example_audit(workers=1, **KW)
    lines: list[str] = []
    parallel = run_example_audit(workers=2, progress=lines.append, **KW)
    return serial, parallel, lines


def _figures(report):
    return [(p.prefix + f.name, f) for p in report.parts for s in p.sections for f in s.figures]


@needs_fork
def test_parallel_example_has_every_table_and_verdict_of_the_serial_run(here, request):
    if not here:
        return
    serial, parallel, lines = request.getfixturevalue("both")
    assert serial.provenance["execution"]["workers"] == 1
    assert parallel.provenance["execution"]["workers"] == 2
    assert any("steerability" in line for line in lines)  # the workers' progress lines reached the caller
    assert list(parallel.tables) == list(serial.tables)
    for name, tab in serial.tables.items():
        # computed in another process: equal to rounding, never compared bit for bit
        pd.testing.assert_frame_equal(parallel.tables[name], tab, check_exact=False, rtol=1e-12, atol=0,
                                      obj=name)
    sv, pv = serial.verdicts, parallel.verdicts
    num = ["estimate", "conf_low", "conf_high", "conf_level", "p_value", "p_adjusted", "n_needed"]
    pd.testing.assert_frame_equal(pv.drop(columns=num), sv.drop(columns=num))
    np.testing.assert_allclose(pv[num].to_numpy(float), sv[num].to_numpy(float), rtol=1e-12, atol=0)
    for ps, ss in zip(parallel.parts, serial.parts):
        assert [s.key for s in ps.sections] == [s.key for s in ss.sections]
        assert [s.notes for s in ps.sections] == [s.notes for s in ss.sections]
        assert [[f.name for f in s.figures] for s in ps.sections] == [[f.name for f in s.figures] for s in ss.sections]
        assert set(ps.timings) == set(ss.timings)  # every step timed on both routes
        assert ps.not_run == ss.not_run


@dataclasses.dataclass
class _Run:
    """The parts of an audit run that `execute` uses."""

    pr: _Progress
    steps: list = dataclasses.field(default_factory=list)
    sections: list = dataclasses.field(default_factory=list)
    fits: list = dataclasses.field(default_factory=list)


def _section(key: str, warn: str | None = None) -> Section:
    if warn:
        warnings.warn(warn, UserWarning, stacklevel=2)
    return Section(key, key.title(), tables={key: pd.DataFrame({"x": [len(key)]})},
                   figures=[FigureSpec(key, "caption", lambda: _line(len(key)))])


def _line(n: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot(range(n))
    return fig


def _runs(lines):
    a, b = _Run(_Progress(lines.append)), _Run(_Progress(lines.append))
    a.steps = [("alignment", "step a1", lambda: _section("first")),
               ("steerability", "step a2", lambda: [_section("second"), _section("third", "careful")])]
    b.steps = [("claim_1", "step b1", lambda: (_section("fourth"), {"fit": 1}))]
    return a, b


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=needs_fork)])
def test_execute_keeps_the_report_order_times_progress_and_warnings(workers, request):
    if workers == 2 and not request.getfixturevalue("here"):
        return
    lines: list[str] = []
    a, b = _runs(lines)
    with pytest.warns(UserWarning, match="careful"):
        info = execute([a, b], workers=workers, figure_formats=("png",))
    assert info["workers"] == workers
    assert [s.key for s in a.sections] == ["first", "second", "third"]
    assert [s.key for s in b.sections] == ["fourth"] and b.fits == [{"fit": 1}]
    assert set(a.pr.timings) == {"alignment", "steerability"} and set(b.pr.timings) == {"claim_1"}
    assert {"step a1", "step a2", "step b1"} <= set(lines)
    drawn = [f.drawn for s in a.sections + b.sections for f in s.figures]
    if workers == 2:
        assert all(d["error"] is None and d["files"]["png"][:4] == b"\x89PNG" for d in drawn)
    else:
        assert drawn == [None] * 4


@needs_fork
def test_figures_drawn_in_the_workers_are_written_without_drawing_again(here, tmp_path, monkeypatch):
    if not here:
        return
    import robustalign.report._figures as figures
    from robustalign.report import AuditPart, AuditReport

    a, b = _runs([])
    with pytest.warns(UserWarning, match="careful"):
        execute([a, b], workers=2, figure_formats=("png", "svg"))
    part = AuditPart("stand-in", "", a.sections + b.sections, pd.DataFrame(), {}, {}, [], timings=a.pr.timings)
    report = AuditReport("stand-in", [part], {"execution": {"workers": 2, "seconds": 1.0}})

    def no_drawing(*args, **kwargs):
        raise AssertionError("a figure drawn during the audit was drawn again")

    monkeypatch.setattr(figures, "draw_bytes", no_drawing)
    out = report.write(tmp_path / "rep", figure_formats=("png", "svg"))  # as drawn (PNG only by default)
    for name in ("first", "second", "third", "fourth"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "figures" / f"{name}.svg").read_bytes()[:1000]
    md = (out / "report.md").read_text()
    assert "every step, 2 processes (wall)" in md and "figure fourth" in md  # every figure timed


@needs_fork
def test_an_error_in_a_worker_is_raised_with_its_type_and_message(here):
    if not here:
        return
    def broken():
        raise ValueError("column 'x' of responses.csv: bad value; fix it")

    a, b = _runs([])
    b.steps.append(("stability", "boom", broken))
    with pytest.raises(ValueError, match="column 'x' of responses.csv"):
        execute([a, b], workers=2)


def test_the_serial_switches(monkeypatch):
    monkeypatch.setenv("ROBUSTALIGN_WORKERS", "1")
    assert fork_workers() == 1
    a, b = _runs([])
    with pytest.warns(UserWarning, match="careful"):
        assert execute([a, b])["workers"] == 1
    with pytest.raises(ValueError, match="workers must be 1 or 2"):
        execute([a, b], workers=3)
