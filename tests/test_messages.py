"""Common mistakes get a message that names the fix (issue: the package looks after itself)."""

import pandas as pd
import pytest

import robustalign as ra
from robustalign.datasets import load_multicultural_alignment


@pytest.fixture(scope="module")
def data():
    d = load_multicultural_alignment()
    return d.responses, d.reference_language


def test_misspelt_metric_lists_spearman_and_suggests_it(data):
    resp, ref = data
    with pytest.raises(ValueError, match=r"'spearman'.*Did you mean 'spearman'\?"):
        ra.alignment(resp, ref, metric="spearmann")


def test_a_dataframe_instead_of_responses_names_the_constructor(data):
    resp, ref = data
    with pytest.raises(TypeError, match=r"got a DataFrame\. Make one .*make_responses"):
        ra.alignment(resp.data, ref, metric="js")
    with pytest.raises(TypeError, match=r"`reference` must be .*make_reference"):
        ra.alignment(resp, pd.DataFrame(), metric="js")


def test_subset_to_an_absent_label_lists_the_labels(data):
    resp, ref = data
    res = ra.alignment(resp, ref, metric="mean_position", n_resamples=50, rng=0)
    with pytest.raises(ValueError, match=r"no statistic for 'gpt-5'; its values are \[.*'gpt-4o'"):
        res.subset(model="gpt-5")
    one = res.subset(model="gpt-4o")
    assert set(one.labels["model"]) == {"gpt-4o"} and len(one) > 0
