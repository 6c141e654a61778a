"""Refusal and invalid-answer rates per cell, with intervals and a paired test across conditions.

METHODS 3.12: the status of every answer is kept as its own category; the valid (or refusal) rate per
model x condition is reported with a Wilson interval, and whether it differs between the levels of a
condition is tested. Because every level asks the same items, the test is paired by item: Cochran's Q
(McNemar's exact test for two levels), computed by statsmodels. Differential missingness across
conditions is itself a stability finding and biases mean comparisons, so it is reported, never hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from robustalign._result import Result
from robustalign._validation import check_choice, check_confidence_level
from robustalign.schema import STATUSES, Responses

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["ValidityResult", "validity_rates"]


@dataclass
class ValidityResult(Result):
    """Rates of an answer status per cell, with intervals, and tests across a condition's levels.

    Attributes
    ----------
    counts : DataFrame
        Per cell: every status count and ``total`` (valid + each exclusion = total).
    status : str
        The status whose rate is estimated (``"valid"`` by default).
    tests : DataFrame
        Per group of cells (e.g. per model): the paired test across the levels of ``condition``.
    """

    counts: pd.DataFrame
    status: str
    by: tuple[str, ...]
    condition: str | None
    tests: pd.DataFrame = field(repr=False)
    confidence_level: float = 0.95
    method: str = "wilson"

    def conf_int(self, confidence_level: float | None = None, method: str | None = None) -> pd.DataFrame:
        """Intervals at another level or by another closed-form method (``"wilson"``, ``"beta"`` =
        Clopper-Pearson, ``"jeffreys"``, ``"agresti_coull"``): nothing is resampled. Indexed by cell."""
        from statsmodels.stats.proportion import proportion_confint

        level = check_confidence_level(self.confidence_level if confidence_level is None else confidence_level)
        k = self.counts[self.status].to_numpy()
        n = self.counts["total"].to_numpy()
        method = self.method if method is None else check_choice(method, ("wilson", "beta", "jeffreys",
                                                                          "agresti_coull"), "method")
        lo, hi = proportion_confint(k, n, alpha=1 - level, method=method)
        token = {"beta": "clopper-pearson", "agresti_coull": "agresti-coull"}.get(method, method)  # METHODS
        return pd.DataFrame({"conf_low": lo, "conf_high": hi, "conf_level": level, "method": token},
                            index=self.counts.index)

    def to_frame(self, confidence_level: float | None = None) -> pd.DataFrame:
        """One row per cell: ``n``, ``n_<status>``, ``estimate``, ``conf_low``, ``conf_high``, ``conf_level``."""
        ci = self.conf_int(confidence_level)
        out = self.counts.rename(columns={s: f"n_{s}" for s in STATUSES}).rename(columns={"total": "n"})
        out["estimate"] = self.counts[self.status] / self.counts["total"]
        out = pd.concat([out, ci], axis=1)
        return out.reset_index()

    def summary(self) -> str:
        f = self.to_frame()
        lo, hi = f["estimate"].min(), f["estimate"].max()
        text = (
            f"{self.status} rate ranges from {lo:.1%} to {hi:.1%} across {len(f)} cells "
            f"({self.confidence_level:.0%} {self.method} intervals)."
        )
        if self.condition is not None and len(self.tests):
            sig = self.tests[self.tests["p_value"] < 0.05]
            text += (
                f" It differs across levels of {self.condition!r} (paired by item, p < 0.05) for "
                f"{len(sig)} of {len(self.tests)} groups."
            )
        return text

    # narrower than Result.plot's pass-through keywords on purpose: this figure has no options
    def plot(self, ax: Axes | None = None) -> Axes:  # type: ignore[override]
        from robustalign.plots import plot_rates

        return plot_rates(self, ax=ax)


def validity_rates(
    responses: Responses,
    *,
    by: Sequence[str] = ("model",),
    condition: str | None = None,
    status: str = "valid",
    confidence_level: float = 0.95,
    method: str = "wilson",
) -> ValidityResult:
    """Rate of ``status`` answers per cell of ``by`` (+ ``condition``), with intervals and paired tests.

    Parameters
    ----------
    responses : Responses
        Choice responses with a ``status`` column (parsed raw text, or given answers which are all valid).
    by : sequence of str
        Cells; the rate is estimated in each cell of ``by`` x ``condition``.
    condition : str, optional
        A design factor whose levels are compared within each cell of ``by``, paired by item
        (Cochran's Q; McNemar's exact test for two levels). When other design factors vary too (a
        second factor, repeated ``sample`` s), the pairing unit is the item under one combination of
        those crossed with ``condition`` (``n_blocks`` such units; ``n_items`` distinct items among
        them); Cochran's Q treats the units as independent.
    status : str
        ``"valid"`` (default), ``"refusal"``, ``"unparseable"`` or ``"ambiguous"``.
    method : str
        Interval method passed to ``statsmodels.stats.proportion.proportion_confint`` (Wilson default).
    """
    if status not in STATUSES:
        raise ValueError(f"`status` must be one of {STATUSES}; got {status!r}.")
    level = check_confidence_level(confidence_level)
    cells = [*by, *([condition] if condition else [])]
    missing = [c for c in cells if c not in responses.data]
    if missing:
        raise ValueError(f"columns {missing} are not in the responses; factors are {list(responses.factors)}.")
    counts = responses.status_counts(cells)
    tests = _paired_tests(responses, list(by), condition, status) if condition else pd.DataFrame()
    return ValidityResult(counts, status, tuple(by), condition, tests, level, method)


def _paired_tests(responses: Responses, by: list[str], condition: str, status: str) -> pd.DataFrame:
    from statsmodels.stats.contingency_tables import cochrans_q, mcnemar

    d = responses.data
    flag = (d["status"] == status).astype(int) if "status" in d else pd.Series(1, index=d.index)
    # the pairing unit: an item under one combination of the other factors that are crossed with the
    # condition (e.g. each sample, template); a factor nested in the condition cannot pair its levels
    others = [f for f in responses.factors if f not in (*by, condition) and f in d]
    block = ["item", *[f for f in others if d.groupby(f, observed=True)[condition].nunique().min() >= 2]]
    rows = []
    groups = d.groupby(by, sort=True, observed=True) if by else [((), d)]
    for key, g in groups:
        wide = flag.loc[g.index].groupby([g[c] for c in [*block, condition]], observed=True).mean()
        wide = wide.unstack(condition)
        if not np.isin(wide.dropna().to_numpy(), [0.0, 1.0]).all():
            raise ValueError(
                f"validity_rates: cell {key} has more than one answer per {' x '.join(block)} x {condition!r} "
                "level; the paired test needs one. Remove the duplicate answers."
            )
        complete = wide.notna().all(axis=1)
        n_complete = int(complete.sum())
        n_items = int(wide.index[complete].get_level_values(0).nunique()) if len(block) > 1 else n_complete
        wide = wide.dropna()
        k = wide.shape[1]
        if k < 2 or len(wide) == 0:
            stat, p, test = np.nan, np.nan, "none"
        elif k == 2:
            a, b = wide.iloc[:, 0].to_numpy(), wide.iloc[:, 1].to_numpy()
            table = [[np.sum((a == 1) & (b == 1)), np.sum((a == 1) & (b == 0))],
                     [np.sum((a == 0) & (b == 1)), np.sum((a == 0) & (b == 0))]]
            r = mcnemar(table, exact=True)
            stat, p, test = float(r.statistic), float(r.pvalue), "mcnemar_exact"
        elif (wide.to_numpy() == wide.to_numpy()[:, :1]).all():
            stat, p, test = 0.0, 1.0, "cochrans_q"  # no item changes status: no evidence of a difference
        else:
            r = cochrans_q(wide.to_numpy())
            stat, p, test = float(r.statistic), float(r.pvalue), "cochrans_q"
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "test": test, "statistic": stat, "p_value": p,
                     "n_items": n_items, "n_blocks": n_complete, "n_levels": k})
    return pd.DataFrame(rows)
