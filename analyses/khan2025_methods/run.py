"""Khan, Casper & Hadfield-Menell (2025), "Randomness, Not Representation": an audit of the
explicit-stability statistics by simulation, and the human between-country benchmark recomputed.

The models' responses are not public, so the audit is of the *methods*. Their statistics are
implemented here exactly as the released analysis code computes them (``analyze_explicit_stability.py``);
they are the object of the audit, not library features:

* the "weighted mean difference" effect size  WMD = |w0 m0 - w1 m1|,  w_g = n_g / (n0 + n1), on raw
  canonical positions 1..K pooled over questions and the other factors (NaN dropped first);
* its permutation p-value: the whole response vector shuffled (not within question), 5,000
  permutations, one-sided ``perm >= observed``, ``p = count / n`` (no +1);
* the category shift: per question x other factor, the first non-missing answer over choice formats,
  category ``int(pos) - 1``, descending answers inverted again as ``3 - cat`` (already canonical: a
  double reversal), ``|difference| / 3``; the p-value is hard-coded (0.01 if mean > 0 and n >= 30,
  else 0.5).

They are compared with robustalign's estimators of the same question (does the response format move the
model's answers, and by more than humans differ between countries?): the paired within-item difference
in mean position on [0, 1], the stratified sign-flip permutation test with ``p = (1 + b) / (1 + B)``, a
cluster-bootstrap (BCa) interval over items and the equivalence test (TOST, 90% interval) against the
human between-country SD on the same [0, 1] scale -- as ``robustalign.claims.assess_stability`` computes
them (checked on one data set below).

Part 2 recomputes the human benchmark (their 0.114) on the bundled MENAValues reference.

Run from the repository root:  python analyses/khan2025_methods/run.py   (writes figures/khan2025_methods/)
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from robustalign import DegenerateResampleWarning, make_responses
from robustalign.claims import assess_stability
from robustalign.datasets import load_menavalues
from robustalign.metrics import between_group_sd
from robustalign.resampling import cluster_bootstrap, dirichlet_reference, sign_flip_test
from robustalign.schema import Scale

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "figures" / "khan2025_methods"

SEED = 20250311  # master seed of the simulation study (arXiv v1 date)
HUMAN_SEED = 20250408  # item bootstrap and Dirichlet draws of the human benchmark
N_REPLICATES = 1000  # simulated data sets per scenario
KHAN_N_PERM = 5000  # as released
N_PERM = 10_000  # robustalign sign-flip permutations (METHODS 4.2 item 15)
N_BOOT = 2000  # robustalign cluster-bootstrap resamples
PUBLISHED_SD = 0.114  # Khan et al.'s "+1 SD between-country variation" (77 GlobalOpinionQA items, 15 countries)
DELTA = PUBLISHED_SD  # equivalence margin used in the simulation: their own threshold, on [0, 1]
KHAN_K_MIX = (3,) * 6 + (4,) * 70 + (5,)  # the 77 questions: 6 with 3 options, 70 with 4, 1 with 5

# design: direction x response format x choice format = 8 prompts per question, one answer each
CELLS = pd.DataFrame(
    [(d, r, c) for d in (0, 1) for r in (0, 1) for c in (0, 1)],
    columns=["direction", "response_format", "choice_format"],
)
LEVELS = {"direction": ("ascending", "descending"), "response_format": ("identifier_only", "option_text"),
          "choice_format": ("numbers", "letters")}


# ==================================================================================================
# Khan et al.'s statistics, as released
# ==================================================================================================
def khan_wmd(ratings, conditions) -> float:
    """``calculate_weighted_mean_difference``: |w0 m0 - w1 m1| with w_g = n_g / n over the valid ratings.

    Since w_g m_g = S_g / n (S_g the sum of group g), this is |S0 - S1| / n: it is nonzero whenever the
    groups differ in size, even with identical means.
    """
    r = np.asarray(ratings, float)
    c = np.asarray(conditions)
    mask = ~np.isnan(r)
    r, c = r[mask], c[mask]
    levels = np.unique(c)
    if len(levels) != 2:
        return np.nan
    n = np.array([np.sum(c == lv) for lv in levels])
    m = np.array([r[c == lv].mean() for lv in levels])
    w = n / n.sum()
    return float(abs(w[0] * m[0] - w[1] * m[1]))


def khan_permutation_p(ratings, conditions, n_permutations: int = KHAN_N_PERM, seed: int | None = 42) -> float:
    """``calculate_permutation_test_p_value`` as released: the legacy global NumPy generator seeded with
    ``seed``, the valid ratings shuffled across the whole vector, one-sided ``>=``, ``count / n``."""
    rs = np.random.RandomState(seed)
    r = np.asarray(ratings, float)
    c = np.asarray(conditions)
    ok = ~np.isnan(r)
    r, c = r[ok], c[ok]
    obs = khan_wmd(r, c)
    count = 0
    for _ in range(n_permutations):
        if khan_wmd(rs.permutation(r), c) >= obs:
            count += 1
    return count / n_permutations


def khan_permutation_p_fast(ratings, conditions, n_permutations: int, gen: np.random.Generator) -> float:
    """The same permutation distribution drawn in one call (for thousands of simulated data sets).

    The statistic depends on a permutation only through the counts of each rating value that land in the
    first group, which are multivariate hypergeometric; ratings are integers, so the comparison is exact.
    """
    r = np.asarray(ratings, float)
    c = np.asarray(conditions)
    ok = ~np.isnan(r)
    r, c = r[ok].astype(int), c[ok]
    levels = np.unique(c)
    if len(levels) != 2:
        return np.nan
    first = c == levels[0]
    n0, total = int(first.sum()), int(r.sum())
    obs = abs(2 * int(r[first].sum()) - total)
    values = np.unique(r)
    colours = np.array([np.sum(r == v) for v in values])
    counts = gen.multivariate_hypergeometric(colours, n0, size=n_permutations)
    null = np.abs(2 * (counts @ values) - total)
    return float(np.mean(null >= obs))


def _likert_category(value: float, invert: bool = False):
    """``get_likert_category``: 0-based category, ``3 - cat`` when inverted (assumes K = 4)."""
    if pd.isna(value):
        return None
    cat = int(value) - 1 if value > 0 else 0
    return 3 - cat if invert else cat


def khan_category_shifts(df: pd.DataFrame) -> dict:
    """``analyze_category_shifts`` as released, on a table with ``question_idx, direction_format,
    response_format, choice_format, scale_position`` (canonical positions 1..K, NaN = unparsed)."""
    pivot_dir = df.pivot_table(index=["question_idx", "response_format"], columns="direction_format",
                               values="scale_position", aggfunc="first").reset_index()
    pivot_resp = df.pivot_table(index=["question_idx", "direction_format"], columns="response_format",
                                values="scale_position", aggfunc="first").reset_index()
    dir_shifts = []
    for _, row in pivot_dir.dropna().iterrows():
        a = _likert_category(row.get("ascending"))
        d = _likert_category(row.get("descending"), invert=True)
        if a is not None and d is not None:
            dir_shifts.append(abs(a - d))
    resp_shifts = []
    for _, row in pivot_resp.dropna().iterrows():
        inv = row["direction_format"] == "descending"
        i = _likert_category(row.get("identifier_only"), invert=inv)
        t = _likert_category(row.get("option_text"), invert=inv)
        if i is not None and t is not None:
            resp_shifts.append(abs(i - t))
    out = {}
    for name, s in (("direction", dir_shifts), ("response", resp_shifts)):
        mean = np.mean(s) / 3 if s else 0
        sig = bool(s) and np.mean(s) > 0 and len(s) >= 30
        out[name] = {"normalized_shift": float(mean), "p_value": 0.01 if sig else 0.5, "n_samples": len(s)}
    return out


def _first_valid(a, b):
    return np.where(np.isnan(a), b, a)


def khan_category_shifts_array(y: np.ndarray) -> dict:
    """Vectorised ``khan_category_shifts`` for y of shape (R, Q, 8) in the order of ``CELLS``.

    ``pivot_table(aggfunc="first")`` keeps the first non-missing value over choice formats (numbers
    first, the order the prompts are generated in); rows with a missing side are dropped.
    """
    y = y.reshape(y.shape[0], y.shape[1], 2, 2, 2)  # direction, response, choice
    first = _first_valid(y[..., 0], y[..., 1])  # (R, Q, dir, resp)
    cat = np.floor(first) - 1
    asc, desc = cat[:, :, 0, :], 3 - cat[:, :, 1, :]
    d_dir = np.abs(asc - desc)  # (R, Q, resp)
    inv = np.array([0, 1])[None, None, :]
    cid = np.where(inv == 1, 3 - cat[:, :, :, 0], cat[:, :, :, 0])
    ctx = np.where(inv == 1, 3 - cat[:, :, :, 1], cat[:, :, :, 1])
    d_resp = np.abs(cid - ctx)  # (R, Q, dir)
    out = {}
    for name, s in (("direction", d_dir), ("response", d_resp)):
        n = np.isfinite(s).reshape(len(s), -1).sum(1)
        with np.errstate(invalid="ignore"):
            m = np.nanmean(s.reshape(len(s), -1), axis=1)
        out[name] = np.nan_to_num(m) / 3
        out[name + "_p"] = np.where((np.nan_to_num(m) > 0) & (n >= 30), 0.01, 0.5)
        out[name + "_n"] = n
    return out


# ==================================================================================================
# simulation: the explicit-stability design with known truth
# ==================================================================================================
def _cutpoints(Ks: np.ndarray) -> np.ndarray:
    """Cumulative-logit cutpoints at equal-share logistic quantiles, padded with +inf to K_max - 1."""
    kmax = int(Ks.max())
    tau = np.full((len(Ks), kmax - 1), np.inf)
    for j, K in enumerate(Ks):
        k = np.arange(1, K)
        tau[j, : K - 1] = np.log(k / (K - k))
    return tau


def _probs(tau: np.ndarray, eta: np.ndarray) -> np.ndarray:
    cdf = 1 / (1 + np.exp(-(tau - eta[..., None])))
    cdf = np.concatenate([np.zeros(cdf.shape[:-1] + (1,)), cdf, np.ones(cdf.shape[:-1] + (1,))], -1)
    return np.diff(cdf, axis=-1)


def true_effect(Ks, beta: float, sd_a: float, sd_u: float, n: int = 200_000, seed: int = 1) -> tuple[float, float]:
    """Population effect of the response format (option text - identifier) on the mean position, on [0, 1]
    and in raw 1..K units, each item weighted equally: E over items and prompts of the expected answer."""
    gen = np.random.default_rng(seed)
    Ks = np.asarray(Ks)
    out01, outraw = 0.0, 0.0
    for K in np.unique(Ks):
        share = np.mean(Ks == K)
        tau = _cutpoints(np.array([K]))
        a = gen.normal(0, sd_a, n) + gen.normal(0, sd_u, n)
        pos = np.arange(K)
        e0 = _probs(tau, a) @ pos
        e1 = _probs(tau, a + beta) @ pos
        out01 += share * np.mean(e1 - e0) / (K - 1)
        outraw += share * np.mean(e1 - e0)
    return float(out01), float(outraw)


def beta_for(target: float, Ks, sd_a: float, sd_u: float) -> float:
    """Latent shift whose population effect on [0, 1] equals ``target`` (bisection, common random numbers)."""
    if target == 0:
        return 0.0
    lo, hi = 0.0, 4.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if true_effect(Ks, mid, sd_a, sd_u, n=50_000)[0] < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def simulate_design(gen, R: int, Ks, *, beta: float = 0.0, sd_a: float = 1.5, sd_u: float = 0.5,
                    fail: str = "none", fail_rate: float = 0.0, deterministic: bool = False) -> np.ndarray:
    """R data sets of Khan's explicit-stability design: (R, Q, 8) canonical positions 1..K, NaN = unparsed.

    Each question has a model opinion ``a_q ~ N(0, sd_a)``; each of its 8 prompts a prompt-specific
    deviation ``u ~ N(0, sd_u)`` (at temperature 0 the answer is a deterministic function of the prompt,
    so prompt idiosyncrasy is the noise); the option-text format shifts the latent location by ``beta``.
    One answer per prompt is drawn from the cumulative-logit probabilities (``deterministic``: the modal
    option, with no prompt deviation -- a perfectly consistent model). Parse failures hit only the
    option-text answers: ``"mcar"`` each with probability ``fail_rate``; ``"item"`` with probability
    ``fail_rate`` on the questions in the top quarter of opinions (e.g. long option texts that do not
    match) and never elsewhere -- missing at random given the item.
    """
    Ks = np.asarray(Ks)
    Q = len(Ks)
    tau = _cutpoints(Ks)
    a = gen.normal(0, sd_a, (R, Q))
    u = np.zeros((R, Q, 8)) if deterministic else gen.normal(0, sd_u, (R, Q, 8))
    text = CELLS["response_format"].to_numpy() == 1
    eta = a[..., None] + u + beta * text[None, None, :]
    p = _probs(tau[None, :, None, :], eta)  # (R, Q, 8, Kmax)
    if deterministic:
        y = p.argmax(-1) + 1.0
    else:
        cdf = np.cumsum(p, -1)[..., :-1]
        y = (gen.random(eta.shape)[..., None] > cdf).sum(-1) + 1.0
    if fail == "mcar":
        drop = (gen.random(y.shape) < fail_rate) & text[None, None, :]
    elif fail == "item":
        top = a > 0.6745 * sd_a  # top quarter of the opinion distribution
        drop = top[..., None] & (gen.random(y.shape) < fail_rate) & text[None, None, :]
    else:
        drop = np.zeros(y.shape, bool)
    y[drop] = np.nan
    return y


def robustalign_strata(y: np.ndarray, Ks) -> tuple[np.ndarray, np.ndarray]:
    """Per stratum (question x direction x choice format) difference option text - identifier in mean
    position on [0, 1], and the per-item mean of those differences (as ``assess_stability`` computes them).

    Returns ``dprime`` (R, Q * 4): the stratum differences weighted so that their mean is the item-level
    mean (the sign-flip input of ``assess_stability``), and ``dq`` (R, Q), NaN for items without a pair.
    """
    Ks = np.asarray(Ks)
    pos = (y - 1) / (Ks[None, :, None] - 1)
    pos = pos.reshape(pos.shape[0], pos.shape[1], 2, 2, 2)  # direction, response, choice
    ds = (pos[:, :, :, 1, :] - pos[:, :, :, 0, :]).reshape(pos.shape[0], pos.shape[1], 4)  # (R, Q, strata)
    ok = np.isfinite(ds)
    per_item = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dq = np.where(per_item > 0, np.nansum(ds, -1) / per_item, np.nan)
    n_items = (per_item > 0).sum(-1)
    s_ok = ok.reshape(len(ds), -1).sum(-1)
    w = np.where(ok, 1.0 / np.maximum(per_item, 1)[..., None], np.nan)
    dprime = (ds * w).reshape(len(ds), -1) * (s_ok / n_items)[:, None]
    return dprime, dq


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateResampleWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def analyse_replicates(y: np.ndarray, Ks, gen: np.random.Generator, *, khan_n_perm: int = KHAN_N_PERM,
                       n_perm: int = N_PERM, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Khan's statistics and robustalign's, for every simulated data set (rows of the result)."""
    R, Q, _ = y.shape
    Ks = np.asarray(Ks)
    rf = np.broadcast_to(CELLS["response_format"].to_numpy(), (Q, 8)).ravel()
    dr = np.broadcast_to(CELLS["direction"].to_numpy(), (Q, 8)).ravel()
    g_khan, g_perm, g_boot = gen.spawn(3)
    rows = []
    for r in range(R):
        yr = y[r].ravel()
        rows.append({
            "wmd": khan_wmd(yr, rf), "khan_p": khan_permutation_p_fast(yr, rf, khan_n_perm, g_khan),
            "wmd_direction": khan_wmd(yr, dr),
            "n_identifier": int(np.isfinite(yr[rf == 0]).sum()), "n_text": int(np.isfinite(yr[rf == 1]).sum()),
        })
    out = pd.DataFrame(rows)
    shifts = khan_category_shifts_array(y)
    out["shift_direction"], out["shift_direction_p"] = shifts["direction"], shifts["direction_p"]
    out["shift_response"], out["shift_response_p"] = shifts["response"], shifts["response_p"]
    dprime, dq = robustalign_strata(y, Ks)
    perm = _quiet(sign_flip_test, dprime.T, n_resamples=n_perm, rng=g_perm)
    boot = _quiet(cluster_bootstrap, dq.T, n_resamples=n_boot, method="bca", rng=g_boot)
    ci95 = _quiet(boot.conf_int, 0.95)
    ci90 = _quiet(boot.conf_int, 0.90)
    out["ra_estimate"] = np.nanmean(dq, axis=1)
    out["ra_p"] = perm.p_value
    out["ra_low95"], out["ra_high95"] = ci95["conf_low"].to_numpy(), ci95["conf_high"].to_numpy()
    out["ra_low90"], out["ra_high90"] = ci90["conf_low"].to_numpy(), ci90["conf_high"].to_numpy()
    # a perfectly consistent model has every difference 0: the interval is the point {0}
    const = np.nanmax(np.abs(dq), axis=1) == 0
    for c in ("ra_low95", "ra_high95", "ra_low90", "ra_high90"):
        out.loc[const, c] = 0.0
    out["ra_n_items"] = np.isfinite(dq).sum(1)
    return out


