"""``lrltool report``: tables and plots from metric records (what ``eval`` writes; :mod:`lrltool.records`).

Reads metric records from files, globs and stdin; run folders (``log.jsonl``, ``training.json``) for loss
curves, named with ``--runs`` or found through the records' ``adapter`` field. Builds:

- a pseudo-perplexity table per model: language x (base, each method/source, full), one PPPL metric
  (``pppl_mean`` by default, the paper's number), each cell with its change against the base model;
- an F1 table per model and task: language x method, mean ± sd over seeds (an ``aggregate: "mean"`` record
  is used when present, else the per-seed records are averaged; sd is the sample sd, n-1), each cell with
  its change against the paper's baseline (method ``base``, task_method ``adapter``: a task adapter without
  a language adapter). Prompting rows (task_method ``prompt-*``, another model) are shown beside the
  adapters of every table of their task;
- averages over languages, split into languages seen and unseen in the model's pre-training data
  (``languages.tsv``), and the correlation of each method's gain with that data size (Spearman, Pearson);
- where one method was trained on several amounts of adaptation data (one adapter folder each, sizes from
  its ``training.json`` ``data.bytes`` or ``data.tokens``): value and gain against that size;
- with ``--compare-paper``, the paper's published numbers that DESIGN.md quotes (``data/paper_numbers.json``).

Writes (with an output folder) ``report.md``, ``results.csv`` and ``plots/*.png``, all together or not at all:
they are built in a temporary folder and renamed into place, ``report.md`` last.

Refuses: a line that is not a metric record (one error naming file:line), an F1-type value outside [0, 1]
(records hold fractions), a non-positive perplexity, a glob that matches nothing, a folder that is neither
a metrics file nor a run folder, and an input with no metric records at all (unless run folders are given).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import os
import re
import shutil
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lrltool import __version__
from lrltool.errors import InputError, LanguageError, UsageError
from lrltool.languages import Language, model_family, resolve_language
from lrltool.records import METHODS, MetricRecord
from lrltool.streams import Stats, read_records, require

Record = dict[str, Any]

PPPL_METRICS = {
    "pppl": "corpus pseudo-perplexity (micro)",
    "pppl_mean": "mean of per-sentence pseudo-perplexity (the paper's number)",
    "pppl_word": "word-normalised pseudo-perplexity",
}
#: Metrics whose values are fractions in [0, 1] (shown in percent).
FRACTION_METRICS = ("macro_f1", "f1", "accuracy", "precision", "recall")
#: The metric tabulated for each downstream task (a task not listed uses macro_f1).
TASK_METRICS = {"tc": "macro_f1", "sa": "macro_f1", "ner": "f1"}
TASK_NAMES = {
    "mlm": "Pseudo-perplexity",
    "tc": "Topic classification (SIB-200)",
    "sa": "Sentiment analysis",
    "ner": "Named entity recognition (WikiANN)",
}
SOURCE_ORDER = ("glotcc", "conceptnet", "glotcc+conceptnet")
TASK_METHOD_ORDER = ("adapter", "full")
TASK_METHOD_LABELS = {"full": "full FT"}  # "full" alone reads like the language-adaptation method
#: Settings that change the number for the same test data: records in one table must agree on them.
TABLE_WIDE_SETTINGS = ("variant", "paper_compat", "max_length", "label_all_subwords", "split")
#: Settings that identify the test data of one language: records of one language must agree on them.
PER_LANGUAGE_SETTINGS = ("data_hash", "data.hash", "eval_data_hash", "test_data_hash", "n")
PPPL_BASELINE = "base model without an adapter"
TASK_BASELINE = "task adapter without a language adapter (the paper's baseline)"


# ---------------------------------------------------------------------------------------------------
# Records in


@dataclass(frozen=True)
class Entry:
    """One metric record, where it came from, and its language's canonical code."""

    record: Record
    where: str
    lang: str | None

    @property
    def value(self) -> float:
        return float(self.record["value"])

    @property
    def seed(self) -> int | None:
        return self.record.get("seed")

    @property
    def is_aggregate(self) -> bool:
        return self.record.get("aggregate") == "mean"


def _optional(record: Record, key: str, kind: type | tuple[type, ...]) -> Any:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(
            f"metric record field '{key}' is {type(value).__name__}, expected {names} or null",
            hint=f"write '{key}' as a JSON {names} or null",
        )
    return value


def validate_metric_record(record: Record) -> str | None:
    """Check one metric record; return its language's canonical code (FLORES style) or None.

    Raises :class:`InputError` (without a location; the reader adds file:line) for a record that
    report cannot place or whose value cannot be right.
    """
    MetricRecord.from_json(record)
    for key in ("metric", "model", "task", "method"):
        require(record, key, str, what="metric record")
    require(record, "n", int, what="metric record")
    if isinstance(record["n"], bool):
        raise InputError("metric record field 'n' is bool, expected int", hint="write 'n' as a JSON int")
    for key in ("lang", "source", "task_method", "adapter", "split", "aggregate"):
        _optional(record, key, str)
    _optional(record, "seed", int)
    for key in ("details", "settings"):
        _optional(record, key, dict)
    value = float(record["value"])
    metric = record["metric"]
    if not math.isfinite(value):
        raise InputError(f"'{metric}' value is not a finite number", hint="check the metrics file")
    if record.get("aggregate") not in (None, "mean"):
        raise InputError(
            f"unknown aggregate '{record['aggregate']}'",
            hint="aggregate is null for one run or 'mean' for the mean over seeds",
        )
    if record.get("aggregate") == "mean":
        details = record.get("details") or {}
        sd = details.get("sd")
        seeds = details.get("seeds")
        if sd is not None and (not isinstance(sd, (int, float)) or isinstance(sd, bool) or sd < 0):
            raise InputError(
                "aggregate record 'details.sd' is not a non-negative number", hint="check the metrics file"
            )
        if seeds is not None and not (isinstance(seeds, list) and all(isinstance(x, int) for x in seeds)):
            raise InputError(
                "aggregate record 'details.seeds' is not a list of seeds", hint="check the metrics file"
            )
    if metric in FRACTION_METRICS and not 0.0 <= value <= 1.0:
        raise InputError(
            f"'{metric}' value {value:g} is outside [0, 1]",
            hint="metric records hold scores as fractions (0.79), not percentages (79)",
        )
    if metric in PPPL_METRICS and value <= 0.0:
        raise InputError(f"'{metric}' value {value:g} is not positive", hint="a perplexity is at least 1")
    lang = record.get("lang")
    if lang is None:
        return None
    try:
        return resolve_language(lang).flores
    except LanguageError:
        return lang  # a language outside the registry: tabulated under its own code


