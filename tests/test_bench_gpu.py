"""benchmarks/gpu.py (`make bench-gpu`): its CPU dry run, its no-CUDA exit, its peak table and FLOP counts.

CI has no GPU: the GPU figures themselves are measured by hand (benchmarks/README.md). These tests run
the whole script on tiny shapes on the CPU (--dry-run) and check what it computes around the timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import adapters
import pytest
import torch
import transformers
from packaging.utils import canonicalize_name

from tests.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu
import gpu_wheels

SCRIPT = ROOT / "benchmarks" / "gpu.py"


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA L40", 181.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
        ("Tesla T4", None),
    ],
)
def test_peak_by_device_name(name, peak):
    assert gpu.peak_tflops(name) == peak


def test_mfu_is_achieved_over_peak():
    assert gpu.mfu(494.7e12, 989.4) == pytest.approx(0.5)
    assert gpu.mfu(1e12, None) is None


def test_parameter_counts_of_a_decoder_match_its_config(tmp_path):
    from transformers import AutoModelForCausalLM

    from lrltool.tiny import build_tiny

    h, layers, inter, vocab = 32, 2, 64, 3000
    path = build_tiny(
        "llama", tmp_path, vocab_size=500, model_vocab_size=vocab, hidden_size=h, num_layers=layers,
        num_heads=2, intermediate_size=inter,
    )  # fmt: skip
    body, head = gpu.parameter_counts(AutoModelForCausalLM.from_pretrained(path))
    assert gpu.base_counts(path, "llama") == (body, head)  # built on the meta device, the same counts
    # per layer: q, k, v, o (h x h each), gate, up, down (h x inter each), two RMSNorms; a final RMSNorm
    assert body == layers * (4 * h * h + 3 * h * inter + 2 * h) + h
    assert head == vocab * h
    # 6 N per trained token; the MLM head only at the 15% masked positions, a CLM head everywhere
    assert gpu.training_flops_per_token(body, head, "llama") == 6 * (body + head)
    assert gpu.training_flops_per_token(body, head, "xlmr") == pytest.approx(6 * (body + 0.15 * head))
    # PPPL: a sentence of 10 tokens with 8 scored = 8 copies of 10 tokens through the body, 8 head rows
    assert gpu.pppl_flops([(10, 8)], body, head) == 2 * body * 80 + 2 * head * 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the script would measure")
def test_without_cuda_one_line_and_exit_0(tmp_path):
    out = tmp_path / "gpu-results.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench-gpu: no CUDA device"), done.stderr
    assert not out.exists()


def test_dry_run_measures_every_figure_on_the_cpu(tmp_path):
    out = tmp_path / "dry.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["complete"] is True
    assert result["environment"]["device"].startswith("cpu")
    assert result["environment"]["peak_bf16_tflops"] is None
    # the versions of the libraries that ran (an offline GPU image may hold others than constraints.txt)
    assert result["environment"]["transformers"] == transformers.__version__
    assert result["environment"]["adapters"] == adapters.__version__
    assert not list(tmp_path.glob("*.partial"))
    figures = {(f["model"], f["measure"], f["dtype"]): f for f in result["figures"]}
    expected = {(m, "train-adapter", "float32") for m in ("xlmr-base", "mbert-base", "llama-1b")}
    expected |= {(m, "finetune", "float32") for m in ("xlmr-base", "mbert-base", "llama-1b")}
    expected |= {(m, "pppl", "float32") for m in ("xlmr-base", "mbert-base")}  # PPPL: encoders only
    assert set(figures) == expected
    units = {"train-adapter": "tokens/s", "finetune": "examples/s", "pppl": "sentences/s"}
    for (_, measure, _), figure in figures.items():
        assert figure["unit"] == units[measure]
        assert figure["value"] > 0 and figure["flops_per_second"] > 0
        assert figure["peak_memory_gb"] is None and figure["mfu"] is None  # CPU: no GPU memory, no peak
        assert figure["details"]["n_body"] > 0 and figure["details"]["n_head"] == 3000 * 32
    assert figures[("llama-1b", "train-adapter", "float32")]["details"]["objective"] == "clm"
    assert figures[("xlmr-base", "train-adapter", "float32")]["details"]["objective"] == "mlm"
    pppl = figures[("xlmr-base", "pppl", "float32")]["details"]
    assert pppl["sentences"] == gpu.DRY.pppl_sentences and pppl["scored_tokens"] > pppl["sentences"]
    # the achieved FLOP/s is the per-token count times the measured rate
    train = figures[("mbert-base", "train-adapter", "float32")]
    flops = train["value"] * train["details"]["flops_per_token"]
    assert train["flops_per_second"] == pytest.approx(flops, rel=0.01)


def _run_code(code: str, tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        **kwargs,
    )


OUT_OF_MEMORY = """
import sys
sys.path.insert(0, {benchmarks!r})
import gpu

