"""Simulated "closer" claims on few-answer data and near identity, with known truth, written without robustalign.

Design: ``n_items`` ordinal items with 4 options, 3 formats (``f1..f3``), 3 human groups (``G1..G3``) with
exact shares. Every distribution is a cumulative logit: ``P(Y <= k) = logistic((tau_k - eta) / s)`` with
thresholds ``tau = (-1.2, 0, 1.2)``. Item locations ``mu_q ~ N(0, 1)``; group ``g`` has ``eta = mu_q + c_g``
(``c = 0, 0.5, -0.5``) and scale 1. A model has ``eta = mu_q + c_1 + offset + sd_item * a_mq + sd_format * b_mqf``
(``a, b ~ N(0, 1)``: model x item and model x item x format effects) and scale ``s`` (its sharpness: smaller is
sharper). Each model answers ``n`` times per item and format.

Cases (the claim is always ``Claim.closer(first, than=second, group="G1")``):

* ``identical_pair``: two models with the SAME answer distribution (sharper than the humans, off their
  location), sampled 5 and 2 times per cell: the claim is false (its true margin is 0 for every metric).
* ``near_vs_identical``: "identical" answers from the G1 distribution itself (p = h in every item and
  format), "near" is a small perturbation of it; the claim "near is closer than identical" is false for
  every similarity metric (identical scores the maximum, 1, and near less).
* ``true_difference``: "close" (small perturbation) against "far" (offset and sharper): the claim is true.

Only numpy and pandas here; the tables go through ``robustalign.schema.make_responses`` / ``make_reference``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

K = 4
OPTIONS = [str(k + 1) for k in range(K)]
TAU = np.array([-1.2, 0.0, 1.2])
FORMATS = ("f1", "f2", "f3")
GROUP_SHIFT = {"G1": 0.0, "G2": 0.5, "G3": -0.5}

#: name -> (offset, scale, sd over items, sd over items x formats) per case, and answers per cell
CASES = {
    "identical_pair": ({"A": (0.4, 0.6, 0.5, 0.0), "B": (0.4, 0.6, 0.5, 0.0)}, {"A": 5, "B": 2}),
    "near_vs_identical": ({"near": (0.0, 1.0, 0.05, 0.0), "identical": (0.0, 1.0, 0.0, 0.0)},
                          {"near": 15, "identical": 15}),
    "true_difference": ({"close": (0.0, 1.0, 0.15, 0.1), "far": (0.8, 0.5, 0.5, 0.2)}, {"close": 5, "far": 5}),
}
CLAIMS = {"identical_pair": ("A", "B"), "near_vs_identical": ("near", "identical"),
          "true_difference": ("close", "far")}


def cumlogit(eta: np.ndarray, s: float) -> np.ndarray:
    """(..., K) option probabilities of the cumulative logit with location ``eta`` (...) and scale ``s``."""
    c = 1.0 / (1.0 + np.exp(-(TAU - eta[..., None]) / s))
    return np.diff(np.concatenate([np.zeros(eta.shape + (1,)), c, np.ones(eta.shape + (1,))], -1), axis=-1)


def simulate(case: str, seed, n_items: int = 40, n_answers: dict | None = None):
    """``(responses_df, shares_df, scales_df, truth)`` for one data set; ``truth`` maps each model to its
    answer distributions (items, formats, K) and the G1 distribution (items, K)."""
    g = np.random.default_rng(seed)
    models, counts = CASES[case]
    counts = {**counts, **(n_answers or {})}
    mu = g.normal(0.0, 1.0, n_items)
    items = [f"q{i:03d}" for i in range(n_items)]
    H = {grp: cumlogit(mu + c, 1.0) for grp, c in GROUP_SHIFT.items()}
    shares = pd.DataFrame([{"item": it, "group": grp, "option": o, "share": h[i, k]}
                           for grp, h in H.items() for i, it in enumerate(items) for k, o in enumerate(OPTIONS)])
    scales = pd.DataFrame({"item": items, "options": "|".join(OPTIONS), "ordinal": True})
    shared = {}  # models with identical parameters share one draw of their effects (identical_pair)
    rows, truth = [], {"G1": H["G1"]}
    for m, (off, s, sd_i, sd_f) in models.items():
        key = (off, s, sd_i, sd_f)
        if key not in shared:
            eta = (mu + GROUP_SHIFT["G1"] + off)[:, None] + sd_i * g.normal(size=(n_items, 1)) \
                + sd_f * g.normal(size=(n_items, len(FORMATS)))
            shared[key] = cumlogit(eta, s)
        P = shared[key]
        truth[m] = P
        n = counts[m]
        u = g.random((n_items, len(FORMATS), n, 1))
        k = (u > np.cumsum(P, -1)[:, :, None, :-1]).sum(-1)  # (items, formats, n)
        ii, ff, ss = np.meshgrid(np.arange(n_items), np.arange(len(FORMATS)), np.arange(n), indexing="ij")
        rows.append(pd.DataFrame({"model": m, "item": np.array(items)[ii.ravel()],
                                  "format": np.array(FORMATS)[ff.ravel()], "sample": ss.ravel(),
                                  "answer": np.array(OPTIONS)[k.ravel()]}))
    return pd.concat(rows, ignore_index=True), shares, scales, truth


def dataset(case: str, seed, n_items: int = 40, n_answers: dict | None = None):
    """Validated ``(responses, reference, truth)`` for :func:`simulate`."""
    from robustalign.schema import make_reference, make_responses

    df, shares, scales, truth = simulate(case, seed, n_items, n_answers)
    ref = make_reference(shares, scales)
    return make_responses(df, ref), ref, truth


def true_margin(case: str, truth: dict, fn) -> float:
    """True mean over items and formats of ``fn(model, G1)`` for the claim's first minus second model
    (``fn(p, h)`` a similarity on (..., K) arrays, computed independently of robustalign)."""
    a, b = CLAIMS[case]
    h = truth["G1"][:, None, :]
    return float(np.mean(fn(truth[a], h)) - np.mean(fn(truth[b], h)))


def supported(case: str, seeds, *, metrics=None, n_resamples: int = 200, n_permutations: int = 400,
              n_answers: dict | None = None, **kw) -> np.ndarray:
    """``audit_claim``'s verdict on the case's claim, one entry per seed (its defaults but ``metrics`` and ``kw``,
    e.g. ``factors=[]``: formats pooled)."""
    from robustalign.claims.multiverse import Claim, audit_claim

    a, b = CLAIMS[case]
    out = []
    for s in seeds:
        resp, ref, _ = dataset(case, s, n_answers=n_answers)
        try:
            res = audit_claim(resp, ref, Claim.closer(a, than=b, group="G1"), metrics=metrics,
                              n_resamples=n_resamples, n_permutations=n_permutations, rng=s[-1] if
                              isinstance(s, (list, tuple)) else s, progress=False, **kw)
            out.append(res.verdicts["verdict"].iloc[0])
        except ValueError as e:  # a metric not estimable from these answers: no verdict
            out.append("error: " + str(e)[:60])
    return np.array(out, dtype=object)


if __name__ == "__main__":
    # the rates quoted in docs/claims.md ("Default metrics and closer claims near identity"):
    #   python tests/_near_identity_sim.py 150 default                  (full multiverse, seeds [7, i])
    #   python tests/_near_identity_sim.py 150 js near_vs_identical pooled   (formats pooled, means, seeds [8, i])
    #   python tests/_near_identity_sim.py 150 default near_vs_identical pooled
    import sys
    import time

    n_sets = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else ["default"]
    cases = sys.argv[3].split(",") if len(sys.argv) > 3 else list(CASES)
    pooled = len(sys.argv) > 4 and sys.argv[4] == "pooled"
    kw = {"factors": [], "aggregations": ["mean"]} if pooled else {}
    for case in cases:
        for mt in [None if m == "default" else m for m in only]:
            t0 = time.time()
            v = supported(case, [[8 if pooled else 7, i] for i in range(n_sets)],
                          metrics=None if mt is None else [mt], **kw)
            k = int(np.sum(v == "supported"))
            err = int(sum(str(x).startswith("error") for x in v))
            print(f"{case:18s} {mt or 'default':14s} supported {k:4d} / {n_sets} = {k / n_sets:.3f}  "
                  f"not {int(np.sum(v == 'not supported'))} incon {int(np.sum(v == 'inconclusive'))} "
                  f"errors {err}  ({time.time() - t0:.0f} s)", flush=True)
