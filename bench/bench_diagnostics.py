"""The gate's diagnostics: vectorised R-hat / bulk / tail ESS against arviz_stats, in one run.

A full-size fit of the response model (720,000 responses) stores about 17,000 scalars x 4 chains x
1,000 draws, and the gate needs rank-normalised split R-hat, bulk ESS and tail ESS (5% / 95%) of every
one. arviz_stats evaluates them scalar by scalar in Python; ``robustalign.models._diagnostics`` does the
same arithmetic on arrays. Workload: ``--scalars`` AR(1) chains (rho 0.33, the full fit's mixing), both
routes on the same draws; CPU seconds (median of ``--repeats``), their ratio, the largest relative
difference of the numbers, and both extrapolated to 17,000 scalars (the cost is linear in scalars).

Run: ``python bench/run.py diagnostics [-- --scalars 4000 --repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np


def _cpu(f) -> float:
    t0 = time.process_time()
    f()
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> None:
    from arviz_stats.base import array_stats

    from robustalign.models._diagnostics import TAIL_PROB, diagnostics

    ap = argparse.ArgumentParser(prog="bench_diagnostics")
    ap.add_argument("--scalars", type=int, default=4000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    rho = 0.33
    x = np.empty((4, args.draws, args.scalars))
    x[:, 0] = rng.standard_normal((4, args.scalars))
    for t in range(1, args.draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((4, args.scalars))

    def theirs():
        return (array_stats.rhat(x, chain_axis=0, draw_axis=1),
                array_stats.ess(x, chain_axis=0, draw_axis=1, method="bulk"),
                array_stats.ess(x, chain_axis=0, draw_axis=1, method="tail", prob=TAIL_PROB))

    ours_s, theirs_s = [], []
    for _ in range(args.repeats):       # interleaved, so both see the same load
        ours_s.append(_cpu(lambda: diagnostics(x)))
        theirs_s.append(_cpu(theirs))
    d = diagnostics(x)
    ref = dict(zip(("r_hat", "ess_bulk", "ess_tail"), theirs(), strict=True))
    diff = max(float(np.max(np.abs(d[k] - ref[k]) / np.abs(ref[k]))) for k in ref)
    o, t = statistics.median(ours_s), statistics.median(theirs_s)
    scale = 17000 / args.scalars
    print(f"load average {os.getloadavg()[0]:.1f}; {args.scalars} scalars x 4 chains x {args.draws} draws")
    print(f"robustalign: {o:.2f} CPU-s (17,000 scalars: {o * scale:.0f} s); arviz_stats: {t:.2f} CPU-s "
          f"(17,000: {t * scale:.0f} s); ratio {t / o:.1f}x; largest relative difference {diff:.1e}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
