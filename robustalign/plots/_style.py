"""One figure style for every robustalign plot: colour-blind-safe, vector-friendly, legible at
single-column paper width (3.3 in) with 7-8 pt text."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np

# Okabe-Ito palette (colour-blind safe)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
HUMAN_BAND = "#BBBBBB"
SINGLE_COLUMN = 3.3  # inches
DOUBLE_COLUMN = 6.9

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType: editable text in vector output
    "svg.fonttype": "none",
    "lines.linewidth": 1.0,
}


def new_axes(ax=None, *, width: float = SINGLE_COLUMN, height: float = 2.4):
    """Return (fig, ax): the given axes, or a new figure in the house style."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    with mpl.rc_context(RC):
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def interval_err(frame, est: str = "estimate", low: str = "conf_low", high: str = "conf_high") -> np.ndarray:
    """Error-bar lengths ``(2, n)`` from an estimate and its interval columns, clipped at 0.

    A percentile or BCa interval need not contain its point estimate; matplotlib refuses negative
    lengths, so such a bar is drawn from the estimate to the bound it does reach.
    """
    e = np.asarray(frame[est], float)
    return np.clip([e - np.asarray(frame[low], float), np.asarray(frame[high], float) - e], 0, None)


def dodge(j: int, n: int, span: float) -> float:
    """Offset of the ``j``-th of ``n`` series sharing one row, spread over ``span`` around the row."""
    return (j - (n - 1) / 2) * span / max(1, n)
