"""``eval --task tc|sa|ner --run DIR``: the scores of finetune runs on a test split, as metric records.

The metrics are the task's (:data:`lrltool.tasks.TASKS`, computed by :mod:`lrltool.downstream.metrics`):
macro-F1 and accuracy for tc and sa, seqeval precision, recall and F1 for ner. A folder of seed-N runs gives
one record per seed and metric, plus a ``mean`` record per metric (``details.sd`` the sample standard
deviation, ``details.seeds``). :func:`evaluate_task_run` returns the records; the caller writes them
(``lrltool.evaluate`` with :func:`lrltool.records.write_metric_records`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrltool import ui
from lrltool.devices import resolve_device
from lrltool.downstream.data import encode_examples, find_split, read_task_data, split_name
from lrltool.downstream.metrics import predict, prediction_records, score
from lrltool.downstream.model import FinetuneRun, find_runs, load_finetuned
from lrltool.errors import RunError, UsageError
from lrltool.languages import resolve_language
from lrltool.records import MetricRecord, mean_and_sd
from lrltool.streams import write_records
from lrltool.tasks import TRAINABLE_TASKS, TaskConfig, get_task


def evaluate_task_run(
    *,
    task: str,
    run: str | Path,
    data: str | Path | None = None,
    predictions: str | Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
    lang: str | None = None,
    skip_bad_lines: bool = False,
) -> list[MetricRecord]:
    """Metric records of a finetune run (or of each seed-N run in it, plus their means).

    Reads the run's training.json and weights (with its language adapters and base model) and the test
    split of its data (or ``data``: a file, or a folder holding test.jsonl(.zst)). Writes ``predictions``
    (one record per example, atomically) if given; the metric records are returned, not written.
    ``lang`` labels the records with that language (a run trained without --lang or language adapter
    knows none); by default the run's language. Refuses (one-line errors): a folder that is no finished
    finetune run, a run trained for another task, labels the run never saw, an empty file.
    """
    spec = get_task(task, among=TRAINABLE_TASKS)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be positive, not {batch_size}")
    code = resolve_language(lang).code if lang is not None else None
    found, several = _finished_runs(spec, run)
    torch_device = resolve_device(device)
    results = [
        _evaluate_one(
            spec,
            item,
            data,
            batch_size=batch_size,
            device=torch_device,
            skip_bad_lines=skip_bad_lines,
            seed=item.info.get("seed") if several else None,
            with_predictions=predictions is not None,
        )
        for item in found
    ]
    records = [record for result in results for record in result.records]
    if several:
        records += _mean_records(spec, results, run)
    if predictions is not None:
        with write_records(predictions) as writer:
            writer.write_all(row for result in results for row in result.predictions)
    if code is not None:
        records = [record.replace(lang=code) for record in records]
    return records


def _finished_runs(spec: TaskConfig, run: str | Path) -> tuple[list[FinetuneRun], bool]:
    """The finished run(s) at ``run`` (several: seed-N runs of one setup), all trained for ``spec``."""
    found, several = find_runs(run)
    for item in found:
        if item.info.get("task") != spec.name:
            raise RunError(
                f"the run was trained for the task {item.info.get('task')}, not {spec.name}",
                hint=f"use --task {item.info.get('task')}",
                path=str(item.path),
            )
    if several:
        _check_same_setup(found)
    return found, several


def _check_same_setup(found: Sequence[FinetuneRun]) -> None:
    keys = ("task", "model", "task_method", "lang_method", "lang_source", "labels")
    first = found[0].info
    for item in found[1:]:
        for key in keys:
            if item.info.get(key) != first.get(key):
                raise RunError(
                    f"the seed runs differ in {key} ({first.get(key)} vs {item.info.get(key)})",
                    hint="evaluate each run folder on its own",
                    path=str(item.path),
                )


@dataclass
class _RunResult:
    """What evaluating one run gave: its records, its metric values, its prediction rows."""

    run: FinetuneRun
    records: list[MetricRecord]
    values: dict[str, float]
    predictions: list[dict[str, Any]]


def _evaluate_one(
    spec: TaskConfig,
    item: FinetuneRun,
    data: str | Path | None,
    *,
    batch_size: int,
    device: Any,
    skip_bad_lines: bool,
    seed: int | None,
    with_predictions: bool,
) -> _RunResult:
    """Read the test split, rebuild the run's model, predict and score."""
    info = item.info
    labels = list(info["labels"])
    path = _test_file(item, data)
    test = read_task_data(
        path,
        spec,
        labels,
        unseen_hint=f"the run was trained on the labels {', '.join(labels)} and has never seen this one",
        skip_bad_lines=skip_bad_lines,
    )
    model = load_finetuned(info, item.path, device=device)
    subwords = bool(info["settings"].get("label_all_subwords"))
    encoded = encode_examples(
        test.examples,
        model.tokenizer,
        spec,
        max_length=int(info.get("max_length") or info["settings"]["max_length"]),
        label_all_subwords=subwords,
    )
    predicted = predict(model, encoded, batch_size=batch_size, device=device)
    scores = score(
        spec, labels, test.examples, encoded, predicted, subwords=subwords, tokenizer=model.tokenizer
    )
    rows = (
        prediction_records(
            spec,
            labels,
            test.examples,
            encoded,
            predicted,
            subwords=subwords,
            tokenizer=model.tokenizer,
            seed=seed,
        )
        if with_predictions
        else []
    )
    details = {
        **scores["details"],
        "run": str(item.path),
        "data": str(path),
        "data_hash": test.hash,
        "labels": labels,
    }
    split = split_name(path)
    records = [
        _record(info, spec, metric, scores[metric], split, len(test), details) for metric in spec.metrics
    ]
    if not ui.quiet():
        summary = ", ".join(f"{m} {scores[m]:.4f}" for m in spec.metrics)
        ui.info(f"eval {spec.name}: {item.path} ({split}, {len(test):,} examples): {summary}")
    return _RunResult(item, records, {m: scores[m] for m in spec.metrics}, rows)


