"""The persona route under the mistakes a new user makes: every malformed input gives a SchemaError or
ValueError that names the file, the column, the rows or values and the fix, or a counted exclusion that
the report shows. Nothing is dropped silently.

Each case is a small respondent file (written to disk, so messages must name it) or a responses table,
changed in one way from a valid one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustalign import SchemaError, make_responses
from robustalign.persona import assess_persona, load_respondent_reference, persona_scores
from robustalign.schema import make_scales

ITEMS = ["q1", "q2", "q3"]
SCALES = pd.DataFrame({"item": ITEMS, "options": "1|2|3|4", "ordinal": True})


def _people() -> pd.DataFrame:
    """Six respondents in two countries, wide (one column per item)."""
    return pd.DataFrame({"respondent": [f"r{i}" for i in range(6)], "country": list("AAABBB"),
                         "age": ["young", "old", "young", "old", "young", "old"],
                         "q1": [1, 2, 3, 4, 1, 2], "q2": [2, 2, 3, 3, 4, 4], "q3": [1, 1, 2, 2, 3, 3]})


def _responses(people: pd.DataFrame) -> pd.DataFrame:
    ids = people["respondent"].tolist()
    rows = [{"model": "m", "item": q, "persona": r, "sample": s, "answer": 1 + (i + s) % 4}
            for i, r in enumerate(ids) for q in ITEMS for s in range(2)]
    return pd.DataFrame(rows)


def _write(tmp_path, table: pd.DataFrame | str, name: str = "people.csv"):
    p = tmp_path / name
    if isinstance(table, str):
        p.write_text(table, encoding="utf-8")
    elif name.endswith(".csv"):
        table.to_csv(p, index=False)
    return p


def _load(tmp_path, table, name="people.csv", **kw):
    kw.setdefault("group_col", "country")
    return load_respondent_reference(_write(tmp_path, table, name), SCALES, **kw)


def _long(people: pd.DataFrame) -> pd.DataFrame:
    return people.melt(id_vars=["respondent", "country", "age"], var_name="item", value_name="answer")


# --------------------------------------------------------------------------------------------------
# respondent files: errors that name the file, the column, the rows or values, and the fix
# --------------------------------------------------------------------------------------------------
def _dup_id(p):
    p.loc[1, "respondent"] = "r0"
    return p


def _dup_id_other_country(p):
    p.loc[4, "respondent"] = "r0"
    return p


def _off_scale(p):
    p.loc[2, "q2"] = 7
    return p


def _missing_code(p):
    p.loc[3, "q1"] = -99
    return p


def _no_group(p):
    p.loc[5, "country"] = np.nan
    return p


def _no_id(p):
    p.loc[2, "respondent"] = np.nan
    return p


ERRORS = [
    # (case, table (or text) -> written to people.csv, kwargs, pattern the message must match)
    ("missing respondent column", lambda: _people().rename(columns={"respondent": "id"}), {},
     r"people\.csv: no column 'respondent' with the respondent id; found \['id', .*Rename the column or name it "
     r"\(`respondent_col=`"),
    ("country column named differently", _people, {"group_col": "group"},
     r"people\.csv: no column 'group' with the group \(country\); found \[.*'country'.*`group_col=`"),
    ("duplicate respondent ids", lambda: _dup_id(_people()), {},
     r"people\.csv: column `age` differs between rows of one respondent: \['r0'\] \(e\.g\. rows \[0, 1\]\)"
     r".*give the rows distinct respondent ids"),
    ("duplicate respondent ids across countries", lambda: _dup_id_other_country(_people()), {},
     r"people\.csv: column `country` differs between rows of one respondent: \['r0'\]"),
    ("duplicate ids with identical rows", lambda: pd.concat([_people(), _people().iloc[[2]]], ignore_index=True), {},
     r"people\.csv: 6 rows repeat the same respondent x item \(rows \[2, 6\].*Keep one answer per respondent"),
    ("answer off the scale", lambda: _off_scale(_people()), {},
     r"people\.csv: answers off the item's scale at rows \[2\]: e\.g\. respondent 'r2' item 'q2' answer '7' not in "
     r"\('1', '2', '3', '4'\).*`missing_codes=`"),
    ("missing code not declared", lambda: _missing_code(_people()), {},
     r"people\.csv: answers off the item's scale at rows \[3\].*answer '-99'.*list codes meaning 'no answer' in "
     r"`missing_codes=`"),
    ("respondent without a country", lambda: _no_group(_people()), {},
     r"people\.csv: respondents without a group: \['r5'\] \(column `country` empty at rows \[5\]\)"),
    ("row without a respondent id", lambda: _no_id(_people()), {},
     r"people\.csv: column `respondent` is empty at rows \[2\]\. Give every row its respondent id"),
    ("long file with a misnamed answer column", lambda: _long(_people()).rename(columns={"answer": "response"}), {},
     r"people\.csv: no `item` and `answer` columns \(long format\) and no column named after an item.*found "
     r"\['respondent', 'country', 'age', 'item', 'response'\]"),
    ("wide file with item columns not in the scales", lambda: _people().rename(columns={"q1": "Q_1", "q2": "Q_2",
                                                                                      "q3": "Q_3"}), {},
     r"people\.csv: no `item` and `answer` columns .*found \[.*'Q_1'"),
    ("long file with items not in the scales", lambda: _long(_people()).replace({"item": {"q3": "q9"}}), {},
     r"people\.csv: items \['q9'\] have no scale.*Add them to the scales file"),
    ("attribute named but absent", _people, {"attributes": ["education"]},
     r"people\.csv: attribute columns \['education'\] are not in the table; found \[.*`attributes=`"),
    ("empty file", lambda: "", {}, r"people\.csv: the file is empty \(no header row\)\. Write a header row"),
    ("header only", lambda: "respondent,country,q1,q2,q3\n", {},
     r"people\.csv: has a header row \(\['respondent', 'country', 'q1', 'q2', 'q3'\]\) but no data rows"),
]


@pytest.mark.parametrize(("table", "kw", "match"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_malformed_respondent_files_are_refused_with_the_file_the_place_and_the_fix(tmp_path, table, kw, match):
    with pytest.raises(SchemaError, match=match):
        _load(tmp_path, table(), **kw)


@pytest.mark.parametrize("name, content", [
    ("people.xlsx", b"PK\x03\x04 not really a spreadsheet"),
    ("people.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"),
    ("people.parquet", b"respondent,country\nr0,A\n"),
])
def test_a_file_that_is_not_a_table_is_refused_with_its_name(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(SchemaError, match=rf"{name.replace('.', r'\.')}: (unsupported file type|could not be read|"
                                          r"is not UTF-8 text)"):
        load_respondent_reference(tmp_path / name, SCALES, group_col="country")


# --------------------------------------------------------------------------------------------------
# counted exclusions: what is left out is in the exclusion log and the report's notes
# --------------------------------------------------------------------------------------------------
def test_declared_missing_codes_and_empty_answers_are_counted(tmp_path):
    p = _people()
    p.loc[3, "q1"] = -99
    p.loc[4, "q2"] = np.nan
    rr = _load(tmp_path, p, missing_codes=[-99])
    log = rr.exclusions.to_frame()
    assert log["n_rows"].sum() == 2 and log["reason"].str.contains("no answer").all()
    assert len(rr.answers) == 6 * 3 - 2
    silent = _people().astype({"q1": object, "q2": object, "q3": object})
    silent.loc[0, ITEMS] = ["DK", "DK", "DK"]
    rr = _load(tmp_path, silent, missing_codes=["DK"])
    assert "r0" not in rr.ids
    assert rr.exclusions.to_frame()["reason"].str.contains("respondent answered no item").any()


def test_items_in_responses_without_respondent_answers_are_counted_and_reported(tmp_path):
    people = _people()
    rr = _load(tmp_path, people)
    raw = _responses(people)
    extra = raw[raw["item"] == "q1"].assign(item="q4")
    scales = pd.concat([SCALES, pd.DataFrame({"item": ["q4"], "options": "1|2|3|4", "ordinal": True})])
    res = assess_persona(make_responses(pd.concat([raw, extra], ignore_index=True), scales=make_scales(scales)), rr)
    log = res.evidence["exclusions"].to_frame()
    assert log["n_rows"].tolist() == [len(extra)] and "item not answered by any respondent" in log["reason"].iloc[0]
    assert set(res.scores()["item"]) == set(ITEMS)


def test_personas_not_in_the_respondent_file_are_named_with_their_rows(tmp_path):
    people = _people()
    rr = _load(tmp_path, people)
    raw = _responses(people)
    raw.loc[raw["persona"] == "r5", "persona"] = "R5"
    with pytest.raises(SchemaError, match=r"column `persona` names respondents that are not in people\.csv: \['R5'\] "
                                          r"\(rows \[30, 31, 32, .*it has e\.g\. \['r0', 'r1', 'r2'"):
        persona_scores(make_responses(raw, rr.to_reference()), rr)


def test_numeric_ids_match_whatever_their_type(tmp_path):
    people = _people().assign(respondent=range(100, 106))
    rr = _load(tmp_path, people)
    raw = _responses(people).astype({"persona": float})  # an empty persona makes the column float: 100.0
    raw.loc[len(raw)] = {"model": "m", "item": "q1", "persona": np.nan, "sample": 0, "answer": 1}
    sc = persona_scores(make_responses(raw, rr.to_reference()), rr)
    assert set(sc["respondent"]) == {str(i) for i in range(100, 106)} and len(sc) == 18


def test_rows_without_a_persona_are_the_no_persona_baseline_and_are_counted(tmp_path):
    people = _people()
    rr = _load(tmp_path, people)
    raw = _responses(people)
    raw.loc[raw.index[:4], "persona"] = np.nan  # r0's rows lose their persona: now no-persona rows
    res = assess_persona(make_responses(raw, rr.to_reference()), rr)
    assert res.provenance["n_rows_without_persona"] == 4
    assert "agreement_no_persona" in set(res.to_frame()["quantity"])


def test_respondents_without_a_demographic_value_are_counted(tmp_path):
    people = _people()
    people.loc[1, "age"] = np.nan
    rr = _load(tmp_path, people)
    res = assess_persona(make_responses(_responses(people), rr.to_reference()), rr)
    f = res.to_frame()
    n_att = f[(f["level"] == "attribute") & (f["quantity"] == "agreement")].groupby("group")["n_respondents"].sum()
    assert n_att["A"] == 2 and n_att["B"] == 3  # r1 is in country A's rows but in no age level
    assert res.provenance["attribute_missing"] == {"age": ["r1"]}


def test_wide_file_taken_for_long_and_long_for_wide_both_work_or_are_named(tmp_path):
    people = _people()
    a = _load(tmp_path, people)
    b = _load(tmp_path, _long(people), name="people_long.csv")
    pd.testing.assert_frame_equal(a.answers.sort_values(["respondent", "item"]).reset_index(drop=True),
                                  b.answers.sort_values(["respondent", "item"]).reset_index(drop=True))
    assert a.attributes == b.attributes == ("age",)


def test_responses_that_name_the_respondent_in_another_column_are_told_the_column_name(tmp_path):
    people = _people()
    rr = _load(tmp_path, people)
    raw = _responses(people).rename(columns={"persona": "respondent"})
    with pytest.raises(SchemaError, match=r"no `persona` column.*the id of the respondent each row role-plays\. "
                                          r"Column 'respondent' holds respondent ids of people\.csv: rename it"):
        assess_persona(make_responses(raw, rr.to_reference()), rr)
