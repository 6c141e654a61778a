"""Figures of :func:`robustalign.claims.assess_extrapolability`: transfer by domain pair against the human
band, and split-half reliability of the group ranking against the human value."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from robustalign.plots._style import HUMAN_BAND, PALETTE, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.claims.extrapolability import ExtrapolabilityResult

__all__ = ["plot_extrapolability", "plot_split_half", "plot_transfer"]

#: An interval of a correlation at least this wide (of the range 2) is drawn faint: it rules out almost nothing.
WIDE_SPAN = 1.5


def _unit_name(row, keys) -> str:
    return ", ".join(str(row[k]) for k in keys)


def _keys(frame) -> list[str]:
    fixed = {"quantity", "subject", "domain_a", "domain_b", "estimate", "std_error", "conf_low", "conf_high",
             "conf_level", "method", "method_note", "p_value", "p_adjusted", "adjust_method", "family", "n_items",
             "n_targets", "units", "benchmark"}
    return [c for c in frame.columns if c not in fixed and not c.endswith("_mcse")]


@short_labels
def plot_transfer(result: ExtrapolabilityResult, ax: Axes | None = None, *,
                  confidence_level: float | None = None) -> Axes:
    """Transfer r (Spearman across targets) per domain pair: one marker with interval per unit, the human
    benchmark as a grey band (its interval) with a line at its estimate."""
    f = result.to_frame(confidence_level)
    tr = f[f["quantity"] == "transfer_r"]
    hu = f[f["quantity"] == "human_transfer_r"]
    if tr.empty:
        raise ValueError("this result has no held-out-domain transfer (it was run without `domains`).")
    keys = _keys(f)
    pairs = list(dict.fromkeys(zip(hu["domain_a"], hu["domain_b"])))
    fig, ax = new_axes(ax, width=max(3.3, 0.45 * len(pairs) + 1.5))
    x = np.arange(len(pairs))
    for j, (a, b) in enumerate(pairs):
        h = hu[(hu["domain_a"] == a) & (hu["domain_b"] == b)].iloc[0]
        ax.fill_between([j - 0.4, j + 0.4], h["conf_low"], h["conf_high"], color=HUMAN_BAND, alpha=0.5, lw=0,
                        label="humans" if j == 0 else None)
        ax.plot([j - 0.4, j + 0.4], [h["estimate"]] * 2, color="0.4", lw=1)
    units = tr[keys].drop_duplicates().to_dict("records")
    width = 0.6 / max(1, len(units))
    for k, u in enumerate(units):
        sel = np.ones(len(tr), bool)
        for c in keys:
            sel &= tr[c].astype(str).to_numpy() == str(u[c])
        t = tr[sel].set_index(["domain_a", "domain_b"]).reindex(pairs)
        xs = x - 0.3 + width * (k + 0.5)
        colour = PALETTE[k % len(PALETTE)]
        wide = (t["conf_high"] - t["conf_low"]).to_numpy(float) >= WIDE_SPAN  # says nothing: drawn faint
        ax.errorbar(xs, t["estimate"].to_numpy(float), yerr=np.where(wide, 0, interval_err(t)), fmt="o", ms=3,
                    lw=0.8, color=colour, label=_unit_name(u, keys))
        if wide.any():
            ax.vlines(xs[wide], t["conf_low"].to_numpy(float)[wide], t["conf_high"].to_numpy(float)[wide],
                      color=colour, lw=0.5, alpha=0.3, linestyles=":")
    ax.axhline(0, color="0.6", lw=0.6, ls=":")
    ax.set_xticks(x)
    ax.set_xticklabels([f"domains {a} & {b}" if a != "all pairs" else "mean of all pairs" for a, b in pairs],
                       rotation=45, ha="right")
    ax.set_xlabel("pair of item domains (alignment on one predicts the other?)")
    ax.set_ylabel("transfer r across targets")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"faint dotted line: an interval {WIDE_SPAN:g} or wider on the -1 to 1 scale (rules out almost "
                 "nothing)", fontsize=6, loc="left")
    return ax


@short_labels
def plot_split_half(result: ExtrapolabilityResult, ax: Axes | None = None, *,
                    confidence_level: float | None = None) -> Axes:
    """Spearman-Brown split-half reliability of each unit's group ranking, with the human band."""
    f = result.to_frame(confidence_level)
    rel = f[f["quantity"] == "split_half_reliability"]
    m, h = rel[rel["subject"] == "model"], rel[rel["subject"] == "humans"].iloc[0]
    keys = _keys(f)
    fig, ax = new_axes(ax, height=max(1.6, 0.22 * len(m) + 0.8))
    y = np.arange(len(m))
    ax.axvspan(h["conf_low"], h["conf_high"], color=HUMAN_BAND, alpha=0.5, lw=0, label="humans")
    ax.axvline(h["estimate"], color="0.4", lw=1)
    ax.errorbar(m["estimate"].to_numpy(float), y, xerr=interval_err(m), fmt="o", ms=3, lw=0.8, color=PALETTE[0])
    ax.set_yticks(y)
    ax.set_yticklabels([_unit_name(r, keys) for r in m.to_dict("records")])
    ax.set_xlabel("split-half reliability of the\ngroup ranking (Spearman-Brown)")
    ax.axvline(0, color="0.6", lw=0.6, ls=":")
    ax.legend(frameon=False, fontsize=6, loc="lower left", bbox_to_anchor=(0.0, 1.0))
    return ax


@short_labels
def plot_extrapolability(result: ExtrapolabilityResult, ax: Axes | None = None, *, which: str = "both",
                         confidence_level: float | None = None) -> Axes | np.ndarray:
    """``which="transfer"``, ``"split_half"`` or ``"both"`` (two panels; returns the two axes)."""
    if which == "transfer":
        return plot_transfer(result, ax, confidence_level=confidence_level)
    if which == "split_half":
        return plot_split_half(result, ax, confidence_level=confidence_level)
    if which != "both":
        raise ValueError(f"`which` must be 'transfer', 'split_half' or 'both'; got {which!r}.")
    has_transfer = (result.to_frame()["quantity"] == "transfer_r").any()
    if not has_transfer:
        return plot_split_half(result, ax, confidence_level=confidence_level)
    if ax is not None:
        raise ValueError("with which='both' pass `ax=None` (two panels), or choose one panel with `which=`.")
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from robustalign.plots._style import DOUBLE_COLUMN, RC

    with mpl.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN, 3.4), width_ratios=(1.3, 1), layout="constrained")
    plot_transfer(result, axes[0], confidence_level=confidence_level)
    plot_split_half(result, axes[1], confidence_level=confidence_level)
    return axes
