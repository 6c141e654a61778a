"""Import Inspect (``inspect_ai``) evaluation logs into the responses contract.

Logs are read through inspect_ai's own log API (``read_eval_log`` / ``read_eval_log_samples``), so
both the ``.eval`` archive and the ``.json`` log format work, and nothing is unpickled or evaluated.
One row is written per sample and epoch:

=================== ==============================================================================
column              from the log
=================== ==============================================================================
``model``           ``eval.model`` (e.g. ``openai/gpt-4o``)
``item``            the sample ``id`` (or the metadata field named by ``item_field``)
design factors      every scalar field of the sample ``metadata`` (or those named in
                    ``factor_fields``); ``task`` and the task arguments when they differ between
                    the logs read together (arguments every log has)
``sample``          the epoch (1, 2, ...): repeated answers to the same prompt
``option_order``    the canonical codes of the choices in the order they were shown
``answer_position`` the chosen letter (``Score.answer`` of the ``choice()`` scorer) as a 1-based
                    position in the order shown; or ``raw_text`` (the completion) with
                    ``answer="raw_text"``, parsed by :func:`robustalign.parsing.parse_answer`
=================== ==============================================================================

Shuffled choices
----------------
Inspect shuffles choices in one of two ways, and both are recovered:

* ``Sample``/dataset choice shuffling (``shuffle_choices=True`` when reading the dataset, or
  ``dataset.shuffle_choices()``): the log's ``choices`` are the choices *as shown*, and the scorer's
  answer letter refers to that order.
* the deprecated ``multiple_choice(shuffle=True)``: the log's ``choices`` and the answer letter are in
  the *original* order (Inspect rewrites the messages to hide the shuffle); the order shown is recorded
  only in the ``choice()`` scorer's explanation, which is parsed and cross-checked against the shuffled
  answer letter stated there.

With ``answer="raw_text"`` a solver-level shuffle is detected through the ``choice()`` scorer's
explanation and refused (Inspect rewrote the completion); a log without that scorer carries no trace of
such a shuffle.

Dataset choice shuffling draws one order per sample, so the order shown is confounded with whatever
else differs between samples (persona, template). To separate option order from the other design
factors, give each item in fixed orders crossed with them (one sample per combination) instead.

Choice texts become canonical codes through the item's scale: each text must equal one of the scale's
labels (ignoring case and runs of whitespace) or one of its codes. Without a reference or scales, each
text is its own code.

Samples that errored, or whose scorer found no answer letter (``answer="score"``), are dropped and
counted in the exclusion log; with ``answer="raw_text"`` they are kept and parsed, so refusals and
unparseable completions are counted by status instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from robustalign._errors import SchemaError, preview
from robustalign.importers._common import (
    Paths,
    ScalesLike,
    attach,
    check_factor_names,
    expand_paths,
    finish,
    is_scalar,
    norm_text,
    scales_from,
    texts_to_codes,
)
from robustalign.schema import ExclusionLog, Reference, Responses, Scale

__all__ = ["from_inspect", "read_inspect"]

_SHUFFLED_PREFIX = "Choices were shuffled before generating a response"
_SHUFFLED_RE = re.compile(
    r"the following was sent to the model:\n\n(?P<block>.*)\nShuffled answer:\nANSWER: ?(?P<ans>[^\n]*)\s*\Z",
    re.S,
)
_OPTION_LINE = re.compile(r"^(?P<mark>[A-Z]|[1-9][0-9]*)\) (?P<text>.*)$")


def read_inspect(
    logs: Paths,
    reference: Reference | None = None,
    *,
    scales: ScalesLike = None,
    item_field: str = "id",
    factor_fields: Sequence[str] | None = None,
    scorer: str | None = None,
    answer: str = "score",
) -> pd.DataFrame:
    """Read Inspect eval logs into the raw responses table (ready for :func:`make_responses`).

    Parameters
    ----------
    logs : path or list of paths
        ``.eval`` or ``.json`` log files, or folders searched for them (``inspect_ai.log.list_eval_logs``).
    reference : Reference, optional
        Its item scales map the choice texts to canonical codes (so does ``scales=``).
    scales : DataFrame or mapping, optional
        Item scales (see :func:`robustalign.schema.make_scales`) when no reference is given.
    item_field : str
        ``"id"`` (the sample id) or the name of the metadata field that holds the item id.
    factor_fields : list of str, optional
        Metadata fields to keep as design factors. Default: every field whose values are scalars
        (strings, numbers, booleans); lists and dicts are skipped and named in
        ``df.attrs["skipped_metadata"]``.
    scorer : str, optional
        Which score holds the answer letter. Default: ``"choice"`` if present, else the only scorer.
    answer : {"score", "raw_text"}
        ``"score"``: the scorer's answer letter as ``answer_position``. ``"raw_text"``: the model's
        completion as ``raw_text``, parsed by robustalign's parser against the options as shown.

    Returns
    -------
    DataFrame
        ``model, item, <factors>, sample, option_order`` and ``answer_position`` or ``raw_text``.
        ``df.attrs["exclusions"]`` is an :class:`~robustalign.ExclusionLog` of dropped samples and
        ``df.attrs["source"]`` names the files.

    Raises
    ------
    SchemaError
        Naming the file, the sample and epoch, the field and the fix.
    """
    if answer not in ("score", "raw_text"):
        raise SchemaError(f"`answer` must be 'score' or 'raw_text'; got {answer!r}.")
    files = _log_files(logs)
    sc = scales_from(reference, scales)
    log = ExclusionLog()
    rows: list[dict] = []
    run_info: list[dict] = []
    skipped: set[str] = set()
    meta_keys: list[str] = []
    for path in files:
        n_before = len(rows)
        spec = _read_log_samples(path, _SampleReader(item_field, scorer, answer, sc, log, meta_keys, skipped), rows)
        run_info.append({"task": spec.task, "args": dict(spec.task_args or {}), "n": len(rows) - n_before})
    fields = _metadata_factors(rows, meta_keys, skipped, factor_fields)
    run_cols = _add_run_factors(rows, run_info, fields)
    answer_col = "answer_position" if answer == "score" else "raw_text"
    cols = ["model", "item", *fields, *run_cols, "sample", "option_order", answer_col]
    df = pd.DataFrame(rows, columns=cols)
    df.attrs["skipped_metadata"] = sorted(skipped)
    return attach(df, log, files, "inspect_ai")


@dataclass
class _SampleReader:
    """What turns one Inspect sample into a raw responses row, and what it records on the way."""

    item_field: str
    scorer: str | None
    answer: str
    scales: Mapping[str, Scale] | None
    log: ExclusionLog
    meta_keys: list[str]  # metadata fields in order of first appearance
    skipped: set[str]  # metadata fields holding lists or dicts

    def row(self, s: Any, model: str, path: Path) -> dict | None:
        """The row of one sample, or None when it is dropped (and counted)."""
        where = f"{path.name}: sample {s.id!r} epoch {s.epoch}"
        if s.error is not None:
            self.log.add("responses", "sample errored in Inspect (no answer)", [f"{path.name}:{s.id}/{s.epoch}"],
                         "dropped")
            return None
        if not s.choices:
            raise SchemaError(
                f"{where}: field `choices` is empty. robustalign imports multiple-choice samples: give each "
                "Sample its options in `choices` and use the multiple_choice() solver."
            )
        row: dict[str, Any] = {"model": model, "item": _item(s, self.item_field, where)}
        meta = {k: v for k, v in (s.metadata or {}).items() if not (self.item_field != "id" and k == self.item_field)}
        for k, v in meta.items():
            if k not in self.meta_keys:
                self.meta_keys.append(k)
            if not is_scalar(v):
                self.skipped.add(k)
        row["_meta"] = meta
        row["_where"] = where
        row["sample"] = int(s.epoch)
        shown, sc_answer, completion_rewritten = _shown_and_answer(s, self.scorer, self.answer, where)
        codes = texts_to_codes(shown, row["item"], self.scales, where)
        row["option_order"] = "|".join(codes)
        if self.answer == "raw_text":
            if completion_rewritten:
                raise SchemaError(
                    f"{where}: choices were shuffled by multiple_choice(shuffle=True), and Inspect rewrote the "
                    "completion to the unshuffled letter, so the raw text no longer matches the order shown. "
                    "Use answer='score', or shuffle choices in the dataset instead."
                )
            row["raw_text"] = s.output.completion if s.output is not None else ""
        else:
            if sc_answer is None:
                self.log.add("responses", "scorer found no answer letter (use answer='raw_text' to keep and parse "
                             "such completions)", [f"{path.name}:{s.id}/{s.epoch}"], "dropped")
                return None
            row["answer_position"] = sc_answer + 1
        return row


def _read_log_samples(path: Path, reader: _SampleReader, rows: list[dict]) -> Any:
    """Append the rows of one log file to ``rows``; return the log's eval spec."""
    from inspect_ai.log import read_eval_log, read_eval_log_samples

    header = read_eval_log(str(path), header_only=True)
    spec = header.eval
    if header.status != "success":
        reader.log.add("responses", f"log status {header.status!r}: samples that did not finish are missing",
                       [path.name], "incomplete")
    samples = read_eval_log_samples(
        str(path), all_samples_required=False, resolve_attachments=reader.answer == "raw_text",
        exclude_fields={"events", "store"},
    )
    seen = 0
    for s in samples:
        seen += 1
        row = reader.row(s, spec.model, path)
        if row is not None:
            rows.append(row)
    if seen == 0 and header.status == "success":
        raise SchemaError(f"{path.name}: the log holds no samples. Check that the eval ran and logged samples.")
    return spec


