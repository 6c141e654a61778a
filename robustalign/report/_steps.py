"""Running the steps of an audit: one after the other, or the independent ones in two forked processes.

Every step of an audit (alignment, stability, a claim, a steering comparison, ...) draws only from its
own stream, fixed before any step runs, so the steps are independent: they give the same numbers in
any order and in any process. With two workers the steps of every part go to two worker processes,
the longest first, and each worker draws the figures of the sections it built (when the audit is given
``figure_formats``), so figures are drawn while the other worker still computes. The workers are forked
(nothing is pickled on the way in); their sections come back pickled with cloudpickle, which keeps the
figures' drawing functions.

``ROBUSTALIGN_WORKERS=1`` forces the serial route (one process, figures drawn when the report is
written); ``2`` asks for two workers. By default two are used where forking is possible and safe: the
``fork`` start method exists, at least two processors are available, no other Python thread runs (a
thread could hold a lock at the moment of the fork), and this process is not itself a pool's worker.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustalign.report.audit import AuditRun, Section

__all__ = ["execute", "fork_workers"]

#: Expected relative cost of a step (analysis plus figures), by name: the order in which the two
#: workers take the steps (longest first). It changes no number, only how well the two workers are balanced.
STEP_COST = {"bayes": 100.0, "steerability": 10.0, "persona": 6.0, "alignment": 6.0, "extrapolability": 5.0,
             "stability": 4.0, "claim": 3.0, "steering_comparison": 2.5, "accuracy": 2.0, "validity": 1.0}

_RUNS: list[Any] = []  # the runs whose steps the forked workers execute
_STATE: dict[str, Any] = {}


def _can_fork() -> bool:
    import multiprocessing as mp
    import threading

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return ("fork" in mp.get_all_start_methods() and cpus >= 2 and threading.active_count() == 1
            and not mp.current_process().daemon)  # a pool's worker may not start processes of its own


def fork_workers() -> int:
    """The number of worker processes to use: 1 or 2 (see the module doc and ``ROBUSTALIGN_WORKERS``)."""
    if os.environ.get("ROBUSTALIGN_WORKERS", "").strip() == "1":
        return 1
    return 2 if _can_fork() else 1


def _cost(name: str) -> float:
    return next((c for k, c in STEP_COST.items() if name.startswith(k)), 3.0)


def _sections(out: Any) -> tuple[list[Section], list[dict]]:
    """A builder's output as (sections, Bayesian fit infos)."""
    if isinstance(out, tuple):
        return [out[0]], [out[1]]
    return (list(out) if isinstance(out, list) else [out]), []


def _serial(runs: Sequence[AuditRun]) -> dict[str, float]:
    cpu = {}
    for r, run in enumerate(runs):
        for name, msg, build in run.steps:
            run.pr.step(name, msg)
            c0 = time.process_time()
            secs, fits = _sections(build())
            cpu[f"{r}:{name}"] = round(time.process_time() - c0, 2)
            run.sections.extend(secs)
            run.fits.extend(fits)
        run.pr.done()
    return cpu


def _job(job: tuple[int, int]) -> bytes:
    """Worker: run step ``j`` of run ``r``, draw its sections' figures; the result, pickled."""
    import cloudpickle

    r, j = job
    run = _RUNS[r]
    name, msg, build = run.steps[j]
    queue = _STATE["queue"]
    if run.pr.fn is not None:
        run.pr.fn = queue.put  # progress lines go to the parent, which prints them
    os.environ["ROBUSTALIGN_PROGRESS"] = "0"  # no live display from a worker
    run.pr.say(msg)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        secs, fits = _sections(build())
    seconds, c1 = time.perf_counter() - t0, time.process_time()
    formats = _STATE["formats"]
    if formats:
        from robustalign.report._figures import draw_bytes

        for sec in secs:
            for spec in sec.figures:
                spec.drawn = draw_bytes(spec, formats)
    said = [(w.category, str(w.message)) for w in caught]
    cpu = (round(c1 - c0, 2), round(time.process_time() - c1, 2), os.getpid())
    return cloudpickle.dumps((secs, fits, round(seconds, 2), said, cpu))


