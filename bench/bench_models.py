"""Benchmark: robustalign's response model against the naive route, at one tenth of and at the full workload.

Workload (the resampling issue's): 12 models x Q items x 6 formats x 2 option orders x 5 steering
prompts x 5 samples, 4 options; Q = 200 gives 720,000 responses (144,000 cells), Q = 20 one tenth.

* robustalign: :func:`robustalign.models.fit_response_model` (answer counts per cell on the dense
  model x item x factor grid, the fused likelihood kernel, nutpie with the numba backend).
* naive: the same model (the same priors and parametrisation, built by the same code) written the way
  a user would write it first: one ``pm.OrderedLogistic`` likelihood row per response (``compute_p=False``),
  sampled by ``pm.sample()`` with its default sampler (nutpie, when installed, as it is with robustalign;
  ``--naive-sampler pymc`` for PyMC's own NUTS).

Both routes use the same settings (4 chains x ``--tune`` + 1,000 draws, ``--target-accept`` 0.8, 2 cores) and
the same gate (docs/bayesian.md, section 3; the verdict of the earlier rule, R-hat <= 1.01 in every scalar, is
reported too). Reported per route: wall time,
compile time, sampling time, min bulk ESS per second of sampling, NUTS steps per draw, peak resident
memory of the route's own process. The naive route at full size would take hours; it is predicted from
its measured gradient cost at full size x the steps per draw of robustalign's full fit (the posterior is
the same) x draws, and marked as a prediction.

Also timed: one log density + gradient of robustalign's model with the fused kernel against the same
model's PyTensor graph (the alternative the kernel replaces), at both sizes; and the kernel's grid pass as
shipped (fast-math ``nnan`` only) against the same source compiled with no flag, alternating in one process,
with a check that the two give the same bits.

Run: ``python bench/run.py models`` (tenth, both routes, and the full robustalign fit twice, each in a new
process: with the compile caches as found, then warm), with ``-- --skip-full`` to stop after the tenth,
``-- --curve`` to add 360,000 responses and extrapolate sampling time to 7,200,000, ``-- --seed N``. Lines
starting ``GOAL`` compare a measurement with the issue's goal. ``bench/gate_record.py`` runs seeds 1..10
at full size, each in a new process (``bench/results/gate_record_Q200_ta08.jsonl``); the first GOAL lines read
each record file: seeds passed out of seeds run, fits under 5 minutes including compile, fits after the
first (warm caches) under 3 minutes, and the machine.

Ten times the size (7,200,000 responses, Q = 2,000) is not fitted; ``bench_models.py --curve-record`` measures
a curve instead (Q = 20 ... 400 with short fits, and Q = 2,000 up to the compile; each point in its own niced
process; ``--curve-items Q ...`` reruns single points) into ``bench/results/curve_Q2000.json``, and every bench
run prints the curve and a GOAL line for 7,200,000 predicted from that record (``curve_prediction``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

CHAINS, DRAWS, CORES = 4, 1000, 2
TARGET_ACCEPT = 0.8  # the library default (robustalign.models.fit_response_model)


def workload(n_items: int, rng: int = 0) -> tuple[Any, Any]:
    from robustalign.simulate import simulate

    sim = simulate(n_models=12, n_items=n_items, n_groups=6, factors={"format": 6}, n_orders=2, n_steer=4,
                   n_samples=5, K=4, rng=rng)
    return sim.load()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gate_row(route: str, idata: Any, n_responses: int, compile_s: float, sample_s: float, wall_s: float,
              extra: dict | None = None) -> dict:
    from robustalign.models._sampling import GATE, diagnose

    t0 = time.perf_counter()
    _, g = diagnose(idata)
    diagnose_s = time.perf_counter() - t0
    # the earlier rule (R-hat <= 1.01 in every scalar), reported next to the gate's verdict
    every_scalar = bool(g["max_r_hat"] <= GATE["max_r_hat"] and g["min_ess_bulk"] >= GATE["min_ess_bulk"]
                        and g["min_ess_tail"] >= GATE["min_ess_tail"] and g["divergences"] <= GATE["max_divergences"]
                        and not g["min_e_bfmi"] < GATE["min_e_bfmi"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    ss = idata["sample_stats"]
    steps = float(np.asarray(ss["n_steps"]).mean()) if "n_steps" in ss else float("nan")
    return {"route": route, "n_responses": n_responses, "wall_s": wall_s, "compile_s": compile_s,
            "sample_s": sample_s, "min_ess_bulk": g["min_ess_bulk"], "min_ess_tail": g["min_ess_tail"],
            "ess_per_s": g["min_ess_bulk"] / sample_s, "max_r_hat": g["max_r_hat"],
            "divergences": g["divergences"], "converged": g["converged"], "steps_per_draw": steps,
            "max_r_hat_each": g["max_r_hat_each"], "max_r_hat_table": g["max_r_hat_table"],
            "max_share_r_hat_above": g["max_share_r_hat_above"], "max_spread_r_hat": g["max_spread_r_hat"],
            "min_e_bfmi": g["min_e_bfmi"], "converged_every_scalar_rule": every_scalar, "diagnose_s": diagnose_s,
            "cpu_s": usage.ru_utime + usage.ru_stime, "load_avg_1min_end": os.getloadavg()[0],
            "peak_mb": _peak_mb(), **(extra or {})}


def route_robustalign(n_items: int, tune: int, seed: int = 1, target_accept: float = TARGET_ACCEPT) -> dict:
    load0 = os.getloadavg()[0]
    from robustalign.models import fit_response_model

    resp, _ = workload(n_items)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_response_model(resp, draws=DRAWS, tune=tune, chains=CHAINS, cores=CORES, rng=seed,
                                 target_accept=target_accept)
    wall = time.perf_counter() - t0
    p = fit.provenance
    return _gate_row("robustalign", fit.idata, fit.design.n_responses, p["compile_s"], p["sample_s"], wall,
                     {"n_cells": fit.design.n_cells, "backend": p["backend"], "tune": tune, "seed": seed,
                      "target_accept": target_accept,
                      "compiled_reused": p.get("compiled_reused"), "load_avg_1min_start": load0,
                      "extension": p.get("extension")})


def naive_model(resp: Any) -> Any:
    """The response model with one likelihood row per response (the same priors, built by the same code)."""
    import dataclasses

    import pymc as pm

    from robustalign.models._design import ordinal_design
    from robustalign.models._graph import _centred_cutpoints, crossed_effects

    d = ordinal_design(resp)
    counts, k_item = d.counts, d.K_item
    assert counts is not None and k_item is not None  # an ordinal design always has both
    # one "cell" per response: the design's index arrays repeated by the cell counts, gathered row by
    # row (max_fill=0) as a user would index
    cell = np.repeat(np.arange(d.n_cells), counts.sum(1).astype(int))
    y = np.concatenate([np.repeat(np.arange(counts.shape[1]), c.astype(int)) for c in counts])
    assert len(y) == len(resp.valid())
    rows = dataclasses.replace(d, idx={a: i[cell] for a, i in d.idx.items()}, n_cells=len(y),
                               counts=np.eye(counts.shape[1])[y], max_fill=0.0)
    with pm.Model(coords=rows.coords) as m:
        eta = crossed_effects(rows, model_means_free=True)
        K = int(k_item[0])
        tau = pm.Deterministic(f"cutpoints_K{K}", _centred_cutpoints(K))
        pm.OrderedLogistic("y", eta=eta, cutpoints=tau, observed=y, compute_p=False)
    return m


def route_naive(n_items: int, tune: int, sampler: str, seed: int = 1, target_accept: float = TARGET_ACCEPT) -> dict:
    import pymc as pm

    resp, _ = workload(n_items)
    m = naive_model(resp)
    kw = {} if sampler == "default" else {"nuts_sampler": sampler}
    t0 = time.perf_counter()
    with m, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(DRAWS, tune=tune, chains=CHAINS, cores=CORES, random_seed=seed,
                          nuts={"target_accept": target_accept}, progressbar=False, compute_convergence_checks=False, **kw)
    wall = time.perf_counter() - t0
    lib = idata["posterior"].attrs.get("inference_library", "?")
    # pm.sample compiles inside the call: the wall time is the sampling time here
    return _gate_row(f"naive ({lib})", idata, len(resp.valid()), float("nan"), wall, wall, {"tune": tune})


def route_naive_gradient(n_items: int) -> dict:
    """Milliseconds per log-density + gradient of the naive model (numba, as pm.sample's default compiles)."""
    resp, _ = workload(n_items)
    return {"route": "naive gradient", "n_responses": len(resp.valid()),
            "gradient_ms": _gradient_ms(naive_model(resp), 5, jitter=0.0), "peak_mb": _peak_mb()}


def _gradient_ms(m: Any, calls: int, jitter: float, fastmath: bool = True) -> float:
    """Median milliseconds of one log density + gradient of model ``m`` (numba, one ``pt.grad`` as
    nutpie compiles it), at the initial point plus N(0, jitter) noise."""
    import pytensor
    import pytensor.tensor as pt

    logp = m.logp()
    with pytensor.config.change_flags(numba__fastmath=fastmath):
        grads = pt.grad(logp, m.value_vars)
        assert isinstance(grads, list)  # one gradient per value variable
        f = pytensor.function(m.value_vars, [logp, *grads], mode="NUMBA")
    ip = m.initial_point()
    noise = np.random.default_rng(0)
    vals = [ip[v.name] + noise.normal(0, jitter, np.shape(ip[v.name])) for v in m.value_vars]
    f(*vals)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        f(*vals)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def route_kernel_gradient(n_items: int) -> dict:
    """Milliseconds per log density + gradient of robustalign's model: fused kernel vs PyTensor graph.

    Both compiled as a fit compiles them (numba without PyTensor's fast-math flags, one ``pt.grad``
    of the log density), one core, median of 200 calls at the same point.
    """
    from robustalign.models._design import ordinal_design
    from robustalign.models._graph import build_ordinal

    resp, _ = workload(n_items)
    d = ordinal_design(resp)
    return {"route": "gradient per call", "n_responses": d.n_responses,
            **{"fused_ms" if fused else "pytensor_ms": _gradient_ms(build_ordinal(d, fused=fused), 200, 0.3, False)
               for fused in (True, False)}, **_grid_pass_ms(d)}


def _previous_grid_pass():
    """The grid pass of the previous version, for the ratio: one cutpoint at a time, ``log1p``'s polynomial in
    separate multiplications and additions (fast-math ``nnan`` only, as shipped then)."""
    import numba as nb

    from robustalign.models import _kernel as k

    @nb.njit(inline="always", error_model="numpy")
    def log1p_mul_add(y):
        big = y > k._SQRT2_M1
        f = (y - 1.0) * 0.5 if big else y
        kk = 1.0 if big else 0.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        r = z * (k._LG1 + w * (k._LG3 + w * (k._LG5 + w * k._LG7))) + w * (k._LG2 + w * (k._LG4 + w * k._LG6))
        hfsq = 0.5 * f * f
        return kk * k._LN2_HI - ((hfsq - (s * (hfsq + r) + kk * k._LN2_LO)) - f)

    @nb.njit(error_model="numpy", fastmath={"nnan"})
    def previous(a, c, e, tau, N):
        M, Q = a.shape
        G, J = c.shape[1], tau.shape[1]
        Ea, Ec, Ee, Et = np.exp(-a), np.exp(-c), np.exp(-e), np.exp(tau)
        Eai, Eci, Eei, Eti = 1.0 / Ea, 1.0 / Ec, 1.0 / Ee, 1.0 / Et
        ga, gc, ge, gt = np.zeros((M, Q)), np.zeros((M, G)), np.zeros((Q, G)), np.zeros((Q, J))
        w, wi, eta, s_eta = np.empty(G), np.empty(G), np.empty(G), np.empty(G)
        l_acc, t_acc, lanes = np.zeros(G), np.zeros((Q, J, G)), np.empty(8)
        for m in range(M):
            for q in range(Q):
                for g in range(G):
                    w[g] = Ea[m, q] * Ec[m, g] * Ee[q, g]
                    wi[g] = Eai[m, q] * Eci[m, g] * Eei[q, g]
                    eta[g] = a[m, q] + c[m, g] + e[q, g]
                    s_eta[g] = 0.0
                for j in range(J):
                    t, ti, tj = Et[q, j], Eti[q, j], tau[q, j]
                    for g in range(G):
                        n = N[m, q, j, g]
                        x = tj - eta[g]
                        pos = x > 0.0
                        y = ti * wi[g] if pos else t * w[g]
                        l_acc[g] += n * (log1p_mul_add(y) + (x if pos else 0.0))
                        r = 1.0 / (1.0 + y)
                        sv = n * (r if pos else y * r)
                        s_eta[g] += sv
                        t_acc[q, j, g] += sv
                for g in range(G):
                    gc[m, g] += s_eta[g]
                    ge[q, g] += s_eta[g]
                ga[m, q] = k._lane_sum(s_eta, G, lanes)
        for q in range(Q):
            for j in range(J):
                gt[q, j] = -k._lane_sum(t_acc[q, j], G, lanes)
        return -k._lane_sum(l_acc, G, lanes), ga, gc, ge, gt

    return previous


def _grid_pass_ms(d: Any, rounds: int = 40, calls: int = 10) -> dict:
    """The kernel's grid pass alone, as shipped (fast-math ``nnan`` only), the same source compiled with
    no fast-math flag, and the previous version's pass (:func:`_previous_grid_pass`), on this design's counts
    at a point near the posterior's scale: medians over rounds of the best of ``calls`` calls, the three
    interleaved (so load drifts hit all), whether the first two give bit-identical outputs, and the largest
    relative difference between the shipped and the previous pass (their ``log1p`` rounds differently in
    about 0.2% of its values)."""
    import numba as nb

    from robustalign.models._graph import ordinal_data
    from robustalign.models._kernel import _fast

    plain = nb.njit(error_model="numpy")(_fast.py_func)
    N = ordinal_data(d)["N"]
    M, Q, J, G = N.shape
    rng = np.random.default_rng(0)
    args = (rng.normal(0, 1, (M, Q)), rng.normal(0, 0.3, (M, G)), rng.normal(0, 0.3, (Q, G)),
            np.sort(rng.normal(0, 1, (Q, J)), 1), N)
    previous = _previous_grid_pass()
    same = all(np.array_equal(x, y) for x, y in zip(_fast(*args), plain(*args), strict=True))
    rel = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))) / np.max(np.abs(np.asarray(y))))
              for x, y in zip(_fast(*args), previous(*args), strict=True))
    best: dict[str, list[float]] = {"nnan": [], "plain": [], "previous": []}
    for _ in range(rounds):
        for key, f in (("nnan", _fast), ("plain", plain), ("previous", previous)):
            t = []
            for _ in range(calls):
                t0 = time.perf_counter()
                f(*args)
                t.append(time.perf_counter() - t0)
            best[key].append(min(t))
    ratio = float(np.median(np.array(best["plain"]) / np.array(best["nnan"])))
    return {"grid_nnan_ms": 1000 * float(np.median(best["nnan"])),
            "grid_plain_ms": 1000 * float(np.median(best["plain"])), "grid_plain_over_nnan": ratio,
            "grid_bit_identical": same, "grid_previous_ms": 1000 * float(np.median(best["previous"])),
            "grid_previous_over_nnan": float(np.median(np.array(best["previous"]) / np.array(best["nnan"]))),
            "grid_previous_max_rel_diff": rel}


