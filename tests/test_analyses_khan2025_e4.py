"""Khan et al. E4 (corrected) on the bundled multicultural-alignment data: the data are what the README
says, and the ARI of each held-out split equals an independent recomputation (scipy Ward clusters of the
z-scored block means, ARI by pair counting)."""

from __future__ import annotations

import numpy as np
import pytest
from _analyses import load_analysis
from _ari import pair_count_ari
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.stats import zscore


@pytest.fixture(scope="module")
def e4():
    mod = load_analysis("khan2025_e4")
    data = mod.load_units()
    return mod, data, mod.audit(data, n_resamples=30, n_permutations=999, rng=1)


def test_data_are_the_documented_units_and_blocks(e4):
    _, data, _ = e4
    assert data.groupby("source").unit.nunique().to_dict() == {"countries": 13, "models": 9}
    assert data.groupby("dimension").item.nunique().to_dict() == {
        "politics and society": 14, "religion and morality": 10, "work and family": 6}


def test_ari_equals_an_independent_recomputation(e4):
    mod, data, results = e4
    for held, res in results.items():
        f = res.to_frame().query("quantity == 'ARI evaluated vs held-out clustering'").set_index("group")
        for src, sub in data.groupby("source"):
            S = sub.groupby(["unit", "dimension"]).value.mean().unstack()
            ev = [d for d in S.columns if d != held]
            ce = fcluster(linkage(zscore(S[ev].to_numpy(), ddof=1), "ward"), mod.K, "maxclust")
            ch = fcluster(linkage(zscore(S[[held]].to_numpy(), ddof=1), "ward"), mod.K, "maxclust")
            assert f.loc[src, "estimate"] == pytest.approx(pair_count_ari(ce, ch), abs=1e-12)
        assert set(res.verdicts.verdict) <= {"supported", "not supported", "inconclusive"}
        assert np.isfinite(f.p_value).all()


def test_khan_human_baseline_is_recorded_as_published():
    mod = load_analysis("khan2025_e4")
    assert mod.KHAN_HUMAN_ARI == {1: 0.157, 2: 0.249, 3: 0.365, 4: 0.473, 5: 0.602}