def expand_inputs(paths: Sequence[str], runs: Sequence[str] = ()) -> tuple[list[str], list[Path]]:
    """Split the arguments into metric files (globs expanded, ``-`` kept) and run folders.

    A folder among the metric arguments is taken as a run folder when it holds ``log.jsonl`` or
    ``training.json`` (so ``report metrics/*.jsonl runs/*/`` works); any other folder is refused.
    """
    files: list[str] = []
    run_dirs: list[Path] = []

    def expand(path: str) -> list[str]:
        if path == "-" or not glob.has_magic(path):
            return [path]
        matches = sorted(glob.glob(path, recursive=True))
        if not matches:
            raise InputError(
                f"no file matches '{path}'", hint="check the pattern (quote it to let report expand it)"
            )
        return matches

    for arg in paths:
        for path in expand(str(arg)):
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
        for path in expand(str(arg)):
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
                lang = validate_metric_record(record)
            except InputError as err:
                reader.reject(err)
                continue
            entries.append(Entry(record, f"{reader.name}:{reader.line}", lang))
            count += 1
        counts.append((reader.name, count))
    return entries, counts


# ---------------------------------------------------------------------------------------------------
# Languages and models


@cache
def _language(code: str) -> Language | None:
    try:
        return resolve_language(code)
    except LanguageError:
        return None


def language_group(lang: str, model: str) -> str:
    """``seen``/``unseen`` in the model's pre-training data, or ``unknown`` (model or language not known)."""
    language = _language(lang)
    if model_family(model) is None or language is None:
        return "unknown"
    return "unseen" if language.pretraining_gb(model) is None else "seen"


def pretraining_gb(lang: str, model: str) -> float | None:
    language = _language(lang)
    return None if language is None else language.pretraining_gb(model)


def language_name(lang: str) -> str:
    language = _language(lang)
    return f"{language.name} ({lang})" if language else lang


def _language_rank(lang: str) -> tuple[int, str]:
    # The registry's order: the paper's, by pre-training data size; languages outside it at the end.
    from lrltool.languages import registry

    order = {language.flores: i for i, language in enumerate(registry())}
    return (order.get(lang, len(order)), lang)


def short_model(model: str) -> str:
    return Path(model.rstrip("/")).name or model


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "x"


# ---------------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class Column:
    """What one table column holds: how the language was adapted and how the task was learned."""

    method: str
    source: str | None = None
    task_method: str | None = None
    model: str | None = None  # set when the column comes from another model (prompting an LLM)
    tag: str | None = None  # the adapter folder, when one cell holds several adaptations

    @property
    def label(self) -> str:
        if self.method == "prompt" and self.task_method:
            text = self.task_method + (f"/{self.source}" if self.source else "")
        else:
            text = self.method + (f"/{self.source}" if self.source else "")
            if self.task_method and self.task_method != "adapter":
                text += f" [{TASK_METHOD_LABELS.get(self.task_method, self.task_method)}]"
        if self.tag:
            text += f" @{self.tag}"
        if self.model:
            text = f"{short_model(self.model)} {text}"
        return text

    def sort_key(self) -> tuple[Any, ...]:
        method = METHODS.index(self.method) if self.method in METHODS else len(METHODS)
        if self.source is None:
            source = -1
        else:
            source = SOURCE_ORDER.index(self.source) if self.source in SOURCE_ORDER else len(SOURCE_ORDER)
        if self.task_method is None:
            task_method = -1
        elif self.task_method in TASK_METHOD_ORDER:
            task_method = TASK_METHOD_ORDER.index(self.task_method)
        else:
            task_method = len(TASK_METHOD_ORDER)
        return (
            self.model is not None,
            self.model or "",
            method,
            self.method,
            source,
            self.source or "",
            task_method,
            self.task_method or "",
            self.tag or "",
        )


@dataclass
class Cell:
    """One (language, column) cell: the mean over seeds, its sd, and the change against the baseline."""

    mean: float
    sd: float | None
    seeds: tuple[Any, ...]
    entries: list[Entry]
    from_aggregate: bool = False
    baseline: float | None = None
    delta: float | None = None

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)


@dataclass
class Average:
    """A column's mean over a group of languages; ``delta`` is the mean of the per-language changes."""

    mean: float | None
    delta: float | None
    n_langs: int
    of: int


@dataclass(frozen=True)
class PaperNumber:
    model: str
    lang: str | None
    task: str
    metric: str
    method: str | None
    source: str | None
    task_method: str | None
    value: float
    where: str

    @property
    def label(self) -> str:
        method = self.method or "adapted"
        text = method + (f"/{self.source}" if self.source else "")
        if self.task_method and self.task_method != "adapter":
            text += f" [{self.task_method}]"
        return text


AVERAGE_ROWS = {"seen": "average, seen", "unseen": "average, unseen", "all": "average, all"}


@dataclass
class Table:
    """One table: rows are languages (then averages), columns are methods."""

    kind: str  # "pppl" or "task"
    model: str
    task: str
    metric: str
    baseline: Column
    columns: list[Column]
    langs: list[str]
    cells: dict[tuple[str, Column], Cell]
    entries: list[Entry]
    groups: dict[str, list[str]] = field(default_factory=dict)
    averages: dict[tuple[str, Column], Average] = field(default_factory=dict)
    paper: dict[str, list[PaperNumber]] = field(default_factory=dict)
    slug: str = ""

    @property
    def scale(self) -> float:
        return 100.0 if self.metric in FRACTION_METRICS else 1.0

    @property
    def unit(self) -> str:
        return "fraction" if self.metric in FRACTION_METRICS else "value"

    @property
    def lower_is_better(self) -> bool:
        return self.kind == "pppl"

    @property
    def title(self) -> str:
        if self.kind == "pppl":
            return f"Pseudo-perplexity ({self.metric}), {self.model}"
        return f"{TASK_NAMES.get(self.task, self.task)}: {self.metric} (%), {self.model}"

    @property
    def baseline_text(self) -> str:
        return PPPL_BASELINE if self.kind == "pppl" else TASK_BASELINE

    def row_keys(self) -> list[str]:
        return [*self.langs, *(f"avg:{g}" for g in self.groups)]


def _is_prompt(record: Record) -> bool:
    return record["method"] == "prompt" or str(record.get("task_method") or "").startswith("prompt")


def task_metric(task: str) -> str:
    return TASK_METRICS.get(task, "macro_f1")


def _adapter_tag(adapter: str | None) -> str:
    if not adapter:
        return "-"
    path = Path(adapter.rstrip("/"))
    if path.name in ("adapter", "model") and path.parent.name:
        path = path.parent
    return path.name or adapter