#: The size curve (``--curve``): items per point (x 3,600 responses), short fits up to ``SHORT_MAX_ITEMS``.
CURVE_ITEMS = (20, 50, 100, 200, 400, 2000)
SHORT_MAX_ITEMS = 400
SHORT_TUNE, SHORT_DRAWS = 300, 150
TARGET_ITEMS, TARGET_MIN, TARGET_GB = 2000, 30.0, 8.0
CURVE_FILE = Path(__file__).resolve().parent / "results" / "curve_Q2000.json"


def _rss_mb() -> float:
    """Current resident memory of this process (Linux ``/proc``; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _stored_scalars(compiled: Any) -> int:
    """Scalars the sampler stores per draw: every free variable and Deterministic (nutpie's ``shapes``)."""
    return int(sum(int(np.prod(s)) for s in compiled.shapes.values()))


def _sampler_gradient_ms(compiled: Any, calls: int, jitter: float) -> tuple[float, float]:
    """Median milliseconds of one call of the log density + gradient function nutpie samples (the fused
    kernel, numba, single-threaded), at the sampler's initial point plus N(0, jitter) noise: the calling
    thread's CPU time (what other processes on a busy machine do not inflate) and the wall time."""
    x0 = np.asarray(compiled.initial_point_func(0), float)
    x = x0 + np.random.default_rng(0).normal(0, jitter, x0.shape)
    compiled.logp_func(x)
    cpu, wall = [], []
    for _ in range(calls):
        c0, t0 = time.thread_time(), time.perf_counter()
        compiled.logp_func(x)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    return 1000 * float(np.median(cpu)), 1000 * float(np.median(wall))


def _point(n_items: int) -> tuple[dict, Any]:
    """One curve point without sampling: the design's build time, the model's build and compile time and the
    peak memory up to there, the scalars stored per draw, and the log density + gradient cost of the function
    the sampler calls (the fused kernel, numba, one core, median of repeated calls). Returns the row and the
    compiled model."""
    from robustalign.models._design import ordinal_design
    from robustalign.models._graph import build_ordinal
    from robustalign.models._sampling import compile_nutpie

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    resp, _ = workload(n_items)
    t1, c1 = time.perf_counter(), time.process_time()
    d = ordinal_design(resp)
    t2, c2 = time.perf_counter(), time.process_time()
    peak_design = _peak_mb()
    compiled = compile_nutpie(build_ordinal(d), "numba")
    t3, c3 = time.perf_counter(), time.process_time()
    # CPU seconds next to the wall seconds: on a busy machine only the CPU seconds say what an idle one takes
    row = {"n_items": n_items, "n_responses": d.n_responses, "n_cells": d.n_cells, "simulate_s": t1 - t0,
           "design_s": t2 - t1, "build_compile_s": t3 - t2, "design_cpu_s": c2 - c1, "build_compile_cpu_s": c3 - c2,
           "peak_mb_design": peak_design,
           "peak_mb_compiled": _peak_mb(), "rss_mb_compiled": _rss_mb(), "stored_scalars": _stored_scalars(compiled),
           "n_dim": int(compiled.n_dim), "load_avg_1min_start": load0,
           "stored_by_variable": {k: int(np.prod(v)) for k, v in compiled.shapes.items()}}
    calls = 200 if d.n_cells <= 300_000 else 50
    cpu_ms, wall_ms = _sampler_gradient_ms(compiled, calls, 0.3)
    row.update({"fused_ms": cpu_ms, "fused_wall_ms": wall_ms, "gradient_calls": calls})
    return row, compiled


def route_point(n_items: int) -> dict:
    """A curve point without sampling, in its own process (peak memory is its own)."""
    row, _ = _point(n_items)
    return {"route": "point", **row, "load_avg_1min_end": os.getloadavg()[0]}


def route_short(n_items: int, tune: int, draws: int, seed: int, target_accept: float = TARGET_ACCEPT) -> dict:
    """A curve point (``_point``) and a short fit of it (nutpie as a fit runs it, warm-up draws kept to count
    every gradient): NUTS steps per draw, the sampler's CPU milliseconds per gradient, the memory the
    stored draws and the diagnostics add."""
    import nutpie

    from robustalign.models._sampling import diagnose

    row, compiled = _point(n_items)
    rss0, peak0, cpu0 = _rss_mb(), _peak_mb(), time.process_time()
    t0 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=CHAINS, cores=CORES, seed=seed,
                          target_accept=target_accept, progress_bar=False, save_warmup=True)
    sample_s, sample_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    peak1, rss1 = _peak_mb(), _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    _, g = diagnose(idata)
    diagnose_s, diagnose_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    post_steps = np.asarray(idata["sample_stats"]["n_steps"], float)
    warm_steps = np.asarray(idata["warmup_sample_stats"]["n_steps"], float)
    gradients = float(post_steps.sum() + warm_steps.sum())
    held = (tune + draws) * CHAINS * row["stored_scalars"] * 8 / 2**20  # warm-up and posterior draws, float64
    return {"route": "short", **row, "tune": tune, "draws": draws, "seed": seed, "sample_s": sample_s,
            "sample_cpu_s": sample_cpu_s, "steps_per_draw": float(post_steps.mean()),
            "warmup_steps_per_draw": float(warm_steps.mean()), "gradients": gradients,
            "core_ms_per_gradient": 1000 * sample_cpu_s / gradients,
            "step_size": float(np.asarray(idata["sample_stats"]["step_size"]).mean()),
            "divergences": g["divergences"], "max_r_hat": g["max_r_hat"], "draws_mb": held,
            "rss_mb_before": rss0, "rss_mb_after_sample": rss1, "peak_mb_before": peak0,
            "peak_mb_after_sample": peak1, "diagnose_s": diagnose_s, "diagnose_cpu_s": diagnose_cpu_s,
            "peak_mb": _peak_mb(),
            "load_avg_1min_end": os.getloadavg()[0]}


