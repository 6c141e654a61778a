"""The data contract: validation errors name the column, rows and fix; nothing is dropped silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import robustalign as ra
from robustalign.schema import make_reference, make_responses

SCALES = pd.DataFrame(
    {
        "item": ["q1", "q2"],
        "options": ["1|2|3|4", "a|b|c"],
        "labels": ["SD|D|A|SA", "red|green|blue"],
        "ordinal": [True, False],
    }
)


def _ref_rows():
    rows = []
    for g, p in {"X": [0.1, 0.2, 0.3, 0.4], "Y": [0.4, 0.3, 0.2, 0.1]}.items():
        rows += [{"item": "q1", "group": g, "option": str(k + 1), "share": s, "n": 500} for k, s in enumerate(p)]
        rows += [{"item": "q2", "group": g, "option": o, "share": s, "n": 300} for o, s in zip("abc", [0.5, 0.25, 0.25])]
    return pd.DataFrame(rows)


@pytest.fixture
def ref():
    return make_reference(_ref_rows(), SCALES)


def test_reference_array_canonical_order_and_padding(ref):
    arr = ref.array(["q1", "q2"], ["X", "Y"])
    assert arr.shape == (2, 2, 4)
    np.testing.assert_allclose(arr[0, 0], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(arr[1, 1], [0.5, 0.25, 0.25, 0.0])  # padded beyond K=3
    np.testing.assert_allclose(ref.n_array(["q1", "q2"], ["X"]).ravel(), [500, 300])
    assert list(ref.K(["q1", "q2"])) == [4, 3]


def test_reference_missing_column_suggests_fix():
    df = _ref_rows().rename(columns={"share": "shares"})
    with pytest.raises(ra.SchemaError, match=r"missing columns \['share'\].*did you mean 'shares'"):
        make_reference(df, SCALES)


def test_reference_shares_not_summing_to_one_name_cells():
    df = _ref_rows()
    df.loc[0, "share"] = 0.5
    with pytest.raises(ra.SchemaError, match=r"sum to 1.*q1/X: 1\.4000"):
        make_reference(df, SCALES)


def test_reference_rounding_is_renormalised_and_counted():
    df = _ref_rows()
    df.loc[0, "share"] = 0.1004  # rounding in a published table
    ref = make_reference(df, SCALES)
    log = ref.exclusions.to_frame()
    assert log["action"].tolist() == ["recoded"] and log["n_rows"].tolist() == [4]
    np.testing.assert_allclose(ref.array(["q1"], ["X"])[0, 0].sum(), 1.0)


def test_reference_option_outside_scale_and_duplicates_and_nan():
    df = _ref_rows()
    df.loc[5, "option"] = "z"
    with pytest.raises(ra.SchemaError, match=r"outside the item's scale.*rows \[5\].*'z'"):
        make_reference(df, SCALES)
    df = pd.concat([_ref_rows(), _ref_rows().iloc[[0]]], ignore_index=True)
    with pytest.raises(ra.SchemaError, match="duplicate rows"):
        make_reference(df, SCALES)
    df = _ref_rows()
    df.loc[3, "group"] = None
    with pytest.raises(ra.SchemaError, match=r"column `group` has 1 missing values at rows \[3\]"):
        make_reference(df, SCALES)


def test_reference_absent_option_filled_with_zero_and_counted():
    df = _ref_rows()
    df = df[~((df["item"] == "q2") & (df["group"] == "X") & (df["option"] == "c"))].copy()
    df.loc[(df["item"] == "q2") & (df["group"] == "X") & (df["option"] == "b"), "share"] = 0.5
    ref = make_reference(df, SCALES)
    assert ref.exclusions.total(action="recoded") == 1
    np.testing.assert_allclose(ref.array(["q2"], ["X"])[0, 0, :3], [0.5, 0.5, 0.0])


def test_unknown_respondent_counts_are_recorded():
    ref = make_reference(_ref_rows().drop(columns="n"), SCALES)
    assert not ref.n_known and "known for 0/4 cells" in repr(ref)


def test_responses_answer_position_mapped_through_shown_order(ref):
    resp = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "item": ["q1", "q1", "q2"],
            "option_order": ["1|2|3|4", "4|3|2|1", ["c", "a", "b"]],
            "answer_position": [1, 1, 2],
        }
    )
    r = make_responses(resp, ref)
    assert r.data["option"].tolist() == ["1", "4", "a"]
    assert "option_order" in r.factors


def test_responses_probabilities_as_shown_become_canonical(ref):
    resp = pd.DataFrame(
        {
            "model": ["m", "m"],
            "item": ["q1", "q2"],
            "option_order": ["4|3|2|1", "c|a|b"],
            "prob_1": [0.7, 0.6],
            "prob_2": [0.1, 0.3],
            "prob_3": [0.1, 0.1],
            "prob_4": [0.1, np.nan],
        }
    )
    r = make_responses(resp, ref)
    np.testing.assert_allclose(r.data[["prob_1", "prob_2", "prob_3", "prob_4"]].to_numpy(),
                               [[0.1, 0.1, 0.1, 0.7], [0.3, 0.1, 0.6, 0.0]])


def test_responses_errors_name_rows_values_and_fix(ref):
    base = pd.DataFrame({"model": ["m", "m"], "item": ["q1", "q1"], "fmt": ["a", "b"], "answer": ["1", "9"]})
    with pytest.raises(ra.SchemaError, match=r"`answer` has values outside.*rows \[1\].*'9'"):
        make_responses(base, ref)
    dup = base.assign(fmt="a", answer="1")
    with pytest.raises(ra.SchemaError, match="add a `sample` column"):
        make_responses(dup, ref)
    two = base.assign(score=0.5)
    with pytest.raises(ra.SchemaError, match="more than one kind of answer"):
        make_responses(two, ref)
    none = base.drop(columns="answer")
    with pytest.raises(ra.SchemaError, match="no answer column"):
        make_responses(none, ref)
    bad_order = pd.DataFrame({"model": ["m"], "item": ["q1"], "option_order": ["1|2|3"], "answer_position": [1]})
    with pytest.raises(ra.SchemaError, match="not a permutation"):
        make_responses(bad_order, ref)
    nan_answer = base.assign(answer=["1", None])
    with pytest.raises(ra.SchemaError, match=r"`answer` is empty at rows \[1\]"):
        make_responses(nan_answer, ref)


def test_unreferenced_items_error_or_counted_drop(ref):
    df = pd.DataFrame({"model": ["m", "m", "m"], "item": ["q1", "q9", "q9"], "s": [0, 0, 1], "answer": ["1", "1", "2"]})
    with pytest.raises(ra.SchemaError, match=r"items \['q9'\].*no human reference.*drop_unreferenced=True"):
        make_responses(df, ref)
    r = make_responses(df, ref, drop_unreferenced=True)
    assert len(r.data) == 1 and r.exclusions.total(action="dropped") == 2
    assert r.exclusions.to_frame()["example_rows"].iloc[0] == "[1, 2]"


def test_scores_outside_unit_interval_rejected():
    df = pd.DataFrame({"model": ["m"], "item": ["q1"], "score": [1.2]})
    with pytest.raises(ra.SchemaError, match=r"`score` must be a number in \[0, 1\]"):
        make_responses(df, scales={})


def test_distributions_count_valid_answers(ref):
    df = pd.DataFrame({"model": "m", "item": "q1", "sample": range(4), "answer": ["1", "1", "4", "2"]})
    keys, p = make_responses(df, ref).distributions(["model", "item"])
    assert keys["n"].tolist() == [4]
    np.testing.assert_allclose(p[0], [0.5, 0.25, 0.0, 0.25])


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_loaders_round_trip(tmp_path, suffix, ref):
    resp = pd.DataFrame({"model": "m", "item": "q1", "sample": [0, 1], "answer": ["1", "3"]})
    path = tmp_path / f"resp{suffix}"
    if suffix == ".csv":
        resp.to_csv(path, index=False)
    elif suffix == ".parquet":
        resp.to_parquet(path)
    else:
        resp.to_json(path, orient="records", lines=True)
    r = ra.load_responses(path, ref)
    assert r.data["option"].tolist() == ["1", "3"]


def test_loader_rejects_unknown_and_missing_files(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(b"\x80\x04")
    with pytest.raises(ra.SchemaError, match="unsupported file type '.pkl'"):
        ra.read_table(p)
    with pytest.raises(ra.SchemaError, match="file not found"):
        ra.read_table(tmp_path / "nope.csv")


def test_responses_subset_keeps_rows_of_the_chosen_items_and_models():
    from robustalign.simulate import simulate

    resp, _ = simulate(n_models=3, n_items=6, n_samples=2, rng=0).load()
    items, models = resp.items[:2], resp.models[1:]
    sub = resp.subset(items=items, models=models)
    want = resp.data[resp.data["item"].isin(items) & resp.data["model"].isin(models)]
    assert sub.items == items and sub.models == models
    assert list(sub.data["row"]) == list(want["row"]) and len(sub.data) == len(want) > 0
    assert sub.factors == resp.factors and sub.kind == resp.kind
    assert resp.subset(items="q001").items == ["q001"]
    with pytest.raises(ra.SchemaError, match=r"items \['nope'\] are not in the responses"):
        resp.subset(items=["nope"])


def test_missing_probabilities_are_an_error_or_counted_but_a_partly_empty_row_is_never_missing(ref):
    p = pd.DataFrame({"model": "m", "item": "q1", "fmt": ["a", "b", "c"],
                      "prob_1": [0.1, np.nan, np.nan], "prob_2": [0.2, np.nan, 0.5],
                      "prob_3": [0.3, np.nan, 0.5], "prob_4": [0.4, np.nan, np.nan]})
    with pytest.raises(ra.SchemaError, match=r"all `prob_\*` columns is empty at rows \[1\].*--allow-missing"):
        make_responses(p, ref)
    with pytest.raises(ra.SchemaError, match=r"rows \[2\] break this"):  # half a distribution is not missing
        make_responses(p, ref, allow_missing=True)
    r = make_responses(p.iloc[:2], ref, allow_missing=True)
    assert list(r.data["row"]) == [0]
    log = r.exclusions.to_frame()
    assert log[["reason", "action", "n_rows"]].values.tolist() == [["missing answer", "dropped", 1]]


def test_item_ids_are_stripped_alike_in_scales_reference_and_responses():
    scales = SCALES.assign(item=[" q1", "q2 "])
    ref = make_reference(_ref_rows().assign(item=lambda d: d["item"] + " "), scales)
    assert ref.items == ["q1", "q2"] and sorted(ref.scales) == ["q1", "q2"]
    resp = make_responses(pd.DataFrame({"model": "m", "item": [" q1", "q2"], "answer": ["1", "a"]}), ref)
    assert resp.items == ["q1", "q2"]


def test_absent_reference_cell_is_counted_and_the_array_marks_it(ref):
    rows = _ref_rows()
    r = make_reference(rows[~((rows["item"] == "q2") & (rows["group"] == "Y"))], SCALES)
    log = r.exclusions.to_frame()
    absent = log[log["action"] == "absent"]
    assert absent["n_rows"].tolist() == [1] and "'q2/Y'" in absent["example_rows"].iloc[0]
    arr = r.array(["q1", "q2"], ["X", "Y"])
    assert np.isnan(arr[1, 1]).all() and not np.isnan(arr[1, 0]).any()
    assert len(ref.exclusions.to_frame().query("action == 'absent'")) == 0  # the complete reference has none


def test_responses_subset_by_factor_level_matches_a_boolean_filter_and_names_bad_levels():
    from robustalign.simulate import simulate

    resp, ref = simulate(n_models=2, n_items=4, n_samples=2, factors={"template": 3}, rng=0).load()
    want = resp.data[resp.data["template"].isin(["template_1", "template_3"]) & (resp.data["sample"] == 1)]
    sub = resp.subset(template=["template_1", "template_3"], sample="1")  # a level matches by its text too
    assert list(sub.data["row"]) == list(want["row"]) and len(want) > 0
    assert sub.factors == resp.factors and sub.exclusions is resp.exclusions
    one = resp.subset(template="template_2", models=resp.models[:1])
    assert set(one.data["template"]) == {"template_2"} and one.models == resp.models[:1]
    with pytest.raises(ra.SchemaError, match=r"level 'template_9' of factor 'template'.*'template_1', 'template_2'"):
        resp.subset(template="template_9")
    with pytest.raises(ra.SchemaError, match=r"'language' is not a design factor.*\['template', 'option_order'"):
        resp.subset(language="hi")
    g = ref.groups[1]
    assert ref.subset(group=g).groups == [g] and ref.subset(groups=[g]).groups == [g]
    with pytest.raises(ra.SchemaError, match=r"groups \['XX'\] are not in the reference"):
        ref.subset(group="XX")


@pytest.mark.parametrize("kind", ["answer", "answer_position", "raw_text", "prob", "labels"])
def test_make_responses_maps_each_distinct_value_once_with_the_same_result_as_row_by_row(kind):
    """The per-distinct-value work of make_responses gives what a row-by-row reading of the rules gives."""
    rng = np.random.default_rng(3)
    n = 400
    from robustalign.schema import make_scales

    sc = make_scales(pd.DataFrame({"item": ["a", "b"], "options": ["1|2|3|4", "x|y|z"], "ordinal": [True, False]}))
    item = rng.choice(["a", "b"], n)
    K = np.where(item == "a", 4, 3)
    rev = rng.random(n) < 0.5
    opts = [list(sc[i].options) for i in item]
    shown = [o[::-1] if r else o for o, r in zip(opts, rev)]
    pos = (rng.random(n) * K).astype(int)  # 0-based position shown
    df = pd.DataFrame({"model": rng.choice(["m1", "m2"], n), "item": item, "row_id": np.arange(n)})
    if kind == "answer":
        df["answer"] = [s[p] for s, p in zip(shown, pos)]
        want = df["answer"].tolist()
    elif kind in ("answer_position", "labels"):
        df["answer_position"] = pos + 1
        want = [s[p] for s, p in zip(shown, pos)]
    elif kind == "raw_text":
        df["raw_text"] = [str(p + 1) if p < 3 else "no answer" for p in pos]
        want = [s[p] if p < 3 else None for s, p in zip(shown, pos)]
    else:
        P = np.zeros((n, 4))
        P[np.arange(n), pos] = 1.0
        for j in range(4):
            df[f"prob_{j + 1}"] = P[:, j]
    if kind == "labels":
        df["shown"] = np.where(rev, "rev", "fwd")
        resp = ra.make_responses(df, scales=sc, order_column="shown", order_map={"fwd": "identity", "rev": "reverse"})
    else:
        df["option_order"] = ["|".join(s) for s in shown]
        resp = ra.make_responses(df, scales=sc)
    d = resp.data
    if kind == "prob":
        canon = [o.index(s[p]) for o, s, p in zip(opts, shown, pos)]
        got = d[[f"prob_{j + 1}" for j in range(4)]].to_numpy().argmax(1)
        assert list(got) == canon
    else:
        assert [None if pd.isna(v) else v for v in d["option"]] == want
    if kind == "raw_text":
        assert (d["status"] == "valid").sum() == int((pos < 3).sum())


def test_distributions_of_choices_equal_normalised_counts_per_cell():
    from robustalign.simulate import simulate

    resp, _ = simulate(n_models=2, n_items=5, n_samples=4, factors={"template": 2}, rng=4).load()
    keys, P = resp.distributions(["model", "item", "template"])
    v = resp.valid()
    for r, cell in keys.iterrows():
        rows = v[(v["model"] == cell["model"]) & (v["item"] == cell["item"]) & (v["template"] == cell["template"])]
        opts = resp.scales[cell["item"]].options
        want = rows["option"].value_counts(normalize=True).reindex(opts, fill_value=0.0).to_numpy()
        np.testing.assert_allclose(P[r, :len(opts)], want, rtol=1e-12)
        assert cell["n"] == len(rows) and (P[r, len(opts):] == 0).all()


def test_a_persona_column_is_a_factor_only_when_listed():
    from robustalign.schema import make_responses

    df = pd.DataFrame({"model": "m", "item": ["q1", "q1", "q2", "q2"], "persona": ["a", "b", "a", "b"],
                       "score": [0.1, 0.2, 0.3, 0.4]})
    listed = make_responses(df, factors=["persona"])
    assert "persona" in listed.factors and len(listed.data) == 4
    unlisted = make_responses(df)
    assert "persona" not in unlisted.factors and unlisted.data["persona"].tolist() == ["a", "b", "a", "b"]
