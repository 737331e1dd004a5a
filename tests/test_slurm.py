"""Out to a cluster: SUBMIT prefixes every training and evaluation recipe; `make sweep` reads ConceptNet once.

The recipes run through a stub `srun` on PATH that records its arguments and runs the command, as srun
does on a Slurm cluster (README.md "Slurm"). pipeline.mk is called directly (the top-level Makefile's
`install` step is kept out with `-o`), with `python -m lrltool` as LRLTOOL.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fetch_helpers import cn_row, write_dump

from lrltool.streams import read_records
from tests.paths import EXAMPLES, ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

RON_SOURCES = "conceptnet glotcc flores sib200 wikiann sentiment"
SUBMIT = "srun --gres=gpu:1 --time=24:00:00"
LRLTOOL = f"{sys.executable} -m lrltool"
TRAINING_AND_EVALUATION = re.compile(r"lrltool (train-adapter|finetune|eval) ")
LOCAL = re.compile(r"lrltool (fetch|verbalize|cap|report) ")
STUB = """#!/usr/bin/env bash
# A stand-in for Slurm's srun: record the arguments, drop the options, run the command.
printf '%s\\n' "$*" >> "$SRUN_LOG"
while [[ $# -gt 0 && $1 == -* ]]; do shift; done
exec "$@"
"""


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"
    srun.write_text(STUB)
    srun.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "LRLTOOL_CACHE": str(tmp_path / "cache"),
    }


def _plan(*args: str) -> list[str]:
    result = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-f",
            "pipeline.mk",
            "L=ron_Latn",
            f"HAVE={RON_SOURCES}",  # what `lrltool languages ron --field sources` prints
            "LRLTOOL=lrltool",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines() if "lrltool " in line]


@pytest.mark.parametrize("target", ["all", "sizes"])
def test_submit_prefixes_every_training_and_evaluation_recipe_and_nothing_else(target):
    lines = _plan(f"SUBMIT={SUBMIT}", "PROMPT_MODEL=some-llm", target)
    jobs = [line for line in lines if TRAINING_AND_EVALUATION.search(line)]
    local = [line for line in lines if LOCAL.search(line)]
    assert all(line.startswith(f"{SUBMIT} lrltool ") for line in jobs), jobs
    assert not any("srun" in line for line in local), local
    # 8 adapters; 3 tasks x 10 variants + NER's 2 fusions (PRESET=paper); PPPL base + 8; their 32 task
    # evals; 2 x 2 prompts
    if target == "all":
        counts = {
            kind: sum(f"lrltool {kind} " in line for line in jobs) for kind in ("train-adapter", "finetune")
        }
        assert counts == {"train-adapter": 8, "finetune": 32}
        assert sum("lrltool eval " in line for line in jobs) == 9 + 32 + 4
        assert sum("--prompt" in line for line in jobs) == 4
    else:  # one adapter per CAP_SIZES entry
        assert sum("lrltool train-adapter " in line for line in jobs) == 4
    assert len(local) >= 5


def test_without_submit_no_recipe_is_prefixed():
    lines = _plan("PROMPT_MODEL=some-llm", "all")
    assert not any("srun" in line for line in lines)
    assert any(line.startswith("lrltool train-adapter ") for line in lines)


@pytest.mark.slow
def test_a_real_recipe_runs_through_the_stub_srun(tmp_path, tiny_xlmr):
    env = {**_env(tmp_path), "OMP_NUM_THREADS": "1"}
    data = tmp_path / "data" / "flores" / "devtest"  # the first 20 bundled FLORES sentences
    data.mkdir(parents=True)
    lines = (EXAMPLES / "flores" / "devtest" / "ron_Latn.devtest").read_text(encoding="utf-8").splitlines()
    (data / "ron_Latn.devtest").write_text("\n".join(lines[:20]) + "\n", encoding="utf-8")
    out = tmp_path / "runs"
    target = out / "ron_Latn" / "metrics" / "mlm-base.jsonl"
    settings = [f"OUT={out}", f"DATA={tmp_path / 'data'}", f"MODEL={tiny_xlmr}", f"LRLTOOL={LRLTOOL}"]
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            "pipeline.mk",
            "L=ron_Latn",
            *settings,
            f"SUBMIT={SUBMIT}",
            str(target),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    flores = out / "ron_Latn" / "data" / "flores.jsonl.zst"
    calls = (tmp_path / "srun.log").read_text().splitlines()
    # Only the evaluation went through srun, with its options first; fetch ran where make runs.
    assert calls == [
        # PRESET=paper, the pipeline's default, scores PPPL as the paper's code did (--paper-compat)
        f"--gres=gpu:1 --time=24:00:00 {LRLTOOL} eval --task mlm --model {tiny_xlmr} --paper-compat"
        f" {flores}".replace("  ", " ")
    ]
    # What srun ran is what the command gives when run directly.
    direct = subprocess.run(
        [
            *shlex.split(LRLTOOL),
            "eval",
            "--task",
            "mlm",
            "--model",
            str(tiny_xlmr),
            "--paper-compat",
            str(flores),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    submitted = list(read_records(target))
    expected = [__import__("json").loads(line) for line in direct.splitlines()]
    assert [(r["metric"], r["value"], r["n"]) for r in submitted] == [
        (r["metric"], r["value"], r["n"]) for r in expected
    ]
    assert {r["metric"] for r in submitted} >= {"pppl", "pppl_mean", "pppl_word"}
    assert submitted[0]["n"] == 20


def _sweep_conceptnet(
    tmp_path: Path, env: dict[str, str], langs: str, data: Path
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed-stamp",  # never (re)install from a test
            f"LRLTOOL={LRLTOOL}",
            f"LANGS={langs}",
            f"DATA={data}",
            f"OUT={tmp_path / 'runs'}",
            "sweep-conceptnet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sweep_fetches_conceptnet_for_all_languages_in_one_pass(tmp_path):
    env = _env(tmp_path)
    meta = {"dataset": "/d/wiktionary/ro", "weight": 1.0}
    data = tmp_path / "data"
    (data / "conceptnet").mkdir(parents=True)
    rows = [
        cn_row("IsA", "/c/ro/câine/n", "/c/ro/animal", meta),
        cn_row("IsA", "/c/mt/kelb", "/c/mt/annimal", meta),
        cn_row("IsA", "/c/en/dog", "/c/en/animal", meta),
    ]
    write_dump(data / "conceptnet" / "conceptnet-assertions-5.7.0.csv.gz", rows, compression="gzip")
    result = _sweep_conceptnet(tmp_path, env, "ron mlt", data)
    assert result.returncode == 0, result.stderr
    # One fetch command for both languages (one pass over the dump): one summary line for each.
    assert result.stdout.count("lrltool fetch conceptnet --lang $missing") == 1
    summaries = [line for line in result.stderr.splitlines() if line.startswith("fetch conceptnet:")]
    assert [line.rsplit("; code ", 1)[1] for line in summaries] == ["ro", "mt"]
    for flores, start in (("ron_Latn", "câine"), ("mlt_Latn", "kelb")):
        path = tmp_path / "runs" / flores / "data" / "conceptnet-triples.jsonl.zst"
        assert [r["start"] for r in read_records(path)] == [start]
    # Run again: every language has its triples, nothing is fetched.
    again = _sweep_conceptnet(tmp_path, env, "ron mlt", data)
    assert again.returncode == 0 and "fetch conceptnet --lang" not in again.stderr
    assert not (tmp_path / "srun.log").exists()  # fetching stays where make runs


def test_sweep_falls_back_to_each_languages_rule_when_the_one_pass_fails(tmp_path):
    env = _env(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "conceptnet").symlink_to(EXAMPLES / "conceptnet")
    result = _sweep_conceptnet(tmp_path, env, "ron bul", data)  # the excerpt has no Bulgarian start nodes
    assert result.returncode == 0, result.stderr
    assert "no conceptnet records for code 'bg'" in result.stderr
    assert "sweep: one pass over ConceptNet failed; each language fetches its own" in result.stderr
    # Nothing half-written (at most the empty folders): pipeline.mk's rules fetch each language.
    assert [p for p in (tmp_path / "runs").rglob("*") if not p.is_dir()] == []
