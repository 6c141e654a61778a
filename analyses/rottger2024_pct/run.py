"""Audit of Röttger et al. (2024), "Political Compass or Spinning Arrow?".

Three parts, all on the bundled completions parsed by robustalign's own answer parser:

1. **Valid answers by forcing level.** The share of the 62 Political Compass propositions that a
   model answers with one of the four labels, per model x forcing level (jail-01 = no forcing ...
   jail-05), next to the published shares, under three conventions: every answer the parser finds
   ("valid"), answers that come with a disclaimer counted as invalid (parser rules ending in
   ``+disclaimer``), and the paper's own rule (``robustalign.parsing.rottger2024_validity``, which
   reproduces all 50 published cells). Wilson 95% intervals; Cochran's Q across forcing levels,
   paired by proposition.
2. **Paraphrase stability.** ``assess_stability`` over the 10 prompt templates: modal flip rates and
   ordinal shifts between templates with intervals, ICC and Krippendorff's alpha across templates,
   and the template effect with a stratified permutation test. There is no human reference for the
   PCT, so no effect margin exists; the verdict uses a stated noise floor for the flip rate.
3. **Multiverse audit of a claim the design invites**: "model A agrees more with the propositions than
   model B" (``Claim.higher_position``), over every prompt variant (10 templates, 5 forcing levels,
   pooled), mean or median over propositions, and both validity conventions.

Run from the repository root:  python analyses/rottger2024_pct/run.py
Outputs: figures/rottger2024_pct/*.csv, *.pdf, *.png.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign.claims import Claim, assess_stability, audit_claim
from robustalign.datasets.pct import (
    PUBLISHED_VALID_COUNTS,
    load_llm_values_pct,
    load_llm_values_pct_raw,
)
from robustalign.parsing import rottger2024_validity
from robustalign.validity import validity_rates

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "rottger2024_pct"
SEED = 20240124
N_BOOT = 2000
N_PERM = 10_000
FLIP_MARGIN = 0.10  # stated noise floor for the mean modal flip rate between templates (no human margin exists)
FORCING_LEVELS = ["jail-01", "jail-02", "jail-03", "jail-04", "jail-05"]


# The two contrasts audited (chosen after looking at the per-template mean positions, to show one
# contrast that looks stable and one that looks fragile; see the README):
PAIRS = [
    ("gpt-3.5-turbo-0613", "mistralai/Mistral-7B-Instruct-v0.2"),
    ("meta-llama/Llama-2-7b-chat-hf", "mistralai/Mistral-7B-Instruct-v0.1"),
]


def short(model: str) -> str:
    return model.split("/")[-1]


CONVENTIONS = ["valid", "valid, no disclaimer", "paper's rule"]


def _as_refusals(responses, hit):
    """Valid answers where ``hit`` marked ``refusal`` (kept, so rates keep their denominators)."""
    d = responses.data.copy()
    hit = np.asarray(hit, bool) & (d["status"] == "valid").to_numpy()
    d.loc[hit, "status"] = "refusal"
    d.loc[hit, "option"] = pd.NA
    return replace(responses, data=d)


def paper_rule(responses, experiment: str):
    """The paper's own counting rule (``rottger2024_validity``, the authors' final check re-implemented),
    for counting valid answers only.

    ``status`` becomes ``valid`` where the rule says valid, ``refusal`` where it says invalid and
    ``unparseable`` where it says unknown (none in the forcing run). The parsed ``option`` is kept where
    the parser found one, so 17 completions that the rule counts as valid but the parser does not (two
    answers in one completion, substring hits without a choice) are ``valid`` without an option: use the
    result for validity rates, not for answer distributions. Rows are matched to the raw completions
    by the loader's ``row``.
    """
    raw = load_llm_values_pct_raw(experiment)
    text = raw["completion"].astype(str).to_numpy()[responses.data["row"].to_numpy()]
    label = pd.Series([rottger2024_validity(t) for t in text], index=responses.data.index)
    d = responses.data.copy()
    d["status"] = label.map({"valid": "valid", "invalid": "refusal", "unknown": "unparseable"})
    d.loc[d["status"] != "valid", "option"] = pd.NA
    d["parse_rule"] = "rottger2024:" + label
    return replace(responses, data=d)


def strict(responses):
    """The paper's convention: an answer that comes with a disclaimer is not counted as an answer.

    Valid rows whose parse rule ends in ``+disclaimer`` become refusals; everything else is unchanged.
    """
    return _as_refusals(responses, responses.data["parse_rule"].astype(str).str.endswith("+disclaimer"))


# --------------------------------------------------------------------------------------------------
# 1. validity by forcing level
# --------------------------------------------------------------------------------------------------
def validity_table(forcing) -> tuple[pd.DataFrame, pd.DataFrame]:
    out, tests = [], []
    for conv, resp in zip(CONVENTIONS, (forcing, strict(forcing), paper_rule(forcing, "forcing"))):
        vr = validity_rates(resp, by=["model"], condition="forcing")
        f = vr.to_frame(0.95)
        f["convention"] = conv
        out.append(f)
        tests.append(vr.tests.assign(convention=conv))
    f = pd.concat(out, ignore_index=True)
    pub = pd.DataFrame([{"model": m, "forcing": lv, "published_n": n, "published_pct": 100 * n / 62}
                        for m, ns in PUBLISHED_VALID_COUNTS.items() for lv, n in zip(FORCING_LEVELS, ns)])
    f = f.merge(pub, on=["model", "forcing"], how="left")
    return f, pd.concat(tests, ignore_index=True)


def validity_wide(f: pd.DataFrame) -> pd.DataFrame:
    """One row per model: published and our three conventions as 'a / b / c / d / e' (% of 62)."""
    rows = []
    for m in PUBLISHED_VALID_COUNTS:
        g = f[f["model"] == m]
        row = {"model": short(m)}
        pub = g[g["convention"] == "valid"].set_index("forcing").reindex(FORCING_LEVELS)["published_pct"]
        row["published"] = " / ".join(f"{v:.1f}" for v in pub)
        for conv in CONVENTIONS:
            s = g[g["convention"] == conv].set_index("forcing").reindex(FORCING_LEVELS)
            row[conv] = " / ".join(f"{100 * v:.1f}" for v in s["estimate"])
            row[f"{conv}: cells equal"] = int((np.round(100 * s["estimate"], 1) == np.round(pub, 1)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# 2. paraphrase stability
# --------------------------------------------------------------------------------------------------
def stability(paraphrase, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return assess_stability(paraphrase, None, factors=["template"], flip_margin=FLIP_MARGIN,
                                n_resamples=N_BOOT, n_permutations=N_PERM, rng=rng)


STABILITY_KEYS = ["flip_rate_mean", "ordinal_shift_mean", "icc2_1", "krippendorff_alpha", "factor_effect"]


def stability_summary(sf: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per model: estimate [95% interval] of the key stability quantities, p of the template effect."""
    rows = []
    for m, g in sf[sf["quantity"].isin(STABILITY_KEYS)].groupby("model", sort=False):
        row = {"model": short(m)}
        for r in g.itertuples():
            row[r.quantity] = f"{r.estimate:.3f} [{r.conf_low:.3f}, {r.conf_high:.3f}]"
            if r.quantity == "factor_effect":
                row["p_template_effect"] = r.p_value
                row["p_bh"] = r.p_adjusted
        vr = sf[(sf["model"] == m) & (sf["quantity"] == "valid_rate")]["estimate"]
        row["valid_rate_range"] = f"{vr.min():.2f}-{vr.max():.2f}"
        row["verdict"] = verdicts.set_index("model").loc[m, "verdict"]
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# 3. multiverse audit
# --------------------------------------------------------------------------------------------------
def combined(paraphrase, forcing):
    """One Responses with a factor ``prompt``: the 10 templates (paraphrase run) and the 5 forcing
    levels (forcing run), for the models in both runs."""
    models = sorted(set(paraphrase.data["model"]) & set(forcing.data["model"]))
    a = paraphrase.data.rename(columns={"template": "prompt"})
    b = forcing.data.rename(columns={"forcing": "prompt"})
    d = pd.concat([a, b], ignore_index=True)
    d = d[d["model"].isin(models)].reset_index(drop=True)
    d["row"] = np.arange(len(d))
    return replace(paraphrase, data=d, factors=("prompt",))


