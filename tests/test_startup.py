"""lrltool.startup: the garbage collector's thresholds while a command starts, and the freeze at its exit."""

from __future__ import annotations

import gc

import pytest

from lrltool import startup, ui
from tests.paths import run_python


@pytest.fixture
def thresholds():
    """The thresholds before the test, which each test checks it gets back; restored whatever happens."""
    before = gc.get_threshold()
    assert before != startup.STARTUP_THRESHOLDS
    yield before
    startup.end()
    gc.set_threshold(*before)


def test_begin_sets_the_startup_thresholds_and_end_restores_the_old_ones_once(thresholds):
    startup.begin()
    assert gc.get_threshold() == startup.STARTUP_THRESHOLDS
    startup.begin()  # a second begin keeps the thresholds to go back to
    startup.end()
    assert gc.get_threshold() == thresholds
    gc.set_threshold(1234, 5, 6)
    startup.end()  # later ends change nothing
    assert gc.get_threshold() == (1234, 5, 6)


def test_the_first_progress_bar_ends_startup(thresholds):
    startup.begin()
    with ui.progress("work", total=1) as bar:
        assert gc.get_threshold() == thresholds
        bar.update(completed=1)


def test_loading_a_model_ends_startup(thresholds, tiny_xlmr):
    from lrltool import models

    startup.begin()
    models.load_model(models.resolve_model(str(tiny_xlmr)))
    assert gc.get_threshold() == thresholds


def test_a_command_runs_with_the_startup_thresholds_and_exits_frozen_with_the_old_ones():
    """``lrltool languages`` through cli.main (no progress bar, no model): the start-up thresholds until
    it returns; at exit (an atexit function registered before main runs after it) every object frozen
    and the thresholds as before."""
    code = (
        "import atexit, gc, sys\n"
        "from lrltool import startup\n"
        "from lrltool.cli import main\n"
        "before = gc.get_threshold()\n"
        "atexit.register(lambda: print('exit', gc.get_freeze_count() > 0, gc.get_threshold() == before))\n"
        "exiting = startup.exiting\n"
        "def returned():\n"
        "    print('returned', gc.get_threshold() == startup.STARTUP_THRESHOLDS, gc.get_freeze_count())\n"
        "    exiting()\n"
        "startup.exiting = returned\n"
        "sys.argv = ['lrltool', 'languages']\n"
        "main()\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ron" in "\n".join(lines[:-2])  # the command's own output came first
    assert lines[-2:] == ["returned True 0", "exit True True"]
