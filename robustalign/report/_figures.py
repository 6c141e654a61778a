"""Drawing a report's figures: each once, written in the requested formats, two at a time where possible.

Every figure is drawn once (house style, long names cut, grown until its texts fit), its tight bounding
box is taken once from that drawing, and the PNG (always: the HTML embeds it) and the vector copies are
written from the same drawing. Vector copies are SVG by default: vector like PDF, with its text kept as
text (``svg.fonttype: none``), and without PDF's font subsetting, which costs about as much as drawing
the figure. PDF is written when asked for (``figure_formats=("svg", "pdf")`` or ``--figure-formats``).

With at least two processors and the ``fork`` start method the figures are drawn by two worker
processes (forked, so nothing is pickled but the written bytes); otherwise one after the other. The
files are the same either way.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Formats a report can write its figures in (PNG is always written).
FIGURE_FORMATS = ("png", "svg", "pdf")
#: The vector copies written by default.
DEFAULT_FIGURE_FORMATS = ("png", "svg")

_JOBS: list[tuple[str, Any]] = []  # (name, spec) of the figures being drawn, read by forked workers
_OUT: dict[str, Any] = {}


def check_figure_formats(formats: str | Sequence[str] | None) -> tuple[str, ...]:
    """``formats`` as a tuple with ``"png"`` first; a clear error for an unknown one."""
    if formats is None:
        return DEFAULT_FIGURE_FORMATS
    items = [f.strip().lower().lstrip(".") for f in (formats.split(",") if isinstance(formats, str) else formats)]
    bad = [f for f in items if f not in FIGURE_FORMATS]
    if bad:
        raise ValueError(f"figure formats {bad} are not supported; choose among {list(FIGURE_FORMATS)} "
                         "(e.g. 'png,svg,pdf'; PNG is always written: the HTML report embeds it).")
    return ("png", *dict.fromkeys(f for f in items if f != "png"))


def _draw_one(i: int) -> dict:
    """Draw figure ``i`` of ``_JOBS`` and write its files; name -> png bytes, seconds or the error."""
    import matplotlib
    import matplotlib.pyplot as plt

    from robustalign.plots._style import RC
    from robustalign.report.render import draw_figure

    name, spec = _JOBS[i]
    fig_dir, formats = _OUT["dir"], _OUT["formats"]
    rc: Any = RC  # matplotlib types rc_context's keys as literal names
    t0 = time.perf_counter()
    try:
        with matplotlib.rc_context(rc):
            fig = draw_figure(spec)
            # the tight box of the drawing just made (no extra drawing per file); the same pad as "tight"
            box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(matplotlib.rcParams["savefig.pad_inches"])
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=200, bbox_inches=box)
            for fmt in formats[1:]:
                fig.savefig(fig_dir / f"{name}.{fmt}", format=fmt, bbox_inches=box)
        plt.close(fig)
        png = buf.getvalue()
        (fig_dir / f"{name}.png").write_bytes(png)
        vector = next((f"{name}.{f}" for f in formats[1:]), None)
        return {"png": png, "caption": spec.caption, "error": None, "seconds": time.perf_counter() - t0,
                "vector": vector}
    except Exception as e:  # a figure must not take the report down; say so in it
        plt.close("all")
        return {"png": None, "caption": spec.caption, "error": f"{type(e).__name__}: {e}"}


def _workers(n_jobs: int) -> int:
    """2 when forking is possible and safe here (no other Python thread that could hold a lock), else 1."""
    import multiprocessing as mp
    import threading

    if n_jobs < 2 or "fork" not in mp.get_all_start_methods() or (os.cpu_count() or 1) < 2:
        return 1
    return 1 if threading.active_count() > 1 else 2


def render_figures(report: Any, fig_dir: Path, progress: Callable[[str], None] | None,
                   formats: Sequence[str] = DEFAULT_FIGURE_FORMATS) -> dict[str, dict]:
    """Draw every figure of ``report`` once; write PNG and the vector ``formats`` into ``fig_dir``; return
    name -> {png bytes, caption, seconds, vector file} or an error, in the report's order."""
    import multiprocessing as mp

    _JOBS[:] = [(p.prefix + spec.name, spec) for p in report.parts for s in p.sections for spec in s.figures]
    _OUT.update(dir=fig_dir, formats=tuple(formats))
    out: dict[str, dict] = {}
    try:
        if _workers(len(_JOBS)) == 1:
            for i, (name, _) in enumerate(_JOBS):
                if progress:
                    progress(f"figure {name}")
                out[name] = _draw_one(i)
        else:
            if progress:
                progress(f"figures: {len(_JOBS)}, drawn by 2 processes")
            with warnings.catch_warnings():
                # Python warns on any fork of a process with threads; the only other threads here are the
                # numerical libraries' idle pools (_workers refuses when another Python thread runs), and
                # the children only draw with Agg and write files
                warnings.filterwarnings("ignore", message=".*multi-threaded, use of fork", category=DeprecationWarning)
                pool = mp.get_context("fork").Pool(2)
            with pool:
                for i, res in enumerate(pool.imap(_draw_one, range(len(_JOBS)))):
                    out[_JOBS[i][0]] = res
                    if progress:
                        progress(f"figure {_JOBS[i][0]} ({i + 1}/{len(_JOBS)})")
    finally:
        _JOBS.clear()
        _OUT.clear()
    return out
