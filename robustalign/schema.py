"""The data contract: responses, human references and item scales.

A *responses* table is long, one row per stored answer, with ``model``, ``item``, exactly one kind of
answer, and any number of design factors (every other column, or the ones named in ``factors=``):

============== ============================================================================
answer column  meaning
============== ============================================================================
``answer``         canonical option code the model chose (already mapped to the item's scale)
``answer_position`` 1-based position of the chosen option *as shown* (needs ``option_order``
                   when the options were not shown in canonical order)
``raw_text``       the raw completion; parsed by :func:`robustalign.parsing.parse_answer`
``prob_1..prob_K`` probability of each option *as shown*, position 1..K
``score``          an answer that is already a score in [0, 1] (e.g. a "pro" share)
============== ============================================================================

``option_order`` (optional) records the order in which the canonical options were shown, as codes
joined by ``|`` (``"4|3|2|1"``) or a list. It is a design factor too. A ``persona`` column (the
respondent id a row role-plays, empty when prompted without a persona; see :mod:`robustalign.persona`)
is kept and keys the cells, but it is never a design factor. Displayed positions are mapped
back to canonical options in exactly one place, :func:`_to_canonical`; nothing else inverts an order.

A *reference* table is long too: ``item``, ``group``, ``option``, ``share`` and optionally ``n``
(respondents; missing means unknown, and that is recorded). Item *scales* (options in order, their
labels, ordinal or nominal) come with it, as a table with ``item``, ``options`` (codes joined by
``|``), optional ``labels`` (joined by ``|``) and ``ordinal``.

Validation raises :class:`~robustalign.SchemaError` naming the column, rows or values, and the fix.
Nothing is dropped or recoded silently: every such row is counted in an :class:`ExclusionLog` that
travels with the data.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from robustalign._errors import SchemaError, preview

__all__ = [
    "ANSWER_KINDS",
    "ExclusionLog",
    "Reference",
    "Responses",
    "Scale",
    "make_reference",
    "make_responses",
    "make_scales",
]

#: Statuses of a parsed answer. Only ``valid`` answers enter alignment statistics.
STATUSES = ("valid", "refusal", "unparseable", "ambiguous")
ANSWER_KINDS = ("answer", "answer_position", "raw_text", "prob", "score")
_PROB_RE = re.compile(r"^prob_(\d+)$")
#: Column naming the respondent a response role-plays (robustalign.persona); kept, never a design factor.
PERSONA = "persona"
#: Columns robustalign adds to a responses table itself, and columns of its per-cell result tables that
#: design factors are joined to: a responses column with one of these names would be overwritten or
#: clash, so it is refused with the fix (rename).
RESERVED_COLUMNS = frozenset(
    {"row", "option", "status", "parse_rule", "n", "total", "_k", "group", "estimate", "conf_low", "conf_high",
     "conf_level", "method", "value", *(f"n_{s}" for s in STATUSES)}
)
_UNNAMED_RE = re.compile(r"^Unnamed: \d+")
SHARE_TOL = 5e-3  # shares that miss 1 by less than this are renormalised (and counted); more is an error


# --------------------------------------------------------------------------------------------------
# Exclusion log
# --------------------------------------------------------------------------------------------------
@dataclass
class ExclusionLog:
    """Every row that was dropped, recoded or excluded from analysis, counted with its reason."""

    entries: list[dict] = field(default_factory=list)

    def add(self, table: str, reason: str, rows: Sequence, action: str) -> None:
        rows = list(rows)
        if rows:
            self.entries.append(
                {"table": table, "reason": reason, "action": action, "n_rows": len(rows), "rows": rows}
            )

    def to_frame(self) -> pd.DataFrame:
        """One row per (table, reason, action) with the count and the first rows affected."""
        cols = ["table", "reason", "action", "n_rows", "example_rows"]
        if not self.entries:
            return pd.DataFrame(columns=cols)
        df = pd.DataFrame(self.entries)
        df["example_rows"] = df["rows"].map(lambda r: preview(r, 5))
        return df[cols].reset_index(drop=True)

    def total(self, table: str | None = None, action: str | None = None) -> int:
        return int(
            sum(
                e["n_rows"]
                for e in self.entries
                if (table is None or e["table"] == table) and (action is None or e["action"] == action)
            )
        )

    def merged(self, other: ExclusionLog) -> ExclusionLog:
        return ExclusionLog(self.entries + other.entries)

    def __len__(self) -> int:
        return len(self.entries)


# --------------------------------------------------------------------------------------------------
# Scales
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    """An item's answer scale: canonical option codes in order, their labels, ordinal or nominal."""

    options: tuple[str, ...]
    labels: tuple[str, ...]
    ordinal: bool

    def __post_init__(self):
        if len(self.options) < 2:
            raise SchemaError(f"A scale needs at least 2 options; got {self.options!r}. Give the option codes in "
                              "order joined by '|', e.g. 1|2|3|4.")
        if len(set(self.options)) != len(self.options):
            raise SchemaError(f"Scale options must be unique; got {self.options!r}.")
        if len(self.labels) != len(self.options):
            raise SchemaError(
                f"A scale has {len(self.options)} options but {len(self.labels)} labels "
                f"({self.labels!r}); give one label per option."
            )

    @property
    def K(self) -> int:  # noqa: N802 - K is the conventional name
        return len(self.options)

    def index(self, code: str) -> int:
        return self.options.index(code)


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [as_code(v) for v in value]
    return [s.strip() for s in str(value).split("|")]


