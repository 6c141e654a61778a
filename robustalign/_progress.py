"""Progress bars with an ETA for long work (fits, multiverse audits, stability, power simulations, SBC).

One helper for the whole package, built on ``rich``: a terminal bar on stderr, and in a Jupyter notebook
one output of the running cell redrawn in place (an IPython display handle, as text and HTML, so it needs
no widget library and the executed notebook keeps the final state). Quiet under ``progress=False``, under
the environment variable ``CI``, inside pytest, and when stderr is not a terminal (outside a notebook).
``ROBUSTALIGN_PROGRESS=1`` (or ``0``) forces it on (off). Callers advance per block of work, never per
draw, so a bar costs nothing measurable in a tight loop.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Bar", "enabled", "progress_bar", "phase"]

#: The rich display on screen, if any (rich allows one live display at a time; nested bars join it).
ACTIVE: list[Any] = []
#: Seconds between redraws of a notebook display (a spinner and the elapsed time move between advances).
NOTEBOOK_REFRESH_S = 0.5
#: Characters per line of the notebook display.
NOTEBOOK_WIDTH = 100


class Bar(Protocol):
    """What :func:`progress_bar` yields: ``advance(n)`` after each block of work, ``update(...)`` of its task."""

    def advance(self, n: float = 1) -> None: ...

    def update(self, **kwargs: Any) -> None: ...


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (JupyterLab, VS Code, Colab: shells derived from ipykernel's).

    Looks only at modules already loaded, so a plain script never imports IPython here."""
    ipython, zmqshell = sys.modules.get("IPython"), sys.modules.get("ipykernel.zmqshell")
    if ipython is None or zmqshell is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


def enabled(progress: bool | None = None) -> bool:
    """Whether to show progress: ``progress`` when given, else from the environment (see module doc)."""
    if progress is not None:
        return bool(progress)
    forced = os.environ.get("ROBUSTALIGN_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if os.environ.get("CI") or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    if _in_notebook():
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class _Quiet:
    """The do-nothing bar used when progress is off."""

    def advance(self, n: float = 1) -> None:
        pass

    def update(self, **kwargs: Any) -> None:
        pass


class _Bar:
    def __init__(self, prog: Any, task: Any) -> None:
        self._prog, self._task = prog, task

    def advance(self, n: float = 1) -> None:
        self._prog.advance(self._task, n)

    def update(self, **kwargs: Any) -> None:
        self._prog.update(self._task, **kwargs)


def _console() -> Any:
    from rich.console import Console

    # force_terminal: a bar that was asked for is drawn even when stderr is a pipe (e.g. captured)
    return Console(file=sys.stderr, force_terminal=True)


def _render(prog: Any) -> dict[str, str]:
    """The tasks of ``prog`` as a notebook output: plain text and HTML (colours inline)."""
    from rich.console import Console

    con = Console(file=io.StringIO(), record=True, width=NOTEBOOK_WIDTH, force_terminal=False,
                  force_jupyter=False, color_system="truecolor")
    con.print(prog.get_renderable())
    text = con.export_text(clear=False).rstrip()
    html = con.export_html(inline_styles=True, code_format='<pre style="line-height:normal">{code}</pre>')
    return {"text/plain": text, "text/html": html}


class _NotebookDisplay:
    """One output of the running cell, redrawn every ``NOTEBOOK_REFRESH_S`` seconds and once at the end."""

    def __init__(self, prog: Any) -> None:
        from IPython.display import display

        self._prog = prog
        self._handle = display(_render(prog), raw=True, display_id=True)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="robustalign-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(NOTEBOOK_REFRESH_S):
            self._handle.update(_render(self._prog), raw=True)

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self._handle.update(_render(self._prog), raw=True)


@contextlib.contextmanager
def _live(prog: Any) -> Iterator[None]:
    """Show ``prog`` while the block runs: on stderr in a terminal, as a redrawn output in a notebook."""
    if not _in_notebook():
        with prog:
            yield
        return
    shown = _NotebookDisplay(prog)  # the Progress itself is never started: it only keeps the tasks and times
    try:
        yield
    finally:
        shown.close()


@contextlib.contextmanager
def progress_bar(total: float | None, description: str, *, progress: bool | None = None) -> Iterator[Bar]:
    """A bar for ``total`` units of work (None: a spinner with the elapsed time); yields ``.advance(n)``."""
    if not enabled(progress):
        yield _Quiet()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if ACTIVE:  # a bar inside another (a claim inside an audit step): one more line in the same display
        prog = ACTIVE[-1]
        task = prog.add_task(description, total=total)
        try:
            yield _Bar(prog, task)
        finally:
            prog.remove_task(task)
        return
    cols = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    prog = Progress(*cols, console=_console(), transient=False)
    with _live(prog):
        ACTIVE.append(prog)
        try:
            yield _Bar(prog, prog.add_task(description, total=total))
        finally:
            ACTIVE.remove(prog)


@contextlib.contextmanager
def phase(description: str, *, progress: bool | None = None) -> Iterator[Bar]:
    """A spinner with the elapsed time for one step of unknown length (e.g. compiling a model)."""
    with progress_bar(None, description, progress=progress) as bar:
        yield bar