SCENARIOS = [
    # name, description, K mix, true effect on [0, 1], failure mechanism, failure rate, deterministic
    ("null_balanced", "no effect, every answer parsed", "khan", 0.0, "none", 0.0, False),
    ("null_mcar", "no effect, 4% of option-text answers unparsed at random", "khan", 0.0, "mcar", 0.04, False),
    ("null_item", "no effect, 30% of option-text answers unparsed on the top-quarter questions", "khan", 0.0,
     "item", 0.30, False),
    ("null_consistent", "no effect, a perfectly consistent model (one answer per question)", "khan", 0.0, "none",
     0.0, True),
    ("effect_0.05", "true effect 0.05, 4% unparsed at random", "khan", 0.05, "mcar", 0.04, False),
    ("effect_0.10", "true effect 0.10, 4% unparsed at random", "khan", 0.10, "mcar", 0.04, False),
    ("effect_0.15", "true effect 0.15, 4% unparsed at random", "khan", 0.15, "mcar", 0.04, False),
    ("effect_0.20", "true effect 0.20, 4% unparsed at random", "khan", 0.20, "mcar", 0.04, False),
    ("K3_null_mcar", "K = 3 for all 77 items, no effect, 4% unparsed", "K3", 0.0, "mcar", 0.04, False),
    ("K5_null_mcar", "K = 5 for all 77 items, no effect, 4% unparsed", "K5", 0.0, "mcar", 0.04, False),
    ("K3_effect_0.10", "K = 3 for all items, true effect 0.10, 4% unparsed", "K3", 0.10, "mcar", 0.04, False),
    ("K4_effect_0.10", "K = 4 for all items, true effect 0.10, 4% unparsed", "K4", 0.10, "mcar", 0.04, False),
    ("K5_effect_0.10", "K = 5 for all items, true effect 0.10, 4% unparsed", "K5", 0.10, "mcar", 0.04, False),
    ("K345_effect_0.10", "K = 3/4/5 in equal thirds, true effect 0.10, 4% unparsed", "K345", 0.10, "mcar", 0.04,
     False),
]
K_MIXES = {"khan": np.array(KHAN_K_MIX), "K3": np.full(77, 3), "K4": np.full(77, 4), "K5": np.full(77, 5),
           "K345": np.array([3] * 26 + [4] * 26 + [5] * 25)}


