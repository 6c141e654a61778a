"""Two hundred and more bad inputs: each ends with exit 2 and one message naming the file, the column or
row, and the fix; none exits 3 or prints a traceback; inputs that are accepted with exclusions keep
every row accounted for (input rows = kept rows + counted exclusions).

The cases are generated from one small, valid data set (2 models x 6 items x 2 formats, a 4-option
scale, 2 human groups) by breaking one thing at a time. Each case runs through the command line in
process (``main(argv)``; ``SystemExit`` caught) and through the Python loaders.
"""

from __future__ import annotations

import codecs
import re
import subprocess
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

import robustalign as ra
from robustalign._errors import RobustAlignError
from robustalign.cli import main
from robustalign.io import load_reference, load_responses
from robustalign.report.design import load_design

ITEMS = [f"q{i}" for i in range(1, 7)]
MODELS = ["m1", "m2"]
FORMATS = ["f1", "f2"]
LABELS = ["Strongly disagree", "Disagree", "Agree", "Strongly agree"]


def base_scales() -> pd.DataFrame:
    return pd.DataFrame({"item": ITEMS, "options": "1|2|3|4", "labels": "|".join(LABELS), "ordinal": True})


def base_reference() -> pd.DataFrame:
    rows = []
    for i, item in enumerate(ITEMS):
        for g, group in enumerate(["X", "Y"]):
            w = np.array([1.0 + (i + g) % 3, 2.0, 1.0 + (i * g) % 4, 1.5])
            for k, s in enumerate(np.round(w / w.sum(), 6)):
                rows.append({"item": item, "group": group, "option": str(k + 1), "share": s, "n": 500})
    df = pd.DataFrame(rows)
    last = df.groupby(["item", "group"]).cumcount() == 3  # make every cell sum to 1 exactly
    df.loc[last, "share"] += 1 - df.groupby(["item", "group"])["share"].transform("sum")[last]
    return df


def base_responses(kind: str = "answer") -> pd.DataFrame:
    rows = []
    for m, model in enumerate(MODELS):
        for i, item in enumerate(ITEMS):
            for f, fmt in enumerate(FORMATS):
                a = (i + m + f) % 4
                r = {"model": model, "item": item, "format": fmt}
                if kind == "answer":
                    r["answer"] = str(a + 1)
                elif kind == "answer_position":
                    r["answer_position"] = a + 1
                elif kind == "raw_text":
                    r["raw_text"] = "I will not answer that." if (m, i, f) == (0, 0, 0) else f"{a + 1}) {LABELS[a]}"
                elif kind == "prob":
                    p = np.roll([0.1, 0.2, 0.3, 0.4], a)
                    r.update({f"prob_{k + 1}": p[k] for k in range(4)})
                else:
                    r["score"] = a / 3
                rows.append(r)
    return pd.DataFrame(rows)


KINDS = ["answer", "answer_position", "raw_text", "prob", "score"]


@dataclass
class Case:
    name: str
    resp: object = None  # DataFrame or bytes; None = the base answers
    ref: object = None
    scales: object = None
    design: str | None = None
    fmt: dict = field(default_factory=dict)  # file -> csv | jsonl | parquet
    argv: list = field(default_factory=list)
    ok: bool = False  # accepted (possibly with exclusions)
    must: list = field(default_factory=list)  # regexes the message must contain
    where: str | None = None  # the file the message must name; default: the responses file
    kw: dict = field(default_factory=dict)  # keyword arguments of load_responses
    kw_ref: dict = field(default_factory=dict)  # keyword arguments of load_reference
    n_dropped: int = 0  # rows of the responses the loader must drop and count
    loader: bool = True  # also check the Python loaders
    index: dict = field(default_factory=dict)  # file -> write the pandas index too

    def __repr__(self):  # pytest ids
        return self.name


def _write(obj, path, fmt, index=False):
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    elif fmt == "csv":
        obj.to_csv(path, index=index)
    elif fmt == "jsonl":
        obj.to_json(path, orient="records", lines=True)
    else:
        obj.to_parquet(path, index=index)


def _files(case: Case, tmp_path):
    out = {}
    for key, default in (("responses", base_responses), ("reference", base_reference), ("scales", base_scales)):
        fmt = case.fmt.get(key, "csv")
        p = tmp_path / f"{key}.{fmt}"
        obj = getattr(case, {"responses": "resp", "reference": "ref", "scales": "scales"}[key])
        _write(default() if obj is None else obj, p, fmt, case.index.get(key, False))
        out[key] = p
    if case.design is not None:
        out["design"] = tmp_path / "design.toml"
        out["design"].write_text(case.design, encoding="utf-8")
    return out


def _argv(case: Case, f) -> list[str]:
    argv = ["audit", str(f["responses"]), "--reference", str(f["reference"]), "--scales", str(f["scales"]),
            "--quiet", *case.argv]
    for flag in ("--n-resamples", "--n-permutations"):  # small unless the case sets them
        if flag not in case.argv and flag[2:].replace("-", "_") not in (case.design or ""):
            argv += [flag, "50"]
    if "design" in f:
        argv += ["--design", str(f["design"])]
    return argv