def as_code(v: object) -> str:
    """Canonical string form of an option code (``1.0`` and ``1`` are the same code).

    Internal: shared with robustalign.persona."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def _as_bool(value, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    s = str(value).strip().lower()
    if s in {"true", "1", "yes", "ordinal"}:
        return True
    if s in {"false", "0", "no", "nominal"}:
        return False
    raise SchemaError(f"{where}: `ordinal` must be true/false; got {value!r}. Write true for ordered scales.")


def make_scales(table: pd.DataFrame | Mapping[str, Scale]) -> dict[str, Scale]:
    """Build item scales from a table with ``item``, ``options``, optional ``labels``, ``ordinal``."""
    if isinstance(table, Mapping):
        return dict(table)
    _require(table, ["item", "options", "ordinal"], "scales", fix="one row per item")
    check_table(table, "scales", ["item", "options", "ordinal"], lists=("options", "labels"))
    _no_nan(table, ["item", "options"], "scales")
    keys = table["item"].map(as_code)
    dup = keys[keys.duplicated()]
    if len(dup):
        raise SchemaError(
            f"scales: items appear more than once: {preview(dup.unique())} (rows {preview(dup.index)}). "
            "Give each item's scale once."
        )
    out = {}
    for i, r in table.iterrows():
        opts = _split(r["options"])
        labels = _split(r["labels"]) if "labels" in table and not is_missing(r["labels"]) else opts
        try:
            out[as_code(r["item"])] = Scale(tuple(opts), tuple(labels), _as_bool(r["ordinal"], f"scales row {i}"))
        except SchemaError as e:
            raise SchemaError(f"scales row {i} (item {r['item']!r}): {e}") from None
    return out


def is_missing(v: object) -> bool:
    """None, NaN or pd.NA. Internal: shared with robustalign.persona."""
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


# --------------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """Human answer shares per item x group, with respondent counts where known and item scales.

    Attributes
    ----------
    shares : DataFrame
        Long table ``item, group, option, share`` (every option of the scale present; absent options
        were filled with share 0 and counted).
    n : Series
        Respondents per (item, group); NaN where unknown.
    scales : dict
        Item -> :class:`Scale`.
    exclusions : ExclusionLog
    """

    shares: pd.DataFrame
    n: pd.Series
    scales: dict[str, Scale]
    exclusions: ExclusionLog = field(default_factory=ExclusionLog)

    @property
    def items(self) -> list[str]:
        return sorted(self.shares["item"].unique())

    @property
    def groups(self) -> list[str]:
        return sorted(self.shares["group"].unique())

    @property
    def n_known(self) -> bool:
        return bool(self.n.notna().all())

    def array(self, items: Sequence[str] | None = None, groups: Sequence[str] | None = None) -> np.ndarray:
        """Shares as an (items, groups, K_max) array in canonical order, NaN where a cell is absent.

        Options beyond an item's K are 0 (not NaN), so metrics can run on padded arrays.
        """
        items = list(self.items if items is None else items)
        groups = list(self.groups if groups is None else groups)
        # a group may be asked for more than once (several steering levels mapped to one group): fill
        # each distinct group once and index, so that every repeat gets the shares, not only the last
        uniq = list(dict.fromkeys(groups))
        kmax = max(self.scales[i].K for i in items)
        out = np.full((len(items), len(uniq), kmax), np.nan)
        ii = {k: j for j, k in enumerate(items)}
        gg = {k: j for j, k in enumerate(uniq)}
        # each share row's position among the items and groups asked for (-1: not asked for), by plain
        # dict look-ups: the table is small and asked for often, and pandas' isin/map cost more per call
        ix, gx = (np.fromiter((pos.get(v, -1) for v in self.shares[col].to_numpy(object)), np.intp,
                              len(self.shares)) for col, pos in (("item", ii), ("group", gg)))
        keep = (ix >= 0) & (gx >= 0)
        ix, gx = ix[keep], gx[keep]
        kx = self.shares["_k"].to_numpy(np.intp)[keep]
        out[ix, gx, :] = 0.0  # present cells: options beyond the item's K stay 0
        out[ix, gx, kx] = self.shares["share"].to_numpy(float)[keep]
        return out if len(uniq) == len(groups) else out[:, [gg[g] for g in groups], :]

    def n_array(self, items: Sequence[str] | None = None, groups: Sequence[str] | None = None) -> np.ndarray:
        """Respondent counts as an (items, groups) array, NaN where unknown or absent."""
        items = list(self.items if items is None else items)
        groups = list(self.groups if groups is None else groups)
        return self.n.reindex(pd.MultiIndex.from_product([items, groups])).to_numpy(float).reshape(
            len(items), len(groups)
        )

    def K(self, items: Sequence[str]) -> np.ndarray:  # noqa: N802
        return np.array([self.scales[i].K for i in items])

    def ordinal(self, items: Sequence[str]) -> np.ndarray:
        return np.array([self.scales[i].ordinal for i in items])

    def subset(self, items: str | Sequence[str] | None = None, groups: str | Sequence[str] | None = None, *,
               group: str | Sequence[str] | None = None) -> Reference:
        """The shares of some items and/or groups (``group=`` is the same as ``groups=``, e.g.
        ``ref.subset(group="IN")``); names not in the reference raise with the valid ones."""
        if group is not None:
            if groups is not None:
                raise ValueError("subset: give the groups once, as `groups=` or `group=`, not both.")
            groups = group
        s = self.shares
        for col, want in (("item", items), ("group", groups)):
            if want is None:
                continue
            want = [want] if isinstance(want, str) else list(want)
            have = set(s[col].unique())
            unknown = [w for w in want if w not in have]
            if unknown:
                raise SchemaError(f"subset: {col}s {preview(unknown)} are not in the reference; it has "
                                  f"{preview(sorted(have), 20)}. Pick from these.")
            s = s[s[col].isin(want)]
        keep = pd.MultiIndex.from_frame(s[["item", "group"]].drop_duplicates())
        return Reference(s.reset_index(drop=True), self.n.reindex(keep), self.scales, self.exclusions)

    def data_hash(self) -> str:
        return _hash_frame(self.shares[["item", "group", "option", "share"]])

    def __repr__(self) -> str:
        known = int(self.n.notna().sum())
        return (
            f"Reference({len(self.items)} items x {len(self.groups)} groups, "
            f"respondent counts known for {known}/{len(self.n)} cells, {len(self.exclusions)} exclusion entries)"
        )


def make_reference(
    shares: pd.DataFrame,
    scales: pd.DataFrame | Mapping[str, Scale] | None = None,
    *,
    group_col: str = "group",
    share_tol: float = SHARE_TOL,
) -> Reference:
    """Validate a long human-reference table and return a :class:`Reference`.

    Parameters
    ----------
    shares : DataFrame
        Columns ``item``, ``group`` (or ``group_col``, e.g. ``country``), ``option``, ``share`` and
        optionally ``n`` (respondents per item x group; NaN = unknown).
    scales : DataFrame or mapping, optional
        Item scales (see :func:`make_scales`). Without it, each item's options are the codes seen in
        ``shares`` (sorted numerically when they are numbers) and ``shares`` must carry an ``ordinal``
        column.
    share_tol : float
        Shares of an item x group that miss 1 by at most this are renormalised (rounding in published
        tables); each renormalised cell is counted in the exclusion log as recoded.
    """
    log = ExclusionLog()
    df = _reference_columns(shares.copy(), group_col)
    _require(df, ["item", "group", "option", "share"], "reference", fix="one row per item x group x option")
    check_table(df, "reference", ["item", "group", "option", "share"])
    _no_nan(df, ["item", "group", "option", "share"], "reference")
    df["item"] = df["item"].map(as_code)
    df["group"] = df["group"].astype(str)
    df["option"] = df["option"].map(as_code)
    df["share"] = pd.to_numeric(df["share"], errors="coerce")
    bad = df.index[df["share"].isna() | (df["share"] < 0) | (df["share"] > 1 + share_tol)]
    if len(bad):
        raise SchemaError(
            f"reference: column `share` must be a number in [0, 1]; rows {preview(bad)} have "
            f"{preview(shares.loc[bad, 'share'])}. Give shares as proportions, not percentages."
        )
    dup = df.duplicated(["item", "group", "option"], keep=False)
    if dup.any():
        raise SchemaError(
            f"reference: duplicate rows for the same item x group x option at rows {preview(df.index[dup])} "
            f"(e.g. {df.loc[dup, ['item', 'group', 'option']].iloc[0].to_dict()}). Keep one row per key."
        )
    scales_d = _reference_scales(df, scales)
    df["_k"] = [scales_d[i].index(o) for i, o in zip(df["item"], df["option"])]
    n = _respondent_counts(df)
    df = _renormalise_shares(df, share_tol, log)
    df = _fill_absent_options(df, scales_d, log)
    out = df[["item", "group", "option", "share", "_k"]].sort_values(["item", "group", "_k"]).reset_index(drop=True)
    _log_absent_cells(out, log)
    return Reference(out, n.sort_index(), scales_d, log)


def _reference_columns(df: pd.DataFrame, group_col: str) -> pd.DataFrame:
    """The reference table with its group column named ``group`` (never overwriting one)."""
    if group_col == "group":
        return df
    if group_col not in df:
        raise SchemaError(f"reference: `group_col={group_col!r}` is not a column; found {list(df.columns)}. "
                          "Name the column that holds the human groups (`--group-col`).")
    if "group" in df:
        raise SchemaError(f"reference: has both a `group` column and the group column {group_col!r}; one would "
                          "overwrite the other. Drop or rename `group`, or use it (omit `--group-col`).")
    return df.rename(columns={group_col: "group"})


def _reference_scales(df: pd.DataFrame, scales: pd.DataFrame | Mapping[str, Scale] | None) -> dict[str, Scale]:
    """The item scales (given, or inferred from the options seen and an ``ordinal`` column), checked
    to cover every item and option of the reference."""
    if scales is None:
        if "ordinal" not in df:
            raise SchemaError(
                "reference: no item scales given and no `ordinal` column to infer them from. Give the item scales "
                "(`--scales FILE` on the command line, `scales=` in Python; columns item, options, labels, "
                "ordinal) or add an `ordinal` column."
            )
        rows = []
        for item, g in df.groupby("item", sort=False):
            opts = sorted(g["option"].unique(), key=sort_key)
            rows.append({"item": item, "options": opts, "ordinal": g["ordinal"].iloc[0]})
        scales_d = make_scales(pd.DataFrame(rows))
    else:
        scales_d = make_scales(scales)
    missing = sorted(set(df["item"]) - set(scales_d))
    if missing:
        raise SchemaError(
            f"reference: items {preview(missing)} have shares but no scale (item ids are compared after stripping "
            f"spaces; scales has {preview(sorted(scales_d), 3)}). Add them to the scales file (`--scales`)."
        )
    opt_ok = np.array([o in scales_d[i].options for i, o in zip(df["item"], df["option"])], dtype=bool)
    if not opt_ok.all():
        bad = df.index[~opt_ok]
        ex = df.loc[bad[0]]
        raise SchemaError(
            f"reference: column `option` has values outside the item's scale at rows {preview(bad)}; "
            f"e.g. item {ex['item']!r} option {ex['option']!r} not in {scales_d[ex['item']].options}. "
            "Recode the option or fix the scale."
        )
    return scales_d


def _respondent_counts(df: pd.DataFrame) -> pd.Series:
    """Respondents per item x group (NaN = unknown, which is allowed); codes ``df['n']`` in place."""
    if "n" in df:
        nn = pd.to_numeric(df["n"], errors="coerce")
        if ((nn < 0) | (df["n"].notna() & nn.isna())).any():
            bad = df.index[(nn < 0) | (df["n"].notna() & nn.isna())]
            raise SchemaError(f"reference: column `n` must be a non-negative count or empty; rows {preview(bad)}. "
                              "Give respondent counts as whole numbers, or leave them empty when unknown.")
        df["n"] = nn
        nonconst = df.groupby(["item", "group"])["n"].nunique(dropna=False) > 1
        if nonconst.any():
            raise SchemaError(
                f"reference: `n` differs between the options of one item x group: {preview(nonconst.index[nonconst])}. "
                "Give the respondent count of the item x group on every option row."
            )
        n = df.groupby(["item", "group"])["n"].first()
    else:
        n = pd.Series(np.nan, index=pd.MultiIndex.from_frame(df[["item", "group"]].drop_duplicates()))
    n.index.names = ["item", "group"]
    return n


def _renormalise_shares(df: pd.DataFrame, share_tol: float, log: ExclusionLog) -> pd.DataFrame:
    """Shares sum to 1 in each item x group: within ``share_tol`` they are renormalised (and counted)."""
    tot = df.groupby(["item", "group"])["share"].sum()
    off = (tot - 1).abs()
    bad = off[off > share_tol]
    if len(bad):
        raise SchemaError(
            f"reference: shares must sum to 1 within each item x group; {len(bad)} cells do not, e.g. "
            f"{preview([f'{i}/{g}: {tot[(i, g)]:.4f}' for i, g in bad.index[:5]])}. Check for missing "
            "options or percentages."
        )
    renorm = off[(off > 1e-12)]
    if len(renorm):
        df["share"] = df["share"] / df.groupby(["item", "group"])["share"].transform("sum")
        rows = df.index[df.set_index(["item", "group"]).index.isin(renorm.index)]
        log.add("reference", f"shares summed to 1 +/- {share_tol} and were renormalised", rows, "recoded")
    return df


def _fill_absent_options(df: pd.DataFrame, scales_d: Mapping[str, Scale], log: ExclusionLog) -> pd.DataFrame:
    """Options absent from an item x group cell get share 0 (counted as recoded)."""
    full = []
    for (item, group), g in df.groupby(["item", "group"], sort=False):
        have = set(g["option"])
        for k, o in enumerate(scales_d[item].options):
            if o not in have:
                full.append({"item": item, "group": group, "option": o, "share": 0.0, "_k": k})
    if full:
        log.add("reference", "option absent from an item x group; share set to 0", range(len(full)), "recoded")
        df = pd.concat([df, pd.DataFrame(full)], ignore_index=True)
    return df


def _log_absent_cells(shares: pd.DataFrame, log: ExclusionLog) -> None:
    """Count item x group cells without shares: that group's statistics use the items it has."""
    have = pd.MultiIndex.from_frame(shares[["item", "group"]].drop_duplicates())
    items, groups = have.levels[0], have.levels[1]
    if len(have) == len(items) * len(groups):
        return
    full = pd.MultiIndex.from_product([items, groups])
    absent = full.difference(have)
    log.add("reference", "item x group cell absent (no shares): statistics of that group use only the items "
            "it has", [f"{i}/{g}" for i, g in absent], "absent")


