r"""Persona experiments: a model role-plays real survey respondents, scored against each one's own answers.

Inputs
------
*Respondent reference* (:func:`make_respondent_reference`): the human survey at the level of people,
one answer per respondent and item, with each respondent's group (country) and optional demographic
attribute columns. Long (``respondent, group, item, answer``) or wide (one column per item). The
group-level :class:`~robustalign.Reference` (answer shares per item x group, with respondent counts) is
built from the same table by :meth:`RespondentReference.to_reference`, so group-level and
respondent-level numbers come from one input.

*Responses* with a ``persona`` column naming the respondent a row role-plays (empty: prompted without
a persona). ``persona`` keys the cells but is not a design factor.

Estimand
--------
For a model (in one design cell, e.g. one prompt language), a respondent :math:`r` and an item
:math:`q`, let :math:`p_{rq}` be the model's answer distribution when it role-plays :math:`r` (pooled
over the remaining factors: paraphrases, samples) and :math:`a_{rq}` the respondent's own answer.

* **Agreement** :math:`p_{rq}(a_{rq})`, the probability that a model answer equals the respondent's.
  It is linear in :math:`p_{rq}`, so the share of the :math:`k` sampled answers that equal
  :math:`a_{rq}` is unbiased for it at any :math:`k` (no finite-sample correction is needed).
* **Distance** (ordinal items) :math:`\sum_j p_{rq}(j)\,|x_j - x_{a_{rq}}|` with options at
  :math:`x_j = j/(K-1)` on [0, 1]: the expected distance of a model answer from the respondent's. Also
  linear, also unbiased from the sample shares. Lower is better.

Scores are averaged over the respondents of a group (country), of a demographic level within a group,
or of one respondent, and over items, equally weighted per (respondent, item) pair. The target is the
mean over a population of respondents *and* a population of items.

Intervals
---------
Two-way cluster-robust (Cameron-Gelbach-Miller) on items and respondents,
:func:`robustalign.resampling.twoway.twoway_mean`, t with ``min(items, respondents) - 1`` degrees of
freedom. It was chosen over the pigeonhole (product) bootstrap because the respondent x item
interaction is most of the variance of these scores and the product bootstrap counts it about three
times; the simulation tests in ``tests/test_persona.py`` show the two-way interval covering at 0.95
and an items-only interval under-covering. Respondent-level rows carry an items-only interval (one
respondent is one cluster).

Baselines
---------
* **Group baseline**: the respondent's group's answer distribution, computed *without the respondent*
  (leave-one-out shares :math:`(C_{gqa} - 1)/(n_{gq} - 1)`), used as the prediction for each
  respondent. With the respondent included it would agree with them by construction. Its expectation
  is the agreement of a random other member of the group.
* **No-persona baseline**: the same model prompted without a persona (rows with an empty ``persona``),
  pooled per model x design cell x item, when such rows exist.

"The persona helps" is the paired difference model-with-persona minus baseline over the same
(respondent, item) pairs, with its two-way interval and t p-value (:func:`assess_persona`).

The published statistic
-----------------------
``statistic="majority"`` scores the majority answer of the sampled answers instead: 1 when it equals
the respondent's answer; with ties between :math:`m` modal answers, :math:`1/m` when the respondent's
answer is among them (the expectation under a random tie-break, so no draws are needed). It estimates
a different and less portable quantity than the default: the chance that the *mode of k draws* matches,
which moves with :math:`k` (5 samples give a different number than 50 from the same model: as
:math:`k` grows the mode tends to the distribution's mode, and a model that spreads its answers like
the population loses agreement it had at small :math:`k`) and with how ties are broken. The group
baseline is then the leave-one-out group majority. Use it to reproduce published tables; use the
default to compare models sampled with different numbers of answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._errors import SchemaError, preview
from robustalign.claims._base import VERDICTS, AssessmentResult
from robustalign.schema import (
    PERSONA,
    ExclusionLog,
    Reference,
    Responses,
    Scale,
    as_code,
    check_table,
    is_missing,
    make_reference,
    make_scales,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

    from robustalign.report.audit import Section

__all__ = [
    "RespondentReference",
    "PersonaResult",
    "assess_persona",
    "check_design_persona",
    "load_respondent_reference",
    "loo_influence",
    "make_respondent_reference",
    "persona_inputs",
    "persona_report_section",
    "persona_scores",
    "persona_section",
]

STATISTICS = ("expected", "majority")
#: What "the persona helps" is judged against -> (gain quantity, words for the baseline)
BASELINES = {"group": ("persona_gain_agreement", "the group baseline"),
             "no_persona": ("persona_gain_agreement_vs_no_persona", "the same model without a persona")}


# --------------------------------------------------------------------------------------------------
# Respondent-level human reference
# --------------------------------------------------------------------------------------------------
@dataclass
class RespondentReference:
    """Human answers per respondent, with each respondent's group and demographic attributes.

    Attributes
    ----------
    answers : DataFrame
        ``respondent, item, option, _k`` (canonical option and its index), one row per answered item.
    respondents : DataFrame
        One row per respondent: ``respondent, group`` and the attribute columns.
    attributes : tuple of str
    scales : dict
    exclusions : ExclusionLog
    source : str
        Name of the table (file) in messages.
    """

    answers: pd.DataFrame
    respondents: pd.DataFrame
    attributes: tuple[str, ...]
    scales: dict[str, Scale]
    exclusions: ExclusionLog = field(default_factory=ExclusionLog)
    source: str = "respondents"

    @property
    def items(self) -> list[str]:
        return sorted(self.answers["item"].unique())

    @property
    def groups(self) -> list[str]:
        return sorted(self.respondents["group"].unique())

    @property
    def ids(self) -> list[str]:
        return self.respondents["respondent"].tolist()

    def answer_matrix(self, items: Sequence[str]) -> np.ndarray:
        """``(n_respondents, n_items)`` option indices in canonical order, -1 where not answered."""
        out = np.full((len(self.respondents), len(items)), -1, dtype=np.intp)
        rr = pd.Index(self.ids).get_indexer(self.answers["respondent"])
        qq = pd.Index(list(items)).get_indexer(self.answers["item"])
        ok = qq >= 0
        out[rr[ok], qq[ok]] = self.answers["_k"].to_numpy(np.intp)[ok]
        return out

    def to_reference(self) -> Reference:
        """The group-level reference: answer shares per item x group with ``n`` = respondents answering."""
        a = self.answers.merge(self.respondents[["respondent", "group"]], on="respondent")
        c = a.groupby(["item", "group", "option"]).size().rename("count").reset_index()
        c["n"] = c.groupby(["item", "group"])["count"].transform("sum")
        c["share"] = c["count"] / c["n"]
        ref = make_reference(c[["item", "group", "option", "share", "n"]], self.scales)
        ref.exclusions = self.exclusions.merged(ref.exclusions)  # the respondents' exclusions travel with it
        return ref

    def __repr__(self) -> str:
        return (f"RespondentReference({len(self.respondents)} respondents in {len(self.groups)} groups, "
                f"{len(self.items)} items, attributes={list(self.attributes)}, "
                f"{self.exclusions.total()} rows in the exclusion log)")


def _long_form(df: pd.DataFrame, rcol: str, gcol: str, scales: Mapping[str, Scale],
               attributes: Sequence[str] | None, src: str) -> tuple[pd.DataFrame, list[str]]:
    """(long table ``row, respondent, group, item, answer``, attribute columns)."""
    absent = [a for a in attributes or () if a not in df]
    if absent:
        raise SchemaError(f"{src}: attribute columns {absent} are not in the table; found {list(df.columns)}. Name "
                          "demographic columns of the respondent file in `attributes=`, or leave it out.")
    if "item" in df and "answer" in df:
        attrs = [c for c in df.columns if c not in (rcol, gcol, "item", "answer")] if attributes is None \
            else list(attributes)
        out = df.rename(columns={rcol: "respondent", gcol: "group"})
        out.insert(0, "row", np.arange(len(df)))
        return out[["row", "respondent", "group", "item", "answer", *attrs]], attrs
    item_cols = [c for c in df.columns if c not in (rcol, gcol) and as_code(c) in scales]
    if not item_cols:
        raise SchemaError(
            f"{src}: no `item` and `answer` columns (long format) and no column named after an item of the scales "
            f"(wide format); found {list(df.columns)}. Give one row per respondent x item with columns "
            f"{rcol}, {gcol}, item, answer, or one column per item named by its id."
        )
    attrs = [c for c in df.columns if c not in (rcol, gcol, *item_cols)] if attributes is None else list(attributes)
    wide = df.rename(columns={rcol: "respondent", gcol: "group"})
    wide.insert(0, "row", np.arange(len(df)))
    out = wide.melt(id_vars=["row", "respondent", "group", *attrs], value_vars=item_cols,
                    var_name="item", value_name="answer")
    return out, attrs


def make_respondent_reference(
    table: pd.DataFrame,
    scales: pd.DataFrame | Mapping[str, Scale] | Reference,
    *,
    respondent_col: str = "respondent",
    group_col: str = "group",
    attributes: Sequence[str] | None = None,
    missing_codes: Sequence = (),
    source: str = "respondents",
) -> RespondentReference:
    """Validate respondent-level survey answers and return a :class:`RespondentReference`.

    Parameters
    ----------
    table : DataFrame
        Long (``respondent, group, item, answer`` and attribute columns) or wide (``respondent,
        group``, attribute columns, and one column per item named by its id). Rows count from 0.
    scales : DataFrame, mapping or Reference
        Item scales (see :func:`robustalign.schema.make_scales`); answers are canonical option codes.
    respondent_col, group_col : str
        Names of the respondent id and group (country) columns.
    attributes : list of str, optional
        Demographic columns (constant per respondent). Default: every other non-item column.
    missing_codes : sequence
        Answer codes that mean "no answer" (e.g. ``-99``, ``"DK"``). These and empty answers are dropped
        and counted in the exclusion log; any other code outside the item's scale is an error.
    """
    sc = scales.scales if isinstance(scales, Reference) else make_scales(scales)
    src = source
    for col, what, key in ((respondent_col, "respondent id", "respondent_col"),
                           (group_col, "group (country)", "group_col")):
        if col not in table:
            raise SchemaError(f"{src}: no column {col!r} with the {what}; found {list(table.columns)}. Rename the "
                              f"column or name it (`{key}=`; in a design file [persona] {key}"
                              f"{', on the command line --group-col' if key == 'group_col' else ''}).")
    check_table(table, src, [respondent_col, group_col])
    df, attrs = _long_form(table.reset_index(drop=True), respondent_col, group_col, sc, attributes, src)
    na = df["respondent"].isna()
    if na.any():
        raise SchemaError(f"{src}: column `{respondent_col}` is empty at rows {preview(df.loc[na, 'row'].unique())}. "
                          "Give every row its respondent id.")
    df["respondent"] = df["respondent"].map(as_code)
    df["item"] = df["item"].map(as_code)
    nog = df["group"].isna()
    if nog.any():
        ids = df.loc[nog, "respondent"].unique()
        raise SchemaError(
            f"{src}: respondents without a group: {preview(ids)} (column `{group_col}` empty at rows "
            f"{preview(df.loc[nog, 'row'].unique())}). Give every respondent its group (country), or remove them."
        )
    df["group"] = df["group"].astype(str)
    _one_value_per_respondent(df, ["group", *attrs], src, {"group": group_col})
    dup = df.duplicated(["respondent", "item"], keep=False)
    if dup.any():
        ex = df.loc[dup, ["respondent", "item"]].iloc[0].to_dict()
        raise SchemaError(f"{src}: {int(dup.sum())} rows repeat the same respondent x item (rows "
                          f"{preview(df.loc[dup, 'row'].unique())}, e.g. {ex}). Keep one answer per respondent and item.")
    unknown = sorted(set(df["item"]) - set(sc))
    if unknown:
        raise SchemaError(f"{src}: items {preview(unknown)} have no scale; scales have {preview(sorted(sc), 3)}. "
                          "Add them to the scales file (`--scales`) or remove them.")
    log = ExclusionLog()
    df = _answers(df, sc, missing_codes, src, log)
    who = df.drop_duplicates("respondent")[["respondent", "group", *attrs]]
    allr = table[respondent_col].map(as_code).unique()
    silent = sorted(set(allr) - set(who["respondent"]))
    if silent:
        log.add(src, "respondent answered no item (every answer empty or missing)", silent, "dropped")
    who = who.sort_values(["group", "respondent"]).reset_index(drop=True)
    answers = df[["respondent", "item", "option", "_k"]].reset_index(drop=True)
    return RespondentReference(answers, who, tuple(attrs), sc, log, src)


def _answers(df: pd.DataFrame, sc, missing_codes, src: str, log: ExclusionLog) -> pd.DataFrame:
    """Answers as canonical options (``option``, ``_k``); no-answer rows dropped and counted, off-scale refused."""
    miss_codes = {as_code(m) for m in missing_codes}
    miss = df["answer"].map(lambda v: is_missing(v) or as_code(v) in miss_codes)
    log.add(src, "no answer (empty or a missing code); the respondent is not scored on that item",
            df.loc[miss, "row"].tolist(), "dropped")
    df = df[~miss].copy()
    df["option"] = df["answer"].map(as_code)
    ok = np.array([o in sc[i].options for i, o in zip(df["item"], df["option"])], dtype=bool)
    if not ok.all():
        bad = df[~ok]
        r = bad.iloc[0]
        raise SchemaError(
            f"{src}: answers off the item's scale at rows {preview(bad['row'].unique())}: e.g. respondent "
            f"{r['respondent']!r} item {r['item']!r} answer {r['option']!r} not in {sc[r['item']].options}. Recode "
            "them to the scale's codes, or list codes meaning 'no answer' in `missing_codes=`."
        )
    df["_k"] = [sc[i].index(o) for i, o in zip(df["item"], df["option"])]
    return df


def _one_value_per_respondent(df, cols, src, names) -> None:
    for c in cols:
        n = df.groupby("respondent")[c].nunique(dropna=False)
        if (n > 1).any():
            ids = n.index[n > 1]
            rows = df.loc[df["respondent"].isin(ids[:1]), "row"].unique()
            raise SchemaError(f"{src}: column `{names.get(c, c)}` differs between rows of one respondent: "
                              f"{preview(ids)} (e.g. rows {preview(rows)}). A respondent has one {names.get(c, c)}; "
                              "fix the value or give the rows distinct respondent ids.")


def load_respondent_reference(path: str | os.PathLike[str] | pd.DataFrame,
                              scales: str | os.PathLike[str] | pd.DataFrame | Mapping[str, Scale] | Reference,
                              **kwargs: Any) -> RespondentReference:
    """Load and validate a respondent-level reference file (CSV, Parquet, JSON lines)."""
    from robustalign.io import read_table

    sc = scales if isinstance(scales, (Mapping, Reference)) else read_table(scales)
    df = read_table(path)
    kwargs.setdefault("source", df.attrs.get("source", "respondents"))
    return make_respondent_reference(df, sc, **kwargs)


# --------------------------------------------------------------------------------------------------
# Scores per (model x cell, respondent, item)
# --------------------------------------------------------------------------------------------------
@dataclass
class _Scores:
    """Score arrays ``(units, respondents, items)``, NaN where a pair is not scored."""

    units: pd.DataFrame  # model, *by
    items: list[str]
    people: pd.DataFrame  # respondent, group, attributes (rows of the arrays)
    arrays: dict[str, np.ndarray]
    n_answers: np.ndarray
    exclusions: ExclusionLog
    answers: np.ndarray | None = None  # (R, Q) option index, -1 not answered
    kernels: dict[str, np.ndarray] | None = None  # "agreement"/"distance" -> (Q, K, K)
    statistic: str = "expected"
    loo: dict = field(default_factory=dict)  # cached leave-one-out parts per kernel


def _positions(scales, items) -> tuple[np.ndarray, np.ndarray]:
    """(items, K_max) option positions on [0, 1] (NaN beyond K) and which items are ordinal."""
    kmax = max(scales[i].K for i in items)
    x = np.full((len(items), kmax), np.nan)
    for j, i in enumerate(items):
        K = scales[i].K
        x[j, :K] = np.arange(K) / (K - 1)
    return x, np.array([scales[i].ordinal for i in items])


def _pick(P: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``P[..., r, q, A[r, q]]`` with NaN where ``A`` is -1."""
    idx = np.broadcast_to(np.maximum(A, 0), P.shape[:-1])[..., None]
    got = np.take_along_axis(P, idx, axis=-1)[..., 0]
    return np.where(A >= 0, got, np.nan)


