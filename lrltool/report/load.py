"""Records in: the metric files and run folders named on the command line, read and checked.

- :func:`expand_inputs` splits the arguments into metric files (globs expanded, ``-`` kept) and run folders;
- :func:`load_metric_records` reads the metric records (:class:`lrltool.records.MetricRecord`, checked by
  :meth:`~lrltool.records.MetricRecord.from_json`) into :class:`Entry` objects;
- :func:`read_loss_curve` reads a run folder's ``log.jsonl`` into a :class:`LossCurve`;
- :func:`read_training_json` is the one place that reads a run folder's ``training.json``.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lrltool.errors import InputError, UsageError
from lrltool.records import MetricRecord
from lrltool.report.names import canonical_lang
from lrltool.runs import RunInfo
from lrltool.streams import Stats, read_records, require

Record = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One metric record: the JSON object as read (``record``), the checked :class:`MetricRecord` it holds
    (``metric_record``), where it came from (``file:line``), and its language's canonical code."""

    record: Record
    where: str
    lang: str | None
    metric_record: MetricRecord

    @property
    def value(self) -> float:
        return self.metric_record.value

    @property
    def seed(self) -> int | None:
        return self.metric_record.seed

    @property
    def is_aggregate(self) -> bool:
        return self.metric_record.aggregate == "mean"


def entry_of(record: Record, where: str) -> Entry:
    """``record`` checked; raises :class:`InputError` (without a location; the reader adds file:line) for a
    record that report cannot place or whose value cannot be right (:meth:`MetricRecord.from_json`).

    The language is tabulated under its canonical code (FLORES style); a language outside the registry
    under its own code.
    """
    metric_record = MetricRecord.from_json(record)
    lang = None if metric_record.lang is None else canonical_lang(metric_record.lang)
    return Entry(record, where, lang, metric_record)


def expand_inputs(paths: Sequence[str], runs: Sequence[str] = ()) -> tuple[list[str], list[Path]]:
    """Split the arguments into metric files (globs expanded, ``-`` kept) and run folders.

    A folder among the metric arguments is taken as a run folder when it holds ``log.jsonl`` or
    ``training.json`` (so ``report metrics/*.jsonl runs/*/`` works); any other folder is refused.
    """
    files: list[str] = []
    run_dirs: list[Path] = []
    for arg in paths:
        for path in _expand(str(arg)):
            p = Path(path)
            if path != "-" and p.is_dir():
                if _is_run_dir(p):
                    run_dirs.append(p)
                    continue
                raise InputError(
                    "is a folder, not a metrics file",
                    hint="give the metric files in it (e.g. DIR/*.jsonl), or a run folder with log.jsonl",
                    path=path,
                )
            files.append(path)
    for arg in runs:
        for path in _expand(str(arg)):
            p = Path(path)
            if not (p / "log.jsonl").is_file():
                raise InputError(
                    "not a run folder (no log.jsonl)",
                    hint="--runs takes the folders that train-adapter or finetune wrote",
                    path=path,
                )
            run_dirs.append(p)
    if files.count("-") > 1:
        raise UsageError("stdin ('-') is named more than once", hint="name it once")
    return files, run_dirs


def _expand(path: str) -> list[str]:
    if path == "-" or not glob.has_magic(path):
        return [path]
    matches = sorted(glob.glob(path, recursive=True))
    if not matches:
        raise InputError(
            f"no file matches '{path}'", hint="check the pattern (quote it to let report expand it)"
        )
    return matches


def _is_run_dir(path: Path) -> bool:
    return (path / "log.jsonl").is_file() or (path / "training.json").is_file()


def load_metric_records(
    paths: Sequence[str], *, skip_bad_lines: bool = False, stats: Stats | None = None
) -> tuple[list[Entry], list[tuple[str, int]]]:
    """Read and check the metric records of ``paths``; also return (file, records) per input."""
    entries: list[Entry] = []
    counts: list[tuple[str, int]] = []
    for path in paths:
        reader = read_records(path, skip_bad_lines=skip_bad_lines, stats=stats)
        count = 0
        for record in reader:
            try:
                entry = entry_of(record, f"{reader.name}:{reader.line}")
            except InputError as err:
                reader.reject(err)
                continue
            entries.append(entry)
            count += 1
        counts.append((reader.name, count))
    return entries, counts


# ---------------------------------------------------------------------------------------------------
# Run folders: training.json and loss curves


def read_training_json(path: Path) -> dict[str, Any]:
    """The ``training.json`` at ``path`` as :class:`lrltool.runs.RunInfo` reads it (RunError if damaged)."""
    return RunInfo.load(path.parent).to_json()


@cache
def training_data(adapter: str) -> tuple[dict[str, Any], str | None]:
    """The ``data`` object of the training.json beside an adapter (run folder or its adapter/ folder), and
    that file's path; ``({}, None)`` when there is none. Cached: call ``training_data.cache_clear()`` to
    read the runs again."""
    path = Path(adapter)
    for folder in (path, path.parent):
        training = folder / "training.json"
        if training.is_file():
            data = read_training_json(training).get("data")
            return (data if isinstance(data, dict) else {}), str(training)
    return {}, None


@dataclass
class LossCurve:
    """A run folder's training and validation loss by step (from ``log.jsonl``) and its ``training.json``."""

    path: Path
    name: str
    train: list[tuple[int, float]]
    evals: list[tuple[int, float]]
    info: dict[str, Any]

    @property
    def title(self) -> str:
        parts = [str(self.info[k]) for k in ("method", "source", "lang") if self.info.get(k)]
        return self.name + (f" ({', '.join(parts)})" if parts else "")


def _number(record: Record, key: str) -> float:
    value = record[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputError(
            f"log field '{key}' is {type(value).__name__}, expected a number",
            hint="check the run's log.jsonl",
        )
    return float(value)


def read_loss_curve(folder: Path) -> LossCurve:
    """A run folder's ``log.jsonl`` (training and validation loss by step) and ``training.json``."""
    train: list[tuple[int, float]] = []
    evals: list[tuple[int, float]] = []
    log = folder / "log.jsonl"
    if log.is_file():
        reader = read_records(log)
        for record in reader:
            try:
                if "loss" not in record and "eval_loss" not in record:
                    continue  # other lines (a final summary) carry no curve point
                step = require(record, "step", int, what="log line")
                if "loss" in record:
                    train.append((step, _number(record, "loss")))
                if "eval_loss" in record:
                    evals.append((step, _number(record, "eval_loss")))
            except InputError as err:
                reader.reject(err)
    info: dict[str, Any] = {}
    training = folder / "training.json"
    if training.is_file():
        info = read_training_json(training)
    return LossCurve(folder, folder.name, train, evals, info)


def runs_of_records(entries: Iterable[Entry]) -> list[Path]:
    """Run folders named by the records' ``adapter`` field that hold a ``log.jsonl``."""
    found = []
    for adapter in sorted({e.metric_record.adapter for e in entries if e.metric_record.adapter}):
        path = Path(adapter)
        for candidate in (path, path.parent):
            if (candidate / "log.jsonl").is_file():
                found.append(candidate)
                break
    return found
