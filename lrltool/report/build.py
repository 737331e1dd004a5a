"""The report as data: :class:`Report` (tables, correlations, size series, loss curves, paper comparisons,
warnings and notes), built from checked metric records and run folders by :func:`build_report`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lrltool.errors import UsageError
from lrltool.records import PERPLEXITY_METRICS
from lrltool.report.detail import CellDetail, RunCost, cell_details, run_costs
from lrltool.report.load import Entry, LossCurve, read_loss_curve, runs_of_records, training_data
from lrltool.report.paper import PaperComparison, attach_paper_numbers, paper_numbers
from lrltool.report.settings import settings_warnings
from lrltool.report.stats import (
    Correlation,
    SizeCorrelation,
    SizeSeries,
    correlations,
    size_correlations,
    size_series,
)
from lrltool.report.tables import Table, build_tables
from lrltool.tasks import TASKS


@dataclass
class Report:
    """Everything the terminal, report.md, results.csv and the plots show."""

    tables: list[Table]
    correlations: list[Correlation]
    runs: list[LossCurve]
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
    details: list[CellDetail] = field(default_factory=list)  # per-seed values, intervals, accuracy
    costs: list[RunCost] = field(default_factory=list)  # trainable parameters and training time per run


def check_pppl_metric(pppl_metric: str) -> None:
    choices = [m for m in TASKS["mlm"].metrics if m in PERPLEXITY_METRICS]  # not clm's ppl metrics
    if pppl_metric not in choices:
        raise UsageError(
            f"unknown pseudo-perplexity metric '{pppl_metric}'",
            hint=f"use one of {', '.join(choices)}",
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
    check_pppl_metric(pppl_metric)
    warnings: list[str] = []
    notes: list[str] = []
    tables = build_tables(entries, pppl_metric=pppl_metric, warnings=warnings, notes=notes)
    for table in tables:
        warnings.extend(settings_warnings(table))
    comparisons = attach_paper_numbers(tables, paper_numbers()) if compare_paper else []
    details = cell_details(tables, warnings)
    runs = _loss_curves([*run_dirs, *runs_of_records(entries)], notes)
    training_data.cache_clear()  # a rerun in the same process reads the runs again
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
        details=details,
        costs=run_costs(entries, run_dirs),
    )


def _loss_curves(paths: Sequence[Path], notes: list[str]) -> list[LossCurve]:
    """Each run folder's loss curve, read once and named as given; a note for a run without loss lines."""
    dirs: dict[Path, Path] = {}  # resolved -> as named, so each run is read once and shown as given
    for path in paths:
        dirs.setdefault(path.resolve(), path)
    runs = [read_loss_curve(path) for path in dirs.values()]
    # runs/ron/seq_bn-glotcc and runs/mlt/seq_bn-glotcc: name them by their last two folders.
    clashing = {name for name, n in Counter(run.name for run in runs).items() if n > 1}
    for run in runs:
        if run.name in clashing:
            run.name = f"{run.path.parent.name}-{run.path.name}"
    for run in runs:
        if not run.train and not run.evals:
            notes.append(f"{run.path}: log.jsonl has no loss lines; no loss curve drawn.")
    return runs
