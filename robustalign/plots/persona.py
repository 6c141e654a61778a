"""Figure of a persona experiment (:func:`robustalign.persona.assess_persona`): agreement with the
respondents' own answers per group (country) and demographic level within it, with two-way (items x
respondents) intervals, beside the group baseline (the respondent's group without the respondent) and
the same model prompted without a persona. Every number is read from ``result.to_frame()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import matplotlib as mpl
import pandas as pd

from robustalign.plots._style import PALETTE, RC, dodge, interval_err, new_axes, short_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_persona"]

#: Marker of each level of the ``by`` cells (e.g. prompt language), in order
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
BASELINE_COLOUR = "#555555"  # darker than the human band: a marker, not a band


def _rows(f: pd.DataFrame, attributes: bool) -> tuple[pd.DataFrame, list[tuple[str, str, str]]]:
    """The rows drawn (level filter) and the row keys ``(group, attribute, value)`` top to bottom."""
    keep = f["level"].isin(["all groups", "group", "attribute"] if attributes else ["all groups", "group"])
    f = f[keep]
    keys: list[tuple[str, str, str]] = [("all", "", "")]
    for g in sorted(set(f.loc[f["level"] == "group", "group"].astype(str))):
        keys.append((g, "", ""))
        sub = f[(f["level"] == "attribute") & (f["group"].astype(str) == g)]
        keys += sorted(set(zip(sub["group"].astype(str), sub["attribute"].astype(str), sub["value"].astype(str))))
    return f, [k for k in keys if k[0] != "all" or (f["level"] == "all groups").any()]


@short_labels
def plot_persona(result: Any, ax: Axes | None = None, *, confidence_level: float | None = None,
                 attributes: bool = True, quantity: str = "agreement") -> Axes:
    """Agreement (or ``quantity="distance"``) per group and demographic level, per model and ``by`` cell.

    Filled markers with bars: the model role-playing the respondents, with two-way intervals (each model
    its colour from the house palette, each level of the ``by`` factors its marker shape). Grey
    vertical ticks: the group baseline (leave-one-out group answers). Crosses in the model's colour:
    the same model without a persona, where the data have it.

    Parameters
    ----------
    result : PersonaResult
    ax : matplotlib Axes, optional
    confidence_level : float, optional
        Interval level (re-read from the stored scores).
    attributes : bool
        Also show the demographic levels within each group (default True).
    quantity : {"agreement", "distance"}
    """
    if quantity not in ("agreement", "distance"):
        raise ValueError(f"`quantity` must be 'agreement' or 'distance'; got {quantity!r}.")
    f = result.to_frame(confidence_level)
    by = list(result.provenance["by"])
    f, rows = _rows(f, attributes)
    f = f.assign(_row=[rows.index(k) if k in rows else -1 for k in
                       zip(f["group"].astype(str), f["attribute"].astype(str), f["value"].astype(str))])
    est = f[f["quantity"] == quantity]
    if est.empty:
        raise ValueError(f"the result has no {quantity!r} estimates (distance needs ordinal items).")
    models = list(dict.fromkeys(result.to_frame(confidence_level)["model"]))
    cells: list[tuple[str, ...]] = list(dict.fromkeys(tuple(str(x) for x in row) for row in est[by].to_numpy())) \
        if by else [()]
    units = [(m, c) for m in models for c in cells]
    fig, ax = new_axes(ax, height=0.09 * len(rows) * max(1, min(len(units), 4)) + 1.2)
    # RC is typed dict[str, Any] in _style; matplotlib's stubs want its literal rc keys
    with mpl.rc_context(cast(Any, RC)):
        for j, (m, c) in enumerate(units):
            sel = (f["model"] == m).to_numpy()
            for b, v in zip(by, c):
                sel = sel & (f[b].astype(str) == v).to_numpy()
            colour, marker = PALETTE[models.index(m) % len(PALETTE)], MARKERS[cells.index(c) % len(MARKERS)]
            off = dodge(j, len(units), 0.8)
            e = f[sel & (f["quantity"] == quantity).to_numpy()]
            ax.errorbar(e["estimate"], e["_row"] + off, xerr=interval_err(e), fmt=marker, ms=3, lw=0.8, capsize=0,
                        color=colour)
            g = f[sel & (f["quantity"] == f"{quantity}_group_baseline").to_numpy()]
            ax.plot(g["estimate"], g["_row"] + off, "|", ms=6, mew=1.2, color=BASELINE_COLOUR, zorder=3)
            n = f[sel & (f["quantity"] == f"{quantity}_no_persona").to_numpy()]
            if len(n):
                ax.plot(n["estimate"], n["_row"] + off, "x", ms=3.5, mew=0.9, color=colour, zorder=3)
        ax.set_yticks(range(len(rows)), ["all groups" if g == "all" else (g if not a else f"  {a} = {v}")
                                         for g, a, v in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        for k in range(1, len(rows)):
            ax.axhline(k - 0.5, color="0.92", lw=0.5, zorder=0)
        lvl = est["conf_level"].iloc[0]
        words = "agreement with the respondent" if quantity == "agreement" else "distance from the respondent"
        ax.set_xlabel(f"{words} ({lvl:.0%} two-way interval, items x respondents)")
        _legend(ax, models, cells, by, (f["quantity"] == f"{quantity}_no_persona").any())
    return ax


def _legend(ax: Axes, models: list[str], cells: list[tuple[str, ...]], by: list[str], no_persona: bool) -> None:
    """Models by colour, ``by`` levels by marker, the two baselines; to the right of the axes."""
    from matplotlib.lines import Line2D

    h = [Line2D([], [], ls="", marker="o", ms=3, color=PALETTE[i % len(PALETTE)], label=str(m))
         for i, m in enumerate(models)]
    if by and len(cells) > 1:
        h += [Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], ms=3, color="0.3", label=" / ".join(c))
              for i, c in enumerate(cells)]
    h.append(Line2D([], [], ls="", marker="|", ms=6, mew=1.2, color=BASELINE_COLOUR, label="group baseline"))
    if no_persona:
        h.append(Line2D([], [], ls="", marker="x", ms=3.5, color="0.3", label="no persona"))
    ax.legend(handles=h, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0.0)
