"""The gate's R-hat rules on simulated chains whose convergence is known (docs/bayesian.md, section 3).

Converged: 4 chains of independent AR(1) draws (``rho``) per scalar, 1,000 draws each; rho = 0.33 gives
the tail ESS of the full-size fit's table entries (about 2,000). Measured per scalar: the probability that
its split rank R-hat exceeds 1.01 (``p_above``) and the largest value. From ``p_above`` follow, for the
full-size posterior (about 17,000 scalars, of which 2,400 in the largest table), the false-alarm rate of
the earlier rule (every scalar <= 1.01) and of the table rule (at most 1% of a table's entries above 1.01).

Run: ``python bench/bench_gate.py [--scalars 3000]``; writes ``bench/results/gate_simulation.json``.

``--extension`` simulates the gate's extension rule instead (``robustalign.models._sampling.near_miss``: a fit
that misses the gate on R-hat alone gets as many chains again, judged together): fits of 60 reported scalars,
4 chains x 1,000 draws of AR(1) noise plus a persistent offset per chain and scalar, N(0, tau^2), so the
population R-hat is about sqrt(1 + tau^2); and chains that clearly did not converge. It counts how often the
gate passes with 4 chains, how often the rule fires, and how often the gate passes after it; writes
``bench/results/gate_extension.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent


def ar1(rng: np.random.Generator, n: int, chains: int, draws: int, rho: float) -> np.ndarray:
    """(n, chains, draws) stationary AR(1) draws with unit variance."""
    e = rng.standard_normal((n, chains, draws)) * np.sqrt(1 - rho**2)
    x = np.empty_like(e)
    x[..., 0] = rng.standard_normal((n, chains))
    for t in range(1, draws):
        x[..., t] = rho * x[..., t - 1] + e[..., t]
    return x


def chains(rng: np.random.Generator, fits: int, scalars: int, n_chains: int, draws: int, rho: float, tau: float,
           stuck: float = 0.0) -> np.ndarray:
    """(fits * scalars, chains, draws): AR(1) noise plus a persistent offset N(0, tau^2) per chain and scalar;
    with ``stuck``, chain 0 of each fit's first scalar sits ``stuck`` SD away."""
    from scipy.signal import lfilter

    e = rng.standard_normal((fits * scalars, n_chains, draws)) * np.sqrt(1 - rho**2)
    e[..., 0] /= np.sqrt(1 - rho**2)  # stationary start
    x = lfilter([1.0], [1.0, -rho], e, axis=-1)
    x += tau * rng.standard_normal((fits * scalars, n_chains, 1))
    if stuck:
        x.reshape(fits, scalars, n_chains, draws)[:, 0, 0, :] += stuck
    return x


def _verdicts(x: np.ndarray, fits: int) -> dict[str, np.ndarray]:
    """Per fit: the gate's parts on its scalars (every scalar judged alone, as the reported parameters are)."""
    from robustalign.models._diagnostics import diagnostics
    from robustalign.models._sampling import GATE

    d = diagnostics(np.moveaxis(x, 0, -1))  # (chain, draw, scalars)
    r = np.asarray(d["r_hat"]).reshape(fits, -1)
    ess = np.minimum(np.asarray(d["ess_bulk"]), np.asarray(d["ess_tail"])).reshape(fits, -1)
    rhat_ok = (r <= GATE["max_r_hat"]).all(1)
    ess_ok = (ess >= GATE["min_ess_bulk"]).all(1)
    return {"passed": rhat_ok & ess_ok, "near_miss": ~rhat_ok & ess_ok & (r <= GATE["table_max_r_hat"]).all(1),
            "max_r_hat": r.max(1), "min_ess": ess.min(1)}


