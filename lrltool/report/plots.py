"""The report's plots (matplotlib, Agg, object API: no pyplot state, no display needed).

Each plot is meant to be read at a glance: a title that says what and for which model, labelled axes
with units and direction (lower/higher is better), a legend, languages outside the model's pre-training
data shaded or marked.

Imports from the rest of the report only its dataclasses (:class:`Report` and what it holds) and the
names of :mod:`lrltool.report.names`; matplotlib is imported inside the functions that draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrltool.report.build import Report
from lrltool.report.load import LossCurve
from lrltool.report.names import language_group, language_label, plain, short_model, slug
from lrltool.report.stats import Correlation, SizeSeries
from lrltool.report.tables import Table, gain

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
UNSEEN_SHADE = "0.9"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    """Write ``fig`` as PNG, every text in it as it reads: texts from the records (languages, models,
    methods) keep their ``$`` (no mathtext, which could not parse ``$\\sqrt{$`` and failed the report) and
    show their control characters but line breaks as ``\\xNN`` (as in report.md; a font has no glyph for
    ESC). Tick labels are set as text at drawing time, so the axes that name languages pass them through
    ``plain`` too."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_parse_math(False)
        text.set_text(plain(text.get_text(), lines=True))
    fig.savefig(path, format="png")


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def draw_all(report: Report, folder: Path) -> dict[str, str]:
    """Draw every plot of the report into ``folder``; return {plot key: file name}."""
    made: dict[str, str] = {}
    used: set[str] = set()

    def name(stem: str) -> str:
        candidate = slug(stem)
        while candidate in used:
            candidate += "_"
        used.add(candidate)
        return candidate + ".png"

    for table in report.tables:
        if not table.cells:
            continue
        file = name(("pppl_" if table.kind == "pppl" else "f1_") + table.slug)
        draw_table(table, folder / file)
        made[f"table:{table.slug}"] = file
    by_model: dict[str, list[Correlation]] = {}
    for corr in report.correlations:
        by_model.setdefault(corr.table.model, []).append(corr)
    for model, corrs in by_model.items():
        file = name(f"gain_vs_pretraining_{short_model(model)}")
        draw_gain(model, corrs, folder / file)
        made[f"gain:{model}"] = file
    by_model_sizes: dict[str, list[SizeSeries]] = {}
    for series in report.sizes:
        by_model_sizes.setdefault(series.table.model, []).append(series)
    for model, sizes in by_model_sizes.items():
        file = name(f"adaptation_size_{short_model(model)}")
        draw_sizes(model, sizes, folder / file)
        made[f"sizes:{model}"] = file
    for run in report.runs:
        file = name(f"loss_{run.name}")
        draw_run(run, folder / file)
        made[f"run:{run.path}"] = file
    return made


def draw_table(table: Table, path: Path) -> Any:
    """What a reader compares: the values per language and method (markers with value labels, on an axis
    fitted to them: log only where they span more than 20x), and, where there is a baseline, the change
    against it (bars from zero: % PPPL reduction or F1 points; labels give the absolute and relative
    change). Returns the figure (tests read its axes)."""
    changes = {key: gain(table, cell) for key, cell in table.cells.items()}
    has_change = any(v is not None for v in changes.values())
    n_langs, n_cols = len(table.langs), len(table.columns)
    width = max(9.0, min(26.0, 3.5 + n_langs * (0.3 + 0.16 * n_cols)))
    fig = _figure(width, 8.5 if has_change else 5.0)
    axes = fig.subplots(2 if has_change else 1, 1, squeeze=False).ravel()
    colors = dict(zip(table.columns, _colors(n_cols), strict=True))
    _draw_values(axes[0], table, colors)
    if has_change:
        _draw_changes(axes[1], table, colors, changes)
    for ax in axes:
        _language_axis(ax, table)
    handles, labels = axes[0].get_legend_handles_labels()
    if any(language_group(lang, table.model) == "unseen" for lang in table.langs):
        from matplotlib.patches import Patch

        handles.append(Patch(color=UNSEEN_SHADE, label="not in pre-training data"))
        labels.append("not in pre-training data")
    axes[0].legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="method"
    )
    what = table.metric_title if table.kind == "pppl" else f"{table.metric} (%)"
    fig.suptitle(f"{table.task_title} per language, {table.model}: {what}")
    _save(fig, path)
    return fig


def _offsets(table: Table) -> dict[Any, float]:
    bar = 0.8 / len(table.columns)
    return {c: (i - (len(table.columns) - 1) / 2) * bar for i, c in enumerate(table.columns)}


