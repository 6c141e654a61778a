"""Import lm-evaluation-harness per-sample logs (``samples_<task>_<date>.jsonl``) into the contract.

The harness writes one JSON line per document with ``--log_samples``. For a ``multiple_choice`` task
each line holds the prompt and one continuation per option in ``arguments``
(``{"gen_args_0": {"arg_0": prompt, "arg_1": " option text"}, ...}``) and one
``[log-likelihood, is_greedy]`` pair per option in ``filtered_resps``, as strings. This module reads
the file itself (no lm_eval import is needed) and writes one row per document:

================= ==================================================================================
column            from the samples file
================= ==================================================================================
``model``         ``model=``, else ``model_name`` in the ``results_<date>.json`` written with the file
``item``          ``doc[item_field]`` (default: ``doc_id``)
``task``          the task name from the file name: one task per prompt template is how the harness
                  tells prompt variants apart
design factors    ``doc[f]`` for each ``f`` in ``factor_fields``
``option_order``  the canonical codes of the continuations, in the order of ``arguments``
``prob_1..K``     softmax of the options' log-likelihoods, in the order shown
================= ==================================================================================

The probabilities are the model's own distribution over the options given the prompt (summed token
log-likelihoods of each continuation). lm-eval's ``acc_norm`` length normalisation is a decision rule,
not a distribution, and is not applied.

Prompt variants are never pooled silently: two documents with the same model, item, task, factors and
option order but different ``prompt_hash`` raise an error that shows both prompts and asks for the
``doc`` field that tells them apart (``factor_fields=``).

Stringified values (older harness versions wrote ``filtered_resps`` as one Python-repr string) are
parsed with ``ast.literal_eval`` only after a pattern check admits nothing but lists or tuples of
numbers and booleans.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustalign._errors import SchemaError, preview
from robustalign.importers._common import (
    NUM,
    Paths,
    ScalesLike,
    attach,
    check_factor_names,
    expand_paths,
    finish,
    is_scalar,
    literal,
    scales_from,
    texts_to_codes,
    tokens_re,
)
from robustalign.schema import ExclusionLog, Reference, Responses

__all__ = ["from_lm_eval", "read_lm_eval"]

_FILE_RE = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)\.jsonl$")
_ATOM = rf"(?:{NUM}|True|False)"
_QATOM = rf"(?:{NUM}|True|False|-?inf)"
# Numbers and booleans, bare or quoted ('-inf' quoted only), in lists or tuples.
_RESPS_TOKENS = tokens_re(rf"'{_QATOM}'", rf'"{_QATOM}"', rf"{_ATOM}(?![\w.])")


def read_lm_eval(
    samples: Paths,
    reference: Reference | None = None,
    *,
    scales: ScalesLike = None,
    model: str | None = None,
    item_field: str = "doc_id",
    factor_fields: Sequence[str] = (),
    filter: str | None = None,  # noqa: A002 - the harness's own name for it
) -> pd.DataFrame:
    """Read lm-evaluation-harness ``samples_*.jsonl`` files into the raw responses table.

    Parameters
    ----------
    samples : path or list of paths
        ``samples_<task>_<date>.jsonl`` files, or folders searched for them (e.g. the ``--output_path``).
    reference : Reference, optional
        Its item scales map the continuation texts to canonical codes (so does ``scales=``).
    scales : DataFrame or mapping, optional
        Item scales when no reference is given. Without either, each option text is its own code.
    model : str, optional
        Model name. Default: ``model_name`` from the ``results_<date>.json`` next to each samples file.
    item_field : str
        ``"doc_id"`` or the ``doc`` field that holds the survey item id.
    factor_fields : list of str
        ``doc`` fields to keep as design factors (e.g. ``["country", "order_id"]``).
    filter : str, optional
        Which filter's responses to read when a file holds several (multiple-choice tasks have one, ``none``).

    Returns
    -------
    DataFrame
        ``model, item, task, <factors>, option_order, prob_1..prob_K``; ``df.attrs["source"]`` names the
        files.
    """
    files = expand_paths(samples, ["samples_*.jsonl"], "lm-eval samples files")
    sc = scales_from(reference, scales)
    factor_fields = list(factor_fields)
    check_factor_names(factor_fields, "lm-eval samples", "factor_fields")
    if "task" in factor_fields:
        raise SchemaError("lm-eval samples: `task` is always a design factor (from the file name); drop it from factor_fields.")
    rows, meta = [], []
    for path in files:
        task = _task_name(path)
        mdl = model if model is not None else _model_name(path)
        records = _records(path)
        filters = sorted({str(r.get("filter", "none")) for _, r in records})
        if filter is None and len(filters) > 1:
            raise SchemaError(
                f"{path.name}: responses under several filters {filters}. Pass `filter=` naming the one to read."
            )
        want = filter if filter is not None else filters[0] if filters else "none"
        for ln, rec in records:
            if str(rec.get("filter", "none")) != want:
                continue
            where = f"{path.name} line {ln} (doc_id {rec.get('doc_id')!r})"
            doc = rec.get("doc")
            if not isinstance(doc, dict):
                raise SchemaError(f"{where}: field `doc` is missing or not an object. Re-run with --log_samples.")
            prompt, conts = _arguments(rec.get("arguments"), where)
            lls = _loglikelihoods(rec.get("filtered_resps", rec.get("resps")), len(conts), where)
            item = _doc_value(rec, doc, item_field, where, "item id")
            row: dict[str, Any] = {"model": mdl, "item": str(item), "task": task}
            for f in factor_fields:
                row[f] = _doc_value(rec, doc, f, where, "design factor")
            codes = texts_to_codes([c.strip() for c in conts], row["item"], sc, where)
            row["option_order"] = "|".join(codes)
            p = np.exp(lls - lls.max())
            p /= p.sum()
            for j, pj in enumerate(p):
                row[f"prob_{j + 1}"] = float(pj)
            rows.append(row)
            meta.append({"where": where, "prompt": prompt, "hash": rec.get("prompt_hash")})
    if not rows:
        raise SchemaError(f"lm-eval samples: no documents in {preview([p.name for p in files])}. Check the files.")
    df = pd.DataFrame(rows)
    key = ["model", "item", "task", *factor_fields, "option_order"]
    _check_variants(df, key, meta)
    kmax = max(int(c.split("_")[1]) for c in df.columns if c.startswith("prob_"))
    probs = [f"prob_{j}" for j in range(1, kmax + 1)]
    df = df[[*key, *probs]]
    return attach(df, ExclusionLog(), files, "lm-evaluation-harness")


def from_lm_eval(
    samples: Paths,
    reference: Reference | None = None,
    *,
    scales: ScalesLike = None,
    drop_unreferenced: bool = False,
    **kwargs: Any,
) -> Responses:
    """Read lm-eval samples files and validate them into :class:`~robustalign.Responses` (kind ``prob``).

    Same arguments as :func:`read_lm_eval`; ``reference`` (or ``scales``) is required.
    """
    df = read_lm_eval(samples, reference, scales=scales, **kwargs)
    return finish(df, reference, scales, drop_unreferenced, "from_lm_eval")


# --------------------------------------------------------------------------------------------------
def _task_name(path: Path) -> str:
    m = _FILE_RE.match(path.name)
    if m:
        return m.group("task")
    if path.name.startswith("samples_") and path.suffix == ".jsonl":
        return path.stem[len("samples_"):]
    raise SchemaError(
        f"{path.name}: not an lm-eval samples file (expected samples_<task>_<date>.jsonl). Keep the harness's "
        "file names: the task name in them tells prompt variants apart."
    )


def _model_name(path: Path) -> str:
    m = _FILE_RE.match(path.name)
    res = path.parent / f"results_{m.group('date')}.json" if m else None
    if res is None or not res.is_file():
        raise SchemaError(
            f"{path.name}: no results_<date>.json beside it to read the model name from. Pass `model=`."
        )
    try:
        info = json.loads(res.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SchemaError(f"{res.name}: could not be read as JSON ({e}). Pass `model=`.") from None
    name = info.get("model_name") or (info.get("config") or {}).get("model_name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{res.name}: field `model_name` is missing. Pass `model=`.")
    return name


def _records(path: Path) -> list[tuple[int, dict]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise SchemaError(f"{path.name} line {ln}: not valid JSON ({e}). The file may be truncated.") from None
            if not isinstance(rec, dict):
                raise SchemaError(f"{path.name} line {ln}: expected one JSON object per line.")
            out.append((ln, rec))
    return out


def _arguments(args, where: str) -> tuple[str, list[str]]:
    """The prompt and the continuations, in order, from ``arguments``."""
    pairs = []
    if isinstance(args, dict):
        def idx(k):
            m = re.fullmatch(r"gen_args_(\d+)", k)
            return int(m.group(1)) if m else -1

        keys = sorted(args, key=idx)
        if any(idx(k) < 0 for k in keys):
            raise SchemaError(f"{where}: field `arguments` has keys {keys}; expected gen_args_0, gen_args_1, ...")
        for k in keys:
            a = args[k]
            pairs.append((a.get("arg_0"), a.get("arg_1")) if isinstance(a, dict) else (None, None))
    elif isinstance(args, list):
        pairs = [tuple(a[:2]) if isinstance(a, list) and len(a) >= 2 else (None, None) for a in args]
    ok = pairs and all(isinstance(c, str) and isinstance(t, str) for c, t in pairs)
    if not ok:
        raise SchemaError(
            f"{where}: field `arguments` does not hold (prompt, continuation) pairs, one per option. Only "
            "multiple-choice (log-likelihood) tasks can be imported; generation tasks have no option scores."
        )
    if len({c for c, _ in pairs}) != 1:
        raise SchemaError(f"{where}: the options were scored after different prompts; expected one prompt per document.")
    return str(pairs[0][0]), [str(t) for _, t in pairs]  # checked: all texts


def _loglikelihoods(resps, k: int, where: str) -> np.ndarray:
    if isinstance(resps, str):
        resps = literal(resps, _RESPS_TOKENS, f"{where}: field `filtered_resps`",
                        "a list of [log-likelihood, is_greedy] pairs")
    if not isinstance(resps, (list, tuple)) or len(resps) != k:
        raise SchemaError(
            f"{where}: field `filtered_resps` should hold one [log-likelihood, is_greedy] pair per option "
            f"({k} options); got {preview([resps], 1)[:200]}. Only multiple-choice tasks can be imported."
        )
    out = np.empty(k)
    for j, e in enumerate(resps):
        while isinstance(e, (list, tuple)) and len(e) == 1 and isinstance(e[0], (list, tuple)):
            e = e[0]  # `resps` nests each pair once more
        v = e[0] if isinstance(e, (list, tuple)) and len(e) in (1, 2) else e
        try:
            out[j] = float(v) if not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            out[j] = math.nan
        if math.isnan(out[j]) or out[j] == math.inf:
            raise SchemaError(
                f"{where}: option {j + 1} of `filtered_resps` is {e!r}, not a log-likelihood. Only "
                "multiple-choice (log-likelihood) tasks can be imported."
            )
    if np.isneginf(out).all():
        raise SchemaError(f"{where}: every option has log-likelihood -inf, so no distribution is defined.")
    return out


def _doc_value(rec: dict, doc: dict, field: str, where: str, what: str):
    if field == "doc_id":
        return rec.get("doc_id")
    if field not in doc or not is_scalar(doc[field]) or doc[field] is None:
        raise SchemaError(
            f"{where}: `doc` has no scalar field {field!r} for the {what} (fields: {sorted(doc)}). Add it to the "
            "task's documents or name another field."
        )
    return doc[field]


def _check_variants(df: pd.DataFrame, key: list[str], meta: list[dict]) -> None:
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return
    first = df.index[dup][0]
    same = df.index[dup & (df[key] == df.loc[first, key]).all(axis=1)]
    a, b = meta[same[0]], meta[same[1]]
    if a["hash"] != b["hash"] or a["prompt"] != b["prompt"]:
        raise SchemaError(
            f"lm-eval samples: {a['where']} and {b['where']} are the same model x item x task x option order "
            f"({df.loc[first, key].to_dict()}) under different prompts ({a['prompt'][:80]!r} vs "
            f"{b['prompt'][:80]!r}). Name the `doc` field that tells the prompt variants apart in "
            "`factor_fields=`, or give each template its own task."
        )
    raise SchemaError(
        f"lm-eval samples: {a['where']} and {b['where']} repeat the same prompt for the same model x item x task "
        f"x option order ({df.loc[first, key].to_dict()}). Pass each run once, or name the `doc` field that "
        "distinguishes them in `factor_fields=`."
    )