# --------------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------------
def _with(df, **cols):
    df = df.copy()
    for k, v in cols.items():
        df[k] = v
    return df


def reserved_cases():
    for name in ["option", "status", "parse_rule", "n", "row", "total", "group", "estimate", "conf_level"]:
        for kind, fmt in (("answer", "csv"), ("answer", "jsonl"), ("raw_text", "csv"), ("prob", "parquet"),
                          ("score", "csv")):
            yield Case(f"reserved-{name}-{kind}-{fmt}", resp=_with(base_responses(kind), **{name: "x"}),
                       fmt={"responses": fmt}, must=[f"column '{name}'", "Rename"])


def duplicate_header_cases():
    for col in ["format", "model", "item", "answer"]:
        df = base_responses()
        text = df.to_csv(index=False)
        head, rest = text.split("\n", 1)
        j = list(df.columns).index(col)
        body = "\n".join(",".join([*r.split(","), r.split(",")[j]]) for r in rest.strip().split("\n"))
        yield Case(f"dup-header-responses-{col}", resp=f"{head},{col}\n{body}\n".encode(),
                   must=[f"'{col}' appears twice", "Rename"])
    for col in ["group", "share", "option"]:
        df = base_reference()
        text = df.to_csv(index=False)
        head, rest = text.split("\n", 1)
        j = list(df.columns).index(col)
        body = "\n".join(",".join([*r.split(","), r.split(",")[j]]) for r in rest.strip().split("\n"))
        yield Case(f"dup-header-reference-{col}", ref=f"{head},{col}\n{body}\n".encode(), where="reference.csv",
                   must=[f"'{col}' appears twice", "Rename"])


def index_column_cases():
    for key, attr in (("responses", "resp"), ("reference", "ref"), ("scales", "scales")):
        yield Case(f"index-column-{key}-csv", index={key: True}, where=f"{key}.csv",
                   must=["index", r"index=False"])
        df = {"responses": base_responses, "reference": base_reference, "scales": base_scales}[key]()
        df.insert(0, "Unnamed: 0", range(len(df)))
        for fmt in ["jsonl", "parquet"]:
            yield Case(f"index-column-{key}-{fmt}", **{attr: df}, fmt={key: fmt}, where=f"{key}.{fmt}",
                       must=["'Unnamed: 0'", r"index=False"])


def missing_answer_cases():
    for kind in ["answer", "answer_position", "score", "prob"]:
        cols = [f"prob_{k}" for k in range(1, 5)] if kind == "prob" else [kind]
        for fmt in ["csv", "jsonl", "parquet"]:
            for rows in ([0], [5, 17], [23]):
                df = base_responses(kind)
                df[cols] = df[cols].astype(object)
                df.loc[rows, cols] = None
                tag = f"{kind}-{fmt}-rows{'_'.join(map(str, rows))}"
                yield Case(f"missing-answer-{tag}", resp=df, fmt={"responses": fmt},
                           must=[r"--allow-missing", f"rows \\[{rows[0]}"])
                yield Case(f"missing-answer-allowed-{tag}", resp=df, fmt={"responses": fmt}, ok=True,
                           kw={"allow_missing": True}, n_dropped=len(rows), argv=["--allow-missing"])


def prob_cases():
    for fmt in ["csv", "jsonl", "parquet"]:
        empty = _with(base_responses("prob"), prob_5=np.nan)
        yield Case(f"prob5-empty-{fmt}", resp=empty, fmt={"responses": fmt}, ok=True)
        yield Case(f"prob5-zero-{fmt}", resp=_with(base_responses("prob"), prob_5=0.0), fmt={"responses": fmt},
                   ok=True)
        yield Case(f"prob5-nonzero-{fmt}", resp=_with(base_responses("prob"), prob_5=0.1), fmt={"responses": fmt},
                   must=["prob_", "beyond K", "rows"])
        yield Case(f"prob4-missing-{fmt}", resp=base_responses("prob").drop(columns="prob_4"),
                   fmt={"responses": fmt}, must=["`prob_4` is missing", "Add a `prob_j` column"])
        yield Case(f"prob-text-{fmt}", resp=_with(base_responses("prob"), prob_2=["high"] * 24),
                   fmt={"responses": fmt}, must=["`prob_2`", "not a number", "numbers in"])
        yield Case(f"prob-sum-{fmt}", resp=_with(base_responses("prob"), prob_1=0.5), fmt={"responses": fmt},
                   must=["sum to 1", "rows", "Renormalise"])
    yield Case("prob0", resp=_with(base_responses("prob"), prob_0=0.0), must=["prob_0", "start at 1"])


