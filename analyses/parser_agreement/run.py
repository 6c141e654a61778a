"""Agreement of robustalign's answer parser with human labels, and the published valid-answer shares.

Reproduces every number in docs/parser.md:

1. a seeded random sample of 60 completions from the bundled Röttger et al. (2024) experiments, labelled
   by hand (tests/data/pct_hand_labels.csv);
2. a stratified sample of 48 harder completions (tests/data/pct_hand_labels_hard.csv);
3. the authors' 100 annotated "invalid" completions (annotations/invalid_completions_240124.csv), with
   their four 0/1 labels, and our own reading of the same 100 (tests/data/pct_hand_labels_invalid100.csv);
4. the authors' 200 annotated open-ended completions (annotations/agreement_classification_240124.csv);
5. valid-answer shares per model x forcing level next to the published ones.

Run from the repository root:  python analyses/parser_agreement/run.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.inter_rater import cohens_kappa

from robustalign.datasets.pct import (
    OPENING_DISCLAIMER,
    PCT_LABELS,
    PUBLISHED_VALID_COUNTS,
    load_llm_values_pct,
    load_llm_values_pct_annotations,
    load_llm_values_pct_raw,
)
from robustalign.parsing import PARSER_VERSION, parse_answers

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SAMPLE_SEED = 20240124  # the random hand-audit sample
HARD_SEED = 20240125  # the stratified sample of harder completions
STATUSES = ["valid", "refusal", "unparseable", "ambiguous"]




def kappa(a, b, labels=None) -> dict:
    """Cohen's kappa (statsmodels) with its asymptotic 95% CI, and raw agreement with a Clopper-Pearson CI."""
    a, b = pd.Series(list(a), dtype=object), pd.Series(list(b), dtype=object)
    labels = labels or sorted(set(a) | set(b))
    table = pd.crosstab(a, b).reindex(index=labels, columns=labels, fill_value=0).to_numpy()
    agree = int(np.trace(table))
    n = int(table.sum())
    ci = stats.binomtest(agree, n).proportion_ci(0.95, method="exact")
    out = {"n": n, "agreement": agree / n, "agreement_ci": (ci.low, ci.high)}
    if (table.sum(0) > 0).sum() < 2 and (table.sum(1) > 0).sum() < 2:
        out.update(kappa=np.nan, kappa_ci=(np.nan, np.nan))
    else:
        res = cohens_kappa(table)
        out.update(kappa=res.kappa, kappa_ci=(res.kappa_low, res.kappa_upp))
    return out


def fmt(k: dict) -> str:
    lo, hi = k["agreement_ci"]
    kap = "undefined (one rater uses one category)" if np.isnan(k["kappa"]) else (
        f"kappa = {k['kappa']:.3f} [{k['kappa_ci'][0]:.3f}, {min(k['kappa_ci'][1], 1):.3f}]"
    )
    return f"n = {k['n']}, agreement = {k['agreement']:.1%} [{lo:.1%}, {hi:.1%}], {kap}"


def md(df: pd.DataFrame) -> str:
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    head = "| " + " | ".join([df.index.name or ""] + list(df.columns)) + " |"
    sep = "|" + "---|" * (len(df.columns) + 1)
    rows = ["| " + " | ".join([str(i)] + [str(v) for v in r]) + " |" for i, r in zip(df.index, df.to_numpy())]
    return "\n".join([head, sep, *rows])


def both_experiments() -> pd.DataFrame:
    raw = pd.concat([load_llm_values_pct_raw("paraphrase"), load_llm_values_pct_raw("forcing")], ignore_index=True)
    return raw.join(parse_answers(raw["completion"], PCT_LABELS))


def joint(status: pd.Series, option: pd.Series) -> pd.Series:
    """One category per completion: 'valid:<option>' or the exclusion status."""
    return [f"valid:{o}" if s == "valid" else s for s, o in zip(status, option)]


def hand_audit(raw: pd.DataFrame) -> None:
    idx = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(raw), size=60, replace=False))
    h = pd.read_csv(DATA / "pct_hand_labels.csv", dtype=str, keep_default_na=False)
    assert list(raw["completion_id"].iloc[idx]) == list(h["completion_id"]), "sample and labels differ"
    _audit_report("Random sample (60)", raw.set_index("completion_id"), h)


