"""The report's tables: one per model and task, rows = languages (then averages), columns = methods.

- a pseudo-perplexity table per model: language x (base, each method/source, full), one PPPL metric
  (``--pppl-metric``, ``pppl_mean`` by default, the paper's number), each cell with its change against the
  base model; a decoder's perplexity (task ``clm``, ``ppl_mean``) gets a table of the same kind;
- a table per model and downstream task with the task's headline metric (:data:`lrltool.tasks.TASKS`;
  macro_f1 for a task not in the registry): language x method, mean ± sd over seeds (an
  ``aggregate: "mean"`` record is used when present, else the per-seed records are averaged; sd is the
  sample sd, n-1), each cell with its change against the paper's baseline (method ``base``, task_method
  ``adapter``: a task adapter without a language adapter). Prompting rows (task_method ``prompt-*``,
  another model) are shown beside the adapters of every table of their task;
- average rows over languages seen and unseen in the model's pre-training data (``languages.tsv``).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrltool.records import FRACTION_METRICS, METHODS, METRICS, mean_and_sd
from lrltool.report.load import Entry
from lrltool.report.names import language_group, language_rank, short_model, slug
from lrltool.tasks import TASKS

#: The task whose table is pseudo-perplexity; its metric is chosen by ``--pppl-metric``.
PPPL_TASK = "mlm"
#: The metric tabulated for a downstream task that is not in the task registry.
DEFAULT_TASK_METRIC = "macro_f1"
SOURCE_ORDER = ("glotcc", "conceptnet", "glotcc+conceptnet")
TASK_METHOD_ORDER = ("adapter", "full")
TASK_METHOD_LABELS = {"full": "full FT"}  # "full" alone reads like the language-adaptation method
PPPL_BASELINE = "base model without an adapter"
TASK_BASELINE = "task adapter without a language adapter (the paper's baseline)"
AVERAGE_ROWS = {"seen": "average, seen", "unseen": "average, unseen", "all": "average, all"}


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
    """A number published in the paper (``data/paper_numbers.json``), shown in its table's paper column."""

    model: str
    lang: str | None
    task: str
    metric: str
    method: str | None
    source: str | None
    task_method: str | None
    value: float
    where: str
    # the record settings that define the number as the paper computed it (("paper_compat", True), ...)
    protocol: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        method = self.method or "adapted"
        text = method + (f"/{self.source}" if self.source else "")
        if self.task_method and self.task_method != "adapter":
            text += f" [{self.task_method}]"
        return text


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
    def task_title(self) -> str:
        """The task's title in the task registry (its name for a task not in it)."""
        return TASKS[self.task].title if self.task in TASKS else self.task

    @property
    def metric_title(self) -> str:
        """The metric's title in :data:`lrltool.records.METRICS`."""
        return METRICS[self.metric].title

    @property
    def title(self) -> str:
        if self.kind == "pppl":
            return f"{self.task_title} ({self.metric}), {self.model}"
        return f"{self.task_title}: {self.metric} (%), {self.model}"

    @property
    def baseline_text(self) -> str:
        return PPPL_BASELINE if self.kind == "pppl" else TASK_BASELINE

    @property
    def gain_unit(self) -> str:
        """What :func:`gain` measures for this table."""
        return (
            "PPPL reduction vs the base model (%)"
            if self.kind == "pppl"
            else "F1 gain over the baseline (points)"
        )

    def row_keys(self) -> list[str]:
        return [*self.langs, *(f"avg:{g}" for g in self.groups)]


def gain(table: Table, cell: Cell) -> float | None:
    """Positive = better than the baseline: % PPPL reduction, or F1 points."""
    if cell.baseline is None or cell.delta is None:
        return None
    if table.kind == "pppl":
        return -100.0 * cell.delta / cell.baseline
    return cell.delta * table.scale


def task_metric(task: str) -> str:
    """The metric tabulated for a downstream task: its headline metric in the task registry."""
    return TASKS[task].metric if task in TASKS else DEFAULT_TASK_METRIC


def _is_perplexity_task(task: str) -> bool:
    """A task other than mlm whose headline metric is a perplexity (clm): tabulated like pseudo-perplexity."""
    return task in TASKS and METRICS[TASKS[task].metric].kind == "perplexity"


def _is_prompt(entry: Entry) -> bool:
    record = entry.metric_record
    return record.method == "prompt" or str(record.task_method or "").startswith("prompt")


def _adapter_tag(adapter: str | None) -> str:
    if not adapter:
        return "-"
    path = Path(adapter.rstrip("/"))
    if path.name in ("adapter", "model") and path.parent.name:
        path = path.parent
    return path.name or adapter


# ---------------------------------------------------------------------------------------------------
# Building the tables


TableKey = tuple[str, str, str, str]  # (kind, model, task, metric)


def build_tables(
    entries: Sequence[Entry], *, pppl_metric: str, warnings: list[str], notes: list[str]
) -> list[Table]:
    """Group the records into tables (one per model and task) and compute cells, deltas and averages."""
    own, prompts = _group_entries(entries, pppl_metric, notes)
    tables = []
    for (kind, model, task, metric), table_entries in own.items():
        extra = prompts.get(task, []) if kind == "task" else []
        tables.append(_build_table(kind, model, task, metric, table_entries, extra, warnings, notes))
    order = list(TASKS)
    tables.sort(
        key=lambda t: (t.kind != "pppl", t.model, order.index(t.task) if t.task in TASKS else 99, t.task)
    )
    used: set[str] = set()
    for table in tables:
        name = slug(f"{short_model(table.model)}" + ("" if table.task == PPPL_TASK else f"_{table.task}"))
        while name in used:
            name += "_"
        used.add(name)
        table.slug = name
    return tables


