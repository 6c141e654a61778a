"""Helpers shared by the importers: file lists, option texts to codes, safe literal parsing."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from robustalign._errors import SchemaError, preview
from robustalign.schema import RESERVED_COLUMNS, ExclusionLog, Reference, Responses, Scale, make_responses

#: A file path, or several (folders are searched).
Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
#: Item scales as a table (see robustalign.schema.make_scales) or a mapping item -> Scale.
ScalesLike = pd.DataFrame | Mapping[str, Scale] | None

#: Columns of the responses contract that a design factor may not be called.
RESERVED = frozenset(
    {"model", "item", "row", "answer", "answer_position", "raw_text", "score", "option_order", "sample",
     "option", "status", "parse_rule"}
) | RESERVED_COLUMNS
_PROB_COL = re.compile(r"^prob_\d+$")

# A quoted Python string literal (single or double quotes, backslash escapes).
STR = r"""(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
# A plain number literal: no names, no calls, no operators other than a leading sign.
NUM = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"


def expand_paths(paths, patterns: Sequence[str], what: str,
                 find: Callable[[Path], Iterable[Path]] | None = None) -> list[Path]:
    """Files named by ``paths`` (one path or several); directories are searched recursively.

    ``find(folder)`` lists a folder's files when the tool has its own listing; by default every file
    matching one of ``patterns``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = (sorted(find(p)) if find is not None
                     else sorted({f for pat in patterns for f in p.rglob(pat) if f.is_file()}))
            if not found:
                raise SchemaError(
                    f"{str(p)!r}: no {what} found in this folder (looked for {list(patterns)}). "
                    "Point to the files or to the folder the tool wrote them to."
                )
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise SchemaError(f"file not found: {str(p)!r}. Check the path.")
    if not out:
        raise SchemaError(f"no {what} given. Pass a file, a list of files or a folder.")
    return out


def norm_text(s: str) -> str:
    """Case- and whitespace-insensitive form of an option text, for matching texts to scale labels."""
    return " ".join(str(s).split()).casefold()


def texts_to_codes(texts: Sequence[str], item: str, scales: Mapping[str, Scale] | None, where: str) -> list[str]:
    """Canonical codes of option texts shown for ``item``.

    With a scale for the item, each text must match one of its labels (ignoring case and runs of
    whitespace) or one of its codes. Without one, each text is its own code.
    """
    scale = scales.get(item) if scales else None
    if scale is None:
        bad = [t for t in texts if "|" in str(t)]
        if bad:
            raise SchemaError(
                f"{where}: option texts {preview(bad)} contain '|', which separates codes in `option_order`. "
                "Pass the reference (or `scales=`) so texts are mapped to the scale's codes."
            )
        return [str(t) for t in texts]
    by_label: dict[str, list[str]] = {}
    for option, label in zip(scale.options, scale.labels):
        by_label.setdefault(norm_text(label), []).append(option)
    by_code = {norm_text(c): c for c in scale.options}
    codes = []
    for t in texts:
        hit = by_label.get(norm_text(t))
        if hit is not None and len(hit) > 1:
            raise SchemaError(
                f"{where}: option text {t!r} matches the labels of several options {hit} of item {item!r}. "
                "Give each option of the scale a distinct label."
            )
        code = hit[0] if hit else by_code.get(norm_text(t))
        if code is None:
            raise SchemaError(
                f"{where}: option text {t!r} of item {item!r} matches no label or code of the item's scale "
                f"(labels {list(scale.labels)}, codes {list(scale.options)}). Make the scale's labels the "
                "option texts that were shown, or fix the item id."
            )
        codes.append(code)
    if len(set(codes)) != len(codes):
        raise SchemaError(
            f"{where}: the options shown for item {item!r} ({list(texts)}) map to repeated codes {codes}. "
            "Each shown option must be a different option of the scale."
        )
    return codes


def tokens_re(*atoms: str) -> re.Pattern:
    """One token of a literal made only of ``atoms``, brackets, braces, parentheses, ``,``, ``:`` and spaces."""
    return re.compile("|".join([r"\s+", r"[\[\](){},:]", *atoms]))


def literal(text, tokens: re.Pattern, where: str, expected: str):
    """``ast.literal_eval`` of ``text``, only after every character has been read as an admitted token.

    The check walks the string token by token (linear time, no backtracking), so names, calls,
    operators and anything else that is not plain data are refused before Python sees the text.
    """
    ok = isinstance(text, str)
    pos = 0
    while ok and pos < len(text):
        m = tokens.match(text, pos)
        ok = m is not None and m.end() > pos
        pos = m.end() if ok and m is not None else pos
    value = None
    if ok:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            ok = False
    if not ok:
        shown = repr(text)
        raise SchemaError(
            f"{where}: expected {expected}; got {shown[:200]}{'...' if len(shown) > 200 else ''}. The value is "
            "read as data only (no names, calls or expressions); fix the field or re-export the file."
        )
    return value


def check_factor_names(names: Iterable[str], where: str, source: str) -> None:
    clash = sorted(n for n in names if n in RESERVED or _PROB_COL.match(n))
    if clash:
        raise SchemaError(
            f"{where}: {source} {clash} would overwrite columns of the responses contract "
            f"({sorted(RESERVED)}, prob_*). Rename them in the source, or choose the factors with `factor_fields=`."
        )


def is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def scales_from(reference: Reference | None, scales) -> dict[str, Scale] | None:
    if scales is not None:
        from robustalign.schema import make_scales

        return make_scales(scales)
    return dict(reference.scales) if reference is not None else None


def finish(df: pd.DataFrame, reference, scales, drop_unreferenced: bool, importer: str, **kwargs) -> Responses:
    """Validate an imported raw table with :func:`make_responses` and keep the importer's exclusions."""
    sc = scales_from(reference, scales)
    if reference is None and sc is None:
        raise SchemaError(
            f"{importer}: pass the reference (or `scales=`) so that the options shown can be mapped to the "
            "scale's codes; without one, use the matching `read_*` function to get the raw table."
        )
    pre = df.attrs.get("exclusions", ExclusionLog())
    resp = make_responses(df, reference, scales=sc, drop_unreferenced=drop_unreferenced, **kwargs)
    resp.exclusions = pre.merged(resp.exclusions)
    return resp


def attach(df: pd.DataFrame, log: ExclusionLog, files: Sequence[Path], tool: str) -> pd.DataFrame:
    df.attrs["exclusions"] = log
    df.attrs["source"] = {"tool": tool, "files": [p.name for p in files]}
    return df