def _curve_record(seed: int, items: list[int] | None = None, path: Path = CURVE_FILE) -> None:
    """Run the size curve, each point in its own niced process, and write ``CURVE_FILE`` after every point
    (so an interrupted run keeps the points it has). With ``items``, only those points run again and
    replace their rows in the existing record."""
    from gate_record import _cpu_model

    head: dict[str, Any] = {"machine": _cpu_model(), "cores": os.cpu_count(), "chains": CHAINS, "sampler_cores": CORES,
            "short_tune": SHORT_TUNE, "short_draws": SHORT_DRAWS, "seed": seed,
            "load_avg_1min_start": os.getloadavg()[0], "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "points": []}
    if items and path.exists():
        old = json.loads(path.read_text())
        head.update({k: old[k] for k in ("load_avg_1min_start", "started") if k in old},
                    points=[r for r in old["points"] if r["n_items"] not in items])
    path.parent.mkdir(parents=True, exist_ok=True)
    # the smallest and the target size first: an interrupted run keeps the points that matter most
    for q in items or sorted(CURVE_ITEMS, key=lambda q: (q not in (CURVE_ITEMS[0], TARGET_ITEMS), q)):
        kind = "short" if q <= SHORT_MAX_ITEMS else "point"
        t0 = time.perf_counter()
        row = _spawn([kind, str(q), "--seed", str(seed)], nice=5)
        head["points"].append({**row, "process_wall_s": time.perf_counter() - t0})
        head["points"].sort(key=lambda r: r["n_items"])
        head["load_avg_1min_end"] = os.getloadavg()[0]
        path.write_text(json.dumps(head, indent=1, default=float) + "\n")
        print(json.dumps(row, default=float), flush=True)


def _spawn(args: list[str], nice: int = 0) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--route", *args], capture_output=True,
                         text=True, check=True, preexec_fn=(lambda: os.nice(nice)) if nice else None)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _show(label: str, r: dict) -> None:
    keys = ("wall_s", "compile_s", "sample_s", "cpu_s", "min_ess_bulk", "ess_per_s", "max_r_hat", "max_r_hat_each",
            "max_share_r_hat_above", "divergences", "converged", "converged_every_scalar_rule", "steps_per_draw",
            "peak_mb", "gradient_ms", "load_avg_1min_start")
    print(f"{label:<34}" + "  ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}"
                                     for k in keys if k in r), flush=True)