def _metadata_factors(rows: list[dict], meta_keys: list[str], skipped: set[str],
                      factor_fields: Sequence[str] | None) -> list[str]:
    """Design factors from sample metadata: chosen, checked, and set on every row."""
    if factor_fields is None:
        fields = [k for k in meta_keys if k not in skipped]
    else:
        fields = list(factor_fields)
        bad = [f for f in fields if f in skipped]
        if bad:
            raise SchemaError(
                f"inspect logs: metadata fields {bad} hold lists or dicts, which cannot be design factors. "
                "Store one scalar value per sample (e.g. a label) instead."
            )
    check_factor_names(fields, "inspect logs", "metadata fields")
    for r in rows:
        meta = r.pop("_meta")
        where = r.pop("_where")
        for f in fields:
            if f not in meta or meta[f] is None:
                raise SchemaError(
                    f"{where}: metadata field {f!r} is missing, so the design cell is unknown. Give every sample "
                    f"this field, or leave it out of `factor_fields` (found {sorted(meta)})."
                )
            r[f] = meta[f]
    return fields


def _add_run_factors(rows: list[dict], run_info: list[dict], fields: list[str]) -> list[str]:
    """The task and task arguments that differ between logs become design factors too."""
    run_cols = _run_factors(run_info, fields)
    k = 0
    for info in run_info:
        for r in rows[k: k + info["n"]]:
            for c in run_cols:
                v = info["task"] if c == "task" else info["args"].get(c)
                r[c] = v if is_scalar(v) else json.dumps(v, sort_keys=True)
        k += info["n"]
    return run_cols