def _audit_report(title: str, raw: pd.DataFrame, h: pd.DataFrame) -> None:
    p = raw.loc[h["completion_id"]]
    p_opt = (p["position"] + 1).astype("string").fillna("").to_numpy()
    print(f"\n### {title}\n")
    conf = pd.crosstab(pd.Series(h["status"].to_numpy(), name="hand label"),
                       pd.Series(p["status"].to_numpy(), name="parser"))
    print(md(conf.reindex(index=[s for s in STATUSES if s in conf.index],
                          columns=[s for s in STATUSES if s in conf.columns], fill_value=0)))
    print()
    print("- valid vs not valid:", fmt(kappa(h["status"].eq("valid"), p["status"].eq("valid").to_numpy())))
    print("- refusal vs not refusal:", fmt(kappa(h["status"].eq("refusal"), p["status"].eq("refusal").to_numpy())))
    print("- four statuses:", fmt(kappa(h["status"], p["status"].to_numpy())))
    print("- status and option:", fmt(kappa(joint(h["status"], h["option"]), joint(p["status"], p_opt))))
    both = (h["status"].to_numpy() == "valid") & (p["status"].to_numpy() == "valid")
    print(f"- option identical when both say valid: {int((h['option'].to_numpy()[both] == p_opt[both]).sum())}"
          f" of {int(both.sum())}")
    rules = p["rule"].str.replace("+disclaimer", "", regex=False).value_counts()
    print("- parser rules in this sample:", ", ".join(f"{r} {n}" for r, n in rules.items()))


def hard_audit(raw: pd.DataFrame) -> None:
    h = pd.read_csv(DATA / "pct_hand_labels_hard.csv", dtype=str, keep_default_na=False)
    _audit_report("Stratified sample of harder completions (48)", raw.set_index("completion_id"), h)
    p = raw.set_index("completion_id").loc[h["completion_id"]]
    ok = (h["status"].to_numpy() == p["status"].to_numpy()) & (
        h["option"].to_numpy() == (p["position"] + 1).astype("string").fillna("").to_numpy())
    print("\nper stratum (parser rule group the completion was drawn from): agreement")
    for s, g in pd.Series(ok).groupby(h["stratum"].to_numpy()):
        print(f"- {s}: {int(g.sum())}/{len(g)}")


def invalid_annotations() -> None:
    a = load_llm_values_pct_annotations("invalid")
    a = a.join(parse_answers(a["completion"], PCT_LABELS))
    print("\n### The authors' 100 annotated invalid completions\n")
    print("parser status:", a["status"].value_counts().to_dict(), "| rules:", a["rule"].value_counts().to_dict())
    for flag in ["donothave", "bothsides", "oneside", "refusal"]:
        k = kappa(a[f"annot1_{flag}"], a[f"annot2_{flag}"])
        print(f"- annotators 1 vs 2 on `{flag}`: {fmt(k)}")
    a["h_refusal_any"] = a["annot1_refusal"] | a["annot2_refusal"]
    a["p_refusal"] = a["status"].eq("refusal").astype(int)
    a["p_valid"] = a["status"].eq("valid").astype(int)
    for who in ["annot1", "annot2"]:
        print(f"- parser refusal vs {who} `refusal`: {fmt(kappa(a['p_refusal'], a[f'{who}_refusal']))}")
        dec = (a[f"{who}_refusal"] | a[f"{who}_donothave"]).astype(int)
        print(f"- parser refusal vs {who} `refusal` or `donothave`: {fmt(kappa(a['p_refusal'], dec))}")
        print(f"- parser valid vs {who} `oneside`: {fmt(kappa(a['p_valid'], a[f'{who}_oneside']))}")
    pattern = [
        "+".join(f for f in ["donothave", "bothsides", "oneside", "refusal"] if r[f"annot1_{f}"] and r[f"annot2_{f}"])
        or "(none agreed)"
        for _, r in a.iterrows()
    ]
    print("\nparser status x categories both annotators marked:\n")
    print(md(pd.crosstab(pd.Series(pattern, name="both annotators"), a["status"].rename("parser"))))
    mine = pd.read_csv(DATA / "pct_hand_labels_invalid100.csv", dtype=str, keep_default_na=False)
    assert list(mine["row_id"].astype(int)) == list(a["row_id"])
    p_opt = (a["position"] + 1).astype("string").fillna("").to_numpy()
    print("\nour own reading of the same 100 vs the parser:\n")
    print(md(pd.crosstab(pd.Series(mine["status"].to_numpy(), name="hand label"), a["status"].rename("parser"))))
    print()
    print("- valid vs not valid:", fmt(kappa(mine["status"].eq("valid"), a["status"].eq("valid"))))
    print("- refusal vs not refusal:", fmt(kappa(mine["status"].eq("refusal"), a["status"].eq("refusal"))))
    print("- status and option:", fmt(kappa(joint(mine["status"], mine["option"]), joint(a["status"], p_opt))))


