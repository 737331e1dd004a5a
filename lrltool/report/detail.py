"""What a researcher reads beside each table cell: the per-seed values, a 95% bootstrap confidence interval
for the mean over seeds and for its difference against the baseline, accuracy next to F1, a warning for a
classifier that predicts one class for everything, and each run's cost (trainable parameters, training
time) from its training.json.

The intervals are computed offline from the metric records alone: ``eval`` writes what a bootstrap over
test examples needs into each record's details (classification: ``gold`` and ``predicted`` label indices
per example; NER: ``entity_counts``, [correct, predicted, gold] entities per sentence). Each of
``RESAMPLES`` resamples draws the test examples with replacement (the same draws for every cell of the same
test set, so a difference against the baseline is paired), recomputes the metric for each seed, and
averages over seeds; the interval is the 2.5th to 97.5th percentile (lm-evaluation-harness reports a
bootstrap standard error the same way). It measures the uncertainty from the test sample; the seeds'
spread is the table's sd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lrltool.report.load import Entry
from lrltool.report.tables import Column, Table
from lrltool.runs import RunInfo

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0  # the resamples are fixed: a report made twice shows the same intervals


@cache
def _weights(n: int) -> Any:
    """(RESAMPLES, n): how often each test example is drawn in each resample (the same for every cell)."""
    import numpy as np

    rng = np.random.default_rng([SEED, n])
    drawn = rng.integers(0, n, size=(RESAMPLES, n))
    weights = np.zeros((RESAMPLES, n))
    np.add.at(weights, (np.arange(RESAMPLES)[:, None], drawn), 1.0)
    return weights


def metric_samples(metric: str, details: dict[str, Any], weights: Any) -> Any | None:
    """The metric on each resample (``weights``: (resamples, n) draw counts), or None when the record
    carries no per-example data (records of lrltool before 0.2, prompting, perplexity)."""
    import numpy as np

    if "gold" in details and "predicted" in details:
        gold, pred = np.asarray(details["gold"]), np.asarray(details["predicted"])
        if metric == "accuracy":
            return weights @ (gold == pred) / len(gold)
        if metric != "macro_f1":
            return None
        f1_sum = np.zeros(len(weights))
        present = np.zeros(len(weights))
        for label in np.union1d(gold, pred):
            tp = weights @ ((gold == label) & (pred == label))
            both = weights @ (gold == label) + weights @ (pred == label)
            f1_sum += np.divide(2 * tp, both, out=np.zeros_like(tp), where=both > 0)
            present += both > 0
        return f1_sum / np.maximum(present, 1)  # scikit-learn's macro over the labels that occur
    if "entity_counts" in details and metric in ("f1", "precision", "recall"):
        correct, predicted, gold = (weights @ np.asarray(details["entity_counts"], dtype=float)).T
        num, den = {"f1": (2 * correct, predicted + gold), "precision": (correct, predicted)}.get(
            metric, (correct, gold)
        )
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return None


def _n_of(details: dict[str, Any]) -> int | None:
    rows = details.get("gold", details.get("entity_counts"))
    return len(rows) if isinstance(rows, list) and rows else None


def _seed_samples(entries: Sequence[Entry], metric: str) -> tuple[Any, str] | None:
    """The mean over ``entries`` (one per seed) of ``metric`` on each resample, and the test set's hash;
    None when some seed lacks per-example data or the seeds were tested on different data."""
    runs = [e for e in entries if not e.is_aggregate]
    hashes = {e.metric_record.details.get("data_hash") for e in runs}
    sizes = {_n_of(e.metric_record.details) for e in runs}
    if not runs or len(hashes) != 1 or len(sizes) != 1 or None in sizes:
        return None
    weights = _weights(sizes.pop())
    samples = [metric_samples(metric, e.metric_record.details, weights) for e in runs]
    if any(s is None for s in samples):
        return None
    return sum(samples) / len(samples), str(hashes.pop())


def _point(entries: Sequence[Entry], metric: str) -> float:
    """The mean over seeds of ``metric`` on the whole test set (each example drawn once)."""
    import numpy as np

    runs = [e for e in entries if not e.is_aggregate]
    n = _n_of(runs[0].metric_record.details)
    values = [metric_samples(metric, e.metric_record.details, np.ones((1, n)))[0] for e in runs]
    return float(sum(values) / len(values))


def interval(samples: Any) -> tuple[float, float]:
    import numpy as np

    low, high = np.percentile(samples, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return float(low), float(high)


@dataclass
class CellDetail:
    """One task table cell, read closely."""

    table: str  # the table's title
    lang: str
    column: str
    seeds: list[tuple[Any, float]]  # (seed, value) per run
    mean: float
    ci: tuple[float, float] | None  # 95% bootstrap interval of the mean over seeds
    delta: float | None  # mean - the baseline's mean
    delta_ci: tuple[float, float] | None
    accuracy: float | None  # classification: mean accuracy over seeds, next to F1
    accuracy_ci: tuple[float, float] | None


def cell_details(tables: Sequence[Table], warnings: list[str]) -> list[CellDetail]:
    """A :class:`CellDetail` for each cell of each task table (adds one-class warnings to ``warnings``)."""
    found = []
    for table in tables:
        if table.kind != "task":
            continue
        for lang in table.langs:
            base = table.cells.get((lang, table.baseline))
            base_samples = _seed_samples(base.entries, table.metric) if base is not None else None
            for column in table.columns:
                cell = table.cells.get((lang, column))
                if cell is None:
                    continue
                warnings.extend(one_class_warnings(table, lang, column, cell.entries))
                found.append(_detail(table, lang, column, cell, base_samples))
    return found


def _detail(table: Table, lang: str, column: Column, cell: Any, base_samples: Any) -> CellDetail:
    runs = sorted((e for e in cell.entries if not e.is_aggregate), key=lambda e: str(e.seed))
    own = _seed_samples(cell.entries, table.metric)
    accuracy = _seed_samples(cell.entries, "accuracy")
    delta_ci = None
    is_base = column == table.baseline
    if own is not None and base_samples is not None and not is_base and own[1] == base_samples[1]:
        delta_ci = interval(own[0] - base_samples[0])
    return CellDetail(
        table=table.title,
        lang=lang,
        column=column.label,
        seeds=[(e.seed, e.value) for e in runs],
        mean=cell.mean,
        ci=interval(own[0]) if own is not None else None,
        delta=cell.delta,
        delta_ci=delta_ci,
        accuracy=_point(cell.entries, "accuracy") if accuracy is not None else None,
        accuracy_ci=interval(accuracy[0]) if accuracy is not None else None,
    )


def one_class_warnings(table: Table, lang: str, column: Column, entries: Sequence[Entry]) -> list[str]:
    """A warning for each run whose classifier predicted one label for every test example."""
    out = []
    for e in entries:
        details = e.metric_record.details
        predicted, labels = details.get("predicted"), details.get("labels")
        if e.is_aggregate or not isinstance(predicted, list) or len(predicted) < 2:
            continue
        if len(set(predicted)) == 1:
            label = labels[predicted[0]] if isinstance(labels, list) else predicted[0]
            seed = f", seed {e.seed}" if e.seed is not None else ""
            out.append(
                f"{table.title}: {lang}, {column.label}{seed} predicts '{label}' for all {len(predicted)}"
                f" test examples: the classifier learned no decision (train longer, or check the data)"
            )
    return out


@dataclass
class RunCost:
    """What one training run cost, from its training.json."""

    path: str
    kind: str
    trainable_parameters: int
    steps: int
    seconds: float
    device: str | None


def run_costs(entries: Sequence[Entry], run_dirs: Sequence[Path] = ()) -> list[RunCost]:
    """The training runs behind the records (their finetune runs and language adapters) and ``run_dirs``."""
    paths: list[str] = [str(p) for p in run_dirs]
    for e in entries:
        record = e.metric_record
        paths += [p for p in (record.details.get("run"), record.adapter) if isinstance(p, str)]
    costs, seen = [], set()
    for path in paths:
        for part in path.split("+"):  # fusion: two adapters
            for folder in _run_folders(Path(part)):
                info = RunInfo.find(folder)
                key = str(folder.resolve())
                if info is None or key in seen or not info.finished:
                    continue
                seen.add(key)
                costs.append(
                    RunCost(
                        str(folder),
                        info.kind,
                        info.trainable_parameters,
                        info.steps,
                        info.seconds,
                        info.device,
                    )
                )
    return sorted(costs, key=lambda c: c.path)


def _run_folders(path: Path) -> list[Path]:
    """A run folder, or the seed-N run folders of a multi-seed finetune output."""
    if (path / "training.json").is_file() or path.name in ("adapter", "model"):
        return [path.parent if path.name in ("adapter", "model") else path]
    if path.is_dir():
        return sorted(p for p in path.glob("seed-*") if (p / "training.json").is_file())
    return []