def out_of_memory(run, dtype):
    raise MemoryError("CUDA out of memory (a stand-in)")

gpu.measure_pppl = out_of_memory
raise SystemExit(gpu.main(["--dry-run", "--only", "mbert-base", "xlmr-base", "--out", {out!r}]))
"""


def test_a_failed_measurement_is_recorded_and_the_others_still_run(tmp_path):
    """One device run brings back every figure that can be made: a measurement that fails (here an
    out-of-memory PPPL) is listed under "errors" with its traceback on stderr, the next one runs, and the
    script exits 1."""
    out = tmp_path / "gpu-results.json"
    done = _run_code(OUT_OF_MEMORY.format(benchmarks=str(ROOT / "benchmarks"), out=str(out)), tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" in done.stderr
    assert "bench-gpu: mbert-base pppl float32 failed: MemoryError: CUDA out of memory" in done.stderr
    assert "4 figures, 2 measurements failed" in done.stderr.splitlines()[-1]
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["dry_run"] is True
    measured = [(f["model"], f["measure"], f["dtype"]) for f in result["figures"]]
    assert measured == [
        ("mbert-base", "train-adapter", "float32"),
        ("mbert-base", "finetune", "float32"),
        ("xlmr-base", "train-adapter", "float32"),
        ("xlmr-base", "finetune", "float32"),
    ]
    error = "MemoryError: CUDA out of memory (a stand-in)"
    assert result["errors"] == [
        {"model": "mbert-base", "measure": "pppl", "dtype": "float32", "error": error},
        {"model": "xlmr-base", "measure": "pppl", "dtype": "float32", "error": error},
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["gpu-results.json"]


KILLED = """
import sys, time
from pathlib import Path
sys.path.insert(0, {benchmarks!r})
import gpu

def hang(run):
    Path({marker!r}).touch()
    time.sleep(120)

gpu.measure_finetune = hang
gpu.main(["--dry-run", "--only", "mbert-base", "--out", {out!r}])
"""


def test_a_killed_run_keeps_the_figures_it_measured(tmp_path):
    """A lease's time limit kills the process: what was measured before is in the results file, marked
    incomplete (the file is rewritten whole, atomically, after every figure)."""
    out, marker = tmp_path / "gpu-results.json", tmp_path / "finetune-started"
    code = KILLED.format(benchmarks=str(ROOT / "benchmarks"), out=str(out), marker=str(marker))
    with subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        stderr=subprocess.DEVNULL,
    ) as process:
        for _ in range(1200):
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the finetune measurement never started"
        process.kill()
    result = json.loads(out.read_text())
    assert result["complete"] is False and result["errors"] == []
    assert [(f["model"], f["measure"]) for f in result["figures"]] == [("mbert-base", "train-adapter")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finetune-started", "gpu-results.json"]


BF16 = """
import dataclasses, sys
sys.path.insert(0, {benchmarks!r})
import gpu
from lrltool import devices

def cpu_autocast(precision, target):  # lrltool refuses bf16 on the CPU; the GPU run asks it
    return "bf16" if precision == "bf16" else resolve(precision, target)

resolve, devices.resolve_precision = devices.resolve_precision, cpu_autocast
gpu.DRY = dataclasses.replace(gpu.DRY, precisions=("float32", "bfloat16"))
raise SystemExit(gpu.main(["--dry-run", "--only", "xlmr-base", "llama-1b", "--out", {out!r}]))
"""


def test_dry_run_makes_the_bf16_figures_through_cpu_autocast(tmp_path):
    """The GPU run's bf16 half (train-adapter with Accelerate's bf16 autocast, PPPL of a bf16 model)
    through the same code on the CPU, which lrltool otherwise refuses bf16."""
    out = tmp_path / "gpu-results.json"
    done = _run_code(BF16.format(benchmarks=str(ROOT / "benchmarks"), out=str(out)), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["errors"] == []
    figures = {(f["model"], f["measure"], f["dtype"]): f for f in result["figures"]}
    assert set(figures) == {
        ("xlmr-base", "train-adapter", "float32"),
        ("xlmr-base", "train-adapter", "bfloat16"),
        ("xlmr-base", "finetune", "float32"),
        ("xlmr-base", "pppl", "float32"),
        ("xlmr-base", "pppl", "bfloat16"),
        ("llama-1b", "train-adapter", "float32"),
        ("llama-1b", "train-adapter", "bfloat16"),
        ("llama-1b", "finetune", "float32"),
    }
    for figure in figures.values():
        assert figure["value"] > 0 and figure["flops_per_second"] > 0
    for model in ("xlmr-base", "llama-1b"):  # what each run's Accelerator did (its training.json)
        assert figures[(model, "train-adapter", "float32")]["details"]["precision"] == "fp32"
        assert figures[(model, "train-adapter", "bfloat16")]["details"]["precision"] == "bf16"
    # the same sentences scored in both precisions: the same count, a PPPL of the same size
    fp32, bf16 = figures[("xlmr-base", "pppl", "float32")], figures[("xlmr-base", "pppl", "bfloat16")]
    assert (fp32["details"]["weights"], bf16["details"]["weights"]) == ("float32", "bfloat16")
    assert bf16["details"]["scored_tokens"] == fp32["details"]["scored_tokens"]
    assert bf16["details"]["pppl"] == pytest.approx(fp32["details"]["pppl"], rel=0.1)


# --- benchmarks/gpu_wheels.py: what an offline CUDA machine needs beside its own PyTorch --------------


def _runtime_closure() -> set[str]:
    """The installed lrltool's requirements and theirs, with this machine's markers, without extras."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen, todo = set(), ["lrltool"]
    while todo:
        name = todo.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            key = canonicalize_name(requirement.name)
            if key not in seen:
                seen.add(key)
                todo.append(key)
    return seen


