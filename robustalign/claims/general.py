"""The general claim's per-item quantities: scores of named design cells, and what a claim makes of them.

A *cell* names where a score comes from: ``{"model": "M", "language": "hi", "group": "IN"}`` is the
similarity of model M's answers prompted in Hindi to the human group IN, item by item; any key other than
``model``, ``group`` and ``human`` is a factor of the responses (a column) fixed at that level. A cell
``{"human": "P", "group": "T"}`` scores the human group P, used as a "model", against T. The group ``"*"``
(in the second cell of a contrast) stands for every group other than the first cell's, one column each.
With the metric ``"position"`` a cell's score is the model's mean answer position on [0, 1] (no reference).

Each kind reduces the cells' items x cells scores to per-item quantities ``d`` (items x J), which
:func:`robustalign.claims.multiverse.audit_claim` aggregates over items and judges:

* contrast: ``d = s_a - s_b`` (J = 1, or one column per other group for ``"*"``);
* trend: the per-item least-squares slope of the scores on the cells' positions ``x`` (times -1 for a
  claimed decrease); the mean over items of per-item slopes is the slope of the item-mean scores when
  every cell has every item (least squares is linear in the scores);
* equivalent: the differences of every pair of cells (J = K(K-1)/2), judged against the margin;
* correlation: the cells' scores themselves (J = K units), correlated across units after aggregation.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

__all__ = ["CELL_KEYS", "cell_factors", "cell_scores", "describe_cell", "pair_differences", "per_item_slopes"]

#: Cell keys that are not factors of the responses.
CELL_KEYS = ("model", "group", "human")
ALL_OTHERS = "*"


def cell_factors(cell: dict) -> dict:
    """The factor levels a cell fixes (every key but model, group, human)."""
    return {k: v for k, v in cell.items() if k not in CELL_KEYS}


def describe_cell(cell: dict) -> str:
    """Words for a cell: ``M (language=hi)``, ``humans of P``."""
    who = f"humans of {cell['human']}" if "human" in cell else str(cell.get("model", "?"))
    lv = ", ".join(f"{k}={v}" for k, v in cell_factors(cell).items())
    return f"{who} ({lv})" if lv else who


def _filter(sub, cell: dict):
    d = sub.data
    mask = (d["model"].astype(str) == str(cell["model"])).to_numpy().copy()
    for k, v in cell_factors(cell).items():
        mask &= (d[k].astype(str) == str(v)).to_numpy()
    return sub if mask.all() else _replace(sub, d[mask])


def _replace(sub, data):
    from dataclasses import replace

    return replace(sub, data=data)


def cell_scores(sub, reference, cell: dict, metric: str, items: list[str], first_group: str | None = None) -> np.ndarray:
    """Per-item scores (items x 1, or items x other groups for group ``"*"``) of one cell in ``sub``; NaN
    where an item has no data."""
    from robustalign.scoring import human_pair_scores, item_scores, model_profiles

    idx = pd.Index(items)
    if "human" in cell:
        return np.asarray(human_pair_scores(reference, items, cell["human"], cell["group"], metric=metric),
                          float)[:, None]
    d = _filter(sub, cell)
    star = cell.get("group") == ALL_OTHERS
    if len(d.data) == 0:
        return np.full((len(items), 1), np.nan)
    if metric == "position":
        p = model_profiles(d, by=["model"])
        return p.set_index("item")["value"].reindex(idx).to_numpy(float)[:, None]
    s = item_scores(d, reference, metric=metric, by=["model"], groups=None if star else [cell["group"]])
    w = s.pivot_table(index="item", columns="group", values="score", observed=True).reindex(idx)
    if not star:
        return w.get(cell["group"], pd.Series(np.nan, index=idx)).to_numpy(float)[:, None]
    if first_group not in w:
        return np.full((len(items), max(1, w.shape[1] - 1)), np.nan)
    return w[[g for g in w.columns if g != first_group]].to_numpy(float)


def per_item_slopes(S: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``S`` (items x cells) on ``x`` over the row's finite cells
    (NaN with fewer than two distinct positions)."""
    ok = np.isfinite(S)
    w = ok.astype(float)
    n = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xbar = (w * x).sum(1) / n
        xc = np.where(ok, x[None] - xbar[:, None], 0.0)
        sxx = (xc**2).sum(1)
        b = (xc * np.where(ok, S, 0.0)).sum(1) / sxx
    return np.where((n >= 2) & (sxx > 0), b, np.nan)


def pair_differences(S: np.ndarray) -> np.ndarray:
    """Differences of every pair of columns of ``S`` (items x K) -> items x K(K-1)/2."""
    pairs = list(combinations(range(S.shape[1]), 2))
    return np.stack([S[:, i] - S[:, j] for i, j in pairs], axis=1)