def from_inspect(
    logs: Paths,
    reference: Reference | None = None,
    *,
    scales: ScalesLike = None,
    drop_unreferenced: bool = False,
    **kwargs: Any,
) -> Responses:
    """Read Inspect eval logs and validate them into :class:`~robustalign.Responses`.

    Same arguments as :func:`read_inspect`; ``reference`` (or ``scales``) is required, and
    ``drop_unreferenced`` is passed to :func:`~robustalign.make_responses`. Samples dropped while
    reading are counted in the result's exclusion log.

    Examples
    --------
    >>> resp = from_inspect("logs/", ref)  # doctest: +SKIP
    """
    df = read_inspect(logs, reference, scales=scales, **kwargs)
    return finish(df, reference, scales, drop_unreferenced, "from_inspect")


# --------------------------------------------------------------------------------------------------
def _log_files(logs) -> list[Path]:
    from inspect_ai.log import list_eval_logs

    def find(folder: Path) -> list[Path]:  # inspect_ai's own listing: it knows which files are logs
        return [Path(_local(i.name)) for i in list_eval_logs(str(folder), recursive=True)]

    return expand_paths(logs, ["*.eval", "*.json"], "Inspect logs", find=find)


def _local(uri: str) -> str:
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


def _item(s, item_field: str, where: str) -> str:
    if item_field == "id":
        return str(s.id)
    meta = s.metadata or {}
    if item_field not in meta or not is_scalar(meta[item_field]) or meta[item_field] is None:
        raise SchemaError(
            f"{where}: metadata has no scalar field {item_field!r} to use as the item id (found {sorted(meta)}). "
            "Pass `item_field=` naming the field that holds the survey item, or 'id' for the sample id."
        )
    return str(meta[item_field])


def _pick_score(s, scorer: str | None, where: str):
    scores = s.scores or {}
    if scorer is not None:
        if scorer not in scores:
            raise SchemaError(
                f"{where}: no score named {scorer!r}; the sample has {sorted(scores)}. Pass one of these as `scorer=`."
            )
        return scores[scorer]
    if "choice" in scores:
        return scores["choice"]
    if len(scores) == 1:
        return next(iter(scores.values()))
    if not scores:
        raise SchemaError(
            f"{where}: the sample has no scores, so no answer letter. Score the log (inspect score) or pass "
            "answer='raw_text' to parse the completions."
        )
    raise SchemaError(
        f"{where}: several scores {sorted(scores)} and none is 'choice'. Pass `scorer=` naming the one whose "
        "`answer` holds the chosen option."
    )


