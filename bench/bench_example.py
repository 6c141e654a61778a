"""``robustalign audit --example --out DIR`` as a command: wall and CPU time against the goal of 15 s on 2 cores.

Two routes in the same run, alternating, medians of ``--repeats`` (default 3):

* **this version**: the audit's steps in two forked worker processes (the example's two parts share
  them, longest step first), each section's figures drawn by the worker that built it;
* **serial**: ``ROBUSTALIGN_WORKERS=1``, every step and figure one after the other in one process.

CPU time is the command's and its workers' (``resource.getrusage(RUSAGE_CHILDREN)``); on a shared
machine it is the steadier figure, so the load average (``os.getloadavg``) is printed before and after:
wall times mean something only when it is below 2 (two cores). The seeds and resample counts are the
example's own (2,000 resamples, 2,000 permutations); ``--quick`` uses 200 while developing. The two
routes' ``verdicts.csv`` are compared (same verdicts, numbers equal to 1e-12).

    python bench/run.py example
    python bench/run.py example -- --repeats 1 --quick
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 15.0


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} processors"


def _once(out: Path, serial: bool, extra: list[str]) -> tuple[float, float]:
    """(wall, cpu) of one ``audit --example`` command."""
    env = {**os.environ, "MPLBACKEND": "Agg", "ROBUSTALIGN_PROGRESS": "0"}
    env.pop("ROBUSTALIGN_WORKERS", None)
    if serial:
        env["ROBUSTALIGN_WORKERS"] = "1"
    args = [sys.executable, "-m", "robustalign", "audit", "--example", "--out", str(out), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"audit --example failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def _same_verdicts(a: Path, b: Path) -> str:
    import numpy as np
    import pandas as pd

    va, vb = pd.read_csv(a / "verdicts.csv"), pd.read_csv(b / "verdicts.csv")
    if va.shape != vb.shape or not va["verdict"].equals(vb["verdict"]):
        return "DIFFERENT verdicts"
    num = va.select_dtypes("number").columns
    same = np.allclose(va[num].to_numpy(float), vb[num].to_numpy(float), rtol=1e-12, atol=0, equal_nan=True)
    return f"same {len(va)} verdicts, numbers {'equal to 1e-12' if same else 'DIFFERENT'}"


def _critical_path(out: Path, cpu: float) -> str:
    """The CPU seconds on the longest path of a run with two workers: the parent's own (total minus the
    workers') plus the busier worker's (from the steps' CPU in provenance.json): what the wall time would
    be on two otherwise idle cores, give or take the waits between steps."""
    import json

    ex = json.loads((out / "provenance.json").read_text(encoding="utf-8")).get("execution", {})
    per: dict[int, float] = {}
    for v in ex.get("cpu", {}).values():
        if isinstance(v, dict):
            per[v["worker"]] = per.get(v["worker"], 0.0) + v["step"] + v["figures"]
    if len(per) < 2:
        return "critical path: not a two-worker run"
    parent = cpu - sum(per.values())
    a, b = sorted(per.values())
    return (f"critical path {parent + b:.1f} s CPU (parent {parent:.1f} s + busier worker {b:.1f} s; "
            f"the other worker {a:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_example")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200 resamples and permutations (not the example's own)")
    args = ap.parse_args(argv)
    extra = ["--n-resamples", "200", "--n-permutations", "200"] if args.quick else []
    load0 = os.getloadavg()[0]
    print(f"robustalign audit --example --out DIR{' (quick)' if args.quick else ''}; before: {_load()}")
    times: dict[str, list[tuple[float, float]]] = {"this version (2 workers)": [], "serial": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name, serial in (("this version (2 workers)", False), ("serial", True)):
                times[name].append(_once(Path(tmp) / f"{i}-{serial}", serial, extra))
        agree = _same_verdicts(Path(tmp) / "0-False", Path(tmp) / "0-True")
        paths = [_critical_path(Path(tmp) / f"{i}-False", times["this version (2 workers)"][i][1])
                 for i in range(args.repeats)]
    print(f"after: {_load()}")
    busy = load0 >= 2.0  # other work held the cores before the bench began: the wall time says little
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    for name, (wall, cpu) in med.items():
        goal = f"goal {GOAL_S:.0f} s: {'met' if wall < GOAL_S else 'NOT met'}"
        if busy:
            goal += ", but the machine was busy: see the critical path below"
        print(f"  {name:26s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  (median of {args.repeats}; {goal})")
    (w2, c2), (w1, c1) = med.values()
    print(f"  serial / this version: wall {w1 / w2:.2f} x, cpu {c1 / c2:.2f} x; {agree}")
    for i, p in enumerate(paths):
        print(f"  run {i + 1} of this version: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
