"""Simulated option-order experiments with known truth, written independently of robustalign.

Shape of a published order experiment: several models, items with 4 or 5 options, every item shown in
the original and in the reversed order (recorded as the labels ``original`` / ``reversed`` plus the
1-based position picked as shown), ``n`` sampled answers per order, no human reference.

Generative model, per model and item ``q`` with ``K`` options: canonical logits ``theta_qk ~ N(0, s^2)``;
under order ``o`` the logit of canonical option ``k`` is

    theta_qk + primacy * [k is shown first under o] + item_flip * u_q * (k - 1) / (K - 1) * (+1 orig., -1 rev.) / 2

and under the reversed order the interior options (1 < k < K) are then tilted by
``exp(content * (k - 1) / (K - 1))`` with their total share kept

(``u_q = +-1`` at random: the order moves items in opposite directions, an item x order interaction
with mean 0). The content term moves answers among the interior options only, so it changes the mean
canonical position without changing the share of the first or last option: alone, its true position
bias is exactly 0. The true position bias (first position) and content-order effect are computed exactly
from these probabilities (functions ``true_*``), never from sampled answers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ORDER_MAP = {"original": "identity", "reversed": "reverse"}


def _probs(theta, K, order, content, primacy, item_dir):
    pos = np.arange(K) / (K - 1)
    first = 0 if order == "original" else K - 1
    sgn = 1.0 if order == "original" else -1.0
    z = theta + item_dir * sgn * pos / 2
    z[first] += primacy
    e = np.exp(z - z.max())
    p = e / e.sum()
    if order == "reversed" and content:  # tilt the interior options, keeping their total share
        mid = slice(1, K - 1)
        q = p[mid] * np.exp(content * pos[mid])
        p[mid] = p[mid].sum() * q / q.sum()
    return p


def simulate_order_experiment(models: dict, n_items=60, n_samples=50, rng=0, sharpness=1.5, sizes=(4, 5)):
    """Long responses table, scales table and the truth.

    ``models`` maps a model name to ``dict(content=, primacy=, item_flip=)`` (missing keys are 0).
    Returns ``(responses, scales, truth)``; ``truth`` has per model the true mean position-bias
    ``position_bias_first``, content-order effect ``content_effect`` and item x order interaction SD
    ``item_level_sd`` (sqrt of the sum of squared interaction effects / (Q - 1)) over the drawn items.
    """
    g = np.random.default_rng(rng)
    Ks = g.choice(sizes, n_items)
    items = [f"q{i:03d}" for i in range(n_items)]
    scales = pd.DataFrame({"item": items, "options": ["|".join(str(k + 1) for k in range(K)) for K in Ks],
                           "ordinal": True})
    rows, truth = [], []
    for m, par in models.items():
        c, b, f = par.get("content", 0.0), par.get("primacy", 0.0), par.get("item_flip", 0.0)
        pb, ce, xs = [], [], []
        for q, K in zip(items, Ks):
            theta = g.normal(0, sharpness, K)
            u = g.choice([-1.0, 1.0]) * f
            p = {o: _probs(theta, K, o, c, b, u) for o in ORDER_MAP}
            pb.append(true_position_bias(p["original"], p["reversed"]))
            pos = np.arange(K) / (K - 1)
            ce.append(p["reversed"] @ pos - p["original"] @ pos)
            xs.append([p["original"] @ pos, p["reversed"] @ pos])
            for o in ORDER_MAP:
                canon = g.choice(K, n_samples, p=p[o])
                shown = canon + 1 if o == "original" else K - canon
                for s, a in enumerate(shown):
                    rows.append((m, q, o, s, int(a)))
        x = np.array(xs)
        e = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
        tau = np.sqrt((e**2).sum() / (len(x) - 1))  # (Q - 1)(L - 1) with L = 2
        truth.append({"model": m, "position_bias_first": float(np.mean(pb)), "content_effect": float(np.mean(ce)),
                      "item_level_sd": float(tau)})
    resp = pd.DataFrame(rows, columns=["model", "item", "order", "sample", "answer_position"])
    return resp, scales, pd.DataFrame(truth).set_index("model")


def true_position_bias(p_orig, p_rev):
    """Change in an option's share when it is shown first rather than elsewhere, mean over the options
    that are shown first in one order and not in the other (identity vs reverse: canonical 1 and K)."""
    K = len(p_orig)
    return ((p_orig[0] - p_rev[0]) + (p_rev[K - 1] - p_orig[K - 1])) / 2
