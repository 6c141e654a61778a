"""General claims on the bundled multicultural-alignment data (Rystrøm et al. 2025), audited over every
admissible specification: the table "Bundled data: multicultural alignment" of docs/claims.md.

Nine models answered 32 World Values Survey items in four prompt languages; each answer is a 0-1 score
from 10 draws. The reference is the country one (human shares per country). Four claims of the kinds a
paper makes, each through ``audit_claim`` with its defaults (every admissible metric x mean / median, the
prompt language as a factor where the claim does not fix it; 2,000 bootstrap resamples and 10,000
bootstrap-t resamples or permutations):

* a contrast: gpt-4o prompted in Danish is closer to Danish answers than prompted in English;
* a trend: within gemma-2, alignment with Denmark rises with the parameter count (2, 9, 27 billion);
* an equivalence: gpt-4o is equally close to Denmark, the Netherlands and Portugal (margin 0.05);
* a correlation: across six OLMo-2 and gemma-2 models, alignment with Denmark rises with size (Spearman).

Run from the repository root:  python analyses/rystrom2025_claims/run.py
Outputs: figures/rystrom2025_claims/claims.csv (one row per claim: verdict, reason, share of
specifications that hold, items needed) and specifications_<name>.csv (one row per specification).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from robustalign.claims import Claim, audit_claim
from robustalign.datasets import load_multicultural_alignment

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "rystrom2025_claims"
SEED = 2025
# parameter counts in billions, from the model names
SIZES = {"OLMo-2-1124-7B-Instruct": 7, "OLMo-2-1124-13B-Instruct": 13, "OLMo-2-0325-32B-Instruct": 32,
         "gemma-2-2b-it": 2, "gemma-2-9b-it": 9, "gemma-2-27b-it": 27}
CLAIMS = {
    "contrast": Claim.contrast({"model": "gpt-4o", "language": "da"}, {"model": "gpt-4o", "language": "en"},
                               group="DK"),
    "trend": Claim.trend({"gemma-2-2b-it": 2, "gemma-2-9b-it": 9, "gemma-2-27b-it": 27}, group="DK"),
    "equivalent": Claim.equivalent(model="gpt-4o", groups=["DK", "NL", "PT"], margin=0.05),
    "correlation": Claim.correlation(SIZES, group="DK", method="spearman"),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = load_multicultural_alignment()
    rows, t0 = [], time.perf_counter()
    for name, claim in CLAIMS.items():
        t = time.perf_counter()
        res = audit_claim(data.responses, data.reference_country, claim, rng=SEED)
        specs = res.to_frame()
        specs.to_csv(OUT / f"specifications_{name}.csv", index=False)
        v = res.verdicts.iloc[0].to_dict()
        v.update(name=name, median_estimate=float(specs["estimate"].median()), seconds=time.perf_counter() - t)
        rows.append(v)
        print(f"{name}: {v['verdict']} ({v['n_specifications']} specifications, {v['share_holds']:.0%} hold); "
              f"{v['reason']}", flush=True)
    pd.DataFrame(rows).to_csv(OUT / "claims.csv", index=False)
    (OUT / "run_info.json").write_text(json.dumps({"seed": SEED, "seconds": round(time.perf_counter() - t0, 1),
                                                   "claims": {k: c.text for k, c in CLAIMS.items()}}, indent=1)
                                       + "\n")


if __name__ == "__main__":
    main()