def _test_file(run: FinetuneRun, data: str | Path | None) -> Path:
    if data is not None:
        path = Path(data)
        if path.is_dir():
            found = find_split(path, "test")
            if found is None:
                raise RunError(
                    "no test.jsonl(.zst) in the --data folder",
                    hint="name the file to evaluate",
                    path=str(path),
                )
            return found
        return path
    test = (run.info.get("data") or {}).get("test")
    if not test or not Path(test).is_file():
        raise RunError(
            "the run's data folder has no test split" + (f" ({test} is gone)" if test else ""),
            hint="give the evaluation file with --data",
            path=str(run.path),
        )
    return Path(test)


def _mean_records(spec: TaskConfig, results: Sequence[_RunResult], run: str | Path) -> list[MetricRecord]:
    """One ``mean`` record per metric over the seed runs (details: sd, seeds, values)."""
    first = results[0].records[0]
    seeds = [result.run.info.get("seed") for result in results]
    means = []
    for metric in spec.metrics:
        values = [result.values[metric] for result in results]
        mean, sd = mean_and_sd(values)
        record = _record(
            results[0].run.info,
            spec,
            metric,
            mean,
            first.split,
            first.n,
            {"sd": sd, "seeds": seeds, "values": values, "run": str(Path(run))},
        )
        means.append(record.replace(seed=None, aggregate="mean"))
    return means


def _record(
    info: dict[str, Any],
    spec: TaskConfig,
    metric: str,
    value: float,
    split: str | None,
    n: int,
    details: dict[str, Any],
) -> MetricRecord:
    settings = dict(info.get("settings") or {})
    settings.update(
        max_length=info.get("max_length"), steps=info.get("steps"), best_step=info.get("best_step")
    )
    return MetricRecord(
        metric=metric,
        value=value,
        lang=info.get("lang"),
        model=info["model"],
        task=spec.name,
        method=info.get("lang_method") or "base",
        adapter=info.get("lang_adapter"),
        source=info.get("lang_source"),
        task_method=info.get("task_method"),
        split=split,
        n=n,
        seed=info.get("seed"),
        details=details,
        settings=settings,
    )
