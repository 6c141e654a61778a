"""Figures of alignment results (:func:`robustalign.scoring.alignment`, a ``BootstrapResult``): forest
plot of alignment with intervals per model x group, rank caterpillar with rank intervals, and the
pairwise flip-probability heat map. Every number is read from the result (``to_frame()``, ``ranks()``,
``pairwise().flip_probability()``); nothing is computed here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import PALETTE, RC, SINGLE_COLUMN, dodge, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes

    from robustalign.resampling.results import BootstrapResult

__all__ = ["plot_alignment_forest", "plot_flip_heatmap", "plot_rank_caterpillar"]


def _short(name: str, n: int = 26) -> str:
    s = str(name)
    return s if len(s) <= n else s[: n - 1] + "…"


def _top_legend(ax, title: str, n: int) -> None:
    """Legend in one row above the axes, so the plot keeps the full single-column width."""
    ax.legend(title=title, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=min(n, 5),
              handletextpad=0.1, columnspacing=0.8, borderaxespad=0.2, alignment="left")


def _colour_col(labels, row: str):
    others = [c for c in labels.columns if c != row]
    multi = [c for c in others if labels[c].nunique() > 1]
    if "group" in multi:
        return "group"
    return multi[0] if multi else None


@short_labels
def plot_alignment_forest(result: BootstrapResult, ax: Axes | None = None, *, row: str = "model", confidence_level: float | None = None,
                          xlabel: str | None = None) -> Axes:
    """Forest plot: one row per ``row`` level (models), one marker per group (colour), with intervals.

    Parameters
    ----------
    result : BootstrapResult
        From :func:`robustalign.scoring.alignment` (labels e.g. ``model, language, group``).
    ax : matplotlib Axes, optional
    row : str
        Label column on the vertical axis.
    confidence_level : float, optional
        Interval level (read from the stored resamples).
    """
    f = result.to_frame(confidence_level)
    if row not in f.columns:
        raise ValueError(f"`row={row!r}` is not a label column; label columns are {list(result.labels.columns)}.")
    colour = _colour_col(result.labels, row)
    rows = list(dict.fromkeys(f[row]))
    levels = list(dict.fromkeys(f[colour])) if colour else [None]
    fig, ax = new_axes(ax, height=0.1 * len(rows) * max(1, min(len(levels), 4)) + 1.1)
    with mpl.rc_context(RC):
        y = np.array([rows.index(v) for v in f[row]], float)
        for j, lev in enumerate(levels):
            m = (f[colour] == lev).to_numpy() if colour else np.ones(len(f), bool)
            ax.errorbar(f.loc[m, "estimate"], y[m] + dodge(j, len(levels), 0.75), xerr=interval_err(f[m]),
                        fmt="o", ms=2.5, lw=0.8, capsize=0, color=PALETTE[j % len(PALETTE)],
                        label=str(lev) if lev is not None else None)
        ax.set_yticks(range(len(rows)), [_short(r) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        for k in range(1, len(rows)):
            ax.axhline(k - 0.5, color="0.92", lw=0.5, zorder=0)
        lvl = f["conf_level"].iloc[0]
        stat = xlabel or (result.statistic if result.statistic not in ("", "stat") else "alignment")
        ax.set_xlabel(f"{stat} ({lvl:.0%} {f['method'].iloc[0]} interval)")
        if colour:
            _top_legend(ax, colour, len(levels))
    return ax


@short_labels
def plot_rank_caterpillar(result: BootstrapResult, ax: Axes | None = None, *, within: str | None = "group", row: str = "model",
                          confidence_level: float | None = None, higher_is_better: bool = True) -> Axes:
    """Rank of each model (1 = closest) with its bootstrap rank interval, within each group (colour).

    Reads :meth:`BootstrapResult.ranks`; models are ordered by their mean rank.
    """
    w = within if within is not None and within in result.labels.columns else None
    rk = result.ranks(within=w, higher_is_better=higher_is_better, level=confidence_level)
    order = rk.groupby(row, sort=False)["rank_mean"].mean().sort_values()
    rows = list(order.index)
    levels = list(dict.fromkeys(rk[w])) if w else [None]
    n_max = int(rk["rank_high"].max())
    fig, ax = new_axes(ax, height=0.1 * len(rows) * max(1, min(len(levels), 4)) + 1.1)
    with mpl.rc_context(RC):
        y = np.array([rows.index(v) for v in rk[row]], float)
        for j, lev in enumerate(levels):
            m = (rk[w] == lev).to_numpy() if w else np.ones(len(rk), bool)
            r = rk[m]
            ax.errorbar(r["rank"], y[m] + dodge(j, len(levels), 0.75),
                        xerr=interval_err(r, "rank", "rank_low", "rank_high"), fmt="s", ms=2.5, lw=0.8, capsize=0,
                        color=PALETTE[j % len(PALETTE)], label=str(lev) if lev is not None else None)
        ax.set_yticks(range(len(rows)), [_short(r) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xticks(range(1, n_max + 1))
        ax.set_xlim(0.5, n_max + 0.5)
        for k in range(1, len(rows)):
            ax.axhline(k - 0.5, color="0.92", lw=0.5, zorder=0)
        ax.set_xlabel(f"rank (1 = closest; {rk['conf_level'].iloc[0]:.0%} bootstrap rank interval)")
        if w:
            _top_legend(ax, w, len(levels))
    return ax


@short_labels
def plot_flip_heatmap(result: BootstrapResult, ax: Axes | None = None, *, factor: str = "model", colorbar: bool = True,
                      order: Sequence[str] | None = None, **keys: Any) -> Axes:
    """Heat map of the probability that the order of two levels of ``factor`` flips under resampling.

    ``keys`` select one cell of the other label columns (e.g. ``group="en"``); without them the result
    must have no other varying label. Lower triangle: P(flip) of each pair (darker = less certain order);
    rows and columns are ordered by the estimate, best first, or by ``order`` (one order for every panel
    of a grid). Names are shown whole.
    """
    lab = result.labels
    sub = result.subset(**keys) if keys else result
    others = [c for c in sub.labels.columns if c != factor and sub.labels[c].nunique() > 1]
    if others:
        raise ValueError(f"the result varies in {others} besides {factor!r}; select one cell with keywords, e.g. "
                         f"plot_flip_heatmap(res, {others[0]}={lab[others[0]].iloc[0]!r}).")
    est = sub.to_frame().set_index(factor)["estimate"].sort_values(ascending=False)
    levels = list(est.index) if order is None else [v for v in order if v in set(est.index)]
    fp = sub.pairwise(factor).flip_probability()
    n = len(levels)
    M = np.full((n, n), np.nan)
    for _, r in fp.iterrows():
        i, j = levels.index(r[f"{factor}_a"]), levels.index(r[f"{factor}_b"])
        a, b = max(i, j), min(i, j)
        M[a, b] = r["p_flip"]
    M = M[1:, :-1]  # the lower triangle without the empty first row and last column
    fig, ax = new_axes(ax, width=SINGLE_COLUMN, height=SINGLE_COLUMN * 0.95)
    with mpl.rc_context(RC):
        im = ax.imshow(M, cmap="cividis_r", vmin=0, vmax=0.5, aspect="equal")
        for a in range(n - 1):
            for b in range(a + 1):
                if np.isfinite(M[a, b]):
                    # inside its cell: left out of the layout and the tight box (fewer texts to measure)
                    ax.text(b, a, f"{M[a, b]:.2f}".lstrip("0") if M[a, b] < 1 else "1", ha="center", va="center",
                            fontsize=5, color="white" if M[a, b] > 0.3 else "black", in_layout=False)
        names = [str(v) for v in levels]
        ax.set_xticks(range(n - 1), names[:-1], rotation=90, fontsize=6)
        ax.set_yticks(range(n - 1), names[1:], fontsize=6)
        ax.spines[["left", "bottom"]].set_visible(False)
        ax.tick_params(length=0)
        title = " / ".join(f"{v}" for v in keys.values())
        ax.set_title((title + ": " if title else "") + "P(order flips)", fontsize=7, loc="left")
        if colorbar:
            cb = fig.colorbar(im, ax=ax, shrink=0.7)
            cb.set_label("P(order flips) (0.5 = coin toss)", fontsize=6)
            cb.ax.tick_params(labelsize=6)
    return ax
