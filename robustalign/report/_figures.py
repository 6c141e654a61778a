"""Drawing a report's figures: each once, written in the requested formats, two at a time where possible.

Every figure is drawn once (house style, long names cut, grown until its texts fit), its tight bounding
box is taken once from that drawing, and the PNG (always: the HTML embeds it) and the vector copies are
written from the same drawing. By default only the PNG is written: an SVG copy costs about two thirds of
the PNG's time again (a fifth of all figure time with both), and neither report needs it. Vector copies
are written when asked for (``figure_formats=("png", "svg")`` or ``--figure-formats png,svg``): SVG keeps
its text as text (``svg.fonttype: none``) and skips PDF's font subsetting, which costs about as much as
drawing the figure; PDF on request too. The PNG is compressed with zlib level 1 (:data:`PNG_COMPRESS`):
the same pixels as the default level 6, written in about a fifth less time, the files about 7% larger.

With at least two processors and the ``fork`` start method the figures are drawn by two worker
processes (forked, so nothing is pickled but the written bytes); otherwise one after the other. The
files are the same either way.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Formats a report can write its figures in (PNG is always written).
FIGURE_FORMATS = ("png", "svg", "pdf")
#: The files written by default: PNG only (vector copies on request, see the module doc).
DEFAULT_FIGURE_FORMATS = ("png",)
#: zlib level of the PNG files (lossless at every level: the pixels do not depend on it).
PNG_COMPRESS = 1

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


def _png_options() -> dict[str, Any]:
    """savefig's options for the PNG: 200 dpi, zlib level :data:`PNG_COMPRESS` (a fresh dict: matplotlib
    adds its metadata to ``pil_kwargs``)."""
    return {"dpi": 200, "pil_kwargs": {"compress_level": PNG_COMPRESS}}


def draw_bytes(spec: Any, formats: Sequence[str] = DEFAULT_FIGURE_FORMATS) -> dict[str, Any]:
    """Draw a report figure once and return its files' bytes: ``{"files": {format: bytes}, "seconds",
    "error"}`` (``error`` is the message when drawing failed: a figure must not take the report down)."""
    import matplotlib

    matplotlib.use("Agg")  # files only (a no-op where Agg is already the backend)
    import matplotlib.pyplot as plt

    from robustalign.plots._style import RC
    from robustalign.report.render import draw_figure

    rc: Any = RC  # matplotlib types rc_context's keys as literal names
    t0 = time.perf_counter()
    files: dict[str, bytes] = {}
    try:
        with matplotlib.rc_context(rc):
            fig = draw_figure(spec)
            # the tight box of the drawing just made (no extra drawing per file); the same pad as "tight"
            box = getattr(fig, "_robustalign_tightbbox", None) or fig.get_tightbbox(fig.canvas.get_renderer())
            box = box.padded(matplotlib.rcParams["savefig.pad_inches"])
            for fmt in formats:
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt, bbox_inches=box, **(_png_options() if fmt == "png" else {}))
                files[fmt] = buf.getvalue()
        plt.close(fig)
        return {"files": files, "seconds": time.perf_counter() - t0, "error": None}
    except Exception as e:  # a figure must not take the report down; say so in it
        plt.close("all")
        return {"files": {}, "seconds": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"}


def _write(name: str, spec: Any, drawn: dict[str, Any], fig_dir: Path, formats: Sequence[str]) -> dict:
    """Write the drawn files of one figure; name -> png bytes, caption, seconds, vector file or the error."""
    if drawn["error"] is not None:
        return {"png": None, "caption": spec.caption, "error": drawn["error"]}
    for fmt in formats:
        (fig_dir / f"{name}.{fmt}").write_bytes(drawn["files"][fmt])
    vector = next((f"{name}.{f}" for f in formats[1:]), None)
    return {"png": drawn["files"]["png"], "caption": spec.caption, "error": None, "seconds": drawn["seconds"],
            "vector": vector}


def _drawn(spec: Any, formats: Sequence[str]) -> dict[str, Any] | None:
    """The files drawn during the audit (``FigureSpec.drawn``) when they cover ``formats``, else None."""
    d = getattr(spec, "drawn", None)
    if d is None or (d["error"] is None and not set(formats) <= set(d["files"])):
        return None
    return d


def _draw_one(i: int) -> dict:
    """Draw figure ``i`` of ``_JOBS`` (unless drawn during the audit) and write its files."""
    name, spec = _JOBS[i]
    fig_dir, formats = _OUT["dir"], _OUT["formats"]
    drawn = _drawn(spec, formats) or draw_bytes(spec, formats)
    return _write(name, spec, drawn, fig_dir, formats)


def _draw_one_in_worker(i: int) -> dict:
    """:func:`_draw_one` in a pool's worker: an interrupt there is handed to the parent, which raises it
    (a worker that dies of it would lose its figure, and the parent would wait for it for ever)."""
    try:
        return _draw_one(i)
    except KeyboardInterrupt:
        return {"interrupted": True}


def _workers(n_jobs: int) -> int:
    """2 when forking is possible and safe here (no other Python thread that could hold a lock), else 1;
    1 also under ``ROBUSTALIGN_WORKERS=1``."""
    from robustalign.report._steps import fork_workers

    return 1 if n_jobs < 2 else fork_workers()


def render_figures(report: Any, fig_dir: Path, progress: Callable[[str], None] | None,
                   formats: Sequence[str] = DEFAULT_FIGURE_FORMATS) -> dict[str, dict]:
    """Draw every figure of ``report`` once; write PNG and the vector ``formats`` into ``fig_dir``; return
    name -> {png bytes, caption, seconds, vector file} or an error, in the report's order."""
    import multiprocessing as mp

    _JOBS[:] = [(p.prefix + spec.name, spec) for p in report.parts for s in p.sections for spec in s.figures]
    _OUT.update(dir=fig_dir, formats=tuple(formats))
    out: dict[str, dict] = {}
    todo = sum(_drawn(spec, formats) is None for _, spec in _JOBS)  # figures not drawn during the audit
    try:
        if _workers(todo) == 1:
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
                for i, res in enumerate(pool.imap(_draw_one_in_worker, range(len(_JOBS)))):
                    if res.get("interrupted"):
                        raise KeyboardInterrupt
                    out[_JOBS[i][0]] = res
                    if progress:
                        progress(f"figure {_JOBS[i][0]} ({i + 1}/{len(_JOBS)})")
    finally:
        _JOBS.clear()
        _OUT.clear()
    return out