def _draw_values(ax: Any, table: Table, colors: dict[Any, Any]) -> None:
    offsets, values = _offsets(table), []
    for column in table.columns:
        xs, ys, errors = [], [], []
        for j, lang in enumerate(table.langs):
            cell = table.cells.get((lang, column))
            if cell is not None:
                xs.append(j + offsets[column])
                ys.append(cell.mean * table.scale)
                errors.append((cell.sd or 0.0) * table.scale)
        values += ys
        ax.errorbar(
            xs, ys, yerr=errors if any(errors) else None, fmt="o", color=colors[column], label=column.label,
            capsize=2, zorder=3,
        )  # fmt: skip
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(
                f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7
            )
    low, high = min(values), max(values)
    if table.kind == "pppl" and low > 0 and high / low > 20:
        ax.set_yscale("log")
        ax.set_ylim(low / 1.6, high * 1.6)
    else:
        pad = (high - low) * 0.15 or max(abs(high) * 0.05, 0.5)
        ax.set_ylim(low - pad, high + 2 * pad)
    better = "lower" if table.kind == "pppl" else "higher"
    scale = " (log scale)" if ax.get_yscale() == "log" else ""
    ax.set_ylabel(f"{table.metric}{'' if table.kind == 'pppl' else ' (%)'}{scale}; {better} is better")
    ax.set_title("values (mean over seeds; whiskers: sd); the axis is fitted to them", loc="left", fontsize=9)


def _draw_changes(ax: Any, table: Table, colors: dict[Any, Any], changes: dict[Any, float | None]) -> None:
    offsets, bar = _offsets(table), 0.8 / len(table.columns)
    for column in table.columns:
        xs, ys, texts = [], [], []
        for j, lang in enumerate(table.langs):
            cell = table.cells.get((lang, column))
            change = changes.get((lang, column))
            if cell is None or change is None or cell.delta is None or not cell.baseline:
                continue
            xs.append(j + offsets[column])
            ys.append(change)
            absolute = cell.delta * table.scale
            relative = 100.0 * cell.delta / cell.baseline
            texts.append(f"{absolute:+.2f}\n({relative:+.1f}%)")
        if xs:
            bars = ax.bar(xs, ys, width=bar, color=colors[column], zorder=2)
            ax.bar_label(bars, labels=texts, fontsize=6, padding=2)
    ax.axhline(0, color="0.2", lw=0.8)
    ax.margins(y=0.25)
    ax.set_ylabel(table.gain_unit + "; higher is better")
    ax.set_title(f"change against the {table.baseline_text}: absolute (relative)", loc="left", fontsize=9)


def _language_axis(ax: Any, table: Table) -> None:
    n_langs = len(table.langs)
    for j, lang in enumerate(table.langs):
        if language_group(lang, table.model) == "unseen":
            ax.axvspan(j - 0.48, j + 0.48, color=UNSEEN_SHADE, zorder=0, lw=0)
    ax.set_xticks(
        range(n_langs),
        [plain(language_label(lang), lines=True) for lang in table.langs],
        rotation=35 if n_langs > 5 else 0,
        ha="right" if n_langs > 5 else "center",
        parse_math=False,
    )
    ax.set_xlim(-0.6, n_langs - 0.4)
    ax.set_xlabel("language (shaded: not in the model's pre-training data)")
    ax.grid(axis="y", alpha=0.3, zorder=1)


def draw_gain(model: str, corrs: list[Correlation], path: Path) -> None:
    """Scatter of each method's gain against the language's pre-training data (log x), one panel per task.

    Languages are named on the top axis at their data size (close sizes share a label); languages not in
    the model's pre-training data sit in a shaded band left of the smallest size. The legend gives each
    method's Spearman coefficient and n.
    """
    from matplotlib.patches import Patch

    tables: list[Table] = []
    for corr in corrs:
        if corr.table not in tables:
            tables.append(corr.table)
    fig = _figure(11.0, 0.6 + 4.2 * len(tables))
    axes = fig.subplots(len(tables), 1, squeeze=False).ravel()
    for ax, table in zip(axes, tables, strict=True):
        series = [c for c in corrs if c.table is table]
        seen_gb = [gb for c in series for _, gb, _ in c.points if gb]
        x_unseen = min(seen_gb) / 5 if seen_gb else 0.01
        colors = _colors(len(series))
        for k, corr in enumerate(series):
            rho = "n/a" if corr.spearman is None else f"{corr.spearman:+.2f}"
            ax.scatter(
                [gb if gb else x_unseen for _, gb, _ in corr.points],
                [g for _, _, g in corr.points],
                color=colors[k],
                marker=MARKERS[k % len(MARKERS)],
                label=f"{corr.column.label} (Spearman ρ {rho}, n={corr.n_spearman})",
                zorder=3,
            )
        ax.set_xscale("log")
        ax.axhline(0.0, color="0.3", lw=0.8, zorder=1)
        handles, labels = ax.get_legend_handles_labels()
        positions = {lang: gb if gb else x_unseen for c in series for lang, gb, _ in c.points}
        if any(x == x_unseen for x in positions.values()):
            ax.axvspan(x_unseen / 2, x_unseen * 2, color=UNSEEN_SHADE, zorder=0, lw=0)
            handles.append(Patch(color=UNSEEN_SHADE, label="not in pre-training data"))
            labels.append("not in pre-training data")
        ax.set_xlim(x_unseen / 2.5, max(positions.values()) * 2)
        _name_languages(ax, positions)
        ax.set_title(f"{table.task_title}", loc="left")
        ax.set_xlabel("the language's data in the model's pre-training (GB, log scale)")
        ax.set_ylabel(table.gain_unit.replace(" (", "\n("))
        ax.grid(alpha=0.3, zorder=1)
        ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Gain over the baseline against pre-training data size, {model} (higher is better)")
    _save(fig, path)