def _goal(label: str, value: str, goal: str, met: bool) -> None:
    print(f"GOAL  {label:<44} {value:<34} goal: {goal:<22} {'met' if met else 'NOT met'}", flush=True)


def _tenth(common: list[str]) -> None:
    ra = _spawn(["robustalign", "20", *common])
    _show("tenth (72,000): robustalign", ra)
    nv = _spawn(["naive", "20", *common])
    _show(f"tenth (72,000): {nv['route']}", nv)
    ratio = ra["ess_per_s"] / nv["ess_per_s"]
    print(f"tenth: wall ratio {nv['wall_s'] / ra['wall_s']:.1f}x; peak memory {ra['peak_mb']:.0f} vs "
          f"{nv['peak_mb']:.0f} MB", flush=True)
    _goal("ESS/s vs naive at 72,000 (same run)", f"{ratio:.1f}x ({ra['ess_per_s']:.1f} vs {nv['ess_per_s']:.2f})",
          ">= 10x", ratio >= 10)
    for q, label in (("20", "tenth"), ("200", "full")):
        k = _spawn(["kernel", q, *common])
        print(f"{label}: log density + gradient per call (numba, one core): fused kernel {k['fused_ms']:.2f} ms, "
              f"PyTensor graph {k['pytensor_ms']:.2f} ms ({k['pytensor_ms'] / k['fused_ms']:.1f}x)", flush=True)
        print(f"{label}: the kernel's grid pass: {k['grid_nnan_ms']:.2f} ms with fast-math nnan, "
              f"{k['grid_plain_ms']:.2f} ms without ({k['grid_plain_over_nnan']:.2f}x, median of paired rounds); "
              f"bit-identical outputs: {k['grid_bit_identical']}", flush=True)
        print(f"{label}: the previous version's grid pass (one cutpoint at a time, no FMA): "
              f"{k['grid_previous_ms']:.2f} ms ({k['grid_previous_over_nnan']:.2f}x this version's; largest relative "
              f"difference of the outputs {k['grid_previous_max_rel_diff']:.1e})", flush=True)


