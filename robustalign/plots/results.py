"""Generic figures of any result: estimates with intervals, and a permutation null. They read
``result.to_frame()`` (or the stored null) and compute nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import PALETTE, RC, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign._result import Result
    from robustalign.resampling.results import PermutationResult

__all__ = ["plot_estimates", "plot_null"]


@short_labels
def plot_estimates(result: Result, ax: Axes | None = None, *, confidence_level: float | None = None,
                   **frame_kwargs: Any) -> Axes:
    """One row per estimate with its interval (where the result has intervals)."""
    from robustalign._result import key_columns

    f = result.to_frame(confidence_level, **frame_kwargs)
    keys = key_columns(f)
    if "quantity" in f.columns and f["quantity"].nunique() > 1:
        keys = ["quantity", *keys]
    import pandas as pd

    def label(row) -> str:  # key values that are set, joined (a missing key is left out, not written "nan")
        return " / ".join(str(v) for v in row if not (v is None or (not isinstance(v, str) and pd.isna(v))))

    names = f[keys].apply(label, axis=1) if keys else f.index.astype(str)
    fig, ax = new_axes(ax, height=0.22 * len(f) + 1.0)
    with mpl.rc_context(RC):
        y = np.arange(len(f))
        has_ci = {"conf_low", "conf_high"} <= set(f.columns) and f[["conf_low", "conf_high"]].notna().any().any()
        if has_ci:
            ax.errorbar(f["estimate"], y, xerr=interval_err(f), fmt="o", ms=3, color=PALETTE[0], capsize=2)
        else:
            ax.plot(f["estimate"], y, "o", ms=3, color=PALETTE[0])
        ax.set_yticks(y, list(names))
        ax.set_ylim(len(f) - 0.5, -0.5)
        level = f["conf_level"].dropna().iloc[0] if has_ci and f["conf_level"].notna().any() else None
        what = getattr(result, "statistic_name", None) or "estimate"
        ax.set_xlabel(f"{what} ({level:.0%} interval)" if level is not None else str(what))
    return ax


@short_labels
def plot_null(result: PermutationResult, ax: Axes | None = None, *, which: int = 0, bins: int = 50) -> Axes:
    """Histogram of a permutation null (statistic ``which``) with the observed value as a line."""
    fig, ax = new_axes(ax, height=2.2)
    with mpl.rc_context(RC):
        ax.hist(result.null_distribution[:, which], bins=bins, color="0.7")
        ax.axvline(result.statistic[which], color=PALETTE[5 % len(PALETTE)])
        ax.set_xlabel(f"{result.statistic_name} under the null (observed: line; p = {result.p_value[which]:.3g})")
        ax.set_ylabel("permutations")
    return ax
