"""item_scores pairs each cell's answer distribution with the right human group, item by item."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from robustalign.schema import make_reference, make_responses
from robustalign.scoring import item_scores, model_profiles

SCALES = pd.DataFrame({"item": ["q1", "q2"], "options": ["1|2|3", "a|b"], "ordinal": [True, False]})
H = {("q1", "X"): [0.2, 0.3, 0.5], ("q1", "Y"): [0.6, 0.3, 0.1], ("q2", "X"): [0.9, 0.1], ("q2", "Y"): [0.5, 0.5]}


@pytest.fixture
def data():
    ref = make_reference(pd.DataFrame([
        {"item": i, "group": g, "option": o, "share": s}
        for (i, g), p in H.items() for o, s in zip("123" if i == "q1" else "ab", p)
    ]), SCALES)
    resp = make_responses(pd.DataFrame({
        "model": "m", "item": ["q1"] * 4 + ["q2"] * 2, "lang": ["X", "X", "Y", "Y", "X", "Y"],
        "sample": [0, 1, 0, 1, 0, 0], "answer": ["1", "3", "2", "2", "a", "b"],
    }), ref)
    return resp, ref


def test_js_scores_against_scipy_for_every_group(data):
    resp, ref = data
    s = item_scores(resp, ref, metric="js", by=["model"], estimand="plug-in").set_index(["item", "group"])["score"]
    p_model = {"q1": [0.25, 0.5, 0.25], "q2": [0.5, 0.5]}  # pooled over lang and sample
    for (i, g), h in H.items():
        assert s[(i, g)] == pytest.approx(1 - jensenshannon(p_model[i], h, base=2), abs=1e-12)


def test_against_column_picks_one_group_per_cell(data):
    resp, ref = data
    s = item_scores(resp, ref, metric="js", by=["model"], against="lang", estimand="plug-in")
    assert len(s) == 4 and (s["lang"] == s["group"]).all()
    row = s[(s["item"] == "q1") & (s["group"] == "Y")].iloc[0]
    assert row["score"] == pytest.approx(1 - jensenshannon([0, 1, 0], H[("q1", "Y")], base=2))
    with pytest.raises(ValueError, match="name no reference group.*group_map"):
        item_scores(resp, ref, by=["model"], against="lang", group_map={"X": "Z"})


def test_ordinal_metric_skips_nominal_items_and_counts_them(data):
    resp, ref = data
    s = item_scores(resp, ref, metric="w1", by=["model"], estimand="plug-in")
    assert set(s["item"]) == {"q1"} and s.attrs["n_nominal_skipped"] == 2
    # the default estimand also needs 5 answers per cell: q1's 4 answers are counted as not estimable,
    # apart from the nominal item that W1 does not score
    t = item_scores(resp, ref, metric="w1", by=["model"])
    assert t.empty and t.attrs["n_nominal_skipped"] == 2 and t.attrs["n_not_estimable"] == 2


def test_profiles_are_mean_positions(data):
    resp, _ = data
    p = model_profiles(resp, by=["model", "lang"]).set_index(["lang", "item"])["value"]
    assert p[("X", "q1")] == pytest.approx(0.5) and p[("Y", "q1")] == pytest.approx(0.5)
    assert p[("Y", "q2")] == pytest.approx(1.0)


def test_unknown_metric_and_column(data):
    resp, ref = data
    with pytest.raises(ValueError, match="`metric` must be one of"):
        item_scores(resp, ref, metric="cosine")
    with pytest.raises(ValueError, match=r"columns \['format'\] are not in the responses"):
        item_scores(resp, ref, by=["format"])


def test_alignment_estimates_match_independent_computation():
    from scipy import stats

    from robustalign.datasets import load_multicultural_alignment
    from robustalign.scoring import alignment

    d = load_multicultural_alignment()
    res = alignment(d.responses, d.reference_language, metric="spearman", against="language",
                    n_resamples=200, rng=0)
    f = res.to_frame().set_index(["model", "language"])
    raw = d.responses.data
    gt = d.reference_language.shares.query("option == 'pro'").set_index(["item", "group"])["share"]
    for (model, lang), g in list(raw.groupby(["model", "language"]))[:6]:
        m = g.groupby("item")["score"].mean().round(12)  # equal means must tie, whatever the summation order
        h = gt.reindex(pd.MultiIndex.from_arrays([m.index, [lang] * len(m)])).to_numpy()
        assert f.loc[(model, lang), "estimate"] == pytest.approx(stats.spearmanr(m.to_numpy(), h).statistic)
        assert f.loc[(model, lang), "conf_low"] <= f.loc[(model, lang), "estimate"] <= f.loc[(model, lang), "conf_high"]
    js = alignment(d.responses, d.reference_language, metric="js", against="language", n_resamples=200, rng=0)
    scores = item_scores(d.responses, d.reference_language, metric="js", against="language")
    expect = scores.groupby(["model", "language"])["score"].mean()  # equal weight per item
    got = js.to_frame().set_index(["model", "language"])["estimate"]
    np.testing.assert_allclose(got.loc[expect.index], expect.to_numpy())