def open_ended() -> None:
    b = load_llm_values_pct_annotations("agreement")
    b = b.join(parse_answers(b["completion"], PCT_LABELS))
    decided = b["decision"].map({"agree": "2_agree", "disagree": "1_disagree", "other": "3_other"})
    human = b["annot1_label"].where(b["annot1_label"] == b["annot2_label"], decided)
    side = b["position"].map({0: "1_disagree", 1: "1_disagree", 2: "2_agree", 3: "2_agree"}).fillna("3_other")
    print("\n### The authors' 200 annotated open-ended completions (no options shown)\n")
    print("- annotators 1 vs 2:", fmt(kappa(b["annot1_label"], b["annot2_label"])))
    print("- parser side (options 1-2 / 3-4 / none) vs human consensus:", fmt(kappa(side, human)))
    print()
    print(md(pd.crosstab(human.rename("human"), side.rename("parser"))))
    print("\nparser status:", b["status"].value_counts().to_dict(), "| rules:", b["rule"].value_counts().to_dict())


def published_shares() -> None:
    r = load_llm_values_pct("forcing")
    raw = load_llm_values_pct_raw("forcing")
    d = r.data.assign(
        valid=r.data["status"].eq("valid"),
        no_disclaimer=r.data["status"].eq("valid") & ~r.data["parse_rule"].str.endswith("+disclaimer"),
        opens_clean=r.data["status"].eq("valid") & ~raw["completion"].str.match(OPENING_DISCLAIMER).to_numpy(),
    )
    g = d.groupby(["model", "forcing"])[["valid", "no_disclaimer", "opens_clean"]].sum()
    levels = ["jail-01", "jail-02", "jail-03", "jail-04", "jail-05"]
    rows = []
    for m, pub in PUBLISHED_VALID_COUNTS.items():
        ours = [int(g.loc[(m, lv), "valid"]) for lv in levels]
        nod = [int(g.loc[(m, lv), "no_disclaimer"]) for lv in levels]
        opn = [int(g.loc[(m, lv), "opens_clean"]) for lv in levels]
        rows.append({
            "model": m.split("/")[-1],
            "published": " / ".join(f"{100 * k / 62:.1f}" for k in pub),
            "ours (valid)": " / ".join(f"{100 * k / 62:.1f}" for k in ours),
            "ours, no disclaimer anywhere": " / ".join(f"{100 * k / 62:.1f}" for k in nod),
            "ours, not opening with a disclaimer": " / ".join(f"{100 * k / 62:.1f}" for k in opn),
            "max |ours - published| (answers)": max(abs(a - b) for a, b in zip(ours, pub)),
            "max |opening rule - published|": max(abs(a - b) for a, b in zip(opn, pub)),
        })
    print("\n### Valid answers per model x forcing level (jail-01 .. jail-05, % of 62)\n")
    print(md(pd.DataFrame(rows).set_index("model")))
    sc = r.status_counts(by=["model", "forcing"])
    assert (sc["total"] == 62).all()


def main() -> None:
    print(f"parser version {PARSER_VERSION}")
    raw = both_experiments()
    print("\n### Statuses and rules over all 8,060 completions\n")
    print(md(pd.crosstab(raw["rule"], raw["status"])))
    base = raw.loc[raw["status"] == "valid", "rule"].str.replace("+disclaimer", "", regex=False)
    fallback = base.isin(["in_text", "stance"]).mean()
    print(f"\nvalid answers: {len(base)}; recovered by fallback rules (in_text, stance): {fallback:.1%}; "
          f"with a disclaimer: {raw.loc[raw['status'] == 'valid', 'rule'].str.endswith('+disclaimer').mean():.1%}")
    hand_audit(raw)
    hard_audit(raw)
    invalid_annotations()
    open_ended()
    published_shares()


if __name__ == "__main__":
    main()
