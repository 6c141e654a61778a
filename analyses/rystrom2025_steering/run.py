"""Audit of Rystrøm et al. (2025), "Multilingual != Multicultural": the steering experiment.

gemma-2-27b-it answered 37 World Values Survey items in four prompt languages (da, en, nl, pt) after
being told that the respondents come from a country that speaks the prompt language (congruent) or
from one that does not (incongruent). Alignment is Spearman's rho between the model's pro-score and
the human pro-score of the prompt language's population, across all rows of a cell. The authors
bootstrapped it by resampling **rows** of the result file (1,000 rounds); their table is bundled.

This script

1. reproduces their bootstrap with robustalign's resampling engine (general path, rows resampled
   jointly over the whole file, as in their code) and puts their means and 2.5-97.5% bands next to ours;
2. re-does the comparison congruent - incongruent per language with **items** as the resampling unit
   (cluster bootstrap; the same row-level Spearman statistic), a stratified permutation test that
   swaps the two arms within item, and Holm's adjustment over the four languages;
3. cross-checks with the library's paired steering comparison (``assess_steerability(compare=...)``,
   per-item profile Spearman and per-item mean-position alignment);
4. asks the same question of the Bayesian score model (Beta model of the scores, robustalign.models),
   reported only if its convergence gate passes.

Run from the repository root:  python analyses/rystrom2025_steering/run.py  [--bayes]
Outputs: figures/rystrom2025_steering/*.csv, *.pdf, *.png.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign import make_reference, make_responses
from robustalign.claims import assess_steerability
from robustalign.datasets import load_multicultural_alignment
from robustalign.metrics import spearman_alignment
from robustalign.multiplicity import adjust
from robustalign.resampling import cluster_bootstrap, stratified_permutation_test

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "rystrom2025_steering"
SEED = 20250224  # all resampling; child seeds are derived from it below
N_BOOT = 2000  # bootstrap resamples (theirs: 1,000)
N_PERM = 10_000  # arm swaps within item
LANGS = ["da", "en", "nl", "pt"]
ARMS = ["congruent", "incongruent"]
TOLERANCE = 0.02  # stated agreement with the published means and bands
HOLM = "holm"


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def steering_rows() -> pd.DataFrame:
    """Every row of the steering file with its own ground truth, and the cell (language x arm) index."""
    rows = load_multicultural_alignment().steering_rows.copy()
    rows["cell"] = rows["language"].map(LANGS.index) * 2 + rows["congruent"].map(ARMS.index)
    return rows.reset_index(drop=True)


def published_summary() -> pd.DataFrame:
    """Mean and 2.5 / 97.5% quantiles of the authors' 1,000 bootstrap rounds per language x arm."""
    pb = load_multicultural_alignment().published_bootstrap
    pb = pb.assign(arm=np.where(pb["is_congruent"], "congruent", "incongruent"))
    g = pb.groupby(["response_language", "arm"])["metric_value"]
    out = pd.DataFrame({"mean": g.mean(), "q025": g.quantile(0.025), "q975": g.quantile(0.975), "rounds": g.size()})
    out.index.names = ["language", "arm"]
    return out.reset_index()


def cell_labels() -> pd.DataFrame:
    return pd.DataFrame([{"language": lg, "arm": a} for lg in LANGS for a in ARMS])


# --------------------------------------------------------------------------------------------------
# 1. their design: resample rows of the whole file
# --------------------------------------------------------------------------------------------------
def _spearman_by_cell(score, gt, cell):
    """Spearman(score, gt) within each of the 8 cells; inputs (chunk, rows) -> (chunk, 8)."""
    out = []
    for c in range(2 * len(LANGS)):
        m = cell == c
        out.append(spearman_alignment(np.where(m, score, np.nan), np.where(m, gt, np.nan), nan_policy="omit"))
    return np.stack([np.asarray(o, float) for o in out], axis=-1)


