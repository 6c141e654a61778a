"""Audit of the trade-off claim of Chae et al. (2025), "Assessing Socio-Cultural Alignment and Technical
Safety of Sovereign LLMs" (Findings of EMNLP 2025, arXiv 2510.14565), on a SIMULATION.

No model-level alignment and safety data of that study with an open licence were found (see README),
so this runs ``audit_tradeoff`` on simulated data with an assumed design: 9 models, one culture, 40
survey items answered 5 times each (robustalign.simulate), and 100 safety prompts per model scored 0/1
(violation). Two worlds with known truth:

* ``tradeoff``: a model's violation probability rises with its cultural fit,
  ``logit p_m = -1.7 + 0.8 z_m``, where ``z_m`` is the standardised fit of model m on the same items with
  400 answers per item (its fit without answer-sampling noise);
* ``none``: every model violates with probability 0.15.

Run from the repository root:  python analyses/chae2025_sovereign/run.py
Outputs: figures/chae2025_sovereign/*.csv
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign.claims.association import audit_tradeoff, units_needed
from robustalign.scoring import item_scores
from robustalign.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "chae2025_sovereign"
SEED = 20251016
DESIGN = {"n_models": 9, "n_items": 40, "n_groups": 1, "factors": {"format": 1}, "n_orders": 1, "sd_model_item": 0.3}
N_SAMPLES, N_SAMPLES_TRUTH, N_PROMPTS = 5, 400, 100
STAND_IN_R = 0.5  # no published coefficient found: a stand-in "moderate" correlation for the power rows
N_BOOT, N_PERM = 2000, 9999
N_STUDIES = 25  # simulated studies per world for the verdict counts
# Cultural fit per item: Brier similarity, exactly unbiased for the answer distribution from 2 answers per cell.
# JS similarity (this audit's metric before JS needed 10 answers per cell) is not estimable from 5 answers
# per cell: no estimator of it keeps its bias below a 40-item interval's width there (docs/resampling.md).
METRIC = "brier"


def model_fit(n_samples: int, seed: int) -> tuple[object, object, pd.Series]:
    """Responses, reference and each model's mean fit (``METRIC`` similarity) with ``n_samples`` answers per item."""
    sim = simulate(**DESIGN, n_samples=n_samples, rng=seed)
    resp, ref = sim.load()
    fit = item_scores(resp, ref, metric=METRIC).groupby("model")["score"].mean()
    return resp, ref, fit


def violation_probabilities(world: str, fit_truth: pd.Series) -> pd.Series:
    if world == "none":
        return pd.Series(0.15, index=fit_truth.index)
    z = (fit_truth - fit_truth.mean()) / fit_truth.std(ddof=1)
    return 1 / (1 + np.exp(-(-1.7 + 0.8 * z)))


def safety_table(p: pd.Series, seed: int) -> pd.DataFrame:
    gen = np.random.default_rng(seed)
    rows = [(m, f"prompt_{i:03d}", int(v)) for m, pm in p.items() for i, v in enumerate(gen.random(N_PROMPTS) < pm)]
    return pd.DataFrame(rows, columns=["model", "item", "violation"])


def audit_world(world: str, seed: int, n_boot: int = N_BOOT, n_perm: int = N_PERM) -> dict:
    """One simulated study: the audit, and the correlation of the models' fit without answer noise with p."""
    resp, ref, _ = model_fit(N_SAMPLES, seed)
    _, _, fit_truth = model_fit(N_SAMPLES_TRUTH, seed)  # same models, items and reference; 400 answers per item
    p = violation_probabilities(world, fit_truth)
    res = audit_tradeoff(resp, ref, safety_table(p, seed + 1), safety_value="violation", published=STAND_IN_R, metric=METRIC,
                         n_resamples=n_boot, n_permutations=n_perm, rng=seed)
    truth = float(np.corrcoef(fit_truth.to_numpy(), p.reindex(fit_truth.index).to_numpy())[0, 1]) if p.std() > 0 else 0.0
    return {"world": world, "result": res, "truth_r": truth}


def tally(n_studies: int = N_STUDIES) -> pd.DataFrame:
    """Verdicts over ``n_studies`` simulated studies per world (fewer resamples: the verdict counts are the output)."""
    rows = []
    for w in ("tradeoff", "none"):
        for k in range(n_studies):
            d = audit_world(w, SEED + 1000 * (k + 1), n_boot=200, n_perm=999)
            f = d["result"].to_frame().set_index("quantity")
            rows.append({"world": w, "study": k, "verdict": d["result"].verdicts["verdict"].iloc[0],
                         "truth_r": d["truth_r"], "r_naive": f.loc["pearson_naive", "estimate"],
                         "r_corrected": f.loc["pearson_corrected", "estimate"],
                         "reliability_fit": f.loc["reliability_cultural_fit", "estimate"],
                         "p_value": f.loc["pearson_corrected", "p_value"]})
    return pd.DataFrame(rows)


def main(write: bool = True, n_studies: int = N_STUDIES) -> dict:
    t0 = time.time()
    out = {w: audit_world(w, SEED) for w in ("tradeoff", "none")}
    estimates = pd.concat([d["result"].to_frame().assign(world=w, truth_r=d["truth_r"]) for w, d in out.items()],
                          ignore_index=True)
    verdicts = pd.concat([d["result"].verdicts.assign(world=w) for w, d in out.items()], ignore_index=True)
    units = pd.concat([d["result"].evidence["units"].assign(world=w) for w, d in out.items()], ignore_index=True)
    power = pd.concat([d["result"].evidence["power"].assign(world=w) for w, d in out.items()], ignore_index=True)
    power_grid = pd.DataFrame([{"rho": r, "reliability": rel, "units_needed": units_needed(r, rel_x=rel, rel_y=rel)}
                               for r in (0.3, 0.5, 0.7) for rel in (1.0, 0.8, 0.5)])
    studies = tally(n_studies)
    summary = studies.groupby(["world", "verdict"]).size().unstack(fill_value=0)
    tables = {"estimates": estimates, "verdicts": verdicts, "units": units, "power": power,
              "power_grid": power_grid, "studies": studies, "verdict_counts": summary.reset_index()}
    if write:
        OUT.mkdir(parents=True, exist_ok=True)
        for name, df in tables.items():
            df.to_csv(OUT / f"{name}.csv", index=False)
    for w, d in out.items():
        print(f"[{w}] r on these items without answer noise = {d['truth_r']:.2f}\n{d['result'].summary()}")
    print(summary.to_string())
    print(studies.groupby("world")[["truth_r", "r_naive", "reliability_fit"]].median().round(2).to_string())
    print(f"done in {time.time() - t0:.1f} s")
    return tables | {"results": out}


if __name__ == "__main__":
    main()
