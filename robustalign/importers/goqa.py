"""Import GlobalOpinionQA-style human reference data into a :class:`~robustalign.Reference`.

The GlobalOpinionQA file (Durmus et al. 2024, ``Anthropic/llm_global_opinions``,
``data/global_opinions.csv``) has one row per question with

============== ===================================================================================
column         content
============== ===================================================================================
``question``   the question text
``options``    the answer options, as a Python-repr list of strings (``"['Yes', 'No']"``)
``selections`` per-country answer shares, as the Python repr of a ``defaultdict``:
               ``"defaultdict(<class 'list'>, {'Belgium': [0.26, 0.74], ...})"``
``source``     (optional) the survey, e.g. ``GAS`` (Pew Global Attitudes) or ``WVS``
============== ===================================================================================

The file has no question ids: question ``i`` (0-based data row) becomes item ``f"{id_prefix}{i}"``
(``goqa_0``, ``goqa_1``, ...), or the values of ``item_col`` when given; :func:`read_goqa_questions`
returns the question texts and options under the same ids, to build prompts from.

Options become codes ``"1".."K"`` in the order listed, with the option texts as labels, so the
choice texts an evaluation showed map back to the codes. Scales are nominal unless ``ordinal=`` says
otherwise. Respondent counts are not in the file, so ``n`` is unknown (and recorded as such).

The repr strings are parsed with ``ast.literal_eval`` only after every character has been read as a
string, number or bracket token, and the result must be a dict of country -> list of numbers (resp. a
list of strings); nothing is evaluated.

Every question or country dropped, and every cell recoded, is counted in the reference's exclusion
log with its reason:

* ``refused="keep"`` (default) keeps options such as ``DK/Refused`` as options; ``"drop_option"``
  removes them and renormalises the other shares; ``"drop_question"`` drops questions that have one;
* groups whose name marks a non-national sample (``"India (Non-national sample)"``) are kept and
  flagged in the log (``non_national="keep"``) or dropped (``"drop"``);
* country distributions whose length differs from the options, that are all zero, or whose shares miss
  1 by more than ``share_tol`` are dropped; smaller misses are renormalised by
  :func:`~robustalign.make_reference`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustalign._errors import SchemaError
from robustalign.importers._common import NUM, STR, literal, tokens_re
from robustalign.schema import ExclusionLog, Reference, Scale, make_reference

__all__ = ["from_goqa", "read_goqa_questions"]

_TOKENS = tokens_re(STR, rf"{NUM}(?![\w.])")  # strings and numbers in lists and dicts
_DEFAULTDICT = re.compile(r"\s*(?:defaultdict\(\s*<class '(?:list|float)'>\s*,\s*)?(?P<body>\{.*\})\s*\)?\s*", re.S)
_NON_NATIONAL = re.compile(r"\(\s*non-?\s*national", re.I)


def from_goqa(
    path: str | os.PathLike[str],
    *,
    ordinal: Mapping[str, bool] | Iterable[str] | Callable[[list[str]], bool] | None = None,
    refused: str = "keep",
    refused_pattern: str = r"refused",
    non_national: str = "keep",
    share_tol: float = 0.01,
    id_prefix: str = "goqa_",
    item_col: str | None = None,
) -> Reference:
    """Read a GlobalOpinionQA-style CSV into a :class:`~robustalign.Reference` (group = country).

    Parameters
    ----------
    path : path
        The CSV (columns ``question``, ``options``, ``selections``, optional ``source``).
    ordinal : mapping, iterable or callable, optional
        Which items have ordered scales: a mapping item -> bool, the ids of the ordinal items, or a
        function of the option texts. Default: every scale nominal.
    refused : {"keep", "drop_option", "drop_question"}
        What to do with options that match ``refused_pattern`` (case-insensitive), e.g. ``DK/Refused``.
    non_national : {"keep", "drop"}
        Countries surveyed with a non-national sample: kept and flagged in the exclusion log, or dropped.
    share_tol : float
        Country distributions whose shares miss 1 by more than this are dropped (counted); smaller
        misses are renormalised (counted).
    id_prefix, item_col : str
        Item ids: ``f"{id_prefix}{row}"``, or the values of the column ``item_col``.

    Returns
    -------
    Reference
        With every dropped question or country and every recoded cell in ``.exclusions``.
    """
    if refused not in ("keep", "drop_option", "drop_question"):
        raise SchemaError(f"`refused` must be 'keep', 'drop_option' or 'drop_question'; got {refused!r}.")
    if non_national not in ("keep", "drop"):
        raise SchemaError(f"`non_national` must be 'keep' or 'drop'; got {non_national!r}.")
    if ordinal is not None and not callable(ordinal) and not isinstance(ordinal, Mapping):
        if isinstance(ordinal, str):
            raise SchemaError(f"`ordinal` must be a mapping, a list of item ids or a function; got the string {ordinal!r}.")
        ordinal = frozenset(str(o) for o in ordinal)
    p, raw = _read(path)
    ids = _ids(raw, p, id_prefix, item_col)
    ref_re = re.compile(refused_pattern, re.I)
    log = ExclusionLog()
    drops: dict[tuple[str, str], list] = {}

    def note(reason, action, what):
        drops.setdefault((reason, action), []).append(what)

    shares: list[dict[str, Any]] = []
    scales: dict[str, Scale] = {}
    for i, item in zip(raw.index, ids):
        where = f"{p.name} row {i + 1} (item {item!r})"
        options = _options(raw.at[i, "options"], where)
        sel = _selections(raw.at[i, "selections"], where)
        k = len(options)
        refused_idx = [j for j, o in enumerate(options) if ref_re.search(o)]
        if refused_idx and refused == "drop_question":
            note(f"question has an option matching {refused_pattern!r} (refused='drop_question')", "dropped", item)
            continue
        keep_idx = [j for j in range(k) if not (refused == "drop_option" and j in refused_idx)]
        labels = [options[j] for j in keep_idx]
        if len(labels) < 2:
            note("fewer than 2 options", "dropped", item)
            continue
        n_cells = 0
        for country, v in sel.items():
            cell = f"{item}/{country}"
            if _NON_NATIONAL.search(country):
                if non_national == "drop":
                    note("non-national sample (non_national='drop')", "dropped", cell)
                    continue
                note("non-national sample (kept; compare with care)", "flagged", cell)
            if len(v) != k:
                note("country distribution has a different length than the options", "dropped", cell)
                continue
            x = np.asarray(v, float)
            if (x < 0).any() or not np.isfinite(x).all():
                note("negative or non-finite share", "dropped", cell)
                continue
            if abs(x.sum() - 1) > share_tol:
                note(f"shares miss 1 by more than share_tol={share_tol}" if x.sum() > 0 else "all shares zero",
                     "dropped", cell)
                continue
            if len(keep_idx) < k:
                x = x[keep_idx]
                if x.sum() <= 0:
                    note("only the refused option was chosen (refused='drop_option')", "dropped", cell)
                    continue
                x = x / x.sum()
                note(f"options matching {refused_pattern!r} removed and shares renormalised", "recoded", cell)
            n_cells += 1
            shares.extend(
                {"item": item, "group": country, "option": str(j + 1), "share": float(s)} for j, s in enumerate(x)
            )
        if n_cells == 0:
            note("no usable country distribution", "dropped", item)
            continue
        scales[item] = Scale(tuple(str(j + 1) for j in range(len(labels))), tuple(labels),
                             _is_ordinal(ordinal, item, labels))
    for (reason, action), what in drops.items():
        log.add("reference", reason, what, action)
    if not shares:
        raise SchemaError(f"{p.name}: no question kept. See the reasons: {log.to_frame()[['reason', 'n_rows']].to_dict('records')}.")
    ref = make_reference(pd.DataFrame(shares), scales, share_tol=share_tol)
    ref.exclusions = log.merged(ref.exclusions)
    return ref


def read_goqa_questions(path: str | os.PathLike[str], *, id_prefix: str = "goqa_", item_col: str | None = None) -> pd.DataFrame:
    """The questions of a GlobalOpinionQA-style CSV: ``item, question, options (list), source``.

    Item ids are those of :func:`from_goqa` with the same ``id_prefix`` / ``item_col``.
    """
    p, raw = _read(path)
    ids = _ids(raw, p, id_prefix, item_col)
    out = pd.DataFrame({
        "item": ids,
        "question": raw["question"].to_numpy(),
        "options": [_options(raw.at[i, "options"], f"{p.name} row {i + 1}") for i in raw.index],
    })
    out["source"] = raw["source"].to_numpy() if "source" in raw else ""
    return out


# --------------------------------------------------------------------------------------------------
def _read(path) -> tuple[Path, pd.DataFrame]:
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"file not found: {str(p)!r}. Check the path.")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as e:
        raise SchemaError(f"{p.name}: could not be read as CSV: {e}") from None
    missing = [c for c in ("question", "options", "selections") if c not in raw]
    if missing:
        raise SchemaError(
            f"{p.name}: missing columns {missing}; found {list(raw.columns)}. A GlobalOpinionQA-style file needs "
            "question, options (list of option texts) and selections (country -> shares)."
        )
    return p, raw.reset_index(drop=True)


def _ids(raw: pd.DataFrame, p: Path, id_prefix: str, item_col: str | None) -> list[str]:
    if item_col is None:
        return [f"{id_prefix}{i}" for i in range(len(raw))]
    if item_col not in raw:
        raise SchemaError(f"{p.name}: `item_col={item_col!r}` is not a column; found {list(raw.columns)}.")
    ids = raw[item_col].astype(str).str.strip()
    dup = ids[ids.duplicated()]
    if len(dup) or (ids == "").any():
        raise SchemaError(
            f"{p.name}: column {item_col!r} has repeated or empty ids ({sorted(set(dup))[:5]}); item ids must be unique. "
            "Leave `item_col` unset to number the rows."
        )
    return ids.tolist()


def _options(text: str, where: str) -> list[str]:
    v = literal(text, _TOKENS, f"{where}: field `options`", "a list of option texts like ['Yes', 'No']")
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(o, (str, int, float)) for o in v):
        raise SchemaError(f"{where}: field `options` must be a non-empty list of option texts; got {text[:200]!r}.")
    return [str(o) for o in v]


def _selections(text: str, where: str) -> dict[str, list[float]]:
    m = _DEFAULTDICT.fullmatch(text or "")
    expected = "a dict of country -> list of shares, e.g. defaultdict(<class 'list'>, {'Belgium': [0.3, 0.7]})"
    if not m:
        raise SchemaError(f"{where}: field `selections`: expected {expected}; got {str(text)[:200]!r}.")
    v = literal(m.group("body"), _TOKENS, f"{where}: field `selections`", expected)
    ok = isinstance(v, dict) and all(
        isinstance(c, str) and isinstance(x, (list, tuple)) and all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in x
        ) for c, x in v.items()
    )
    if not ok:
        raise SchemaError(f"{where}: field `selections`: expected {expected}; got {str(text)[:200]!r}.")
    return {c.strip(): list(x) for c, x in v.items()}


def _is_ordinal(ordinal, item: str, labels: list[str]) -> bool:
    if ordinal is None:
        return False
    if callable(ordinal):
        return bool(ordinal(list(labels)))
    if isinstance(ordinal, Mapping):
        return bool(ordinal.get(item, False))
    return item in ordinal
