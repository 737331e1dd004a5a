"""The paper's binary sentiment sets (``<name>_sa``) -> classification records, one file per split.

Published format: hub datasets ``DGurgurov/<name>_sa`` (e.g. ``DGurgurov/romanian_sa``, confirmed: its
file tree holds ``train.csv``, ``dev.csv``, ``test.csv``, CC BY-SA 4.0), comma-separated with a header and
columns ``text`` and ``label`` (0/1) as docs/design.md gives them; not confirmed here beyond that: the
column names (an ``id`` column is used when present). The table's names for some languages are guesses
(see data/languages.tsv): a missing repository is a one-line "not found" error.

``--input`` is the repository folder (``train.csv`` ...) or a folder holding ``<name>_sa/``. Records:
``{"id", "text", "label"}`` with the label kept as the source has it, as a string ``"0"``/``"1"``;
``dev`` is written as ``validation``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from lrltool.errors import InputError
from lrltool.sources import hub
from lrltool.sources.base import FetchRequest, locate_splits
from lrltool.streams import Record, iter_lines

OWNER = "DGurgurov"
LABELS = ("0", "1")
FILES = {"train": "train.csv", "validation": "dev.csv", "test": "test.csv"}
_HINT = "expected a CSV file with a header and columns text, label (0 or 1)"


def locate(request: FetchRequest, splits: tuple[str, ...]) -> dict[str, list[Path]]:
    code = request.code
    return locate_splits(
        request,
        splits,
        download=lambda: hub.snapshot(
            f"{OWNER}/{code}",
            [FILES[split] for split in splits],
            revision=request.revision,
            what=f"the {code} sentiment splits",
        ),
        patterns=lambda split: [FILES[split], f"{code}/{FILES[split]}"],
        what=lambda split: f"sentiment {split} file ({FILES[split]})",
        hint=f"give the {code} folder (check the dataset name with --code)",
    )


def normalize_label(value: str) -> str | None:
    """``"1"``, ``"1.0"``, `` 1 `` -> ``"1"``; None for anything that is not 0 or 1."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return None
    return str(int(number)) if number in (0.0, 1.0) else None


class _Decoded:
    """The file's lines as text for the CSV reader: UTF-8, a leading byte-order mark dropped (utf-8-sig),
    a line that is not UTF-8 rejected by its number (skipped under --skip-bad-lines). ``line`` is the file's
    number of the line last read (the CSV reader's own count would miss a skipped line)."""

    def __init__(self, path: Path, request: FetchRequest) -> None:
        self.path, self.request, self.line = path, request, 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in iter_lines(self.path):
            self.line = number
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                error = InputError("line is not valid UTF-8", hint="save the file as UTF-8")
                self.request.reject(error, self.path, number)
                continue
            yield text + "\n"


def read(paths: list[Path], request: FetchRequest, split: str) -> Iterator[Record]:
    stats = request.stats
    path = paths[0]
    lines = _Decoded(path, request)
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None or "text" not in header or "label" not in header:
            raise InputError(f"header is {header!r}", hint=_HINT)
        text_at, label_at = header.index("text"), header.index("label")
        id_at = header.index("id") if "id" in header else None
        number = 0
        for row in reader:
            if not row:
                continue
            number += 1
            stats.records_in += 1
            if len(row) != len(header):
                request.reject(
                    InputError(
                        f"expected {len(header)} comma-separated fields, found {len(row)}", hint=_HINT
                    ),
                    path,
                    lines.line,
                )
                continue
            label = normalize_label(row[label_at])
            if label is None:
                request.reject(
                    InputError(f"label {row[label_at]!r} is not 0 or 1", hint=_HINT), path, lines.line
                )
                continue
            text = row[text_at]
            if not text.strip():
                stats.drop("empty_text")
                continue
            record_id = row[id_at] if id_at is not None else f"{split}:{number}"
            yield {"id": record_id, "text": text, "label": label}
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", hint=_HINT, path=str(path), line=lines.line) from None
    except InputError as exc:
        raise exc.located(str(path), lines.line or None) from None