def build_tables(
    entries: Sequence[Entry], *, pppl_metric: str, warnings: list[str], notes: list[str]
) -> list[Table]:
    """Group the records into tables (one per model and task) and compute cells, deltas and averages."""
    own: dict[tuple[str, str, str, str], list[Entry]] = defaultdict(list)
    prompts: dict[str, list[Entry]] = defaultdict(list)
    untabulated: Counter[str] = Counter()
    for entry in entries:
        record = entry.record
        task, metric = record["task"], record["metric"]
        if entry.lang is None:
            untabulated["no lang"] += 1
        elif task == "mlm":
            if metric == pppl_metric:
                own[("pppl", record["model"], task, metric)].append(entry)
            else:
                untabulated[metric] += 1
        elif metric != task_metric(task):
            untabulated[metric] += 1
        elif _is_prompt(record):
            prompts[task].append(entry)
        else:
            own[("task", record["model"], task, metric)].append(entry)
    if untabulated:
        parts = ", ".join(f"{name} {n}" for name, n in sorted(untabulated.items()))
        notes.append(
            f"{sum(untabulated.values())} records are not tabulated ({parts}); tables use {pppl_metric}"
            f" for pseudo-perplexity and {', '.join(f'{t}: {m}' for t, m in TASK_METRICS.items())}."
        )
    # Prompting rows stand beside the adapters of every table of their task (the paper's Table 2); a
    # task with prompting rows only gets a table of its own, named after the first prompted model.
    for task, task_prompts in prompts.items():
        if not any(key[0] == "task" and key[2] == task for key in own):
            first = min(e.record["model"] for e in task_prompts)
            own[("task", first, task, task_metric(task))] = []
    tables = []
    for (kind, model, task, metric), table_entries in own.items():
        extra = prompts.get(task, []) if kind == "task" else []
        tables.append(_build_table(kind, model, task, metric, table_entries, extra, warnings, notes))
    tables.sort(
        key=lambda t: (
            t.kind != "pppl",
            t.model,
            list(TASK_NAMES).index(t.task) if t.task in TASK_NAMES else 99,
            t.task,
        )
    )
    used: set[str] = set()
    for table in tables:
        slug = _slug(f"{short_model(table.model)}" + ("" if table.kind == "pppl" else f"_{table.task}"))
        while slug in used:
            slug += "_"
        used.add(slug)
        table.slug = slug
    return tables


def _column_of(entry: Entry, table_model: str, kind: str) -> Column:
    record = entry.record
    return Column(
        method=record["method"],
        source=record.get("source"),
        task_method=None if kind == "pppl" else record.get("task_method"),
        model=None if record["model"] == table_model else record["model"],
    )


def _build_table(
    kind: str,
    model: str,
    task: str,
    metric: str,
    own_entries: list[Entry],
    extra_entries: list[Entry],
    warnings: list[str],
    notes: list[str],
) -> Table:
    baseline = Column("base") if kind == "pppl" else Column("base", task_method="adapter")
    all_entries = [*own_entries, *extra_entries]
    table = Table(kind, model, task, metric, baseline, [], [], {}, all_entries)
    columns = {id(e): _column_of(e, model, kind) for e in all_entries}

    # One cell and seed holding records of several adapter folders: several adaptations of the same
    # kind (e.g. adapters trained on different data sizes). Keep them apart as columns tagged by folder.
    adapters: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for e in all_entries:
        adapters[(e.lang, columns[id(e)], e.seed, e.is_aggregate)].add(e.record.get("adapter") or "")
    split = {key[1] for key, found in adapters.items() if len(found) > 1}
    for e in all_entries:
        column = columns[id(e)]
        if column in split:
            columns[id(e)] = Column(
                column.method,
                column.source,
                column.task_method,
                column.model,
                _adapter_tag(e.record.get("adapter")),
            )
    for column in sorted(split, key=Column.sort_key):
        notes.append(
            f"{table.title}: '{column.label}' holds records of several adapter folders; shown as one column"
            " per folder (@folder)."
        )

    # Records for the same language, column and seed: a rerun. The one read last wins.
    by_run: dict[tuple[Any, ...], list[Entry]] = defaultdict(list)
    for e in all_entries:
        by_run[(e.lang, columns[id(e)], e.seed, e.is_aggregate)].append(e)
    cell_entries: dict[tuple[str, Column], list[Entry]] = defaultdict(list)
    for (lang, column, seed, is_aggregate), found in by_run.items():
        if len(found) > 1:
            what = "aggregate" if is_aggregate else ("run" if seed is None else f"seed {seed}")
            warnings.append(
                f"{table.title}: {len(found)} records for {lang}, {column.label}, {what}"
                f" ({', '.join(e.where for e in found)}); the last one read is used"
            )
        cell_entries[(lang, column)].append(found[-1])

    for (lang, column), found in cell_entries.items():
        table.cells[(lang, column)] = _summarize(found, f"{table.title}: {lang}, {column.label}", warnings)
    # From here on a table's records are those its cells use (a superseded rerun is left out).
    table.entries = [e for cell in table.cells.values() for e in cell.entries]
    table.langs = sorted({lang for lang, _ in table.cells}, key=_language_rank)
    table.columns = sorted({column for _, column in table.cells}, key=Column.sort_key)
    if baseline not in table.columns:
        notes.append(f"{table.title}: no baseline records ({table.baseline_text}); changes are not shown.")
    for (lang, column), cell in table.cells.items():
        base = table.cells.get((lang, baseline))
        if base is not None and column != baseline:
            cell.baseline = base.mean
            cell.delta = cell.mean - base.mean
    _add_averages(table)
    return table


