"""``fit_to_texts`` measures each round after running only the layout engine (no draw of every artist);
checked against the same loop with a full draw per round (the earlier code): the same size, the same
tight box and the same pixels, on figures with what moves a text (long names, legends placed "best",
colour bars, wrapped labels, a figure title, an annotation outside the axes)."""

from __future__ import annotations

import io
import warnings

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from robustalign.plots._style import RC, fit_to_texts, shorten_labels  # noqa: E402


def _fit_with_full_draws(fig, *, rounds=6, pad=0.1, margin=0.03):
    """The earlier loop: ``draw_without_rendering`` (layout plus every artist) before each measurement."""
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    prev, grown, fitted = None, np.zeros(4), None
    for _ in range(rounds):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="constrained_layout not applied")
            fig.draw_without_rendering()
        tb = fig.get_tightbbox(fig.canvas.get_renderer())
        w, h = fig.get_size_inches()
        over = np.maximum(0.0, [margin - tb.x0, margin - tb.y0, tb.x1 - w + margin, tb.y1 - h + margin])
        if over.max() <= 0.0:
            fitted = tb
            break
        grow = over.copy()
        if prev is not None:
            share = np.clip(np.divide(prev - over, grown, out=np.ones(4), where=grown > 0), 0.2, 1.0)
            grow = over / share
        prev, grown = over, grow
        fig.set_size_inches(w + grow[0] + grow[2] + pad, h + grow[1] + grow[3] + pad)
    fig.set_layout_engine("none")
    fig._robustalign_tightbbox = fitted
    return fig


def _forest():
    fig, ax = plt.subplots(figsize=(3.3, 2.4), layout="constrained")
    names = [f"a model with a rather long name number {i}" for i in range(8)]
    ax.errorbar(np.linspace(0, 1, 8), range(8), xerr=0.1, fmt="o", label="estimate")
    ax.set_yticks(range(8), names)
    ax.set_xlabel("alignment (Spearman rho across items, centred on the mean of the groups, percentile)")
    ax.legend(loc="best")
    return fig


def _matrix():
    fig, ax = plt.subplots(figsize=(3.3, 2.4), layout="constrained")
    im = ax.imshow(np.arange(30.0).reshape(5, 6))
    ax.set_xticks(range(6), [f"target country {i}" for i in range(6)], rotation=45, ha="right")
    fig.colorbar(im, ax=ax, label="Jensen-Shannon divergence to the steered group")
    fig.suptitle("steering matrix of a model told its respondents are from each country")
    return fig


def _panels():
    fig, axes = plt.subplots(1, 3, figsize=(6.9, 2.0), layout="constrained", sharey=True)
    for j, ax in enumerate(axes):
        ax.plot(np.arange(10), np.arange(10) ** (j + 1), label=f"series {j}")
        ax.set_title(f"held-out domain {j}: a title that is long enough to wrap")
        ax.annotate("note outside the axes", xy=(1, 0), xytext=(1.02, -0.3), textcoords="axes fraction")
    axes[0].legend(loc="best")
    fig.supxlabel("number of items in the held-out domain")
    return fig


def _no_axes():
    fig = plt.figure(figsize=(2, 1))
    fig.text(0.5, 0.5, "a figure of text alone, wider than the figure", ha="center")
    return fig


@pytest.mark.parametrize("make", [_forest, _matrix, _panels, _no_axes])
def test_layout_only_rounds_fit_as_full_draws_do(make):
    out = []
    for fit in (fit_to_texts, _fit_with_full_draws):
        with matplotlib.rc_context(RC):
            fig = fit(shorten_labels(make()))
            buf = io.BytesIO()
            box = fig._robustalign_tightbbox
            fig.savefig(buf, format="png", dpi=100, bbox_inches=box.padded(0.1) if box is not None else "tight")
            out.append((fig.get_size_inches().copy(), None if box is None else box.bounds, buf.getvalue()))
            plt.close(fig)
    (size, box, png), (size0, box0, png0) = out
    assert np.array_equal(size, size0) and box == box0
    from PIL import Image

    pix, pix0 = (np.asarray(Image.open(io.BytesIO(b))) for b in (png, png0))
    assert pix.shape == pix0.shape and np.array_equal(pix, pix0)
