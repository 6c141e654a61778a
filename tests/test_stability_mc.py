"""Monte Carlo flags on the stability verdicts: a verdict whose deciding endpoint lies within 2 Monte Carlo
SEs of the margin is flagged (with the resamples that would settle it); one far from it is not. The margin
is placed from the endpoint of a first run with the same seed, so the bootstrap replicates (which do not
depend on the margin) are the same in both runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from robustalign.claims import assess_stability
from robustalign.claims._stability_mc import _margin_checks, _margin_decide
from robustalign.claims.stability import ci_frame
from robustalign.resampling.mcerror import WITHIN_MC_ERROR
from robustalign.simulate import simulate

KW = dict(factors=["template"], n_resamples=300, n_permutations=300, rng=0,
          skip=("pairwise", "agreement", "ranking", "validity", "retest"))


@pytest.fixture(scope="module")
def data():
    return simulate(n_models=2, n_items=30, factors={"template": 2}, n_orders=1, n_samples=3, sd_factor=0.02,
                    rng=4).load()


def _run(data, margin):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return assess_stability(*data, margin=margin, **KW)


def test_stability_verdict_near_the_margin_is_flagged_and_far_from_it_is_not(data):
    far = _run(data, 0.5)
    assert (far.verdicts["verdict"] == "supported").all() and not far.verdicts["mc_error"].any()
    # the verdict rules rebuilt from the comparisons give the verdicts assess_stability gave
    for e, il, v in zip(far.evidence["effects"], far.evidence["item_level"], far.verdicts["verdict"]):
        checks, fixed = _margin_checks(e, il, 0.95)
        assert _margin_decide({**fixed, **{k: c[0] for k, c in checks.items()}}) == v
    # margin just above model_1's item-level upper end (on the SD scale), by half a Monte Carlo SE
    il = far.evidence["item_level"][0]
    f = ci_frame(il["boot"], 0.9).iloc[0]
    assert f["conf_high_mcse"] > 0
    near = _run(data, float(np.sqrt(f["conf_high"] + 0.5 * f["conf_high_mcse"])))
    v = near.verdicts.iloc[0]
    assert v["verdict"] == "supported" and bool(v["mc_error"])
    assert WITHIN_MC_ERROR in v["reason"] and "item-level variance's upper end" in v["reason"]
    assert "resamples (now 300) would settle it" in v["reason"]
