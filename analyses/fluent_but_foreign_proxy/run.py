"""A "Fluent but Foreign" (Agarwal et al. 2025) style proxy claim, with intervals that include the
sampling noise of the human surveys.

Agarwal et al. conclude that "a U.S. respondent is a closer proxy for Indian values than any Indic
model" from point distances on the Inglehart-Welzel map: one coordinate pair per entity, Euclidean
distances, no interval for which survey items were used, none for the survey respondents behind the
human coordinates, and "any model" judged by comparing point distances one at a time.

Here the same kind of claim is made testable on bundled data: target C = Egypt, proxy D = Jordan
(MENAValues human shares), and five "models" whose answers are simulated from documented answer
distributions (below). The claim "Jordan's humans are a closer proxy for Egypt than any model" is a
claim over all models, so its margin is the **minimum over models** of

    margin_m = mean_q S(h_Jordan(q), h_Egypt(q)) - mean_q S(p_m(q), h_Egypt(q)),

with S the Jensen-Shannon similarity (1 - JS distance, base 2), q over the ordinal items that Egypt,
Jordan and every model answer. The interval comes from one paired item bootstrap
(``paired_bootstrap``) shared by all models, with Dirichlet draws of the human shares
(``dirichlet_reference``, respondent counts unknown: ``n_unknown`` 1000 by default, sensitivity 300 /
3000, and no human noise) passed as ``perturbed=``, and optionally the models' own sampling noise. The
per-model claims are also run through ``audit_claim`` (``Claim.human_proxy``) over every specification
(prompt template, metric, aggregation over items).

Models (``simulate_models``; 20 sampled answers per item and prompt template, two templates; template 2
mixes 10% more uniform noise into the answer distribution, a format effect):

* ``mix_lebanon``   0.7 x Lebanon's human distribution + 0.3 x uniform (a model that learned another
  country's opinions, blurred);
* ``regional_sharp`` the mean of the MENA countries' distributions (all that answered the item),
  sharpened as p^2 (temperature 1/2; over-confident consensus), + 5% uniform;
* ``plurality_morocco`` 90% on Morocco's plurality option + 10% uniform (a near-deterministic model
  answering a non-target country's majority);
* ``egypt_exaggerated`` Egypt's own distribution sharpened as p^2.5 + 5% uniform (a model steered to the
  target that exaggerates its majority: a stereotype);
* ``humans_iraq``    Iraq's human distribution itself (a human country acting as a model).

Run from the repository root:  python analyses/fluent_but_foreign_proxy/run.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from robustalign import DegenerateResampleWarning, make_responses
from robustalign.claims import Claim, audit_claim
from robustalign.datasets import load_menavalues
from robustalign.metrics import human_proxy_similarity, js_similarity
from robustalign.resampling import dirichlet_reference, paired_bootstrap

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "fluent_but_foreign_proxy"

SEED = 20250527  # arXiv v1 of Agarwal et al.
TARGET, PROXY = "Egypt", "Jordan"
SOURCE_COUNTRIES = ("Lebanon", "Morocco", "Iraq")  # countries the simulated models draw on
N_SAMPLES = 20  # sampled answers per item x template
TEMPLATES = ("template_1", "template_2")
N_BOOT = 2000
N_PERM = 10_000
N_UNKNOWN = (300, 1000, 3000)  # sensitivity of the unknown respondent counts; 1000 is the library default
MODELS = ("mix_lebanon", "regional_sharp", "plurality_morocco", "egypt_exaggerated", "humans_iraq")


def common_items(ref) -> list[str]:
    """Ordinal items answered by the target, the proxy and every country a model draws on."""
    items = [i for i, o in zip(ref.items, ref.ordinal(ref.items)) if o]
    need = [TARGET, PROXY, *SOURCE_COUNTRIES]
    A = ref.array(items, need)
    ok = np.isfinite(A).all(-1).all(-1)
    return [i for i, k in zip(items, ok) if k]


def _norm(p):
    return p / p.sum(-1, keepdims=True)


def _uniform(K: np.ndarray) -> np.ndarray:
    """The uniform distribution over each item's K options (items x K_max, zero beyond K)."""
    return (np.arange(int(K.max()))[None, :] < K[:, None]) / K[:, None]


def template_distribution(p: np.ndarray, uni: np.ndarray, template: str) -> np.ndarray:
    """A model's answer distribution under a prompt template: template 2 mixes in 10% uniform noise."""
    return p if template == "template_1" else 0.9 * p + 0.1 * uni


