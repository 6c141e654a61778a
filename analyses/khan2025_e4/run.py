"""Khan et al. (2025) E4 with the METHODS 3.5 corrections, on the bundled multicultural-alignment data.

Khan et al.'s E4 clusters countries (and LLM personas) by k-means on subsets of the Hofstede dimensions and
compares each with the clustering on all six by the adjusted Rand index (published human baseline,
recomputed in METHODS 1.3: mean ARI 0.157, 0.249, 0.365, 0.473, 0.602 for subsets of 1..5 dimensions). The
subset is part of the full set, so part of that agreement is mechanical. The models' Hofstede answers are
not public, so this audit runs the corrected E4 (``robustalign.claims.assess_cluster_agreement``) on real
bundled data instead: Rystrøm et al. (2025), MIT licence, in ``robustalign/datasets/multicultural_alignment``.

* Units: the 13 countries (human WVS shares, ``ground_truth_every_country.csv``) and, separately, the 9
  models (each model's mean pro-score per item over prompt languages, templates and samples,
  ``all_lang_model_responses_with_scores.csv``). The two groups are never clustered together.
* Dimensions: WVS blocks, as in the E1 analysis of docs/claims.md: work and family (C + D), politics and
  society (E), religion and morality (F); the two H items are left out. Only items both sources have.
  A dimension score is the mean pro-score of its items.
* Each block is held out in turn and the units are clustered on the other two; k = 3 fixed a priori.

Run from the repository root:  python analyses/khan2025_e4/run.py   (writes figures/khan2025_e4/)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import robustalign.datasets
from robustalign.claims import assess_cluster_agreement

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "khan2025_e4"
DATA = Path(robustalign.datasets.__file__).parent / "multicultural_alignment"
SEED = 20250311
BLOCKS = {"C": "work and family", "D": "work and family", "E": "politics and society",
          "F": "religion and morality"}
K = 3
#: Khan et al.'s human baseline (METHODS 1.3, recomputed from their code): mean ARI of subset vs all six
#: Hofstede dimensions, by subset size 1..5.
KHAN_HUMAN_ARI = {1: 0.157, 2: 0.249, 3: 0.365, 4: 0.473, 5: 0.602}


def load_units() -> pd.DataFrame:
    """Long table: source (countries / models), unit, dimension, item, value (pro-score in [0, 1])."""
    human = pd.read_csv(DATA / "ground_truth_every_country.csv")
    human = human.rename(columns={"cntry_an": "unit", "question_key": "item", "pro_score": "value"})
    human["item"] = human["item"].str.upper()
    models = pd.read_csv(DATA / "all_lang_model_responses_with_scores.csv")
    models["item"] = models["question_key"].str.upper()
    models = (models.groupby(["model_name", "item"], as_index=False)["response_pro_score"].mean()
              .rename(columns={"model_name": "unit", "response_pro_score": "value"}))
    common = sorted(set(human["item"]) & set(models["item"]))
    out = pd.concat([human.assign(source="countries"), models.assign(source="models")], ignore_index=True)
    out = out[out["item"].isin(common)].copy()
    out["dimension"] = out["item"].str[0].map(BLOCKS)
    return out.dropna(subset=["dimension"])[["source", "unit", "dimension", "item", "value"]]


def audit(data: pd.DataFrame, *, n_resamples: int = 1000, n_permutations: int = 9999, rng=SEED):
    dims = sorted(set(BLOCKS.values()))
    out = {}
    for held in dims:
        out[held] = assess_cluster_agreement(data, evaluated=[d for d in dims if d != held], held_out=[held], k=K,
                                             unit="unit", by="source", reference="countries",
                                             n_resamples=n_resamples, n_permutations=n_permutations, rng=rng)
    return out


def main(n_resamples: int = 1000, n_permutations: int = 9999) -> dict:
    OUT.mkdir(parents=True, exist_ok=True)
    data = load_units()
    print(data.groupby(["source", "dimension"]).item.nunique().unstack().to_string())
    results = audit(data, n_resamples=n_resamples, n_permutations=n_permutations)
    frames = []
    for held, res in results.items():
        frames.append(res.to_frame().assign(held_out=held))
        print(f"\nheld out: {held}")
        print("\n".join(res.verdicts["reason"]))
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(OUT / "e4_ari.csv", index=False)
    cols = ["held_out", "group", "quantity", "estimate", "conf_low", "conf_high", "p_value", "p_adjusted",
            "silhouette_evaluated", "silhouette_held_out", "bootstrap_bias"]
    pd.set_option("display.width", 220)
    print(table[[c for c in cols if c in table]].round(3).to_string(index=False))
    return {"results": results, "table": table}


if __name__ == "__main__":
    main()