def _job_in_worker(job: tuple[int, int]) -> bytes:
    """:func:`_job` in a pool's worker; ``b""`` for an interrupt there, which the parent raises (a worker
    that dies of it would lose its step, and the parent would wait for it for ever)."""
    try:
        return _job(job)
    except KeyboardInterrupt:
        return b""


def _drain(queue: Any, say: Any) -> None:
    while not queue.empty():
        msg = queue.get()
        if say is not None:
            say(msg)


#: Modules most steps import: imported once before the fork, so that the two workers share them instead
#: of each importing its own copy (about as much CPU as one small step).
WARM = ("robustalign.claims", "robustalign.claims.ranking", "robustalign.claims.multiverse",
        "robustalign.scoring", "statsmodels.stats.proportion")
WARM_FIGURES = ("matplotlib.pyplot", "robustalign.plots", "robustalign.report.render")


def _warm(figures: bool) -> None:
    import importlib

    for name in WARM + (WARM_FIGURES if figures else ()):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional module: the step that needs it says so
            pass


def _parallel(runs: Sequence[AuditRun], formats: tuple[str, ...] | None) -> dict[str, Any]:
    import multiprocessing as mp
    import pickle

    _warm(bool(formats))

    ctx = mp.get_context("fork")
    jobs = [(r, j) for r, run in enumerate(runs) for j in range(len(run.steps))]
    order = sorted(jobs, key=lambda rj: -_cost(runs[rj[0]].steps[rj[1]][0]))  # stable: report order on ties
    say = next((run.pr.fn for run in runs if run.pr.fn is not None), None)
    done: dict[tuple[int, int], tuple] = {}
    _RUNS[:] = list(runs)
    _STATE.update(queue=ctx.SimpleQueue(), formats=formats)
    try:
        with warnings.catch_warnings():
            # Python warns on any fork of a process with threads; fork_workers refuses when another Python
            # thread runs, and the only other threads are the numerical libraries' idle pools
            warnings.filterwarnings("ignore", message=".*multi-threaded, use of fork", category=DeprecationWarning)
            pool = ctx.Pool(2)
        with pool:
            it = pool.imap(_job_in_worker, order)
            for k in range(len(order)):
                while True:
                    try:
                        blob = it.next(timeout=0.2)
                        break
                    except mp.TimeoutError:
                        _drain(_STATE["queue"], say)
                _drain(_STATE["queue"], say)
                if not blob:
                    raise KeyboardInterrupt
                done[order[k]] = pickle.loads(blob)
    finally:
        _RUNS.clear()
        _STATE.clear()
    cpu: dict[str, Any] = {}
    for (r, j), (secs, fits, seconds, said, (c_step, c_figs, pid)) in sorted(done.items()):
        run = runs[r]
        run.sections.extend(secs)
        run.fits.extend(fits)
        run.pr.timings[run.steps[j][0]] = seconds
        cpu[f"{r}:{run.steps[j][0]}"] = {"step": c_step, "figures": c_figs, "worker": pid}
        for category, message in said:
            warnings.warn(message, category, stacklevel=2)
    return cpu


def execute(runs: Sequence[AuditRun], *, workers: int | None = None,
            figure_formats: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the steps of ``runs`` (the parts of an audit): their sections, fits and step times are filled in.

    ``workers``: 1 (serial) or 2 (two forked processes); default :func:`fork_workers`. With two workers and
    ``figure_formats``, each section's figures are drawn in the worker that built the section. Returns
    ``{"workers", "seconds", "cpu"}``: the route taken, the wall time of all steps and the CPU seconds of
    each step (``"part:step"``; with two workers the step's, its figures' and the worker's process id).
    """
    n = fork_workers() if workers is None else workers
    if n not in (1, 2):
        raise ValueError(f"workers must be 1 or 2 (or None: decided from the machine); got {workers!r}.")
    if n == 2 and (sum(len(run.steps) for run in runs) < 2 or not _can_fork()):
        n = 1  # nothing to share, or forking is not possible or not safe here
    t0 = time.perf_counter()
    if n == 1:
        cpu: dict[str, Any] = _serial(runs)
    else:
        from robustalign.report._figures import check_figure_formats

        cpu = _parallel(runs, check_figure_formats(figure_formats) if figure_formats is not None else None)
    return {"workers": n, "seconds": round(time.perf_counter() - t0, 2), "cpu": cpu}