def _full(common: list[str], tune: int, curve: bool) -> None:
    rf = _spawn(["robustalign", "200", *common])
    _show("full (720,000): robustalign", rf)
    _goal("720,000: wall incl. compile, new process", f"{rf['wall_s']:.0f} s (compile {rf['compile_s']:.0f} s)",
          "< 300 s", rf["wall_s"] < 300)
    _goal("720,000: gate", f"converged={rf['converged']}", "passes (9 of 10 seeds)", bool(rf["converged"]))
    warm = _spawn(["robustalign", "200", *common])  # same structure, new process: on-disk caches warm
    _show("full (720,000): warm caches", warm)
    _goal("720,000: wall, warm compile cache, new process", f"{warm['wall_s']:.0f} s (compile "
          f"{warm['compile_s']:.0f} s)", "< 180 s", warm["wall_s"] < 180)
    g = _spawn(["gradient", "200", *common])
    _show("full (720,000): naive gradient", g)
    # predicted naive sampling time: gradients per chain x gradient cost, chains over the cores
    naive_s = rf["steps_per_draw"] * (tune + DRAWS) * CHAINS / CORES * g["gradient_ms"] / 1000
    naive_ess_per_s = rf["min_ess_bulk"] / naive_s  # same posterior and sampler: same ESS per draw
    print(f"full: naive predicted {naive_s / 60:.0f} min of sampling ({rf['steps_per_draw']:.0f} steps/draw x "
          f"{g['gradient_ms']:.1f} ms/gradient); ESS/s ratio {rf['ess_per_s'] / naive_ess_per_s:.0f}x", flush=True)
    if curve:
        rows = [_spawn(["robustalign", str(q), *common]) for q in (20, 100)] + [rf]
        for r in rows:
            _show(f"curve ({r['n_responses']:,})", r)
        # sampling time per response grows with the steps per draw; extrapolate by the last two sizes
        (n1, s1), (n2, s2) = [(r["n_responses"], r["sample_s"]) for r in rows[-2:]]
        b = np.log(s2 / s1) / np.log(n2 / n1)
        print(f"curve: sampling time ~ n^{b:.2f}; predicted at 7,200,000: {s2 * 10**b / 60:.0f} min of sampling",
              flush=True)