def _distance(P: np.ndarray, A: np.ndarray, x: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
    """Expected |x_j - x_a| under ``P`` (..., R, Q, K); NaN for nominal items and unanswered pairs."""
    xa = np.take_along_axis(np.broadcast_to(x, (*A.shape, x.shape[1])), np.maximum(A, 0)[..., None], -1)
    d = np.nansum(P * np.abs(x - xa), axis=-1)  # (..., R, Q): x and xa broadcast over the leading axes
    return np.where((A >= 0) & ordinal, d, np.nan)


def _majority(P: np.ndarray) -> np.ndarray:
    """The majority answer as a distribution: 1/m on each of the m modal options (ties split evenly)."""
    Pz = np.nan_to_num(P, nan=0.0)
    top = (Pz >= Pz.max(axis=-1, keepdims=True) - 1e-9) & (Pz > 0)
    m = top.sum(axis=-1, keepdims=True)
    return np.where(m > 0, top / np.maximum(m, 1), np.nan)


def _group_baseline(A: np.ndarray, groups: np.ndarray, K: int, majority: bool) -> np.ndarray:
    """(R, Q, K) leave-one-out answer distribution of each respondent's group (NaN with < 2 answering)."""
    R, Q = A.shape
    out = np.full((R, Q, K), np.nan)
    for g in np.unique(groups):
        m = groups == g
        Ag = A[m]
        C = np.stack([(Ag == k).sum(0) for k in range(K)], axis=-1).astype(float)  # (Q, K)
        own = (Ag[..., None] == np.arange(K)).astype(float)  # (Rg, Q, K)
        n = C.sum(-1)[None, :, None] - (Ag >= 0)[..., None]
        with np.errstate(invalid="ignore", divide="ignore"):
            loo = np.where(n > 0, (C[None] - own) / n, np.nan)
        out[m] = _majority(loo) if majority else loo
    return out


def _loo_parts(A: np.ndarray, grp: np.ndarray, kernel: np.ndarray) -> dict:
    """What :func:`loo_influence` needs that does not depend on the cells in the estimate."""
    K = kernel.shape[-1]
    oh = ((A[..., None] == np.arange(K)) & (A >= 0)[..., None]).astype(float)  # (R, Q, K)
    kk = np.einsum("qkl,rql->rqk", np.nan_to_num(kernel), oh)  # kernel(k, a_rq)
    own_k = np.einsum("rqk,rqk->rq", oh, kk)
    b = np.zeros(A.shape)
    masks, n_all = {}, {}
    for g in np.unique(grp):
        m = masks[g] = grp == g
        n_all[g] = (A[m] >= 0).sum(0).astype(float)  # (Q,)
        with np.errstate(invalid="ignore", divide="ignore"):
            b[m] = (np.einsum("qk,rqk->rq", oh[m].sum(0), kk[m]) - own_k[m]) / (n_all[g] - 1)
    return {"oh": oh, "kk": kk, "own_k": own_k, "b": b, "masks": masks, "n_all": n_all}


def loo_influence(answers: np.ndarray, groups: ArrayLike, in_estimate: np.ndarray, kernel: np.ndarray, *,
                  parts: dict | None = None) -> np.ndarray:
    r"""Linearised cell scores of the mean of a leave-one-out group baseline, for :func:`twoway_mean`.

    The baseline of respondent :math:`r` on item :math:`q` is
    :math:`b_{rq} = \sum_{r' \ne r} k_q(a_{rq}, a_{r'q}) / (n_{gq} - 1)` over the other members of its
    group (``kernel`` :math:`k_q`: 1 for equal answers, or the distance between them). Its mean is a
    U-statistic over pairs of respondents: each respondent enters as a target *and* as a predictor of
    the others, so its influence is about twice its own row's (Hoeffding). Clustering the plain rows on
    respondents misses half of it and a persona-helps test over-rejects (0.10 at a nominal 0.05 in
    ``tests/test_persona.py``). The score of cell :math:`(j, q)` is its own baseline (when in the
    estimate) plus its share in the baselines of the others in the estimate, centred per item so that
    item sums equal those of the plain deviations.

    Parameters
    ----------
    answers : int array (R, Q)
        Option index of each respondent's answer, -1 where not answered.
    groups : array (R,)
    in_estimate : bool array (R, Q)
        Cells whose baseline enters the mean.
    kernel : array (Q, K, K)

    Returns
    -------
    array (R, Q)
        The influence (NaN on cells that do not contribute), to pass as ``influence=`` (transposed).
    """
    A = np.asarray(answers)
    inS = np.asarray(in_estimate, bool) & (A >= 0)
    pt = _loo_parts(A, np.asarray(groups), kernel) if parts is None else parts
    oh, kk, own_k, b = pt["oh"], pt["kk"], pt["own_k"], pt["b"]
    ell = np.zeros(A.shape)
    involved = np.zeros(A.shape, bool)
    for g, m in pt["masks"].items():
        if not inS[m].any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            o = (np.einsum("qk,rqk->rq", (oh[m] * inS[m][..., None]).sum(0), kk[m]) - inS[m] * own_k[m]) \
                / (pt["n_all"][g] - 1)
        ell[m] = np.where(inS[m], b[m], 0.0) + o
        involved[m] = (A[m] >= 0) & (inS[m].any(0))[None, :]
    bS = np.where(inS, b, 0.0)
    bbar = bS.sum() / inS.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (np.where(involved, ell, 0.0).sum(0) - (bS.sum(0) - inS.sum(0) * bbar)) / involved.sum(0)
    return np.where(involved, ell - c[None, :], np.nan)


def _model_counts(resp: Responses, keys: list[str], units, people, items) -> tuple[np.ndarray, np.ndarray]:
    """(units, R, Q, K) answer distributions of the persona rows and (units, R, Q) answer counts."""
    v = resp.valid()
    v = v[v[PERSONA].notna()]
    if resp.kind == "choice":
        return _choice_counts(v, resp.scales, keys, units, people, items)
    sub = Responses(v, resp.factors, resp.kind, resp.scales, resp.exclusions)
    cells, P = sub.distributions([*keys, PERSONA, "item"])
    u = pd.MultiIndex.from_frame(units).get_indexer(pd.MultiIndex.from_frame(cells[list(keys)])) \
        if keys else np.zeros(len(cells), np.intp)
    r = pd.Index(people["respondent"]).get_indexer(cells[PERSONA])
    q = pd.Index(items).get_indexer(cells["item"])
    ok = (r >= 0) & (q >= 0) & (u >= 0)
    out = np.full((len(units), len(people), len(items), P.shape[1]), np.nan)
    n = np.zeros((len(units), len(people), len(items)))
    out[u[ok], r[ok], q[ok]] = P[ok]
    n[u[ok], r[ok], q[ok]] = cells["n"].to_numpy()[ok]
    return out, n


def _choice_counts(v: pd.DataFrame, scales, keys, units, people, items) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_model_counts` for sampled answers, vectorised: one bincount over (unit, respondent, item, option)."""
    U, R, Q = len(units), len(people), len(items)
    K = max(scales[i].K for i in items)
    u = pd.MultiIndex.from_frame(units).get_indexer(pd.MultiIndex.from_frame(v[keys]))
    r = pd.Index(people["respondent"]).get_indexer(v[PERSONA])
    q = pd.Index(items).get_indexer(v["item"])
    table = pd.MultiIndex.from_tuples([(i, o) for i in items for o in scales[i].options])
    kk = np.array([k for i in items for k in range(scales[i].K)])
    j = table.get_indexer(pd.MultiIndex.from_arrays([v["item"].astype(str), v["option"].astype(str)]))
    ok = (u >= 0) & (r >= 0) & (q >= 0) & (j >= 0)
    flat = ((u[ok] * R + r[ok]) * Q + q[ok]) * K + kk[j[ok]]
    counts = np.bincount(flat, minlength=U * R * Q * K).reshape(U, R, Q, K).astype(float)
    n = counts.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n[..., None] > 0, counts / n[..., None], np.nan), n


def _no_persona(resp: Responses, keys, units, items, K) -> np.ndarray | None:
    """(units, Q, K) distributions of the rows prompted without a persona, or None if there are none."""
    v = resp.valid()
    v = v[v[PERSONA].isna()]
    if not len(v):
        return None
    sub = Responses(v.drop(columns=[PERSONA]), resp.factors, resp.kind, resp.scales, resp.exclusions)
    cells, P = sub.distributions([*keys, "item"])
    u = pd.MultiIndex.from_frame(units).get_indexer(pd.MultiIndex.from_frame(cells[list(keys)])) \
        if keys else np.zeros(len(cells), np.intp)
    q = pd.Index(items).get_indexer(cells["item"])
    ok = (u >= 0) & (q >= 0)
    out = np.full((len(units), len(items), K), np.nan)
    out[u[ok], q[ok], : P.shape[1]] = P[ok]
    return out


def _check_inputs(resp: Responses, ref: RespondentReference, by: list[str], statistic: str, log) -> list[str]:
    if statistic not in STATISTICS:
        raise ValueError(f"`statistic` must be one of {STATISTICS}; got {statistic!r}.")
    if PERSONA not in resp.data or resp.data[PERSONA].isna().all():
        known = set(ref.ids)
        named = [c for c in resp.factors if resp.data[c].map(as_code).isin(known).any()]
        hint = f" Column {named[0]!r} holds respondent ids of {ref.source}: rename it to `persona`." if named else ""
        raise SchemaError("responses: no `persona` column (or it is empty everywhere). A persona experiment needs a "
                          f"`persona` column with the id of the respondent each row role-plays.{hint}")
    if resp.kind == "score":
        raise SchemaError("responses: persona scores need answers on the items' scales (`answer`, `answer_position`, "
                          "`raw_text` or `prob_*`), not `score`.")
    if statistic == "majority" and resp.kind != "choice":
        raise ValueError("`statistic='majority'` needs sampled answers; these responses are option probabilities. "
                         "Use the default `statistic='expected'`.")
    bad = [b for b in by if b not in resp.factors]
    if bad:
        raise ValueError(f"`by` names {bad}, which are not design factors; the factors are {list(resp.factors)}.")
    d = resp.data[resp.data[PERSONA].notna()]
    unknown = ~d[PERSONA].isin(ref.ids)
    if unknown.any():
        ids = sorted(d.loc[unknown, PERSONA].unique())
        raise SchemaError(
            f"responses: column `persona` names respondents that are not in {ref.source}: {preview(ids)} (rows "
            f"{preview(d.loc[unknown, 'row'])}); it has e.g. {preview(ref.ids, 3)}. Use the respondent ids of the "
            "respondent-level reference (compared as text after stripping spaces)."
        )
    items = sorted(set(resp.data["item"].unique()) & set(ref.items))
    unscored = resp.data.loc[~resp.data["item"].isin(items), "row"]
    log.add("responses", f"item not answered by any respondent in {ref.source}: not scored", unscored.tolist(),
            "excluded")
    if not items:
        raise SchemaError(f"responses: no item is answered both by the models and by the respondents in {ref.source}; "
                          f"responses have {preview(resp.items, 3)}, respondents {preview(ref.items, 3)}.")
    return items


def persona_scores(responses: Responses, respondents: RespondentReference, *, by: Sequence[str] = (),
                   statistic: str = "expected") -> pd.DataFrame:
    """One row per model x ``by`` cell x respondent x item: the scores and their baselines.

    Columns: ``model``, the ``by`` factors, ``respondent``, ``group``, attributes, ``item``,
    ``n_answers`` (model answers pooled in the cell), ``agreement``, ``agreement_group`` (leave-one-out
    group baseline), ``agreement_no_persona`` (if such rows exist) and the same three for ``distance``
    (NaN on nominal items). See the module docstring for the estimand.
    """
    return _pairs(_score_arrays(responses, respondents, [by] if isinstance(by, str) else list(by), statistic))


def _pairs(s: _Scores) -> pd.DataFrame:
    u, r, q = np.nonzero(s.n_answers > 0)
    out = pd.concat([s.units.iloc[u].reset_index(drop=True), s.people.iloc[r].reset_index(drop=True)], axis=1)
    out["item"] = np.asarray(s.items, dtype=object)[q]
    out["n_answers"] = s.n_answers[u, r, q].astype(int)
    for name, arr in s.arrays.items():
        out[name] = arr[u, r, q]
    return out[out["agreement"].notna()].reset_index(drop=True)


def _score_arrays(resp: Responses, ref: RespondentReference, by: list[str], statistic: str) -> _Scores:
    log = ExclusionLog()
    items = _check_inputs(resp, ref, by, statistic, log)
    keys = ["model", *by]
    units = resp.data[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    people = ref.respondents.reset_index(drop=True)
    A = ref.answer_matrix(items)
    P, n = _model_counts(resp, keys, units, people, items)
    K = P.shape[-1]
    majority = statistic == "majority"
    if majority:
        P = _majority(P)
    x, ordinal = _positions(resp.scales, items)
    x = np.pad(x, ((0, 0), (0, K - x.shape[1])), constant_values=np.nan) if x.shape[1] < K else x[:, :K]
    G = _group_baseline(A, people["group"].to_numpy(), K, majority)
    arrays = {"agreement": _pick(P, A), "agreement_group": np.broadcast_to(_pick(G, A), P.shape[:-1])}
    arrays["distance"] = _distance(P, A, x, ordinal)
    arrays["distance_group"] = np.broadcast_to(_distance(G, A, x, ordinal), P.shape[:-1])
    P0 = _no_persona(resp, keys, units, items, K)
    if P0 is not None:
        P0 = _majority(P0) if majority else P0
        P0r = np.broadcast_to(P0[:, None], P.shape)
        arrays["agreement_no_persona"] = _pick(P0r, A)
        arrays["distance_no_persona"] = _distance(P0r, A, x, ordinal)
    arrays = {k: np.where(n > 0, v, np.nan) for k, v in arrays.items()}
    kern = {"agreement": np.broadcast_to(np.eye(K), (len(items), K, K)),
            "distance": np.where(ordinal[:, None, None], np.abs(x[:, :, None] - x[:, None, :]), np.nan)}
    return _Scores(units, items, people, arrays, n, log, A, kern, statistic)


# --------------------------------------------------------------------------------------------------
# Assessment: levels, two-way intervals, the persona-helps verdict
# --------------------------------------------------------------------------------------------------
#: (quantity, score array, baseline array subtracted or None, sign): gains are positive when the persona helps
_QUANTITIES = (
    ("agreement", "agreement", None, 1.0),
    ("agreement_group_baseline", "agreement_group", None, 1.0),
    ("persona_gain_agreement", "agreement", "agreement_group", 1.0),
    ("agreement_no_persona", "agreement_no_persona", None, 1.0),
    ("persona_gain_agreement_vs_no_persona", "agreement", "agreement_no_persona", 1.0),
    ("distance", "distance", None, 1.0),
    ("distance_group_baseline", "distance_group", None, 1.0),
    ("persona_gain_distance", "distance", "distance_group", -1.0),
)
_UNITS = {"agreement": "probability of the same answer", "distance": "expected distance on [0, 1]"}


def _levels(people: pd.DataFrame, attributes: Sequence[str]):
    """(level, group, attribute, value, respondent mask): every group, all groups, attribute levels in groups."""
    g = people["group"].to_numpy()
    yield "all groups", "all", "", "", np.ones(len(people), bool)
    for grp in sorted(set(g)):
        yield "group", grp, "", "", g == grp
        for a in attributes:
            for val in sorted(people.loc[g == grp, a].dropna().astype(str).unique()):
                yield "attribute", grp, a, val, (g == grp) & (people[a].astype(str) == val).to_numpy()


def _table(s: _Scores, attributes, level: float) -> pd.DataFrame:

    rows = []
    for u, unit in s.units.iterrows():
        for kind, grp, attr, val, mask in _levels(s.people, attributes):
            for name, a, b, sign in _QUANTITIES:
                if a not in s.arrays or (b is not None and b not in s.arrays):
                    continue
                t, method = _interval(s, u, mask, a, b, sign, level)
                if t is None:
                    continue
                rows.append({**unit.to_dict(), "level": kind, "group": grp, "attribute": attr, "value": val,
                             "quantity": name, "estimate": t.estimate, "std_error": t.std_error,
                             "conf_low": t.conf_low, "conf_high": t.conf_high, "conf_level": level,
                             "method": "two-way-cgm", "method_note": method, "p_value": t.p_value,
                             "df": t.df, "n_items": t.n_items, "n_respondents": t.n_respondents,
                             "n_pairs": t.n_cells, "units": _UNITS["distance" if "distance" in name else "agreement"]})
    return pd.DataFrame(rows)


def _interval(s: _Scores, u: int, mask: np.ndarray, a: str, b: str | None, sign: float, level: float):
    """Two-way interval of one quantity over the respondents in ``mask`` (None if under 2 scored pairs).

    Quantities built on the leave-one-out group baseline get the linearised scores of
    :func:`loo_influence` (each respondent also predicts the others); with the majority statistic the
    baseline is not linear in the others' answers and the plain two-way variance is used (flagged).
    """
    from robustalign.resampling.twoway import twoway_mean

    base = "two-way cluster-robust t (items x respondents)"
    rows = mask[:, None]
    y = np.where(rows, s.arrays[a][u], np.nan)
    if b is not None:
        y = sign * (y - np.where(rows, s.arrays[b][u], np.nan))
    if np.isfinite(y).sum() < 2:
        return None, base
    group_part = [k for k in (a, b) if k is not None and k.endswith("_group")]
    if not group_part or s.statistic == "majority":
        note = "" if not group_part else "; group baseline's dependence between respondents not linearised"
        return twoway_mean(y.T, confidence_level=level), base + note
    kind = "distance" if a.startswith("distance") else "agreement"
    assert s.answers is not None and s.kernels is not None  # scores of answers keep them (not the majority)
    inS = np.isfinite(y)
    grp = s.people["group"].to_numpy()
    if kind not in s.loo:
        s.loo[kind] = _loo_parts(s.answers, grp, s.kernels[kind])
    ell_b = loo_influence(s.answers, grp, inS, s.kernels[kind], parts=s.loo[kind])
    if b is None:  # the baseline itself
        infl = ell_b
    else:
        ym = s.arrays[a][u]
        ell_y = np.where(inS, ym - ym[inS].mean(), 0.0)
        infl = sign * (ell_y - np.where(np.isfinite(ell_b), ell_b, 0.0))
        infl = np.where(np.isfinite(ell_b) | inS, infl, np.nan)
    return twoway_mean(y.T, confidence_level=level, influence=infl.T), base + ", leave-one-out baseline linearised"


def _respondent_table(s: _Scores, level: float) -> pd.DataFrame:
    """Per model x cell x respondent: mean over items with an items-only t interval."""
    from scipy import stats

    out = []
    for u, unit in s.units.iterrows():
        for name in ("agreement", "agreement_group", "distance", "distance_group"):
            y = s.arrays[name][u]  # (R, Q)
            ok = np.isfinite(y)
            k = ok.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                m = np.where(ok, y, 0.0).sum(1) / k
                sd = np.sqrt(np.where(ok, (y - m[:, None]) ** 2, 0.0).sum(1) / (k - 1))
                se = sd / np.sqrt(k)
            tq = stats.t.ppf(0.5 + level / 2, np.maximum(k - 1, 1))
            f = s.people[["respondent", "group"]].copy()
            f = f.assign(**unit.to_dict(), quantity=name, estimate=m, std_error=se, conf_low=m - tq * se,
                         conf_high=m + tq * se, conf_level=level, n_items=k)
            out.append(f[k > 0])
    return pd.concat(out, ignore_index=True)


@dataclass(repr=False)
class PersonaResult(AssessmentResult):
    """Result of :func:`assess_persona`.

    ``to_frame()`` has one row per model x ``by`` cell x level (``all groups``, each ``group``, each
    demographic ``attribute`` = ``value`` within a group) x quantity: ``agreement``,
    ``agreement_group_baseline``, ``persona_gain_agreement`` (with persona minus group baseline),
    ``agreement_no_persona`` and ``persona_gain_agreement_vs_no_persona`` (when rows without a persona
    exist), ``distance``, ``distance_group_baseline``, ``persona_gain_distance`` (baseline minus model,
    so positive = the persona helps). ``verdicts`` judges "the persona helps" (agreement gain over the
    group baseline) per model x cell x group. ``respondent_frame()`` gives the respondent level and
    ``scores()`` every scored (respondent, item) pair.
    """

    def scores(self) -> pd.DataFrame:
        """Every scored (model x cell, respondent, item) pair, as :func:`persona_scores` returns it."""
        return _pairs(self.evidence["arrays"])

    def respondent_frame(self, confidence_level: float | None = None) -> pd.DataFrame:
        """Per model x cell x respondent: mean score over items, with an items-only t interval."""
        level = self.confidence_level if confidence_level is None else confidence_level
        return _respondent_table(self.evidence["arrays"], level)

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Any:
        """Agreement by group and demographic level with two-way intervals, the group and no-persona
        baselines marked (:func:`robustalign.plots.persona.plot_persona`); returns the Axes."""
        from robustalign.plots.persona import plot_persona

        return plot_persona(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        return AssessmentResult.__repr__(self)


def _verdicts(table: pd.DataFrame, keys: list[str], alpha: float, adjust: str,
              baseline: str = "group") -> pd.DataFrame:
    from robustalign.multiplicity import adjust as adjust_p
    from robustalign.power import z_alpha_power

    gain, words = BASELINES[baseline]
    v = table[(table["quantity"] == gain) & table["level"].isin(["group", "all groups"])]
    v = v.reset_index(drop=True).copy()
    v["p_adjusted"] = adjust_p(v["p_value"].to_numpy(), adjust)
    v["adjust_method"] = adjust
    v["family"] = f"persona helps: {len(v)} model x cell x group tests"
    verdict, reasons, needed = [], [], []
    for _, r in v.iterrows():
        where = " ".join(f"{k}={r[k]}" for k in keys) + f", {r['group']}"
        nums = (f"gain in agreement over {words} {r['estimate']:+.4f} [{r['conf_low']:+.4f}, {r['conf_high']:+.4f}] "
                f"({r['n_items']} items x {r['n_respondents']} respondents), p_adj = {r['p_adjusted']:.3g}")
        if r["p_adjusted"] < alpha and r["estimate"] > 0:
            verdict.append(VERDICTS[0])
            reasons.append(f"{where}: the persona helps: {nums}.")
            needed.append(np.nan)
        elif r["p_adjusted"] < alpha:
            verdict.append(VERDICTS[1])
            reasons.append(f"{where}: the persona hurts (agreement below {words}): {nums}.")
            needed.append(np.nan)
        else:
            # power at the per-test level of a Bonferroni split of the family (Holm is at least as powerful)
            z = z_alpha_power(alpha / max(len(v), 1), 0.8, True)
            f = (z * r["std_error"] / abs(r["estimate"])) ** 2 if r["estimate"] else np.inf
            n_items = float(np.ceil(f * r["n_items"])) if np.isfinite(f) else np.nan
            verdict.append(VERDICTS[2])
            reasons.append(f"{where}: cannot be judged at this size: {nums}; detecting a gain of this size with "
                           f"80% power in this family needs about {f:.1f} times as many items and respondents "
                           f"(about {n_items:.0f} items).")
            needed.append(n_items)
    v["verdict"], v["reason"], v["n_needed"] = verdict, reasons, needed
    return v[[*keys, "group", "verdict", "reason", "n_needed", "estimate", "conf_low", "conf_high",
              "p_value", "p_adjusted", "adjust_method", "family"]]


def assess_persona(
    responses: Responses,
    respondents: RespondentReference,
    *,
    by: Sequence[str] = (),
    statistic: str = "expected",
    baseline: str = "group",
    confidence_level: float = 0.95,
    alpha: float = 0.05,
    adjust: str = "holm",
) -> PersonaResult:
    """Respondent-level alignment of models role-playing survey respondents, and whether the persona helps.

    Parameters
    ----------
    responses : Responses
        With a ``persona`` column (respondent ids of ``respondents``; empty = prompted without persona).
    respondents : RespondentReference
        Each respondent's own answers, group and attributes.
    by : list of str
        Design factors that define separate cells per model (e.g. ``["language"]``); the other factors
        (paraphrase, sample, ...) are pooled into the model's answer distribution.
    statistic : {"expected", "majority"}
        ``"expected"`` (default): expected agreement of the answer distribution, unbiased at any number
        of answers. ``"majority"``: the published statistic, majority of the sampled answers vs the
        respondent's answer (ties split); it depends on the number of samples (module docstring).
    baseline : {"group", "no_persona"}
        What the verdicts judge the persona against: the respondent's group without the respondent
        (default), or the same model prompted without a persona (needs rows with an empty ``persona``).
        Both gains are in the table either way.
    confidence_level, alpha, adjust
        Interval level; test level and p-value adjustment (:mod:`robustalign.multiplicity`) of the
        persona-helps family (one test per model x cell x group and per model x cell over all groups).

    Returns
    -------
    PersonaResult
        Estimates with two-way (items x respondents) cluster-robust intervals; verdicts in words.
    """
    from robustalign._validation import check_confidence_level

    level = check_confidence_level(confidence_level)
    check_confidence_level(1 - alpha, "1 - alpha")
    if baseline not in BASELINES:
        raise ValueError(f"`baseline` must be one of {sorted(BASELINES)}; got {baseline!r}.")
    by = [by] if isinstance(by, str) else list(by)
    s = _score_arrays(responses, respondents, by, statistic)
    if baseline == "no_persona" and "agreement_no_persona" not in s.arrays:
        raise SchemaError("responses: `baseline='no_persona'` needs rows prompted without a persona (an empty "
                          "`persona`); there are none. Add them, or judge against the group baseline "
                          "(`baseline='group'`).")
    keys = ["model", *by]
    table = _table(s, respondents.attributes, level)
    verdicts = _verdicts(table, keys, alpha, adjust, baseline)
    prov = {"statistic": statistic, "baseline": baseline, "by": by, "alpha": alpha, "adjust": adjust,
            "interval": "two-way cluster-robust (Cameron-Gelbach-Miller CRV1), t with min(items, respondents) - 1 df",
            "n_respondents": len(s.people), "n_items": len(s.items), "responses_hash": responses.data_hash(),
            "n_rows_without_persona": int(responses.valid()[PERSONA].isna().sum()),
            "attribute_missing": {a: s.people.loc[s.people[a].isna(), "respondent"].tolist()
                                  for a in respondents.attributes if s.people[a].isna().any()}}
    return PersonaResult(
        kind="persona", verdicts=verdicts, evidence={"arrays": s, "exclusions": s.exclusions}, provenance=prov,
        confidence_level=level, build=lambda lv: _table(s, respondents.attributes, lv),
    )


def persona_report_section(result: PersonaResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(estimates at the group level, verdict rows) for a report: the numbers a reader needs first."""
    f = result.to_frame()
    keep = f["level"].isin(["all groups", "group"]) & f["quantity"].isin(
        ["agreement", "agreement_group_baseline", "persona_gain_agreement", "agreement_no_persona",
         "persona_gain_agreement_vs_no_persona", "distance", "persona_gain_distance"])
    return f[keep].reset_index(drop=True), result.verdicts


def check_design_persona(section: dict, where: str = "design") -> dict:
    """Validate the values of a design file's ``[persona]`` table (key names and types are checked by
    :mod:`robustalign.report.design`); a single name for ``by`` or ``attributes`` is a list of one."""
    from robustalign._errors import RobustAlignError

    out = dict(section)
    for k in ("by", "attributes"):
        if isinstance(out.get(k), str):
            out[k] = [out[k]]
    for key, allowed in (("statistic", STATISTICS), ("baseline", tuple(BASELINES))):
        if key in out and out[key] not in allowed:
            raise RobustAlignError(f"{where}: [persona] `{key}` must be one of {list(allowed)}; got {out[key]!r}. "
                                   "Fix the value in the design file.")
    return out


def persona_inputs(
    settings: Mapping[str, Any],
    scales: str | os.PathLike[str] | pd.DataFrame | Mapping[str, Scale] | Reference,
    *,
    path: str | os.PathLike[str] | None = None,
    by: str | Sequence[str] | None = None,
    group_col: str | None = None,
) -> tuple[RespondentReference, list[str]]:
    """(respondent-level reference, cell factors) from a design's ``[persona]`` table; ``path``, ``by``
    and ``group_col`` (command-line flags) take precedence over it."""
    from robustalign._errors import RobustAlignError

    src = path if path is not None else settings.get("reference_respondents")
    if src is None:
        raise RobustAlignError("a persona audit needs the respondent-level answers: give --reference-respondents "
                               "FILE, or `reference_respondents = \"FILE\"` in the design's [persona] table.")
    if not isinstance(src, pd.DataFrame) and not os.path.isfile(src):
        raise RobustAlignError(f"respondent file {str(src)!r} (`reference_respondents`) does not exist. Give the path "
                               "of the respondent-level answers (in a design file: relative to its folder).")
    kw = {k: settings[k] for k in ("respondent_col", "attributes", "missing_codes") if k in settings}
    kw["group_col"] = settings.get("group_col", group_col or "group") if group_col in (None, "group") else group_col
    rr = load_respondent_reference(src, scales, **kw)
    cells = by if by is not None else settings.get("by", [])
    cells = [b.strip() for b in cells.split(",") if b.strip()] if isinstance(cells, str) else list(cells)
    return rr, cells