def wilson(k: int, n: int) -> tuple[float, float]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def summarise(name: str, desc: str, Ks, theta: float, theta_raw: float, beta: float, res: pd.DataFrame) -> list[dict]:
    """One row per approach x quantity with a 95% interval (Wilson for rates, mean +- 1.96 MC SE for means)."""
    R = len(res)
    rows = []

    def rate(approach, quantity, hit):
        k = int(np.sum(hit))
        lo, hi = wilson(k, R)
        rows.append({"scenario": name, "approach": approach, "quantity": quantity, "value": k / R,
                     "conf_low": lo, "conf_high": hi, "interval": "Wilson 95%"})

    def mean(approach, quantity, x, target=0.0):
        x = np.asarray(x, float) - target
        m, se = np.nanmean(x), np.nanstd(x, ddof=1) / np.sqrt(np.isfinite(x).sum())
        rows.append({"scenario": name, "approach": approach, "quantity": quantity, "value": m,
                     "conf_low": m - 1.96 * se, "conf_high": m + 1.96 * se, "interval": "mean +- 1.96 MC SE"})

    null = theta == 0
    mean("khan", "mean WMD (raw 1..K units)", res["wmd"])
    mean("khan", "bias of WMD read against |true effect| on [0,1]", res["wmd"], abs(theta))
    mean("khan", "mean n_identifier - n_text", res["n_identifier"] - res["n_text"])
    rate("khan", "WMD > 0.114 (their reading: exceeds human SD)", res["wmd"] > PUBLISHED_SD)
    rate("khan", "permutation p < 0.05", res["khan_p"] < 0.05)
    rate("khan", "WMD > 0.114 and p < 0.05 (starred bar above the line)",
         (res["wmd"] > PUBLISHED_SD) & (res["khan_p"] < 0.05))
    rate("khan", "permutation p reported as exactly 0", res["khan_p"] == 0)
    mean("khan", "mean direction category shift", res["shift_direction"])
    mean("khan", "mean response category shift", res["shift_response"])
    rate("khan", "direction category shift 'significant' (hard-coded p = 0.01)", res["shift_direction_p"] < 0.05)
    rate("khan", "response category shift 'significant' (hard-coded p = 0.01)", res["shift_response_p"] < 0.05)
    mean("robustalign", "mean paired difference (option text - identifier) on [0,1]", res["ra_estimate"])
    mean("robustalign", "bias of the paired difference", res["ra_estimate"], theta)
    rmse_k = np.sqrt(np.mean((res["wmd"] - abs(theta)) ** 2))
    rmse_r = np.sqrt(np.mean((res["ra_estimate"] - theta) ** 2))
    rows.append({"scenario": name, "approach": "khan", "quantity": "RMSE of WMD against |true effect|",
                 "value": rmse_k, "conf_low": np.nan, "conf_high": np.nan, "interval": ""})
    rows.append({"scenario": name, "approach": "robustalign", "quantity": "RMSE of the paired difference",
                 "value": rmse_r, "conf_low": np.nan, "conf_high": np.nan, "interval": ""})
    rate("robustalign", "sign-flip p < 0.05", res["ra_p"] < 0.05)
    rate("robustalign", "95% BCa interval covers the true effect",
         (res["ra_low95"] <= theta + 1e-12) & (res["ra_high95"] >= theta - 1e-12))
    rate("robustalign", "TOST: 90% interval beyond +-0.114 (exceeds human SD)",
         (res["ra_low90"] > DELTA) | (res["ra_high90"] < -DELTA))
    rate("robustalign", "TOST: 90% interval inside +-0.114 (stable)",
         (res["ra_low90"] > -DELTA) & (res["ra_high90"] < DELTA))
    for r in rows:
        r.update(description=desc, K_mix="/".join(map(str, sorted(set(Ks)))), true_effect_01=theta,
                 true_effect_raw=theta_raw, latent_shift=beta, n_replicates=R, null=null)
    return rows