def test_gpu_wheels_are_lrltool_dependencies_at_the_constraints_versions():
    closure = _runtime_closure()
    assert set(gpu_wheels.PACKAGES) <= closure  # nothing lrltool does not need
    # the adapters library's pins, which a newer image (transformers 5.x, huggingface_hub 1.x) breaks
    assert {"transformers", "adapters", "huggingface-hub", "tokenizers"} <= set(gpu_wheels.PACKAGES)
    pinned = dict(
        line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    pinned = {canonicalize_name(name): version for name, version in pinned.items()}
    pins = gpu_wheels.pins()
    assert [pin.split("==")[0] for pin in pins] == list(gpu_wheels.PACKAGES)
    assert all(pinned[name] == version for name, version in (pin.split("==") for pin in pins))
    assert "adapters==1.3.0" in pins
    # Hyperscan has no ARM Linux wheel and pyproject.toml does not require it there
    arm = gpu_wheels.pins(machine="aarch64")
    assert [pin for pin in pins if pin not in arm] == [f"hyperscan=={pinned['hyperscan']}"]


def test_gpu_wheels_commands_download_binaries_for_the_target_and_build_seqeval(tmp_path):
    download, build = gpu_wheels.commands(tmp_path / "w", "3.12", "x86_64")
    assert download[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:"} <= set(download)
    assert download[download.index("--python-version") + 1] == "3.12"
    assert download[download.index("-d") + 1] == str(tmp_path / "w")
    platforms = [download[i + 1] for i, arg in enumerate(download) if arg == "--platform"]
    assert platforms and all(tag.endswith("_x86_64") for tag in platforms)
    assert "manylinux2014_x86_64" in platforms
    binary = [pin for pin in gpu_wheels.pins() if not pin.startswith("seqeval==")]
    assert download[-len(binary) :] == binary
    assert build[1:4] == ["-m", "pip", "wheel"] and build[-1].startswith("seqeval==")
    arm_download, _ = gpu_wheels.commands(tmp_path / "w", "3.12", "aarch64")
    arm_platforms = [arm_download[i + 1] for i, arg in enumerate(arm_download) if arg == "--platform"]
    assert arm_platforms == [tag.replace("_x86_64", "_aarch64") for tag in platforms]
    assert not any(arg.startswith("hyperscan==") for arg in arm_download)


def test_gpu_wheels_names_a_package_the_constraints_do_not_pin(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("transformers==4.57.6\n# adapters==1.3.0 (commented out)\n")
    with pytest.raises(SystemExit, match=r"constraints.txt: no pinned version of adapters, huggingface-hub"):
        gpu_wheels.pins(constraints)


def test_gpu_wheels_download_is_all_or_nothing(tmp_path):
    """pip writes into a temporary folder; the wheels reach the folder only when every command succeeded."""

    def pip(fail_at: int | None):
        calls = []

        def run(command):
            calls.append(command)
            target = Path(command[command.index("-d" if "-d" in command else "-w") + 1])
            (target / f"w{len(calls)}-py3-none-any.whl").write_bytes(b"wheel")
            return subprocess.CompletedProcess(command, 1 if len(calls) == fail_at else 0)

        return run

    folder = tmp_path / "wheels"
    with pytest.raises(gpu_wheels.PipFailed, match=r"pip failed \(1\): .* pip wheel --no-deps"):
        gpu_wheels.download(folder, "3.12", "x86_64", run=pip(fail_at=2))
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary folder, no wheel of the first command
    wheels = gpu_wheels.download(folder, "3.12", "x86_64", run=pip(fail_at=None))
    assert [w.name for w in wheels] == ["w1-py3-none-any.whl", "w2-py3-none-any.whl"]
    assert sorted(p.name for p in folder.iterdir()) == ["w1-py3-none-any.whl", "w2-py3-none-any.whl"]
    assert [p.name for p in tmp_path.iterdir()] == ["wheels"]