# --------------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------------
@dataclass
class Responses:
    """Canonical responses: one row per stored answer, mapped to canonical options.

    Attributes
    ----------
    data : DataFrame
        ``row`` (0-based row of the input), ``model``, ``item``, the design factors, and the answer in
        canonical form: ``option`` (code or NA), ``status`` and ``parse_rule`` for choices;
        ``prob_1..prob_K`` in canonical order for probabilities; ``score`` for scores.
    factors : tuple of str
        Design factor columns (e.g. format, option_order, template, language, steer_target, sample).
    kind : {"choice", "prob", "score"}
    exclusions : ExclusionLog
    """

    data: pd.DataFrame
    factors: tuple[str, ...]
    kind: str
    scales: dict[str, Scale]
    exclusions: ExclusionLog = field(default_factory=ExclusionLog)

    @property
    def models(self) -> list[str]:
        return sorted(self.data["model"].unique())

    @property
    def items(self) -> list[str]:
        return sorted(self.data["item"].unique())

    def levels(self, factor: str) -> list:
        return sorted(self.data[factor].unique(), key=sort_key)

    def subset(self, items: Sequence[str] | None = None, models: Sequence[str] | None = None,
               **levels: object) -> Responses:
        """The rows of some items, models and/or levels of design factors.

        ``resp.subset(language="hi")``, ``resp.subset(country=["IN", "US"], models=["m1"])``: each keyword
        names a design factor (:attr:`factors`) and one level or a list of levels; a level matches by value
        or by its text (``paraphrase="2"`` selects the level 2). Input row numbers (``row``), the factors and
        the exclusion log are kept; names or levels not in the data raise with the valid ones.
        """
        keep = np.ones(len(self.data), bool)
        for col, want in (("item", items), ("model", models)):
            if want is None:
                continue
            want = [want] if isinstance(want, str) else list(want)
            unknown = sorted(set(want) - set(self.data[col].unique()))
            if unknown:
                raise SchemaError(f"subset: {col}s {unknown[:5]} are not in the responses; "
                                  f"they have {len(self.data[col].unique())} {col}s, e.g. {sorted(self.data[col].unique())[:5]}.")
            keep &= self.data[col].isin(want).to_numpy()
        for factor, level in levels.items():
            keep &= self._level_mask(factor, level)
        return Responses(self.data[keep].reset_index(drop=True), self.factors, self.kind, self.scales, self.exclusions)

    def _level_mask(self, factor: str, want) -> np.ndarray:
        """Rows whose ``factor`` is one of the levels ``want`` (compared once per distinct level)."""
        if factor not in self.factors:
            raise SchemaError(f"subset: {factor!r} is not a design factor of the responses; the factors are "
                              f"{list(self.factors)} (items and models: `items=`, `models=`).")
        want = [want] if isinstance(want, (str, int, float, np.integer, np.floating)) else list(want)
        codes, uniq = pd.factorize(self.data[factor])
        text = [as_code(u) for u in uniq]
        hit = np.zeros(len(uniq) + 1, bool)  # the last slot stays False (codes of missing values are -1)
        for w in want:
            match = [j for j, u in enumerate(uniq) if u == w or text[j] == as_code(w)]
            if not match:
                valid = sorted(map(str, uniq), key=sort_key)
                raise SchemaError(f"subset: level {w!r} of factor {factor!r} is not in the responses; its levels "
                                  f"are {preview(valid, 20)}. Pick one of these (e.g. `{factor}={valid[0]!r}`).")
            hit[match] = True
        return hit[codes]

    def valid(self) -> pd.DataFrame:
        """Rows that enter alignment statistics (status ``valid``)."""
        if "status" in self.data:
            return self.data[self.data["status"] == "valid"]
        return self.data

    def status_counts(self, by: Sequence[str] = ("model",)) -> pd.DataFrame:
        """Counts of every status per cell of ``by``; valid + each exclusion reason = total."""
        if "status" not in self.data:
            out = self.data.groupby(list(by)).size().rename("valid").to_frame()
        else:
            out = self.data.groupby([*by, "status"]).size().unstack("status", fill_value=0)
        for s in STATUSES:
            if s not in out:
                out[s] = 0
        out = out[list(STATUSES)]
        out["total"] = out.sum(axis=1)
        return out

    def distributions(self, by: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """Answer distributions per cell of ``by`` (must include ``item``), canonical order.

        Returns the cell keys (with ``n`` = number of valid answers) and an array (cells, K_max) of
        proportions: counts of choices, or the mean of per-row probabilities, or for scores the
        two-option distribution (1 - mean score, mean score).
        """
        by = list(by)
        if "item" not in by:
            raise ValueError("`by` must include 'item': distributions are per item.")
        v = self.valid()
        if self.kind == "score":
            kmax = 2
        else:
            kmax = max((self.scales[i].K for i in v["item"].unique()), default=0)
        if len(v) == 0:  # no valid answer at all: no cells
            return pd.DataFrame(columns=[*by, "n"]), np.zeros((0, max(kmax, 2)))
        if self.kind == "choice":
            inv, first = _pair_codes(v["item"], v["option"])  # each distinct item x option looked up once
            pairs = zip(v["item"].iloc[first].to_numpy(), v["option"].iloc[first].to_numpy())
            kidx = np.array([self.scales[i].index(o) for i, o in pairs], dtype=int)[inv]
            codes, keys = _group_codes(v, by)
            counts = np.zeros((len(keys), kmax))
            np.add.at(counts, (codes, kidx), 1.0)
            n: np.ndarray = counts.sum(1)
            keys["n"] = n.astype(int)
            return keys, counts / n[:, None]
        if self.kind == "prob":
            cols = [f"prob_{j + 1}" for j in range(kmax)]
            p = v.reindex(columns=cols).fillna(0.0).to_numpy(float)
            codes, keys = _group_codes(v, by)
            sums = np.zeros((len(keys), kmax))
            np.add.at(sums, codes, p)
            n = np.bincount(codes, minlength=len(keys))
            keys["n"] = n
            return keys, sums / n[:, None]
        codes, keys = _group_codes(v, by)
        s = np.bincount(codes, weights=v["score"].to_numpy(float), minlength=len(keys))
        n = np.bincount(codes, minlength=len(keys))
        keys["n"] = n
        m = s / n
        return keys, np.column_stack([1 - m, m])

    def data_hash(self) -> str:
        return _hash_frame(self.data.drop(columns=["row"], errors="ignore"))

    def __repr__(self) -> str:
        return (
            f"Responses(kind={self.kind!r}, {len(self.data)} rows, {len(self.models)} models, "
            f"{len(self.items)} items, factors={list(self.factors)}, "
            f"{self.exclusions.total()} rows in the exclusion log)"
        )


def make_responses(
    responses: pd.DataFrame,
    reference: Reference | None = None,
    *,
    scales: Mapping[str, Scale] | None = None,
    factors: Sequence[str] | None = None,
    drop_unreferenced: bool = False,
    share_tol: float = SHARE_TOL,
    allow_missing: bool = False,
    order_column: str | None = None,
    order_map: Mapping | None = None,
) -> Responses:
    """Validate a long responses table and map every answer to its canonical option.

    Parameters
    ----------
    responses : DataFrame
        See the module docstring for the columns.
    reference : Reference, optional
        Supplies item scales and the list of referenced items. Every response item must have a
        reference unless ``drop_unreferenced=True`` (then the rows are dropped and counted).
    scales : mapping, optional
        Item scales when no reference is given.
    factors : list of str, optional
        Design factor columns. Default: every column that is not ``model``, ``item`` or an answer.
        ``option_order`` is always a factor when present.
    allow_missing : bool
        Accept rows whose answer is empty (NaN): the model gave none, or it could not be parsed
        upstream. They are dropped and counted in the exclusion log as "missing answer"; without this,
        an empty answer is an error. (An empty ``raw_text`` is kept and counted as unparseable.)

    Column names robustalign uses itself (:data:`RESERVED_COLUMNS`: ``row``, ``option``, ``status``,
    ``parse_rule``, ``n``, ``group``, ``estimate``, ...) are refused: rename them.
    order_column, order_map : optional
        Orders given as labels: ``order_column`` names a column of labels (e.g. ``"original"`` /
        ``"reversed"``) and ``order_map`` maps each label to the order shown, either ``"identity"``,
        ``"reverse"`` or a mapping from the number of options K to a permutation of 1..K (canonical
        positions in the order shown, e.g. ``{4: [4, 3, 2, 1], 5: [5, 4, 3, 2, 1]}``). The label column is
        one design factor whatever the items' sizes; ``option_order`` is derived from it (and is not a
        factor), so that shown positions are mapped to canonical options as usual.
    """
    log = ExclusionLog()
    df = responses.reset_index(drop=True).copy()
    _require(df, ["model", "item"], "responses", fix="one row per stored answer")
    check_table(df, "responses", ["model", "item"])
    _refuse_reserved(df)
    kind_in, answer_cols = _answer_kind(df)
    if scales is None:
        if reference is None and kind_in != "score":
            raise SchemaError("responses: pass `reference=` (or `scales=`) so answers can be mapped to options.")
        scales = reference.scales if reference is not None else {}
    scales = dict(scales)
    if order_column is not None and order_column not in df:
        raise SchemaError(f"responses: the order label column {order_column!r} is not a column; found "
                          f"{list(df.columns)}. Name the column that records the order shown.")
    df, factors = _select_factors(df, factors, answer_cols, order_column)
    df = _code_labels(df, factors, order_column, order_map)
    df.insert(0, "row", np.arange(len(df)))
    df = _drop_missing_answers(df, kind_in, answer_cols, allow_missing, log)
    if order_column is not None and kind_in != "score":
        df["option_order"] = _orders_from_labels(df, order_column, order_map, scales)
    if kind_in != "score" or reference is not None:
        known = set(reference.items) if reference is not None else set(scales)
        df = _drop_unreferenced(df, known, drop_unreferenced, log)
    _refuse_duplicate_cells(df, factors)
    if "option_order" in df:
        _check_option_orders(df, scales)
    if kind_in == "score":
        df["score"] = _checked_scores(df)
        return Responses(df, tuple(factors), "score", scales, log)
    out = _to_canonical(df, kind_in, answer_cols, scales, log, share_tol)
    kind = "prob" if kind_in == "prob" else "choice"
    return Responses(out, tuple(factors), kind, scales, log)


def _answer_kind(df: pd.DataFrame) -> tuple[str, list[str]]:
    """The one kind of answer a responses table carries, and its columns."""
    kind_cols = _answer_columns(df)
    if not kind_cols:
        raise SchemaError(
            "responses: no answer column. Give one of `answer` (canonical option), `answer_position` "
            "(1-based position as shown), `raw_text` (completion to parse), `prob_1..prob_K` (option "
            f"probabilities as shown) or `score` (in [0, 1]); found {list(df.columns)}."
        )
    if len(kind_cols) > 1:
        raise SchemaError(
            f"responses: more than one kind of answer column: {sorted(kind_cols)}. Keep exactly one "
            "(rename or drop the others), so that it is clear which answer is analysed."
        )
    (kind_in,) = kind_cols
    answer_cols = [c for c in df if _PROB_RE.match(c)] if kind_in == "prob" else [kind_in]
    _no_nested(df, answer_cols, "responses")
    return kind_in, answer_cols


def _select_factors(df: pd.DataFrame, factors: Sequence[str] | None, answer_cols: list[str],
                    order_column: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The design factors (given, or every other column) and the table without unlisted columns."""
    if factors is None:
        return df, [c for c in df.columns if c not in ("model", "item", "row", PERSONA) and c not in answer_cols]
    factors = list(factors)
    absent = [f for f in factors if f not in df]
    if absent:
        raise SchemaError(f"responses: factors {absent} are not columns; found {list(df.columns)}.")
    if "option_order" in df and "option_order" not in factors:
        factors.append("option_order")
    if order_column is not None and order_column in df and order_column not in factors:
        factors.append(order_column)
    # a `persona` column the caller lists as a factor stays one (e.g. steering personas); unlisted, it
    # names the respondent a row role-plays (persona experiments) and keys the cells
    extra = [c for c in df.columns if c not in (*factors, "model", "item", PERSONA, *answer_cols)]
    return df.drop(columns=extra), factors


def _code_labels(df: pd.DataFrame, factors: list[str], order_column: str | None,
                 order_map: Mapping | None) -> pd.DataFrame:
    """Check the label columns (no gaps, no nesting) and code model, item, persona and option_order."""
    _no_nan(df, ["model", "item", *factors], "responses")
    _no_nested(df, ["model", "item", *[f for f in factors if f != "option_order"]], "responses")
    df["model"] = df["model"].astype(str)
    df["item"] = _map_unique(df["item"], as_code)
    if PERSONA in df and PERSONA not in factors:  # the respondent a row role-plays (empty: no persona)
        _no_nested(df, [PERSONA], "responses")
        df[PERSONA] = _map_unique(df[PERSONA], lambda v: None if is_missing(v) else as_code(v)).astype(object)
    if (order_column is None) != (order_map is None):
        raise SchemaError("responses: orders given as labels need both `order_column` (the column of labels) and "
                          "`order_map` (label -> order shown); got only one of them.")
    if "option_order" in df:
        df["option_order"] = _map_unique(df["option_order"], lambda v: "|".join(_split(v)))
    return df


def _drop_unreferenced(df: pd.DataFrame, known: set, drop_unreferenced: bool, log: ExclusionLog) -> pd.DataFrame:
    """Rows of items without a reference (or scale): an error, or dropped and counted."""
    unref = ~df["item"].isin(known)
    if not unref.any():
        return df
    items = sorted(df.loc[unref, "item"].unique())
    if not drop_unreferenced:
        raise SchemaError(
            f"responses: items {preview(items)} ({int(unref.sum())} rows, e.g. rows "
            f"{preview(df.index[unref])}) have no human reference. Add them to the reference, or pass "
            "`drop_unreferenced=True` to drop these rows (they are counted in the exclusion log)."
        )
    log.add("responses", "item has no human reference", df.loc[unref, "row"], "dropped")
    return df[~unref].reset_index(drop=True)


def _refuse_duplicate_cells(df: pd.DataFrame, factors: list[str]) -> None:
    """The same model x item x design cell (x persona) may appear once."""
    key = ["model", "item", *factors, *([PERSONA] if PERSONA in df and PERSONA not in factors else [])]
    dup = df.duplicated(key, keep=False)
    if dup.any():
        ex = df.loc[dup, key].iloc[0].to_dict()
        raise SchemaError(
            f"responses: {int(dup.sum())} rows repeat the same model x item x design cell (rows "
            f"{preview(df.loc[dup, 'row'])}, e.g. {ex}). If they are repeated samples, add a `sample` "
            "column that numbers them; otherwise remove the duplicates."
        )


def _check_option_orders(df: pd.DataFrame, scales: Mapping[str, Scale]) -> None:
    """Every ``option_order`` is a permutation of its item's scale."""
    inv, first = _pair_codes(df["item"], df["option_order"])
    pairs = zip(df["item"].iloc[first].to_numpy(), df["option_order"].iloc[first].to_numpy())
    ok = np.array([sorted(o.split("|")) == sorted(scales[i].options) for i, o in pairs], dtype=bool)[inv]
    if not ok.all():
        bad = df.index[~ok]
        r = df.loc[bad[0]]
        raise SchemaError(
            f"responses: column `option_order` is not a permutation of the item's options at rows "
            f"{preview(df.loc[bad, 'row'])}; e.g. item {r['item']!r} shows {r['option_order']!r} but its "
            f"scale is {'|'.join(scales[r['item']].options)!r}. Record the codes in the order shown."
        )


def _checked_scores(df: pd.DataFrame) -> pd.Series:
    """The ``score`` column as floats in [0, 1]; anything else is an error."""
    s = pd.to_numeric(df["score"], errors="coerce")
    bad = df.index[s.isna() | (s < 0) | (s > 1)]
    if len(bad):
        raise SchemaError(
            f"responses: column `score` must be a number in [0, 1]; rows {preview(df.loc[bad, 'row'])} have "
            f"{preview(df.loc[bad, 'score'])}. Rescale scores to [0, 1]; missing answers are not imputed."
        )
    return s.astype(float)


def _order_perm(label, spec, K, where):
    if isinstance(spec, str):
        if spec not in ("identity", "reverse"):
            raise SchemaError(f"{where}: label {label!r} maps to {spec!r}; use 'identity', 'reverse' or a table "
                              "from the number of options K to a permutation of 1..K.")
        return list(range(1, K + 1)) if spec == "identity" else list(range(K, 0, -1))
    if not isinstance(spec, Mapping):
        raise SchemaError(f"{where}: label {label!r} maps to {spec!r}; use 'identity', 'reverse' or a table from "
                          "the number of options K to a permutation of 1..K.")
    perm = spec.get(K, spec.get(str(K)))
    if perm is None:
        raise SchemaError(f"{where}: label {label!r} has no permutation for items with {K} options (it has K = "
                          f"{sorted(map(str, spec))}). Add `{K} = [...]` to its entry.")
    try:
        perm = [int(p) for p in perm]
    except (TypeError, ValueError):
        perm = None
    if perm is None or sorted(perm) != list(range(1, K + 1)):
        raise SchemaError(f"{where}: label {label!r} for K = {K} must be a permutation of 1..{K} (canonical "
                          f"positions in the order shown); got {spec.get(K, spec.get(str(K)))!r}.")
    return perm


def _orders_from_labels(df, column, order_map, scales) -> list[str]:
    """``option_order`` codes for every row from an order label and a label -> permutation map."""
    where = f"responses: column `{column}` (order labels)"
    if column not in df:
        raise SchemaError(f"{where} is not a column; found {list(df.columns)}. Name the column of order labels.")
    if "option_order" in df:
        raise SchemaError(f"{where}: the responses also have `option_order`; give the order either as codes "
                          "(`option_order`) or as labels with a map, not both.")
    if not isinstance(order_map, Mapping) or not order_map:
        raise SchemaError(f"{where}: `order_map` must map each label to 'identity', 'reverse' or a table K -> "
                          f"permutation; got {order_map!r}.")
    labels = df[column].astype(str)
    unknown = sorted(set(labels) - set(map(str, order_map)))
    if unknown:
        rows = df.loc[labels.isin(unknown), "row"]
        raise SchemaError(f"{where}: labels {preview(unknown)} (rows {preview(rows)}) are not in the order map, which "
                          f"has {sorted(map(str, order_map))}. Add them to the map.")
    spec = {str(k): v for k, v in order_map.items()}
    missing = sorted(set(df["item"]) - set(scales))
    if missing:
        raise SchemaError(f"{where}: items {preview(missing)} have no scale, so their number of options is unknown. "
                          "Give their scales.")
    inv, first = _pair_codes(df["item"], labels)
    out = []
    for item, lab in zip(df["item"].iloc[first].to_numpy(), labels.iloc[first].to_numpy()):
        sc = scales[item]
        out.append("|".join(sc.options[p - 1] for p in _order_perm(lab, spec[lab], sc.K, where)))
    return np.array(out, dtype=object)[inv].tolist()


def _to_canonical(df: pd.DataFrame, kind_in: str, answer_cols: list[str], scales: Mapping[str, Scale],
                  log: ExclusionLog, share_tol: float) -> pd.DataFrame:
    """The one place where shown positions become canonical options."""
    # the order shown depends on the item and option_order only: work once per distinct pair
    inv, first = _pair_codes(df["item"], df["option_order"] if "option_order" in df else np.zeros(len(df)))
    first_items = df["item"].iloc[first].to_numpy()
    shown_u = (
        [o.split("|") for o in df["option_order"].iloc[first].to_numpy()]
        if "option_order" in df
        else [list(scales[i].options) for i in first_items]
    )
    if kind_in == "answer":
        _canonical_answers(df, scales)
    elif kind_in == "answer_position":
        _canonical_positions(df, inv, shown_u)
    elif kind_in == "raw_text":
        _canonical_texts(df, inv, first_items, shown_u, scales, log)
    else:  # probabilities over shown positions
        return _canonical_probs(df, answer_cols, inv, first_items, shown_u, scales, log, share_tol)
    return df.drop(columns=answer_cols)


def _canonical_answers(df: pd.DataFrame, scales: Mapping[str, Scale]) -> None:
    """``answer`` holds canonical codes already: check them against the scale (adds option, status)."""
    codes = _map_unique(df["answer"], lambda v: None if is_missing(v) else as_code(v))
    na = codes.isna()
    if na.any():
        raise SchemaError(
            f"responses: column `answer` is empty at rows {preview(df.loc[na, 'row'])}. Missing answers are "
            "not imputed: give the raw text in `raw_text`, or mark refusals with an answer column "
            "`raw_text` so they are parsed and counted."
        )
    ci, cf = _pair_codes(df["item"], codes)
    pairs = zip(df["item"].iloc[cf].to_numpy(), codes.iloc[cf].to_numpy())
    ok = np.array([c in scales[i].options for i, c in pairs], dtype=bool)[ci]
    if not ok.all():
        bad = df.index[~ok]
        r = df.loc[bad[0]]
        raise SchemaError(
            f"responses: column `answer` has values outside the item's scale at rows "
            f"{preview(df.loc[bad, 'row'])}: e.g. item {r['item']!r} answer {codes[bad[0]]!r} not in "
            f"{scales[r['item']].options}. Map answers to the scale's codes (or use `answer_position` for "
            "positions as shown)."
        )
    df["option"] = codes.astype(object)
    df["status"] = "valid"
    df["parse_rule"] = "given"


def _canonical_positions(df: pd.DataFrame, inv: np.ndarray, shown_u: list[list[str]]) -> None:
    """``answer_position`` (1-based, as shown) to the canonical option (adds option, status)."""
    pos = pd.to_numeric(df["answer_position"], errors="coerce")
    k = np.array([len(s) for s in shown_u])[inv]
    bad = df.index[pos.isna() | (pos < 1) | (pos > k) | (pos % 1 != 0)]
    if len(bad):
        raise SchemaError(
            f"responses: column `answer_position` must be a whole number from 1 to the item's number of "
            f"options; rows {preview(df.loc[bad, 'row'])} have {preview(df.loc[bad, 'answer_position'])}. Give the "
            "1-based position of the chosen option as shown (or use `answer` for canonical codes)."
        )
    pi, pf = _pair_codes(inv, pos.to_numpy(int))
    df["option"] = np.array([shown_u[inv[r]][int(pos.iloc[r]) - 1] for r in pf], dtype=object)[pi].tolist()
    df["status"] = "valid"
    df["parse_rule"] = "position"


def _canonical_texts(df: pd.DataFrame, inv: np.ndarray, first_items: np.ndarray, shown_u: list[list[str]],
                     scales: Mapping[str, Scale], log: ExclusionLog) -> None:
    """Parse ``raw_text`` against the labels as shown (adds option, status, parse_rule; counts non-valid)."""
    from robustalign.parsing import PARSER_VERSION, parse_answer

    options, statuses, rules = [], [], []
    texts = _map_unique(df["raw_text"], lambda t: "" if is_missing(t) else str(t))
    ti, tf = _pair_codes(inv, texts)  # each distinct (item, order shown, text) is parsed once
    for r in tf:
        item, s_ = first_items[inv[r]], shown_u[inv[r]]
        labels = [scales[item].labels[scales[item].index(c)] for c in s_]
        res = parse_answer(texts.iloc[r], labels)
        options.append(s_[res.position] if res.position is not None else None)
        statuses.append(res.status)
        rules.append(res.rule)
    df["option"] = np.array(options, dtype=object)[ti].tolist()
    df["status"] = np.array(statuses, dtype=object)[ti].tolist()
    df["parse_rule"] = np.array(rules, dtype=object)[ti].tolist()
    df.attrs["parser_version"] = PARSER_VERSION
    for st in STATUSES[1:]:
        log.add("responses", f"answer status '{st}' (kept, excluded from alignment)",
                df.loc[df["status"] == st, "row"], "excluded")


def _canonical_probs(df: pd.DataFrame, answer_cols: list[str], inv: np.ndarray, first_items: np.ndarray,
                     shown_u: list[list[str]], scales: Mapping[str, Scale], log: ExclusionLog,
                     share_tol: float) -> pd.DataFrame:
    """``prob_j`` over positions as shown to ``prob_k`` over canonical options (renormalised, counted)."""
    p = df[answer_cols].apply(pd.to_numeric, errors="coerce")
    ks = np.array([len(s) for s in shown_u])[inv]
    jj = np.array([int(m.group(1)) for m in map(_PROB_RE.match, answer_cols) if m is not None])
    _check_prob_columns(df, p, jj, ks)
    P = np.zeros((len(df), max(ks.max(), jj.max())))
    P[:, jj - 1] = p.to_numpy(float)
    within = jj[None, :] <= ks[:, None]
    nan_in = (np.isnan(p.to_numpy(float)) & within).any(1)
    extra = (~np.isnan(p.to_numpy(float)) & (p.to_numpy(float) != 0) & ~within).any(1)
    neg = (np.nan_to_num(P) < 0).any(1)
    bad = df.index[nan_in | neg | extra]
    if len(bad):
        raise SchemaError(
            f"responses: `prob_*` columns must be non-negative numbers for options 1..K of the item and "
            f"empty/0 beyond K; rows {preview(df.loc[bad, 'row'])} break this. Give each row the probabilities of its "
            f"item's own options (0 or empty beyond K); missing probabilities are not imputed."
        )
    P = np.nan_to_num(P)[:, : ks.max()]
    tot = P.sum(1)
    off = np.abs(tot - 1)
    bad = df.index[off > share_tol]
    if len(bad):
        raise SchemaError(
            f"responses: option probabilities must sum to 1; rows {preview(df.loc[bad, 'row'])} sum to "
            f"{preview(np.round(tot[bad], 4))}. Renormalise over the options (and say so) before loading."
        )
    rn = off > 1e-12
    if rn.any():
        log.add("responses", f"probabilities summed to 1 +/- {share_tol} and were renormalised",
                df.loc[rn, "row"], "recoded")
        P = P / tot[:, None]
    C = np.zeros_like(P)
    rows_of = pd.Series(np.arange(len(inv))).groupby(inv).indices
    for u, (item, s_) in enumerate(zip(first_items, shown_u)):
        r = rows_of[u]
        C[np.ix_(r, [scales[item].index(c) for c in s_])] = P[r, : len(s_)]
    df = df.drop(columns=answer_cols)
    for j in range(C.shape[1]):
        df[f"prob_{j + 1}"] = C[:, j]
    df["status"] = "valid"
    return df


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _check_prob_columns(df, p, jj, ks) -> None:
    """Every position 1..K of every item has a ``prob_j`` column; text in them is named."""
    need = set(range(1, int(ks.max()) + 1))
    absent = sorted(need - set(jj.tolist()))
    if absent:
        rows = df.loc[ks >= absent[0], "row"]
        raise SchemaError(
            f"responses: column `prob_{absent[0]}` is missing, but items have up to {int(ks.max())} options (e.g. "
            f"rows {preview(rows)}); found {sorted(f'prob_{j}' for j in jj)}. Add a `prob_j` column for every "
            "option position 1..K (the probability of the option shown j-th)."
        )
    if (jj < 1).any():
        raise SchemaError("responses: `prob_0` is not a position; positions start at 1. Rename the columns to "
                          "`prob_1` .. `prob_K`.")
    raw = df[[f"prob_{j}" for j in jj]] if all(f"prob_{j}" in df for j in jj) else None
    if raw is not None:
        text = raw.notna().to_numpy() & p.isna().to_numpy()
        if text.any():
            r, c = np.argwhere(text)[0]
            raise SchemaError(
                f"responses: column `prob_{jj[c]}` has a value that is not a number at rows "
                f"{preview(df['row'].to_numpy()[text.any(1)].tolist())}, e.g. {raw.iloc[r, c]!r}. Give probabilities as "
                "numbers in [0, 1]."
            )


def _answer_columns(df: pd.DataFrame) -> set[str]:
    kinds = {c for c in ("answer", "answer_position", "raw_text", "score") if c in df}
    if any(_PROB_RE.match(c) for c in df.columns):
        kinds.add("prob")
    return kinds


def _require(df: pd.DataFrame, cols: Iterable[str], table: str, *, fix: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        import difflib

        hints = []
        for m in missing:
            close = difflib.get_close_matches(m, [str(c) for c in df.columns], n=1)
            if close:
                hints.append(f"did you mean {close[0]!r} for {m!r}?")
        raise SchemaError(
            f"{table}: missing columns {missing}; found {list(df.columns)}. {' '.join(hints)} "
            f"Add or rename the columns: the {table} table needs {list(cols)} ({fix})."
        )


def check_table(df: pd.DataFrame, table: str, needed: Sequence[str], lists: Sequence[str] = ()) -> None:
    """A table has rows, no index column written by pandas, and no nested values in its key columns.

    Internal: shared with robustalign.persona."""
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise SchemaError(f"{table}: column names appear more than once: {preview(dup.unique())}. Rename or remove "
                          "the repeats; robustalign does not rename columns.")
    odd = [c for c in df.columns if not isinstance(c, str)]
    if odd:
        raise SchemaError(f"{table}: column names must be texts; got {preview(odd)} "
                          f"({type(odd[0]).__name__}). Rename the columns, e.g. `df.columns = df.columns.astype(str)`.")
    if len(df) == 0:
        raise SchemaError(f"{table}: the table has columns {list(df.columns)} but no rows. Check that the file was "
                          "written completely.")
    unnamed = [c for c in df.columns if isinstance(c, str) and _UNNAMED_RE.match(c)]
    if unnamed:
        raise SchemaError(
            f"{table}: column {unnamed[0]!r} has no name: most often a pandas index written by `to_csv`. Re-save "
            "the file with `to_csv(path, index=False)` or delete the column; it is never taken as a design factor."
        )
    _no_nested(df, [c for c in needed if c not in lists], table)


def _no_nested(df: pd.DataFrame, cols: Iterable[str], table: str) -> None:
    """Values of label columns are scalars: a dict or list (from JSON lines or Parquet) is refused."""
    for c in cols:
        if c not in df or df[c].dtype != object:
            continue
        nested = df[c].map(lambda v: isinstance(v, (dict, list, tuple, set, np.ndarray)))
        if nested.any():
            i = df.index[nested]
            raise SchemaError(
                f"{table}: column `{c}` holds nested values (lists or objects) at rows {preview(i)}, e.g. "
                f"{str(df.loc[i[0], c])[:60]!r}. Each value must be a single text or number: flatten the field "
                "(e.g. one column per key) before loading."
            )


def _refuse_reserved(df: pd.DataFrame) -> None:
    clash = [c for c in df.columns if c in RESERVED_COLUMNS]
    if clash:
        raise SchemaError(
            f"responses: column {clash[0]!r} has a name robustalign uses for its own columns "
            f"({sorted(RESERVED_COLUMNS)}); it would be overwritten. Rename it, e.g. to '{clash[0]}_factor' "
            f"(pandas: `df.rename(columns={{{clash[0]!r}: '{clash[0]}_factor'}})`), and load again."
        )


def _drop_missing_answers(df, kind_in, answer_cols, allow_missing, log) -> pd.DataFrame:
    """Rows with an empty answer: dropped and counted with ``allow_missing``, an error otherwise."""
    if kind_in == "raw_text":
        return df  # an empty completion is parsed and counted as unparseable
    vals = df[answer_cols]
    miss = vals.isna().all(axis=1) if kind_in == "prob" else vals.iloc[:, 0].isna()
    if kind_in == "answer":
        miss |= _map_unique(vals.iloc[:, 0], lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    if not miss.any():
        return df
    if not allow_missing:
        cols = "all `prob_*` columns" if kind_in == "prob" else f"column `{kind_in}`"
        raise SchemaError(
            f"responses: {cols} is empty at rows {preview(df.loc[miss, 'row'])} ({int(miss.sum())} rows). If these answers "
            "are missing (the model gave none, or it could not be parsed), pass `--allow-missing` (Python: "
            "`allow_missing=True`): they are dropped and counted as 'missing answer'. Otherwise fill them in; "
            "robustalign does not impute."
        )
    log.add("responses", "missing answer", df.loc[miss, "row"], "dropped")
    out = df[~miss].reset_index(drop=True)
    if not len(out):
        raise SchemaError("responses: every answer is missing; there is nothing to analyse. Check the answer column.")
    return out


def _no_nan(df: pd.DataFrame, cols: Iterable[str], table: str) -> None:
    for c in cols:
        na = df[c].isna()
        if na.any():
            raise SchemaError(
                f"{table}: column `{c}` has {int(na.sum())} missing values at rows {preview(df.index[na])}. "
                "Fill them with an explicit level (e.g. 'none') or remove the rows before loading; "
                "robustalign does not impute."
            )


_HASH_SAFE = frozenset({"string", "integer", "floating", "mixed-integer-float", "boolean", "empty", "categorical"})


def _map_unique(values: pd.Series, fn) -> pd.Series:
    """``values.map(fn)`` with ``fn`` called once per distinct value (the same result, far faster on the
    long columns of real responses). Missing values, and object columns whose values hash alike while
    differing (``True`` and ``1``), or cannot be hashed (lists), are mapped one by one."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in _HASH_SAFE:
        return values.map(fn)
    try:
        codes, uniq = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable values
        return values.map(fn)
    mapped = np.empty(len(uniq) + 1, dtype=object)
    mapped[:-1] = [fn(u) for u in uniq]
    out = mapped[codes]
    na = codes < 0
    if na.any():
        out[na] = [fn(v) for v in values.to_numpy(object)[na]]
    return pd.Series(out, index=values.index)


def _pair_codes(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the distinct pairs ``(a[i], b[i])`` and the row of each pair's first occurrence."""
    ca, _ = pd.factorize(a if isinstance(a, (pd.Series, np.ndarray)) else np.asarray(a, dtype=object))
    cb, ub = pd.factorize(b if isinstance(b, (pd.Series, np.ndarray)) else np.asarray(b, dtype=object))
    inv, _ = pd.factorize(ca.astype(np.int64) * (len(ub) + 1) + cb)
    # codes are numbered in order of first appearance: a pair is new where the running maximum grows
    return inv, np.flatnonzero(np.diff(np.maximum.accumulate(inv), prepend=-1) > 0)


def _group_codes(df: pd.DataFrame, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    g = df.groupby(by, sort=True, observed=True)
    return g.ngroup().to_numpy(), g.size().index.to_frame(index=False)


def sort_key(v: object) -> tuple[int, float, str]:
    """Sort key of a level or option code: numbers numerically, then texts. Internal: shared with claims/."""
    s = str(v)
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def _hash_frame(df: pd.DataFrame) -> str:
    h = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