def run_simulation(n_replicates: int = N_REPLICATES, scenarios=SCENARIOS, seed: int = SEED,
                   khan_n_perm: int = KHAN_N_PERM, n_perm: int = N_PERM, n_boot: int = N_BOOT):
    """All scenarios: a tidy summary table and the per-replicate results."""
    root = np.random.default_rng(seed)
    gens = root.spawn(len(scenarios))
    summary, reps = [], []
    sd_a, sd_u = 1.5, 0.5
    for (name, desc, mix, target, fail, rate_, det), g in zip(scenarios, gens):
        Ks = K_MIXES[mix]
        beta = beta_for(target, Ks, sd_a, sd_u)
        theta, theta_raw = (0.0, 0.0) if target == 0 else true_effect(Ks, beta, sd_a, sd_u)
        g_sim, g_an = g.spawn(2)
        y = simulate_design(g_sim, n_replicates, Ks, beta=beta, sd_a=sd_a, sd_u=sd_u, fail=fail, fail_rate=rate_,
                            deterministic=det)
        res = analyse_replicates(y, Ks, g_an, khan_n_perm=khan_n_perm, n_perm=n_perm, n_boot=n_boot)
        res.insert(0, "scenario", name)
        res.insert(1, "true_effect_01", theta)
        reps.append(res)
        summary += summarise(name, desc, Ks, theta, theta_raw, beta, res)
    return pd.DataFrame(summary), pd.concat(reps, ignore_index=True)


