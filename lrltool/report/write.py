"""The ``report`` command's core (:func:`report_metrics`: read, build, write) and :func:`write_report`,
which writes report.md, results.csv and plots/ together or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lrltool.errors import InputError, UsageError
from lrltool.report.build import Report, build_report, check_pppl_metric
from lrltool.report.load import expand_inputs, load_metric_records
from lrltool.report.plots import draw_all
from lrltool.report.render import render_csv, render_markdown
from lrltool.streams import Stats


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
    check_pppl_metric(pppl_metric)
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


def write_report(report: Report, output_dir: Path) -> Path:
    """Write report.md, results.csv and plots/ into ``output_dir``, all together or not at all.

    Everything is rendered in a temporary folder inside ``output_dir`` first; then the old report.md is
    removed, plots/ is swapped in, results.csv and finally report.md are renamed into place (report.md
    is what Make should depend on). A failure before that leaves ``output_dir`` as it was.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError("the output is a file, not a folder", hint="give -o a folder", path=str(output_dir))
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-", suffix=".tmp", dir=output_dir))
    try:
        staged_plots = staging / "plots"
        staged_plots.mkdir()
        report.plots = draw_all(report, staged_plots)
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