def _summarize(found: list[Entry], where: str, warnings: list[str]) -> Cell:
    """Mean ± sd over seeds: from an aggregate record when there is one, else from the per-seed records."""
    singles = sorted((e for e in found if not e.is_aggregate), key=lambda e: (e.seed is None, e.seed or 0))
    aggregates = [e for e in found if e.is_aggregate]
    if aggregates:
        agg = aggregates[-1]
        details = agg.record.get("details") or {}
        sd = details.get("sd")
        seeds = details.get("seeds")
        if not isinstance(seeds, list):
            n_seeds = details.get("n_seeds")
            seeds = [e.seed for e in singles] or [None] * (
                n_seeds if isinstance(n_seeds, int) and n_seeds > 0 else 1
            )
        if singles:
            mean = _mean([e.value for e in singles])
            if {e.seed for e in singles} == set(seeds) and not math.isclose(
                mean, agg.value, rel_tol=1e-9, abs_tol=1e-12
            ):
                warnings.append(
                    f"{where}: the aggregate record ({agg.where}) says {agg.value:.6g} but its per-seed"
                    f" records average {mean:.6g}; the aggregate is used"
                )
        return Cell(
            mean=agg.value,
            sd=None if sd is None else float(sd),
            seeds=tuple(seeds),
            entries=found,
            from_aggregate=True,
        )
    values = [e.value for e in singles]
    return Cell(mean=_mean(values), sd=_sd(values), seeds=tuple(e.seed for e in singles), entries=found)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _sd(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _add_averages(table: Table) -> None:
    """Average rows: languages seen and unseen in pre-training (when both occur), and all languages."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for lang in table.langs:
        by_group[language_group(lang, table.model)].append(lang)
    table.groups = {}
    if by_group.get("seen") and by_group.get("unseen"):
        add_average_row(table, "seen", by_group["seen"])
        add_average_row(table, "unseen", by_group["unseen"])
    if len(table.langs) > 1:
        add_average_row(table, "all", list(table.langs))


def add_average_row(table: Table, group: str, langs: list[str]) -> None:
    """Each column's mean over ``langs`` (those it has), and the mean of their changes."""
    table.groups[group] = langs
    for column in table.columns:
        cells = [table.cells[(lang, column)] for lang in langs if (lang, column) in table.cells]
        deltas = [c.delta for c in cells if c.delta is not None]
        table.averages[(group, column)] = Average(
            mean=_mean([c.mean for c in cells]) if cells else None,
            delta=_mean(deltas) if deltas else None,
            n_langs=len(cells),
            of=len(langs),
        )


# ---------------------------------------------------------------------------------------------------
# Settings: what is behind each table, and differences that make numbers incomparable


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _settings_of(entry: Entry) -> dict[str, Any]:
    flat = flatten_settings(entry.record.get("settings") or {})
    flat["split"] = entry.record.get("split")
    flat["n"] = entry.record.get("n")
    return flat


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 48 else text[:45] + "..."


UNSET = "<unset>"


def settings_warnings(table: Table) -> list[str]:
    """Differences in settings that change the number, among records that one table compares."""
    warnings = []
    own = [e for e in table.entries if e.record["model"] == table.model]
    for key in TABLE_WIDE_SETTINGS:
        values: dict[str, list[Entry]] = defaultdict(list)
        for e in own:
            values[_show(_settings_of(e).get(key, UNSET))].append(e)
        if len(values) > 1:
            warnings.append(
                f"{table.title}: records differ in '{key}' ({_describe(values)});"
                " their numbers are not comparable"
            )
    for lang in table.langs:
        of_lang = [e for e in table.entries if e.lang == lang]
        for key in PER_LANGUAGE_SETTINGS:
            values = defaultdict(list)
            for e in of_lang:
                settings = _settings_of(e)
                if key in settings:
                    values[_show(settings[key])].append(e)
            if len(values) > 1:
                warnings.append(
                    f"{table.title}, {lang}: records differ in '{key}' ({_describe(values)}); they were not"
                    " measured on the same test data"
                )
    return warnings


def _describe(values: dict[str, list[Entry]]) -> str:
    parts = []
    for value, found in values.items():
        labels = sorted({_column_label_of(e) for e in found})
        shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
        parts.append(f"{value} in {len(found)} [{shown}]")
    return "; ".join(parts)


def _column_label_of(entry: Entry) -> str:
    record = entry.record
    return Column(record["method"], record.get("source"), record.get("task_method")).label


def settings_summary(entries: Sequence[Entry]) -> dict[str, Counter[str]]:
    """Every setting (flattened) and the record version, with how many records had each value."""
    summary: dict[str, Counter[str]] = defaultdict(Counter)
    for e in entries:
        summary["lrltool version"][_show(e.record.get("version", UNSET))] += 1
        for key, value in _settings_of(e).items():
            summary[key][_show(value)] += 1
    return dict(sorted(summary.items(), key=lambda kv: (kv[0] != "lrltool version", kv[0])))


# ---------------------------------------------------------------------------------------------------
# The paper's numbers


def paper_numbers() -> list[PaperNumber]:
    """The published numbers shipped in ``data/paper_numbers.json`` (those DESIGN.md quotes)."""
    text = resources.files("lrltool.data").joinpath("paper_numbers.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return [
        PaperNumber(
            model=n["model"],
            lang=n["lang"],
            task=n["task"],
            metric=n["metric"],
            method=n["method"],
            source=n["source"],
            task_method=n["task_method"],
            value=float(n["value"]),
            where=n["where"],
        )
        for n in data["numbers"]
    ]


def paper_citation() -> str:
    text = resources.files("lrltool.data").joinpath("paper_numbers.json").read_text(encoding="utf-8")
    return str(json.loads(text)["citation"])


def _paper_matches(number: PaperNumber, table: Table) -> bool:
    return (
        number.model in ("*", model_family(table.model))
        and number.task == table.task
        and number.metric == table.metric
    )


@dataclass
class PaperComparison:
    table: Table
    number: PaperNumber
    ours: float | None  # in the paper's unit (percent for F1)
    ours_label: str
    ours_langs: int | None  # for averages: over how many of our languages

    @property
    def difference(self) -> float | None:
        return None if self.ours is None else self.ours - self.number.value


def attach_paper_numbers(tables: Sequence[Table], numbers: Sequence[PaperNumber]) -> list[PaperComparison]:
    """Put each paper number in its table's paper column and pair it with our matching value."""
    comparisons = []
    for table in tables:
        for number in numbers:
            if not _paper_matches(number, table):
                continue
            row = "avg:all" if number.lang is None else number.lang
            if number.lang is not None and number.lang not in table.langs:
                continue
            if row == "avg:all" and "all" not in table.groups:
                if not table.langs:
                    continue
                add_average_row(table, "all", list(table.langs))
            table.paper.setdefault(row, []).append(number)
            comparisons.append(_compare(table, number, row))
    return comparisons


def _value_at(table: Table, row: str, column: Column) -> tuple[float | None, int | None]:
    if row.startswith("avg:"):
        average = table.averages.get((row[4:], column))
        return (None, None) if average is None or average.mean is None else (average.mean, average.n_langs)
    cell = table.cells.get((row, column))
    return (None, None) if cell is None else (cell.mean, None)


def _compare(table: Table, number: PaperNumber, row: str) -> PaperComparison:
    own = [c for c in table.columns if c.model is None and c.tag is None]
    if number.method is not None:
        candidates = [
            c
            for c in own
            if c.method == number.method
            and c.source == number.source
            and (table.kind == "pppl" or (c.task_method or "adapter") == (number.task_method or "adapter"))
        ]
        label = "same method"
    else:
        # The paper's adapter is not stated: compare with our best adapter of that source.
        candidates = [
            c
            for c in own
            if c.method not in ("base", "full", "prompt")
            and (number.source is None or c.source == number.source)
            and (table.kind == "pppl" or (c.task_method or "adapter") == (number.task_method or "adapter"))
        ]
        label = "our best"
    found = [
        (value, n, c) for c in candidates for value, n in [_value_at(table, row, c)] if value is not None
    ]
    if not found:
        return PaperComparison(table, number, None, "no matching records", None)
    pick = min if table.lower_is_better else max
    value, n_langs, column = pick(found, key=lambda item: item[0])
    return PaperComparison(table, number, value * table.scale, f"{label}: {column.label}", n_langs)


# ---------------------------------------------------------------------------------------------------
# Gain against pre-training data size


@dataclass
class Correlation:
    """How one method's gain over the baseline goes with the language's pre-training data size."""

    table: Table
    column: Column
    points: list[tuple[str, float | None, float]]  # (lang, GB or None if unseen, gain)
    spearman: float | None
    n_spearman: int
    pearson: float | None
    n_pearson: int

    @property
    def gain_unit(self) -> str:
        return gain_unit(self.table)


def gain_unit(table: Table) -> str:
    return (
        "PPPL reduction vs the base model (%)"
        if table.kind == "pppl"
        else "F1 gain over the baseline (points)"
    )


def gain(table: Table, cell: Cell) -> float | None:
    """Positive = better than the baseline: % PPPL reduction, or F1 points."""
    if cell.baseline is None or cell.delta is None:
        return None
    if table.kind == "pppl":
        return -100.0 * cell.delta / cell.baseline
    return cell.delta * table.scale


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = _mean(xs), _mean(ys)
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share the mean rank
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    return pearson(_ranks(xs), _ranks(ys)) if len(xs) >= 3 else None


def correlations(tables: Sequence[Table]) -> list[Correlation]:
    """Per table and adapted column: Spearman over all languages of known coverage (unseen = 0 GB) and
    Pearson against log10(GB) over the languages seen in pre-training (n given for each)."""
    found = []
    for table in tables:
        if model_family(table.model) is None:
            continue
        for column in table.columns:
            if column == table.baseline or column.model is not None:
                continue
            points = []
            for lang in table.langs:
                cell = table.cells.get((lang, column))
                value = None if cell is None else gain(table, cell)
                if value is None or language_group(lang, table.model) == "unknown":
                    continue
                points.append((lang, pretraining_gb(lang, table.model), value))
            if not points:
                continue
            seen = [(gb, g) for _, gb, g in points if gb is not None and gb > 0]
            found.append(
                Correlation(
                    table,
                    column,
                    points,
                    spearman([gb or 0.0 for _, gb, _ in points], [g for _, _, g in points]),
                    len(points),
                    pearson([math.log10(gb) for gb, _ in seen], [g for _, g in seen]),
                    len(seen),
                )
            )
    return found


# ---------------------------------------------------------------------------------------------------
# Gain against adaptation data size (the same method trained on different amounts of text)


@dataclass
class SizeSeries:
    """One method in one language at several adaptation data sizes (from each adapter's training.json)."""

    table: Table
    column: Column  # without the adapter-folder tag
    lang: str
    unit: str  # "bytes" or "tokens"
    points: list[tuple[float, float, float | None]]  # (size, value, gain), by size


@dataclass
class SizeCorrelation:
    table: Table
    column: Column
    unit: str
    n: int
    spearman: float | None
    pearson: float | None  # against log10(size)


@cache
def _training_data(adapter: str) -> tuple[dict[str, Any], str | None]:
    """The ``data`` object of the training.json beside an adapter (run folder or its adapter/ folder)."""
    path = Path(adapter)
    for folder in (path, path.parent):
        training = folder / "training.json"
        if training.is_file():
            try:
                info = json.loads(training.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputError(
                    f"not valid JSON ({exc})", hint="check the run's training.json", path=str(training)
                ) from None
            data = info.get("data") if isinstance(info, dict) else None
            return (data if isinstance(data, dict) else {}), str(training)
    return {}, None


def _size_of(cell: Cell, unit: str) -> float | None:
    for entry in cell.entries:
        adapter = entry.record.get("adapter")
        if adapter:
            value = _training_data(adapter)[0].get(unit)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return float(value)
    return None


def size_series(tables: Sequence[Table]) -> list[SizeSeries]:
    """Methods measured at two or more adaptation data sizes; sizes in bytes when every adapter's
    training.json gives ``data.bytes``, else in tokens (``data.tokens``)."""
    found = []
    for table in tables:
        cells = [
            (lang, column, cell)
            for (lang, column), cell in table.cells.items()
            if column.model is None and column.method not in ("base", "prompt")
        ]
        if not cells:
            continue
        sized = [c for _, _, c in cells if _size_of(c, "bytes") or _size_of(c, "tokens")]
        unit = "bytes" if sized and all(_size_of(c, "bytes") for c in sized) else "tokens"
        grouped: dict[tuple[Column, str], list[tuple[float, float, float | None]]] = defaultdict(list)
        for lang, column, cell in cells:
            size = _size_of(cell, unit)
            if size is not None:
                plain = Column(column.method, column.source, column.task_method)
                grouped[(plain, lang)].append((size, cell.mean, gain(table, cell)))
        for (column, lang), points in sorted(grouped.items(), key=lambda kv: (kv[0][0].sort_key(), kv[0][1])):
            if len({size for size, _, _ in points}) > 1:
                found.append(SizeSeries(table, column, lang, unit, sorted(points)))
    return found


def size_correlations(series: Sequence[SizeSeries]) -> list[SizeCorrelation]:
    """Per table and method, pooled over languages: gain against adaptation data size."""
    pooled: dict[tuple[int, Column], list[tuple[float, float]]] = defaultdict(list)
    first: dict[tuple[int, Column], SizeSeries] = {}
    for s in series:
        key = (id(s.table), s.column)
        first.setdefault(key, s)
        pooled[key] += [(size, g) for size, _, g in s.points if g is not None]
    found = []
    for key, points in pooled.items():
        s = first[key]
        sizes, gains = [p[0] for p in points], [p[1] for p in points]
        found.append(
            SizeCorrelation(
                s.table,
                s.column,
                s.unit,
                len(points),
                spearman(sizes, gains),
                pearson([math.log10(x) for x in sizes], gains),
            )
        )
    return found


# ---------------------------------------------------------------------------------------------------
# Training runs: loss curves


@dataclass
class RunLog:
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


def read_run_log(folder: Path) -> RunLog:
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
        try:
            info = json.loads(training.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                f"not valid JSON ({exc})", hint="check the run's training.json", path=str(training)
            ) from None
        if not isinstance(info, dict):
            raise InputError(
                "expected a JSON object", hint="check the run's training.json", path=str(training)
            )
    return RunLog(folder, folder.name, train, evals, info)


def runs_of_records(entries: Iterable[Entry]) -> list[Path]:
    """Run folders named by the records' ``adapter`` field that hold a ``log.jsonl``."""
    found = []
    for adapter in sorted({e.record.get("adapter") for e in entries if e.record.get("adapter")}):
        path = Path(adapter)
        for candidate in (path, path.parent):
            if (candidate / "log.jsonl").is_file():
                found.append(candidate)
                break
    return found


# ---------------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    tables: list[Table]
    correlations: list[Correlation]
    runs: list[RunLog]
    warnings: list[str]
    notes: list[str]
    inputs: list[tuple[str, int]]
    n_records: int
    pppl_metric: str
    compare_paper: bool
    comparisons: list[PaperComparison]
    sizes: list[SizeSeries] = field(default_factory=list)
    size_correlations: list[SizeCorrelation] = field(default_factory=list)
    output_dir: Path | None = None
    plots: dict[str, str] = field(default_factory=dict)  # plot key -> file name under plots/
    preface: str | None = None  # the user's note, shown first (e.g. "a tiny random model: ...")


def _check_pppl_metric(pppl_metric: str) -> None:
    if pppl_metric not in PPPL_METRICS:
        raise UsageError(
            f"unknown pseudo-perplexity metric '{pppl_metric}'", hint=f"use one of {', '.join(PPPL_METRICS)}"
        )


def build_report(
    entries: Sequence[Entry],
    *,
    run_dirs: Sequence[Path] = (),
    inputs: Sequence[tuple[str, int]] = (),
    pppl_metric: str = "pppl_mean",
    compare_paper: bool = False,
) -> Report:
    """Tables, averages, correlations, loss curves and warnings from checked metric records."""
    _check_pppl_metric(pppl_metric)
    warnings: list[str] = []
    notes: list[str] = []
    tables = build_tables(entries, pppl_metric=pppl_metric, warnings=warnings, notes=notes)
    for table in tables:
        warnings.extend(settings_warnings(table))
    comparisons = attach_paper_numbers(tables, paper_numbers()) if compare_paper else []
    dirs: dict[Path, Path] = {}  # resolved -> as named, so each run is read once and shown as given
    for path in [*run_dirs, *runs_of_records(entries)]:
        dirs.setdefault(path.resolve(), path)
    runs = [read_run_log(path) for path in dirs.values()]
    # runs/ron/seq_bn-glotcc and runs/mlt/seq_bn-glotcc: name them by their last two folders.
    clashing = {name for name, n in Counter(run.name for run in runs).items() if n > 1}
    for run in runs:
        if run.name in clashing:
            run.name = f"{run.path.parent.name}-{run.path.name}"
    for run in runs:
        if not run.train and not run.evals:
            notes.append(f"{run.path}: log.jsonl has no loss lines; no loss curve drawn.")
    _training_data.cache_clear()  # a rerun in the same process reads the runs again
    sizes = size_series(tables)
    return Report(
        tables=tables,
        correlations=correlations(tables),
        sizes=sizes,
        size_correlations=size_correlations(sizes),
        runs=[run for run in runs if run.train or run.evals],
        warnings=warnings,
        notes=notes,
        inputs=list(inputs),
        n_records=len(entries),
        pppl_metric=pppl_metric,
        compare_paper=compare_paper,
        comparisons=comparisons,
    )


def report_metrics(
    *,
    inputs: Sequence[str],
    output_dir: Path | None = None,
    runs: Sequence[str] = (),
    compare_paper: bool = False,
    pppl_metric: str = "pppl_mean",
    skip_bad_lines: bool = False,
    stats: Stats | None = None,
    note: str | None = None,
) -> Report:
    """Read metric records (files, globs, ``-``) and run folders, build the report, write it.

    ``note``: a paragraph shown first in report.md and on the terminal (what the numbers are, or are not).

    Writes ``output_dir/report.md``, ``results.csv`` and ``plots/*.png`` together (see :func:`write_report`),
    nothing when ``output_dir`` is None. Refuses input without any metric record unless run folders are given.
    """
    _check_pppl_metric(pppl_metric)
    files, run_dirs = expand_inputs(inputs, runs)
    entries, counts = load_metric_records(files, skip_bad_lines=skip_bad_lines, stats=stats)
    if not entries and not run_dirs:
        names = ", ".join(name for name, _ in counts) or "the input"
        raise InputError(
            f"no metric records in {names}", hint="give report the records that 'lrltool eval' writes"
        )
    report = build_report(
        entries, run_dirs=run_dirs, inputs=counts, pppl_metric=pppl_metric, compare_paper=compare_paper
    )
    report.preface = note
    if output_dir is not None:
        write_report(report, output_dir)
    if stats is not None:
        stats.records_out = len({id(e) for t in report.tables for e in t.entries})
        stats.extra["tables"] = len(report.tables)
        if output_dir is not None:
            stats.extra["plots"] = len(report.plots)
    return report


# ---------------------------------------------------------------------------------------------------
# Text: cells, terminal, markdown, CSV


def _fmt(value: float | None, table: Table) -> str:
    return "" if value is None else f"{value * table.scale:.2f}"


def _fmt_delta(delta: float | None, table: Table) -> str:
    return "" if delta is None else f"{delta * table.scale:+.2f}"


def typical_seeds(table: Table) -> int:
    counts = Counter(cell.n_seeds for cell in table.cells.values())
    return counts.most_common(1)[0][0] if counts else 1


def cell_text(table: Table, row: str, column: Column) -> str:
    """How a cell reads: ``78.93 ± 1.20 (+2.77)``; ``[n=2]`` marks a cell with an unusual number of seeds."""
    if row.startswith("avg:"):
        average = table.averages.get((row[4:], column))
        if average is None or average.mean is None:
            return ""
        text = _fmt(average.mean, table)
        if average.delta is not None and column != table.baseline:
            text += f" ({_fmt_delta(average.delta, table)})"
        if average.n_langs < average.of:
            text += f" [{average.n_langs}/{average.of} langs]"
        return text
    cell = table.cells.get((row, column))
    if cell is None:
        return ""
    text = _fmt(cell.mean, table)
    if cell.sd is not None:
        text += f" ± {_fmt(cell.sd, table)}"
    if cell.delta is not None:
        text += f" ({_fmt_delta(cell.delta, table)})"
    if table.kind == "task" and cell.n_seeds != typical_seeds(table):
        text += f" [n={cell.n_seeds}]"
    return text


def row_label(table: Table, row: str) -> str:
    if row.startswith("avg:"):
        group = row[4:]
        return f"{AVERAGE_ROWS[group]} ({len(table.groups[group])})"
    return language_name(row)


def gb_text(table: Table, row: str) -> str:
    if row.startswith("avg:"):
        return ""
    group = language_group(row, table.model)
    if group == "unknown":
        return "?"
    gb = pretraining_gb(row, table.model)
    return "-" if gb is None else f"{gb:.2f}"


def paper_text(table: Table, row: str) -> str:
    return "; ".join(f"{n.label} {n.value:.2f}" for n in table.paper.get(row, []))


def table_caption(table: Table, report: Report) -> str:
    if table.kind == "pppl":
        what = f"{PPPL_METRICS[table.metric]}; lower is better"
        spread = ""
    else:
        what = f"{table.metric} in percent; higher is better"
        spread = f"; mean ± sd over seeds (sample sd), {typical_seeds(table)} seed(s) unless marked [n=k]"
    return (
        f"{what}{spread}. In brackets: the change against the {table.baseline_text}."
        " GB: the language's data in the model's pre-training (- = not in it, ? = unknown)."
    )


def render_terminal(report: Report, console: Any) -> None:
    """Print every table with rich (to the console given, e.g. stdout)."""
    from rich.table import Table as RichTable
    from rich.text import Text  # plain Text: labels such as "[full FT]" or "[n=2]" are not rich markup

    if report.preface:
        console.print(Text(f"Note. {report.preface}", style="bold"))
    for table in report.tables:
        rich_table = RichTable(
            title=Text(table.title, style="bold"),
            title_justify="left",
            caption=Text(table_caption(table, report)),
            caption_justify="left",
        )
        rich_table.add_column(Text("language"))
        rich_table.add_column(Text("GB"), justify="right")
        for column in table.columns:
            rich_table.add_column(Text(column.label), justify="right")
        if table.paper:
            rich_table.add_column(Text("paper"), justify="right")
        for row in table.row_keys():
            if row == f"avg:{next(iter(table.groups), '')}":
                rich_table.add_section()
            cells = [cell_text(table, row, column) for column in table.columns]
            if table.paper:
                cells.append(paper_text(table, row))
            rich_table.add_row(*(Text(text) for text in (row_label(table, row), gb_text(table, row), *cells)))
        console.print(rich_table)
        console.print()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str]) -> list[str]:
    lines = ["| " + " | ".join(_md(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if a == "right" else ":---" for a in align) + "|")
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: Report) -> str:
    """report.md: tables, plots, correlations, the paper's numbers, notes, and the settings behind it all."""
    lines = ["# lrltool report", ""]
    if report.preface:
        lines += [f"> **Note.** {_md(report.preface)}", ""]
    total = sum(n for _, n in report.inputs)
    lines.append(
        f"Made by lrltool {__version__} from {total} metric records"
        f" ({', '.join(f'`{name}`: {n}' for name, n in report.inputs) or 'no metric files'})."
    )
    lines.append("")
    if report.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {_md(w)}" for w in report.warnings]
        lines.append("")
    for table in report.tables:
        lines += [f"## {table.title}", "", table_caption(table, report), ""]
        header = ["language", "GB", *(c.label for c in table.columns)]
        if table.paper:
            header.append("paper")
        rows = []
        for row in table.row_keys():
            cells = [cell_text(table, row, c) for c in table.columns]
            if table.paper:
                cells.append(paper_text(table, row))
            label = row_label(table, row)
            rows.append([f"**{label}**" if row.startswith("avg:") else label, gb_text(table, row), *cells])
        lines += _md_table(header, rows, ["left", "right", *["right"] * (len(header) - 2)])
        lines.append("")
        if table.paper:
            lines += ["Paper: numbers published in the paper (see 'Comparison with the paper').", ""]
        plot = report.plots.get(f"table:{table.slug}")
        if plot:
            lines += [f"![{_md(table.title)}](plots/{plot})", ""]
    if report.correlations:
        lines += _correlation_section(report)
    if report.sizes:
        lines += _size_section(report)
    if report.runs:
        lines += ["## Training and validation loss", ""]
        for run in report.runs:
            plot = report.plots.get(f"run:{run.path}")
            best = min(run.evals, key=lambda p: p[1]) if run.evals else None
            summary = f"{len(run.train)} training points, {len(run.evals)} validation points"
            if best:
                summary += f"; best validation loss {best[1]:.4f} at step {best[0]}"
            lines += [f"- `{run.path}` ({summary})"]
            if plot:
                lines += ["", f"  ![loss: {_md(run.title)}](plots/{plot})", ""]
        lines.append("")
    if report.compare_paper:
        lines += _paper_section(report)
    if report.notes:
        lines += ["## Notes", ""]
        lines += [f"- {_md(n)}" for n in report.notes]
        lines.append("")
    lines += _settings_section(report)
    return "\n".join(lines).rstrip() + "\n"