def nested_cases():
    for col in ["format", "model", "item"]:
        for val, what in (({"a": 1}, "dict"), ([1, 2], "list")):
            df = base_responses()
            df[col] = df[col].astype(object)
            df.at[3, col] = val
            yield Case(f"nested-{col}-{what}-jsonl", resp=df, fmt={"responses": "jsonl"},
                       must=[f"column `{col}` holds nested values", "flatten", r"rows \[3\]"])
    for kind, col in (("raw_text", "raw_text"), ("answer", "answer"), ("score", "score"), ("prob", "prob_1")):
        df = base_responses(kind)
        df[col] = df[col].astype(object)
        df.at[7, col] = {"text": "2) Disagree"}
        yield Case(f"nested-answer-{kind}-jsonl", resp=df, fmt={"responses": "jsonl"},
                   must=[f"column `{col}` holds nested values", "flatten", r"rows \[7\]"])
    df = base_responses()
    df["format"] = [[f] for f in df["format"]]
    yield Case("nested-format-list-parquet", resp=df, fmt={"responses": "parquet"},
               must=["column `format` holds nested values", "flatten"])
    df = base_reference()
    df["group"] = [{"name": g} for g in df["group"]]
    yield Case("nested-group-dict-jsonl", ref=df, fmt={"reference": "jsonl"}, where="reference.jsonl",
               must=["column `group` holds nested values", "flatten"])


DESIGN_BAD = {
    "metrics-int": ("metrics = 5", "`metrics`"),
    "metrics-list-int": ("metrics = [1, 2]", "`metrics`"),
    "metrics-unknown": ('metrics = ["cosine"]', "`metrics`"),
    "metrics-empty": ("metrics = []", "`metrics`"),
    "group-map-list": ('[alignment]\ngroup_map = ["X", "Y"]', "group_map"),
    "group-map-int": ("[alignment]\ngroup_map = 5", "group_map"),
    "group-map-nested": ("[alignment]\ngroup_map = { f1 = { a = 1 } }", "group_map"),
    "against-int": ("[alignment]\nagainst = 3", "against"),
    "stability-enabled-no": ('[stability]\nenabled = "no"', "enabled"),
    "stability-enabled-1": ("[stability]\nenabled = 1", "enabled"),
    "stability-factors-int": ("[stability]\nfactors = 3", "factors"),
    "stability-skip-list-int": ("[stability]\nskip = [1]", "skip"),
    "stability-not-table": ("stability = 5", "stability"),
    "seed-text": ('seed = "0"', "seed"),
    "seed-negative": ("seed = -1", "seed"),
    "n-resamples-float": ("n_resamples = 1500.5", "n_resamples"),
    "n-resamples-text": ('n_resamples = "2000"', "n_resamples"),
    "n-resamples-small": ("n_resamples = 3", "n_resamples"),
    "n-permutations-bool": ("n_permutations = true", "n_permutations"),
    "level-text": ('confidence_level = "0.95"', "confidence_level"),
    "level-95": ("confidence_level = 95", "confidence_level"),
    "title-int": ("title = 5", "title"),
    "bayes-fit-yes": ('[bayes]\nfit = "yes"', "fit"),
    "bayes-draws-text": ('[bayes]\ndraws = "500"', "draws"),
    "bayes-chains-zero": ("[bayes]\nchains = 0", "chains"),
    "bayes-model": ('[bayes]\nmodel = "big"', "model"),
    "domains-prefix-text": ('[domains]\nprefix = "1"', "prefix"),
    "domains-map-list": ('[domains]\nmap = ["a"]', "map"),
    "domains-two": ('[domains]\nprefix = 1\ncolumn = "d"', "domains"),
    "steering-by-int": ("[steering]\nby = 5", "by"),
    "steering-baseline-list": ("[steering]\nbaseline = [1]", "baseline"),
    "steering-compare-short": ('[steering]\ncompare = ["a"]', "compare"),
    "steering-enabled-text": ('[steering]\nenabled = "false"', "enabled"),
    "extrap-enabled-text": ('[extrapolability]\nenabled = "true"', "enabled"),
    "extrap-min-text": ('[extrapolability]\nmin_domain_items = "3"', "min_domain_items"),
    "claims-text-int": ('[[claims]]\nkind = "closer"\nmodel = "m1"\nthan = "m2"\ngroup = "X"\ntext = 5', "text"),
    "claims-model-int": ('[[claims]]\nkind = "closer"\nmodel = 1\nthan = "m2"\ngroup = "X"', "model"),
    "claims-kind": ('[[claims]]\nkind = "best"\nmodel = "m1"', "kind"),
    "claims-missing-key": ('[[claims]]\nkind = "closer"\nmodel = "m1"', "than"),
    "claims-not-array": ('claims = "all"', "claims"),
    "unknown-top": ("colour = 1", "unknown keys"),
    "unknown-section-key": ("[stability]\nfactor = [\"format\"]", "unknown keys"),
    "invalid-toml": ("metrics = [", "not valid TOML"),
}


