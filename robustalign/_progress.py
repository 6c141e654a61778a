"""Progress bars with an ETA for long work (fits, multiverse audits, stability, power simulations, SBC).

One helper for the whole package, built on ``rich`` (a terminal bar on stderr, a live widget in a
notebook). Quiet under ``progress=False``, under the environment variable ``CI``, inside pytest, and when
stderr is not a terminal (outside a notebook). ``ROBUSTALIGN_PROGRESS=1`` (or ``0``) forces it on (off).
Callers advance per block of work, never per draw, so a bar costs nothing measurable in a tight loop.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["enabled", "progress_bar", "phase"]

#: The rich display on screen, if any (rich allows one live display at a time; nested bars join it).
ACTIVE: list = []


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


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

    def update(self, **kwargs) -> None:
        pass


class _Bar:
    def __init__(self, prog, task):
        self._prog, self._task = prog, task

    def advance(self, n: float = 1) -> None:
        self._prog.advance(self._task, n)

    def update(self, **kwargs) -> None:
        self._prog.update(self._task, **kwargs)


def _console():
    from rich.console import Console

    # force_terminal: a bar that was asked for is drawn even when stderr is a pipe (e.g. captured)
    return Console(file=sys.stderr, force_terminal=not _in_notebook() or None)


@contextlib.contextmanager
def progress_bar(total: float | None, description: str, *, progress: bool | None = None):
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
    with Progress(*cols, console=_console(), transient=False) as prog:
        ACTIVE.append(prog)
        try:
            yield _Bar(prog, prog.add_task(description, total=total))
        finally:
            ACTIVE.remove(prog)


@contextlib.contextmanager
def phase(description: str, *, progress: bool | None = None):
    """A spinner with the elapsed time for one step of unknown length (e.g. compiling a model)."""
    with progress_bar(None, description, progress=progress) as bar:
        yield bar