def _record(items: int = 200) -> None:
    """The gate over seeds, from ``bench/gate_record.py``'s files (fits too long to repeat in every bench run):
    one file per sampler setting (``gate_record_Q200_ta08.jsonl``: target_accept 0.8, the default; ``..._ta09``: 0.9)."""
    paths = sorted((Path(__file__).resolve().parent / "results").glob(f"gate_record_Q{items}*.jsonl"))
    if not paths:
        print(f"gate record: none yet (gate_record_Q{items}.jsonl; run bench/gate_record.py)", flush=True)
        return
    for path in paths:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        ta = sorted({float(r.get("target_accept", 0.9)) for r in rows})
        passed = [r["seed"] for r in rows if r.get("converged")]
        failed = [r["seed"] for r in rows if not r.get("converged")]
        extended = [r["seed"] for r in rows if r.get("extension")]
        machines = sorted({f"{r.get('machine', '?')} ({r.get('cores', '?')} cores)" for r in rows})
        label = f"{items * 3600:,}: gate over seeds, target_accept {'/'.join(f'{t:g}' for t in ta)}"
        _goal(label, f"{len(passed)} of {len(rows)} passed (failed: {failed or 'none'})", ">= 9 of 10",
              len(rows) >= 10 and len(passed) >= 0.9 * len(rows))
        # wall including compile, in fits that started on a quiet machine (load average below 2 on 2 cores)
        quiet = [r for r in rows if r.get("load_avg_1min_start", 99) < 2.0 and "wall_s" in r]
        if quiet:
            walls = np.array([r["wall_s"] for r in quiet])
            under = int(np.sum(walls < 300))
            _goal(f"{items * 3600:,}: wall incl. compile, quiet seeds", f"{under} of {len(quiet)} under 300 s "
                  f"(median {np.median(walls):.0f}, max {walls.max():.0f})", "< 300 s in >= 9 of 10",
                  under >= 0.9 * len(quiet))
            # every seed after a file's first ran on the caches an earlier seed of the same record had filled
            warm = np.array([r["wall_s"] for r in quiet if r is not rows[0]])
            if warm.size:
                fast = int(np.sum(warm < 180))
                _goal(f"{items * 3600:,}: wall, warm caches (seeds after the first)", f"{fast} of {warm.size} under "
                      f"180 s (median {np.median(warm):.0f}, min {warm.min():.0f})", "< 180 s", fast >= 0.9 * warm.size)
        print(f"gate record: {path.name}, machine {', '.join(machines)}; extended: {extended or 'none'}", flush=True)


