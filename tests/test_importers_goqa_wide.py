"""GlobalOpinionQA-style reference import and the wide CSV layout.

The GOQA file is written in the test in the dataset's own format: ``options`` is the Python repr of a
list and ``selections`` the Python repr of a ``defaultdict(list, ...)``, produced here by ``repr`` just
as in the released file.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from robustalign import SchemaError, make_reference
from robustalign.importers import from_goqa, from_wide_csv, read_goqa_questions, read_wide_csv

IMPORTANCE = ["Very important", "Rather important", "Not very important", "Not at all important"]
ROWS = [
    ("Do you approve of the way the UN is handling world affairs?", ["Approve", "Disapprove", "DK/Refused"],
     {"Belgium": [0.4, 0.5, 0.1], "India (Non-national sample)": [0.5, 0.45, 0.05], "France": [0.3, 0.6, 0.1]},
     "GAS"),
    ("How important is family in your life?", IMPORTANCE,
     {"Japan": [0.2, 0.3, 0.3, 0.2], "Côte d'Ivoire": [0.1, 0.2, 0.3, 0.4], "Germany": [0.5, 0.5]}, "WVS"),
    ("Is the economy good?", ["Good", "Bad"], {"Mexico": [0.5, 0.3]}, "GAS"),
    ("Should the state own more businesses?", ["More", "Same", "Fewer"], {"Chile": [0.333, 0.333, 0.333]}, "GAS"),
    ("Is religion important?", ["Yes", "No", "Refused"], {"Peru": [0.0, 0.0, 1.0], "Chile": [0.6, 0.3, 0.1]}, "GAS"),
]


@pytest.fixture
def goqa_csv(tmp_path):
    p = tmp_path / "global_opinions.csv"
    pd.DataFrame(
        [{"question": q, "selections": repr(defaultdict(list, sel)), "options": repr(opts), "source": src}
         for q, opts, sel, src in ROWS]
    ).to_csv(p, index=False)
    return p


def _reasons(ref) -> dict:
    ex = ref.exclusions.to_frame()
    return {(r.reason, r.action): r.n_rows for r in ex.itertuples()}


def test_goqa_reference_keeps_shares_and_counts_every_drop(goqa_csv):
    assert repr(defaultdict(list, {"a": [1.0]})).startswith("defaultdict(<class 'list'>, {")  # the file's format
    ref = from_goqa(goqa_csv)
    assert ref.items == ["goqa_0", "goqa_1", "goqa_3", "goqa_4"]
    s = ref.shares.set_index(["item", "group", "option"])["share"]
    assert s.loc[("goqa_0", "Belgium")].tolist() == [0.4, 0.5, 0.1]
    assert s.loc[("goqa_1", "Côte d'Ivoire")].tolist() == [0.1, 0.2, 0.3, 0.4]
    sc = ref.scales["goqa_1"]
    assert sc.options == ("1", "2", "3", "4") and sc.labels == tuple(IMPORTANCE) and not sc.ordinal
    assert ref.scales["goqa_0"].labels == ("Approve", "Disapprove", "DK/Refused")  # kept by default
    assert not ref.n_known  # GOQA has no respondent counts: unknown, and recorded as such
    r = _reasons(ref)
    assert r[("non-national sample (kept; compare with care)", "flagged")] == 1
    assert r[("country distribution has a different length than the options", "dropped")] == 1  # Germany
    assert r[("shares miss 1 by more than share_tol=0.01", "dropped")] == 1  # Mexico
    assert r[("no usable country distribution", "dropped")] == 1  # goqa_2
    assert any(reason.startswith("shares summed to 1") and act == "recoded" for reason, act in r)  # Chile 0.999
    qs = read_goqa_questions(goqa_csv)
    assert qs["item"].tolist() == [f"goqa_{i}" for i in range(5)]
    assert qs.loc[1, "options"] == IMPORTANCE and qs.loc[0, "source"] == "GAS"


def test_goqa_refused_options_non_national_samples_and_ordinal_scales(goqa_csv):
    ref = from_goqa(goqa_csv, refused="drop_option", non_national="drop", ordinal={"goqa_1"})
    assert ref.scales["goqa_0"].labels == ("Approve", "Disapprove")
    s = ref.shares.set_index(["item", "group", "option"])["share"]
    np.testing.assert_allclose(s.loc[("goqa_0", "Belgium")].to_numpy(), [0.4 / 0.9, 0.5 / 0.9])
    assert "India (Non-national sample)" not in ref.groups
    assert ref.scales["goqa_1"].ordinal and not ref.scales["goqa_3"].ordinal
    assert ("goqa_4", "Peru") not in set(zip(ref.shares["item"], ref.shares["group"]))
    r = _reasons(ref)
    assert r[("only the refused option was chosen (refused='drop_option')", "dropped")] == 1
    # Belgium, France (goqa_0) and Chile (goqa_4); India was dropped, Peru had only the refused option
    assert r[("options matching 'refused' removed and shares renormalised", "recoded")] == 3
    assert r[("non-national sample (non_national='drop')", "dropped")] == 1

    ref = from_goqa(goqa_csv, refused="drop_question")
    assert ref.items == ["goqa_1", "goqa_3"]
    assert _reasons(ref)[("question has an option matching 'refused' (refused='drop_question')", "dropped")] == 2


def test_goqa_strings_are_parsed_as_data_only(goqa_csv, tmp_path):
    raw = pd.read_csv(goqa_csv)
    raw.loc[2, "selections"] = "defaultdict(<class 'list'>, {'Mexico': [__import__('os').getpid(), 0.5]})"
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    with pytest.raises(SchemaError, match=r"bad.csv row 3 \(item 'goqa_2'\): field `selections`: expected a dict .*data only"):
        from_goqa(bad)
    raw = pd.read_csv(goqa_csv)
    raw.loc[0, "options"] = "['Yes', 'No'] + ['Maybe']"
    raw.to_csv(bad, index=False)
    with pytest.raises(SchemaError, match=r"row 1 \(item 'goqa_0'\): field `options`: expected a list of option texts"):
        from_goqa(bad)
    with pytest.raises(SchemaError, match=r"missing columns \['selections'\]"):
        raw.drop(columns="selections").to_csv(bad, index=False)
        from_goqa(bad)


# --------------------------------------------------------------------------------------------------
# wide CSV
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def reference():
    items = ["Q1", "Q2"]
    shares = pd.DataFrame([{"item": i, "group": "Japan", "option": str(k + 1), "share": 0.25}
                           for i in items for k in range(4)])
    scales = pd.DataFrame({"item": items, "options": "1|2|3|4", "labels": "|".join(IMPORTANCE), "ordinal": True})
    return make_reference(shares, scales)


def test_wide_counts_expand_to_one_row_per_answer(tmp_path, reference):
    p = tmp_path / "wide.csv"
    p.write_text(
        "model,item,language,opt_1,opt_2,opt_3,opt_4\n"
        "m-a,Q1,en,3,1,0,0\n"
        "m-a,Q1,de,0,0,2,2\n"
        "m-a,Q2,en,1,1,1,1\n"
        "m-b,Q2,en,0,0,0,0\n",
        encoding="utf-8",
    )
    resp = from_wide_csv(p, reference)
    assert resp.kind == "choice" and set(resp.factors) == {"language", "sample"}
    assert len(resp.data) == 4 + 4 + 4
    keys, P = resp.distributions(["model", "item", "language"])
    got = {tuple(k): list(p) for k, p in zip(keys[["model", "item", "language"]].itertuples(index=False), P)}
    assert got[("m-a", "Q1", "en")] == [0.75, 0.25, 0, 0] and got[("m-a", "Q1", "de")] == [0, 0, 0.5, 0.5]
    assert resp.data.groupby(["model", "item", "language"])["sample"].agg(list).tolist() == [[1, 2, 3, 4]] * 3
    ex = resp.exclusions.to_frame()
    assert ex.loc[ex["reason"].str.contains("no answers"), "n_rows"].tolist() == [1]


def test_wide_probabilities_follow_the_order_shown(tmp_path, reference):
    p = tmp_path / "wide.csv"
    p.write_text(
        "model,item,option_order,opt_1,opt_2,opt_3,opt_4\n"
        "m-a,Q1,1|2|3|4,0.1,0.2,0.3,0.4\n"
        "m-a,Q1,4|3|2|1,0.1,0.2,0.3,0.4\n",
        encoding="utf-8",
    )
    raw = read_wide_csv(p, reference)
    assert raw.loc[1, ["prob_1", "prob_2", "prob_3", "prob_4"]].tolist() == [0.4, 0.3, 0.2, 0.1]  # as shown
    resp = from_wide_csv(p, reference)
    assert resp.kind == "prob"
    np.testing.assert_allclose(resp.data[["prob_1", "prob_2", "prob_3", "prob_4"]].to_numpy(), [[0.1, 0.2, 0.3, 0.4]] * 2)


def test_wide_errors_say_what_to_fix(tmp_path, reference):
    p = tmp_path / "wide.csv"
    p.write_text("model,item,opt_1,opt_2,opt_3,opt_4\nm,Q1,1,0,0,0\nm,Q2,0,1,0,0\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"counts or as one-hot probabilities. Pass values="):
        read_wide_csv(p, reference)
    assert len(read_wide_csv(p, reference, values="counts")) == 2
    p.write_text("model,item,opt_1,opt_2,opt_3\nm,Q1,1,2,0\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"item 'Q1' has options .* no columns for \['4'\]"):
        read_wide_csv(p, reference)
    p.write_text("model,item,opt_1,opt_2\nm,Q1,0.2,0.5\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"neither counts .* nor probabilities .*row 1 sums to 0.7000"):
        read_wide_csv(p)
    p.write_text("model,item,answer,opt_1,opt_2\nm,Q1,x,1,2\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"columns \['answer'\] would overwrite"):
        read_wide_csv(p)


def test_importing_the_importers_stays_light():
    import subprocess
    import sys

    code = ("import sys, robustalign.importers\n"
            "print(' '.join(m for m in ('inspect_ai', 'lm_eval', 'datasets', 'pymc', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
