"""Figure formats of a report: PNG always (the HTML embeds it), SVG and PDF on request."""

from __future__ import annotations

import matplotlib
import pytest

from robustalign.report._figures import check_figure_formats, render_figures

matplotlib.use("Agg")


def test_formats_are_checked_and_png_comes_first():
    assert check_figure_formats(None) == ("png",)
    assert check_figure_formats("pdf, SVG,png") == ("png", "pdf", "svg")
    assert check_figure_formats(["pdf"]) == ("png", "pdf")
    with pytest.raises(ValueError, match=r"\['eps'\].*png,svg,pdf"):
        check_figure_formats("png,eps")


class _Spec:
    def __init__(self, name, fail=False):
        self.name, self.caption, self.fail = name, f"caption of {name}", fail

    def draw(self):
        import matplotlib.pyplot as plt

        if self.fail:
            raise RuntimeError("no data")
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [1, 0], label="a line")
        ax.set_title("a title")
        return fig


class _Part:
    def __init__(self, prefix, specs):
        self.prefix = prefix
        self.sections = [type("S", (), {"figures": specs})()]


def test_each_figure_is_written_in_every_format_and_a_failure_is_reported(tmp_path):
    rep = type("R", (), {"parts": [_Part("a_", [_Spec("one"), _Spec("two", fail=True)]), _Part("b_", [_Spec("three")])]})()
    lines = []
    out = render_figures(rep, tmp_path, lines.append, check_figure_formats("png,svg,pdf"))
    assert list(out) == ["a_one", "a_two", "b_three"]  # the report's order, whatever process drew them
    for name in ("a_one", "b_three"):
        assert out[name]["png"][:8] == b"\x89PNG\r\n\x1a\n" == (tmp_path / f"{name}.png").read_bytes()[:8]
        assert b"<svg" in (tmp_path / f"{name}.svg").read_bytes()[:2000]
        assert (tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
        assert out[name]["vector"] == f"{name}.svg" and out[name]["seconds"] > 0
    assert out["a_two"]["png"] is None and "RuntimeError: no data" in out["a_two"]["error"]
    assert not list(tmp_path.glob("a_two.*")) and any("figure" in x for x in lines)


def test_png_is_written_once_per_figure_by_default_with_the_pixels_of_matplotlibs_own_png(tmp_path):
    """The report's PNG (zlib level 1) decodes to the same pixels as matplotlib's default PNG (level 6)
    of the same drawing: the cheaper compression changes the file size, not the picture."""
    import io

    import numpy as np
    from PIL import Image

    from robustalign.report._figures import draw_bytes
    from robustalign.report.render import draw_figure

    rep = type("R", (), {"parts": [_Part("a_", [_Spec("one")])]})()
    out = render_figures(rep, tmp_path, None, check_figure_formats(None))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_one.png"] and out["a_one"]["vector"] is None
    drawn = draw_bytes(_Spec("one"), ("png",))["files"]["png"]
    from robustalign.plots._style import RC

    buf = io.BytesIO()
    with matplotlib.rc_context(RC):  # as the report draws: house style while drawing and saving
        fig = draw_figure(_Spec("one"))
        box = fig._robustalign_tightbbox.padded(matplotlib.rcParams["savefig.pad_inches"])
        fig.savefig(buf, format="png", dpi=200, bbox_inches=box)  # matplotlib's own PNG, default compression
    ours, theirs = (np.asarray(Image.open(io.BytesIO(b))) for b in (drawn, buf.getvalue()))
    assert ours.shape == theirs.shape and ours.shape[0] > 100
    assert np.array_equal(ours, theirs)


class _Interrupting(_Spec):
    def draw(self):
        raise KeyboardInterrupt


def test_an_interrupt_in_a_figure_worker_reaches_the_parent(tmp_path, monkeypatch):
    """Ctrl-C while a forked worker draws: the parent raises it (before, the worker died of it, its
    figure was lost and the parent waited for ever)."""
    import robustalign.report._figures as figures

    monkeypatch.setattr(figures, "_workers", lambda n: 2)  # the forked route, whatever else runs here
    rep = type("R", (), {"parts": [_Part("a_", [_Spec("one"), _Interrupting("two"), _Spec("three")])]})()
    with pytest.raises(KeyboardInterrupt):
        render_figures(rep, tmp_path, None, check_figure_formats(None))
