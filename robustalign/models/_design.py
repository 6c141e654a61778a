"""Cell designs: responses aggregated to sufficient statistics per design cell (numpy only).

A *cell* is one model x item x combination of design-factor levels. The response model only needs
the answer counts per cell (ordinal) and the score model only needs ``n``, ``sum log y`` and
``sum log(1 - y)`` per cell, so neither ever holds one likelihood term per response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from robustalign._errors import SchemaError

#: A design is fitted on the dense model x item x factor-combination grid (zero counts where a cell is
#: missing) when the grid has at most this many times the observed cells: broadcasting three small
#: tables is several times faster than gathering a dozen per cell (bench/bench_models.py).
DENSE_MAX_FILL = 4.0

#: Columns of a responses table that are replicate indices, not design factors.
REPLICATE_COLUMNS = ("sample", "repeat", "epoch", "seed", "sample_idx")


@dataclass
class Term:
    """One additive term of the linear predictor: a named table indexed by some axes."""

    name: str  # name of the pm.Deterministic holding the table
    axes: tuple[str, ...]  # e.g. ("model", "item") -> table[model, item]
    group: str  # variance component it belongs to (e.g. "model_item", "format", "item_x_format")
    factor: str | None = None


@dataclass
class Design:
    """Everything the graph builders and the result object need, as plain arrays."""

    kind: str  # "ordinal", "categorical" (nominal items) or "score"
    models: list[str]
    items: list[str]
    factors: list[str]
    levels: dict[str, list[str]]
    idx: dict[str, np.ndarray]  # axis -> integer code per cell
    n_cells: int
    n_responses: int
    # ordinal and categorical
    counts: np.ndarray | None = None  # (cells, Kmax)
    K_item: np.ndarray | None = None  # (items,)
    # score
    n: np.ndarray | None = None
    sum_log: np.ndarray | None = None
    sum_log1m: np.ndarray | None = None
    squeeze_n: float | None = None
    # humans
    groups: list[str] = field(default_factory=list)
    human_counts: np.ndarray | None = None  # (groups, items, Kmax); NaN rows = item not asked
    human_mean: np.ndarray | None = None  # (groups, items) mean position / score in [0, 1]
    human_n: np.ndarray | None = None
    min_df_scale: int = 4
    max_fill: float = DENSE_MAX_FILL  # see DENSE_MAX_FILL; 0 forces one gathered row per cell
    cutpoints: str = "shared"  # "offset": the models' cutpoint spacing may differ from the humans'
    interactions: dict[str, bool] = field(default_factory=dict)
    terms: list[Term] = field(default_factory=list)
    data_hash: str = ""

    @property
    def coords(self) -> dict[str, list[str]]:
        c = {"model": self.models, "item": self.items}
        for f in self.factors:
            c[f] = self.levels[f]
        if self.groups:
            c["group"] = self.groups
        return c

    def shape(self, axes) -> tuple[int, ...]:
        return tuple(len(self.coords[a]) for a in axes)

    # ------------------------------------------------------------- the dense grid
    @property
    def n_combos(self) -> int:
        """Number of factor-level combinations (G of the model x item x G grid)."""
        return int(np.prod(self.shape(self.factors))) if self.factors else 1

    @property
    def dense(self) -> bool:
        return len(self.models) * len(self.items) * self.n_combos <= self.max_fill * self.n_cells

    def combo_codes(self, factor: str) -> np.ndarray:
        """Level code of ``factor`` in each of the G factor-level combinations (C order)."""
        return np.unravel_index(np.arange(self.n_combos), self.shape(self.factors))[self.factors.index(factor)]

    def to_grid(self, x: np.ndarray) -> np.ndarray:
        """Per-cell rows ``x`` (cells, ...) placed on the (models, items, G, ...) grid, zero elsewhere."""
        out = np.zeros((len(self.models) * len(self.items) * self.n_combos, *x.shape[1:]))
        out[flat_index(self, ("model", "item", *self.factors))] = x
        return out.reshape(len(self.models), len(self.items), self.n_combos, *x.shape[1:])


def cell_predictor(d: Design, tables: dict, lead: int = 0) -> np.ndarray:
    """The linear predictor per cell from the effect tables of ``d.terms`` (numpy).

    Tables may carry ``lead`` leading axes (e.g. posterior draws); the result is (*lead, cells).
    """
    eta: Any = 0.0  # a float until the first term adds an array
    for t in d.terms:
        tab = np.asarray(tables[t.name])
        eta = eta + tab.reshape(*tab.shape[:lead], -1)[..., flat_index(d, t.axes)]
    return eta


def flat_index(d: Design, axes) -> np.ndarray:
    """Position of each cell in the flattened table over ``axes``."""
    return np.ravel_multi_index([d.idx[a] for a in axes], d.shape(axes)).astype(np.int64)


def design_factors(responses, factors) -> list[str]:
    """Design factors to model: given ones, else every factor of the data except replicate indices."""
    if factors is None:
        fs = [f for f in responses.factors if f not in REPLICATE_COLUMNS]
    else:
        fs = list(factors)
        bad = [f for f in fs if f not in responses.data.columns]
        if bad:
            raise SchemaError(
                f"`factors` {bad} are not columns of the responses; design factors are {list(responses.factors)}."
            )
    # a factor with one level carries no information about presentation effects
    return [f for f in fs if responses.data[f].nunique() > 1]


def _interactions(interactions, factors) -> dict[str, bool]:
    if isinstance(interactions, bool):
        return dict.fromkeys(factors, interactions)
    out = dict.fromkeys(factors, True)
    bad = [f for f in interactions if f not in factors]
    if bad:
        raise ValueError(f"`interactions` names {bad}, which are not modelled factors {factors}.")
    out.update({f: bool(v) for f, v in interactions.items()})
    return out


def _codes(series: pd.Series, levels: list) -> np.ndarray:
    return pd.Categorical(series, categories=levels).codes.astype(np.int64)


def _cells(v: pd.DataFrame, factors: list[str]):
    models = sorted(v["model"].astype(str).unique())
    items = sorted(v["item"].astype(str).unique())
    levels = {f: sorted(v[f].astype(str).unique()) for f in factors}
    codes = {"model": _codes(v["model"].astype(str), models), "item": _codes(v["item"].astype(str), items)}
    for f in factors:
        codes[f] = _codes(v[f].astype(str), levels[f])
    axes = ["model", "item", *factors]
    dims = [len(models), len(items), *[len(levels[f]) for f in factors]]
    flat = np.ravel_multi_index([codes[a] for a in axes], dims)
    uniq, inv = np.unique(flat, return_inverse=True)
    unr = np.unravel_index(uniq, dims)
    idx = {a: unr[i].astype(np.int64) for i, a in enumerate(axes)}
    return models, items, levels, idx, inv


def ordinal_design(
    responses,
    reference=None,
    *,
    factors=None,
    interactions=True,
    min_df_scale: int = 4,
    human_n=None,
) -> Design:
    """Answer counts per cell for a choice (or probability) responses table.

    When every item is nominal this is :func:`categorical_design` (``kind="categorical"``); a mix of
    ordinal and nominal items raises a SchemaError that says how to fit them separately.
    """
    return _count_design(None, responses, reference, factors, interactions, min_df_scale, human_n)


def categorical_design(
    responses,
    reference=None,
    *,
    factors=None,
    interactions=True,
    min_df_scale: int = 4,
    human_n=None,
) -> Design:
    """Answer counts per cell for nominal (unordered) items: the design of the softmax response model.

    Same cells as :func:`ordinal_design` (model x item x design-factor levels) with ``kind="categorical"``,
    counts (cells, Kmax) in canonical option order (options beyond an item's K are 0) and ``K_item``;
    with a reference, human counts per group x item x option. ``interactions`` and ``min_df_scale`` are
    recorded but not used: every design factor enters as a model x item x level effect.
    """
    return _count_design("categorical", responses, reference, factors, interactions, min_df_scale, human_n)


def _count_design(want, responses, reference, factors, interactions, min_df_scale, human_n) -> Design:
    """Answer counts per cell; the kind follows the item scales (``want`` = "categorical" insists on it)."""
    if responses.kind == "score":
        raise SchemaError("responses hold scores; use `fit_score_model` for scores in [0, 1].")
    fs = design_factors(responses, factors)
    v = responses.valid()
    kind = "categorical" if _check_item_kinds(responses, v) == "nominal" else "ordinal"
    if want is not None and kind != want:
        raise SchemaError(
            "responses: every item is ordinal; the categorical (softmax) model is for nominal items. Use "
            "`ordinal_design` / `fit_response_model`, which choose the model from the item scales."
        )
    models, items, levels, idx, inv = _cells(v, fs)
    K_item = np.array([responses.scales[i].K for i in items])
    counts = _answer_counts(responses, v, inv, int(K_item.max()))
    d = Design(
        kind=kind, models=models, items=items, factors=fs, levels=levels, idx=idx,
        n_cells=len(counts), n_responses=len(v), counts=counts, K_item=K_item,
        interactions=_interactions(interactions, fs), min_df_scale=min_df_scale,
        data_hash=responses.data_hash(),
    )
    if reference is not None:
        _add_humans(d, reference, human_n)
        if kind == "categorical":
            d.human_mean = None  # a mean position has no meaning for nominal options
    return d


def _answer_counts(responses, v: pd.DataFrame, inv: np.ndarray, kmax: int) -> np.ndarray:
    """Answer counts per cell (cells, kmax) in canonical option order; expected counts for probabilities."""
    counts = np.zeros((inv.max() + 1, kmax))
    if responses.kind == "choice":
        kidx = np.fromiter((responses.scales[i].index(o) for i, o in zip(v["item"], v["option"])), int, len(v))
        np.add.at(counts, (inv, kidx), 1.0)
    else:  # probabilities: expected counts
        np.add.at(counts, inv, v[[f"prob_{j + 1}" for j in range(kmax)]].to_numpy(float))
    return counts


def _check_item_kinds(responses, v: pd.DataFrame) -> str:
    """``"ordinal"`` or ``"nominal"`` when all items are of one kind; a SchemaError when they are mixed."""
    items = sorted(v["item"].unique())
    nominal = [i for i in items if not responses.scales[i].ordinal]
    if not nominal:
        return "ordinal"
    if len(nominal) == len(items):
        return "nominal"
    ordinal = [i for i in items if responses.scales[i].ordinal]
    raise SchemaError(
        f"responses mix {len(ordinal)} ordinal and {len(nominal)} nominal items (nominal: {nominal[:5]}"
        f"{' ...' if len(nominal) > 5 else ''}); the response model fits one kind at a time (cumulative logit "
        "for ordinal, softmax for nominal items). Fit the ordinal and the nominal items separately: e.g. "
        "`fit_response_model(responses.subset(items=items), reference.subset(items=items))` for each list."
    )


def _add_humans(d: Design, reference, human_n) -> None:
    items = [i for i in d.items if i in set(reference.items)]
    if not items:
        raise SchemaError("the reference has none of the response items; nothing links humans to models.")
    groups = reference.groups
    shares = reference.array(d.items, groups)  # (items, groups, K); NaN where absent
    n = reference.n_array(d.items, groups)
    if human_n is not None:
        n = np.where(np.isnan(shares[..., 0]), np.nan, float(human_n))
    elif np.isnan(n[~np.isnan(shares[..., 0])]).any():
        raise SchemaError(
            "reference: respondent counts `n` are unknown for some item x group cells, so human sampling "
            "noise cannot be modelled. Pass `human_n=` (respondents per cell, e.g. an effective sample size)."
        )
    assert d.counts is not None and d.K_item is not None  # humans join ordinal or categorical designs
    kmax = d.counts.shape[1]
    sh = np.nan_to_num(shares)[..., :kmax]
    counts = sh * np.nan_to_num(n)[..., None]
    d.groups = list(groups)
    d.human_counts = np.transpose(counts, (1, 0, 2))  # (groups, items, K)
    d.human_n = np.transpose(np.nan_to_num(n), (1, 0))
    pos = _positions(d.K_item, kmax)
    with np.errstate(invalid="ignore"):
        hm = (sh * pos[:, None, :]).sum(-1)
    hm[np.isnan(shares[..., 0])] = np.nan
    d.human_mean = hm.T
    d.data_hash = d.data_hash + ":" + reference.data_hash()


def _positions(K_item, kmax):
    """Option positions on [0, 1] per item, padded with 0 beyond K."""
    pos = np.zeros((len(K_item), kmax))
    for q, k in enumerate(K_item):
        pos[q, :k] = np.arange(k) / (k - 1)
    return pos


def score_design(
    responses,
    reference=None,
    *,
    factors=None,
    interactions=True,
    min_df_scale: int = 4,
    squeeze_n: float | None = None,
) -> Design:
    """Sufficient statistics of a Beta likelihood per cell, after the squeeze transform.

    The squeeze ``y' = (y (N - 1) + 1/2) / N`` (Smithson and Verkuilen 2006) moves 0 and 1 inside
    the open interval; ``N`` is the number of scores unless ``squeeze_n`` is given (e.g. the number
    of judgements a score was averaged from).
    """
    if isinstance(responses, pd.DataFrame):
        from robustalign.schema import make_responses

        responses = make_responses(responses, reference)
    if responses.kind != "score":
        raise SchemaError(f"responses are of kind {responses.kind!r}; `fit_score_model` needs scores in [0, 1].")
    fs = design_factors(responses, factors)
    v = responses.valid()
    models, items, levels, idx, inv = _cells(v, fs)
    y = v["score"].to_numpy(float)
    N = float(len(y) if squeeze_n is None else squeeze_n)
    ys = (y * (N - 1) + 0.5) / N
    nc = inv.max() + 1
    d = Design(
        kind="score", models=models, items=items, factors=fs, levels=levels, idx=idx, n_cells=nc,
        n_responses=len(v), n=np.bincount(inv, minlength=nc).astype(float),
        sum_log=np.bincount(inv, weights=np.log(ys), minlength=nc),
        sum_log1m=np.bincount(inv, weights=np.log1p(-ys), minlength=nc), squeeze_n=N,
        interactions=_interactions(interactions, fs),
        min_df_scale=min_df_scale,
        data_hash=responses.data_hash(),
    )
    if reference is not None:
        groups = reference.groups
        sh = reference.array(items, groups)  # (items, groups, K)
        K = reference.K(items)
        pos = _positions(K, sh.shape[-1])
        d.groups = list(groups)
        d.human_mean = (np.nan_to_num(sh) * pos[:, None, :]).sum(-1).T
        d.human_mean[np.isnan(sh[..., 0]).T] = np.nan
        d.data_hash = d.data_hash + ":" + reference.data_hash()
    return d
