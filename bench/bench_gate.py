"""The gate's R-hat rules on simulated chains whose convergence is known (docs/bayesian.md, section 3).

Converged: 4 chains of independent AR(1) draws (``rho``) per scalar, 1,000 draws each; rho = 0.33 gives
the tail ESS of the full-size fit's table entries (about 2,000). Measured per scalar: the probability that
its split rank R-hat exceeds 1.01 (``p_above``) and the largest value. From ``p_above`` follow, for the
full-size posterior (about 17,000 scalars, of which 2,400 in the largest table), the false-alarm rate of
the earlier rule (every scalar <= 1.01) and of the table rule (at most 1% of a table's entries above 1.01).

Run: ``python bench/bench_gate.py [--scalars 3000]``; writes ``bench/results/gate_simulation.json``.
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


def main(argv: list[str] | None = None) -> None:
    from arviz_stats.base import array_stats

    ap = argparse.ArgumentParser(prog="bench_gate")
    ap.add_argument("--scalars", type=int, default=3000)
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args(argv)
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