def extension(fits: int = 300, scalars: int = 60, draws: int = 1000) -> list[dict]:
    """The extension rule on fits whose convergence is known (see the module docstring)."""
    rng = np.random.default_rng(21)
    scenarios = [("converged", 0.6, 0.0, 0.0), ("converged", 0.7, 0.0, 0.0),
                 ("chain offsets, R-hat 1.005", 0.7, 0.1, 0.0), ("chain offsets, R-hat 1.010", 0.7, 0.1418, 0.0),
                 ("chain offsets, R-hat 1.015", 0.7, 0.1738, 0.0), ("chain offsets, R-hat 1.020", 0.7, 0.2010, 0.0),
                 ("chain offsets, R-hat 1.020", 0.5, 0.2010, 0.0), ("one chain 0.5 SD off", 0.6, 0.0, 0.5),
                 ("one chain 0.25 SD off", 0.6, 0.0, 0.25), ("slow mixing, rho 0.9", 0.9, 0.0, 0.0)]
    rows = []
    for label, rho, tau, stuck in scenarios:
        t0 = time.perf_counter()
        x = chains(rng, fits, scalars, 4, draws, rho, tau, stuck)
        v = _verdicts(x, fits)
        idx = np.flatnonzero(v["near_miss"])
        after = v["passed"].copy()
        if idx.size:  # 4 more chains of the same process for the fits the rule extends, judged on all 8
            more = chains(rng, idx.size, scalars, 4, draws, rho, tau, stuck=0.0)
            both = np.concatenate([x.reshape(fits, scalars, 4, draws)[idx].reshape(-1, 4, draws), more], axis=1)
            after[idx] = _verdicts(both, idx.size)["passed"]
        k0, k1 = int(v["passed"].sum()), int(after.sum())
        # the same with a lower cap on the first chains' largest R-hat (the rule's 1.05 is GATE's table cap)
        by_cap = {f"{c:.2f}": float((v["passed"] | (after & (v["max_r_hat"] <= c))).mean()) for c in (1.02, 1.03)}
        row = {"scenario": label, "rho": rho, "tau": tau, "stuck_sd": stuck, "fits": fits, "scalars": scalars,
               "draws": draws, "median_min_ess": float(np.median(v["min_ess"])),
               "median_max_r_hat": float(np.median(v["max_r_hat"])),
               "pass_4_chains": k0 / fits, "near_miss": idx.size / fits, "pass_after_rule": k1 / fits,
               "pass_after_rule_with_cap": by_cap,
               "pass_after_rule_95": [float(b) for b in stats.binomtest(k1, fits).proportion_ci(0.95)],
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    from arviz_stats.base import array_stats

    ap = argparse.ArgumentParser(prog="bench_gate")
    ap.add_argument("--scalars", type=int, default=3000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--extension", action="store_true", help="simulate the extension rule instead")
    ap.add_argument("--fits", type=int, default=300)
    args = ap.parse_args(argv)
    if args.extension:
        rows = extension(args.fits, draws=args.draws)
        out = HERE / "results" / "gate_extension.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1) + "\n")
        return
    rng = np.random.default_rng(20)
    rows = []
    for rho in (0.0, 0.33, 0.6):
        t0 = time.perf_counter()
        x = ar1(rng, args.scalars, 4, args.draws, rho)
        r = array_stats.rhat(x, chain_axis=-2, draw_axis=-1)
        ess_tail = array_stats.ess(x[:200], chain_axis=-2, draw_axis=-1, method="tail", prob=0.05)
        k = int((r > 1.01).sum())
        p = k / args.scalars
        p_hi = float(stats.binomtest(k, args.scalars).proportion_ci(0.95).high)
        row = {"rho": rho, "draws": args.draws, "scalars": args.scalars, "median_tail_ess": float(np.median(ess_tail)),
               "p_above": p, "p_above_95_upper": p_hi, "max_r_hat": float(r.max()),
               "q99_r_hat": float(np.quantile(r, 0.99)),
               # earlier rule: any of 17,000 scalars above 1.01 fails the fit
               "false_alarm_every_scalar_17000": 1 - (1 - p) ** 17000,
               "false_alarm_every_scalar_17000_upper": 1 - (1 - p_hi) ** 17000,
               # table rule: more than 1% of a 2,400-entry table above 1.01 fails it (upper bound of p)
               "false_alarm_table_2400_upper": float(stats.binom.sf(24, 2400, p_hi)),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = HERE / "results" / "gate_simulation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
