"""The interface every robustalign result implements, and the default methods that give it.

A result (bootstrap, permutation test, assessment, claim audit, Bayesian fit, simulated power,
validity rates, reference draws, human-proxy similarity) answers the same five calls:

``to_frame(confidence_level=None)``
    the tidy table: key columns, then ``estimate`` and, where it has intervals, ``conf_low``,
    ``conf_high``, ``conf_level`` (the level is a value, never part of a column name);
``conf_int(confidence_level=None, method=None)``
    only the key and interval columns of that table;
``summary()``
    the estimates (and verdicts, where there are any) in words;
``plot(ax=None)``
    a figure drawn by a function of :mod:`robustalign.plots`; returns the matplotlib Axes (an array of
    Axes for a two-panel figure, as ``plt.subplots`` returns them);
``_repr_html_()``
    the summary and the table, for notebooks.

Results are picklable (they hold arrays, frames and module-level functions), so they come back from
a process pool or a Dask worker and can be cached. ``tests/test_result_interface.py`` checks every
result class against this list.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["INTERVAL_COLUMNS", "METHODS", "HasFrame", "Result", "check_method_vocabulary"]


class HasFrame(Protocol):
    """Anything with a ``to_frame()`` table: every robustalign result (what the exporters take)."""

    def to_frame(self, *args: Any, **kwargs: Any) -> pd.DataFrame: ...

#: Columns of ``conf_int()`` besides the keys.
INTERVAL_COLUMNS = ("conf_low", "conf_high", "conf_level", "method")

#: The vocabulary of every table's ``method`` column: short lowercase tokens naming how a row's interval
#: (or, for a row without one, its value) was obtained. Anything longer (the resampling design, the test
#: behind the p-value, a caveat) goes in a ``method_note`` column or in the summary.
METHODS: dict[str, str] = {
    "percentile": "bootstrap percentile interval",
    "bca": "bootstrap bias-corrected and accelerated (BCa) interval",
    "percentile-expanded": "bootstrap percentile interval at the small-sample expanded level (Hesterberg 2015)",
    "bca-expanded": "BCa interval at the small-sample expanded level (Hesterberg 2015)",
    "dirichlet-percentile": "percentile interval of Dirichlet posterior draws",
    "wilson": "Wilson score interval of a proportion",
    "clopper-pearson": "exact (beta) interval of a proportion",
    "jeffreys": "Jeffreys interval of a proportion",
    "agresti-coull": "Agresti-Coull interval of a proportion",
    "t": "t interval",
    "wald": "normal (Wald) interval from the estimate's standard error (e.g. a model's observed information)",
    "two-way-cgm": "two-way cluster-robust t interval (Cameron, Gelbach and Miller 2011)",
    "fisher-z": "Fisher z interval of a correlation",
    "f-test": "F-test interval of an intraclass correlation",
    "posterior-eti": "Bayesian posterior equal-tailed interval",
    "permutation": "bounds from a permutation null",
    "plug-in": "point estimate without an interval",
}


def check_method_vocabulary(frame, where: str = "result") -> None:
    """Every value of ``frame["method"]`` (if it has one) is a token of :data:`METHODS`."""
    if "method" not in getattr(frame, "columns", ()):
        return
    bad = sorted({str(v) for v in frame["method"].dropna().unique()} - set(METHODS))
    if bad:
        raise ValueError(f"{where}: `method` values {bad} are not in the vocabulary {sorted(METHODS)} "
                         "(robustalign._result.METHODS); put a longer description in `method_note`.")


#: Columns that carry a statistic or bookkeeping rather than identify a row (the rest are keys).
VALUE_COLUMNS = (
    "quantity", "estimate", "std_error", "conf_low", "conf_high", "conf_level", "method", "method_note", "p_value",
    "p_adjusted", "adjust_method", "family", "n_items", "units", "n_resamples", "alternative", "p_maxt", "holds",
    "n_simulations", "alpha", "benchmark", "converged", "n_eff", "n_source", "n_rejected",
)


def key_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a result table that identify its rows (not values, not Monte Carlo errors)."""
    return [c for c in frame.columns if c not in VALUE_COLUMNS and not str(c).endswith("_mcse")
            and not str(c).startswith(("n_", "p_"))]


class Result:
    """Mixin with the shared defaults; a result class defines ``to_frame`` and ``summary``."""

    def to_frame(self, confidence_level: float | None = None) -> pd.DataFrame:  # pragma: no cover - every class overrides
        raise NotImplementedError

    def summary(self) -> str:  # pragma: no cover - every class overrides
        raise NotImplementedError

    def conf_int(self, confidence_level: float | None = None, method: str | None = None) -> pd.DataFrame:
        """The key and interval columns of :meth:`to_frame` at ``confidence_level``."""
        if method is not None:
            raise ValueError(f"{type(self).__name__} has one interval method; `method` cannot be chosen.")
        f = self.to_frame(confidence_level)
        if "conf_low" not in f.columns:
            raise ValueError(f"{type(self).__name__} has no confidence intervals.")
        return f[[*key_columns(f), *[c for c in ("quantity", "estimate", *INTERVAL_COLUMNS) if c in f.columns]]]

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Any:  # Axes, or an array of them for two panels
        """Estimates with their intervals, one row each (:func:`robustalign.plots.results.plot_estimates`)."""
        from robustalign.plots.results import plot_estimates

        return plot_estimates(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        table = frame.to_html(index=False, max_rows=40, float_format=lambda x: f"{x:.4g}", na_rep="")
        text = html.escape(self.summary()).replace("\n", "<br>")
        return f"<p><b>{type(self).__name__}</b>: {text}</p>{table}"
