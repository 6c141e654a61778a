"""Figures of steerability results: the steering matrix with specificity, and gains (or the paired
comparison of two kinds of steering) with their intervals. Nothing here computes a statistic; every
number is read from ``result.to_frame()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np

from robustalign.plots._style import DOUBLE_COLUMN, PALETTE, RC, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from robustalign.claims.steerability import SteerabilityResult

__all__ = ["plot_steerability", "plot_steering_gains", "plot_steering_matrix"]


def _select(frame, by, keys):
    m = np.ones(len(frame), bool)
    for k, v in keys.items():
        if k not in by:
            raise ValueError(f"`{k}` is not a key of this result; keys are {by}.")
        m &= (frame[k] == v).to_numpy()
    return frame[m]


def _first_cell(result, keys):
    by = result.provenance["by"]
    if keys:
        return keys
    first = result.verdicts.iloc[0]
    return {c: first[c] for c in by}


@short_labels
def plot_steering_matrix(result: SteerabilityResult, ax: Axes | None = None, *,
                         confidence_level: float | None = None, **keys: Any) -> Axes:
    """Heat map of the steering matrix of one cell (rows = steering prompt, columns = human group),
    the diagonal outlined and each column's specificity (with interval) written under it."""
    if result.provenance.get("mode") != "full":
        raise ValueError("this result is a paired comparison (`compare=`); it has no steering matrix. "
                         "Use plot_steering_gains().")
    keys = _first_cell(result, keys)
    M = result.matrix(confidence_level, **keys)
    f = _select(result.to_frame(confidence_level), result.provenance["by"], keys)
    sp = f[f["quantity"] == "specificity"].set_index("target")
    fig, ax = new_axes(ax, height=2.9)
    with mpl.rc_context(RC):
        im = ax.imshow(M.to_numpy(float), cmap="viridis", aspect="auto")
        ax.set_xticks(range(M.shape[1]), list(M.columns), rotation=90)
        ax.set_yticks(range(M.shape[0]), list(M.index))
        ax.set_xlabel("human group")
        ax.set_ylabel("steering prompt")
        off = M.shape[0] - M.shape[1]  # a baseline row comes first
        top = []
        for j, t in enumerate(M.columns):
            ax.add_patch(mpl.patches.Rectangle((j - 0.5, j + off - 0.5), 1, 1, fill=False, ec="white", lw=1.2))
            r = sp.loc[t] if t in sp.index else None
            top.append("" if r is None else f"{r['estimate']:+.3f} [{r['conf_low']:+.3f}, {r['conf_high']:+.3f}]")
        # specificity of each column on a top axis, clear of the group names below
        sec = ax.secondary_xaxis("top")
        sec.set_xticks(range(M.shape[1]), top, rotation=90, fontsize=5)
        sec.set_xlabel("specificity [interval]", fontsize=6)
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label(f"mean similarity ({result.provenance['metric']})")
        ax.set_title(" / ".join(map(str, keys.values())) + ": steering matrix", loc="left")
    return ax


@short_labels
def plot_steering_gains(result: SteerabilityResult, ax: Axes | None = None, *,
                        confidence_level: float | None = None) -> Axes:
    """Gains over the unsteered prompt per cell x target with intervals (or, for a paired
    comparison, the difference between the two kinds of steering per cell)."""
    f = result.to_frame(confidence_level)
    by = result.provenance["by"]
    if result.provenance.get("mode") == "compare":
        f = f[f["quantity"].str.endswith("difference")]
        lab = f[by].astype(str).agg(" / ".join, axis=1)
        xlabel = "difference in alignment ({} - {})".format(*result.provenance["compare"][1:])
    else:
        if not result.provenance.get("gain_available"):
            raise ValueError("gain is undefined for this result (no unsteered baseline); "
                             "plot the steering matrix instead.")
        f = f[f["quantity"] == "gain"]
        lab = f[[*by, "target"]].astype(str).agg(" / ".join, axis=1)
        xlabel = f"gain over the unsteered prompt ({result.provenance['metric']} similarity)"
    fig, ax = new_axes(ax, height=0.18 * len(f) + 1.0)
    with mpl.rc_context(RC):
        y = np.arange(len(f))
        est = f["estimate"].to_numpy(float)
        err = interval_err(f)
        sig = (f["p_adjusted"] <= result.provenance["alpha"]).to_numpy()
        colors = np.where(sig, PALETTE[0], "0.5")
        for i in range(len(f)):
            ax.errorbar(est[i], y[i], xerr=err[:, i : i + 1], fmt="o", ms=3, color=colors[i], capsize=1.5)
        ax.axvline(0, color="0.3", lw=0.6, ls="--")
        ax.set_yticks(y, list(lab))
        ax.invert_yaxis()
        lev = f["conf_level"].iloc[0] if len(f) else result.confidence_level
        ax.set_xlabel(f"{xlabel}, {lev:.0%} interval")
    return ax


@short_labels
def plot_steerability(result: SteerabilityResult, ax: Axes | None = None, *, kind: str | None = None,
                      confidence_level: float | None = None, **keys: Any) -> Axes | np.ndarray:
    """The main figure: the steering matrix next to the gains (``kind=None``), or one of them
    (``kind="matrix"`` / ``"gains"``). A paired comparison always shows its differences."""
    if kind not in (None, "matrix", "gains"):
        raise ValueError(f"`kind` must be None, 'matrix' or 'gains'; got {kind!r}.")
    if result.provenance.get("mode") == "compare" or kind == "gains":
        return plot_steering_gains(result, ax, confidence_level=confidence_level)
    if kind == "matrix" or not result.provenance.get("gain_available") or ax is not None:
        return plot_steering_matrix(result, ax, confidence_level=confidence_level, **keys)
    import matplotlib.pyplot as plt

    with mpl.rc_context(RC):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN, 3.2), layout="constrained")
    plot_steering_matrix(result, a1, confidence_level=confidence_level, **keys)
    plot_steering_gains(result, a2, confidence_level=confidence_level)
    return np.array([a1, a2])
