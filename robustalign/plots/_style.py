"""One figure style for every robustalign plot: colour-blind-safe, vector-friendly, legible at
single-column paper width (3.3 in) with 7-8 pt text."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.rcsetup import cycler

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.text import Text
    from matplotlib.typing import RcKeyType

# Okabe-Ito palette (colour-blind safe) first, then twelve more qualitative colours (from tab20, the ones far
# from the first eight in CIELAB), so that up to 20 models get distinct colours; a model's colour is its
# position in the result's model order, the same in every figure of one result.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#9467BD", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF", "#D62728", "#98DF8A", "#AEC7E8",
           "#FFBB78", "#C5B0D5", "#C49C94", "#F7B6D2"]
HUMAN_BAND = "#BBBBBB"
SINGLE_COLUMN = 3.3  # inches
DOUBLE_COLUMN = 6.9

RC: dict[RcKeyType, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType: editable text in vector output
    "svg.fonttype": "none",
    "lines.linewidth": 1.0,
}


def new_axes(ax: Axes | None = None, *, width: float = SINGLE_COLUMN,
             height: float = 2.4) -> tuple[Figure | SubFigure, Axes]:
    """Return (fig, ax): the given axes, or a new figure in the house style."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    with mpl.rc_context(RC):
        fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def interval_err(frame: Any, est: str = "estimate", low: str = "conf_low", high: str = "conf_high") -> np.ndarray:
    """Error-bar lengths ``(2, n)`` from an estimate and its interval columns, clipped at 0.

    A percentile or BCa interval need not contain its point estimate; matplotlib refuses negative
    lengths, so such a bar is drawn from the estimate to the bound it does reach.
    """
    e = np.asarray(frame[est], float)
    return np.clip([e - np.asarray(frame[low], float), np.asarray(frame[high], float) - e], 0, None)


def dodge(j: int, n: int, span: float) -> float:
    """Offset of the ``j``-th of ``n`` series sharing one row, spread over ``span`` around the row."""
    return (j - (n - 1) / 2) * span / max(1, n)


#: Longest tick label or legend entry a figure shows (longer names are cut with an ellipsis; tables
#: keep them whole), and the longest title, axis label or annotation.
LABEL_MAX_CHARS = 26
TEXT_MAX_CHARS = 240
#: Titles, axis labels and annotations longer than this are wrapped onto lines of this width.
TEXT_WRAP_CHARS = 70


def shorten(text: object, max_chars: int = LABEL_MAX_CHARS) -> str:
    """``text`` cut to ``max_chars`` characters with a trailing ellipsis when it is longer."""
    s = str(text)
    return s if len(s) <= max_chars else s[: max_chars - 1] + "\u2026"


class _ShortFormatter(mticker.Formatter):
    """Wraps an axis formatter so that every tick label it makes is :func:`shorten`-ed."""

    def __init__(self, inner: mticker.Formatter, max_chars: int) -> None:
        self.inner, self.max_chars = inner, max_chars

    def __call__(self, x: float, pos: int | None = None) -> str:
        return shorten(self.inner(x, pos), self.max_chars)

    def format_ticks(self, values: Any) -> list[str]:
        return [shorten(s, self.max_chars) for s in self.inner.format_ticks(values)]

    def set_locs(self, locs: Any) -> None:
        self.inner.set_locs(locs)

    def get_offset(self) -> str:
        return self.inner.get_offset()

    def set_axis(self, axis: Any) -> None:
        super().set_axis(axis)
        self.inner.set_axis(axis)


def _shorten_texts(texts: Iterable[Text], max_chars: int, wrap: int | None = None) -> None:
    """Cut each text to ``max_chars``; with ``wrap``, a one-line text longer than ``wrap`` is wrapped
    onto lines of that width first (an axis label is kept whole rather than cut)."""
    import textwrap

    for t in texts:
        s = t.get_text()
        if len(s) - s.count("\n") > max_chars:  # line breaks (e.g. from an earlier wrap) do not count
            s = shorten(s, max_chars)
        if wrap and len(s) > wrap and "\n" not in s:
            s = "\n".join(textwrap.wrap(s, wrap, break_long_words=True))
        if s != t.get_text():
            t.set_text(s)


def _shorten_axes(ax: Axes, max_chars: int, max_text_chars: int) -> None:
    from matplotlib.text import Text

    _shorten_texts(ax.findobj(Text), max_text_chars, TEXT_WRAP_CHARS)
    legend = ax.get_legend()
    if legend is not None:
        _shorten_texts([*legend.get_texts(), legend.get_title()], max_chars)
    for axis in (ax.xaxis, ax.yaxis):
        for get, put in ((axis.get_major_formatter, axis.set_major_formatter),
                         (axis.get_minor_formatter, axis.set_minor_formatter)):
            if not isinstance(get(), _ShortFormatter):
                put(_ShortFormatter(get(), max_chars))


