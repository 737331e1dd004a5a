"""A command's start-up and exit, as Python's cyclic garbage collector sees them.

A command that loads a model imports torch, transformers and adapters first: about 340,000 objects the
collector tracks. With the collector's default thresholds, importing them runs it again and again over
everything imported so far, and the interpreter's shutdown runs full collections over all of it once more.
On the project's 2-core machine that was about 1 s of start-up and 2 s of exit in every training and
evaluation command (docs/design.md "Layout"). So :func:`lrltool.cli.main`:

- starts with :data:`STARTUP_THRESHOLDS` (:func:`begin`), and the thresholds the process had are back
  (:func:`end`) as soon as the command's work begins: its first progress bar, or a model loaded;
- freezes what exists when the command returns (:func:`exiting`, ``gc.freeze``): the shutdown's
  collections then skip it. Reference counting still frees the objects; only cycles among them are left
  to the end of the process, which is about to end.

Only when and how often the collector runs changes, never what a command computes.
"""

from __future__ import annotations

import gc

#: The collector's thresholds while a command starts: a young-generation collection every 100,000
#: allocations instead of every 700, an older one every 20 younger ones instead of 10. Starting
#: train-adapter on the tiny model, the collector's own time (gc.callbacks) was 1.7 s with Python's
#: thresholds, 0.7 s with (10,000, 10, 10) and 0.5 s with these; with it off, 0.4-0.6 s remained
#: (collections that libraries ask for).
STARTUP_THRESHOLDS = (100_000, 20, 20)

_saved: tuple[int, ...] | None = None  # the thresholds to go back to; None when not starting


def begin() -> None:
    """Enter start-up: :data:`STARTUP_THRESHOLDS` until :func:`end`."""
    global _saved
    if _saved is None:
        _saved = gc.get_threshold()
        gc.set_threshold(*STARTUP_THRESHOLDS)


def end() -> None:
    """Leave start-up (once; later calls do nothing): the thresholds from before :func:`begin`."""
    global _saved
    if _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None


def exiting() -> None:
    """The command returned: leave start-up and freeze every object, so shutdown does not scan them."""
    end()
    gc.freeze()
