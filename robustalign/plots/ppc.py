"""Posterior predictive check of a Bayesian fit: observed vs replicated distribution of cell means.

Reads the ``posterior_predictive`` and ``observed_data`` groups that ``BayesFit.posterior_predictive``
stores; computes nothing but their empirical CDFs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import PALETTE, RC, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.models._result import BayesFit

__all__ = ["plot_ppc"]


@short_labels
def plot_ppc(fit: BayesFit, ax: Axes | None = None, *, n_replicates: int = 40) -> Axes:
    """Distribution of the cells' mean answer: observed (black) over ``n_replicates`` replicated data sets
    (light lines), as empirical CDFs. A model that reproduces its data puts the black
    line inside the band of replicates."""
    idata: Any = fit.idata  # an xarray DataTree (typed `object` on BayesFit)
    if "posterior_predictive" not in idata.children:
        raise ValueError("no posterior predictive draws: call `fit.posterior_predictive()` first.")
    rep = np.asarray(idata["posterior_predictive"]["y"].values, float)
    rep = rep.reshape(-1, rep.shape[-1])
    obs = np.asarray(idata["observed_data"]["y"].values, float)
    pick = np.linspace(0, len(rep) - 1, min(n_replicates, len(rep))).round().astype(int)
    fig, ax = new_axes(ax, height=2.2)
    with mpl.rc_context(RC):
        # empirical CDFs: cell means are discrete (multiples of 1 / (answers x (K - 1))), which a histogram
        # would alias
        q = np.arange(1, len(obs) + 1) / len(obs)
        for j, i in enumerate(pick):
            ax.step(np.sort(rep[i]), q, where="post", color=PALETTE[0], alpha=0.25, lw=0.6,
                    label="replicated" if j == 0 else None)
        ax.step(np.sort(obs), q, where="post", color="black", lw=1.4, label="observed")
        ax.set_ylabel("share of cells at or below")
        what = "mean score (geometric)" if fit.kind == "score" else "mean position on [0, 1]"
        ax.set_xlabel(f"cell {what}")
        ax.legend(frameon=False, fontsize=7)
        if not fit.converged:
            ax.set_title("NOT CONVERGED -- do not use", color="red")
    return ax
