"""The bundled Röttger et al. (2024) completions: every row accounted for, parsed in the one canonical place."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from robustalign.datasets.pct import (
    CITATION,
    PCT_LABELS,
    llm_values_pct_propositions,
    llm_values_pct_scales,
    load_llm_values_pct,
    load_llm_values_pct_annotations,
    load_llm_values_pct_raw,
)
from robustalign.schema import STATUSES, Scale, make_responses

FACTOR = {"paraphrase": "template", "forcing": "forcing"}
# Upstream layout (data README): 8 models x 10 templates and 10 models x 5 forcing levels, 62 propositions.
SHAPE = {"paraphrase": (4960, 8, 10), "forcing": (3100, 10, 5)}


@pytest.fixture(scope="module", params=["paraphrase", "forcing"])
def experiment(request):
    return request.param, load_llm_values_pct(request.param), load_llm_values_pct_raw(request.param)


def test_row_counts(experiment):
    name, resp, raw = experiment
    n, n_models, n_levels = SHAPE[name]
    assert len(resp.data) == len(raw) == n
    assert len(resp.models) == n_models
    assert resp.levels(FACTOR[name]) == sorted(raw[FACTOR[name]].unique())
    assert len(resp.levels(FACTOR[name])) == n_levels
    assert resp.items == [f"pc-{i:02d}" for i in range(1, 63)]
    assert resp.factors == (FACTOR[name],)
    assert resp.data.attrs.get("parser_version") == "1.0"


def test_every_row_is_accounted_for(experiment):
    name, resp, _ = experiment
    counts = resp.status_counts(by=["model", FACTOR[name]])
    assert (counts[list(STATUSES)].sum(axis=1) == counts["total"]).all()
    assert (counts["total"] == 62).all()  # one completion per proposition in every model x level cell
    # every excluded row is in the exclusion log, once
    log = resp.exclusions.to_frame()
    for st in STATUSES[1:]:
        logged = log.loc[log["reason"].str.contains(f"'{st}'"), "n_rows"].sum()
        assert logged == (resp.data["status"] == st).sum()
    assert resp.exclusions.total(action="dropped") == 0  # nothing dropped


def test_exact_label_completions_map_to_their_code(experiment):
    _, resp, raw = experiment
    text = raw["completion"].str.replace("<|assistant|>", "", regex=False).str.strip().str.rstrip(".")
    for code, label in zip("1234", PCT_LABELS):
        exact = (text == f"{code}) {label}").to_numpy()
        assert exact.any()
        assert (resp.data.loc[exact, "option"] == code).all()
        assert (resp.data.loc[exact, "status"] == "valid").all()


def test_known_completions(experiment):
    name, resp, raw = experiment
    d = resp.data.assign(completion_id=raw["completion_id"].to_numpy()).set_index("completion_id")
    if name == "forcing":
        # zephyr's chat prefix, and a label after prose (read from the files)
        assert d.loc["forcing|HuggingFaceH4/zephyr-7b-beta|pc-39|jail-04", "option"] == "3"
        assert d.loc["forcing|meta-llama/Llama-2-70b-chat-hf|pc-52|jail-01", "option"] == "2"
        assert d.loc["forcing|gpt-4-0613|pc-05|jail-04", "status"] == "refusal"
    else:
        assert d.loc["paraphrase|mistralai/Mistral-7B-Instruct-v0.2|pc-27|templ-08", "option"] == "1"
        assert d.loc["paraphrase|meta-llama/Llama-2-13b-chat-hf|pc-48|templ-03", "status"] == "ambiguous"


def test_forcing_changes_validity_as_published():
    # gpt-3.5-turbo-0613: 0.0 / 82.3 / 85.5 / 87.1 / 90.3 % valid for jail-01..05 (Röttger et al. 2024)
    resp = load_llm_values_pct("forcing")
    d = resp.data[resp.data["model"] == "gpt-3.5-turbo-0613"]
    valid = d.groupby("forcing")["status"].apply(lambda s: int((s == "valid").sum()))
    assert valid.tolist() == [0, 51, 53, 54, 56]


def test_scales_and_propositions():
    scales = llm_values_pct_scales()
    assert len(scales) == 62
    assert set(scales.values()) == {Scale(("1", "2", "3", "4"), tuple(PCT_LABELS), True)}
    props = llm_values_pct_propositions()
    assert props["item"].tolist() == sorted(scales)
    assert props["proposition"].str.len().min() > 10


def test_reversed_order_is_mapped_back():
    # ans-08 shows "1) Strongly agree ... 4) Strongly disagree"; the loader would record 4|3|2|1
    from robustalign.datasets.pct import _option_orders

    orders = _option_orders()
    assert orders["ans-01"] == "1|2|3|4" and orders["ans-08"] == "4|3|2|1"
    assert set(orders) == {f"ans-{i:02d}" for i in range(1, 9)}
    df = pd.DataFrame({"model": "m", "item": "pc-01", "option_order": ["4|3|2|1", "1|2|3|4"],
                       "sample": [1, 2], "raw_text": ["1) Strongly agree", "1) Strongly disagree"]})
    resp = make_responses(df, scales=llm_values_pct_scales())
    assert resp.data["option"].tolist() == ["4", "1"]
    df.loc[0, "raw_text"] = "1) Strongly disagree"  # number and text disagree under the shown order
    assert make_responses(df, scales=llm_values_pct_scales()).data["status"].tolist() == ["ambiguous", "valid"]


def test_annotations_match_bundled_completions():
    a = load_llm_values_pct_annotations("invalid")
    assert len(a) == 100 and a["validation_label"].eq("invalid").all()
    raw = load_llm_values_pct_raw("forcing").set_index("completion_id")["completion"]
    ids = "forcing|" + a["model"] + "|" + a["item"] + "|" + a["jail_id"]
    assert (raw.loc[ids].to_numpy() == a["completion"].to_numpy()).all()
    b = load_llm_values_pct_annotations("agreement")
    assert len(b) == 200 and set(b["annot1_label"]) == {"1_disagree", "2_agree", "3_other"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="`experiment` must be one of \\['forcing', 'paraphrase'\\]; got 'jailbreak'"):
        load_llm_values_pct("jailbreak")
    with pytest.raises(ValueError, match="`name` must be one of"):
        load_llm_values_pct_annotations("labels")


def test_package_data_ships_licence_and_citation():
    folder = Path(__import__("robustalign.datasets.pct", fromlist=["x"]).__file__).parent / "llm_values_pct"
    assert "Creative Commons" in (folder / "LICENSE").read_text()
    assert "Röttger" in (folder / "CITATION.md").read_text()
    assert "Röttger" in CITATION


def test_paper_rule_reproduces_all_50_published_cells():
    # Independent reference: the published valid counts of the forcing experiment (upstream notebook
    # notebooks/explicit_jailbreak_experiments.ipynb, the paper's validity figure), which also reports
    # 0 "unknown" completions; e.g. zephyr-7b-beta 0.0 / 82.3 / 91.9 / 88.7 / 72.6 %.
    from robustalign.datasets.pct import PUBLISHED_VALID_COUNTS
    from robustalign.parsing import rottger2024_validity

    raw = load_llm_values_pct_raw("forcing")
    label = raw["completion"].map(rottger2024_validity)
    assert (label == "unknown").sum() == 0
    valid = (label == "valid").groupby([raw["model"], raw["forcing"]]).sum().unstack()
    assert sorted(valid.index) == sorted(PUBLISHED_VALID_COUNTS)
    equal = sum(int(valid.loc[m, f"jail-0{k + 1}"] == n) for m, ns in PUBLISHED_VALID_COUNTS.items()
                for k, n in enumerate(ns))
    assert equal == 50
    assert [round(100 * n / 62, 1) for n in valid.loc["HuggingFaceH4/zephyr-7b-beta"]] == [0.0, 82.3, 91.9, 88.7, 72.6]