def _line_prediction(x: np.ndarray, y: np.ndarray, at: float) -> tuple[float, float, float]:
    """A least-squares line's value at ``at`` and its 90% prediction interval (statsmodels OLS, t with
    points - 2 degrees of freedom)."""
    import statsmodels.api as sm

    fit = sm.OLS(y, sm.add_constant(x)).fit()
    f = fit.get_prediction(np.array([[1.0, at]])).summary_frame(alpha=0.1)
    return float(f["mean"].iloc[0]), float(f["obs_ci_lower"].iloc[0]), float(f["obs_ci_upper"].iloc[0])


def curve_prediction(rec: dict, tune: int = 500, draws: int = DRAWS) -> dict:
    """The full fit (``tune`` + ``draws``, 4 chains on 2 cores) at the target size, predicted from the curve.

    sampling CPU seconds = steps per draw x (tune + draws + warm-up excess) x chains x CPU ms per gradient:

    * steps per draw: a least-squares line against log responses through the short fits, its 90% prediction
      interval, the lower end no lower than the largest size's steps (the step size shrinks as the posterior
      narrows with the data; measured so at every size);
    * CPU ms per gradient inside the sampler (CPU seconds of sampling / gradients, so load does not inflate
      it much): a line against cells through the short fits, its 90% prediction interval;
    * warm-up excess: the gradients the warm-up took beyond as many draws, in draws, mean of the two
      largest short fits.

    The interval multiplies the ends of the two intervals. Wall = design + compile (CPU seconds measured at the
    target) + sampling CPU / cores + diagnostics (the largest short fit's CPU seconds per stored value,
    scaled). Memory = the target's measured peak after compiling + the stored draws x the largest short
    fit's resident MB per MB of draws held (warm-up and posterior, every stored scalar, float64).
    """
    pts = {r["n_items"]: r for r in rec["points"]}
    shorts = sorted((r for r in rec["points"] if r["route"] == "short"), key=lambda r: r["n_items"])
    top = pts.get(TARGET_ITEMS)
    if top is None or len(shorts) < 3:
        return {}
    steps, s_lo, s_hi = _line_prediction(np.log([r["n_responses"] for r in shorts]),
                                         np.array([r["steps_per_draw"] for r in shorts]), np.log(top["n_responses"]))
    s_lo = max(s_lo, shorts[-1]["steps_per_draw"])
    grad, g_lo, g_hi = _line_prediction(np.array([r["n_cells"] for r in shorts], float),
                                        np.array([r["core_ms_per_gradient"] for r in shorts]), top["n_cells"])
    excess = float(np.mean([r["gradients"] / (r["steps_per_draw"] * CHAINS) - r["tune"] - r["draws"]
                            for r in shorts[-2:]]))

    def minutes(st: float, ms: float) -> float:
        return st * (tune + draws + excess) * CHAINS * ms / 1000 / CORES / 60

    last = shorts[-1]
    values = last["stored_scalars"] * last["draws"] * CHAINS
    diag_s = last.get("diagnose_cpu_s", last["diagnose_s"]) / values * top["stored_scalars"] * draws * CHAINS
    fixed = (top.get("design_cpu_s", top["design_s"]) + top.get("build_compile_cpu_s", top["build_compile_s"])
             + diag_s) / 60
    per_mb = (last["peak_mb"] - last["rss_mb_before"]) / last["draws_mb"]
    trace_mb = top["stored_scalars"] * draws * CHAINS * 8 / 2**20
    return {"n_responses": top["n_responses"], "steps_per_draw": steps, "steps_per_draw_90": (s_lo, s_hi),
            "ms_per_gradient": grad, "ms_per_gradient_90": (g_lo, g_hi), "one_core_ms": top["fused_ms"],
            "warmup_excess_draws": excess, "sampling_min": minutes(steps, grad),
            "sampling_min_range": (minutes(s_lo, g_lo), minutes(s_hi, g_hi)), "fixed_min": fixed,
            "diagnose_min": diag_s / 60, "wall_min": minutes(steps, grad) + fixed,
            "wall_min_range": (minutes(s_lo, g_lo) + fixed, minutes(s_hi, g_hi) + fixed),
            "trace_mb": trace_mb, "resident_per_draws_mb": per_mb, "peak_mb_compiled": top["peak_mb_compiled"],
            "peak_gb": (top["peak_mb_compiled"] + per_mb * trace_mb) / 1024}


