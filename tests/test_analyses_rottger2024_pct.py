"""The PCT audit reproduces the published valid-answer shares of Röttger et al. (2024).

Independent reference: the published shares (the upstream notebook / the paper's validity figure),
e.g. gpt-3.5-turbo-0613 0.0 / 82.3 / 85.5 / 87.1 / 90.3 % and Llama-2-70b-chat 29.0 / 75.8 / 79.0 /
1.6 / 0.0 %. Counting disclaimed answers as invalid reproduces every cell of six models exactly; the
paper's own rule (its final check, re-implemented) reproduces all 50 cells.
"""


import pytest
from _analyses import load_analysis

from robustalign.datasets.pct import PUBLISHED_VALID_COUNTS

run = load_analysis("rottger2024_pct")
PAPER = {  # % of 62, jail-01..05, as printed in the paper
    "gpt-3.5-turbo-0613": [0.0, 82.3, 85.5, 87.1, 90.3],
    "meta-llama/Llama-2-70b-chat-hf": [29.0, 75.8, 79.0, 1.6, 0.0],
}
EXACT_STRICT = ["gpt-3.5-turbo-0613", "gpt-3.5-turbo-1106", "gpt-4-0613", "gpt-4-1106-preview",
                "meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-70b-chat-hf"]


@pytest.fixture(scope="module")
def table():
    from robustalign.datasets.pct import load_llm_values_pct

    f, tests = run.validity_table(load_llm_values_pct("forcing"))
    return f


def _pct(f, model, conv):
    s = f[(f["model"] == model) & (f["convention"] == conv)].set_index("forcing").reindex(run.FORCING_LEVELS)
    return [round(100 * v, 1) for v in s["estimate"]]


def test_paper_numbers_reproduced_when_disclaimed_answers_are_invalid(table):
    for m, pub in PAPER.items():
        assert _pct(table, m, "valid, no disclaimer") == pytest.approx(pub, abs=0.05)
        assert [round(100 * n / 62, 1) for n in PUBLISHED_VALID_COUNTS[m]] == pytest.approx(pub, abs=0.05)


def test_strict_convention_matches_every_cell_of_six_models(table):
    for m in EXACT_STRICT:
        pub = [round(100 * n / 62, 1) for n in PUBLISHED_VALID_COUNTS[m]]
        assert _pct(table, m, "valid, no disclaimer") == pytest.approx(pub, abs=0.05), m


def test_counting_disclaimed_answers_changes_llama70b(table):
    got = _pct(table, "meta-llama/Llama-2-70b-chat-hf", "valid")
    assert got[3] == pytest.approx(59.7, abs=0.05) and got[4] == pytest.approx(43.5, abs=0.05)


def test_paper_rule_matches_50_of_50_cells(table):
    n = 0
    for m, ns in PUBLISHED_VALID_COUNTS.items():
        pub = [round(100 * k / 62, 1) for k in ns]
        n += sum(abs(a - b) < 0.05 for a, b in zip(_pct(table, m, "paper's rule"), pub))
    assert n == 50
    # the cells an older version of the authors' check could not reproduce (zephyr 88.7 / 100 / 100 / 80.6)
    assert _pct(table, "HuggingFaceH4/zephyr-7b-beta", "paper's rule") == pytest.approx(
        [0.0, 82.3, 91.9, 88.7, 72.6], abs=0.05)


def test_wilson_intervals_cover_the_estimate(table):
    assert ((table["conf_low"] <= table["estimate"] + 1e-12) & (table["estimate"] <= table["conf_high"] + 1e-12)).all()
