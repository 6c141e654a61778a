"""The closest-model verdict (robustalign.claims.ranking): rules checked on hand-built rank tables, the items
needed from the closed form n = ((z_.975 + z_.8) sd / d)^2 with scipy's normal quantiles."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from robustalign.claims.ranking import closest_model_verdicts

B = 2000  # resamples behind the P(rank 1) values


class _Pairwise:
    def __init__(self, row):
        self.row = row

    def to_frame(self):
        return pd.DataFrame([self.row])


class _Result:
    """Stands in for an AlignmentResult: the pairwise difference of the two models asked for."""

    n_resamples = B

    def __init__(self, diff):
        self.diff, self.asked = diff, None

    def subset(self, group, model):
        self.asked = (group, list(model))
        return self

    def pairwise(self, by):
        return _Pairwise(self.diff)


def _ranks(group, rows):
    return pd.DataFrame([{"group": group, "model": m, "rank": r, "rank_low": lo, "rank_high": hi, "p_top": p}
                         for m, r, lo, hi, p in rows])


def _estimates(group, models, est=0.6):
    return pd.DataFrame({"group": group, "model": models, "estimate": est, "conf_low": est - 0.1,
                         "conf_high": est + 0.1, "conf_level": 0.9})


def test_a_model_alone_at_rank_one_is_supported():
    ranks = _ranks("g", [("B", 2, 2, 3, 0.0), ("A", 1, 1, 1, 1.0), ("C", 3, 2, 3, 0.0)])
    v = closest_model_verdicts(_Result(None), ranks, _estimates("g", ["A", "B", "C"]), metric="js", n_items=30,
                               confidence_level=0.9)
    assert v["verdict"].tolist() == ["supported"] and not v["mc_error"].iloc[0]
    assert "A ranks first" in v["reason"].iloc[0] and "rank interval 1-1" in v["reason"].iloc[0]
    assert np.isnan(v["n_needed"].iloc[0]) and v["estimate"].iloc[0] == 0.6


def test_two_models_sharing_rank_one_are_inconclusive_with_the_items_needed():
    ranks = _ranks("g", [("A", 1, 1, 2, 0.6), ("B", 2, 1, 2, 0.4)])
    # the difference is stored as B - A: the lead of A is its negative
    res = _Result({"model_a": "B", "model_b": "A", "estimate": -0.02, "conf_low": -0.05, "conf_high": 0.01,
                   "std_error": 0.015})
    n_items = 40
    v = closest_model_verdicts(res, ranks, _estimates("g", ["A", "B"]), metric="js", n_items=n_items,
                               confidence_level=0.9)
    assert v["verdict"].tolist() == ["inconclusive"]
    assert res.asked == ("g", ["A", "B"])
    sd = 0.015 * math.sqrt(n_items)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert v["n_needed"].iloc[0] == math.ceil((z * sd / 0.02) ** 2)
    reason = v["reason"].iloc[0]
    assert "2 models have rank intervals that include 1 (A, B)" in reason
    assert "the lead over B is 0.020 [-0.010, 0.050]" in reason
    # P(rank 1) = 0.6 and 0.4 are far from the cuts 0.95 and 0.05 (Monte Carlo SE about 0.011)
    assert not v["mc_error"].iloc[0]


def test_a_p_top_at_its_cut_is_within_monte_carlo_error():
    # the leader's P(rank 1) = 0.95 sits on the cut 1 - 0.1/2: another seed could move its rank interval
    ranks = _ranks("g", [("A", 1, 1, 1, 0.95), ("B", 2, 2, 2, 0.05)])
    v = closest_model_verdicts(_Result(None), ranks, _estimates("g", ["A", "B"]), metric="js", n_items=30,
                               confidence_level=0.9)
    assert v["verdict"].tolist() == ["supported"] and v["mc_error"].iloc[0]
    assert "within Monte Carlo error" in v["reason"].iloc[0]


def test_one_row_per_group_and_none_for_a_single_model():
    ranks = pd.concat([_ranks("g1", [("A", 1, 1, 1, 1.0), ("B", 2, 2, 2, 0.0)]),
                       _ranks("g2", [("A", 1, 1, 1, 1.0)])])
    est = pd.concat([_estimates("g1", ["A", "B"]), _estimates("g2", ["A"])])
    v = closest_model_verdicts(_Result(None), ranks, est, metric="js", n_items=30, confidence_level=0.9)
    assert v["group"].tolist() == ["g1"]
