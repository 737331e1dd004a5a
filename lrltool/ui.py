"""Everything lrltool says to a person goes to stderr, through here; stdout carries data only.

Progress bars are shown only when stderr is a terminal and ``--quiet`` was not given.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from lrltool.startup import end as end_startup

_state: dict[str, Any] = {"quiet": False, "console": None}


def configure(*, quiet: bool = False) -> None:
    _state["quiet"] = quiet


def console() -> Console:
    # Created lazily so tests that swap sys.stderr (CliRunner) see their own stream.
    con = _state["console"]
    if con is None or con.file is not sys.stderr:
        con = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        _state["console"] = con
    return con


def quiet() -> bool:
    return bool(_state["quiet"])


def info(message: str) -> None:
    """A one-line status message (summaries, saved paths); suppressed by --quiet."""
    if not quiet():
        console().print(message, markup=False)


def warn(message: str) -> None:
    console().print(f"warning: {message}", markup=False, style="yellow")


def progress_enabled() -> bool:
    if quiet() or os.environ.get("LRLTOOL_PROGRESS") == "0":
        return False
    return sys.stderr.isatty() or os.environ.get("LRLTOOL_PROGRESS") == "1"


class Progress:
    """One progress bar on stderr (a no-op when progress is off).

    ``update(completed=..., advance=..., **fields)``; fields are shown after the bar (loss=..., ...).
    """

    def __init__(self, description: str, total: float | None = None, unit: str = "") -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.completed = 0.0
        self.fields: dict[str, Any] = {}
        self.started = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0

    def __enter__(self) -> Progress:
        end_startup()  # the command's work begins (lrltool.startup)
        if progress_enabled():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn() if self.unit != "bytes" else TextColumn("{task.percentage:>5.1f}%"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                console=console(),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, extra="")
        return self

    def update(self, *, completed: float | None = None, advance: float = 0, **fields: Any) -> None:
        if completed is not None:
            self.completed = completed
        self.completed += advance
        self.fields.update(fields)
        if self._bar is None:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and (self.total is None or self.completed < self.total):
            return
        self._last = now
        extra = "  ".join(f"{k} {_fmt(v)}" for k, v in self.fields.items())
        self._bar.update(self._task, completed=self.completed, extra=extra)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            extra = "  ".join(f"{k} {_fmt(v)}" for k, v in self.fields.items())
            self._bar.update(self._task, completed=self.completed, extra=extra)
            self._bar.__exit__(None, None, None)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@contextmanager
def progress(description: str, total: float | None = None, unit: str = "") -> Iterator[Progress]:
    with Progress(description, total, unit) as bar:
        yield bar
