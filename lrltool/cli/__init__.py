"""The ``lrltool`` command line: one thin function per command that parses options and calls the core.

- :mod:`lrltool.cli.app`: the Typer app and its one error handler;
- :mod:`lrltool.cli.options`: the options shared by commands;
- :mod:`lrltool.cli.data`: languages, fetch, verbalize, cap, tiny-model;
- :mod:`lrltool.cli.train`: train-adapter, finetune;
- :mod:`lrltool.cli.evaluate`: eval;
- :mod:`lrltool.cli.report`: report;
- :mod:`lrltool.cli.publish`: push.
"""

from __future__ import annotations

from lrltool.cli import data, evaluate, publish, report, train  # noqa: F401 - each registers its commands
from lrltool.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