DESIGN_NOT_IN_DATA = {  # names the data do not have: refused before the audit starts
    "against-absent": ('[alignment]\nagainst = "language"', "against"),
    "group-map-to-absent-group": ('[alignment]\nagainst = "format"\ngroup_map = { f1 = "ZZ", f2 = "X" }', "ZZ"),
    "stability-factor-absent": ('[stability]\nfactors = ["template"]', "template"),
    "steering-column-absent": ('[steering]\ncolumn = "persona"', "persona"),
    "steering-by-absent": ('[steering]\ncolumn = "format"\nby = ["nope"]', "nope"),
    "steering-metric-unknown": ('[steering]\ncolumn = "format"\nmetric = "cosine"', "cosine"),
    "steering-compare-absent": ('[steering]\ncolumn = "format"\ncompare = ["kind", "a", "b"]', "kind"),
    "claim-model-absent": ('[[claims]]\nkind = "closer"\nmodel = "gpt"\nthan = "m2"\ngroup = "X"', "gpt"),
    "claim-than-absent": ('[[claims]]\nkind = "closer"\nmodel = "m1"\nthan = "gpt"\ngroup = "X"', "gpt"),
    "claim-group-absent": ('[[claims]]\nkind = "closer"\nmodel = "m1"\nthan = "m2"\ngroup = "QQ"', "QQ"),
}


def design_cases():
    for name, (toml, key) in DESIGN_BAD.items():
        yield Case(f"design-{name}", design=toml, where="design.toml", must=[key])
    for name, (toml, key) in DESIGN_NOT_IN_DATA.items():
        yield Case(f"design-{name}", design=toml, where="design.toml", must=[key, "Fix the name"])
    yield Case("design-huge-resamples", design="n_resamples = 1_000_000_000_000", where="n_resamples",
               argv=[], must=["would need about", "iB", "Use at most"])


def header_only_cases():
    for key, attr, df in (("responses", "resp", base_responses()), ("reference", "ref", base_reference()),
                          ("scales", "scales", base_scales())):
        yield Case(f"header-only-{key}-csv", **{attr: df.head(0)}, where=f"{key}.csv", must=["no data rows"])
        yield Case(f"header-only-{key}-parquet", **{attr: df.head(0)}, fmt={key: "parquet"},
                   where=f"{key}.parquet", must=["no rows"])
        yield Case(f"empty-{key}-jsonl", **{attr: b""}, fmt={key: "jsonl"}, where=f"{key}.jsonl", must=["empty"])
        yield Case(f"empty-{key}-csv", **{attr: b""}, where=f"{key}.csv", must=["empty", "header row"])


def encoding_cases():
    ref = base_reference()
    ref["group"] = ref["group"].map({"X": "Côte d'Ivoire", "Y": "Y"})
    text = ref.to_csv(index=False)
    yield Case("latin1-reference", ref=text.encode("latin-1"), where="reference.csv",
               must=["not UTF-8", "line", "Re-save it as UTF-8"])
    yield Case("cp1252-reference", ref=text.replace("Y", "Yé").encode("cp1252"), where="reference.csv",
               must=["not UTF-8", "line", "Re-save it as UTF-8"])
    yield Case("utf16-nobom-reference", ref=text.encode("utf-16-le"), where="reference.csv",
               must=["not UTF-8", "Re-save it as UTF-8"])
    resp = base_responses()
    resp["model"] = resp["model"].map({"m1": "modèle-1", "m2": "m2"})
    yield Case("latin1-responses", resp=resp.to_csv(index=False).encode("latin-1"),
               must=["not UTF-8", "line", "Re-save it as UTF-8"])
    sc = base_scales()
    sc["labels"] = "Pas du tout d'accord|Plutôt pas|Plutôt|Tout à fait"
    yield Case("latin1-scales", scales=sc.to_csv(index=False).encode("latin-1"), where="scales.csv",
               must=["not UTF-8", "Re-save it as UTF-8"])
    yield Case("utf16-bom-responses", resp=codecs.BOM_UTF16_LE + base_responses().to_csv(index=False).encode(
        "utf-16-le"), ok=True)
    yield Case("utf16-bom-jsonl", resp=codecs.BOM_UTF16_LE + base_responses().to_json(
        orient="records", lines=True).encode("utf-16-le"), fmt={"responses": "jsonl"}, ok=True)


def trailing_comma_cases():
    for key, attr, df in (("responses", "resp", base_responses()), ("reference", "ref", base_reference()),
                          ("scales", "scales", base_scales())):
        lines = df.to_csv(index=False).strip().split("\n")
        rows_only = "\n".join([lines[0], *[r + "," for r in lines[1:]]]) + "\n"
        every = "\n".join(r + "," for r in lines) + "\n"
        yield Case(f"trailing-comma-rows-{key}", **{attr: rows_only.encode()}, where=f"{key}.csv",
                   must=["trailing comma", "Remove the trailing commas"])
        yield Case(f"trailing-comma-all-{key}", **{attr: every.encode()}, where=f"{key}.csv",
                   must=["trailing comma", "Remove the trailing commas"])


