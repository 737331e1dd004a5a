"""The report as text: cells, the terminal tables (rich), report.md and results.csv.

Metric records are input, and input may be hostile: every text that comes from a record, a run folder or
a file name is escaped for where it goes. Control characters (terminal escape sequences, newlines, bidi
overrides) are shown as ``\\xNN`` on the terminal and in report.md; report.md escapes markdown and HTML
(no raw tags, links, images or headings can be injected); results.csv neutralises cells that a
spreadsheet would run as a formula (a leading ``= + - @``, tab or carriage return gets a ``'``).
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lrltool import __version__
from lrltool.report.build import Report
from lrltool.report.names import language_group, language_name, plain, pretraining_gb, short_model
from lrltool.report.paper import paper_citation
from lrltool.report.settings import PER_LANGUAGE_SETTINGS, TABLE_WIDE_SETTINGS, settings_summary
from lrltool.report.tables import AVERAGE_ROWS, Column, Table

# ---------------------------------------------------------------------------------------------------
# Cells


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


def table_caption(table: Table) -> str:
    if table.kind == "pppl":
        what = f"{table.metric_title}; lower is better"
        spread = ""
    else:
        what = f"{table.metric} in percent; higher is better"
        spread = f"; mean ± sd over seeds (sample sd), {typical_seeds(table)} seed(s) unless marked [n=k]"
    return (
        f"{what}{spread}. In brackets: the change against the {table.baseline_text}."
        " GB: the language's data in the model's pre-training (- = not in it, ? = unknown)."
    )


def table_rows(table: Table) -> list[tuple[str, list[str]]]:
    """Each row's key and its texts: language, GB, one per column, then the paper's numbers if any."""
    rows = []
    for row in table.row_keys():
        cells = [cell_text(table, row, column) for column in table.columns]
        if table.paper:
            cells.append(paper_text(table, row))
        rows.append((row, [row_label(table, row), gb_text(table, row), *cells]))
    return rows


# ---------------------------------------------------------------------------------------------------
# Terminal


def render_terminal(report: Report, console: Any) -> None:
    """Print every table with rich (to the console given, e.g. stdout)."""
    from rich.table import Table as RichTable
    from rich.text import Text  # plain Text: labels such as "[full FT]" or "[n=2]" are not rich markup

    if report.preface:
        console.print(Text(f"Note. {plain(report.preface)}", style="bold"))
    for table in report.tables:
        rich_table = RichTable(
            title=Text(plain(table.title), style="bold"),
            title_justify="left",
            caption=Text(plain(table_caption(table))),
            caption_justify="left",
        )
        rich_table.add_column(Text("language"))
        rich_table.add_column(Text("GB"), justify="right")
        for column in table.columns:
            rich_table.add_column(Text(plain(column.label)), justify="right")
        if table.paper:
            rich_table.add_column(Text("paper"), justify="right")
        for row, texts in table_rows(table):
            if row == f"avg:{next(iter(table.groups), '')}":
                rich_table.add_section()
            rich_table.add_row(*(Text(plain(text)) for text in texts))
        console.print(rich_table)
        console.print()


# ---------------------------------------------------------------------------------------------------
# Markdown


# What markdown (and the HTML it may carry) gives a meaning that could hide or fake content, escaped with
# a backslash: tags and autolinks (<), code spans (`), table cells (|), emphasis (*), inline links and
# images ("](" ), and a heading or quote at the start of a list item (# >). Other punctuation stays as is.
_MARKDOWN = re.compile(r"[\\`<|*]|\](?=\()|^[#>]")


def _md(text: object) -> str:
    """A text from the records as markdown that shows exactly that text (see the module docstring)."""
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), plain(text))


def _code(text: object) -> str:
    """A text from the records as an inline code span (outside tables): fenced by more backticks than it
    holds, so that it cannot end the span early."""
    text = plain(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: Sequence[str],
    bold: Sequence[bool] = (),
) -> list[str]:
    """A markdown table of texts (escaped here); the first cell of a row whose ``bold`` flag is set is
    set in bold."""
    lines = ["| " + " | ".join(_md(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if a == "right" else ":---" for a in align) + "|")
    for k, row in enumerate(rows):
        cells = [_md(c) for c in row]
        if k < len(bold) and bold[k] and cells:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: Report) -> str:
    """report.md: tables, plots, correlations, the paper's numbers, notes, and the settings behind it all."""
    lines = ["# lrltool report", ""]
    if report.preface:
        lines += [f"> **Note.** {_md(report.preface)}", ""]
    total = sum(n for _, n in report.inputs)
    lines.append(
        f"Made by lrltool {__version__} from {total} metric records"
        f" ({', '.join(f'{_code(name)}: {n}' for name, n in report.inputs) or 'no metric files'})."
    )
    lines.append("")
    if report.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {_md(w)}" for w in report.warnings]
        lines.append("")
    for table in report.tables:
        lines += _table_section(report, table)
    if report.correlations:
        lines += _correlation_section(report)
    if report.sizes:
        lines += _size_section(report)
    if report.details:
        lines += _detail_section(report)
    if report.costs:
        lines += _cost_section(report)
    if report.runs:
        lines += _runs_section(report)
    if report.compare_paper:
        lines += _paper_section(report)
    if report.notes:
        lines += ["## Notes", ""]
        lines += [f"- {_md(n)}" for n in report.notes]
        lines.append("")
    lines += _settings_section(report)
    return "\n".join(lines).rstrip() + "\n"