def _curve_goal() -> None:
    """The 7,200,000-response goal from the curve record (``--curve-record``; too long for every bench run)."""
    if not CURVE_FILE.exists():
        print(f"curve: none yet ({CURVE_FILE.name}; run bench_models.py --curve-record)", flush=True)
        return
    rec = json.loads(CURVE_FILE.read_text())
    for r in sorted(rec["points"], key=lambda r: r["n_items"]):
        cpu = "design_cpu_s" in r  # CPU seconds where recorded (wall seconds on a busy machine mean little)
        print(f"curve {r['n_responses']:>9,} responses {r['n_cells']:>9,} cells: design "
              f"{r['design_cpu_s' if cpu else 'design_s']:.1f} {'CPU ' if cpu else ''}s, build + compile "
              f"{r['build_compile_cpu_s' if cpu else 'build_compile_s']:.0f} {'CPU ' if cpu else ''}s, "
              f"peak {r['peak_mb_compiled']:,.0f} MB, "
              f"{r['stored_scalars']:,} scalars/draw, gradient {r['fused_ms']:.2f} ms"
              + (f", {r['steps_per_draw']:.1f} steps/draw, {r['core_ms_per_gradient']:.2f} CPU ms/gradient in "
                 "the sampler" if r["route"] == "short" else ""), flush=True)
    p = curve_prediction(rec)
    if not p:
        print("curve: the record lacks the target point or three short fits; no prediction", flush=True)
        return
    lo, hi = p["wall_min_range"]
    verdict = "predicted NOT met" if lo > TARGET_MIN or p["peak_gb"] > TARGET_GB else (
        "predicted met" if hi < TARGET_MIN else "undecided")
    print(f"GOAL  {p['n_responses']:,}: wall and peak, predicted (curve record)  {p['wall_min']:.0f} min "
          f"(90% {lo:.0f}-{hi:.0f}), peak {p['peak_gb']:.1f} GB   goal: < {TARGET_MIN:.0f} min, < {TARGET_GB:.0f} GB"
          f"   {verdict}", flush=True)
    print(f"curve: {p['steps_per_draw']:.0f} steps/draw (90% {p['steps_per_draw_90'][0]:.0f}-"
          f"{p['steps_per_draw_90'][1]:.0f}) x {p['ms_per_gradient']:.1f} CPU ms/gradient (90% "
          f"{p['ms_per_gradient_90'][0]:.1f}-{p['ms_per_gradient_90'][1]:.1f}; one core alone "
          f"{p['one_core_ms']:.1f}): sampling {p['sampling_min']:.0f} min + design, compile and diagnostics "
          f"{p['fixed_min']:.0f} min; machine {rec['machine']} ({rec['cores']} cores), load average "
          f"{rec['load_avg_1min_start']:.1f}-{rec['load_avg_1min_end']:.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench_models")
    ap.add_argument("--route", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target-accept", type=float, default=TARGET_ACCEPT)
    ap.add_argument("--naive-sampler", default="default", choices=["default", "pymc", "nutpie"])
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--curve", action="store_true", help="also fit 360,000 responses: time against size")
    ap.add_argument("--curve-record", action="store_true",
                    help=f"run the size curve up to 7,200,000 responses and write {CURVE_FILE.name}")
    ap.add_argument("--curve-items", type=int, nargs="+", help="with --curve-record: rerun only these points")
    ap.add_argument("--curve-file", type=Path, default=CURVE_FILE, help=argparse.SUPPRESS)
    args = ap.parse_args(argv if argv is not None else [])
    if args.route:  # child process: one route, JSON on the last line
        name, n_items = args.route[0], int(args.route[1])
        fn = {"robustalign": lambda: route_robustalign(n_items, args.tune, args.seed, args.target_accept),
              "naive": lambda: route_naive(n_items, args.tune, args.naive_sampler, args.seed, args.target_accept),
              "gradient": lambda: route_naive_gradient(n_items),
              "kernel": lambda: route_kernel_gradient(n_items),
              "point": lambda: route_point(n_items),
              "short": lambda: route_short(n_items, SHORT_TUNE, SHORT_DRAWS, args.seed, args.target_accept)}[name]
        print(json.dumps(fn(), default=float))
        return
    if args.curve_record:
        _curve_record(args.seed, args.curve_items, args.curve_file)
        return
    common = ["--tune", str(args.tune), "--seed", str(args.seed), "--naive-sampler", args.naive_sampler,
              "--target-accept", str(args.target_accept)]
    print(f"4 chains x ({args.tune} tune + {DRAWS} draws), target_accept {args.target_accept:g}, {CORES} cores, seed {args.seed}; "
          "gate: docs/bayesian.md section 3; load average at start "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    _record()
    _curve_goal()
    _tenth(common)
    if not args.skip_full:
        _full(common, args.tune, args.curve)


if __name__ == "__main__":
    main(sys.argv[1:])
