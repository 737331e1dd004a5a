"""The project's plumbing: the Makefile's LANG handling, the entry points, the environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from tests.paths import ROOT


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


def _make_dry_run(*args: str) -> str:
    env = {**os.environ, "LANG": "C.UTF-8"}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_all_plans_the_whole_chain_for_the_resolved_language():
    plan = _make_dry_run("LANG=ro", "all")
    for expected in (
        "lrltool fetch glotcc --lang ron_Latn  -o runs/ron_Latn/data/glotcc-raw.jsonl.zst",
        # PRESET=paper (the default): the paper's data preparation and PPPL (docs/paper-protocol.md)
        "lrltool verbalize runs/ron_Latn/data/conceptnet-triples.jsonl.zst --paper-compat |"
        " .venv/bin/lrltool cap --paper-compat",
        "lrltool cap runs/ron_Latn/data/glotcc-raw.jsonl.zst --paper-compat --max-bytes"
        " train=1GiB,validation=200MiB -o runs/ron_Latn/data/glotcc",
        "lrltool train-adapter --model xlm-roberta-base --method seq_bn_inv --preset paper-glotcc",
        "lrltool train-adapter --model xlm-roberta-base --method full --preset paper-conceptnet",
        "--lang-adapter runs/ron_Latn/adapters/seq_bn-conceptnet --lang-adapter"
        " runs/ron_Latn/adapters/seq_bn-glotcc --fusion --seeds 1,2,3 --preset paper",
        "lrltool finetune --task sa --model xlm-roberta-base --data runs/ron_Latn/data/sa --lang ron_Latn"
        " --task-method full --seeds 1,2,3",
        "lrltool eval --task mlm --model xlm-roberta-base --adapter runs/ron_Latn/adapters/lora-glotcc"
        " --paper-compat",
        "lrltool eval --task ner --run runs/ron_Latn/tasks/ner/baseline",
        "lrltool report runs/ron_Latn/metrics/mlm-base.jsonl",
    ):
        assert expected in plan, expected
    # 3 methods + full, 2 sources; 3 tasks x (baseline, full FT, 8 adapters) with 3 seeds each, and NER
    # fused with seq_bn and with seq_bn_inv (the paper preset's FUSION_TASKS, FUSION_METHODS)
    assert plan.count("lrltool train-adapter") == 8
    assert plan.count("lrltool finetune") == 3 * 10 + 2
    ours = _make_dry_run("LANG=ro", "all", "PRESET=")  # lrltool's corrected protocol
    assert "--paper-compat" not in ours and "--preset" not in ours
    assert "lrltool cap runs/ron_Latn/data/glotcc-raw.jsonl.zst --max-bytes 1G --split" in ours


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_sizes_caps_glotcc_at_each_size():
    plan = _make_dry_run("LANG=mlt", "sizes", "CAP_SIZES=1M 10M", "TASKS=tc")
    assert "lrltool cap runs/mlt_Latn/data/glotcc/train.jsonl.zst --max-bytes 1M" in plan
    assert "lrltool cap runs/mlt_Latn/data/glotcc/train.jsonl.zst --max-bytes 10M" in plan
    assert plan.count("lrltool train-adapter") == 2
    assert "-o runs/mlt_Latn/sizes/report" in plan


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_runs_the_chain_offline_and_prints_its_report(tmp_path, small_examples):
    """`make demo`, every step of its chain (25 metric files, the report), with less work per step than the
    demo's own settings: DEMO_DATA with FLORES cut to 40 sentences (conftest.small_examples), 6 adapter
    steps and 4 finetune steps on 32-token inputs. The test asserts the chain and the report's structure,
    not its numbers; `make demo` itself (the Makefile's DEMO_* defaults) is unchanged. Nearly all of the
    time left is the start-up of ~60 lrltool processes (imports of torch, transformers, adapters)."""
    out = tmp_path / "demo"
    env = {**os.environ, "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1", "LRLTOOL_CACHE": str(tmp_path / "cache")}
    args = [
        *("make", "--no-print-directory", "demo", f"DEMO={out}", f"DEMO_DATA={small_examples}"),
        "DEMO_TRAIN_ARGS=--max-steps 6 --batch-size 4 --max-length 32 --eval-steps 3 --lr 1e-3",
        "DEMO_FINETUNE_ARGS=--max-steps 4 --batch-size 8 --max-length 32",
    ]
    result = subprocess.run(
        args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # against a hang: 430-470 s alone, over 900 s beside two other jobs
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.rstrip().endswith(
        f"{out}/ron_Latn/report/report.md (plots in {out}/ron_Latn/report/plots/)"
    )
    report = (out / "ron_Latn" / "report" / "report.md").read_text()
    assert "> **Note.** make demo: a tiny random-weight XLM-R" in report
    for title in (
        "## Pseudo-perplexity",
        "## Topic classification",
        "## Sentiment analysis",
        "## Named entity",
    ):
        assert title in report
    assert "fusion/glotcc+conceptnet" in report and "tiny-llama prompt-0shot" in report
    metrics = sorted(p.name for p in (out / "ron_Latn" / "metrics").iterdir())
    assert len(metrics) == 5 + 3 * 6 + 2  # mlm (base + 4 adapters); 3 tasks x 6 variants; 2 prompt rows
    assert "Traceback" not in result.stderr


# --- the structure of the package (docs/design.md "Layout") ---------------------------------------

# The layers of docs/design.md: a module imports only from lower layers (or its own package's modules).
LAYERS = {
    "lrltool.startup": -1,  # only the standard library; ui uses it
    "lrltool": 0,
    "lrltool.errors": 0,
    "lrltool.ui": 0,
    "lrltool.streams": 1,
    "lrltool.languages": 1,
    "lrltool.devices": 1,
    "lrltool.runs": 2,
    "lrltool.sources": 2,
    "lrltool.tasks": 3,
    "lrltool.records": 4,
    "lrltool.corpus": 4,
    "lrltool.models": 4,
    "lrltool.tiny": 4,
    "lrltool.training": 5,
    "lrltool.lm": 6,
    "lrltool.downstream": 6,
    "lrltool.report": 7,
    "lrltool.cli": 8,
    "lrltool.__main__": 9,
}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the lrltool modules it imports, function-local imports included."""
    import ast

    package = ROOT / "lrltool"
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def _layer(module: str) -> tuple[int, str]:
    """(layer, the package or module that carries it) of a module."""
    best = max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len)
    return LAYERS[best], best