def _table_section(report: Report, table: Table) -> list[str]:
    lines = [f"## {_md(table.title)}", "", _md(table_caption(table)), ""]
    header = ["language", "GB", *(c.label for c in table.columns)]
    if table.paper:
        header.append("paper")
    keyed = table_rows(table)
    rows = [texts for _, texts in keyed]
    bold = [row.startswith("avg:") for row, _ in keyed]
    lines += _md_table(header, rows, ["left", "right", *["right"] * (len(header) - 2)], bold)
    lines.append("")
    if table.paper:
        lines += ["Paper: numbers published in the paper (see 'Comparison with the paper').", ""]
    plot = report.plots.get(f"table:{table.slug}")
    if plot:
        lines += [f"![{_md(table.title)}](plots/{plot})", ""]
    return lines


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _ci(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]"


def _detail_section(report: Report) -> list[str]:
    lines = [
        "## Seeds, confidence intervals and accuracy",
        "",
        "Each cell of the task tables (values in %): the value of each seed, the mean over seeds with its 95%"
        " bootstrap confidence interval over test examples (1,000 resamples of the test set, the same for"
        " every column, so the difference against the baseline is paired), and accuracy next to F1 for"
        " classification. The interval reflects the test sample; the spread over seeds is the table's sd."
        " Empty: the records carry no per-example results (made by an older lrltool).",
        "",
    ]
    header = ["table", "language", "column", "per seed", "mean", "95% CI", "vs baseline", "95% CI"]
    header += ["accuracy", "95% CI"]
    rows = []
    for d in report.details:
        seeds = ", ".join(f"{seed if seed is not None else '-'}: {100 * v:.2f}" for seed, v in d.seeds)
        delta = "" if d.delta is None else f"{100 * d.delta:+.2f}"
        rows.append(
            [
                _md(d.table),
                d.lang,
                _md(d.column),
                seeds,
                _pct(d.mean),
                _ci(d.ci),
                delta,
                _ci(d.delta_ci),
                _pct(d.accuracy),
                _ci(d.accuracy_ci),
            ]
        )
    lines += _md_table(header, rows, ["left", "left", "left", "left", *["right"] * 6])
    lines.append("")
    return lines


def _cost_section(report: Report) -> list[str]:
    lines = [
        "## Training cost",
        "",
        "From each run's training.json (training time: resumed runs add up).",
        "",
    ]
    header = ["run", "kind", "trainable parameters", "steps", "training time", "device"]
    rows = [
        [
            str(c.path),  # a table cell is escaped text (no code span: see _md_table)
            c.kind,
            f"{c.trainable_parameters:,}",
            f"{c.steps:,}",
            _duration(c.seconds),
            c.device or "",
        ]
        for c in report.costs
    ]
    lines += _md_table(header, rows, ["left", "left", "right", "right", "right", "left"])
    lines.append("")
    return lines


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d} min"