def model_distributions(ref, items) -> dict[str, np.ndarray]:
    """Answer distribution of every simulated model per item (items x K_max, zero beyond K)."""
    uni = _uniform(ref.K(items))
    allc = ref.array(items, ref.groups)  # items x countries x K
    h = {c: ref.array(items, [c])[:, 0] for c in (TARGET, *SOURCE_COUNTRIES)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        regional = np.nanmean(allc, axis=1)
    plural = np.zeros_like(uni)
    plural[np.arange(len(items)), np.argmax(h["Morocco"], -1)] = 1.0
    return {
        "mix_lebanon": 0.7 * h["Lebanon"] + 0.3 * uni,
        "regional_sharp": 0.95 * _norm(regional ** 2) + 0.05 * uni,
        "plurality_morocco": 0.9 * plural + 0.1 * uni,
        "egypt_exaggerated": 0.95 * _norm(h[TARGET] ** 2.5) + 0.05 * uni,
        "humans_iraq": h["Iraq"],
    }


def simulate_models(ref, items, gen) -> pd.DataFrame:
    """Sampled answers (the responses table of the data contract): model x item x template x sample."""
    dist = model_distributions(ref, items)
    K = ref.K(items)
    uni = _uniform(K)
    rows = []
    for m in MODELS:
        for t in TEMPLATES:
            p = template_distribution(dist[m], uni, t)
            cdf = np.cumsum(p, -1)
            u = gen.random((len(items), N_SAMPLES))
            k = (u[..., None] > cdf[:, None, :-1]).sum(-1) + 1  # 1-based option per sample
            k = np.minimum(k, K[:, None])
            codes = [np.asarray(ref.scales[it].options)[k[j] - 1] for j, it in enumerate(items)]
            rows.append(pd.DataFrame({
                "model": m, "item": np.repeat(items, N_SAMPLES), "template": t,
                "sample": np.tile(np.arange(N_SAMPLES), len(items)), "answer": np.concatenate(codes),
                "k": k.ravel(),
            }))
    return pd.concat(rows, ignore_index=True)


def empirical(resp_df: pd.DataFrame, items, K) -> np.ndarray:
    """Pooled answer shares per model x item: (models, items, K_max), and the counts behind them."""
    kmax = int(K.max())
    idx = {it: j for j, it in enumerate(items)}
    out = np.zeros((len(MODELS), len(items), kmax))
    for mi, m in enumerate(MODELS):
        d = resp_df[resp_df["model"] == m]
        np.add.at(out[mi], (d["item"].map(idx).to_numpy(), d["k"].to_numpy() - 1), 1.0)
    return out


def true_pooled(ref, items) -> np.ndarray:
    """Each model's answer distribution pooled over the two templates (what infinitely many samples give)."""
    dist = model_distributions(ref, items)
    uni = _uniform(ref.K(items))
    return np.stack([sum(template_distribution(dist[m], uni, t) for t in TEMPLATES) / len(TEMPLATES)
                     for m in MODELS])


def similarities(h_target, h_proxy, models) -> np.ndarray:
    """Per-item JS similarity to the target of the proxy and of each model: (..., items, 1 + models)."""
    s = [js_similarity(h_proxy, h_target, check=False)]
    s += [js_similarity(models[..., m, :, :], h_target, check=False) for m in range(models.shape[-3])]
    return np.stack(s, -1)


def proxy_bootstrap(S: np.ndarray, perturbed, rng, n_boot: int = N_BOOT) -> tuple:
    """Paired item bootstrap of proxy - model for every model, and of the minimum over models."""
    labels = pd.DataFrame({"source": ["proxy", *MODELS]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateResampleWarning)
        pw = paired_bootstrap(S, compare="source", labels=labels, perturbed=perturbed, n_resamples=n_boot,
                              method="percentile", rng=rng)
    margins = pw.subset(source_a="proxy")
    assert list(margins.labels["source_b"]) == list(MODELS)
    claim = margins.apply(lambda s: np.min(s, axis=-1, keepdims=True), labels=["min over models"],
                          statistic="minimum margin")
    return margins, claim


def human_draws(ref, items, n_unknown, rng, n_boot: int = N_BOOT) -> np.ndarray:
    """Dirichlet draws of the target's and the proxy's shares: (B, items, 2, K_max)."""
    d = dirichlet_reference(ref, n_resamples=n_boot, n_unknown=n_unknown, items=items, groups=[TARGET, PROXY],
                            rng=rng)
    return d.draws, d


def model_draws(counts: np.ndarray, rng, n_boot: int = N_BOOT) -> np.ndarray:
    """Dirichlet draws of each model's answer shares from its own finite sample (n known, deff 1)."""
    M, Q, kmax = counts.shape
    n = counts.sum(-1)  # (M, Q)
    shares = counts / n[..., None]
    d = dirichlet_reference(np.transpose(shares, (1, 0, 2)), n.T, n_resamples=n_boot, deff=1.0, prior=0.0, rng=rng)
    return np.transpose(d.draws, (0, 2, 1, 3))  # (B, M, Q, K)


def run(n_boot: int | None = None, n_perm: int | None = None, seed: int = SEED, audit: bool = True) -> dict:
    n_boot = n_boot or N_BOOT
    n_perm = n_perm or N_PERM
    gen = np.random.default_rng(seed)
    g_sim, g_boot, g_hum, g_mod, g_aud = gen.spawn(5)
    ref_all = load_menavalues()
    items = common_items(ref_all)
    ref = ref_all.subset(items=items)
    K = ref.K(items)
    resp_df = simulate_models(ref, items, g_sim)
    counts = empirical(resp_df, items, K)
    p_models = counts / counts.sum(-1, keepdims=True)
    hT = ref.array(items, [TARGET])[:, 0]
    hP = ref.array(items, [PROXY])[:, 0]
    S = similarities(hT, hP, p_models)  # (items, 1 + M)

    # the library's own human baseline agrees with the proxy column
    hp = human_proxy_similarity(ref.subset(groups=[TARGET, PROXY]), "js")
    lib_proxy = hp.similarity[list(hp.groups).index(PROXY), list(hp.groups).index(TARGET)]
    assert abs(lib_proxy - S[:, 0].mean()) < 1e-12

    # what the claim is about: the models' own answer distributions (known here because they are simulated)
    p_true = true_pooled(ref, items)
    S_true = similarities(hT, hP, p_true)

    rows = []
    variants = [("items only", None, False, S)]
    variants += [(f"items + human noise, n_unknown = {n}", n, False, S) for n in N_UNKNOWN]
    variants += [("items + human noise (n_unknown = 1000) + model sampling noise", 1000, True, S)]
    variants += [("truth: models' own distributions; items + human noise (n_unknown = 1000)", 1000, False, S_true)]
    boot_seeds = g_boot.spawn(len(variants))
    hum_seeds = dict(zip(N_UNKNOWN, g_hum.spawn(len(N_UNKNOWN))))
    mdraw = model_draws(counts, g_mod, n_boot)
    hum_cache = {}
    for (label, n_unk, with_models, S_v), gb in zip(variants, boot_seeds):
        pert = None
        p_v = p_true if S_v is S_true else p_models
        if n_unk is not None:
            if n_unk not in hum_cache:
                hum_cache[n_unk] = human_draws(ref, items, n_unk, hum_seeds[n_unk], n_boot)[0]
            hd = hum_cache[n_unk]
            pm = mdraw if with_models else np.broadcast_to(p_v, (n_boot, *p_v.shape))
            pert = similarities(hd[:, :, 0, :], hd[:, :, 1, :], pm)  # (B, items, 1 + M)
        margins, claim = proxy_bootstrap(S_v, pert, gb, n_boot)
        for res, what in ((margins, "margin"), (claim, "claim")):
            f = res.to_frame(0.95)
            for j in range(len(f)):
                name = f["source_b"].iloc[j] if what == "margin" else "min over models"
                est = float(f["estimate"].iloc[j])
                r = res.resamples[:, j]
                q_lo, q_hi = np.quantile(r, [0.025, 0.975])
                rows.append({"variant": label, "model": name, "estimate": est,
                             "conf_low": f["conf_low"].iloc[j], "conf_high": f["conf_high"].iloc[j],
                             "mean_of_replicates": float(r.mean()),
                             "bias_corrected": 2 * est - float(r.mean()),
                             "basic_low": 2 * est - q_hi, "basic_high": 2 * est - q_lo,
                             "p_margin_le_0": float(np.mean(r <= 0)),
                             "n_items": len(items), "n_resamples": res.n_resamples,
                             "method": "percentile",
                             "method_note": "paired item bootstrap" + ("" if pert is None else " + Dirichlet draws")})
    table = pd.DataFrame(rows)
    sims = pd.DataFrame({"source": [f"{PROXY} (humans)", *MODELS],
                         "mean_js_similarity_sampled_answers": S.mean(0),
                         "mean_js_similarity_true_distribution": S_true.mean(0)})

    audits = None
    if audit:
        resp = make_responses(resp_df.drop(columns="k"), ref)
        out = []
        for m, ga in zip(MODELS, g_aud.spawn(len(MODELS))):
            a = audit_claim(resp, ref, Claim.human_proxy(PROXY, target=TARGET, model=m), n_resamples=n_boot,
                            n_permutations=n_perm, rng=ga)
            v = a.verdicts.iloc[0]
            f = a.to_frame()
            out.append({"model": m, "verdict": v["verdict"], "share_holds": v["share_holds"],
                        "n_specifications": v["n_specifications"], "reason": v["reason"],
                        "min_conf_low": f["conf_low"].min(), "max_conf_high": f["conf_high"].max()})
            f.insert(0, "model", m)
            f.to_csv(OUT / f"specifications_{m}.csv", index=False)
        audits = pd.DataFrame(out)
    return {"table": table, "similarities": sims, "audits": audits, "n_items": len(items), "items": items,
            "S": S, "lib_proxy": lib_proxy}


def figure(res: dict, path: Path) -> None:
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from robustalign.figures import save_figure
    from robustalign.plots import PALETTE, RC

    t = res["table"]
    variants = list(dict.fromkeys(t["variant"]))
    names = [*MODELS, "min over models"]
    with mpl.rc_context(RC):
        fig, ax = plt.subplots(figsize=(6.9, 3.6), layout="constrained")
        width = 0.8 / len(variants)
        for v_i, v in enumerate(variants):
            sub = t[t["variant"] == v].set_index("model").loc[names]
            x = np.arange(len(names)) + (v_i - (len(variants) - 1) / 2) * width
            # perturbed variants: the bias-corrected (basic) interval; items only: percentile
            basic = "noise" in v
            lo = sub["basic_low"] if basic else sub["conf_low"]
            hi = sub["basic_high"] if basic else sub["conf_high"]
            mid = sub["bias_corrected"] if basic else sub["estimate"]
            col = PALETTE[v_i % len(PALETTE)]
            ax.vlines(x, lo, hi, color=col, lw=1)
            ax.plot(x, mid, "o", ms=3, color=col, label=v)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=15)
        ax.set_ylim(-0.06, 0.12)  # plurality_morocco (margin about 0.28) is off the top
        ax.text(names.index("plurality_morocco"), 0.112, "0.25-0.29\n(off scale)", ha="center", va="top", fontsize=6)
        ax.set_ylabel(f"S({PROXY}→{TARGET}) − S(model→{TARGET})\n(JS similarity, 95% interval)")
        ax.set_title(f"'{PROXY}'s humans are a closer proxy for {TARGET} than any model': margins over "
                     f"{res['n_items']} items", loc="left")
        fig.legend(frameon=False, fontsize=6, loc="outside lower center", ncol=2)
        save_figure(fig, path)


def main() -> None:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    res = run()
    pd.set_option("display.width", 220)
    pd.set_option("display.max_colwidth", 400)
    res["table"].to_csv(OUT / "proxy_margins.csv", index=False)
    res["similarities"].to_csv(OUT / "similarities.csv", index=False)
    res["audits"].to_csv(OUT / "audit_claim_verdicts.csv", index=False)
    print(f"{res['n_items']} items; library human_proxy_similarity {PROXY}->{TARGET}: {res['lib_proxy']:.4f}")
    print(res["similarities"].to_string(index=False))
    print(res["table"].drop(columns=["method", "method_note"]).to_string(index=False))
    print(res["audits"].drop(columns=["reason"]).to_string(index=False))
    for r in res["audits"]["reason"]:
        print(" -", r)
    figure(res, OUT / "fluent_but_foreign_proxy")
    elapsed = time.perf_counter() - t0
    pd.DataFrame([{"seed": SEED, "n_bootstrap": N_BOOT, "n_permutations": N_PERM, "n_samples": N_SAMPLES,
                   "runtime_seconds": round(elapsed, 1)}]).to_csv(OUT / "run_info.csv", index=False)
    print(f"done in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