def shorten_labels(fig: Figure, max_chars: int = LABEL_MAX_CHARS,
                   max_text_chars: int = TEXT_MAX_CHARS) -> Figure:
    """Cut the texts of ``fig`` so that a very long model or group name cannot blow up its layout.

    Tick labels (now and whenever the figure is drawn) and legend entries get at most ``max_chars``
    characters, every other text (titles, axis labels, annotations) at most ``max_text_chars``, wrapped
    onto lines of :data:`TEXT_WRAP_CHARS`; a cut text ends with an ellipsis. Returns ``fig``.
    """
    from matplotlib.text import Text

    _shorten_texts(fig.findobj(Text), max_text_chars, TEXT_WRAP_CHARS)
    for leg in fig.legends:
        _shorten_texts([*leg.get_texts(), leg.get_title()], max_chars)
    for ax in fig.get_axes():
        _shorten_axes(ax, max_chars, max_text_chars)
    return fig


def _axes_in(obj: object) -> Iterator[Axes]:
    from matplotlib.axes import Axes

    if isinstance(obj, Axes):
        yield obj
    elif isinstance(obj, (list, tuple, np.ndarray)):
        for x in np.ravel(np.asarray(obj, dtype=object)):
            yield from _axes_in(x)


def short_labels[**P, R](plot: Callable[P, R]) -> Callable[P, R]:
    """Decorator: the axes a plot function returns get :func:`shorten`-ed texts (only those axes, so
    a figure the caller built keeps its other labels)."""

    @functools.wraps(plot)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        out = plot(*args, **kwargs)
        for ax in _axes_in(out):
            _shorten_axes(ax, LABEL_MAX_CHARS, TEXT_MAX_CHARS)
        return out

    return wrapper


def _layout(fig: Figure) -> None:
    """Place the axes as drawing ``fig`` would (its layout engine, as ``Figure.draw`` runs it), without
    drawing its artists: the tight box measured next updates the ticks and text positions itself, so
    the sizes found, the box and the picture are those of a full draw per round (tested), at about
    half the cost of one."""
    engine = fig.get_layout_engine()
    if fig.axes and engine is not None:
        try:
            engine.execute(fig)
        except ValueError:  # as Figure.draw: a layout that cannot be made leaves the axes where they are
            pass


def fit_to_texts(fig: Figure, *, rounds: int = 6, pad: float = 0.1, margin: float = 0.03) -> Figure:
    """Grow ``fig`` until every text lies inside the figure area, ``margin`` inches clear of its edge (a
    long name or a wrapped axis label otherwise hangs over the edge, and a viewer that does not crop
    "tight" cuts it). The layout engine (constrained, set when the figure has none) places the axes in the
    larger canvas; the final layout is then frozen, so that drawing the figure again cannot move a label
    back over the edge. Returns ``fig``; the tight box (inches) of the layout that fits is kept as
    ``fig._robustalign_tightbbox`` (None if none fitted), so the report crops without measuring again.

    A text the layout moves as the figure grows (an axis label centred on a wider axes) comes back only
    part of the way per round; from the second round on, each side grows by its overhang divided by the
    share of the previous growth that the overhang lost (a secant step), so that few rounds are needed."""
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    import warnings

    prev: np.ndarray | None = None
    grown = np.zeros(4)
    fitted = None
    for _ in range(rounds):
        with warnings.catch_warnings():  # too small before it has grown: that is what this loop fixes
            warnings.filterwarnings("ignore", message="constrained_layout not applied")
            _layout(fig)
        tb = fig.get_tightbbox(fig.canvas.get_renderer())  # type: ignore[attr-defined]  # an Agg canvas
        w, h = fig.get_size_inches()
        over = np.maximum(0.0, [margin - tb.x0, margin - tb.y0, tb.x1 - w + margin, tb.y1 - h + margin])
        if over.max() <= 0.0:
            fitted = tb
            break
        grow = over.copy()
        if prev is not None:  # the share of last round's growth each side's overhang lost, within [0.2, 1]
            share = np.clip(np.divide(prev - over, grown, out=np.ones(4), where=grown > 0), 0.2, 1.0)
            grow = over / share
        prev, grown = over, grow
        fig.set_size_inches(w + grow[0] + grow[2] + pad, h + grow[1] + grow[3] + pad)
    fig.set_layout_engine("none")  # keep the positions of the last layout
    fig._robustalign_tightbbox = fitted  # type: ignore[attr-defined]  # read by the report's figure writer
    return fig