def na_name_cases():
    ref = base_reference()
    ref["group"] = ref["group"].map({"X": "NA", "Y": "None"})
    yield Case("group-named-NA", ref=ref, ok=True)
    yield Case("group-named-NA-jsonl", ref=ref, fmt={"reference": "jsonl"}, ok=True)
    resp = base_responses()
    resp["model"] = resp["model"].map({"m1": "NA", "m2": "null"})
    yield Case("model-named-NA", resp=resp, ok=True)
    resp = base_responses()
    resp["format"] = resp["format"].map({"f1": "NA", "f2": "n/a"})
    yield Case("factor-level-NA", resp=resp, ok=True)


def item_id_cases():
    sc = base_scales()
    sc["item"] = " " + sc["item"] + " "
    yield Case("item-ids-spaces-in-scales", scales=sc, ok=True)
    resp = base_responses()
    resp["item"] = resp["item"] + " "
    yield Case("item-ids-spaces-in-responses", resp=resp, ok=True)


def missing_cell_cases():
    ref = base_reference()
    yield Case("reference-missing-cell", ref=ref[~((ref["item"] == "q2") & (ref["group"] == "Y"))], ok=True)


def existing_check_cases():
    r = base_responses()
    ref = base_reference()
    sc = base_scales()
    yield Case("resp-missing-model", resp=r.drop(columns="model"), must=["missing columns", "model"])
    yield Case("resp-missing-item", resp=r.rename(columns={"item": "items"}), must=["did you mean 'items'"])
    yield Case("resp-no-answer", resp=r.drop(columns="answer"), must=["no answer column", "raw_text"])
    yield Case("resp-two-answer-kinds", resp=_with(r, score=0.5), must=["more than one kind", "Keep exactly one"])
    yield Case("resp-duplicate-rows", resp=pd.concat([r, r.head(2)]), must=["repeat", "sample"])
    yield Case("resp-off-scale", resp=_with(r, answer=["7"] * 24), must=["outside the item's scale", "rows"])
    yield Case("resp-answer-NA-text", resp=_with(r, answer=["NA"] * 24), must=["outside the item's scale"])
    yield Case("resp-position-zero", resp=_with(r.drop(columns="answer"), answer_position=0),
               must=["answer_position", "whole number"])
    yield Case("resp-position-five", resp=_with(r.drop(columns="answer"), answer_position=5),
               must=["answer_position", "whole number"])
    yield Case("resp-score-percent", resp=_with(r.drop(columns="answer"), score=50.0), must=["score", "Rescale"])
    yield Case("resp-score-text", resp=_with(r.drop(columns="answer"), score="high"), must=["score", "Rescale"])
    yield Case("resp-bad-order", resp=_with(r, option_order="1|2|3"), must=["option_order", "permutation"])
    yield Case("resp-order-unknown-code", resp=_with(r, option_order="1|2|3|9"), must=["option_order"])
    nan_factor = r.copy()
    nan_factor.loc[4, "format"] = None
    yield Case("resp-empty-factor", resp=nan_factor, must=["`format`", "missing values", "rows"])
    unref = r.copy()
    unref.loc[0, "item"] = "q99"
    yield Case("resp-unreferenced-item", resp=unref, must=["q99", "--drop-unreferenced|drop_unreferenced"])
    yield Case("resp-unreferenced-dropped", resp=unref, ok=True, kw={"drop_unreferenced": True}, n_dropped=1,
               argv=["--drop-unreferenced"])
    yield Case("ref-missing-share", ref=ref.rename(columns={"share": "shares"}), where="reference.csv",
               must=["missing columns", "did you mean 'shares'"])
    yield Case("ref-missing-group", ref=ref.drop(columns="group"), where="reference.csv", must=["group"])
    yield Case("ref-percent", ref=_with(ref, share=ref["share"] * 100), where="reference.csv",
               must=["share", "proportions, not percentages"])
    bad_sum = ref.copy()
    bad_sum.loc[0, "share"] += 0.2
    yield Case("ref-sum", ref=bad_sum, where="reference.csv", must=["sum to 1", "q1/X"])
    yield Case("ref-dup", ref=pd.concat([ref, ref.head(1)]), where="reference.csv", must=["duplicate", "Keep one"])
    off = ref.copy()
    off.loc[0, "option"] = "9"
    yield Case("ref-option-off-scale", ref=off, where="reference.csv", must=["outside the item's scale"])
    neg_n = ref.copy()
    neg_n["n"] = -1
    yield Case("ref-negative-n", ref=neg_n, where="reference.csv", must=["`n`", "non-negative"])
    nan_share = ref.copy()
    nan_share.loc[3, "share"] = None
    yield Case("ref-empty-share", ref=nan_share, where="reference.csv", must=["`share`", "missing values"])
    yield Case("scales-missing-ordinal", scales=sc.drop(columns="ordinal"), where="scales.csv",
               must=["missing columns", "ordinal"])
    yield Case("scales-bad-ordinal", scales=_with(sc, ordinal="maybe"), where="scales.csv",
               must=["ordinal", "true/false"])
    yield Case("scales-dup-item", scales=pd.concat([sc, sc.head(1)]), where="scales.csv",
               must=["more than once", "once"])
    yield Case("scales-one-option", scales=_with(sc, options="1", labels="only"), where="scales.csv",
               must=["at least 2 options"])
    yield Case("scales-label-count", scales=_with(sc, labels="a|b"), where="scales.csv", must=["labels"])
    short = sc[sc["item"] != "q3"]
    yield Case("scales-item-missing", scales=short, where="reference.csv", must=["q3", "--scales"])
    yield Case("unsupported-type", resp=b"model,item\n", fmt={"responses": "xlsx"}, where="responses.xlsx",
               must=["unsupported file type"], loader=True)