def _group_entries(
    entries: Sequence[Entry], pppl_metric: str, notes: list[str]
) -> tuple[dict[TableKey, list[Entry]], dict[str, list[Entry]]]:
    """The records of each table, and the prompting records of each task; a note on those left out."""
    own: dict[TableKey, list[Entry]] = defaultdict(list)
    prompts: dict[str, list[Entry]] = defaultdict(list)
    untabulated: Counter[str] = Counter()
    for entry in entries:
        record = entry.metric_record
        task, metric = record.task, record.metric
        if entry.lang is None:
            untabulated["no lang"] += 1
        elif task == PPPL_TASK or _is_perplexity_task(task):
            if metric == (pppl_metric if task == PPPL_TASK else task_metric(task)):
                own[("pppl", record.model, task, metric)].append(entry)  # clm: a perplexity table of its own
            else:
                untabulated[metric] += 1
        elif metric != task_metric(task):
            untabulated[metric] += 1
        elif _is_prompt(entry):
            prompts[task].append(entry)
        else:
            own[("task", record.model, task, metric)].append(entry)
    if untabulated:
        parts = ", ".join(f"{name} {n}" for name, n in sorted(untabulated.items()))
        metrics = ", ".join(f"{task}: {task_metric(task)}" for task in TASKS if task != PPPL_TASK)
        notes.append(
            f"{sum(untabulated.values())} records are not tabulated ({parts}); tables use {pppl_metric}"
            f" for pseudo-perplexity and {metrics}."
        )
    # Prompting rows stand beside the adapters of every table of their task (the paper's Table 2); a
    # task with prompting rows only gets a table of its own, named after the first prompted model.
    for task, task_prompts in prompts.items():
        if not any(key[0] == "task" and key[2] == task for key in own):
            first = min(e.metric_record.model for e in task_prompts)
            own[("task", first, task, task_metric(task))] = []
    return own, prompts


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
    columns = _columns_of(table, all_entries, notes)
    for (lang, column), found in _cell_entries(table, all_entries, columns, warnings).items():
        table.cells[(lang, column)] = _summarize(found, f"{table.title}: {lang}, {column.label}", warnings)
    # From here on a table's records are those its cells use (a superseded rerun is left out).
    table.entries = [e for cell in table.cells.values() for e in cell.entries]
    table.langs = sorted({lang for lang, _ in table.cells}, key=language_rank)
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


def _column_of(entry: Entry, table_model: str, kind: str) -> Column:
    record = entry.metric_record
    return Column(
        method=record.method,
        source=record.source,
        task_method=None if kind == "pppl" else record.task_method,
        model=None if record.model == table_model else record.model,
    )


def _columns_of(table: Table, entries: list[Entry], notes: list[str]) -> dict[int, Column]:
    """Each record's column (by ``id`` of the entry).

    One cell and seed holding records of several adapter folders: several adaptations of the same kind
    (e.g. adapters trained on different data sizes). They are kept apart as columns tagged by folder.
    """
    columns = {id(e): _column_of(e, table.model, table.kind) for e in entries}
    adapters: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for e in entries:
        adapters[(e.lang, columns[id(e)], e.seed, e.is_aggregate)].add(e.metric_record.adapter or "")
    split = {key[1] for key, found in adapters.items() if len(found) > 1}
    for e in entries:
        column = columns[id(e)]
        if column in split:
            columns[id(e)] = Column(
                column.method,
                column.source,
                column.task_method,
                column.model,
                _adapter_tag(e.metric_record.adapter),
            )
    for column in sorted(split, key=Column.sort_key):
        notes.append(
            f"{table.title}: '{column.label}' holds records of several adapter folders; shown as one column"
            " per folder (@folder)."
        )
    return columns


def _cell_entries(
    table: Table, entries: list[Entry], columns: dict[int, Column], warnings: list[str]
) -> dict[tuple[str, Column], list[Entry]]:
    """The records of each (language, column) cell: one per seed (and aggregate).

    Records for the same language, column and seed are a rerun: the one read last wins, with a warning.
    """
    by_run: dict[tuple[Any, ...], list[Entry]] = defaultdict(list)
    for e in entries:
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
    return cell_entries


def _summarize(found: list[Entry], where: str, warnings: list[str]) -> Cell:
    """Mean ± sd over seeds: from an aggregate record when there is one, else from the per-seed records."""
    singles = sorted((e for e in found if not e.is_aggregate), key=lambda e: (e.seed is None, e.seed or 0))
    aggregates = [e for e in found if e.is_aggregate]
    if aggregates:
        agg = aggregates[-1]
        details = agg.metric_record.details
        sd = details.get("sd")
        seeds = details.get("seeds")
        if not isinstance(seeds, list):
            n_seeds = details.get("n_seeds")
            seeds = [e.seed for e in singles] or [None] * (
                n_seeds if isinstance(n_seeds, int) and n_seeds > 0 else 1
            )
        if singles:
            mean, _ = mean_and_sd([e.value for e in singles])
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
    mean, sd = mean_and_sd([e.value for e in singles])
    return Cell(mean=mean, sd=sd, seeds=tuple(e.seed for e in singles), entries=found)


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
    # Plain means over languages (statistics.fmean: fsum / len, as records.mean_and_sd; no sd wanted).
    for column in table.columns:
        cells = [table.cells[(lang, column)] for lang in langs if (lang, column) in table.cells]
        deltas = [c.delta for c in cells if c.delta is not None]
        table.averages[(group, column)] = Average(
            mean=statistics.fmean([c.mean for c in cells]) if cells else None,
            delta=statistics.fmean(deltas) if deltas else None,
            n_langs=len(cells),
            of=len(langs),
        )
