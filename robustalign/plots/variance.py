"""Variance shares of a fitted Bayesian model (``BayesFit.variance_shares()``): stacked shares per model
with the stability index and its posterior interval. Reads the fit's table; computes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import PALETTE, RC, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.models._result import BayesFit

__all__ = ["plot_variance_shares"]

_SUMMARY = ("stability_index", "presentation_share")


@short_labels
def plot_variance_shares(fit: BayesFit, ax: Axes | None = None, *, confidence_level: float = 0.95) -> Axes:
    """Stacked share of the latent variance per component for each model, with the stability index
    (content share: item + model x item) and its interval as a black bar. A fit that did not pass the
    convergence gate is titled NOT CONVERGED."""
    vs = fit.variance_shares(confidence_level)
    comps = [c for c in dict.fromkeys(vs["component"]) if c not in _SUMMARY]
    wide = vs.pivot(index="model", columns="component", values="estimate")
    models = list(dict.fromkeys(vs["model"]))
    wide = wide.loc[models, comps]
    fig, ax = new_axes(ax, height=0.2 * len(models) + 1.3)
    with mpl.rc_context(RC):
        y = np.arange(len(models))
        left = np.zeros(len(models))
        colours = [*PALETTE[:6], "#999999", "#DDDDDD"]
        for k, c in enumerate(comps):
            col = "#DDDDDD" if c == "residual" else colours[k % len(colours)]
            ax.barh(y, wide[c], left=left, color=col, height=0.7, label=c.replace("_", " "), lw=0)
            left += wide[c].to_numpy()
        si = vs[vs["component"] == "stability_index"].set_index("model").loc[models]
        ax.errorbar(si["estimate"], y, xerr=interval_err(si), fmt="|", color="black", ms=6, capsize=2, lw=0.8,
                    label=f"stability index ({confidence_level:.0%} interval)")
        ax.set_yticks(y, [str(m) for m in models])
        ax.set_ylim(len(models) - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of latent variance")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1), handlelength=1)
        if not fit.converged:
            ax.set_title("NOT CONVERGED: do not use these shares", color=PALETTE[3], loc="left")
    return ax