def file_format_cases():
    r = base_responses()
    for sep, word in ((";", "semicolons"), ("\t", "tabs")):
        yield Case(f"separator-{word}", resp=r.to_csv(index=False, sep=sep).encode(), must=[word, "commas"])
    lines = r.to_json(orient="records", lines=True).strip().split("\n")
    for i, bad in ((0, '{"model": "m1", "item": '), (5, "[1, 2, 3]"), (23, "model,item,answer")):
        text = "\n".join([*lines[:i], bad, *lines[i + 1:]]) + "\n"
        yield Case(f"jsonl-bad-line-{i + 1}", resp=text.encode(), fmt={"responses": "jsonl"},
                   must=[f"line {i + 1}", "one JSON object per line"])
    yield Case("parquet-corrupt", resp=b"PAR1 not really parquet", fmt={"responses": "parquet"},
               must=["could not be read as parquet", "re-export"])
    yield Case("csv-ragged-row", resp=(r.to_csv(index=False) + "m1,q1,f1,1,extra\n").encode(),
               must=["more fields than the header", "Quote"])
    far = pd.concat([r] * 100, ignore_index=True).assign(sample=lambda d: d.index)  # 2,400 rows
    yield Case("csv-ragged-row-far-down", resp=(far.to_csv(index=False) + "m1,q1,f1,1,0,extra\n").encode(),
               must=["line 2402", "Quote"])


def group_col_cases():
    ref = base_reference()
    yield Case("group-col-absent", argv=["--group-col", "country"], where="reference.csv",
               must=["'country'` is not a column", "--group-col"])
    yield Case("group-col-and-group", ref=ref.assign(country=ref["group"]), argv=["--group-col", "country"],
               where="reference.csv", must=["both a `group` column", "rename"])
    yield Case("group-col-used", ref=ref.rename(columns={"group": "country"}), argv=["--group-col", "country"],
               ok=True, kw_ref={"group_col": "country"})


def cli_cases():
    yield Case("n-resamples-huge-flag", argv=["--n-resamples", str(10**12)], where="--n-resamples",
               must=["would need about", "Use at most"])
    yield Case("n-permutations-huge-flag", argv=["--n-permutations", str(10**13)], where="--n-permutations",
               must=["would need about", "Use at most"])
    yield Case("n-resamples-tiny-flag", argv=["--n-resamples", "3"], where="--n-resamples", must=["at least 10"],
               loader=False)


GENERATORS = [reserved_cases, duplicate_header_cases, index_column_cases, missing_answer_cases, prob_cases,
              nested_cases, design_cases, header_only_cases, encoding_cases, trailing_comma_cases, na_name_cases,
              item_id_cases, missing_cell_cases, existing_check_cases, file_format_cases, group_col_cases,
              cli_cases]
CASES = [c for g in GENERATORS for c in g()]


def test_the_generator_makes_at_least_200_distinct_bad_inputs():
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names)
    assert sum(not c.ok for c in CASES) >= 200


# --------------------------------------------------------------------------------------------------
# every case through the CLI (in process) and the Python loaders
# --------------------------------------------------------------------------------------------------
def _run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    return code, err


def _loaders(case: Case, f):
    design = load_design(f.get("design"))
    kw_ref = dict(case.kw_ref)
    if "--group-col" in case.argv:
        kw_ref["group_col"] = case.argv[case.argv.index("--group-col") + 1]
    ref = load_reference(f["reference"], scales=f["scales"], **kw_ref)
    resp = load_responses(f["responses"], ref, **case.kw)
    design.check_data(resp, ref)
    from robustalign.cli import _check_memory

    class _A:
        n_resamples = int(case.argv[case.argv.index("--n-resamples") + 1]) if "--n-resamples" in case.argv else None
        n_permutations = (int(case.argv[case.argv.index("--n-permutations") + 1])
                          if "--n-permutations" in case.argv else None)

    _check_memory(_A, design, resp, ref)
    return ref, resp


def _n_input_rows(case: Case, f) -> int:
    if isinstance(case.resp, pd.DataFrame):
        return len(case.resp)
    return len(base_responses())


