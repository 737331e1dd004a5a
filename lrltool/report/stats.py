"""Gains against data size: each method's gain over the baseline against the language's pre-training data
(Spearman, Pearson), and, where one method was trained on several amounts of adaptation data (one adapter
folder each, sizes from its ``training.json`` ``data.bytes`` or ``data.tokens``), value and gain against
that size."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from lrltool.languages import model_family
from lrltool.report.load import training_data
from lrltool.report.names import language_group, pretraining_gb
from lrltool.report.tables import Cell, Column, Table, gain


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
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
        return self.table.gain_unit


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


def _size_of(cell: Cell, unit: str) -> float | None:
    for entry in cell.entries:
        adapter = entry.metric_record.adapter
        if adapter:
            value = training_data(adapter)[0].get(unit)
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
