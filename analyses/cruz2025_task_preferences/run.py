"""Audit of a forced-choice preference study: which MMLU task does gpt-4.1-nano pick, and does order matter?

Cruz (2025), "Measuring AI Task Preferences: Position Bias, Neutral Prompting, and Statistical Power in
Pairwise Comparisons" (github.com/diogo-cruz/model_preferences, MIT): gpt-4.1-nano was shown two MMLU
tasks ("Pick which one you want to do") from 40 subjects, 2,000 comparisons, with the presentation
order randomised (AB / BA). The bundled extract (data/choices.csv) keeps the 2,000 rows of that
experiment. Published: the model picks task A 70% of the time when A is shown first and 32% when it
is shown second (a 37.9-point position bias), 51.2% overall, and econometrics and formal logic rank
among the most preferred subjects.

This script

1. reproduces the published shares and puts a pair-bootstrap interval on each (pairs of subjects are
   the resampling unit: every choice about a pair moves together);
2. fits Bradley-Terry utilities with a position effect (robustalign.claims.preferences) and reports
   utilities and rank intervals, the position effect with a within-pair order permutation test, and
   the share of cyclic triads against its noise floor under a transitive model.

3. with ``--bayes``, fits the Bayesian Bradley-Terry model (robustalign.models) and reports it only
   with its convergence-gate verdict.

Run from the repository root:  python analyses/cruz2025_task_preferences/run.py  [--bayes]
Outputs: analyses/cruz2025_task_preferences/results/*.csv
"""

from __future__ import annotations

import argparse
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign.claims.preferences import assess_preferences, load_pairwise
from robustalign.resampling import percentile_interval
from robustalign.resampling.nulls import item_bootstrap

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "choices.csv"
OUT = HERE / "results"
SEED = 20250720
MODEL = "gpt-4.1-nano"
N_BOOT = 1000
N_PERM = 5000
N_SIMS = 1000
#: The paper's numbers (report/main.tex: abstract, section 4.1 and its figure caption).
PUBLISHED = {
    "share choosing task A | A shown first": 0.70,
    "share choosing task A | A shown second": 0.32,
    "position bias (difference of the two)": 0.379,
    "share choosing task A overall": 0.512,
}
COMPARE = [("econometrics", "global_facts"), ("formal_logic", "abstract_algebra")]


def load_data() -> pd.DataFrame:
    """The extract in robustalign's forced-choice format (``choice`` names the task, not the position)."""
    raw = pd.read_csv(DATA)
    return pd.DataFrame({
        "model": MODEL,
        "outcome_a": raw["task_a_subject"],
        "outcome_b": raw["task_b_subject"],
        "order": raw["actual_order"].map({"AB": "a_first", "BA": "b_first"}),
        "choice": raw["choice"].str.lower(),
    })


def _shares(idx, *, pair, a_first, chose_a):
    """Published shares under pair resamples: rows weighted by how often their pair was drawn."""
    n_pairs = pair.max() + 1
    out = np.empty((idx.shape[0], 4))
    for r in range(idx.shape[0]):
        w = np.bincount(idx[r], minlength=n_pairs)[pair].astype(float)
        s1 = (w * chose_a * a_first).sum() / (w * a_first).sum()
        s2 = (w * chose_a * ~a_first).sum() / (w * ~a_first).sum()
        out[r] = s1, s2, s1 - s2, (w * chose_a).sum() / w.sum()
    return out


def published_vs_ours(df: pd.DataFrame, *, n_resamples: int = N_BOOT, rng=SEED) -> pd.DataFrame:
    """The published shares, ours, and a 95% pair-bootstrap interval for each."""
    pair = pd.factorize(pd.Series([tuple(sorted(p)) for p in zip(df["outcome_a"], df["outcome_b"])]))[0]
    stat = partial(_shares, pair=pair, a_first=(df["order"] == "a_first").to_numpy(),
                   chose_a=(df["choice"] == "a").to_numpy(float))
    est = stat(np.arange(pair.max() + 1)[None, :])[0]
    boot = item_bootstrap(stat, pair.max() + 1, n_resamples=n_resamples, rng=rng, key=("cruz2025.shares",))
    lo, hi = percentile_interval(boot, confidence_level=0.95)
    return pd.DataFrame({"quantity": list(PUBLISHED), "published": list(PUBLISHED.values()), "ours": est,
                         "conf_low": lo, "conf_high": hi, "conf_level": 0.95,
                         "method": "percentile", "method_note": "pair bootstrap"})


def main(n_resamples: int = N_BOOT, n_permutations: int = N_PERM, n_sims: int = N_SIMS):
    t0 = time.time()
    df = load_data()
    pc = load_pairwise(df, source=DATA.name)
    table = published_vs_ours(pc.data, n_resamples=n_resamples)
    res = assess_preferences(pc, compare=COMPARE, n_resamples=n_resamples, n_permutations=n_permutations,
                             n_sims=n_sims, rng=SEED)
    OUT.mkdir(exist_ok=True)
    table.to_csv(OUT / "published_vs_ours.csv", index=False, float_format="%.4f")
    res.to_frame().to_csv(OUT / "estimates.csv", index=False, float_format="%.4f")
    res.verdicts.to_csv(OUT / "verdicts.csv", index=False)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format="%.3f"))
    print(res.summary())
    top = res.to_frame().query("quantity == 'rank'").sort_values("estimate").head(6)
    print(top[["outcome", "estimate", "conf_low", "conf_high"]].to_string(index=False))
    print(f"{len(pc.data)} choices, {pc.exclusions.total()} excluded; {time.time() - t0:.0f} s")
    return table, res


def bayes(df: pd.DataFrame) -> pd.DataFrame:
    """The Bayesian Bradley-Terry fit; every row carries the gate's verdict (``converged``)."""
    from robustalign.models import fit_bradley_terry_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_bradley_terry_model(df, draws=1000, tune=1000, chains=4, rng=SEED)
    f = fit.to_frame(0.95)
    print("Bayesian Bradley-Terry gate:", {k: round(v, 3) if isinstance(v, float) else v
                                           for k, v in fit.overall.items()})
    for w in caught:
        print("warning:", w.message)
    OUT.mkdir(exist_ok=True)
    f.to_csv(OUT / "bayes.csv", index=False, float_format="%.4f")
    return f


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bayes", action="store_true", help="also fit the Bayesian Bradley-Terry model (~2 min)")
    args = ap.parse_args()
    main()
    if args.bayes:
        bayes(load_data())
