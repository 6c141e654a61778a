"""Benchmark: robustalign's response model (counts per cell, nutpie) against the naive route.

The naive route is the same cumulative-logit model written the way a user would write it: one
``pm.OrderedLogistic`` likelihood row per response, sampled with PyMC's default NUTS (``nuts_sampler="pymc"``).
Both are judged by the same gate (R-hat, bulk/tail ESS, divergences). Reported: wall time, compile
time (separately), min bulk ESS per second of sampling, peak memory.

Workload (the resampling issue's): 12 models x 200 items x 6 formats x 2 option orders x 5 steering
prompts x 5 samples, 4 options = 720,000 responses; and one tenth of it (20 items). The naive route at
full size is predicted from a short run (gradient cost x steps per draw), not run to the end.

Run: ``python bench/bench_models.py [--full] [--naive-full]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workload(n_items: int, rng=0):
    from robustalign.simulate import simulate

    sim = simulate(n_models=12, n_items=n_items, n_groups=6, factors={"format": 6}, n_orders=2, n_steer=4,
                   n_samples=5, K=4, rng=rng)
    return sim.load()


def run_robustalign(resp, draws=1000, tune=1000, chains=4, seed=1):
    from robustalign.models import fit_response_model

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_response_model(resp, draws=draws, tune=tune, chains=chains, rng=seed)
    wall = time.perf_counter() - t0
    g, p = fit.gate, fit.provenance
    return {"route": "robustalign (counts per cell, nutpie)", "n_responses": fit.design.n_responses,
            "n_cells": fit.design.n_cells, "wall_s": wall, "compile_s": p["compile_s"], "sample_s": p["sample_s"],
            "min_ess_bulk": g["min_ess_bulk"], "ess_per_s": g["min_ess_bulk"] / p["sample_s"],
            "converged": fit.converged, "max_r_hat": g["max_r_hat"], "divergences": g["divergences"],
            "peak_mb": _peak_mb(), "n_steps": float(fit.idata["sample_stats"]["n_steps"].mean())}


def naive_model(resp):
    """The same model, one likelihood row per response (what a user would write first)."""
    import pymc as pm
    import pytensor.tensor as pt

    v = resp.valid()
    y = np.array([resp.scales[i].index(o) for i, o in zip(v["item"], v["option"])])
    cols = ["model", "item", "format", "option_order", "steer_target"]
    codes = {c: v[c].astype("category").cat.codes.to_numpy() for c in cols}
    lev = {c: list(v[c].astype("category").cat.categories) for c in cols}
    with pm.Model(coords={c: lev[c] for c in cols}) as m:
        mu = pm.ZeroSumNormal("mu_model", sigma=1.5, dims="model")
        sd_i = pm.HalfNormal("sd_item", 1)
        it = pm.Deterministic("item_effect", sd_i * pm.ZeroSumNormal("z_item", dims="item"), dims="item")
        sd_mi = pm.HalfNormal("sd_model_item", 1, dims="model")
        mi = pm.Deterministic("model_item", sd_mi[:, None] * pm.ZeroSumNormal("z_mi", dims=("model", "item"),
                                                                              n_zerosum_axes=1))
        eta = mu[codes["model"]] + it[codes["item"]] + mi[codes["model"], codes["item"]]
        for f in ("format", "option_order", "steer_target"):
            if f == "option_order":
                b = pm.ZeroSumNormal(f"beta_{f}", sigma=1.0, dims=f)
                mf = pm.ZeroSumNormal(f"model_x_{f}", sigma=1.0, dims=("model", f), n_zerosum_axes=1)
            else:
                b = pm.HalfNormal(f"sd_{f}", 1) * pm.ZeroSumNormal(f"z_{f}", dims=f)
                mf = pm.HalfNormal(f"sd_model_x_{f}", 1) * pm.ZeroSumNormal(f"z_model_x_{f}", dims=("model", f),
                                                                            n_zerosum_axes=1)
            qf = pm.HalfNormal(f"sd_item_x_{f}", 1) * pm.ZeroSumNormal(f"z_item_x_{f}", dims=("item", f),
                                                                       n_zerosum_axes=1)
            eta = eta + b[codes[f]] + mf[codes["model"], codes[f]] + qf[codes["item"], codes[f]]
        p = pm.Dirichlet("p_cut", a=np.ones(4))
        F = pt.cumsum(p)[:-1]
        cut = pm.Deterministic("cutpoints", pt.log(F) - pt.log1p(-F))
        pm.OrderedLogistic("y", eta=eta, cutpoints=cut, observed=y, compute_p=False)
    return m


def run_naive(resp, draws, tune, chains=4, seed=1):
    import pymc as pm

    from robustalign.models._sampling import diagnose

    m = naive_model(resp)
    t0 = time.perf_counter()
    with m, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(draws, tune=tune, chains=chains, random_seed=seed, nuts_sampler="pymc",
                          nuts={"target_accept": 0.9}, progressbar=False, compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    _, g = diagnose(idata)
    steps = float(np.asarray(idata["sample_stats"]["n_steps"]).mean()) if "n_steps" in idata["sample_stats"] \
        else float(np.asarray(idata["sample_stats"]["tree_depth"]).mean())
    return {"route": "naive (row per response, pymc NUTS)", "n_responses": len(resp.valid()), "wall_s": wall,
            "compile_s": float("nan"), "sample_s": wall, "min_ess_bulk": g["min_ess_bulk"],
            "ess_per_s": g["min_ess_bulk"] / wall, "converged": g["converged"], "max_r_hat": g["max_r_hat"],
            "divergences": g["divergences"], "peak_mb": _peak_mb(), "n_steps": steps, "draws": draws, "tune": tune}


def naive_gradient_ms(resp, n_evals=20) -> float:
    """Milliseconds per logp+gradient evaluation of the naive model (C backend, pymc's NUTS)."""
    m = naive_model(resp)
    f = m.compile_logp(), m.compile_dlogp()
    pt0 = m.initial_point()
    f[1](pt0)
    t0 = time.perf_counter()
    for _ in range(n_evals):
        f[0](pt0)
        f[1](pt0)
    return 1000 * (time.perf_counter() - t0) / n_evals


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="bench_models")
    ap.add_argument("--full", action="store_true", help="also fit the 720,000-response workload")
    ap.add_argument("--naive-draws", type=int, default=300, help="draws (and tune) of the short naive run")
    args = ap.parse_args(argv if argv is not None else [])
    cores = 2
    resp, _ = workload(20)
    ra = run_robustalign(resp)
    print("tenth, robustalign:", ra, flush=True)
    nv = run_naive(resp, draws=args.naive_draws, tune=args.naive_draws)
    print(f"tenth, naive ({args.naive_draws} tune + {args.naive_draws} draws per chain):", nv, flush=True)
    # the naive route's cost to the same standard: its time per draw x 2,000 draws per chain, and
    # its ESS per draw scaled to 1,000 kept draws (a lower bound on the wall time: tuning ran shorter)
    per_draw = nv["wall_s"] / (2 * args.naive_draws)
    naive_wall = per_draw * 2000
    naive_ess = nv["min_ess_bulk"] * 1000 / args.naive_draws
    print(f"tenth: naive predicted to 4 x 1,000 draws: {naive_wall:.0f} s, min ESS {naive_ess:.0f} "
          f"-> ESS/s {naive_ess / naive_wall:.2f}; robustalign ESS/s {ra['ess_per_s']:.2f} "
          f"(ratio {ra['ess_per_s'] / (naive_ess / naive_wall):.1f}x; robustalign converged={ra['converged']})")
    if args.full:
        resp_full, _ = workload(200)
        g_tenth = naive_gradient_ms(resp)
        g_full = naive_gradient_ms(resp_full, n_evals=5)
        full_wall = nv["n_steps"] * g_full / 1000 * 2000 * 4 / cores
        print(f"naive gradient: {g_tenth:.1f} ms (tenth), {g_full:.1f} ms (full); predicted naive wall at full "
              f"size {full_wall / 60:.0f} min (steps/draw {nv['n_steps']:.0f} from the tenth)", flush=True)
        rf = run_robustalign(resp_full)
        print("full, robustalign:", rf, flush=True)
        naive_ess_per_s = naive_ess / full_wall
        print(f"full: robustalign {rf['wall_s'] / 60:.1f} min wall ({rf['compile_s']:.0f} s compile), ESS/s "
              f"{rf['ess_per_s']:.2f} vs naive predicted {naive_ess_per_s:.3f} -> ratio "
              f"{rf['ess_per_s'] / naive_ess_per_s:.0f}x; converged={rf['converged']}")


if __name__ == "__main__":
    main(sys.argv[1:])