def test_the_import_graph_has_no_cycle_and_no_upward_import():
    graph = _import_graph()
    upward = []
    for module, targets in graph.items():
        layer, home = _layer(module)
        for target in targets:
            target_layer, target_home = _layer(target)
            # a package's __init__ may re-export its own modules; siblings may import each other (no cycle)
            same_package = home == target_home and home != "lrltool"
            if target_layer >= layer and not same_package:
                upward.append(f"{module} -> {target}")
    assert not upward, upward
    # No cycle (a package's __init__ importing its own modules is not one).
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges.get(module, ()):
            if state.get(target) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, module, target])}")
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_pipeline_task_sources_are_the_task_registry():
    import re

    from lrltool.tasks import TASKS, TRAINABLE_TASKS

    text = (ROOT / "pipeline.mk").read_text()
    table = dict(re.findall(r"^source_(\w+) := (\w+)$", text, flags=re.M))
    assert table == {name: TASKS[name].source for name in TRAINABLE_TASKS}


def _outside_markers() -> set[str]:
    """What would point outside the repository: the folders beside this checkout, by absolute path and as
    ``../<name>/``, and the checkout's own absolute path (read from the file system, so this file names
    none of them)."""
    markers = {f"{ROOT}/"}
    for sibling in ROOT.parent.iterdir():
        if sibling.is_dir() and sibling != ROOT and not sibling.name.startswith("."):
            markers |= {f"{sibling}/", f"../{sibling.name}/"}
    return markers


def test_no_tracked_file_names_a_path_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    outside = []
    markers = _outside_markers()
    for name in files.split():
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".mk", ".toml", ".txt", ".tsv", ".json") and name != "Makefile":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for marker in markers:
            if marker in text:
                outside.append(f"{name}: {marker}")
    assert not outside, outside
