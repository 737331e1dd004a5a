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
    # tc: baseline + 2 adapters = 3 variants x 2 seeds (the paper preset fuses for NER only); 20 epochs x
    # ceil(70 / 32) = 60 steps each
    assert lines["task runs (seeds)"][-5:-2] == ["6", "360", "4.00"]
    assert "run `make LANG=... data` first" not in result.stdout
    unmeasured = _make("-s", "LANG=ro", "plan", f"OUT={tmp_path / 'empty'}", "TASKS=tc", "FULL=no")
    assert (
        "pass a measured throughput for a run not yet done here: ADAPTER_STEPS_PER_SEC=" in unmeasured.stdout
    )
    assert "make LANG=ron_Latn plan (FINETUNE_STEPS_PER_SEC likewise)" in unmeasured.stdout


def _fusion_runs(plan: str) -> list[tuple[str, str, str]]:
    """(task, fused adapters, output) of each fusion finetune that `make -n` plans."""
    found = []
    for line in plan.splitlines():
        if "lrltool finetune" in line and "--fusion" in line:
            words = line.split()
            adapters = [words[i + 1].rsplit("/", 1)[1] for i, w in enumerate(words) if w == "--lang-adapter"]
            found.append(
                (words[words.index("--task") + 1], "+".join(adapters), words[-1].split("/tasks/")[1])
            )
    return found


def test_make_fuses_as_the_seed_under_the_paper_preset_and_every_task_otherwise():
    paper = _make("-n", "LANG=ro", "all")
    assert paper.returncode == 0, paper.stderr
    # the seed: src/ner/train_ner.py at 08d2c23:187-226 fuses for NER only, run with seq_bn and seq_bn_inv
    assert _fusion_runs(paper.stdout) == [
        ("ner", "seq_bn-conceptnet+seq_bn-glotcc", "ner/fusion-seq_bn"),
        ("ner", "seq_bn_inv-conceptnet+seq_bn_inv-glotcc", "ner/fusion-seq_bn_inv"),
    ]
    assert all("--preset paper" in line for line in paper.stdout.splitlines() if "--fusion" in line)
    assert "lrltool eval --task ner --run runs/ron_Latn/tasks/ner/fusion-seq_bn_inv" in paper.stdout
    assert "tasks/tc/fusion" not in paper.stdout and "tasks/sa/fusion" not in paper.stdout
    ours = _make("-n", "LANG=ro", "all", "PRESET=")
    assert _fusion_runs(ours.stdout) == [
        (task, "seq_bn-conceptnet+seq_bn-glotcc", f"{task}/fusion-seq_bn") for task in ("tc", "sa", "ner")
    ]
    chosen = _make("-n", "LANG=ro", "all", "PRESET=", "FUSION_TASKS=sa", "FUSION_METHODS=seq_bn_inv")
    assert _fusion_runs(chosen.stdout) == [
        ("sa", "seq_bn_inv-conceptnet+seq_bn_inv-glotcc", "sa/fusion-seq_bn_inv")
    ]
    lora = _make("-n", "LANG=ro", "all", "FUSION_METHODS=seq_bn lora")
    assert lora.returncode == 2 and "lrltool finetune" not in lora.stdout
    assert (
        "FUSION_METHODS: AdapterFusion fuses bottleneck adapters (seq_bn, seq_bn_inv), not lora"
        in lora.stderr
    )
    # a decoder: the seed fused MLM adapters only (train_ner.py at 08d2c23:193-197 loads .../mlm)
    decoder = _make("-n", "LANG=ro", "all", "MODEL=meta-llama/Llama-3.2-1B")
    assert decoder.returncode == 0, decoder.stderr
    assert _fusion_runs(decoder.stdout) == [] and "lrltool eval --task clm" in decoder.stdout


def test_show_config_and_plan_name_the_fusion_runs(tmp_path):
    paper = _make("-s", "show-config")
    assert paper.returncode == 0, paper.stderr
    lines = paper.stdout.splitlines()
    assert "PRESET: paper" in lines and "FUSION_TASKS: ner" in lines
    assert "FUSION_METHODS: seq_bn seq_bn_inv" in lines
    ours = _make("-s", "show-config", "PRESET=").stdout.splitlines()
    assert "FUSION_TASKS: tc sa ner" in ours and "FUSION_METHODS: seq_bn" in ours
    decoder = _make("-s", "show-config", "MODEL=meta-llama/Llama-3.2-1B").stdout.splitlines()
    assert "FUSION_TASKS: <none>" in decoder and "MODEL: meta-llama/Llama-3.2-1B (decoder)" in decoder
    plan = _make(
        "-s", "LANG=ro", "plan", f"OUT={tmp_path}", "METHODS=seq_bn seq_bn_inv", "FULL=no", "FULL_FT=no"
    )
    assert plan.returncode == 0, plan.stderr
    assert (
        "fusion runs: ner/fusion-seq_bn, ner/fusion-seq_bn_inv"
        " (FUSION_TASKS=ner, FUSION_METHODS=seq_bn seq_bn_inv)" in plan.stdout.splitlines()
    )
    # 3 tasks x (baseline + 4 adapters) + 2 NER fusions, 3 seeds each
    assert plan.stdout.split("task runs (seeds)")[1].split()[0] == str((3 * 5 + 2) * 3)
