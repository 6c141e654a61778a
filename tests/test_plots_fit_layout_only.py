"""``fit_to_texts`` measures each round after running only the layout engine (no draw of every artist);
checked against the same loop with a full draw per round (the earlier code, put back in place of
``_layout``): the same size, the same
tight box and the same pixels, on figures with what moves a text (long names, legends placed "best",
colour bars, wrapped labels, a figure title, an annotation outside the axes)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from robustalign.plots import _style  # noqa: E402
from robustalign.plots._style import RC, fit_to_texts, shorten_labels  # noqa: E402


def _full_draw(fig):
    """The earlier per-round step: ``draw_without_rendering`` (the layout plus a draw of every artist)."""
    fig.draw_without_rendering()


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
def test_layout_only_rounds_fit_as_full_draws_do(make, monkeypatch):
    out = []
    for step in (None, _full_draw):
        if step is not None:  # the same loop, with the earlier full draw before each measurement
            monkeypatch.setattr(_style, "_layout", step)
        with matplotlib.rc_context(RC):
            fig = fit_to_texts(shorten_labels(make()))
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
