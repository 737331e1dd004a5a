"""The Typer app, its one error handler and the root options.

The single error handler lives in :class:`LrlGroup`: an :class:`LrlError` becomes one line on stderr and
exit status 1 (2 for usage errors); ``LRLTOOL_DEBUG=1`` shows the traceback instead. SIGTERM (``kill``,
a batch scheduler, ``timeout``) is handled as Ctrl-C: the exception unwinds the command, so temporary
files are removed and nothing half-written is left, then one line and exit status 143 (Ctrl-C: 130).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lrltool import __version__
from lrltool.errors import LrlError
from lrltool.streams import write_error


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so that it unwinds (and cleans up) like Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LrlGroup(TyperGroup):
    """Turns known errors into one readable line, a broken pipe into a quiet exit, Ctrl-C into 130 and
    SIGTERM into 143 (after the same cleanup)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            with _sigterm_as_interrupt():
                return super().invoke(ctx)
        except LrlError as exc:
            if os.environ.get("LRLTOOL_DEBUG") == "1":
                raise
            _error_line(f"error: {exc}")
            raise SystemExit(exc.exit_code) from None
        except BrokenPipeError:
            # `lrltool ... | head`: the reader went away; end quietly as Unix filters do.
            _silence_stdout()
            raise SystemExit(141) from None
        except KeyboardInterrupt as exc:
            if os.environ.get("LRLTOOL_DEBUG") == "1":
                raise
            terminated = isinstance(exc, Terminated)
            _error_line("terminated (SIGTERM)" if terminated else "interrupted")
            raise SystemExit(143 if terminated else 130) from None
        except (SystemExit, typer.Exit):
            raise
        except OSError as exc:
            # A full disk or read-only folder that no writer of ours named: still one line, with the file.
            error = write_error(exc, exc.filename or "output")
            if error is None or os.environ.get("LRLTOOL_DEBUG") == "1":
                raise _unexpected(exc) from None
            _error_line(f"error: {error}")
            raise SystemExit(1) from None
        except Exception as exc:  # a bug or an environment problem: still one line, unless debugging
            raise _unexpected(exc) from None


def _unexpected(exc: BaseException) -> BaseException:
    """One line for an error no code of ours explains (exit 1), or ``exc`` itself when debugging."""
    if os.environ.get("LRLTOOL_DEBUG") == "1" or _is_click_exception(exc):
        return exc
    _error_line(
        f"error: {type(exc).__name__}: {exc}; rerun with LRLTOOL_DEBUG=1 for the traceback"
        " (and report it if it is not about your input)"
    )
    return SystemExit(1)


def _is_click_exception(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("typer", "click"))


def _error_line(text: str) -> None:
    try:
        sys.stderr.write(text.replace("\n", " ") + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


app = typer.Typer(
    cls=LrlGroup,
    name="lrltool",
    help="Adapt small multilingual language models to low-resource languages, and measure what it bought.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def command(name: str, *, examples: list[str] | None = None, **kwargs: Any) -> Any:
    """``app.command`` with :class:`lrltool.cli.command.LrlCommand`, and ``examples`` ending the help."""
    from lrltool.cli.command import LrlCommand

    epilog = None
    if examples:
        epilog = "[bold]Examples[/bold]\n\n" + "\n\n".join(f"  {line}" for line in examples)
    return app.command(name, cls=LrlCommand, epilog=epilog, **kwargs)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrltool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Composable commands that exchange JSONL (plain, .gz, .zst) on stdin/stdout or files."""
