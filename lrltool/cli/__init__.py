"""The ``lrltool`` command line: one thin function per command that parses options and calls the core.

- :mod:`lrltool.cli.group`: the Typer app and its one error handler;
- :mod:`lrltool.cli.options`: the options shared by commands;
- :mod:`lrltool.cli.data`: languages, fetch, verbalize, cap, tiny-model;
- :mod:`lrltool.cli.train`: train-adapter, finetune;
- :mod:`lrltool.cli.evaluate`: eval;
- :mod:`lrltool.cli.report`: report;
- :mod:`lrltool.cli.publish`: push.

``lrltool <command>`` imports only the module of that command (:data:`COMMAND_MODULES`): a short
``fetch`` or ``cap`` then starts without importing what training and evaluation need
(benchmarks/README.md "fetch"). ``from lrltool.cli import app`` gives the app with every command.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

#: The module of :mod:`lrltool.cli` that registers each command (tests check it against the app).
COMMAND_MODULES = {
    "languages": "data",
    "fetch": "data",
    "verbalize": "data",
    "cap": "data",
    "tiny-model": "data",
    "eval": "evaluate",
    "push": "publish",
    "report": "report",
    "train-adapter": "train",
    "finetune": "train",
}
#: Every command module, in the order their commands are listed by ``lrltool --help``.
MODULES = ("data", "evaluate", "publish", "report", "train")

__all__ = ["COMMAND_MODULES", "MODULES", "app", "main"]


def _app(modules: tuple[str, ...] = MODULES) -> Any:
    """The Typer app with the commands of ``modules`` registered (a module registers when imported)."""
    for module in modules:
        importlib.import_module(f"lrltool.cli.{module}")
    from lrltool.cli.group import app

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """``lrltool [COMMAND] ...``: a known command loads its own module only; anything else (no command,
    ``--help``, a typo) loads them all, so help lists every command and a typo gets its suggestions.

    The garbage collector runs less often while the command starts, and not over what it made at exit
    (:mod:`lrltool.startup`)."""
    from lrltool import startup

    startup.begin()
    module = COMMAND_MODULES.get(sys.argv[1]) if len(sys.argv) > 1 else None
    try:
        _app((module,) if module else MODULES)()
    finally:
        startup.exiting()
