"""The bundled real data load into the contract, and every row is accounted for."""

import pandas as pd
import pytest
from scipy import stats

from robustalign.datasets import load_menavalues, load_multicultural_alignment


@pytest.fixture(scope="module")
def mca():
    return load_multicultural_alignment()


def test_multicultural_rows_accounted(mca):
    # 9,148 stored responses; 7,798 join a per-language ground truth (data README); the rest are counted
    assert len(mca.responses.data) == 7798
    assert mca.responses.exclusions.total(action="dropped") == 9148 - 7798
    assert mca.responses.models == sorted(
        ["OLMo-2-0325-32B-Instruct", "OLMo-2-1124-13B-Instruct", "OLMo-2-1124-7B-Instruct", "gemma-2-27b-it",
         "gemma-2-2b-it", "gemma-2-9b-it", "gpt-3.5-turbo-0125", "gpt-4-turbo-2024-04-09", "gpt-4o"]
    )
    assert len(mca.steering.data) + mca.steering.exclusions.total(action="dropped") == 2242
    assert not mca.reference_language.n_known  # no respondent counts published: recorded, not invented


def test_multicultural_steering_recomputes_published_spearman(mca):
    # Independent reference: the data README's recomputation of plain Spearman by language x congruence
    # on the raw file (0.188/0.250 da, 0.423/0.399 en, 0.467/0.398 nl, 0.332/0.169 pt).
    expected = {("da", "congruent"): 0.188, ("da", "incongruent"): 0.250, ("en", "congruent"): 0.423,
                ("en", "incongruent"): 0.399, ("nl", "congruent"): 0.467, ("nl", "incongruent"): 0.398,
                ("pt", "congruent"): 0.332, ("pt", "incongruent"): 0.169}
    d = mca.steering_rows
    assert len(d) == 2242
    for (lang, cong), rho in expected.items():
        x = d[(d["language"] == lang) & (d["congruent"] == cong)]
        assert stats.spearmanr(x["score"], x["ground_truth"]).statistic == pytest.approx(rho, abs=5e-4)


def test_menavalues_reference():
    ref = load_menavalues()
    assert len(ref.groups) == 16 and len(ref.items) == 861
    arr = ref.array()
    sums = arr.sum(-1)
    assert abs(sums[~pd.isna(sums)] - 1).max() < 1e-12
    reasons = ref.exclusions.to_frame()["reason"].tolist()
    assert any("option 0" in r for r in reasons)
    assert ref.exclusions.total(action="dropped") == 52  # the 'not applicable' rows
