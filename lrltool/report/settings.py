"""Settings: what is behind each table, and differences among its records that make numbers incomparable."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from lrltool.report.load import Entry
from lrltool.report.tables import Column, Table

#: Settings that change the number for the same test data: records in one table must agree on them.
TABLE_WIDE_SETTINGS = ("variant", "paper_compat", "max_length", "label_all_subwords", "split")
#: Settings that identify the test data of one language: records of one language must agree on them.
PER_LANGUAGE_SETTINGS = ("data_hash", "data.hash", "eval_data_hash", "test_data_hash", "n")
UNSET = "<unset>"


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
    record = entry.metric_record
    flat = flatten_settings(dict(record.settings))
    flat["split"] = record.split
    flat["n"] = record.n
    return flat


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 48 else text[:45] + "..."


def settings_warnings(table: Table) -> list[str]:
    """Differences in settings that change the number, among records that one table compares."""
    warnings = []
    own = [e for e in table.entries if e.metric_record.model == table.model]
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
    record = entry.metric_record
    return Column(record.method, record.source, record.task_method).label


def settings_summary(entries: Sequence[Entry]) -> dict[str, Counter[str]]:
    """Every setting (flattened) and the record version as written, with how many records had each value."""
    summary: dict[str, Counter[str]] = defaultdict(Counter)
    for e in entries:
        summary["lrltool version"][_show(e.record.get("version", UNSET))] += 1
        for key, value in _settings_of(e).items():
            summary[key][_show(value)] += 1
    return dict(sorted(summary.items(), key=lambda kv: (kv[0] != "lrltool version", kv[0])))
