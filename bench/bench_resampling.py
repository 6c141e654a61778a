"""Benchmark of the resampling engine against scipy.stats and a plain pandas loop, measured in one run.

Workload
    ``robustalign.simulate.simulate(n_models=12, n_items=Q, factors={"format": 6}, n_orders=2, n_steer=4,
    n_samples=5)``: 12 models x Q items x 6 formats x 2 option orders x 5 steering prompts (none + 4
    targets) x 5 samples, 4 options; Q = 20, 200, 2000 gives 72,000, 720,000 and 7,200,000 responses.
    Answers go through the data contract (``make_responses``), which maps shown positions to options.

Alignment of a response
    The share of the human reference group ``C01`` that chose the same (canonical) option,
    ``h_C01,q(answer)``. A cell's mean is then the probability that a random respondent of C01 agrees
    with a random answer of the model in that cell. Defined once here; all three routes use it.

Task (B = 10,000)
    (a) 95% BCa intervals for the mean alignment of each model x steering cell (60), items weighted
        equally; (b) 95% BCa intervals for every pairwise model difference (66), a model's mean being the
        equal-weight mean over its steering cells, paired over items; (c) the stratified permutation
        p-value of the format effect for each model (12): formats permuted within item, statistic = SD of
        the 6 format means.

Routes
    robustalign engine
        From the per-item aggregates: ``cluster_bootstrap`` + ``.pairwise("model")`` +
        ``stratified_permutation_test``, including building the result frames.
    robustalign end to end
        The same from the scored rows (aggregation included).
    scipy
        ``scipy.stats.bootstrap`` (BCa, vectorised) on the same per-item aggregates, statistic by statistic
        (126 calls), and ``scipy.stats.permutation_test(permutation_type="samples")`` per model (12 calls).
    pandas loop
        Per resample: draw items, concatenate their rows, group-by means; per permutation: relabel the
        formats within item, group-by means. Timed on a few iterations and extrapolated linearly to
        10,000 resamples + 10,000 permutations (it computes percentile intervals, so it skips BCa's
        jackknife: the extrapolation favours it).

Every route runs on one core by default (BLAS limited to one thread with threadpoolctl when it is
installed; ``--threads N`` changes that), so the ratios compare algorithms, not core counts, and do not
depend on how busy the other core is. Wall-clock medians are the figures; CPU-time medians are printed
next to them as a check on a shared machine.

Run with ``python bench/run.py resampling`` (``make bench``); ``-- --quick`` runs the two smaller sizes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import time
import tracemalloc
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from robustalign.resampling import cluster_bootstrap, item_aggregates, stratified_permutation_test
from robustalign.schema import make_reference, make_responses
from robustalign.simulate import simulate

B = 10_000
GROUP = "C01"
N_MODELS, N_FORMATS, N_STEER_LEVELS = 12, 6, 5
SIZES = {"tenth": 20, "base": 200, "ten times": 2000}
REPEATS = {  # (robustalign runs, scipy runs, pandas-loop iterations timed)
    "tenth": (15, 3, 40),
    "base": (15, 3, 8),
    "ten times": (3, 1, 2),
}


# ----------------------------------------------------------------------------------------------- data
def make_workload(n_items: int, seed: int = 2026) -> pd.DataFrame:
    """Scored responses: ``model, item, format, steer_target, score`` (categorical keys)."""
    sim = simulate(n_models=N_MODELS, n_items=n_items, factors={"format": N_FORMATS}, n_orders=2, n_steer=4,
                   n_samples=5, rng=seed)
    ref = make_reference(sim.reference, sim.scales)
    items = ref.items
    options = ref.scales[items[0]].options
    if any(ref.scales[i].options != options for i in items):  # pragma: no cover - simulate uses one scale
        raise RuntimeError("the benchmark assumes one answer scale for all items")
    h = ref.array(items, [GROUP])[:, 0, :]  # (items, K) shares of the reference group
    parts = []
    for _, part in sim.responses.groupby("model", observed=True, sort=True):  # per model: bounded memory
        d = make_responses(part, ref).valid()
        parts.append(pd.DataFrame({
            "model": d["model"].to_numpy(),
            "item": pd.Categorical(d["item"], categories=items),
            "format": d["format"].to_numpy(),
            "steer_target": d["steer_target"].to_numpy(),
            "option": pd.Categorical(d["option"], categories=list(options)).codes,
        }))
    df = pd.concat(parts, ignore_index=True)
    for c in ("model", "format", "steer_target"):
        df[c] = df[c].astype("category")
    df["item"] = pd.Categorical(df["item"], categories=items)
    df["score"] = h[df["item"].cat.codes.to_numpy(), df["option"].to_numpy()]
    return df.drop(columns="option")


def aggregates(df: pd.DataFrame):
    cells = item_aggregates(df, "score", cluster="item", by=["model", "steer_target"])
    fmt = item_aggregates(df, "score", cluster="item", by=["format", "model"])
    Q = cells.values.shape[0]
    assert cells.values.shape[1] == N_MODELS * N_STEER_LEVELS and fmt.values.shape[1] == N_FORMATS * N_MODELS
    return cells, fmt.values.reshape(Q, N_FORMATS, N_MODELS), list(fmt.cells["model"].unique())


# ----------------------------------------------------------------------------------------------- routes
def route_engine(cells, fmt, models, seed: int):
    t0 = time.perf_counter()
    res = cluster_bootstrap(cells, n_resamples=B, rng=seed)
    f_cells = res.to_frame()
    f_diff = res.pairwise("model").to_frame()
    t1 = time.perf_counter()
    perm = stratified_permutation_test(fmt, n_resamples=B, labels=pd.DataFrame({"model": models}), rng=seed + 1)
    f_perm = perm.to_frame()
    t2 = time.perf_counter()
    return (f_cells, f_diff, f_perm), (t1 - t0, t2 - t1)


def route_end_to_end(df: pd.DataFrame, seed: int):
    res = cluster_bootstrap(df, value="score", cluster="item", by=["model", "steer_target"], n_resamples=B, rng=seed)
    f_cells = res.to_frame()
    f_diff = res.pairwise("model").to_frame()
    perm = stratified_permutation_test(df, value="score", factor="format", strata="item", by="model",
                                       n_resamples=B, rng=seed + 1)
    return f_cells, f_diff, perm.to_frame()


def _spread(*samples, axis=-1):
    m = np.stack([s.mean(axis=axis) for s in samples])
    return np.sqrt(((m - m.mean(axis=0)) ** 2).mean(axis=0))


def route_scipy(cells, fmt, seed: int):
    gen = np.random.default_rng(seed)
    A = cells.values
    Q = A.shape[0]
    t0 = time.perf_counter()
    ci_cells = [stats.bootstrap((A[:, c],), np.mean, n_resamples=B, method="BCa", rng=gen).confidence_interval
                for c in range(A.shape[1])]
    M = A.reshape(Q, N_MODELS, N_STEER_LEVELS).mean(axis=2)
    ci_diff = [stats.bootstrap((M[:, i] - M[:, j],), np.mean, n_resamples=B, method="BCa", rng=gen).confidence_interval
               for i, j in combinations(range(N_MODELS), 2)]
    t1 = time.perf_counter()
    p = [stats.permutation_test(tuple(fmt[:, f, m] for f in range(N_FORMATS)), _spread, permutation_type="samples",
                                n_resamples=B, vectorized=True, alternative="greater", rng=gen).pvalue
         for m in range(N_MODELS)]
    t2 = time.perf_counter()
    return (np.array(ci_cells), np.array(ci_diff), np.array(p)), (t1 - t0, t2 - t1)


def route_pandas(df: pd.DataFrame, n_iter: int, seed: int) -> dict:
    gen = np.random.default_rng(seed)
    items = df["item"].cat.categories
    Q = len(items)
    ia, ib = np.array(list(combinations(range(N_MODELS), 2))).T
    t0 = time.perf_counter()
    by_item = {k: g for k, g in df.groupby("item", observed=True)}
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n_iter):
        drawn = gen.integers(0, Q, Q)
        sample = pd.concat([by_item[items[j]] for j in drawn], ignore_index=True)
        sample.groupby(["model", "steer_target"], observed=True)["score"].mean()
        mm = sample.groupby("model", observed=True)["score"].mean().to_numpy()
        _ = mm[ia] - mm[ib]
    per_boot = (time.perf_counter() - t0) / n_iter
    item_code = df["item"].cat.codes.to_numpy()
    fmt_code = df["format"].cat.codes.to_numpy()
    t0 = time.perf_counter()
    for _ in range(n_iter):
        perm = np.argsort(gen.random((Q, N_FORMATS)), axis=1)
        relabelled = df.assign(format=perm[item_code, fmt_code])
        means = relabelled.groupby(["model", "format"], observed=True)["score"].mean().unstack()
        means.std(axis=1, ddof=0)
    per_perm = (time.perf_counter() - t0) / n_iter
    return {"setup_s": setup, "per_resample_s": per_boot, "per_permutation_s": per_perm,
            "iterations_timed": n_iter, "extrapolated_s": setup + B * (per_boot + per_perm)}


# ----------------------------------------------------------------------------------------------- helpers
def _timed(fn) -> tuple[float, float, object]:
    """Wall time, CPU time of the process, and the result of one call."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def _engine_all_cores(cells, fmt, models, repeats: int) -> float | None:
    """Median engine time with as many BLAS threads as CPUs (the library default), or None."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return None
    with threadpool_limits(limits=os.cpu_count(), user_api="blas"):
        return _medians([_timed(lambda: route_engine(cells, fmt, models, seed=11)) for _ in range(repeats)])[0]


def _medians(runs) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _agreement(engine_frames, scipy_out) -> dict:
    f_cells, f_diff, f_perm = engine_frames
    ci_cells, ci_diff, p = scipy_out
    ours = np.vstack([f_cells[["conf_low", "conf_high"]].to_numpy(), f_diff[["conf_low", "conf_high"]].to_numpy()])
    theirs = np.vstack([ci_cells, ci_diff])
    se = np.concatenate([f_cells["std_error"].to_numpy(), f_diff["std_error"].to_numpy()])
    dev = np.abs(ours - theirs) / se[:, None]
    pp = f_perm["p_value"].to_numpy()
    mc = np.sqrt(2 * np.maximum(p * (1 - p), 1 / B) / B)
    return {"ci_max_diff_in_se": float(dev.max()), "ci_median_diff_in_se": float(np.median(dev)),
            "p_max_abs_diff": float(np.abs(pp - p).max()), "p_max_diff_in_mc_sd": float((np.abs(pp - p) / mc).max())}


def _limit_blas(threads: int):
    """Limit BLAS threads for the whole run; returns (controller or None, description)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return None, "not limited (threadpoolctl not installed)"
    limiter = threadpool_limits(limits=threads, user_api="blas")
    n = sorted({i.get("num_threads") for i in threadpool_info() if i.get("user_api") == "blas"})
    return limiter, f"{','.join(map(str, n))}"


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# ----------------------------------------------------------------------------------------------- main
def run_size(name: str, n_items: int, quick: bool) -> dict:
    """Build one workload size and time every route on it."""
    t0 = time.perf_counter()
    df = make_workload(n_items)
    cells, fmt, models = aggregates(df)
    n_rows = len(df)
    print(f"\n[{name}] {n_rows:,} responses, {n_items} items (workload built in {time.perf_counter() - t0:.1f} s)",
          flush=True)
    rep_ra, rep_sp, n_iter = REPEATS[name]
    if quick:
        rep_ra, rep_sp, n_iter = min(rep_ra, 3), 1, max(2, n_iter // 4)

    # the routes are interleaved (robustalign runs, then one scipy run, repeated) so that both see the
    # same load on a shared machine; medians over all runs
    engine_runs, e2e_runs, scipy_runs = [], [], []
    per_round = max(1, rep_ra // rep_sp)
    for _ in range(rep_sp):
        for _ in range(per_round):
            engine_runs.append(_timed(lambda: route_engine(cells, fmt, models, seed=11)))
            e2e_runs.append(_timed(lambda: route_end_to_end(df, seed=11)))
        scipy_runs.append(_timed(lambda: route_scipy(cells, fmt, seed=12)))
    t_engine, c_engine = _medians(engine_runs)
    t_e2e, c_e2e = _medians(e2e_runs)
    t_scipy, c_scipy = _medians(scipy_runs)
    engine_times = [r[0] for r in engine_runs]
    e2e_times = [r[0] for r in e2e_runs]
    scipy_times = [r[0] for r in scipy_runs]
    frames = engine_runs[-1][2][0]
    t_boot = statistics.median(r[2][1][0] for r in engine_runs)
    t_perm = statistics.median(r[2][1][1] for r in engine_runs)
    print(f"  robustalign engine      {t_engine:8.3f} s  (bootstrap {t_boot:.3f} s, permutation {t_perm:.3f} s; "
          f"{len(engine_times)} runs {min(engine_times):.3f}-{max(engine_times):.3f} s; CPU {c_engine:.3f} s)",
          flush=True)
    print(f"  robustalign end to end  {t_e2e:8.3f} s  (CPU {c_e2e:.3f} s)", flush=True)
    t_multi = _engine_all_cores(cells, fmt, models, per_round)
    if t_multi is not None:
        print(f"  robustalign engine, {os.cpu_count()} BLAS threads {t_multi:.3f} s (for reference; ratios use one thread)",
              flush=True)
    scipy_out = scipy_runs[-1][2][0]
    sp_parts = (statistics.median(r[2][1][0] for r in scipy_runs), statistics.median(r[2][1][1] for r in scipy_runs))
    print(f"  scipy route             {t_scipy:8.3f} s  -> {t_scipy / t_engine:7.1f}x slower than the engine "
          f"(bootstrap {sp_parts[0]:.2f} s = {sp_parts[0] / t_boot:.0f}x, permutation {sp_parts[1]:.2f} s = "
          f"{sp_parts[1] / t_perm:.0f}x; CPU {c_scipy:.2f} s = {c_scipy / c_engine:.0f}x)", flush=True)
    agree = _agreement(frames, scipy_out)
    print(f"      agreement: CI endpoints within {agree['ci_max_diff_in_se']:.3f} SE (median "
          f"{agree['ci_median_diff_in_se']:.3f}); p-values within {agree['p_max_abs_diff']:.4f} "
          f"({agree['p_max_diff_in_mc_sd']:.1f} Monte Carlo SD)", flush=True)

    pdl = route_pandas(df, n_iter, seed=14)
    print(f"  pandas loop (extrap.)   {pdl['extrapolated_s']:8.0f} s  -> {pdl['extrapolated_s'] / t_e2e:7.0f}x slower "
          f"than end to end ({pdl['per_resample_s'] * 1e3:.0f} ms per resample, {pdl['per_permutation_s'] * 1e3:.0f} ms "
          f"per permutation, timed on {n_iter} of each, extrapolated linearly to {B:,})", flush=True)

    peak = _peak_bytes(lambda: route_end_to_end(df, seed=11))
    peak_engine = _peak_bytes(lambda: route_engine(cells, fmt, models, seed=11))
    print(f"  peak traced memory      {peak / 2**20:8.1f} MiB end to end, {peak_engine / 2**20:.1f} MiB engine",
          flush=True)
    return {
        "size": name, "rows": n_rows, "items": n_items, "engine_s": t_engine, "engine_runs_s": engine_times,
        "engine_cpu_s": c_engine, "engine_bootstrap_s": t_boot, "engine_permutation_s": t_perm,
        "end_to_end_s": t_e2e, "end_to_end_cpu_s": c_e2e, "end_to_end_runs_s": e2e_times, "scipy_s": t_scipy,
        "engine_all_cores_s": t_multi,
        "scipy_cpu_s": c_scipy, "scipy_runs_s": scipy_times, "scipy_parts_s": sp_parts,
        "ratio_scipy": t_scipy / t_engine, "ratio_scipy_cpu": c_scipy / c_engine, "pandas": pdl,
        "ratio_pandas": pdl["extrapolated_s"] / t_e2e, "peak_mib_end_to_end": peak / 2**20,
        "peak_mib_engine": peak_engine / 2**20, "agreement": agree,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_resampling", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the two smaller sizes, fewer repeats")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for every route (default 1)")
    args = ap.parse_args(argv or [])
    sizes = {k: v for k, v in SIZES.items() if not (args.quick and k == "ten times")}
    limiter, blas = _limit_blas(args.threads)

    print(f"resampling benchmark: B = {B:,} resamples and permutations; {os.cpu_count()} CPUs, BLAS threads "
          f"{blas}, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    warm = make_workload(4, seed=1)
    wc, wf, wm = aggregates(warm)
    route_engine(wc, wf, wm, seed=0)
    route_end_to_end(warm, seed=0)

    rows_out = []
    for name, n_items in sizes.items():
        rows_out.append(run_size(name, n_items, args.quick))
        gc.collect()

    rows = np.array([r["rows"] for r in rows_out], float)
    k_e2e = _slope(rows, [r["end_to_end_s"] for r in rows_out])
    k_eng = _slope(rows, [r["engine_s"] for r in rows_out])
    k_sp = _slope(rows, [r["scipy_s"] for r in rows_out])
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print("\nsummary (medians; ratios measured in the same run)")
    print(f"{'size':>10} {'rows':>10} {'engine s':>9} {'e2e s':>8} {'scipy s':>8} {'x scipy':>8} {'pandas s':>9} "
          f"{'x pandas':>9} {'peak MiB':>9}")
    for r in rows_out:
        print(f"{r['size']:>10} {r['rows']:>10,} {r['engine_s']:>9.3f} {r['end_to_end_s']:>8.3f} {r['scipy_s']:>8.2f} "
              f"{r['ratio_scipy']:>8.1f} {r['pandas']['extrapolated_s']:>9.0f} {r['ratio_pandas']:>9.0f} "
              f"{r['peak_mib_end_to_end']:>9.1f}")
    print(f"scaling exponent (time ~ rows^k) over {len(rows_out)} sizes: end to end k = {k_e2e:.2f}, engine k = "
          f"{k_eng:.2f} (scipy route k = {k_sp:.2f}); process max RSS {maxrss:.0f} MiB; load average "
          f"{os.getloadavg()[0]:.2f} at end")
    base = next((r for r in rows_out if r["size"] == "base"), None)
    status = 0
    if base is not None:
        checks = {
            "engine >= 50x faster than scipy at 720,000 rows": base["ratio_scipy"] >= 50,
            "end to end >= 1,000x faster than the pandas loop at 720,000 rows": base["ratio_pandas"] >= 1000,
            "peak memory < 2 GiB at 720,000 rows": base["peak_mib_end_to_end"] < 2048,
            "time grows no faster than linearly (k <= 1)": k_e2e <= 1.0 and k_eng <= 1.0,
        }
        for text, ok in checks.items():
            print(f"  [{'ok' if ok else 'MISSED'}] {text}")
        status = 0 if all(checks.values()) else 1
    if limiter is not None:
        limiter.restore_original_limits()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"B": B, "sizes": rows_out, "k_end_to_end": k_e2e, "k_engine": k_eng, "k_scipy": k_sp,
                       "max_rss_mib": maxrss}, fh, indent=2, default=float)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