def _name_languages(ax: Any, positions: dict[str, float]) -> None:
    """Language codes on a top axis at their x; languages closer than ~15% share one label."""
    clusters: list[tuple[float, list[str]]] = []
    for lang, x in sorted(positions.items(), key=lambda item: item[1]):
        if clusters and x / clusters[-1][0] < 1.15:
            clusters[-1][1].append(lang.split("_")[0])
        else:
            clusters.append((x, [lang.split("_")[0]]))
    top = ax.secondary_xaxis("top")
    top.set_xticks(
        [x for x, _ in clusters],
        [plain(", ".join(names), lines=True) for _, names in clusters],
        rotation=90,
        fontsize=7,
        parse_math=False,
    )
    top.tick_params(axis="x", which="minor", top=False, labeltop=False)


def draw_sizes(model: str, sizes: list[SizeSeries], path: Path) -> None:
    """PPPL or F1 against adaptation data size (log x), one line per method (and language), one panel
    per task; the baseline of a single-language panel is a dashed line."""
    tables: list[Table] = []
    for series in sizes:
        if series.table not in tables:
            tables.append(series.table)
    fig = _figure(11.0, 0.6 + 4.0 * len(tables))
    axes = fig.subplots(len(tables), 1, squeeze=False).ravel()
    for ax, table in zip(axes, tables, strict=True):
        panel = [s for s in sizes if s.table is table]
        langs = sorted({s.lang for s in panel})
        colors = _colors(len(panel))
        for k, series in enumerate(panel):
            label = series.column.label + (f" ({series.lang})" if len(langs) > 1 else "")
            ax.plot(
                [p[0] for p in series.points],
                [p[1] * table.scale for p in series.points],
                marker=MARKERS[k % len(MARKERS)],
                color=colors[k],
                label=label,
            )
        if len(langs) == 1:
            base = table.cells.get((langs[0], table.baseline))
            if base is not None:
                ax.axhline(
                    base.mean * table.scale, ls="--", color="0.3", label=f"baseline ({table.baseline.label})"
                )
        ax.set_xscale("log")
        if table.kind == "pppl":
            ax.set_yscale("log")
            ax.set_ylabel(f"{table.metric} (log; lower is better)")
            ax.set_title(f"{table.task_title} ({table.metric_title})", loc="left")
        else:
            ax.set_ylabel(f"{table.metric} (%; higher is better)")
            ax.set_title(table.task_title, loc="left")
        ax.set_xlabel(f"adaptation data ({panel[0].unit}, log scale)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    all_langs = sorted({s.lang for s in sizes})
    fig.suptitle(
        f"Against adaptation data size, {model}" + (f" ({all_langs[0]})" if len(all_langs) == 1 else "")
    )
    _save(fig, path)


def draw_run(run: LossCurve, path: Path) -> None:
    """Training loss by step, validation loss by step, and the best validation point."""
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot()
    if run.train:
        steps, losses = zip(*run.train, strict=True)
        ax.plot(steps, losses, lw=1.2, color="tab:blue", label="training loss")
    if run.evals:
        steps, losses = zip(*run.evals, strict=True)
        ax.plot(steps, losses, lw=1.2, marker="o", ms=4, color="tab:orange", label="validation loss")
        best_step, best_loss = min(run.evals, key=lambda point: point[1])
        ax.scatter(
            [best_step],
            [best_loss],
            marker="*",
            s=160,
            color="tab:red",
            zorder=3,
            label=f"best validation {best_loss:.3f} (step {best_step})",
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (lower is better)")
    ax.set_title(f"Loss curves: {run.title}")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)
