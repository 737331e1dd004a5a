"""`make LANG=X all` for languages outside the paper: the steps whose data exist; the rest said and noted.

Dry runs (`make -n`) of the real Makefile with LRLTOOL pointing at this checkout's lrltool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.paths import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture(scope="module")
def lrltool_bin(tmp_path_factory):
    script = tmp_path_factory.mktemp("bin") / "lrltool"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m lrltool "$@"\n')
    script.chmod(0o755)
    return script


def _plan(lrltool_bin, *args: str) -> str:
    env = {**os.environ, "LANG": "C.UTF-8"}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", f"LRLTOOL={lrltool_bin}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_faroese_plans_everything_but_sentiment(lrltool_bin):
    plan = _plan(lrltool_bin, "LANG=fo", "all")
    assert "lrltool pipeline, skipped for fao_Latn: sentiment has no fao_Latn: no sa task.\n" in plan
    assert (
        f"{lrltool_bin} fetch flores --lang fao_Latn  --edition flores200"
        " -o runs/fao_Latn/data/flores.jsonl.zst" in plan
    )  # PRESET=paper (the default): FLORES-200 as the paper loaded it, facebook/flores
    assert f"{lrltool_bin} fetch sib200 --lang fao_Latn  -o runs/fao_Latn/data/tc" in plan
    assert f"{lrltool_bin} fetch wikiann --lang fao_Latn  -o runs/fao_Latn/data/ner" in plan
    assert "fetch sentiment" not in plan and "--task sa" not in plan
    assert plan.count(f"{lrltool_bin} train-adapter") == 8
    # PRESET=paper: tc 10 variants (baseline, 8 adapters, full); ner the same + the 2 fusions the seed ran
    assert plan.count(f"{lrltool_bin} finetune") == 10 + 12
    assert (
        '--note "Skipped for fao_Latn (the sources lack its data): sentiment has no fao_Latn: no sa task."'
        in (plan)
    )


def test_breton_has_no_flores_or_sib200(lrltool_bin):
    plan = _plan(lrltool_bin, "LANG=Breton", "all")
    skipped = (
        "FLORES-200 has no bre_Latn: no pseudo-perplexity. sib200 has no bre_Latn: no tc task."
        " sentiment has no bre_Latn: no sa task."
    )
    assert f"lrltool pipeline, skipped for bre_Latn: {skipped}\n" in plan
    assert "fetch flores" not in plan and "eval --task mlm" not in plan and "fetch sib200" not in plan
    assert f"{lrltool_bin} fetch glotcc --lang bre_Latn" in plan
    assert f"{lrltool_bin} fetch conceptnet --lang bre_Latn" in plan
    assert plan.count(f"{lrltool_bin} finetune --task ner") == 12  # 10 variants + fusion seq_bn, seq_bn_inv
    assert (
        f'--note "Skipped for bre_Latn (the sources lack its data): {skipped}" -o runs/bre_Latn/report'
        in plan
    )


def test_quechua_and_a_decoder_get_perplexity(lrltool_bin):
    plan = _plan(lrltool_bin, "LANG=quy", "all", "MODEL=meta-llama/Llama-3.2-1B", "FULL=no", "TASKS=tc")
    assert "skipped for quy_Latn" not in plan  # TASKS=tc: nothing asked for is missing
    assert (
        f"{lrltool_bin} eval --task clm --model meta-llama/Llama-3.2-1B --adapter"
        " runs/quy_Latn/adapters/seq_bn-conceptnet runs/quy_Latn/data/flores.jsonl.zst"
    ) in plan
    assert "--task mlm" not in plan and "runs/quy_Latn/metrics/clm-base.jsonl" in plan


def test_sweep_resolves_each_language(lrltool_bin):
    plan = _plan(lrltool_bin, "LANGS=ron bre", "sweep", "TASKS=ner", "METHODS=seq_bn", "FULL=no")
    assert "runs/ron_Latn/metrics/mlm-seq_bn-glotcc.jsonl" in plan
    assert "runs/bre_Latn/metrics/ner-seq_bn-glotcc.jsonl" in plan
    assert "runs/bre_Latn/metrics/mlm" not in plan


def test_report_marks_pretraining_size_unknown_outside_the_papers_table(cli, tmp_path):
    import orjson

    records = [
        {
            "metric": "macro_f1",
            "value": v,
            "lang": lang,
            "model": "xlm-roberta-base",
            "method": "base",
            "task": "tc",
            "task_method": "adapter",
            "n": 204,
        }
        for lang, v in (("fao_Latn", 0.5), ("ron_Latn", 0.8))
    ]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    result = cli(["report", path, "-o", tmp_path / "r", "--note", "Skipped for fao_Latn: no sa task."])
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    assert "| Faroese (fao_Latn) | ? | 50.00 |" in text
    assert "| Romanian (ron_Latn) | 83.29 | 80.00 |" in text
    assert "Skipped for fao_Latn: no sa task." in text
