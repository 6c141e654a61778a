"""Pairing cells with human groups: every scoring path checks the groups it is asked for."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from robustalign.schema import make_reference, make_responses
from robustalign.scoring import alignment, human_profiles, item_scores

SCALES = pd.DataFrame({"item": ["q1", "q2", "q3"], "options": ["1|2|3", "1|2|3", "1|2|3"], "ordinal": True})
# group Y has no reference for q3
H = {("q1", "X"): [0.2, 0.3, 0.5], ("q2", "X"): [0.6, 0.3, 0.1], ("q3", "X"): [0.1, 0.1, 0.8],
     ("q1", "Y"): [0.5, 0.5, 0.0], ("q2", "Y"): [0.0, 0.2, 0.8]}


@pytest.fixture
def data():
    ref = make_reference(pd.DataFrame([
        {"item": i, "group": g, "option": str(k + 1), "share": s} for (i, g), p in H.items() for k, s in enumerate(p)
    ]), SCALES)
    rows = [{"model": m, "item": i, "lang": lang, "answer": a}
            for m, answers in {"m1": "123", "m2": "321"}.items()
            for lang in ("X", "Y") for i, a in zip(("q1", "q2", "q3"), answers)]
    return make_responses(pd.DataFrame(rows), ref), ref


def test_missing_reference_cells_are_counted_not_scored(data):
    resp, ref = data
    s = item_scores(resp, ref, metric="js", by=["model"], estimand="plug-in")
    # 2 models x 3 items x 2 groups, less q3 x Y for each model
    assert len(s) == 10 and s.attrs["n_missing_reference"] == 2 and s.attrs["n_nominal_skipped"] == 0
    row = s[(s["model"] == "m2") & (s["item"] == "q2") & (s["group"] == "Y")].iloc[0]
    assert row["score"] == pytest.approx(1 - jensenshannon([0, 1, 0], H[("q2", "Y")], base=2), abs=1e-12)
    t = item_scores(resp, ref, metric="js", by=["model"], against="lang", estimand="plug-in")
    assert len(t) == 10 and t.attrs["n_missing_reference"] == 2 and (t["lang"] == t["group"]).all()


def test_human_profiles_are_share_weighted_positions(data):
    _, ref = data
    h = human_profiles(ref, ["q1", "q3"], ["Y", "X"])
    np.testing.assert_allclose(h[:, 1], [0.3 * 0.5 + 0.5 * 1.0, 0.1 * 0.5 + 0.8 * 1.0])
    assert h[0, 0] == pytest.approx(0.25) and np.isnan(h[1, 0])  # q3 has no reference for Y


@pytest.mark.parametrize("metric", ["js", "spearman"])
def test_unknown_groups_raise_for_every_metric(data, metric):
    # the Spearman path used to return NaN estimates (with warnings) for a group the reference lacks
    resp, ref = data
    with pytest.raises(ValueError, match=r"values of `lang` \['Z'\] name no reference group.*group_map"):
        alignment(resp, ref, metric=metric, against="lang", group_map={"Y": "Z"}, n_resamples=20, rng=0)
    with pytest.raises(ValueError, match=r"`groups` \['Z'\] are not in the reference"):
        alignment(resp, ref, metric=metric, groups=["X", "Z"], n_resamples=20, rng=0)
    with pytest.raises(ValueError, match=r"columns \['format'\] are not in the responses"):
        alignment(resp, ref, metric=metric, by=["format"], n_resamples=20, rng=0)