@pytest.mark.parametrize("case", [c for c in CASES if not c.ok], ids=repr)
def test_bad_input_exits_2_with_a_message_naming_file_place_and_fix(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("robustalign.report.run_audit", _no_audit)
    f = _files(case, tmp_path)
    if case.fmt.get("responses") == "xlsx":
        f["responses"] = tmp_path / "responses.xlsx"
        f["responses"].write_bytes(case.resp)
    code, err = _run_cli(_argv(case, f), capsys)
    assert code == 2, (code, err)
    assert "Traceback" not in err and "internal error" not in err
    msg = err.strip()
    assert msg.startswith("robustalign: error:") and msg.count("\n") == 0, msg
    where = case.where or f["responses"].name
    assert where in msg, msg
    assert _PLACE.search(msg) and _FIX.search(msg), msg  # names a column, row, line or key, and what to do
    for pat in case.must:
        assert pd.Series([msg]).str.contains(pat, regex=True).iloc[0], (pat, msg)
    if case.loader and case.name != "n-resamples-tiny-flag":
        with pytest.raises((ra.SchemaError, ValueError, RobustAlignError)) as e:
            _loaders(case, f)
        assert where in str(e.value) or where.startswith("--"), str(e.value)


_PLACE = re.compile(r"column|rows?\b|line|header|`|\[\w+\]|\bkey|item|file|--[a-z]")
_FIX = re.compile(r"Rename|Re-save|Remove|\bAdd\b|Give|Fix|Check|\bpass\b|\bUse\b|Quote|Write|Map |Rescale|Keep|Fill|"
                  r"flatten|Drop|delete|Name the|Record|Recode|Renormalise|give it|re-export|Convert", re.IGNORECASE)


def _no_audit(*args, **kwargs):  # bad input must be refused before the audit starts
    raise AssertionError("the audit ran on bad input")


@pytest.mark.parametrize("case", [c for c in CASES if c.ok], ids=repr)
def test_accepted_input_keeps_every_row_accounted_for(case, tmp_path, recwarn):
    f = _files(case, tmp_path)
    ref, resp = _loaders(case, f)
    n_in = _n_input_rows(case, f)
    dropped = resp.exclusions.total(table="responses", action="dropped")
    assert dropped == case.n_dropped
    assert len(resp.data) + dropped == n_in
    assert sorted(resp.data["row"]) == sorted(set(range(n_in)) - {r for e in resp.exclusions.entries
                                                                  if e["action"] == "dropped" for r in e["rows"]})
    if case.name.startswith("missing-answer-allowed"):
        assert resp.exclusions.to_frame()["reason"].tolist() == ["missing answer"]
    if case.name.startswith("group-named-NA"):
        assert ref.groups == ["NA", "None"]
    if case.name == "model-named-NA":
        assert resp.models == ["NA", "null"]
    if case.name == "factor-level-NA":
        assert resp.levels("format") == ["NA", "n/a"]
    if case.name.startswith("item-ids"):
        assert resp.items == ITEMS and ref.items == ITEMS
    if case.name.startswith("utf16"):
        assert any("UTF-16" in str(w.message) for w in recwarn)
    if case.name == "reference-missing-cell":
        log = ref.exclusions.to_frame()
        row = log[log["action"] == "absent"]
        assert len(row) == 1 and row["n_rows"].iloc[0] == 1 and "q2/Y" in row["example_rows"].iloc[0]
        assert ref.n_array(["q2"], ["Y"]).size == 1 and np.isnan(ref.array(["q2"], ["Y"])).all()


# --------------------------------------------------------------------------------------------------
# end to end: a few through a real process, and valid data that used to abort the audit
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reserved-option-answer-csv", "design-stability-enabled-no",
                                  "prob5-nonzero-csv", "latin1-reference"])
