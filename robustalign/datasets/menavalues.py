"""MENAValues (QCRI LLM Lab, 2025): human answer shares for 16 MENA countries x 864 items.

Sources are the World Values Survey wave 7 and the Arab Opinion Index 2022. No respondent counts
are published, so ``n`` is unknown (NaN) for every cell and that is recorded.

What the loader changes, all counted in the reference's exclusion log:

* option ``0`` ("Not applicable (service not provided)") appears on five Arab Opinion Index items
  (mv0365, mv0366, mv0372, mv0763, mv0764) although their scales run from 1. It is a
  non-substantive answer: by default it is removed and the substantive shares renormalised
  (the OpinionQA convention, METHODS 3.12); ``substantive_only=False`` keeps it as an extra first
  option instead;
* shares that sum to 1 within rounding (at most 4e-4 off) are renormalised;
* options that have no row for a country get share 0;
* items without any human shares (3 of 864) are left out of the scales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from robustalign.schema import Reference, make_reference

__all__ = ["load_menavalues"]

_DIR = Path(__file__).parent / "menavalues"

CITATION = (
    "MENAValues benchmark, QCRI LLM Lab (2025), github.com/llm-lab-org/MENA-Values-Benchmark "
    "(MIT licence). Human data: World Values Survey wave 7; Arab Opinion Index 2022."
)


def load_menavalues(*, substantive_only: bool = True) -> Reference:
    """Load the MENAValues human reference distributions (groups are countries).

    Returns
    -------
    Reference
        With ``Reference.items_info`` holding the item table (label, source, category, question).
    """
    items = pd.read_csv(_DIR / "items.csv", dtype={"item_id": str})
    shares = pd.read_csv(_DIR / "human_shares.csv", dtype={"item_id": str})
    shares = shares.rename(columns={"item_id": "item", "country": "group"})
    shares["option"] = shares["option"].astype(int)
    items = items[items["item_id"].isin(shares["item"])]
    lo = items.set_index("item_id")["scale_min"]
    below = shares["option"] < shares["item"].map(lo)
    recoded_cells = []
    if substantive_only:
        dropped_rows = shares.index[below].tolist()
        recoded_cells = shares.loc[below, ["item", "group"]].drop_duplicates()
        shares = shares[~below].copy()
        tot = shares.groupby(["item", "group"])["share"].transform("sum")
        mask = shares.set_index(["item", "group"]).index.isin(pd.MultiIndex.from_frame(recoded_cells))
        shares.loc[mask, "share"] = shares.loc[mask, "share"] / tot[mask]
    else:
        lo = lo.where(~lo.index.isin(shares.loc[below, "item"]), 0)
    scales = pd.DataFrame(
        {
            "item": items["item_id"],
            "options": [
                "|".join(str(k) for k in range(int(a), int(b) + 1))
                for a, b in zip(items["item_id"].map(lo), items["scale_max"])
            ],
            "ordinal": items["ordinal"].astype(bool),
        }
    )
    shares["option"] = shares["option"].astype(str)
    ref = make_reference(shares, scales)
    if substantive_only and len(dropped_rows):
        ref.exclusions.add(
            "reference", "non-substantive option 0 ('not applicable') removed", dropped_rows, "dropped"
        )
        ref.exclusions.add(
            "reference",
            "shares renormalised over substantive options after removing option 0",
            np.flatnonzero(mask).tolist(),
            "recoded",
        )
    # Reference declares no items_info: this loader attaches its item table for the report to find
    ref.items_info = (  # type: ignore[attr-defined]
        items.rename(columns={"item_id": "item"}).reset_index(drop=True))
    return ref