def _runs_section(report: Report) -> list[str]:
    lines = ["## Training and validation loss", ""]
    for run in report.runs:
        plot = report.plots.get(f"run:{run.path}")
        best = min(run.evals, key=lambda p: p[1]) if run.evals else None
        summary = f"{len(run.train)} training points, {len(run.evals)} validation points"
        if best:
            summary += f"; best validation loss {best[1]:.4f} at step {best[0]}"
        lines += [f"- {_code(run.path)} ({summary})"]
        if plot:
            lines += ["", f"  ![loss: {_md(run.title)}](plots/{plot})", ""]
    lines.append("")
    return lines


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
                f"{statistics.fmean([g for _, _, g in c.points]):+.2f}",  # fsum / len, no sd wanted
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


_PAPER_HEADER = (
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
)
_PAPER_ALIGN = ("left", "left", "left", "left", "left", "right", "right", "left", "right", "left")


def _paper_section(report: Report) -> list[str]:
    lines = [
        "## Comparison with the paper",
        "",
        f"Source: {paper_citation()} Only the numbers docs/design.md quotes are shipped"
        " (lrltool/data/paper_numbers.json); 'adapted' marks a number whose adapter architecture is not"
        " stated there, compared with our best adapter of that source. Averages: the paper's over its"
        " languages, ours over the languages in this report. A number is set beside ours only when ours"
        " was made under the paper's definition (PPPL: eval --paper-compat, docs/paper-protocol.md);"
        " otherwise the row says the definitions differ.",
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
        short = short_model(comp.table.model)
        origin = comp.ours_label + (f" ({comp.note})" if comp.note else "")
        rows.append([short, n.task, n.metric, lang, n.label, f"{n.value:.2f}", ours, origin, diff, n.where])
    lines += _md_table(_PAPER_HEADER, rows, _PAPER_ALIGN)
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
        lines += [f"### {_md(table.title)}", ""]
        for key, values in settings_summary(table.entries).items():
            shown = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
            text = ", ".join(f"{_code(v)} ({n})" for v, n in shown[:4])
            if len(shown) > 4:
                text += f", ... ({len(shown)} distinct values)"
            lines.append(f"- {_md(key)}: {text}")
        adapters = sorted({str(e.metric_record.adapter) for e in table.entries if e.metric_record.adapter})
        if adapters:
            shown_adapters = ", ".join(_code(a) for a in adapters[:6])
            more = f" and {len(adapters) - 6} more" if len(adapters) > 6 else ""
            lines.append(f"- adapters: {shown_adapters}{more}")
        lines.append("")
    for run in report.runs:
        versions = run.info.get("versions")
        if isinstance(versions, dict) and versions:
            text = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
            lines.append(f"- run {_code(run.path)}: {_md(text)}")
    return lines


# ---------------------------------------------------------------------------------------------------
# CSV


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
            for column in table.columns:
                values = _csv_values(table, row, column)
                if values is not None:
                    writer.writerow({key: _csv_cell(value) for key, value in values.items()})
    return out.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: a text that starts like a formula (``=HYPERLINK(...)``,
    ``+cmd``, ``@SUM``) gets a leading ``'`` (OWASP's advice); numbers, also negative ones, stay numbers."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value


def _csv_values(table: Table, row: str, column: Column) -> dict[str, Any] | None:
    """The CSV row of one cell or average; None when the table has no value there."""
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
    if row.startswith("avg:"):
        average = table.averages.get((row[4:], column))
        if average is None or average.mean is None:
            return None
        return {
            **base,
            "group": row[4:],
            "value": repr(average.mean),
            "delta": "" if average.delta is None else repr(average.delta),
            "n_langs": average.n_langs,
        }
    cell = table.cells.get((row, column))
    if cell is None:
        return None
    gb = pretraining_gb(row, table.model)
    return {
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


def _paper_value(table: Table, row: str, column: Column) -> str:
    for number in table.paper.get(row, []):
        same = number.method == column.method and number.source == column.source and column.model is None
        if same and (
            table.kind == "pppl" or (number.task_method or "adapter") == (column.task_method or "adapter")
        ):
            return repr(number.value / table.scale)
    return ""