def row_bootstrap(rows: pd.DataFrame, n_resamples: int = N_BOOT, rng=SEED):
    """Rows resampled with replacement over the whole file (cell sizes vary), as in the published code."""
    arrays = (rows["score"].to_numpy(float), rows["ground_truth"].to_numpy(float), rows["cell"].to_numpy(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return cluster_bootstrap(arrays, statistic=_spearman_by_cell, labels=cell_labels(),
                                 n_resamples=n_resamples, method="percentile", rng=rng)


def reproduction_table(boot, published: pd.DataFrame) -> pd.DataFrame:
    res = boot.resamples
    ours = cell_labels().assign(
        estimate=boot.estimate, ours_mean=res.mean(0), ours_q025=np.quantile(res, 0.025, axis=0),
        ours_q975=np.quantile(res, 0.975, axis=0))
    t = published.rename(columns={"mean": "published_mean", "q025": "published_q025", "q975": "published_q975",
                                  "rounds": "published_rounds"}).merge(ours, on=["language", "arm"])
    for k in ("mean", "q025", "q975"):
        t[f"diff_{k}"] = t[f"ours_{k}"] - t[f"published_{k}"]
    t["within_tolerance"] = t[[f"diff_{k}" for k in ("mean", "q025", "q975")]].abs().max(axis=1) <= TOLERANCE
    return t


# --------------------------------------------------------------------------------------------------
# 2. items as the resampling unit
# --------------------------------------------------------------------------------------------------
def item_blocks(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Score and ground truth as (items, languages, arms, max rows) arrays, NaN-padded."""
    items = sorted(rows["item"].unique())
    r = rows.assign(q=rows["item"].map(items.index), li=rows["language"].map(LANGS.index),
                    ai=rows["congruent"].map(ARMS.index))
    r["k"] = r.groupby(["q", "li", "ai"]).cumcount()
    shape = (len(items), len(LANGS), 2, int(r["k"].max()) + 1)
    x, y = np.full(shape, np.nan), np.full(shape, np.nan)
    idx = (r["q"].to_numpy(), r["li"].to_numpy(), r["ai"].to_numpy(), r["k"].to_numpy())
    x[idx], y[idx] = r["score"].to_numpy(float), r["ground_truth"].to_numpy(float)
    return x, y, items


def _arm_spearman(x, y):
    """x, y (chunk, items, langs, arms, rows) -> (chunk, langs, arms): row-level Spearman per cell."""
    c, q, lg, a, k = x.shape
    xf = np.moveaxis(x, 1, 3).reshape(c, lg, a, q * k)
    yf = np.moveaxis(y, 1, 3).reshape(c, lg, a, q * k)
    return np.asarray(spearman_alignment(xf, yf, nan_policy="omit"), float)


def _item_statistic(x, y):
    r = _arm_spearman(x, y)  # (chunk, 4, 2)
    return np.concatenate([r.reshape(len(r), -1), r[..., 0] - r[..., 1]], axis=1)


def item_labels() -> pd.DataFrame:
    cells = cell_labels().assign(quantity="spearman")
    diffs = pd.DataFrame({"language": LANGS, "arm": "congruent - incongruent", "quantity": "difference"})
    return pd.concat([cells, diffs], ignore_index=True)


def item_bootstrap(x, y, n_resamples: int = N_BOOT, rng=SEED + 1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return cluster_bootstrap((x, y), statistic=_item_statistic, labels=item_labels(), n_resamples=n_resamples,
                                 method="percentile", rng=rng)


def arm_swap_test(x, y, n_resamples: int = N_PERM, rng=SEED + 2):
    """Swap the congruent and incongruent rows of random items (the same items in every language)."""
    # padding is carried as a presence flag (the test refuses NaN blocks): channels score, truth, present
    present = np.isfinite(x)
    z = np.stack([np.nan_to_num(x), np.nan_to_num(y), present.astype(float)], axis=-1)  # (items, langs, arms, rows, 3)
    z = np.moveaxis(z, 2, 1)  # (items, arms, langs, rows, 3): arms are the permuted levels

    def stat(a):  # (chunk, items, arms, langs, rows, 3)
        keep = a[..., 2] > 0
        xa = np.moveaxis(np.where(keep, a[..., 0], np.nan), 2, 3)  # (chunk, items, langs, arms, rows)
        ya = np.moveaxis(np.where(keep, a[..., 1], np.nan), 2, 3)
        r = _arm_spearman(xa, ya)
        return r[..., 0] - r[..., 1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return stratified_permutation_test(z, statistic=stat, labels=LANGS, n_resamples=n_resamples, rng=rng)


def differences_table(row_boot, item_boot, perm) -> pd.DataFrame:
    """Congruent - incongruent per language: row-resampling vs item-cluster intervals, permutation p, Holm."""
    rr = row_boot.resamples.reshape(row_boot.n_resamples, len(LANGS), 2)
    rd = rr[..., 0] - rr[..., 1]
    ci = item_boot.to_frame(0.95)
    d = ci[ci["quantity"] == "difference"].reset_index(drop=True)
    p = np.asarray(perm.p_value, float)
    t = pd.DataFrame({
        "language": LANGS,
        "difference": d["estimate"].to_numpy(),
        "row_conf_low": np.quantile(rd, 0.025, axis=0), "row_conf_high": np.quantile(rd, 0.975, axis=0),
        "item_conf_low": d["conf_low"].to_numpy(), "item_conf_high": d["conf_high"].to_numpy(),
        "p_arm_swap": p, "p_holm": adjust(p, HOLM),
    })
    t["width_ratio_item_vs_row"] = (t["item_conf_high"] - t["item_conf_low"]) / (t["row_conf_high"] - t["row_conf_low"])
    return t


def width_table(row_boot, item_boot) -> pd.DataFrame:
    """95% band width per language x arm under the two resampling units."""
    r = row_boot.to_frame(0.95)
    i = item_boot.to_frame(0.95)
    i = i[i["quantity"] == "spearman"].reset_index(drop=True)
    return cell_labels().assign(
        estimate=r["estimate"].to_numpy(), row_conf_low=r["conf_low"].to_numpy(), row_conf_high=r["conf_high"].to_numpy(),
        item_conf_low=i["conf_low"].to_numpy(), item_conf_high=i["conf_high"].to_numpy(),
        width_ratio=(i["conf_high"] - i["conf_low"]).to_numpy() / (r["conf_high"] - r["conf_low"]).to_numpy())


def design_effect(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows per item and the intra-item correlation of the score in each cell (why rows are not independent)."""
    out = []
    for (lg, arm), g in rows.groupby(["language", "congruent"]):
        per_item = g.groupby("item")["score"]
        m = per_item.size()
        between = per_item.mean().var(ddof=1)
        within = per_item.var(ddof=1).mean()
        m0 = (len(g) - (m**2).sum() / len(g)) / (len(m) - 1)
        # one-way ANOVA estimate of the intra-class correlation of scores within item
        msb = (m * (per_item.mean() - g["score"].mean()) ** 2).sum() / (len(m) - 1)
        msw = ((g["score"] - per_item.transform("mean")) ** 2).sum() / (len(g) - len(m))
        icc = (msb - msw) / (msb + (m0 - 1) * msw)
        out.append({"language": lg, "arm": arm, "rows": len(g), "items": len(m), "rows_per_item": len(g) / len(m),
                    "icc_score_within_item": icc, "between_item_var": between, "within_item_var": within})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------------
# 3. the library's paired steering comparison
# --------------------------------------------------------------------------------------------------
def contract_data(rows: pd.DataFrame):
    """Responses whose steering level is language:country, and the file's ground truth as the reference
    of each language, so that every steered level is compared with its prompt language's population."""
    gt = rows[["item", "language", "ground_truth"]].drop_duplicates()
    long = pd.concat([gt.assign(option="con", share=1 - gt["ground_truth"]),
                      gt.assign(option="pro", share=gt["ground_truth"])])
    long = long.rename(columns={"language": "group"})[["item", "group", "option", "share"]]
    items = sorted(gt["item"].unique())
    scales = pd.DataFrame({"item": items, "options": "con|pro", "labels": "con|pro", "ordinal": True})
    ref = make_reference(long, scales)
    df = rows.assign(steer_target=rows["language"] + ":" + rows["steer_target"])
    resp = make_responses(df[["model", "item", "language", "steer_target", "congruent", "sample", "score"]], ref,
                          factors=["language", "steer_target", "congruent", "sample"])
    group_map = {s: s.split(":")[0] for s in df["steer_target"].unique()}
    return resp, ref, group_map


def library_comparison(rows: pd.DataFrame, n_resamples: int = N_BOOT, n_permutations: int = N_PERM) -> pd.DataFrame:
    resp, ref, group_map = contract_data(rows)
    out = []
    for k, metric in enumerate(("spearman", "mean_position")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = assess_steerability(resp, ref, by=["model", "language"], baseline=None, group_map=group_map,
                                      compare=("congruent", "congruent", "incongruent"), metric=metric,
                                      adjust_method=HOLM, n_resamples=n_resamples, n_permutations=n_permutations,
                                      rng=SEED + 10 + k)
        f = res.to_frame()
        f = f[f["quantity"].str.endswith("difference")]
        out.append(f.assign(metric=metric)[["metric", "language", "estimate", "conf_low", "conf_high", "p_value",
                                            "p_adjusted", "adjust_method", "n_items", "test"]])
        out[-1] = out[-1].merge(res.verdicts[["language", "verdict"]], on="language")
    return pd.concat(out, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# 4. the Bayesian score model
# --------------------------------------------------------------------------------------------------
def bayes_comparison(rows: pd.DataFrame, draws: int = 1500, tune: int = 1500, chains: int = 4):
    """Beta score model: the prompt language plays the role of the "model" (gemma prompted in da, en, nl,
    pt), crossed with items, and congruence is the design factor, with language x congruence and
    item x congruence interactions.

    (With the single model as "model", its model x item and model x factor terms duplicate the item and
    factor effects and the sampler does not converge; this parametrisation has none of that.)
    From the posterior, E[score | language, item, arm] is rebuilt from the stored effect tables
    (``fit.idata``), and per draw we compute the published estimand, Spearman across items between the
    expected score and the language's human pro-score, for each arm, and the difference.
    Returns (table or None, gate dict, message).
    """
    try:
        from robustalign.models import fit_score_model
    except ImportError as e:  # the modelling module is optional
        return None, {}, f"robustalign.models is not available ({e}); the Bayesian comparison was not run."
    r = rows.assign(model="gemma-2-27b-it|" + rows["language"])
    r["sample"] = r.groupby(["model", "item", "congruent"]).cumcount()  # replicates within item x arm
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_score_model(r[["model", "item", "congruent", "sample", "score"]], factors=["congruent"],
                              draws=draws, tune=tune, chains=chains, rng=SEED + 20, cores=2)
    gate = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in fit.gate.items()}
    if not fit.converged:
        msgs = "; ".join(str(w.message) for w in caught if "converge" in str(w.message).lower())[:600]
        return None, gate, f"the score model did NOT pass the convergence gate ({gate}); {msgs}"
    post = fit.idata["posterior"]

    def draws_of(name):
        v = post[name]
        return v.stack(s=("chain", "draw")).transpose("s", ...).to_numpy()

    models = [str(m) for m in post["mu_model"].coords["model"].to_numpy()]
    items = [str(q) for q in post["item_effect"].coords["item"].to_numpy()]
    arms = [str(a) for a in post["beta_congruent"].coords["congruent"].to_numpy()]
    eta = (draws_of("intercept")[:, None, None, None] + draws_of("mu_model")[:, :, None, None]
           + draws_of("item_effect")[:, None, :, None] + draws_of("model_item")[:, :, :, None]
           + draws_of("beta_congruent")[:, None, None, :] + draws_of("model_x_congruent")[:, :, None, :]
           + draws_of("item_x_congruent")[:, None, :, :])  # (S, languages, items, arms)
    mu = 1 / (1 + np.exp(-eta))
    gt = rows[["item", "language", "ground_truth"]].drop_duplicates().pivot(index="language", columns="item",
                                                                           values="ground_truth")
    out = []
    for i, m in enumerate(models):
        lg = m.split("|")[1]
        h = gt.loc[lg].reindex(items).to_numpy(float)
        seen = rows[rows["language"] == lg].groupby("item")["congruent"].nunique().reindex(items).fillna(0).to_numpy()
        keep = np.isfinite(h) & (seen == 2)  # items asked under both arms in this language
        rho = {a: np.asarray(spearman_alignment(mu[:, i, keep, arms.index(a)], h[keep]), float) for a in ARMS}
        for name, v in (("congruent", rho["congruent"]), ("incongruent", rho["incongruent"]),
                        ("difference", rho["congruent"] - rho["incongruent"])):
            out.append({"language": lg, "quantity": name, "estimate": float(np.mean(v)),
                        "conf_low": float(np.quantile(v, 0.025)), "conf_high": float(np.quantile(v, 0.975)),
                        "p_greater_0": float(np.mean(v > 0)) if name == "difference" else np.nan,
                        "n_items": int(keep.sum())})
    return pd.DataFrame(out), gate, "converged"


# --------------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------------
def figure(repro: pd.DataFrame, widths: pd.DataFrame, diffs: pd.DataFrame, path: Path) -> None:
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from robustalign.figures import save_figure
    from robustalign.plots import PALETTE, RC

    with mpl.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(6.9, 2.6), layout="constrained")
        ax = axes[0]
        y = np.arange(len(repro))[::-1]
        lab = [f"{r.language} {r.arm[:5]}." for r in repro.itertuples()]
        ax.errorbar(repro["published_mean"], y + 0.25, xerr=[repro["published_mean"] - repro["published_q025"],
                    repro["published_q975"] - repro["published_mean"]], fmt="o", ms=3, color=PALETTE[7],
                    label="published (rows)")
        ax.errorbar(repro["ours_mean"], y, xerr=[repro["ours_mean"] - repro["ours_q025"],
                    repro["ours_q975"] - repro["ours_mean"]], fmt="s", ms=3, color=PALETTE[0], label="ours (rows)")
        w = widths.set_index(["language", "arm"]).loc[list(zip(repro["language"], repro["arm"]))]
        ax.errorbar(w["estimate"], y - 0.25, xerr=[w["estimate"] - w["item_conf_low"], w["item_conf_high"] - w["estimate"]],
                    fmt="D", ms=3, color=PALETTE[3], label="ours (items)")
        ax.set_yticks(y, lab)
        ax.set_xlabel("Spearman alignment (95% band)")
        ax.axvline(0, color="grey", lw=0.5)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
        ax.set_title("Reproduction: rows vs items resampled")
        ax = axes[1]
        y = np.arange(len(diffs))[::-1]
        ax.errorbar(diffs["difference"], y + 0.15, xerr=[diffs["difference"] - diffs["row_conf_low"],
                    diffs["row_conf_high"] - diffs["difference"]], fmt="s", ms=3, color=PALETTE[0], label="rows")
        ax.errorbar(diffs["difference"], y - 0.15, xerr=[diffs["difference"] - diffs["item_conf_low"],
                    diffs["item_conf_high"] - diffs["difference"]], fmt="D", ms=3, color=PALETTE[3], label="items")
        for yy, r in zip(y, diffs.itertuples()):
            ax.text(1.02, yy, f"p_Holm={r.p_holm:.2f}", transform=ax.get_yaxis_transform(), fontsize=6, va="center")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_yticks(y, diffs["language"])
        ax.set_xlabel("congruent - incongruent Spearman (95%)")
        ax.set_title("Does congruent steering help?")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
        save_figure(fig, path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bayes", action="store_true",
                    help="also fit the Bayesian score model (about 4-5 minutes on 2 cores; off in `make analyses`)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = steering_rows()

    published = published_summary()
    rboot = row_bootstrap(rows)
    repro = reproduction_table(rboot, published)
    repro.to_csv(OUT / "reproduction.csv", index=False)

    x, y, items = item_blocks(rows)
    iboot = item_bootstrap(x, y)
    perm = arm_swap_test(x, y)
    diffs = differences_table(rboot, iboot, perm)
    diffs.to_csv(OUT / "congruence_differences.csv", index=False)
    widths = width_table(rboot, iboot)
    widths.to_csv(OUT / "interval_widths.csv", index=False)
    deff = design_effect(rows)
    deff.to_csv(OUT / "within_item_dependence.csv", index=False)
    lib = library_comparison(rows)
    lib.to_csv(OUT / "library_comparison.csv", index=False)
    figure(repro, widths, diffs, OUT / "steering_congruence")
    t_freq = time.perf_counter() - t0

    bayes_msg, gate = "not run (pass --bayes)", {}
    if args.bayes:
        tb = time.perf_counter()
        btab, gate, bayes_msg = bayes_comparison(rows)
        if btab is not None:
            btab.to_csv(OUT / "bayes_score_model.csv", index=False)
        else:
            (OUT / "bayes_score_model.csv").unlink(missing_ok=True)
        (OUT / "bayes_info.json").write_text(json.dumps({"message": bayes_msg, "gate": gate}, indent=2, default=str)
                                             + "\n")
        bayes_msg += f" (fit {time.perf_counter() - tb:.0f} s)"

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print("1. Published vs reproduced (row bootstrap):\n", repro.round(3).to_string(index=False))
    print("\n2. Congruent - incongruent per language:\n", diffs.round(3).to_string(index=False))
    print("\n   Interval widths, items vs rows:\n", widths.round(3).to_string(index=False))
    print("\n   Within-item dependence:\n", deff.round(3).to_string(index=False))
    print("\n3. Library comparison:\n", lib.round(3).to_string(index=False))
    print("\n4. Bayesian score model:", bayes_msg)
    if (OUT / "bayes_score_model.csv").exists() and args.bayes:
        print(pd.read_csv(OUT / "bayes_score_model.csv").round(3).to_string(index=False))
    meta = {"seed": SEED, "n_boot": N_BOOT, "n_perm": N_PERM, "tolerance": TOLERANCE, "adjust": HOLM,
            "all_within_tolerance": bool(repro["within_tolerance"].all()), "bayes": bayes_msg, "gate": gate,
            "runtime_frequentist_s": round(t_freq, 1), "runtime_total_s": round(time.perf_counter() - t0, 1)}
    (OUT / "run_info.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    print(f"\nruntime: {meta['runtime_total_s']} s (frequentist part {meta['runtime_frequentist_s']} s)")


if __name__ == "__main__":
    main()