def persona_section(responses: Responses, persona: tuple[RespondentReference, Sequence[str]] | None = None, *,
                    design: Any = None, part: str, level: float = 0.95, **_: Any) -> Section:
    """The audit report's persona section (:func:`robustalign.report.run_audit` with ``persona=`` or a
    design with a ``[persona]`` table, whose ``statistic`` and ``baseline`` it applies)."""
    from robustalign.report.audit import FigureSpec, Section, headline, verdict_rows

    settings = dict(getattr(design, "persona", None) or {})
    respondents, by = persona if persona is not None else persona_inputs(settings, responses.scales)
    res = assess_persona(responses, respondents, by=by, confidence_level=level,
                         statistic=settings.get("statistic", "expected"), baseline=settings.get("baseline", "group"))
    est, verdicts = persona_report_section(res)
    keys = ["model", *res.provenance["by"]]
    disp = [(f"{q.replace('_', ' ')} per group", headline(est[est["quantity"] == q], [*keys, "group"],
                                                             ["n_items", "n_respondents", "p_value"]))
            for q in ("agreement", "agreement_group_baseline", "persona_gain_agreement",
                      "persona_gain_agreement_vs_no_persona") if (est["quantity"] == q).any()]
    intro = ("Each model role-plays real survey respondents; scores compare its answer distribution with each "
             "respondent's own answer (expected agreement; expected distance on ordinal items), against the "
             "respondent's group without the respondent (leave-one-out) as a baseline that ignores the persona. "
             "Intervals are two-way cluster-robust over items and respondents.")
    intro += f" \"The persona helps\" is judged against {BASELINES[res.provenance['baseline']][1]}."
    if res.provenance["statistic"] == "majority":
        intro += " Scores use the majority of the sampled answers (the published statistic; it moves with k)."
    tables = {"persona": res.to_frame(), "persona_respondents": res.respondent_frame()}
    notes = [f"Excluded from persona scores: {e['n_rows']} rows ({e['reason']})."
             for _, e in res.evidence["exclusions"].to_frame().iterrows()]
    notes += [f"{len(ids)} respondents have no value of `{a}` (e.g. {preview(ids, 3)}): they count in their group's "
              f"rows but in no level of {a}." for a, ids in res.provenance["attribute_missing"].items()]
    if res.provenance["n_rows_without_persona"]:
        notes.append(f"{res.provenance['n_rows_without_persona']} response rows have an empty `persona`: they are the "
                     "no-persona baseline (the model prompted without a persona), not scored against a respondent.")
    fig = FigureSpec("persona", f"Agreement with the respondents' own answers per group and demographic level, "
                     f"{level:.0%} two-way (items x respondents) intervals; open marks: the group baseline "
                     "(leave-one-out), crosses: the same model without a persona.", lambda: res.plot())
    return Section("persona", "Persona experiment (respondent level)", intro, verdict_rows(part, "persona helps", verdicts,
                   [*keys, "group"]), tables, disp, [fig], results={"persona": res}, notes=notes)
