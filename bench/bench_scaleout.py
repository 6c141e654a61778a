"""Benchmark of the multiverse of a claim, serially and on a 2-worker local Dask cluster.

Workload
    ``simulate(n_models=3, n_items=40, n_groups=3, factors={"format": 5, "template": 3}, n_orders=1)``
    and the claim "model_1 is closer to C01 than model_2": 6 formats (5 + pooled) x 4 templates (3 +
    pooled) x 9 metric/aggregation pairs = 216 specifications, 120 distinct contrast computations,
    ``n_resamples=2000`` bootstrap resamples and ``n_permutations=10000`` sign-flip permutations (the
    defaults of ``audit_claim``).

Routes
    serial
        ``audit_claim(..., rng=0)`` in this process.
    dask, 2 workers
        The same call with ``executor=client.get_executor()`` on
        ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1")``. The
        cluster is started, and warmed up with one untimed run, before the timed repeats: start-up is
        reported separately, as a long-lived cluster would not pay it per call.

Both routes must give the same ``to_frame()`` bit for bit; the benchmark fails otherwise. Wall-clock
medians of the repeats (5 by default) are the figures; the CPU seconds of one more run of each route (the
workers' summed, and the client's) show the work the distribution adds, and the load average at start
and end shows how much of the machine other processes took. A calibration measures the parallel
capacity of the moment (two fixed pure-Python loops on the two workers at once against one alone): the
ceiling any 2-worker speed-up could reach during the run. The speed-up is bounded by the cores of the machine: on a
2-core machine two worker processes can at best halve the time, and the client process, the scheduler
and the transfer of the data to the workers share those cores.

Run with ``python bench/run.py scaleout`` (``make bench``); ``-- --quick`` uses fewer resamples and
repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import pandas as pd

from robustalign.claims.multiverse import Claim, audit_claim, enumerate_specifications
from robustalign.simulate import simulate


def _limit_blas(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return None
    return threadpool_limits(limits=threads)


def workload():
    s = simulate(n_models=3, n_items=40, n_groups=3, factors={"format": 5, "template": 3}, n_orders=1, rng=1)
    r, ref = s.load()
    return r, ref, Claim.closer("model_1", than="model_2", group="C01")


def _time(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def _worker_cpu() -> float:
    return time.process_time()


def _busy(n: int = 3_000_000) -> float:
    """A fixed pure-Python loop; returns its wall time."""
    t = time.perf_counter()
    x = 0
    for i in range(n):
        x += i & 7
    return time.perf_counter() - t


def _capacity(client) -> float:
    """How many cores two workers get right now: 2 x (one loop here) / (two loops, one per worker, at once)."""
    client.run(_busy, 200_000)  # warm
    alone = statistics.median(_busy() for _ in range(3))
    both = []
    for _ in range(3):
        t = time.perf_counter()
        client.run(_busy)
        both.append(time.perf_counter() - t)
    return 2 * alone / statistics.median(both)


def _cpu_of(fn, client=None) -> tuple[float, float]:
    """(this process's CPU seconds, the workers' CPU seconds) spent in ``fn()``."""
    w0 = sum(client.run(_worker_cpu).values()) if client is not None else 0.0
    c0 = time.process_time()
    fn()
    c1 = time.process_time()
    w1 = sum(client.run(_worker_cpu).values()) if client is not None else 0.0
    return c1 - c0, w1 - w0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_scaleout", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 resamples, 2000 permutations, 2 repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per route (default 5; 2 with --quick)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv or [])
    repeats = args.repeats or (2 if args.quick else 5)
    kw = {"n_resamples": 500 if args.quick else 2000, "n_permutations": 2000 if args.quick else 10_000, "rng": 0}

    import distributed

    limiter = _limit_blas(1)  # the workers run with one BLAS thread each (Dask's default); so does the serial run
    r, ref, claim = workload()
    n_specs = len(enumerate_specifications(r, claim, reference=ref))
    cores = os.cpu_count()
    print(f"scale-out benchmark: multiverse of {n_specs} specifications, {kw['n_resamples']} resamples, "
          f"{kw['n_permutations']} permutations; {cores} CPUs, load average {os.getloadavg()[0]:.2f} at start",
          flush=True)
    audit_claim(r, ref, claim, **{**kw, "n_resamples": 50, "n_permutations": 50})  # imports, caches

    serial_t, serial = _time(lambda: audit_claim(r, ref, claim, **kw), repeats)
    cpu_serial = _cpu_of(lambda: audit_claim(r, ref, claim, **kw))[0]
    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    startup = time.perf_counter() - t0
    try:
        ex = client.get_executor()
        t0 = time.perf_counter()
        audit_claim(r, ref, claim, executor=ex, **kw)  # warm-up: imports on the workers
        first = time.perf_counter() - t0
        capacity = _capacity(client)
        dask_t, dist = _time(lambda: audit_claim(r, ref, claim, executor=ex, **kw), repeats)
        cpu_dask = _cpu_of(lambda: audit_claim(r, ref, claim, executor=ex, **kw), client)
    finally:
        client.close()
        cluster.close()
    same = serial.to_frame().equals(dist.to_frame()) and serial.verdicts.equals(dist.verdicts)
    try:
        pd.testing.assert_frame_equal(serial.to_frame(), dist.to_frame(), check_exact=True)
    except AssertionError:
        same = False
    s_med, d_med = statistics.median(serial_t), statistics.median(dask_t)
    ratio = s_med / d_med
    print(f"{'route':>18} {'median s':>9}  repeats (s)")
    print(f"{'serial':>18} {s_med:>9.2f}  {', '.join(f'{t:.2f}' for t in serial_t)}")
    print(f"{'dask, 2 workers':>18} {d_med:>9.2f}  {', '.join(f'{t:.2f}' for t in dask_t)}")
    print(f"speed-up with 2 workers: {ratio:.2f}x (serial median / dask median) on a machine with {cores} cores; "
          f"cluster start-up {startup:.1f} s and first (cold) distributed run {first:.1f} s not included")
    print(f"parallel capacity at the time: two busy loops on the two workers ran {capacity:.2f}x as fast as one "
          "(2.00 on an idle 2-core machine): the ceiling of any 2-worker speed-up during this run")
    print(f"CPU seconds of one run: serial {cpu_serial:.2f}; distributed {cpu_dask[1]:.2f} in the workers + "
          f"{cpu_dask[0]:.2f} in this process (client)")
    print(f"  [{'ok' if same else 'MISSED'}] the distributed to_frame() equals the serial one bit for bit")
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if limiter is not None:
        limiter.restore_original_limits()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n_specifications": n_specs, **{k: v for k, v in kw.items() if k != "rng"}, "cores": cores,
                       "serial_s": serial_t, "dask_s": dask_t, "serial_median_s": s_med, "dask_median_s": d_med,
                       "speedup": ratio, "cpu_serial_s": cpu_serial, "cpu_workers_s": cpu_dask[1],
                       "cpu_client_s": cpu_dask[0], "parallel_capacity": capacity, "load_average": os.getloadavg()[0], "startup_s": startup, "first_run_s": first, "identical": same}, fh, indent=2)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
