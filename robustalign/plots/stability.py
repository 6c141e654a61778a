"""Figures of :func:`robustalign.claims.assess_stability` results: factor effects against the human
between-group band, and flip rates with intervals. They read ``result.to_frame()``; nothing is computed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import HUMAN_BAND, PALETTE, RC, dodge, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.claims.stability import StabilityResult

__all__ = ["plot_factor_effects", "plot_flip_rates", "plot_position_bias"]


@short_labels
def plot_factor_effects(result: StabilityResult, ax: Axes | None = None, *,
                        confidence_level: float | None = None) -> Axes:
    """Each unit's factor effect (mean difference or SD across levels) with its interval, per factor,
    against the margin (grey; the human between-group SD or ``margin=``): ``(-margin, margin)`` for a
    difference of two levels, ``[0, margin]`` for an SD across more levels (an SD is never negative)."""
    by = result.provenance["by"]
    f = result.to_frame(confidence_level)
    f = f[f["quantity"] == "factor_effect"].reset_index(drop=True)
    units = list(dict.fromkeys(f[by]))
    factors = list(dict.fromkeys(f["factor"]))
    fig, ax = new_axes(ax, height=0.22 * len(units) * max(1, len(factors)) + 1.0)
    with mpl.rc_context(RC):
        y = np.array([units.index(u) for u in f[by]], float)
        spread = f["level_a"].isna().to_numpy()  # more than two levels: SD across levels
        for j, fac in enumerate(factors):
            m = (f["factor"] == fac).to_numpy()
            off = dodge(j, len(factors), 0.8)
            ax.errorbar(f.loc[m, "estimate"], y[m] + off, xerr=interval_err(f[m]), fmt="o", ms=3,
                        color=PALETTE[j % len(PALETTE)], label=str(fac))
            for yy, d, sd in zip(y[m] + off, f.loc[m, "benchmark"], spread[m]):
                if np.isfinite(d):  # an SD across levels is >= 0: its band is [0, margin], not +-margin
                    ax.fill_betweenx([yy - 0.4 / len(factors), yy + 0.4 / len(factors)], 0 if sd else -d, d,
                                     color=HUMAN_BAND, alpha=0.5, lw=0, zorder=0)
        ax.axvline(0, color="0.4", lw=0.6)
        if len(f) and spread.all():
            ax.set_xlim(left=0)
        ax.set_yticks(range(len(units)), [str(u) for u in units])
        ax.invert_yaxis()
        lev = f["conf_level"].iloc[0] if len(f) else 0.95
        ax.set_xlabel(f"factor effect, {f['units'].iloc[0] if len(f) else ''} ({lev:.0%} interval; "
                      "grey: the margin, ± for a difference, [0, margin] for an SD)")
        ax.legend(title="factor", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


@short_labels
def plot_flip_rates(result: StabilityResult, ax: Axes | None = None, *,
                    confidence_level: float | None = None) -> Axes:
    """Mean modal flip rate between levels per unit and factor, with intervals, against its noise floor
    (the flip rate expected under no effect at the sampled answers per cell: grey bar with the 2.5-97.5%
    range of the null). The single-answer test-retest flip rate, where measured, is an open marker; it is
    the floor of single answers, not of modal answers of several samples."""
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
        nf = f[(f["quantity"] == "flip_noise_floor") & f[by].isin(units)]
        first = True
        for j, fac in enumerate(factors):
            for r in nf[nf["factor"] == fac].itertuples(index=False):
                yy = units.index(getattr(r, by)) + dodge(j, len(factors), 0.8)
                ax.plot([r.conf_low, r.conf_high], [yy, yy], color="0.6", lw=3, alpha=0.6, zorder=0,
                        solid_capstyle="butt")
                ax.plot([r.estimate], [yy], marker="|", ms=8, color="0.2", zorder=1,
                        label="noise floor (no effect)" if first else None)
                first = False
        if len(rt):
            rt = rt[rt[by].isin(units)]
            yr = np.array([units.index(u) for u in rt[by]], float)
            ax.errorbar(rt["estimate"], yr, xerr=interval_err(rt), fmt="o", mfc="none", ms=4, color="0.3",
                        label="single-answer retest")
        ax.set_yticks(range(len(units)), [str(u) for u in units])
        ax.invert_yaxis()
        ax.set_xlim(-0.02, 1.02)
        lev = fr["conf_level"].iloc[0] if len(fr) else 0.95
        ax.set_xlabel(f"modal flip rate between levels ({lev:.0%} interval)")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax


@short_labels
def plot_position_bias(result: StabilityResult, ax: Axes | None = None, *,
                       confidence_level: float | None = None) -> Axes:
    """Position bias (change in an option's share when it is shown first) beside the content-order effect
    (shift of mean canonical position), per unit, with intervals: two different quantities."""
    by = result.provenance["by"]
    f = result.to_frame(confidence_level)
    pb = f[(f["quantity"] == "position_bias") & (f["position"] == "first")].reset_index(drop=True)
    fe = f[(f["quantity"] == "factor_effect") & f["factor"].isin(set(pb["factor"]))].reset_index(drop=True)
    units = list(dict.fromkeys(pb[by]))
    fig, ax = new_axes(ax, height=0.3 * max(1, len(units)) + 1.0)
    with mpl.rc_context(RC):
        for j, (tab, lab) in enumerate(((pb, "position bias (first shown option, share)"),
                                        (fe, "content-order effect (mean canonical position)"))):
            if not len(tab):
                continue
            y = np.array([units.index(u) for u in tab[by]], float) + dodge(j, 2, 0.6)
            ax.errorbar(tab["estimate"], y, xerr=interval_err(tab), fmt="o" if j == 0 else "s", ms=3,
                        color=PALETTE[j % len(PALETTE)], label=lab)
        ax.axvline(0, color="0.4", lw=0.6)
        ax.set_yticks(range(len(units)), [str(u) for u in units])
        ax.invert_yaxis()
        lev = f["conf_level"].iloc[0] if len(f) else 0.95
        ax.set_xlabel(f"effect of the order shown ({lev:.0%} interval)")
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0))
    return ax
