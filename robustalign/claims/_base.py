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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from robustalign._result import Result
from robustalign._validation import check_confidence_level

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["VERDICTS", "AssessmentResult"]

VERDICTS = ("supported", "not supported", "inconclusive")
FRAME_COLUMNS = (
    "quantity", "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method", "method_note",
    "p_value", "p_adjusted", "adjust_method", "family", "n_items", "units",
)


#: Levels at which a result whose table is built by a local function keeps its tables when pickled.
PICKLED_LEVELS = (0.8, 0.9, 0.95, 0.99)


class StoredTables:
    """The estimates table of an unpickled result at the levels stored when it was pickled.

    Assessments build their tables from stored resamples at any level; when that builder is a local
    function (which pickle cannot carry), pickling keeps the tables at :data:`PICKLED_LEVELS` and the
    result's own level instead, and another level is refused with that list.
    """

    def __init__(self, tables: dict):
        self.tables = tables

    def __call__(self, level: float) -> pd.DataFrame:
        for lv, table in self.tables.items():
            if abs(lv - level) < 1e-12:
                return table.copy()
        raise ValueError(
            f"this result was restored from a pickle, which keeps its tables at the levels "
            f"{sorted(self.tables)}; run the assessment again for level {level}."
        )


def _picklable(fn) -> bool:
    """False for a lambda or a function defined inside another (pickle stores functions by name)."""
    from functools import partial

    f = fn.func if isinstance(fn, partial) else fn
    name = getattr(f, "__qualname__", "")
    return "<locals>" not in name and "<lambda>" not in name


@dataclass
class AssessmentResult(Result):
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
        # built once per level (a table re-reads every stored resample: the report asks for it per figure)
        cache = self.__dict__.setdefault("_tables", {})
        if level not in cache:
            cache[level] = self.build(level)
        return cache[level].copy()

    def conf_int(self, confidence_level: float | None = None, method: str | None = None) -> pd.DataFrame:
        """Only the interval columns of :meth:`to_frame`, at another level if asked."""
        if method is not None:  # the signature of Result.conf_int; one interval method here
            raise ValueError(f"{type(self).__name__} has one interval method; `method` cannot be chosen.")
        f = self.to_frame(confidence_level)
        keys = [c for c in f.columns if c not in FRAME_COLUMNS and f[c].dtype == object]
        return f[[*keys, "quantity", "conf_low", "conf_high", "conf_level"]]

    def summary(self) -> str:
        """One line per judged unit: the verdict in words with its numbers."""
        if self.verdicts is None or self.verdicts.empty:
            return f"{self.kind}: nothing could be judged."
        return "\n".join(self.verdicts["reason"].astype(str))

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Axes | np.ndarray:
        """The result's main figure (matplotlib is imported here, not before); returns the Axes. Without
        a dedicated figure: the estimates with their intervals (``plots.results.plot_estimates``)."""
        if self.plotter is None:
            return super().plot(ax=ax, **kwargs)
        return self.plotter(self, ax=ax, **kwargs)

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_tables", None)  # a cache: rebuilt on demand
        build = state.get("build")
        if build is not None and not isinstance(build, StoredTables) and not _picklable(build):
            levels = sorted({*PICKLED_LEVELS, float(self.confidence_level)})
            state["build"] = StoredTables({lv: build(lv) for lv in levels})
        plotter = state.get("plotter")
        if plotter is not None and not _picklable(plotter):
            state["plotter"] = None  # the generic figure of the estimates is drawn instead
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

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