def _letter_index(token: str) -> int | None:
    """inspect_ai's answer letters: A..Z for positions 1..26, then 1, 2, ... for positions 27, 28, ..."""
    if len(token) == 1 and token.isalpha():
        return ord(token.upper()) - ord("A")
    if token.isdigit() and int(token) > 0:
        return 25 + int(token)
    return None


def _shown_and_answer(s, scorer, answer, where):
    """Choices in the order shown, the chosen 0-based position in that order (or None), and whether
    multiple_choice(shuffle=True) shuffled them (then Inspect rewrote the messages and the completion)."""
    choices = [str(c) for c in s.choices]
    shuffled = next(
        (x for x in (s.scores or {}).values() if (x.explanation or "").startswith(_SHUFFLED_PREFIX)), None
    )
    shown, stated = (choices, None) if shuffled is None else _parse_shuffled(shuffled.explanation, choices, where)
    if answer == "raw_text":
        return shown, None, shuffled is not None
    score = _pick_score(s, scorer, where)
    pos = _answer_position(score.answer, choices, where)  # the log's letter refers to the log's `choices`
    if pos is not None and shuffled is not None:
        pos = shown.index(choices[pos])
        if _answer_position(stated, shown, where) != pos:
            raise SchemaError(
                f"{where}: the scorer's answer {score.answer!r} and the shuffled answer in its explanation "
                f"({stated!r}) name different options. The log is inconsistent; re-score it."
            )
    return shown, pos, shuffled is not None


def _parse_shuffled(expl: str, choices: list[str], where: str) -> tuple[list[str], str]:
    """The order shown and the shuffled answer letter, from the choice() scorer's explanation."""
    m = _SHUFFLED_RE.search(expl)
    lines = [_OPTION_LINE.match(x) for x in m.group("block").split("\n")] if m else []
    shown = [x.group("text") for x in lines if x]
    if not m or len(shown) != len(lines) or sorted(shown) != sorted(choices):
        raise SchemaError(
            f"{where}: the choices were shuffled by multiple_choice(shuffle=True), but the order shown could not "
            f"be read from the scorer's explanation (expected one 'A) text' line per choice of {choices}). "
            "Shuffle choices in the dataset (shuffle_choices=True), which records the order shown in `choices`."
        )
    return shown, m.group("ans").strip()


def _answer_position(ans, shown: list[str], where: str) -> int | None:
    if ans is None:
        return None
    a = str(ans).strip()
    if not a:
        return None
    tokens = [t for t in re.split(r"[\s,]+", a) if t]
    if len(tokens) == 1:
        i = _letter_index(tokens[0])
        if i is not None:
            if i >= len(shown):
                raise SchemaError(
                    f"{where}: answer {a!r} is beyond the {len(shown)} choices. Check the scorer's `answer`."
                )
            return i
    hits = [i for i, t in enumerate(shown) if norm_text(t) == norm_text(a)]
    if len(hits) == 1:
        return hits[0]
    if len(tokens) > 1 and all(_letter_index(t) is not None for t in tokens):
        raise SchemaError(
            f"{where}: answer {a!r} names several options. Survey items take one answer: use "
            "multiple_choice(multiple_correct=False)."
        )
    raise SchemaError(
        f"{where}: score `answer` {preview([a], 1)} is neither a choice letter nor one of the choices {shown}. "
        "Pass `scorer=` naming the choice() score, or answer='raw_text' to parse the completion."
    )


def _run_factors(run_info: list[dict], fields: list[str]) -> list[str]:
    cols = []
    if len({i["task"] for i in run_info}) > 1:
        cols.append("task")
    # arguments every log has (a task's own arguments are covered by `task` when tasks differ)
    keys = sorted(set.intersection(*(set(i["args"]) for i in run_info))) if run_info else []
    for k in keys:
        vals = {json.dumps(i["args"].get(k), sort_keys=True, default=str) for i in run_info}
        if len(vals) > 1:
            cols.append(k)
    check_factor_names([c for c in cols if c != "task"], "inspect logs", "task arguments")
    dup = [c for c in cols if c in fields]
    if dup:
        raise SchemaError(
            f"inspect logs: {dup} are both sample metadata and task (arguments) that differ between logs. Rename "
            "one of them so each design factor has one source."
        )
    return cols
