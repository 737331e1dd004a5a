"""README.md's commands keep working: the walkthrough runs as written; every other example names
commands and options that exist."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import typer.main

from lrltool.cli import app
from tests.paths import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _console_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", README, flags=re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def _example_invocations(text: str = README) -> list[list[str]]:
    """Every `lrltool ...` invocation in README code (indented blocks, console blocks, pipelines)."""
    text = re.sub(r"\\\n\s*", " ", text)  # join continued lines
    invocations = []
    for line in text.splitlines():
        stripped = line.strip().removeprefix("$ ")
        if "lrltool " not in stripped or not (line.startswith("    ") or line.startswith("$ ")):
            continue
        for part in stripped.split("|"):
            part = part.split("#")[0].split(">")[0].strip()
            if part.startswith("lrltool "):
                invocations.append(shlex.split(part)[1:])
    return invocations


def test_readme_walkthrough_runs_as_written(tmp_path, small_examples):
    """Every `$ ` command of README.md, as written, in order, in a fresh folder whose examples/ is the
    bundled one with FLORES cut to 40 sentences (conftest.small_examples: the two pseudo-perplexity
    evaluations score fewer sentences; the test asserts which records and report sections come out)."""
    commands = _console_commands()
    assert len(commands) >= 10 and commands[0] == "lrltool tiny-model -o tiny"
    (tmp_path / "examples").symlink_to(small_examples)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LRLTOOL_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    for command in commands:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        assert "Traceback" not in result.stderr
    records = [orjson.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["metric"] for r in records} == {"pppl", "pppl_mean", "pppl_word", "macro_f1", "accuracy"}
    assert {(r["method"], r["source"]) for r in records} == {("seq_bn_inv", "glotcc"), ("base", None)}
    report = (tmp_path / "report" / "report.md").read_text()
    assert "no baseline records" not in report  # both tables have their baseline column
    assert "## Seeds, confidence intervals and accuracy" in report and "## Training cost" in report
    assert sorted(p.name for p in (tmp_path / "data" / "sib200").iterdir()) == [
        "test.jsonl.zst",
        "train.jsonl.zst",
        "validation.jsonl.zst",
    ]


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("argv", _example_invocations(), ids=lambda argv: " ".join(argv)[:60])
def test_readme_examples_name_real_commands_and_options(argv):
    group = typer.main.get_command(app)
    assert argv[0] in group.commands, f"no command {argv[0]}"
    known = _options(group.commands[argv[0]])
    for token in argv[1:]:
        if token.startswith("-") and token != "-":
            assert token.split("=")[0] in known, f"lrltool {argv[0]} has no option {token}"


COMMANDS_DOC = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("argv", _example_invocations(COMMANDS_DOC), ids=lambda argv: " ".join(argv)[:60])
def test_command_reference_examples_name_real_commands_and_options(argv):
    test_readme_examples_name_real_commands_and_options(argv)


def test_readme_shows_the_two_commands_and_ci_uses_one():
    assert "make demo" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