def _correlation_section(report: Report) -> list[str]:
    lines = [
        "## Gain over the baseline against pre-training data",
        "",
        "Per method: Spearman's rho over the languages whose coverage is known (languages not in the model's"
        " pre-training data count as 0 GB) and Pearson's r against log10(GB) over the languages in it."
        " Gain: F1 points over the baseline, or % PPPL reduction against the base model.",
        "",
    ]
    rows = []
    for c in report.correlations:
        rows.append(
            [
                short_model(c.table.model),
                c.table.task,
                c.column.label,
                f"{_mean([g for _, _, g in c.points]):+.2f}",
                "" if c.spearman is None else f"{c.spearman:+.3f}",
                str(c.n_spearman),
                "" if c.pearson is None else f"{c.pearson:+.3f}",
                str(c.n_pearson),
            ]
        )
    lines += _md_table(
        ["model", "task", "method", "mean gain", "Spearman rho", "n", "Pearson r (log GB)", "n"],
        rows,
        ["left", "left", "left", "right", "right", "right", "right", "right"],
    )
    lines += ["", "Empty: fewer than 3 languages, or no spread.", ""]
    for key, plot in report.plots.items():
        if key.startswith("gain:"):
            lines += [f"![gain against pre-training data, {_md(key[5:])}](plots/{plot})", ""]
    return lines