def test_in_a_subprocess_bad_input_is_one_line_and_exit_2(name, tmp_path):
    case = next(c for c in CASES if c.name == name)
    f = _files(case, tmp_path)
    p = subprocess.run([sys.executable, "-m", "robustalign.cli", *_argv(case, f)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("robustalign: error:") and (case.where or "responses.csv") in p.stderr


def test_raw_text_with_a_second_factor_and_an_invalid_answer_runs_the_audit(tmp_path, capsys, monkeypatch):
    """Raw text with format, option order and samples and one refusal: the audit runs (it used to stop)."""
    from robustalign.simulate import simulate

    sim = simulate(n_items=12, n_groups=3, n_models=2, n_samples=2, rng=2)
    r = sim.responses.copy()
    shown = r["option_order"].str.split("|")
    r["raw_text"] = [f"{p}) option {c[p - 1]}" for p, c in zip(r["answer_position"], shown)]
    r.loc[0, "raw_text"] = "I cannot answer that."
    case = Case("raw-two-factors", resp=r.drop(columns="answer_position"), ref=sim.reference, scales=sim.scales)
    f = _files(case, tmp_path)
    import robustalign.report as rr

    seen, real = {}, rr.run_audit

    def keep(*args, **kwargs):
        seen["report"] = real(*args, **kwargs)
        return seen["report"]

    monkeypatch.setattr(rr, "run_audit", keep)
    code, err = _run_cli(_argv(case, f), capsys)
    assert code == 0, err
    tests = seen["report"].section("validity").tables["validity_tests"]
    assert list(tests["model"]) == ["model_1", "model_2"]
    assert (tests["n_blocks"] == 12 * 2 * 2).all()  # item x sample x option order, per format level


def test_validity_pairs_by_item_and_the_other_factors():
    """Cochran's Q over blocks item x sample equals statsmodels on the table built by hand."""
    from statsmodels.stats.contingency_tables import cochrans_q

    from robustalign.schema import make_reference, make_responses
    from robustalign.validity import validity_rates

    rng = np.random.default_rng(5)
    rows = []
    for item in ITEMS:
        for s in range(4):
            for fmt in ["a", "b", "c"]:
                ok = rng.random() < {"a": 0.9, "b": 0.6, "c": 0.4}[fmt]
                rows.append({"model": "m", "item": item, "sample": s, "format": fmt,
                             "raw_text": "2) Disagree" if ok else "no comment"})
    df = pd.DataFrame(rows)
    ref = make_reference(base_reference(), base_scales())
    res = validity_rates(make_responses(df, ref), condition="format")
    table = (df.assign(v=(df["raw_text"] != "no comment").astype(int))
             .pivot_table(index=["item", "sample"], columns="format", values="v").to_numpy())
    want = cochrans_q(table)
    assert res.tests["p_value"].iloc[0] == pytest.approx(want.pvalue, rel=1e-12)
    assert res.tests["n_blocks"].iloc[0] == 24 and res.tests["n_items"].iloc[0] == 6


def test_missing_answers_are_counted_not_imputed_by_the_cli(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_audit(resp, ref, **kw):
        seen["resp"] = resp
        raise ra.SchemaError("stop here")

    monkeypatch.setattr("robustalign.report.run_audit", fake_audit)
    df = base_responses()
    df.loc[[2, 9], "answer"] = None
    case = Case("m", resp=df, argv=["--allow-missing"])
    f = _files(case, tmp_path)
    _run_cli(_argv(case, f), capsys)
    out = seen["resp"]
    assert len(out.data) == 22 and out.exclusions.total(action="dropped") == 2
    assert 2 not in set(out.data["row"]) and 9 not in set(out.data["row"])


def test_memory_check_against_a_closed_form():
    from robustalign._validation import check_resample_memory

    check_resample_memory(1000, 100, budget=8 * 1000 * 100)  # exactly fits
    with pytest.raises(ValueError, match=r"about 782\.0 KiB .*Use at most 1,000 "):
        check_resample_memory(1001, 100, budget=8 * 1000 * 100)  # 800,800 bytes = 782.0 KiB


@pytest.mark.parametrize("columns, message", [
    (["model", "item", "model", "answer"], r"column names appear more than once: \['model'\]"),
    (["model", "item", 3, "answer"], r"column names must be texts; got \[3\] \(int\)"),
])
def test_python_tables_with_repeated_or_numeric_column_names_are_refused(columns, message):
    from robustalign.schema import make_reference, make_responses

    df = base_responses()
    df.columns = columns
    with pytest.raises(ra.SchemaError, match=message):
        make_responses(df, make_reference(base_reference(), base_scales()))


@pytest.mark.filterwarnings("default::robustalign._errors.RobustAlignWarning")  # shown, as for a user
def test_cli_reports_a_decoded_utf16_file_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("robustalign.report.run_audit", _no_audit)
    case = next(c for c in CASES if c.name == "utf16-bom-responses")
    case = Case("utf16-then-stop", resp=case.resp, design='[stability]\nfactors = ["nope"]')
    f = _files(case, tmp_path)
    code, err = _run_cli(_argv(case, f), capsys)
    assert code == 2
    lines = err.strip().split("\n")
    assert lines[0] == ("robustalign: warning: responses.csv: read as UTF-16 (byte-order mark found); re-save it "
                        "as UTF-8 to silence this.")
    assert lines[1].startswith("robustalign: error: design file 'design.toml'") and len(lines) == 2


def test_validity_ignores_a_factor_nested_in_the_condition_when_pairing():
    """A template that only occurs with one format cannot pair formats: items are the pairs (McNemar)."""
    from statsmodels.stats.contingency_tables import mcnemar

    from robustalign.schema import make_reference, make_responses
    from robustalign.validity import validity_rates

    ok = {"a": [1, 1, 1, 0, 1, 1], "b": [0, 1, 0, 0, 1, 0]}
    rows = [{"model": "m", "item": item, "format": fmt, "template": f"t_{fmt}",
             "raw_text": "2) Disagree" if ok[fmt][i] else "no comment"}
            for i, item in enumerate(ITEMS) for fmt in "ab"]
    res = validity_rates(make_responses(pd.DataFrame(rows), make_reference(base_reference(), base_scales())),
                         condition="format")
    a, b = np.array(ok["a"]), np.array(ok["b"])
    table = [[np.sum(a & b), np.sum(a & (1 - b))], [np.sum((1 - a) & b), np.sum((1 - a) & (1 - b))]]
    assert res.tests["test"].iloc[0] == "mcnemar_exact" and res.tests["n_blocks"].iloc[0] == 6
    assert res.tests["p_value"].iloc[0] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
