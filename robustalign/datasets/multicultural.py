"""Rystrøm et al. (2025), "Multilingual != Multicultural": model pro-scores and human ground truth.

Nine models answered 37 World Values Survey items in four prompt languages (da, en, nl, pt). Each
response is a 0-1 "pro" score (the share of pro stances among up to 10 hypothetical interviews the
model wrote). Human ground truth is the share of respondents on the "pro" side, per language, per
country (13) and globally. A steering experiment told gemma-2-27b-it that the respondents are from a
country that does (congruent) or does not (incongruent) speak the prompt language.

What the loader changes, all counted in the exclusion logs or stated here:

* item keys are upper-cased (responses use ``f121``, the ground truth ``F121``);
* every stored response of one model x language x item gets a ``sample`` number (its order in the
  file), because the file has no sample column and repeated responses are separate draws;
* items without any human ground truth (E028, E225-E228) are dropped from the responses and counted;
* a human pro-score ``p`` becomes the two-option reference distribution (con = 1 - p, pro = p);
  respondent counts are not published, so ``n`` is unknown (NaN) and recorded as such;
* the steering experiment names countries in full; ``steer_target`` uses the ground truth's
  two-letter codes (mapping in :data:`COUNTRY_CODES`).

The steering file carries its own per-row ``ground_truth_pro_score``, which the authors' published
bootstrap uses. It matches neither bundled ground-truth table exactly (mean absolute difference 0.08
from ``ground_truth_every_country.csv`` for the named country, 0.02 from the per-language table), and
it also covers the five items that have no ground truth in those tables. To reproduce the published
numbers use :attr:`MulticulturalAlignment.steering_rows`, which keeps every row of the file with that
column; :attr:`MulticulturalAlignment.steering` is the contract form against the country table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from robustalign.schema import Reference, Responses, make_reference, make_responses

__all__ = ["COUNTRY_CODES", "MulticulturalAlignment", "load_multicultural_alignment"]

_DIR = Path(__file__).parent / "multicultural_alignment"

COUNTRY_CODES = {
    "Australia": "AU",
    "Brazil": "BR",
    "Canada": "CA",
    "Denmark": "DK",
    "Great Britain": "GB",
    "Kenya": "KE",
    "Netherlands": "NL",
    "New Zealand": "NZ",
    "Portugal": "PT",
    "United States": "US",
    "Singapore": "SG",
    "Nigeria": "NG",
    "Northern Ireland": "NIR",
}

CITATION = (
    "Rystrøm, J. H., Kirk, H. R., & Hale, S. (2025). Multilingual != Multicultural: Evaluating Gaps "
    "Between Multilingual Capabilities and Cultural Alignment in LLMs. arXiv:2502.16534. "
    "Data: github.com/jhrystrom/multicultural-alignment (MIT licence)."
)


@dataclass
class MulticulturalAlignment:
    """The bundled multicultural-alignment data in the robustalign data contract.

    Attributes
    ----------
    responses : Responses
        9 models x 4 languages x 32 referenced items, scores in [0, 1]; factors ``language``, ``sample``.
    reference_language, reference_country, reference_global : Reference
        Human pro-scores as two-option distributions; groups are languages, country codes, ``"global"``.
    steering : Responses
        gemma-2-27b-it told the respondents come from ``steer_target``; factors ``language``,
        ``steer_target``, ``congruent``, ``sample``.
    steering_rows : DataFrame
        Every row of the steering file (``item, language, steer_target, congruent, sample, score,
        ground_truth``), with the file's own ground truth, as the published analysis used it.
    published_bootstrap : DataFrame
        The authors' 1,000-round bootstrap of Spearman alignment in the steering experiment.
    self_consistency : DataFrame
        Human self-consistency per country, as published.
    country_languages : DataFrame
        Country code -> language code.
    """

    responses: Responses
    reference_language: Reference
    reference_country: Reference
    reference_global: Reference
    steering: Responses
    steering_rows: pd.DataFrame = field(repr=False)
    published_bootstrap: pd.DataFrame = field(repr=False)
    self_consistency: pd.DataFrame = field(repr=False)
    country_languages: pd.DataFrame = field(repr=False)
    citation: str = CITATION


def _pro_reference(df: pd.DataFrame, group: str) -> Reference:
    long = pd.concat(
        [
            pd.DataFrame({"item": df["question_key"], "group": df[group], "option": "con", "share": 1 - df["pro_score"]}),
            pd.DataFrame({"item": df["question_key"], "group": df[group], "option": "pro", "share": df["pro_score"]}),
        ],
        ignore_index=True,
    )
    items = sorted(long["item"].unique())
    scales = pd.DataFrame({"item": items, "options": "con|pro", "labels": "con|pro", "ordinal": True})
    return make_reference(long, scales)


def _number_samples(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.copy()
    df["sample"] = df.groupby(keys, sort=False).cumcount()
    return df


def load_multicultural_alignment() -> MulticulturalAlignment:
    """Load the bundled multicultural-alignment data (Rystrøm et al. 2025) in the data contract."""
    gl = pd.read_csv(_DIR / "ground_truth_per_language.csv")
    ref_lang = _pro_reference(gl.rename(columns={"lnge_iso": "language"}), "language")
    gc = pd.read_csv(_DIR / "ground_truth_every_country.csv")
    ref_country = _pro_reference(gc.rename(columns={"cntry_an": "country"}), "country")
    gg = pd.read_csv(_DIR / "ground_truth_global.csv").assign(group="global")
    ref_global = _pro_reference(gg, "group")

    raw = pd.read_csv(_DIR / "all_lang_model_responses_with_scores.csv")
    resp = pd.DataFrame(
        {
            "model": raw["model_name"],
            "item": raw["question_key"].str.upper(),
            "language": raw["language"],
            "score": raw["response_pro_score"],
        }
    )
    resp = _number_samples(resp, ["model", "item", "language"])
    responses = make_responses(resp, ref_lang, factors=["language", "sample"], drop_unreferenced=True)

    st = pd.read_csv(_DIR / "demographic-gemma-results.csv")
    steer = pd.DataFrame(
        {
            "model": st["model"],
            "item": st["question_key"].str.upper(),
            "language": st["language"],
            "steer_target": st["country"].map(COUNTRY_CODES),
            "congruent": st["is_congruent"].map({True: "congruent", False: "incongruent"}),
            "score": st["response_pro_score"],
        }
    )
    unmapped = st.loc[steer["steer_target"].isna(), "country"].unique()
    if len(unmapped):  # pragma: no cover - guards the bundled file
        raise RuntimeError(f"steering countries without a code: {list(unmapped)}")
    steer = _number_samples(steer, ["model", "item", "language", "steer_target"])
    steering_rows = steer.assign(ground_truth=st["ground_truth_pro_score"])
    steering = make_responses(
        steer, ref_country, factors=["language", "steer_target", "congruent", "sample"], drop_unreferenced=True
    )

    return MulticulturalAlignment(
        responses=responses,
        reference_language=ref_lang,
        reference_country=ref_country,
        reference_global=ref_global,
        steering=steering,
        steering_rows=steering_rows,
        published_bootstrap=pd.read_csv(_DIR / "spearman_n1000_demographic_analysis.csv"),
        self_consistency=pd.read_csv(_DIR / "gt_self_consistency.csv"),
        country_languages=pd.read_csv(_DIR / "country_languages.csv"),
    )
