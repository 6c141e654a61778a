"""Error and warning types shared by the whole package."""

from __future__ import annotations


class RobustAlignError(Exception):
    """Base class of every error robustalign raises on purpose."""


class SchemaError(RobustAlignError, ValueError):
    """Input data do not meet the data contract.

    The message names the column, the offending rows or values, and the fix.
    """


class RobustAlignWarning(UserWarning):
    """Base class of robustalign's warnings."""


class ConvergenceWarning(RobustAlignWarning):
    """A Bayesian fit failed its convergence gate (R-hat, ESS or divergences)."""


class DegenerateResampleWarning(RobustAlignWarning):
    """Resamples gave a degenerate distribution (e.g. every replicate identical)."""


def preview(values, limit: int = 5) -> str:
    """Show at most ``limit`` values of a sequence, and how many more there are."""
    values = [v.item() if hasattr(v, "item") and getattr(v, "ndim", None) == 0 else v for v in values]
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"
