"""The paper's published numbers (``report --compare-paper``) and how ours compare with them.

``lrltool/data/paper_numbers.json`` holds only numbers quoted from the paper, each with where it stands in
it (docs/design.md, "Paper numbers (`report --compare-paper`)").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lrltool.languages import model_family
from lrltool.report.tables import Column, PaperNumber, Table, add_average_row


def _paper_data() -> dict[str, Any]:
    text = resources.files("lrltool.data").joinpath("paper_numbers.json").read_text(encoding="utf-8")
    return json.loads(text)


def paper_numbers() -> list[PaperNumber]:
    """The published numbers shipped in ``data/paper_numbers.json``."""
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
            protocol=tuple(sorted((n.get("protocol") or {}).items())),
        )
        for n in _paper_data()["numbers"]
    ]


def paper_citation() -> str:
    return str(_paper_data()["citation"])


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
    note: str = ""  # why ours is not set beside the paper's number

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
            comparison = _compare(table, number, row)
            if comparison.ours_label != DEFINITIONS_DIFFER:
                table.paper.setdefault(row, []).append(number)  # beside a cell of the same definition only
            comparisons.append(comparison)
    return comparisons


DEFINITIONS_DIFFER = "definitions differ"


def same_protocol(cell: Any, number: PaperNumber) -> bool:
    """Whether every record behind ``cell`` was made under the paper's definition of ``number`` (its
    ``protocol`` settings, e.g. PPPL with ``paper_compat``: special tokens scored, the 512 cut, the Thai
    split; docs/paper-protocol.md)."""
    return all(
        entry.metric_record.settings.get(key) == value
        for entry in cell.entries
        for key, value in number.protocol
    )


def _protocol_text(number: PaperNumber) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in number.protocol)


def _value_at(table: Table, row: str, column: Column) -> tuple[float | None, int | None]:
    if row.startswith("avg:"):
        average = table.averages.get((row[4:], column))
        return (None, None) if average is None or average.mean is None else (average.mean, average.n_langs)
    cell = table.cells.get((row, column))
    return (None, None) if cell is None else (cell.mean, None)


def _same_protocol_at(table: Table, row: str, column: Column, number: PaperNumber) -> bool:
    langs = table.groups.get(row[4:], []) if row.startswith("avg:") else [row]
    cells = [table.cells[(lang, column)] for lang in langs if (lang, column) in table.cells]
    return all(same_protocol(cell, number) for cell in cells)


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
    same = [item for item in found if _same_protocol_at(table, row, item[2], number)]
    if not same:
        return PaperComparison(
            table, number, None, DEFINITIONS_DIFFER, None, f"ours lack {_protocol_text(number)}"
        )
    found = same
    pick = min if table.lower_is_better else max
    value, n_langs, column = pick(found, key=lambda item: item[0])
    return PaperComparison(table, number, value * table.scale, f"{label}: {column.label}", n_langs)
