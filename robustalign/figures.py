"""Regenerate the paper figures from the bundled data: ``python -m robustalign.figures figures/``.

Writes ``fig_<name>.pdf`` (vector) and ``fig_<name>.png`` for: alignment forest plot, rank caterpillar,
flip-probability heat map, stability factor effects against the human band, steering matrix and
the congruent-vs-incongruent comparison, specification curve, calibration of the item-bootstrap
intervals, and (with ``--bayes``) variance shares of the Bayesian score model. Only files named
``fig_*`` are written; nothing else in the directory is touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, cast


def save_figure(fig_or_ax, stem) -> list[Path]:
    """Write a figure as ``<stem>.pdf`` (vector) and ``<stem>.png`` (300 dpi) in the house style; close it.

    ``fig_or_ax`` is a matplotlib Figure, Axes or array of Axes (what the plot functions return).
    Returns the two paths.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    from robustalign.plots._style import RC
    from robustalign.report.render import figure_of

    stem = Path(stem)
    fig = figure_of(fig_or_ax)
    paths = [stem.with_name(f"{stem.name}.pdf"), stem.with_name(f"{stem.name}.png")]
    with matplotlib.rc_context(cast(Any, RC)):  # RC's keys are rcParams names; the stubs want them as Literals
        for path in paths:
            fig.savefig(path)
    plt.close(fig)
    return paths


def _save(fig_or_ax, out: Path, name: str) -> list[Path]:
    return save_figure(fig_or_ax, out / f"fig_{name}")


def make_figures(out, *, n_resamples: int = 2000, n_permutations: int = 2000, bayes: bool = False, rng: int = 0,
                 progress=print) -> list[Path]:
    """Compute the results on the bundled data and write every figure; returns the paths written."""
    import numpy as np

    import robustalign.plots as P
    from robustalign.claims import assess_stability, assess_steerability, audit_claim
    from robustalign.claims.multiverse import Claim
    from robustalign.datasets import load_multicultural_alignment
    from robustalign.plots._style import DOUBLE_COLUMN, new_axes
    from robustalign.report.calibration import bootstrap_coverage
    from robustalign.scoring import alignment

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = load_multicultural_alignment()
    g = np.random.default_rng(rng).spawn(7)
    written = []
    t0 = time.time()

    def step(msg):
        progress(f"[{time.time() - t0:5.1f} s] {msg}")

    step("alignment (Spearman, per model x language)")
    res = alignment(d.responses, d.reference_language, metric="spearman", against="language",
                    n_resamples=n_resamples, rng=g[0])
    written += _save(P.plot_alignment_forest(res, xlabel="Spearman alignment"), out, "alignment_forest")
    written += _save(P.plot_rank_caterpillar(res), out, "rank_caterpillar")
    written += _save(P.plot_flip_heatmap(res, group="en"), out, "flip_probability_en")

    step("stability across prompt language")
    st = assess_stability(d.responses, d.reference_language, n_resamples=n_resamples, n_permutations=n_permutations,
                          skip=("agreement",), rng=g[1])
    written += _save(P.plot_factor_effects(st), out, "factor_effects")

    step("steering matrix and congruent vs incongruent steering")
    sm = assess_steerability(d.steering, d.reference_country, baseline=None, by=["model", "language"],
                             n_resamples=n_resamples, n_permutations=n_permutations, rng=g[2])
    ax = new_axes(None, width=DOUBLE_COLUMN * 0.8, height=3.4)[1]
    written += _save(P.plot_steering_matrix(sm, ax=ax, model="gemma-2-27b-it", language="en"), out,
                     "steering_matrix_en")
    sc = assess_steerability(d.steering, d.reference_country, baseline=None, by=["model", "language"],
                             metric="spearman", compare=("congruent", "congruent", "incongruent"),
                             n_resamples=n_resamples, n_permutations=n_permutations, rng=g[3])
    written += _save(P.plot_steering_gains(sc), out, "steering_congruent_vs_incongruent")

    step("specification curve of a 'closer' claim")
    cl = audit_claim(d.responses, d.reference_language, Claim.closer("gpt-4o", than="gemma-2-27b-it", group="en"),
                     n_resamples=n_resamples, n_permutations=n_permutations, rng=g[4])
    written += _save(P.plot_specification_curve(cl), out, "specification_curve")

    step("calibration of the item-bootstrap intervals (simulated studies)")
    cov = bootstrap_coverage(n_studies=1000, n_resamples=1000, rng=g[5])
    written += _save(P.plot_calibration(cov), out, "calibration")

    if bayes:
        step("Bayesian score model (compiles and samples; minutes)")
        from robustalign.models import fit_score_model

        fit = fit_score_model(d.responses, d.reference_language, draws=2000, tune=1000, chains=4, rng=g[6],
                              squeeze_n=10)  # docs/bayesian.md section 5: 1,000 draws sat on the gate's edge
        written += _save(P.plot_variance_shares(fit), out, "variance_shares")
    step(f"wrote {len(written)} files to {out}/")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustalign.figures", description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="figures", help="output directory (default figures/)")
    p.add_argument("--n-resamples", type=int, default=2000)
    p.add_argument("--n-permutations", type=int, default=2000)
    p.add_argument("--bayes", action="store_true", help="also fit the Bayesian score model (slow)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    make_figures(a.out, n_resamples=a.n_resamples, n_permutations=a.n_permutations, bayes=a.bayes, rng=a.seed,
                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
