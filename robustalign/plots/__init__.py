"""Figures for robustalign results (matplotlib). Each function takes a result and an optional ``ax``
and returns the matplotlib Axes; none computes statistics. Importing this module imports matplotlib,
so the result objects import it only inside their ``plot()`` methods.

One style for all (``robustalign.plots._style``): Okabe-Ito colours (colour-blind safe), 7-8 pt text
at single-column width (3.3 in), TrueType fonts embedded in PDF output. Every plot function cuts
the tick labels and legend entries of the axes it returns to 26 characters and their other texts to
80 (:func:`shorten_labels` does the same for a whole figure, and the report applies it to every
figure), so a very long model name cannot blow up a layout; tables keep the names whole.

=============================  ==========================================================
alignment                      :func:`plot_alignment_forest`, :func:`plot_rank_caterpillar`,
                               :func:`plot_flip_heatmap`
stability                      :func:`plot_factor_effects` (against the margin),
                               :func:`plot_flip_rates` (against the noise floor),
                               :func:`plot_position_bias`
steerability                   :func:`plot_steering_matrix`, :func:`plot_steering_gains`,
                               :func:`plot_steerability`
extrapolability                :func:`plot_extrapolability`, :func:`plot_transfer`,
                               :func:`plot_split_half`
multiverse audit of a claim    :func:`plot_specification_curve`
persona experiment             :func:`plot_persona`
Bayesian fit                   :func:`plot_variance_shares`
calibration                    :func:`plot_calibration`, :func:`plot_sbc_ranks`
validity                       :func:`plot_rates`
=============================  ==========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import PALETTE, RC, dodge, interval_err, new_axes, short_labels, shorten_labels
from robustalign.plots.alignment import plot_alignment_forest, plot_flip_heatmap, plot_rank_caterpillar
from robustalign.plots.calibration import plot_calibration, plot_sbc_ranks
from robustalign.plots.extrapolability import plot_extrapolability, plot_split_half, plot_transfer
from robustalign.plots.multiverse import plot_specification_curve
from robustalign.plots.persona import plot_persona
from robustalign.plots.stability import plot_factor_effects, plot_flip_rates, plot_position_bias
from robustalign.plots.steerability import plot_steerability, plot_steering_gains, plot_steering_matrix
from robustalign.plots.variance import plot_variance_shares

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.validity import ValidityResult

__all__ = [
    "plot_alignment_forest",
    "plot_calibration",
    "plot_extrapolability",
    "plot_factor_effects",
    "plot_flip_heatmap",
    "plot_flip_rates",
    "plot_persona",
    "plot_position_bias",
    "plot_rank_caterpillar",
    "plot_rates",
    "plot_sbc_ranks",
    "plot_specification_curve",
    "plot_split_half",
    "plot_steerability",
    "plot_steering_gains",
    "plot_steering_matrix",
    "plot_transfer",
    "plot_variance_shares",
    "shorten_labels",
]


@short_labels
def plot_rates(result: ValidityResult, ax: Axes | None = None, *, confidence_level: float | None = None) -> Axes:
    """Rates with interval bars per cell (e.g. valid-answer rate per model x forcing level)."""
    f = result.to_frame(confidence_level)
    fig, ax = new_axes(ax, height=0.25 * len(f) / max(1, f[result.condition].nunique()) + 1.2
                       if result.condition else 2.4)
    with mpl.rc_context(RC):
        labels = f[list(result.by)].astype(str).agg(" / ".join, axis=1) if result.by else f.index.astype(str)
        cats = list(dict.fromkeys(labels))
        y = np.array([cats.index(v) for v in labels], float)
        levels = list(dict.fromkeys(f[result.condition])) if result.condition else [None]
        for j, lev in enumerate(levels):
            m = (f[result.condition] == lev).to_numpy() if lev is not None else np.ones(len(f), bool)
            ax.errorbar(f.loc[m, "estimate"], y[m] + dodge(j, len(levels), 0.8), xerr=interval_err(f[m]), fmt="o",
                        ms=3, color=PALETTE[j % len(PALETTE)], label=str(lev) if lev is not None else None)
        ax.set_yticks(range(len(cats)), cats)
        ax.invert_yaxis()
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(f"{result.status} rate ({int(f['conf_level'].iloc[0] * 100)}% {result.method} interval)")
        if result.condition:
            ax.legend(title=result.condition, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax
