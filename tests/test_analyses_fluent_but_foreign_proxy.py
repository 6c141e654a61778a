"""The "Fluent but Foreign"-style proxy audit at reduced size: the proxy similarity equals the library's
human baseline, the margins' point estimates equal a hand computation, the claim's margin is the minimum
over models, human noise grows as the assumed sample shrinks, and the documented
small-sample bias of JS similarity (sampled answers vs the models' own distributions) shows up."""

from __future__ import annotations

import numpy as np
import pytest
from _analyses import load_analysis


@pytest.fixture(scope="module")
def res():
    mod = load_analysis("fluent_but_foreign_proxy")
    return mod, mod.run(n_boot=200, n_perm=500, audit=False)


def test_proxy_similarity_is_the_library_baseline(res):
    mod, r = res
    assert r["lib_proxy"] == pytest.approx(r["S"][:, 0].mean(), abs=1e-12)
    assert r["n_items"] == 590


def test_reduced_run_uses_its_own_sizes_and_leaves_the_defaults(res):
    mod, r = res
    assert (r["table"]["n_resamples"] == 200).all()
    assert (mod.N_BOOT, mod.N_PERM) == (2000, 10_000)  # a reduced run must not change the script's full run


def test_margins_and_minimum(res):
    mod, r = res
    t = r["table"]
    items_only = t[t["variant"] == "items only"].set_index("model")
    S = r["S"]
    hand = S[:, 0].mean() - S[:, 1:].mean(0)
    assert np.allclose(items_only.loc[list(mod.MODELS), "estimate"], hand, atol=1e-12)
    assert items_only.loc["min over models", "estimate"] == pytest.approx(hand.min(), abs=1e-12)


def test_human_noise_grows_as_the_assumed_sample_shrinks(res):
    _, r = res
    t = r["table"]
    m = t[t["model"] == "min over models"].set_index("variant")
    # perturbing both human sides lowers the proxy similarity: the replicates shift down, more so at n = 300
    shift = {n: m.loc[f"items + human noise, n_unknown = {n}", "mean_of_replicates"]
             - m.loc[f"items + human noise, n_unknown = {n}", "estimate"] for n in (300, 3000)}
    assert shift[300] < shift[3000] < 0.002


def test_sampled_answers_bias_js_against_models(res):
    _, r = res
    s = r["similarities"].set_index("source")
    models = [i for i in s.index if "humans)" not in i]
    # 40 sampled answers per item lower every model's JS similarity below its own distribution's
    assert (s.loc[models, "mean_js_similarity_sampled_answers"]
            < s.loc[models, "mean_js_similarity_true_distribution"]).all()
    t = r["table"]
    truth = t[t["variant"].str.startswith("truth")].set_index("model")
    assert truth.loc["min over models", "estimate"] < 0 < t[(t["variant"] == "items only")
                                                          & (t["model"] == "min over models")]["estimate"].iloc[0]