def _size_section(report: Report) -> list[str]:
    lines = [
        "## Against adaptation data size",
        "",
        "Methods trained on several amounts of adaptation data (sizes from each adapter's training.json)."
        " Spearman's rho and Pearson's r against log10(size) of the gain over the baseline, pooled over"
        " languages.",
        "",
    ]
    rows = [
        [
            short_model(c.table.model),
            c.table.task,
            c.column.label,
            c.unit,
            "" if c.spearman is None else f"{c.spearman:+.3f}",
            "" if c.pearson is None else f"{c.pearson:+.3f}",
            str(c.n),
        ]
        for c in report.size_correlations
    ]
    lines += _md_table(
        ["model", "task", "method", "size in", "Spearman rho", "Pearson r (log size)", "n"],
        rows,
        ["left", "left", "left", "left", "right", "right", "right"],
    )
    lines.append("")
    for key, plot in report.plots.items():
        if key.startswith("sizes:"):
            lines += [f"![against adaptation data size, {_md(key[6:])}](plots/{plot})", ""]
    return lines


def _paper_section(report: Report) -> list[str]:
    lines = [
        "## Comparison with the paper",
        "",
        f"Source: {paper_citation()} Only the numbers DESIGN.md quotes are shipped"
        " (lrltool/data/paper_numbers.json); 'adapted' marks a number whose adapter architecture is not"
        " stated there, compared with our best adapter of that source. Averages: the paper's over its"
        " languages, ours over the languages in this report.",
        "",
    ]
    if not report.comparisons:
        return [*lines, "No table matches a published number (model family, task, metric, language).", ""]
    rows = []
    for comp in report.comparisons:
        n = comp.number
        lang = "average" if n.lang is None else language_name(n.lang)
        ours = "" if comp.ours is None else f"{comp.ours:.2f}"
        if comp.ours_langs is not None:
            ours += f" (over {comp.ours_langs} lang{'s' if comp.ours_langs != 1 else ''})"
        diff = "" if comp.difference is None else f"{comp.difference:+.2f}"
        rows.append(
            [
                short_model(comp.table.model),
                n.task,
                n.metric,
                lang,
                n.label,
                f"{n.value:.2f}",
                ours,
                comp.ours_label,
                diff,
                n.where,
            ]
        )
    lines += _md_table(
        [
            "model",
            "task",
            "metric",
            "language",
            "paper method",
            "paper",
            "ours",
            "ours from",
            "ours - paper",
            "where",
        ],
        rows,
        ["left", "left", "left", "left", "left", "right", "right", "left", "right", "left"],
    )
    return [*lines, ""]


