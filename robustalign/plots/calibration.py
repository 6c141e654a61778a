"""Calibration figures: nominal against empirical coverage of intervals (with the Monte Carlo interval
of each coverage), and SBC rank histograms. They read tables; nothing is computed here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import (
    HUMAN_BAND,
    PALETTE,
    RC,
    SINGLE_COLUMN,
    interval_err,
    new_axes,
    short_labels,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from robustalign._result import Result
    from robustalign.models.calibration import SBCResult

__all__ = ["plot_calibration", "plot_sbc_ranks"]


def _frame(result):
    return result.to_frame() if hasattr(result, "to_frame") else result


@short_labels
def plot_calibration(result: pd.DataFrame | Result, ax: Axes | None = None, *, by: str = "method") -> Axes:
    """Empirical against nominal coverage, one line per ``by`` level, with intervals of the coverage.

    ``result`` is a table (or an object with ``to_frame()``) with columns ``nominal``, ``estimate``
    (empirical coverage), ``conf_low``, ``conf_high`` and optionally ``by`` (e.g. the interval method),
    as returned by :func:`robustalign.report.calibration.bootstrap_coverage`. Points on the diagonal
    are calibrated; below it the intervals are too narrow.
    """
    f = _frame(result)
    for c in ("nominal", "estimate", "conf_low", "conf_high"):
        if c not in f.columns:
            raise ValueError(f"the calibration table needs a {c!r} column; it has {list(f.columns)}.")
    fig, ax = new_axes(ax, width=SINGLE_COLUMN, height=SINGLE_COLUMN * 0.85)
    with mpl.rc_context(RC):
        lo = float(min(f["nominal"].min(), f["conf_low"].min())) - 0.03
        ax.plot([lo, 1], [lo, 1], color=HUMAN_BAND, lw=1, zorder=0, label="calibrated")
        levels = list(dict.fromkeys(f[by])) if by in f.columns else [None]
        for j, lev in enumerate(levels):
            g = f[f[by] == lev] if lev is not None else f
            off = (j - (len(levels) - 1) / 2) * 0.006
            ax.errorbar(g["nominal"] + off, g["estimate"], yerr=interval_err(g), fmt="o-", ms=3, lw=0.8, capsize=1.5,
                        color=PALETTE[j % len(PALETTE)], label=str(lev) if lev is not None else None)
        ax.set_xlim(lo, 1.0)
        ax.set_ylim(lo, 1.0)
        ax.set_aspect("equal")
        ax.set_xlabel("nominal coverage")
        lvl = f["conf_level"].iloc[0] if "conf_level" in f.columns else 0.95
        ax.set_ylabel(f"empirical coverage ({lvl:.0%} interval)")
        n = f["n_studies"].iloc[0] if "n_studies" in f.columns else None
        if n is not None:
            ax.set_title(f"{int(n)} simulated studies"
                         + (f" of {int(f['n_items'].iloc[0])} items" if "n_items" in f.columns else ""), loc="left")
        ax.legend(frameon=False, loc="upper left")
    return ax


@short_labels
def plot_sbc_ranks(result: pd.DataFrame | SBCResult, ax: Axes | None = None, *, bins: int = 10,
                   max_panels: int = 8) -> Axes:
    """Histograms of simulation-based calibration ranks per parameter with the uniform band (99%).

    ``result`` is a table (or has ``to_frame()``) with columns ``parameter``, ``rank`` and
    ``n_draws`` (the number of posterior draws a rank is out of); uniform histograms mean calibration.
    """
    from scipy.stats import binom

    f = _frame(result)
    params = list(dict.fromkeys(f["parameter"]))[:max_panels]
    import matplotlib.pyplot as plt

    if ax is None:
        ncol = min(4, len(params))
        nrow = int(np.ceil(len(params) / ncol))
        with mpl.rc_context(RC):
            fig, axes = plt.subplots(nrow, ncol, figsize=(1.7 * ncol, 1.4 * nrow + 0.3), layout="constrained",
                                     squeeze=False)
        axes = axes.ravel()
    else:
        axes = np.atleast_1d(ax)
    with mpl.rc_context(RC):
        for a, p in zip(axes, params):
            r = f.loc[f["parameter"] == p, "rank"].to_numpy(float)
            L = float(f.loc[f["parameter"] == p, "n_draws"].iloc[0])
            n = len(r)
            lo, hi = binom.ppf([0.005, 0.995], n, 1 / bins)
            a.axhspan(lo, hi, color=HUMAN_BAND, alpha=0.5, lw=0)
            a.hist(r, bins=np.linspace(0, L + 1, bins + 1), color=PALETTE[0], edgecolor="white", lw=0.4)
            a.set_title(str(p), fontsize=7)
            a.set_yticks([])
        for a in axes[len(params):]:
            a.set_visible(False)
    return axes[0]
