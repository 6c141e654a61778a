"""Specification curve: the claim's margin under every specification, sorted, with the choices below."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from robustalign.plots._style import DOUBLE_COLUMN, PALETTE, RC, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.claims.multiverse import ClaimResult

__all__ = ["plot_specification_curve"]


@short_labels
def plot_specification_curve(result: ClaimResult, ax: Axes | None = None, *, confidence_level: float | None = None,
                             max_choices: int = 12) -> Axes:
    """Estimates with intervals per specification (sorted), and a dot matrix of the choices made.

    Blue: the interval lies above 0 (claim holds); vermillion: below 0; grey: the interval spans 0.
    With ``ax`` only the curve is drawn into it; otherwise a two-panel figure is returned (its upper
    axes is returned).
    """
    f = result.to_frame(confidence_level).sort_values("estimate").reset_index(drop=True)
    choice_cols = [c for c in result.evidence["specifications"].columns]
    x = np.arange(len(f))
    with mpl.rc_context(RC):
        if ax is None:
            n_rows = sum(min(max_choices, f[c].nunique()) for c in choice_cols)
            fig, (ax, ax2) = plt.subplots(
                2, 1, sharex=True, figsize=(DOUBLE_COLUMN, 2.2 + 0.11 * n_rows), layout="constrained",
                gridspec_kw={"height_ratios": [2.2, max(1.0, 0.11 * n_rows)]},
            )
        else:
            ax2 = None
        colour = np.where(f["conf_low"] > 0, PALETTE[0], np.where(f["conf_high"] < 0, PALETTE[3], "#999999"))
        ax.vlines(x, f["conf_low"], f["conf_high"], colors=cast("list[str]", colour), lw=0.6, alpha=0.8)
        ax.scatter(x, f["estimate"], c=colour, s=6, zorder=3)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel(f"claim margin\n({int(f['conf_level'].iloc[0] * 100)}% interval)")
        claim = result.verdicts["claim"].iloc[0]
        ax.set_title(f"{claim}: holds in {int(f['holds'].sum())} of {len(f)} specifications", loc="left")
        if ax2 is not None:
            ylab, y = [], 0
            for c in choice_cols:
                levels = list(dict.fromkeys(f[c].astype(str)))[:max_choices]
                for lev in levels:
                    m = (f[c].astype(str) == lev).to_numpy()
                    ax2.scatter(x[m], np.full(m.sum(), y), s=3, marker="s", color="black")
                    ylab.append(f"{c}: {lev}")
                    y += 1
            ax2.set_yticks(range(len(ylab)), ylab, fontsize=6)
            ax2.set_ylim(len(ylab) - 0.5, -0.5)
            ax2.set_xlabel("specification (sorted by estimate)")
            ax2.spines[["left", "bottom"]].set_visible(False)
            ax2.tick_params(length=0)
    return ax
