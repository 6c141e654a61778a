"""Every figure of the example report: no text outside the figure area (matplotlib window extents
against the figure's box), model names whole and in one order in every panel of the flip heat map,
and distinct colours per model (CIELAB distance computed here, independently of the plotting code)."""

import itertools

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from robustalign.report.render import draw_figure  # noqa: E402


@pytest.fixture(scope="module")
def report(example_report):
    """The example audit (tests/conftest.py; shared with test_report.py)."""
    return example_report[0]


def _specs(report):
    return [(p.prefix + f.name, f) for p in report.parts for s in p.sections for f in s.figures]


def _lab(hex_colour) -> np.ndarray:
    """sRGB -> CIELAB (D65), the textbook formulas."""
    c = np.array(to_rgb(hex_colour))
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _min_delta_e(colours) -> float:
    labs = [_lab(c) for c in colours]
    return min(np.linalg.norm(a - b) for a, b in itertools.combinations(labs, 2))


def _undrawn_tick_labels(fig) -> set[int]:
    """Tick labels of ticks outside the view limits: Text objects that matplotlib does not draw."""
    out = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    out |= {id(tick.label1), id(tick.label2)}
    return out


def _outside(fig) -> list[str]:
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = fig.bbox
    bad = []
    skip = _undrawn_tick_labels(fig)
    for t in fig.findobj(matplotlib.text.Text):
        if not t.get_visible() or not t.get_text().strip() or id(t) in skip:
            continue
        e = t.get_window_extent(r)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            bad.append(t.get_text())
    return bad


def test_no_figure_text_is_cut_by_the_figure_area(report):
    clipped = {}
    for name, spec in _specs(report):
        fig = draw_figure(spec)
        if bad := _outside(fig):
            clipped[name] = bad[:3]
        plt.close(fig)
    assert not clipped, f"texts outside the figure area: {clipped}"


def test_the_clipping_check_catches_a_label_outside_the_figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_yticks([0], ["a very long model name that cannot fit in two inches"])
    assert _outside(fig)
    plt.close(fig)


def test_flip_heat_map_shows_whole_names_in_one_order_in_every_panel(report):
    spec = dict(_specs(report))["alignment_flip_spearman"]
    fig = draw_figure(spec)
    fig.canvas.draw()
    orders = [[t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes if ax.get_yticklabels()
              and ax.images]
    assert len(orders) == 4 and all(o == orders[0] for o in orders)
    models = set(report.section("alignment").results["spearman"].labels["model"])
    assert set(orders[0]) <= models and len(orders[0]) == len(models) - 1  # whole names, no ellipsis
    plt.close(fig)


def test_palette_gives_twenty_distinct_colours():
    from robustalign.plots._style import PALETTE

    assert len(set(PALETTE)) == len(PALETTE) >= 20
    assert _min_delta_e(PALETTE[:20]) > 10  # CIELAB distance 10: clearly different side by side


def test_each_model_has_its_own_colour_in_the_extrapolability_figure(report):
    spec = dict(_specs(report))["extrapolability"]
    fig = draw_figure(spec)
    models = set(report.section("extrapolability").results["extrapolability"].to_frame()["model"].dropna())
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        colours = {t.get_text(): matplotlib.colors.to_hex(h.get_color() if hasattr(h, "get_color") else
                                                          h.lines[0].get_color())
                   for t, h in zip(leg.get_texts(), leg.legend_handles) if t.get_text() in models}
        if colours:
            assert len(colours) == len(models) == 9
            assert len(set(colours.values())) == len(models)
            assert _min_delta_e(set(colours.values())) > 10
            break
    else:
        pytest.fail("no legend with the models")
    plt.close(fig)