def _settings_section(report: Report) -> list[str]:
    lines = [
        "## Settings and versions",
        "",
        "The settings recorded with the metric records of each table, with how many records had each value.",
        f"Settings that change the number are checked for agreement: {', '.join(TABLE_WIDE_SETTINGS)} across"
        f" a table; {', '.join(PER_LANGUAGE_SETTINGS)} within a language.",
        "",
    ]
    for table in report.tables:
        lines += [f"### {table.title}", ""]
        for key, values in settings_summary(table.entries).items():
            shown = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
            text = ", ".join(f"`{_md(v)}` ({n})" for v, n in shown[:4])
            if len(shown) > 4:
                text += f", ... ({len(shown)} distinct values)"
            lines.append(f"- {_md(key)}: {text}")
        adapters = sorted({str(e.record.get("adapter")) for e in table.entries if e.record.get("adapter")})
        if adapters:
            shown_adapters = ", ".join(f"`{_md(a)}`" for a in adapters[:6])
            more = f" and {len(adapters) - 6} more" if len(adapters) > 6 else ""
            lines.append(f"- adapters: {shown_adapters}{more}")
        lines.append("")
    for run in report.runs:
        versions = run.info.get("versions")
        if isinstance(versions, dict) and versions:
            text = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
            lines.append(f"- run `{run.path}`: {_md(text)}")
    return lines


