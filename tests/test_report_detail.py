"""report's close reading of task cells: per-seed values, bootstrap intervals from the records alone
(checked against scikit-learn / seqeval on the resampled test sets), accuracy, one-class warnings, and
the training cost of each run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import accuracy_score, f1_score

from lrltool.downstream.metrics import entity_counts
from lrltool.records import MetricRecord
from lrltool.report import build_report, render_markdown
from lrltool.report.detail import RESAMPLES, _weights, interval, metric_samples
from lrltool.report.load import entry_of
from lrltool.runs import RunInfo

LABELS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]


def _resampled(weights_row, items):
    return [item for item, times in zip(items, weights_row, strict=True) for _ in range(int(times))]


def test_resample_weights_draw_n_examples_each_and_are_fixed():
    weights = _weights(40)
    assert weights.shape == (RESAMPLES, 40) and (weights.sum(axis=1) == 40).all()
    assert weights is _weights(40)  # the same draws for every cell of a test set of that size


def test_classification_samples_equal_scikit_learn_on_each_resample():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 7, 60).tolist()
    pred = [g if rng.random() < 0.5 else int(rng.integers(0, 7)) for g in gold]
    weights = _weights(60)
    f1 = metric_samples("macro_f1", {"gold": gold, "predicted": pred}, weights)
    acc = metric_samples("accuracy", {"gold": gold, "predicted": pred}, weights)
    for b in range(0, RESAMPLES, 50):
        g, p = _resampled(weights[b], gold), _resampled(weights[b], pred)
        assert f1[b] == pytest.approx(f1_score(g, p, average="macro", zero_division=0), abs=1e-12)
        assert acc[b] == pytest.approx(accuracy_score(g, p), abs=1e-12)


def test_entity_counts_give_seqeval_f1_on_the_whole_set_and_on_each_resample():
    rng = np.random.default_rng(2)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    golds = [[tags[i] for i in rng.integers(0, len(tags), rng.integers(1, 9))] for _ in range(30)]
    preds = [[t if rng.random() < 0.6 else tags[rng.integers(0, len(tags))] for t in g] for g in golds]
    counts = entity_counts(golds, preds)
    correct, predicted, gold = np.asarray(counts).sum(axis=0)
    assert 2 * correct / (predicted + gold) == pytest.approx(seqeval_f1(golds, preds), abs=1e-12)
    weights = _weights(30)
    f1 = metric_samples("f1", {"entity_counts": counts}, weights)
    for b in range(0, RESAMPLES, 100):
        expected = seqeval_f1(_resampled(weights[b], golds), _resampled(weights[b], preds), zero_division=0)
        assert f1[b] == pytest.approx(expected, abs=1e-12)


def _record(method, seed, gold, pred, *, run=None, data_hash="sib200-test"):
    details = {"gold": gold, "predicted": pred, "labels": LABELS, "data_hash": data_hash}
    if run:
        details["run"] = run
    return MetricRecord(
        metric="macro_f1",
        value=f1_score(
            [LABELS[g] for g in gold], [LABELS[p] for p in pred], average="macro", zero_division=0
        ),
        lang="ron_Latn",
        model="xlm-roberta-base",
        task="tc",
        method=method,
        source=None if method == "base" else "glotcc",
        adapter=None if method == "base" else "runs/seq_bn-glotcc",
        task_method="adapter",
        split="test",
        n=len(gold),
        seed=seed,
        details=details,
    ).to_json()


def _predictions(rng, gold, right):
    return [g if rng.random() < right else int(rng.integers(0, 7)) for g in gold]


def test_report_shows_seeds_intervals_paired_differences_accuracy_and_one_class_runs(tmp_path):
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 7, 50).tolist()
    preds = {
        ("base", 1): _predictions(rng, gold, 0.4),
        ("base", 2): [3] * 50,  # one class for everything
        ("seq_bn", 1): _predictions(rng, gold, 0.7),
        ("seq_bn", 2): _predictions(rng, gold, 0.6),
    }
    records = [_record(m, s, gold, p) for (m, s), p in preds.items()]
    entries = [entry_of(r, f"results.jsonl:{i}") for i, r in enumerate(records, 1)]
    report = build_report(entries)
    details = {d.column: d for d in report.details}
    assert set(details) == {"base", "seq_bn/glotcc"}
    adapted, base = details["seq_bn/glotcc"], details["base"]
    assert adapted.seeds == [(1, records[2]["value"]), (2, records[3]["value"])]
    # the interval of the mean over seeds and of the paired difference: the seeds' resampled macro-F1
    # (metric_samples, checked against scikit-learn above) averaged per resample, then percentiles
    weights = _weights(50)

    def plain(method):
        runs = [
            metric_samples("macro_f1", {"gold": gold, "predicted": preds[(method, s)]}, weights)
            for s in (1, 2)
        ]
        return (runs[0] + runs[1]) / 2

    own = plain("seq_bn")
    diff = own - plain("base")
    assert adapted.ci == pytest.approx(tuple(np.percentile(own, [2.5, 97.5])), abs=1e-12)
    assert adapted.delta_ci == pytest.approx(tuple(np.percentile(diff, [2.5, 97.5])), abs=1e-12)
    assert adapted.ci[0] < adapted.mean < adapted.ci[1]
    assert base.delta_ci is None and base.delta is None
    correct = [np.mean(np.array(preds[("seq_bn", s)]) == np.array(gold)) for s in (1, 2)]
    assert adapted.accuracy == pytest.approx(np.mean(correct), abs=1e-12)
    assert interval(np.arange(1001) / 1000) == pytest.approx((0.025, 0.975))
    (warning,) = [w for w in report.warnings if "predicts" in w]
    assert "ron_Latn, base, seed 2 predicts 'sports' for all 50 test examples" in warning
    text = render_markdown(report)
    assert "## Seeds, confidence intervals and accuracy" in text
    row = next(line for line in text.splitlines() if line.startswith("| Topic") and "seq_bn/glotcc" in line)
    assert f"1: {100 * records[2]['value']:.2f}, 2: {100 * records[3]['value']:.2f}" in row
    assert f"[{100 * adapted.ci[0]:.2f}, {100 * adapted.ci[1]:.2f}]" in row
    assert f"{100 * adapted.accuracy:.2f}" in row


def test_other_test_sets_give_no_paired_difference(tmp_path):
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 7, 30).tolist()
    records = [
        _record("base", 1, gold, _predictions(rng, gold, 0.4), data_hash="a"),
        _record("seq_bn", 1, gold, _predictions(rng, gold, 0.6), data_hash="b"),
    ]
    report = build_report([entry_of(r, "x") for r in records])
    adapted = next(d for d in report.details if d.column == "seq_bn/glotcc")
    assert adapted.ci is not None and adapted.delta is not None and adapted.delta_ci is None


def test_training_cost_of_each_run_from_training_json(tmp_path):
    run = tmp_path / "tc-seq_bn" / "seed-1"
    run.mkdir(parents=True)
    info = RunInfo(kind="finetune", trainable_parameters=1234567, steps=300, seconds=125.4, device="cuda:0")
    info.finished = True
    (run / "training.json").write_text(json.dumps(info.to_json()))
    gold = [0, 1, 2, 3]
    report = build_report([entry_of(_record("seq_bn", 1, gold, [0, 1, 2, 2], run=str(run)), "x")])
    (cost,) = report.costs
    assert (cost.trainable_parameters, cost.steps, cost.seconds) == (1234567, 300, 125.4)
    text = render_markdown(report)
    from lrltool.report.render import _md

    assert f"| {_md(run)} | finetune | 1,234,567 | 300 | 2:05 min | cuda:0 |" in text


def test_table_plot_shows_the_change_with_labels_on_fitted_axes(tmp_path):
    from lrltool.report.plots import draw_table

    pppl = [
        MetricRecord(metric="pppl_mean", value=v, lang="ron_Latn", model="xlm-roberta-base", task="mlm",
                     method=m, source=s, adapter=a, n=12).to_json()
        for v, m, s, a in ((1155.28, "base", None, None), (1108.36, "seq_bn_inv", "glotcc", "runs/a"))
    ]  # fmt: skip
    report = build_report([entry_of(r, "x") for r in pppl])
    (table,) = report.tables
    fig = draw_table(table, tmp_path / "pppl.png")
    values, changes = fig.axes[0], fig.axes[1]
    assert values.get_yscale() == "linear"  # 1155 vs 1108: no log axis from 1 that hides the change
    low, high = values.get_ylim()
    assert 1090 < low < 1108.36 and 1155.28 < high < 1180
    assert {t.get_text() for t in values.texts} == {"1155.28", "1108.36"}
    (bar,) = changes.patches
    assert bar.get_height() == pytest.approx(100 * 46.92 / 1155.28, abs=1e-9)  # % PPPL reduction
    assert [t.get_text() for t in changes.texts] == ["-46.92\n(-4.1%)"]
    assert (tmp_path / "pppl.png").stat().st_size > 10_000
