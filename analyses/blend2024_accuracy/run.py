"""BLEnD (Myung et al., NeurIPS 2024 Datasets & Benchmarks): accuracy per culture -- a SIMULATION with the
published design, not the authors' data.

No stored model answers with per-question correctness per country and an open licence were found (see
README.md for what was searched), so this audit simulates answers with BLEnD's published design and asks
what robustalign concludes about its kind of claim:

* 16 countries/regions, 500 short-answer question templates each, the *same* templates asked for every
  country (question IDs such as ``Al-en-01`` are shared across the country files of the BLEnD repository,
  nlee0212/BLEnD commit 24e7d73): items are crossed with countries, so an item resample keeps a template in
  every country;
* the published headline: GPT-4, the best model, differs by up to 57.34 percentage points between
  countries in the short-answer format; "LLMs perform better for cultures that are highly represented
  online".

Simulated truth (our assumption, labelled as such): country accuracies of the stronger model evenly spaced
from 0.85 (first country below) to 0.85 - 0.5734 (last), so the design's max - min gap is the published
57.34 points; a weaker model is the same with every logit location lowered by 0.4; template difficulty u_q ~ N(0, 1) shared by countries and models, country x template effects
N(0, 1). The first eight countries in ``ORDER`` are called "high online presence" here purely by the
simulation's construction.

Run from the repository root:  python analyses/blend2024_accuracy/run.py   (writes figures/blend2024_accuracy/)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from robustalign.claims import assess_accuracy

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "blend2024_accuracy"
SEED = 20240614  # BLEnD arXiv v1 date (2406.09948)

#: BLEnD's 16 countries/regions (file names of data/questions/ in the BLEnD repository), each with 500
#: question templates; ordered here by the simulation's assumed accuracy, highest first.
ORDER = ["US", "UK", "Spain", "China", "Mexico", "South_Korea", "Greece", "Indonesia", "Iran", "Algeria",
         "Azerbaijan", "West_Java", "North_Korea", "Assam", "Northern_Nigeria", "Ethiopia"]
N_TEMPLATES = 500
PUBLISHED_MAX_GAP = 0.5734  # GPT-4, short-answer format (BLEnD README and abstract)
TOP = 0.85
SD_ITEM, SD_CELL = 1.0, 1.0
HIGH, LOW = ORDER[:8], ORDER[8:]


def _mean_accuracy(mu: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float((w * expit(mu + np.hypot(SD_ITEM, SD_CELL) * x)).sum() / w.sum())


def design_truth() -> pd.DataFrame:
    """Country x model true accuracies (population of templates) and the logit locations giving them."""
    target = np.linspace(TOP, TOP - PUBLISHED_MAX_GAP, len(ORDER))
    mu = np.array([brentq(lambda m, t=t: _mean_accuracy(m) - t, -12, 12) for t in target])
    rows = [{"culture": c, "model": "strong", "mu": m, "truth": t} for c, m, t in zip(ORDER, mu, target)]
    rows += [{"culture": c, "model": "weak", "mu": m - 0.4, "truth": _mean_accuracy(m - 0.4)}
             for c, m in zip(ORDER, mu)]
    return pd.DataFrame(rows)


def simulate(seed: int = SEED) -> pd.DataFrame:
    """One answer per model x country x template, scored 0/1 (draws from numpy, seeded)."""
    gen = np.random.default_rng(seed)
    truth = design_truth()
    u = gen.normal(0, SD_ITEM, N_TEMPLATES)
    v = gen.normal(0, SD_CELL, (len(ORDER), N_TEMPLATES))
    frames = []
    for _, r in truth.iterrows():
        c = ORDER.index(r.culture)
        p = expit(r.mu + u + v[c])
        frames.append(pd.DataFrame({"model": r.model, "culture": r.culture,
                                    "item": [f"Al-en-{q:03d}" for q in range(N_TEMPLATES)],
                                    "correct": (gen.random(N_TEMPLATES) < p).astype(int)}))
    return pd.concat(frames, ignore_index=True)


def audit(data: pd.DataFrame, *, n_resamples: int = 2000, n_permutations: int = 9999, rng=SEED):
    groups = {"high online presence": HIGH, "low online presence": LOW}
    res = assess_accuracy(data, groups=groups, n_resamples=n_resamples, n_permutations=n_permutations, rng=rng)
    gap = assess_accuracy(data[data.model == "strong"], groups={"US": ["US"], "Ethiopia": ["Ethiopia"]},
                          pairs=[], n_resamples=n_resamples, n_permutations=n_permutations, rng=rng)
    return res, gap


def main(n_resamples: int = 2000, n_permutations: int = 9999) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    data = simulate()
    res, gap = audit(data, n_resamples=n_resamples, n_permutations=n_permutations)
    f = res.to_frame()
    g = gap.to_frame().query("quantity == 'group contrast'")
    f.to_csv(OUT / "estimates.csv", index=False)
    res.verdicts.to_csv(OUT / "verdicts.csv", index=False)
    g.to_csv(OUT / "us_minus_ethiopia.csv", index=False)
    truth = design_truth().set_index(["model", "culture"])["truth"]
    acc = f[(f.quantity == "accuracy") & (f.culture != "(all)")].set_index(["model", "culture"])
    covered = int(((acc.conf_low <= truth.reindex(acc.index)) & (truth.reindex(acc.index) <= acc.conf_high)).sum())
    pd.set_option("display.width", 200)
    print(acc[["estimate", "conf_low", "conf_high"]].round(3).to_string())
    print(f"\ntrue accuracy inside the 95% interval: {covered}/{len(acc)} cells")
    print(g[["estimate", "conf_low", "conf_high", "p_value"]].round(4).to_string(index=False))
    print("\n".join(res.verdicts["reason"]))
    return {"result": res, "gap": gap, "covered": covered, "n_cells": len(acc)}


if __name__ == "__main__":
    main()
