"""``report``: tables (terminal; with -o also report.md, results.csv, plots) from metric records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lrltool import ui
from lrltool.cli.group import command
from lrltool.cli.options import QuietOpt, SkipBadOpt, StatsOpt


@command(
    "report",
    examples=[
        "lrltool report results.jsonl -o report",
        "lrltool report results.jsonl runs/*/metrics/*.jsonl --runs runs/seq_bn-glotcc"
        " --compare-paper -o report",
    ],
)
def report_cli(
    metrics: Annotated[
        list[str] | None,
        typer.Argument(
            help="Metric records from 'lrltool eval': files, globs, '-' for stdin (the default when piped)."
            " Run folders given here are plotted as with --runs."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write report.md, results.csv and plots/*.png to this folder."
        ),
    ] = None,
    compare_paper: Annotated[
        bool, typer.Option("--compare-paper", help="Add the paper's published numbers where they exist.")
    ] = False,
    runs: Annotated[
        list[str] | None,
        typer.Option("--runs", help="A run folder (or glob) whose log.jsonl to plot; repeat for more."),
    ] = None,
    pppl_metric: Annotated[
        str,
        typer.Option(
            "--pppl-metric", help="Which pseudo-perplexity to tabulate: pppl_mean, pppl, pppl_word."
        ),
    ] = "pppl_mean",
    note: Annotated[
        str | None, typer.Option("--note", help="A paragraph shown first: what these numbers are.")
    ] = None,
    protocols: Annotated[
        list[str] | None,
        typer.Option(
            "--protocols",
            help="Give twice: the metric files (glob) made under the paper's protocol, then lrltool's; prints"
            " them side by side with the difference (-o: DIR/protocols.md). What `make protocols` runs.",
        ),
    ] = None,
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tables (terminal; with -o also report.md, results.csv, plots) from metric records."""
    import io
    import shutil

    from rich.console import Console

    from lrltool.errors import UsageError
    from lrltool.report import render_terminal, report_metrics
    from lrltool.streams import Stats

    ui.configure(quiet=quiet)
    if protocols is not None:
        _protocols(protocols, output)
        return
    if not metrics:
        if sys.stdin.isatty() and not runs:
            raise UsageError(
                "no metric records given", hint="name metric files, or pipe 'lrltool eval' into report"
            )
        metrics = [] if sys.stdin.isatty() else ["-"]
    summary = Stats("report")
    report = report_metrics(
        inputs=metrics,
        output_dir=output,
        runs=runs or [],
        compare_paper=compare_paper,
        pppl_metric=pppl_metric,
        skip_bad_lines=skip_bad_lines,
        stats=summary,
        note=note,
    )
    # Rendered to a string first: rich turns a broken pipe into exit 1 itself; `| head` should end as
    # in every other command (the handler above: quiet, 141).
    buffer = io.StringIO()
    tty = sys.stdout.isatty()
    render_terminal(
        report,
        Console(file=buffer, force_terminal=tty, width=shutil.get_terminal_size().columns if tty else 250),
    )
    sys.stdout.write(buffer.getvalue())
    sys.stdout.flush()
    if not report.tables:
        ui.info(f"no metric records; {len(report.runs)} loss curve(s)")
    for warning in report.warnings:
        ui.warn(warning)
    summary.finish(stats)
    if output is not None:
        ui.info(f"report written to {output / 'report.md'}")


def _protocols(inputs: list[str], output: Path | None) -> None:
    from lrltool.errors import UsageError
    from lrltool.report.protocol import protocol_rows, render_protocols
    from lrltool.streams import atomic_output

    if len(inputs) != 2:
        raise UsageError(
            f"--protocols takes two inputs (the paper's, then lrltool's), not {len(inputs)}",
            hint="give --protocols 'paper/metrics/*.jsonl' --protocols 'lrltool/metrics/*.jsonl'",
        )
    text = render_protocols(protocol_rows([inputs[0]], [inputs[1]]))
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        with atomic_output(output / "protocols.md") as stream:
            stream.write(text.encode())
    sys.stdout.write(text)