CSV_FIELDS = (
    "table",
    "model",
    "task",
    "metric",
    "row",
    "lang",
    "language",
    "group",
    "pretraining_gb",
    "column",
    "method",
    "source",
    "task_method",
    "column_model",
    "adapter_tag",
    "unit",
    "value",
    "sd",
    "n_seeds",
    "seeds",
    "baseline",
    "delta",
    "n_langs",
    "paper",
)


def render_csv(report: Report) -> str:
    """results.csv: one row per table cell (languages and averages); values in the records' units."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for table in report.tables:
        for row in table.row_keys():
            is_average = row.startswith("avg:")
            for column in table.columns:
                base = {
                    "table": table.slug,
                    "model": table.model,
                    "task": table.task,
                    "metric": table.metric,
                    "row": row,
                    "column": column.label,
                    "method": column.method,
                    "source": column.source or "",
                    "task_method": column.task_method or "",
                    "column_model": column.model or "",
                    "adapter_tag": column.tag or "",
                    "unit": table.unit,
                    "paper": _paper_value(table, row, column),
                }
                if is_average:
                    average = table.averages.get((row[4:], column))
                    if average is None or average.mean is None:
                        continue
                    writer.writerow(
                        {
                            **base,
                            "group": row[4:],
                            "value": repr(average.mean),
                            "delta": "" if average.delta is None else repr(average.delta),
                            "n_langs": average.n_langs,
                        }
                    )
                    continue
                cell = table.cells.get((row, column))
                if cell is None:
                    continue
                gb = pretraining_gb(row, table.model)
                writer.writerow(
                    {
                        **base,
                        "lang": row,
                        "language": language_name(row),
                        "group": language_group(row, table.model),
                        "pretraining_gb": "" if gb is None else gb,
                        "value": repr(cell.mean),
                        "sd": "" if cell.sd is None else repr(cell.sd),
                        "n_seeds": cell.n_seeds,
                        "seeds": " ".join("" if s is None else str(s) for s in cell.seeds).strip(),
                        "baseline": "" if cell.baseline is None else repr(cell.baseline),
                        "delta": "" if cell.delta is None else repr(cell.delta),
                    }
                )
    return out.getvalue()


def _paper_value(table: Table, row: str, column: Column) -> str:
    for number in table.paper.get(row, []):
        same = number.method == column.method and number.source == column.source and column.model is None
        if same and (
            table.kind == "pppl" or (number.task_method or "adapter") == (column.task_method or "adapter")
        ):
            return repr(number.value / table.scale)
    return ""


# ---------------------------------------------------------------------------------------------------
# Files


def write_report(report: Report, output_dir: Path) -> Path:
    """Write report.md, results.csv and plots/ into ``output_dir``, all together or not at all.

    Everything is rendered in a temporary folder inside ``output_dir`` first; then the old report.md is
    removed, plots/ is swapped in, results.csv and finally report.md are renamed into place (report.md
    is what Make should depend on). A failure before that leaves ``output_dir`` as it was.
    """
    from lrltool import plots

    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError("the output is a file, not a folder", hint="give -o a folder", path=str(output_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", suffix=".tmp", dir=output_dir))
    try:
        staged_plots = staging / "plots"
        staged_plots.mkdir()
        report.plots = plots.draw_all(report, staged_plots)
        report.output_dir = output_dir
        (staging / "results.csv").write_text(render_csv(report), encoding="utf-8")
        (staging / "report.md").write_text(render_markdown(report), encoding="utf-8")
        for path in (staged_plots, *staged_plots.iterdir(), staging / "results.csv", staging / "report.md"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        target_md = output_dir / "report.md"
        target_md.unlink(missing_ok=True)
        target_plots = output_dir / "plots"
        if target_plots.is_dir():
            os.replace(target_plots, staging / "old-plots")
        elif target_plots.exists():
            target_plots.unlink()
        os.replace(staged_plots, target_plots)
        os.replace(staging / "results.csv", output_dir / "results.csv")
        os.replace(staging / "report.md", target_md)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir / "report.md"
