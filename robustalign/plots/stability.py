"""Figures of :func:`robustalign.claims.assess_stability` results: factor effects against the human
between-group band, and flip rates with intervals. They read ``result.to_frame()``; nothing is computed."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import HUMAN_BAND, PALETTE, RC, dodge, interval_err, new_axes, short_labels

__all__ = ["plot_factor_effects", "plot_flip_rates"]


@short_labels
def plot_factor_effects(result, ax=None, *, confidence_level: float | None = None):
    """Each unit's factor effect (mean difference or SD across levels) with its interval, per factor,
    against the band ``(-margin, margin)`` of the human between-group SD (grey)."""
    by = result.provenance["by"]
    f = result.to_frame(confidence_level)
    f = f[f["quantity"] == "factor_effect"].reset_index(drop=True)
    units = list(dict.fromkeys(f[by]))
    factors = list(dict.fromkeys(f["factor"]))
    fig, ax = new_axes(ax, height=0.22 * len(units) * max(1, len(factors)) + 1.0)
    with mpl.rc_context(RC):
        y = np.array([units.index(u) for u in f[by]], float)
        for j, fac in enumerate(factors):
            m = (f["factor"] == fac).to_numpy()
            off = dodge(j, len(factors), 0.8)
            ax.errorbar(f.loc[m, "estimate"], y[m] + off, xerr=interval_err(f[m]), fmt="o", ms=3,
                        color=PALETTE[j % len(PALETTE)], label=str(fac))
            for yy, d in zip(y[m] + off, f.loc[m, "benchmark"]):
                if np.isfinite(d):
                    ax.fill_betweenx([yy - 0.4 / len(factors), yy + 0.4 / len(factors)], -d, d, color=HUMAN_BAND,
                                     alpha=0.5, lw=0, zorder=0)
        ax.axvline(0, color="0.4", lw=0.6)
        ax.set_yticks(range(len(units)), [str(u) for u in units])
        ax.invert_yaxis()
        lev = f["conf_level"].iloc[0] if len(f) else 0.95
        ax.set_xlabel(f"factor effect, {f['units'].iloc[0] if len(f) else ''} ({lev:.0%} interval; "
                      "grey: ± human between-group SD)")
        ax.legend(title="factor", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


@short_labels
def plot_flip_rates(result, ax=None, *, confidence_level: float | None = None):
    """Mean modal flip rate between levels per unit and factor, with intervals; the test-retest flip
    rate (noise floor), where measured, as an open marker."""
    by = result.provenance["by"]
    f = result.to_frame(confidence_level)
    fr = f[f["quantity"] == "flip_rate_mean"].reset_index(drop=True)
    rt = f[f["quantity"] == "retest_flip_rate"].reset_index(drop=True)
    units = list(dict.fromkeys(fr[by]))
    factors = list(dict.fromkeys(fr["factor"]))
    fig, ax = new_axes(ax, height=0.22 * len(units) * max(1, len(factors)) + 1.0)
    with mpl.rc_context(RC):
        y = np.array([units.index(u) for u in fr[by]], float)
        for j, fac in enumerate(factors):
            m = (fr["factor"] == fac).to_numpy()
            ax.errorbar(fr.loc[m, "estimate"], y[m] + dodge(j, len(factors), 0.8), xerr=interval_err(fr[m]),
                        fmt="o", ms=3, color=PALETTE[j % len(PALETTE)], label=str(fac))
        if len(rt):
            rt = rt[rt[by].isin(units)]
            yr = np.array([units.index(u) for u in rt[by]], float)
            ax.errorbar(rt["estimate"], yr, xerr=interval_err(rt), fmt="o", mfc="none", ms=4, color="0.3",
                        label="test-retest")
        ax.set_yticks(range(len(units)), [str(u) for u in units])
        ax.invert_yaxis()
        ax.set_xlim(-0.02, 1.02)
        lev = fr["conf_level"].iloc[0] if len(fr) else 0.95
        ax.set_xlabel(f"modal flip rate between levels ({lev:.0%} interval)")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax
