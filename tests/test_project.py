"""The project's plumbing: the Makefile's LANG handling, the entry points, the environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_lang_does_not_reach_the_recipe_environment():
    env = {**os.environ, "LANG": "C.UTF-8"}
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "LANG=ron", "show-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "language: ron" in out
    assert "LANG in the recipe environment: <unset>" in out


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_keeps_the_locale_when_lang_comes_from_the_environment():
    env = {**os.environ, "LANG": "C.UTF-8"}
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "show-config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "language: ron" in out  # the default language, not the locale
    assert "LANG in the recipe environment: C.UTF-8" in out


def test_python_dash_m_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "lrltool", "--version"], capture_output=True, text=True, check=True
    ).stdout
    from lrltool import __version__

    assert out.strip() == f"lrltool {__version__}"


def test_kernels_package_is_not_installed():
    # transformers 4.57.6 + `kernels` = CVE-2026-4372 (remote code via config.json); keep it out.
    assert importlib.util.find_spec("kernels") is None


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