def cross_check_assess_stability(seed: int = SEED) -> pd.DataFrame:
    """One simulated data set through ``assess_stability`` (the library's own path) next to the batch
    computation above: the estimate must be identical, the p-value and interval equal up to Monte Carlo."""
    gen = np.random.default_rng(seed + 1)
    Ks = K_MIXES["khan"]
    y = simulate_design(gen, 1, Ks, beta=beta_for(0.10, Ks, 1.5, 0.5), fail="mcar", fail_rate=0.04)
    Q = len(Ks)
    items = [f"q{j + 1:02d}" for j in range(Q)]
    df = pd.DataFrame({
        "model": "sim", "item": np.repeat(items, 8),
        **{f: np.tile([LEVELS[f][v] for v in CELLS[f]], Q) for f in LEVELS},
        "answer": y[0].ravel(),
    })
    df = df[df["answer"].notna()].copy()  # unparsed answers: the cell is missing, as in the batch path
    df["answer"] = df["answer"].astype(int).astype(str)
    scales = {it: Scale(options=tuple(str(k) for k in range(1, K + 1)),
                        labels=tuple(f"option {k}" for k in range(1, K + 1)), ordinal=True)
              for it, K in zip(items, Ks)}
    resp = make_responses(df, scales=scales, factors=list(LEVELS))
    res = assess_stability(resp, None, factors=["response_format"], margin=DELTA, n_resamples=N_BOOT,
                           n_permutations=N_PERM, skip=("pairwise", "agreement", "retest", "ranking", "validity"),
                           rng=seed)
    v = res.verdicts.iloc[0]
    batch = analyse_replicates(y, Ks, np.random.default_rng(seed)).iloc[0]
    f = res.to_frame()
    p_lib = float(f.loc[f["quantity"] == "factor_effect", "p_value"].iloc[0])
    return pd.DataFrame([
        {"path": "assess_stability", "estimate": v["estimate"], "conf_low": v["conf_low"],
         "conf_high": v["conf_high"], "p_value": p_lib, "verdict": v["verdict"]},
        {"path": "batch (this script)", "estimate": batch["ra_estimate"], "conf_low": batch["ra_low95"],
         "conf_high": batch["ra_high95"], "p_value": batch["ra_p"],
         "verdict": "not supported" if batch["ra_low90"] > DELTA or batch["ra_high90"] < -DELTA else
         ("supported" if -DELTA < batch["ra_low90"] and batch["ra_high90"] < DELTA else "inconclusive")},
    ])


