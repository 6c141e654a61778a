"""The forced-choice audit reproduces the published shares of Cruz (2025) from the bundled extract.

Independent reference: the paper's numbers (report/main.tex of github.com/diogo-cruz/model_preferences):
task A chosen 70% of the time when shown first and 32% when shown second (a 37.9-point position bias),
51.2% overall, over 2,000 comparisons of 40 MMLU subjects by gpt-4.1-nano.
"""

import numpy as np
import pytest
from _analyses import load_analysis

run = load_analysis("cruz2025_task_preferences")


@pytest.fixture(scope="module")
def data():
    return run.load_data()


def test_extract_is_the_published_experiment(data):
    assert len(data) == 2000
    subjects = set(data["outcome_a"]) | set(data["outcome_b"])
    assert len(subjects) == 40
    assert (data["order"] == "a_first").sum() == 1012  # the metadata's randomisation count (AB = 1012)


def test_published_shares_reproduced_and_inside_their_intervals(data):
    t = run.published_vs_ours(data, n_resamples=200, rng=1).set_index("quantity")
    # the paper rounds to whole percent (70, 32) or one decimal (37.9, 51.2)
    tol = np.array([0.005, 0.005, 0.0005, 0.0005])
    assert np.all(np.abs(t["ours"] - t["published"]) <= tol)
    assert ((t["conf_low"] <= t["published"]) & (t["published"] <= t["conf_high"])).all()


def test_order_effect_verdict(data):
    from robustalign.claims.preferences import assess_preferences

    res = assess_preferences(data, compare=run.COMPARE[:1], n_resamples=60, n_permutations=199, n_sims=40,
                             rng=2)
    v = res.verdicts.set_index("claim")["verdict"]
    assert v["order changes gpt-4.1-nano's preference"] == "supported"
    assert v["gpt-4.1-nano prefers econometrics to global_facts"] == "supported"
