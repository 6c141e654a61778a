"""The shape every assessment result shares: verdicts in words, tidy estimates with intervals, evidence.

A result keeps the resampled evidence it was built from (bootstrap and permutation results, fitted
models), so :meth:`AssessmentResult.to_frame` at another confidence level re-reads stored resamples
and never resamples again.

Verdict vocabulary (one per judged unit, e.g. per model):

``"supported"``
    the data support the property / claim at the stated level (interval and test agree);
``"not supported"``
    the data contradict it (e.g. an effect larger than the human benchmark, or a gain below zero);
``"inconclusive"``
    neither: the interval spans both readings. The row then says what sample size would be needed
    (from the minimum detectable effect), so "cannot be judged at this size" is a finding, not a shrug.

Stable ``to_frame()`` columns (snake_case; the level is a value, never part of a name):

``quantity`` (what is estimated), the unit keys (``model``, ``factor``, ``level_a``, ``level_b``,
``group`` ... as the assessment needs), ``estimate``, ``std_error``, ``conf_low``, ``conf_high``,
``conf_level``, ``method``, ``p_value``, ``p_adjusted``, ``adjust_method``, ``family``, ``n_items``,
``units`` (e.g. "mean position on [0, 1]"), and where a benchmark applies ``benchmark``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from robustalign._validation import check_confidence_level

__all__ = ["VERDICTS", "AssessmentResult"]

VERDICTS = ("supported", "not supported", "inconclusive")
FRAME_COLUMNS = (
    "quantity", "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method",
    "p_value", "p_adjusted", "adjust_method", "family", "n_items", "units",
)


@dataclass
class AssessmentResult:
    """Base class of :func:`assess_stability`, :func:`assess_extrapolability`, :func:`assess_steerability`
    and :func:`audit_claim` results.

    Attributes
    ----------
    kind : str
        ``"stability"``, ``"extrapolability"``, ``"steerability"`` or ``"claim"``.
    verdicts : DataFrame
        One row per judged unit: its keys, ``verdict`` (one of :data:`VERDICTS`), ``reason`` (words,
        with the numbers), and ``n_needed`` where the verdict is inconclusive.
    evidence : dict
        Named sub-results (``BootstrapResult``, ``PermutationResult``, DataFrames, Bayesian fits).
    provenance : dict
        Seed record, ``n_resamples``, arguments, data hashes, the multiplicity family.
    confidence_level : float
        Default level of :meth:`to_frame`.
    build : callable
        ``build(level) -> DataFrame``: the estimates table at a level, from stored evidence.
    """

    kind: str
    verdicts: pd.DataFrame
    evidence: dict = field(repr=False)
    provenance: dict = field(repr=False)
    confidence_level: float = 0.95
    build: Callable[[float], pd.DataFrame] | None = field(default=None, repr=False)
    plotter: Callable | None = field(default=None, repr=False)

    def to_frame(self, confidence_level: float | None = None) -> pd.DataFrame:
        """Tidy estimates with intervals (see the module docstring for the columns)."""
        level = self.confidence_level if confidence_level is None else check_confidence_level(confidence_level)
        if self.build is None:
            raise NotImplementedError("this result has no estimates table")
        return self.build(level)

    def conf_int(self, confidence_level: float | None = None) -> pd.DataFrame:
        """Only the interval columns of :meth:`to_frame`, at another level if asked."""
        f = self.to_frame(confidence_level)
        keys = [c for c in f.columns if c not in FRAME_COLUMNS and f[c].dtype == object]
        return f[[*keys, "quantity", "conf_low", "conf_high", "conf_level"]]

    def summary(self) -> str:
        """One line per judged unit: the verdict in words with its numbers."""
        if self.verdicts is None or self.verdicts.empty:
            return f"{self.kind}: nothing could be judged."
        return "\n".join(self.verdicts["reason"].astype(str))

    def plot(self, ax=None, **kwargs):
        """The result's main figure (matplotlib is imported here, not before)."""
        if self.plotter is None:
            raise NotImplementedError(f"no figure is defined for {self.kind} results")
        return self.plotter(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        return f"<p><b>{self.kind}</b></p>" + self.verdicts.to_html(index=False)

    def __repr__(self) -> str:
        counts = self.verdicts["verdict"].value_counts().to_dict() if len(self.verdicts) else {}
        return f"{type(self).__name__}(kind={self.kind!r}, verdicts={counts})"


def nanmean(x: np.ndarray, axis=0) -> np.ndarray:
    """``np.nanmean`` (same sums, same numbers) without its all-NaN warning, and safe in threads."""
    ok = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, x, 0.0).sum(axis=axis) / ok.sum(axis=axis)
