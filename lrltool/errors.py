"""The one error type of lrltool, and its kinds.

Core modules raise these; the single handler in ``cli.py`` turns them into one line on stderr,
``FILE:LINE: what was expected; how to fix``, and an exit status (1, or 2 for usage errors).
"""

from __future__ import annotations


class LrlError(Exception):
    """An error the user can fix: bad input, a missing file, a model we refuse to load."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        self.line = line

    def located(self, path: str | None = None, line: int | None = None) -> LrlError:
        """Fill in where the error happened, unless it already says."""
        if self.path is None:
            self.path = path
        if self.line is None:
            self.line = line
        return self

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{'<stdin>' if self.path == '-' else self.path}:"
            if self.line is not None:
                where += f"{self.line}:"
            where += " "
        text = f"{where}{self.message}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class InputError(LrlError):
    """Malformed or unusable input data (bad JSON, a missing key, a truncated stream, an empty set)."""


class UsageError(LrlError):
    """Options that do not fit together or a value out of range (exit 2, as Click does)."""

    exit_code = 2


class LanguageError(UsageError):
    """A language code that the registry does not know."""


class ModelError(LrlError):
    """A model or adapter that cannot be loaded, or that we refuse to load (untrusted config)."""


class RunError(LrlError):
    """A run folder that is missing, incomplete, or already holds another run."""


class OutputError(LrlError):
    """An output that cannot be written: a full disk, a read-only file system, no permission."""
