"""SIB-200 topic classification (7 labels) -> classification records, one file per split.

Published formats:

- The SIB-200 repository (``dadelani/sib-200``): ``data/annotated/<code>/{train,dev,test}.tsv``,
  header ``index_id<TAB>category<TAB>text``, CSV-style quoting (a field holding a tab or ``"`` is quoted,
  inner quotes doubled), 701/99/204 rows. Confirmed on the real Romanian files
  (bundled in ``examples/sib200/data/annotated/ron_Latn``).
- The hub dataset ``Davlan/sib200`` still has a loading script, so its parquet export is read instead:
  revision ``refs/convert/parquet``, ``<code>/<split>/0000.parquet`` (the converter's layout, seen in other
  exported repos), columns ``index_id`` (int), ``text``, ``category`` (string; the features of the loading
  script as mirrored by SEACrowd's SIB-200 loader). Not confirmed: whether the export names the dev split
  ``validation`` or ``dev``; both folders are looked for and requested.

Labels are checked against the fixed SIB order below (docs/design.md "Records"); splits train/dev/test
are written as train/validation/test. Records: ``{"id": index_id, "text", "label": category}``.
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
from lrltool.streams import Record, open_text

REPO = "Davlan/sib200"
REVISION = "refs/convert/parquet"
LABELS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
COLUMNS = ("index_id", "category", "text")
#: Canonical split -> the names the published files use for it.
FILE_SPLITS = {"train": ("train",), "validation": ("dev", "validation"), "test": ("test",)}
_HINT = "expected SIB-200 data: columns index_id, category, text"


def _patterns(code: str, split: str) -> list[str]:
    names = FILE_SPLITS[split]
    tsv = [f"{where}{name}.tsv" for where in (f"data/annotated/{code}/", f"{code}/", "") for name in names]
    parquet = [f"{where}{name}/*.parquet" for where in (f"{code}/", "") for name in names]
    return tsv + parquet


def locate(request: FetchRequest, splits: tuple[str, ...]) -> dict[str, list[Path]]:
    code = request.code
    return locate_splits(
        request,
        splits,
        download=lambda: hub.snapshot(
            REPO,
            [f"{code}/{name}/*.parquet" for split in splits for name in FILE_SPLITS[split]],
            revision=request.revision or REVISION,
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
            stats.records_in += 1
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
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter="\t", quotechar='"')
        try:
            header = next(reader, None)
            if header is None or any(column not in header for column in COLUMNS):
                raise InputError(f"header is {header!r}", hint=_HINT + " (a tab-separated header)")
            index = {column: header.index(column) for column in COLUMNS}
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    request.reject(
                        InputError(
                            f"expected {len(header)} tab-separated fields, found {len(row)}",
                            hint=_HINT + ' (quote a field holding a tab or a " and double inner quotes)',
                        ),
                        path,
                        reader.line_num,
                    )
                    continue
                yield (
                    reader.line_num,
                    "",
                    row[index["index_id"]],
                    row[index["category"]],
                    row[index["text"]],
                )
        except csv.Error as exc:
            raise InputError(
                f"malformed TSV ({exc})", hint=_HINT, path=str(path), line=reader.line_num
            ) from None
        except InputError as exc:
            raise exc.located(str(path), reader.line_num or None) from None


def _parquet_rows(path: Path, request: FetchRequest) -> Iterator[tuple[int | None, str, object, object, str]]:
    row = 0
    for batch in parquet_batches(path, list(COLUMNS), list(COLUMNS), what="SIB-200 parquet (" + _HINT + ")"):
        for index_id, category, text in zip(batch["index_id"], batch["category"], batch["text"], strict=True):
            row += 1
            if not isinstance(text, str):
                request.reject(InputError(f"row {row}: 'text' is not a string", hint=_HINT), path)
                continue
            yield None, f"row {row}: ", index_id, category, text