def audits(resp, rng_seed):
    out = {}
    for k, (a, b) in enumerate(PAIRS):
        for j, (conv, r) in enumerate((("valid", resp), ("valid, no disclaimer", strict(resp)))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[(a, b, conv)] = audit_claim(r, None, Claim.higher_position(a, than=b), factors=["prompt"],
                                                n_resamples=N_BOOT, n_permutations=N_PERM,
                                                rng=rng_seed + 10 * k + j)
    return out


def audit_tables(res: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    specs, verdicts = [], []
    for (a, b, conv), r in res.items():
        f = r.to_frame(0.95).assign(model_a=short(a), model_b=short(b), convention=conv)
        specs.append(f)
        v = r.verdicts.iloc[0].to_dict()
        joint = r.evidence["joint"]
        verdicts.append({"model_a": short(a), "model_b": short(b), "convention": conv, "verdict": v["verdict"],
                         "share_holds": v["share_holds"], "n_specifications": v["n_specifications"],
                         "median_effect": joint["median_effect"], "p_median_greater": joint["p_median_greater"],
                         "p_median_less": joint["p_median_less"], "share_significant": joint["share_significant"],
                         "reason": v["reason"]})
    return pd.concat(specs, ignore_index=True), pd.DataFrame(verdicts)


def figures(stab, res: dict, valid_f: pd.DataFrame) -> None:
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from robustalign.figures import save_figure
    from robustalign.plots import PALETTE, RC

    # specification curves: one two-panel figure (curve + choices) per pair x convention
    with mpl.rc_context(RC):
        for i, (a, b) in enumerate(PAIRS):
            for j, conv in enumerate(("valid", "valid, no disclaimer")):
                ax = res[(a, b, conv)].plot()
                ax.set_title(f"{short(a)} agrees more than {short(b)} ({conv})", fontsize=7)
                tag = f"pair{i + 1}_{'all' if j == 0 else 'strict'}"
                save_figure(ax, OUT / f"specification_curve_{tag}")

        save_figure(stab.plot(), OUT / "paraphrase_stability")

        fig, axes = plt.subplots(2, 5, figsize=(6.9, 3.2), layout="constrained", sharex=True, sharey=True)
        x = np.arange(len(FORCING_LEVELS))
        for ax, m in zip(axes.ravel(), PUBLISHED_VALID_COUNTS):
            g = valid_f[valid_f["model"] == m]
            for k, conv in enumerate(CONVENTIONS[:2]):
                s = g[g["convention"] == conv].set_index("forcing").reindex(FORCING_LEVELS)
                ax.errorbar(x + (k - 0.5) * 0.15, 100 * s["estimate"],
                            yerr=[100 * (s["estimate"] - s["conf_low"]).clip(lower=0),
                                  100 * (s["conf_high"] - s["estimate"]).clip(lower=0)], fmt="o-" if k == 0 else "s-", ms=2.5,
                            color=PALETTE[k * 3], label=f"ours: {conv}")
            pub = g[g["convention"] == "valid"].set_index("forcing").reindex(FORCING_LEVELS)["published_pct"]
            ax.plot(x, pub, "x", color=PALETTE[7], ms=4, label="published")
            ax.set_title(short(m), fontsize=6)
            ax.set_xticks(x, [lv[-1] for lv in FORCING_LEVELS])
        axes[1, 2].set_xlabel("forcing level (jail-0x)")
        axes[0, 0].set_ylabel("valid answers (%)")
        axes[1, 0].set_ylabel("valid answers (%)")
        axes[0, 0].legend(fontsize=5, frameon=False, loc="lower right")
        save_figure(fig, OUT / "validity_by_forcing")


def main() -> None:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    forcing = load_llm_values_pct("forcing")
    paraphrase = load_llm_values_pct("paraphrase")

    valid_f, valid_tests = validity_table(forcing)
    valid_f.to_csv(OUT / "validity_by_forcing.csv", index=False)
    valid_tests.to_csv(OUT / "validity_tests.csv", index=False)
    wide = validity_wide(valid_f)
    wide.to_csv(OUT / "validity_published_vs_ours.csv", index=False)

    stab = stability(paraphrase, SEED + 1)
    sf = stab.to_frame(0.95)
    sf.to_csv(OUT / "paraphrase_stability.csv", index=False)
    stab.verdicts.to_csv(OUT / "paraphrase_stability_verdicts.csv", index=False)
    ssum = stability_summary(sf, stab.verdicts)
    ssum.to_csv(OUT / "paraphrase_stability_summary.csv", index=False)

    resp = combined(paraphrase, forcing)
    res = audits(resp, SEED + 100)
    specs, verdicts = audit_tables(res)
    specs.to_csv(OUT / "multiverse_specifications.csv", index=False)
    verdicts.to_csv(OUT / "multiverse_verdicts.csv", index=False)
    figures(stab, res, valid_f)

    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 400)
    print("1. Valid answers by forcing level (% of 62), published vs ours:\n", wide.to_string(index=False))
    print("\n   Cochran's Q across forcing levels:\n", valid_tests.round(4).to_string(index=False))
    print("\n2. Paraphrase stability (10 templates):\n", ssum.to_string(index=False))
    print("\n3. Multiverse verdicts:\n", verdicts.drop(columns="reason").round(4).to_string(index=False))
    for r in verdicts["reason"]:
        print("  -", r)
    meta = {"seed": SEED, "n_boot": N_BOOT, "n_perm": N_PERM, "flip_margin": FLIP_MARGIN,
            "pairs": PAIRS, "runtime_s": round(time.perf_counter() - t0, 1)}
    (OUT / "run_info.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"\nruntime: {meta['runtime_s']} s")


if __name__ == "__main__":
    main()