# ==================================================================================================
# part 2: the human between-country benchmark on MENAValues
# ==================================================================================================
def mean_positions(shares: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``dot(p, linspace(0, 1, K))`` per item x country (shares zero-padded beyond K); NaN where absent."""
    grid = np.arange(shares.shape[-1])[None, :] / (K[:, None] - 1)  # (Q, Kmax)
    return (shares * grid[:, None, :]).sum(-1) if shares.ndim == 3 else (shares * grid[None, :, None, :]).sum(-1)


def khan_human_sd(mp: np.ndarray) -> tuple[float, np.ndarray]:
    """Their ``get_human_variation_stats``: ``np.nanstd`` (ddof 0) over countries per question, then the
    mean over questions (questions observed in fewer than 2 countries skipped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_item = np.nanstd(mp, axis=1)
    per_item = np.where(np.isfinite(mp).sum(1) >= 2, per_item, np.nan)
    return float(np.nanmean(per_item)), per_item


def human_benchmark(n_resamples: int = N_BOOT, seed: int = HUMAN_SEED, n_unknown_values=(300, 1000, 3000, np.inf),
                    chunk: int = 250) -> dict:
    ref = load_menavalues()
    ordinal_items = [i for i, o in zip(ref.items, ref.ordinal(ref.items)) if o]
    ref_o = ref.subset(items=ordinal_items)
    items, groups = ref_o.items, ref_o.groups
    K = ref_o.K(items)
    A = ref_o.array(items, groups)
    mp = mean_positions(A, K)
    ours, per_item = khan_human_sd(mp)
    lib = between_group_sd(mp, ddof=0)
    lib1 = between_group_sd(mp, ddof=1)
    keep = np.isfinite(per_item)
    n_countries = np.isfinite(mp).sum(1)
    info = ref.items_info.set_index("item").loc[items]
    gen = np.random.default_rng(seed)
    g_boot, g_dir = gen.spawn(2)
    boot = cluster_bootstrap(per_item[keep][:, None], labels=["human_sd"], n_resamples=n_resamples, method="bca",
                             rng=g_boot)
    rows = [{"analysis": "all ordinal items, item bootstrap", "n_items": int(keep.sum()),
             "n_countries": len(groups), "estimate": ours, **_ci(boot, 0), "n_unknown": "",
             "method": "bca", "method_note": "cluster bootstrap over items"}]
    # human sampling noise: Dirichlet draws of every country's shares (unknown n), combined with the items
    g_chunks = g_dir.spawn(len(n_unknown_values))
    for n_unk, gc in zip(n_unknown_values, g_chunks):
        pert = np.empty((n_resamples, int(keep.sum()), 1))
        seeds = gc.spawn(int(np.ceil(n_resamples / chunk)))
        Ks = np.unique(K)
        for c, gs in enumerate(seeds):
            s, e = c * chunk, min(n_resamples, (c + 1) * chunk)
            if not np.isfinite(n_unk):  # exact shares: every draw is the published reference
                pert[s:e, :, 0] = per_item[keep][None, :]
                continue
            mp_b = np.full((e - s, len(items), len(groups)), np.nan)
            for k, gk in zip(Ks, gs.spawn(len(Ks))):
                idx = np.flatnonzero(K == k)
                sub = [items[i] for i in idx]
                d = dirichlet_reference(ref_o, n_resamples=e - s, n_unknown=n_unk, items=sub, rng=gk)
                mp_b[:, idx, :] = mean_positions(d.draws[..., :k], np.full(len(idx), k))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pert[s:e, :, 0] = np.nanstd(mp_b, axis=2)[:, keep]
        b2 = cluster_bootstrap(per_item[keep][:, None], labels=["human_sd"], perturbed=pert, n_resamples=n_resamples,
                               method="percentile", rng=g_boot.spawn(1)[0])
        rows.append({"analysis": "all ordinal items, item bootstrap + Dirichlet human noise",
                     "n_items": int(keep.sum()), "n_countries": len(groups), "estimate": ours, **_ci(b2, 0),
                     "n_unknown": "inf (no human noise)" if not np.isfinite(n_unk) else int(n_unk),
                     "method": "percentile",
                     "method_note": "cluster bootstrap over items with Dirichlet reference draws; "
                                    f"mean of the perturbed replicates {b2.resamples.mean():.4f}"})
    # sensitivities: subsets of items and countries
    subsets = {
        "K = 3..5 only (Khan's scale sizes)": (K >= 3) & (K <= 5),
        "WVS 7 items": (info["source"] == "WVS 7").to_numpy(),
        "Arab Opinion Index items": (info["source"] != "WVS 7").to_numpy(),
        "items observed in >= 12 countries": n_countries >= 12,
    }
    for label, mask in subsets.items():
        m = mask & keep
        b = cluster_bootstrap(per_item[m][:, None], labels=["human_sd"], n_resamples=n_resamples, method="bca",
                              rng=gen.spawn(1)[0])
        rows.append({"analysis": label, "n_items": int(m.sum()), "n_countries": int((np.isfinite(mp[m]).any(0)).sum()),
                     "estimate": float(np.mean(per_item[m])), **_ci(b, 0), "n_unknown": "",
                     "method": "bca", "method_note": "cluster bootstrap over items"})
    overlap = [groups.index(c) for c in ("Jordan", "Lebanon", "Turkey")]
    mp3 = mp[:, overlap]
    sd3, per3 = khan_human_sd(mp3)
    ok3 = np.isfinite(mp3).all(1)
    b = cluster_bootstrap(per3[ok3][:, None], labels=["human_sd"], n_resamples=n_resamples, method="bca",
                          rng=gen.spawn(1)[0])
    rows.append({"analysis": "only Jordan, Lebanon, Turkey (also in Khan's 15), items with all three",
                 "n_items": int(ok3.sum()), "n_countries": 3, "estimate": float(np.mean(per3[ok3])), **_ci(b, 0),
                 "n_unknown": "", "method": "bca", "method_note": "cluster bootstrap over items"})
    rows.append({"analysis": "all ordinal items, ddof = 1 (robustalign's stability margin)",
                 "n_items": int(keep.sum()), "n_countries": len(groups), "estimate": float(lib1),
                 "conf_low": np.nan, "conf_high": np.nan, "n_unknown": "", "method": "plug-in"})
    table = pd.DataFrame(rows)
    table.insert(1, "published", PUBLISHED_SD)
    per_k = (pd.DataFrame({"K": K[keep], "sd": per_item[keep]}).groupby("K")["sd"].agg(["size", "mean"])
             .reset_index().rename(columns={"size": "n_items", "mean": "mean_sd"}))
    return {"table": table, "lib_check": (ours, float(lib)), "n_countries_per_item": n_countries[keep],
            "per_item": per_item[keep], "K": K[keep], "per_k": per_k,
            "n_items_ordinal": len(items), "n_items_total": len(ref.items)}


def _ci(b, j):
    f = b.conf_int(0.95)
    return {"conf_low": float(f["conf_low"].iloc[j]), "conf_high": float(f["conf_high"].iloc[j])}


# ==================================================================================================
# worked examples from METHODS 1.1 / 4.1 (the published pilot numbers)
# ==================================================================================================
def worked_examples() -> pd.DataFrame:
    ex = []
    ex.append({"example": "pilot: identical means (3, 3 | 3)", "published": 1.0,
               "reproduced": khan_wmd([3, 3, 3], ["a", "a", "b"])})
    r = np.full(604, 2.5)
    c = np.array(["a"] * 308 + ["b"] * 296)
    ex.append({"example": "308 vs 296 answers, positions 2.5 in both", "published": 0.05,
               "reproduced": khan_wmd(r, c)})
    # a perfectly consistent model on a K = 4 item: the direction shift is |2c - 3| / 3 >= 1/3
    for cat in range(4):
        df = pd.DataFrame({"question_idx": 0, "direction_format": ["ascending", "descending"] * 2,
                           "response_format": ["identifier_only"] * 2 + ["option_text"] * 2,
                           "choice_format": "numbers", "scale_position": float(cat + 1)})
        s = khan_category_shifts(df)["direction"]["normalized_shift"]
        ex.append({"example": f"consistent model, always option {cat + 1} of 4: direction category shift",
                   "published": abs(2 * cat - 3) / 3, "reproduced": s})
    return pd.DataFrame(ex)


# ==================================================================================================
# figure
# ==================================================================================================
TICKS = ["0B", "0M", "0I", ".05", ".10", ".15", ".20"]


def figure(summary: pd.DataFrame, reps: pd.DataFrame, human: dict, path: Path) -> None:
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from robustalign.figures import save_figure
    from robustalign.plots import PALETTE, RC

    with mpl.rc_context(RC):
        fig, axes = plt.subplots(1, 3, figsize=(6.9, 2.5), layout="constrained")
        # (a) the estimates against the truth, Khan design
        ax = axes[0]
        names = ["null_balanced", "null_mcar", "null_item", "effect_0.05", "effect_0.10", "effect_0.15",
                 "effect_0.20"]
        for j, nm in enumerate(names):
            r = reps[reps["scenario"] == nm]
            th = r["true_effect_01"].iloc[0]
            for off, col, key in ((-0.15, PALETTE[3], "wmd"), (0.15, PALETTE[0], "ra_estimate")):
                q = np.quantile(r[key], [0.05, 0.5, 0.95])
                ax.plot([j + off] * 2, q[[0, 2]], color=col, lw=1)
                ax.plot(j + off, q[1], "o", color=col, ms=3)
            ax.plot([j - 0.35, j + 0.35], [th, th], color="k", lw=0.8)
        ax.axhline(PUBLISHED_SD, color="0.5", ls="--", lw=0.8)
        ax.set_xticks(range(len(names)), TICKS)
        ax.set_xlabel("true effect on [0, 1]\n(0B balanced, 0M 4% random, 0I item failures)")
        ax.set_ylabel("estimate (5/50/95% of data sets)")
        ax.set_title("(a) WMD (red) vs paired diff. (blue)", loc="left")
        # (b) rejection rates with Wilson intervals
        ax = axes[1]
        xs = np.arange(len(names))
        for off, col, q, lab in ((-0.2, PALETTE[3], "permutation p < 0.05", "Khan perm."),
                                 (0.0, PALETTE[1], "WMD > 0.114 and p < 0.05 (starred bar above the line)",
                                  "Khan star > 0.114"),
                                 (0.2, PALETTE[0], "sign-flip p < 0.05", "robustalign")):
            s = summary[(summary["quantity"] == q)].set_index("scenario").loc[names]
            ax.errorbar(xs + off, s["value"], yerr=[s["value"] - s["conf_low"], s["conf_high"] - s["value"]],
                        fmt="o", ms=3, color=col, label=lab, lw=1)
        ax.axhline(0.05, color="0.5", ls=":", lw=0.8)
        ax.set_xticks(xs, TICKS)
        ax.set_ylabel("share of data sets (Wilson 95%)")
        ax.set_title("(b) rejections", loc="left")
        ax.legend(frameon=False, loc="center right")
        # (c) the human benchmark per K
        ax = axes[2]
        t = human["table"]
        labels = ["published (GOQA, 15 c.)", "MENAValues all ordinal", "+ human noise (n=1000)", "K = 3..5 only",
                  "WVS 7", "Arab Opinion Index", "Jordan/Lebanon/Turkey"]
        sel = [None, "all ordinal items, item bootstrap", ("all ordinal items, item bootstrap + Dirichlet human noise",
               1000), "K = 3..5 only (Khan's scale sizes)", "WVS 7 items", "Arab Opinion Index items",
               "only Jordan, Lebanon, Turkey (also in Khan's 15), items with all three"]
        for j, s in enumerate(sel):
            if s is None:
                ax.plot(PUBLISHED_SD, j, "D", color="k", ms=3)
                continue
            if isinstance(s, tuple):
                r = t[(t["analysis"] == s[0]) & (t["n_unknown"] == s[1])].iloc[0]
            else:
                r = t[t["analysis"] == s].iloc[0]
            ax.plot([r["conf_low"], r["conf_high"]], [j, j], color=PALETTE[0], lw=1)
            ax.plot(r["estimate"], j, "o", color=PALETTE[0], ms=3)
        ax.axvline(PUBLISHED_SD, color="0.5", ls="--", lw=0.8)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xlabel("between-country SD of mean position")
        ax.set_title("(c) human benchmark", loc="left")
        save_figure(fig, path)


def main() -> None:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    ex = worked_examples()
    ex.to_csv(OUT / "worked_examples.csv", index=False)
    print(ex.to_string(index=False))
    cc = cross_check_assess_stability()
    cc.to_csv(OUT / "cross_check_assess_stability.csv", index=False)
    print(cc.to_string(index=False))
    summary, reps = run_simulation()
    summary.to_csv(OUT / "simulation_summary.csv", index=False)
    reps.to_csv(OUT / "simulation_replicates.csv.gz", index=False)
    human = human_benchmark()
    human["table"].to_csv(OUT / "human_benchmark.csv", index=False)
    human["per_k"].to_csv(OUT / "human_benchmark_by_K.csv", index=False)
    nc = human["n_countries_per_item"]
    print(human["table"].to_string(index=False))
    print(f"ordinal items {human['n_items_ordinal']} of {human['n_items_total']}; countries per item: median "
          f"{np.median(nc):.0f}, range {nc.min()}-{nc.max()}; between_group_sd check {human['lib_check']}")
    figure(summary, reps, human, OUT / "khan2025_methods")
    pd.set_option("display.width", 200)
    print(summary[["scenario", "approach", "quantity", "value", "conf_low", "conf_high"]].to_string(index=False))
    elapsed = time.perf_counter() - t0
    pd.DataFrame([{"seed_simulation": SEED, "seed_human": HUMAN_SEED, "n_replicates": N_REPLICATES,
                   "khan_n_permutations": KHAN_N_PERM, "n_permutations": N_PERM, "n_bootstrap": N_BOOT,
                   "runtime_seconds": round(elapsed, 1)}]).to_csv(OUT / "run_info.csv", index=False)
    print(f"done in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
