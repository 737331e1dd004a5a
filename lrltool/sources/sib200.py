"""SIB-200 topic classification (7 labels) -> classification records, one file per split.

Published formats, all read from ``--input`` or from a download of any revision:

- The hub dataset ``Davlan/sib200`` on its main branch: ``data/<code>/{train,dev,test}.tsv`` (what
  ``hf download Davlan/sib200 --repo-type dataset --local-dir X`` writes under ``X``); the default download.
- The SIB-200 repository (``dadelani/sib-200``): ``data/annotated/<code>/{train,dev,test}.tsv``.
  Both TSV layouts: header ``index_id<TAB>category<TAB>text``, one row per line (a row never spans
  lines), CSV-style quoting per field (a field holding a tab or starting with ``"`` is quoted, inner quotes
  doubled), 701/99/204 rows. Confirmed on the real Romanian files (bundled in
  ``examples/sib200/data/annotated/ron_Latn``). Read line by line and unquoted per line, so a stray ``"``
  costs exactly its line (skipped with ``--skip-bad-lines``, else the error names it).
- The hub's parquet export (``--revision refs/convert/parquet``): ``<code>/<split>/0000.parquet`` with
  columns ``index_id``, ``text``, ``category``; the dev split as ``validation`` or ``dev``.

Without ``--input`` every layout's file names are requested at the revision (main by default), so whatever
layout that revision holds is downloaded. Labels are checked against the fixed SIB order below
(docs/design.md "Records"); splits train/dev/test are written as train/validation/test. Records:
``{"id": index_id, "text", "label": category}``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from lrltool.errors import InputError
from lrltool.sources import hub
from lrltool.sources.base import (
    FetchRequest,
    locate_splits,
    parquet_batches,
)
from lrltool.streams import Record, iter_lines

REPO = "Davlan/sib200"
LABELS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
COLUMNS = ("index_id", "category", "text")
#: Canonical split -> the names the published files use for it.
FILE_SPLITS = {"train": ("train",), "validation": ("dev", "validation"), "test": ("test",)}
_HINT = "expected SIB-200 data: columns index_id, category, text"
_QUOTING_HINT = _HINT + ' (quote a field holding a tab or starting with ", doubling inner quotes)'


def _patterns(code: str, split: str) -> list[str]:
    names = FILE_SPLITS[split]
    folders = (f"data/{code}/", f"data/annotated/{code}/", f"{code}/", "")
    tsv = [f"{where}{name}.tsv" for where in folders for name in names]
    parquet = [f"{where}{name}/*.parquet" for where in (f"{code}/", "") for name in names]
    return tsv + parquet


def locate(request: FetchRequest, splits: tuple[str, ...]) -> dict[str, list[Path]]:
    code = request.code
    return locate_splits(
        request,
        splits,
        download=lambda: hub.snapshot(
            REPO,
            [p for split in splits for p in _patterns(code, split) if p.startswith((code, "data/"))],
            revision=request.revision,
            what=f"SIB-200 {code} splits",
        ),
        patterns=lambda split: _patterns(code, split),
        what=lambda split: f"SIB-200 {split} split for {code}",
        hint="give the folder of the published layout (check the code with --code)",
    )


def read(paths: list[Path], request: FetchRequest, split: str) -> Iterator[Record]:
    stats = request.stats
    for path in paths:
        rows = _parquet_rows(path, request) if path.suffix == ".parquet" else _tsv_rows(path, request)
        for line, where, index_id, category, text in rows:
            stats.records_in += path.suffix == ".parquet"
            if category not in LABELS:
                request.reject(
                    InputError(
                        f"{where}unknown category {category!r}",
                        hint=f"SIB-200 labels are {', '.join(LABELS)}",
                    ),
                    path,
                    line,
                )
                continue
            if not text.strip():
                stats.drop("empty_text")
                continue
            yield {"id": str(index_id), "text": text, "label": category}


def _tsv_rows(path: Path, request: FetchRequest) -> Iterator[tuple[int | None, str, object, object, str]]:
    """The rows of a SIB-200 TSV: one per line, each unquoted on its own (a quote never spans lines)."""
    lines = iter_lines(path)
    header = _tsv_header(path, next(lines, None))
    index = {column: header.index(column) for column in COLUMNS}
    for number, raw in lines:
        if not raw.strip():
            continue
        request.stats.records_in += 1  # counted here, bad lines too; read() counts parquet rows
        try:
            row = next(csv.reader([raw.decode("utf-8")], delimiter="\t", quotechar='"', strict=True))
        except UnicodeDecodeError:
            request.reject(InputError("line is not valid UTF-8", hint="save the file as UTF-8"), path, number)
            continue
        except csv.Error as exc:
            request.reject(InputError(f"malformed quoting ({exc})", hint=_QUOTING_HINT), path, number)
            continue
        if len(row) != len(header):
            request.reject(
                InputError(
                    f"expected {len(header)} tab-separated fields, found {len(row)}", hint=_QUOTING_HINT
                ),
                path,
                number,
            )
            continue
        yield number, "", row[index["index_id"]], row[index["category"]], row[index["text"]]


def _tsv_header(path: Path, first: tuple[int, bytes] | None) -> list[str]:
    try:
        text = first[1].decode("utf-8-sig") if first is not None else ""
    except UnicodeDecodeError:
        raise InputError(
            "line is not valid UTF-8", hint="save the file as UTF-8", path=str(path), line=1
        ) from None
    header = text.split("\t") if text else None
    if header is None or any(column not in header for column in COLUMNS):
        raise InputError(
            f"header is {header!r}", hint=_HINT + " (a tab-separated header)", path=str(path), line=1
        )
    return header


def _parquet_rows(path: Path, request: FetchRequest) -> Iterator[tuple[int | None, str, object, object, str]]:
    row = 0
    for batch in parquet_batches(path, list(COLUMNS), list(COLUMNS), what="SIB-200 parquet (" + _HINT + ")"):
        for index_id, category, text in zip(batch["index_id"], batch["category"], batch["text"], strict=True):
            row += 1
            if not isinstance(text, str):
                request.reject(InputError(f"row {row}: 'text' is not a string", hint=_HINT), path)
                continue
            yield None, f"row {row}: ", index_id, category, text
