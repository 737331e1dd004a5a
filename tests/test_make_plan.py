"""Planning real runs with make: one GPU per concurrent job (GPUS), `make plan`, and an existing
environment used as it is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.paths import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("flock") is None, reason="make")


def _make(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LANG": "C.UTF-8"}
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_with_gpu_gives_each_concurrent_job_its_own_device(tmp_path):
    log = tmp_path / "log"
    stamp = f"$CUDA_VISIBLE_DEVICES $(date +%s.%N) >> {log}"
    job = f"echo start {stamp}; sleep 0.6; echo end {stamp}"
    procs = [
        subprocess.Popen(
            [str(ROOT / "tools" / "with-gpu"), str(tmp_path / "locks"), "g0 g1", "bash", "-c", job]
        )
        for _ in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    events = [line.split() for line in log.read_text().splitlines()]
    assert sorted({gpu for _, gpu, _ in events}) == ["g0", "g1"]  # the fake device list, both used
    for gpu in ("g0", "g1"):
        spans = sorted(float(t) for kind, g, t in events if g == gpu)
        kinds = [kind for kind, g, t in sorted(events, key=lambda e: float(e[2])) if g == gpu]
        assert kinds == ["start", "end"] * (len(spans) // 2)  # never two jobs on one GPU at a time
    failing = subprocess.run([str(ROOT / "tools" / "with-gpu"), str(tmp_path / "locks"), "g0", "false"])
    assert failing.returncode == 1


def test_make_puts_gpu_locks_in_front_of_training_and_evaluation():
    result = _make("-n", "LANG=ro", "all", "GPUS=0 1", "TASKS=tc", "METHODS=seq_bn", "FULL=no", "FULL_FT=no")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    gpu = 'tools/with-gpu runs/.gpu-locks "0 1" .venv/bin/lrltool'
    for command in ("train-adapter", "finetune", "eval --task mlm", "eval --task tc"):
        found = [line for line in lines if f"lrltool {command}" in line]
        assert found and all(line.startswith(gpu) for line in found), command
    assert not any(line.startswith("tools/with-gpu") and "lrltool fetch" in line for line in lines)
    plain = _make("-n", "LANG=ro", "all", "TASKS=tc")
    assert "with-gpu" not in plain.stdout


def test_make_n_uses_an_existing_environment_without_reinstalling(tmp_path):
    (tmp_path / "env" / "bin").mkdir(parents=True)
    (tmp_path / "env" / "bin" / "lrltool").symlink_to(Path(sys.executable).parent / "lrltool")
    result = _make("-n", "LANG=ro", "all", f"VENV={tmp_path / 'env'}")
    assert result.returncode == 0, result.stderr
    assert "pip install" not in result.stdout and "lrltool train-adapter" in result.stdout
    fresh = _make("-n", "LANG=ro", "all", f"VENV={tmp_path / 'none'}")
    assert "pip install" in fresh.stdout  # no environment: make builds one


def test_make_plan_counts_runs_and_uses_measured_throughput_and_sizes(tmp_path):
    out = tmp_path / "runs"
    root = out / "ron_Latn"
    (root / "data" / "tc").mkdir(parents=True)
    (root / "data" / "tc" / "train.jsonl").write_text('{"text": "a", "label": "travel"}\n' * 70)
    run = root / "adapters" / "seq_bn-glotcc"
    run.mkdir(parents=True)
    (run / "training.json").write_text(json.dumps({"finished": True, "steps": 1000, "seconds": 400.0}))
    (run / "weights.bin").write_bytes(b"\0" * (3 * 2**20 - len((run / "training.json").read_bytes())))
    args = ["-s", "LANG=ro", "plan", f"OUT={out}", "TASKS=tc", "METHODS=seq_bn", "FULL=no", "FULL_FT=no"]
    started = time.perf_counter()
    result = _make(*args, "SEEDS=1 2", "FINETUNE_STEPS_PER_SEC=4")
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - started < 60
    lines = {line.split("  ")[0]: line.split() for line in result.stdout.splitlines()}
    # 2 adapters (seq_bn x glotcc, conceptnet): 100k + 25k steps (paper presets) at the measured 2.5 steps/s
    assert lines["language adapters"][-5:] == ["2", "125,000", "2.50", "13.9", "0.0"]
    # tc: baseline + 2 adapters + fusion = 4 variants x 2 seeds; 20 epochs x ceil(70 / 32) = 60 steps each
    assert lines["task runs (seeds)"][-5:-2] == ["8", "480", "4.00"]
    assert "run `make LANG=... data` first" not in result.stdout
    unmeasured = _make("-s", "LANG=ro", "plan", f"OUT={tmp_path / 'empty'}", "TASKS=tc", "FULL=no")
    assert (
        "pass a measured throughput for a run not yet done here: ADAPTER_STEPS_PER_SEC=" in unmeasured.stdout
    )
    assert "make LANG=ron_Latn plan (FINETUNE_STEPS_PER_SEC likewise)" in unmeasured.stdout
