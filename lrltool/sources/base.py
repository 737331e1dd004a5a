"""What every ``fetch`` source shares: the request it reads, how it finds its files, how it reports rows.

A source module defines two functions and registers them in ``SOURCES`` (``lrltool/sources/__init__.py``):

- ``locate(request, splits) -> dict[split, list[Path]]``: the files of each split asked for, found under
  ``--input`` (a file or a folder laid out as the source publishes it) or, without ``--input``,
  downloaded into the Hugging Face cache (:mod:`lrltool.sources.hub`) and then found there the same way.
- ``read(paths, request, split) -> Iterator[Record]``: the records of one split, streamed.

Readers raise :class:`InputError` located at the file and line (or parquet row) of a bad row through
:meth:`FetchRequest.reject`, which counts and skips it instead under ``--skip-bad-lines``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrltool.errors import InputError, LrlError
from lrltool.languages import Language
from lrltool.streams import Record, Stats

#: How the user may spell a split, by canonical name.
SPLIT_ALIASES = {"dev": "validation", "valid": "validation", "val": "validation"}


@dataclass
class FetchRequest:
    """One ``fetch`` run: the language, its code for this source, where the data is, and the counters."""

    source: str
    language: Language
    code: str
    input: Path | None = None
    revision: str | None = None
    match: str = "start"
    edition: str | None = None  # flores: what to download (flores.EDITIONS); None = FLORES+
    skip_bad_lines: bool = False
    stats: Stats = field(default_factory=lambda: Stats("fetch"))
    warned: int = 0

    def reject(self, error: LrlError, path: Path | str | None = None, line: int | None = None) -> None:
        """Raise ``error`` located at ``path:line``, or count it as a bad line under --skip-bad-lines."""
        error.located(None if path is None else str(path), line)
        if not self.skip_bad_lines or not isinstance(error, InputError):
            raise error
        self.stats.drop("bad_line")
        if self.warned < 5:
            from lrltool import ui

            ui.warn(f"skipped: {error}")
        self.warned += 1


Locate = Callable[[FetchRequest, tuple[str, ...]], dict[str, list[Path]]]
Read = Callable[[list[Path], FetchRequest, str], Iterator[Record]]
#: One pass for several languages (one request each): ``(index of the request, record)`` in input order.
ReadLanguages = Callable[[list[Path], list[FetchRequest]], Iterator[tuple[int, Record]]]


@dataclass(frozen=True)
class Source:
    """A data source of ``fetch``: its record kind, its splits and its two functions."""

    name: str
    record: str  # "triple", "text", "classification" or "ner" (docs/design.md "Records")
    splits: tuple[str, ...]  # the splits it publishes, canonical names
    multi_split: bool  # writes every split to -o DIR unless --split picks one
    default_split: str | None
    locate: Locate
    read: Read
    labels: tuple[str, ...] | None = None  # the fixed label (or tag) order, where there is one
    summary: str = ""
    read_languages: ReadLanguages | None = None  # several languages in one pass (else one after another)


def natural_key(path: Path) -> tuple[Any, ...]:
    """Sort ``x_2.parquet`` before ``x_10.parquet`` (shards are numbered without padding)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def parquet_batches(
    path: Path, columns: list[str], required: list[str], *, batch_size: int = 1024, what: str
) -> Iterator[dict[str, list[Any]]]:
    """Batches of a parquet file as ``{column: values}`` (only ``columns`` that exist), streamed.

    Refuses a file that is not parquet or lacks a ``required`` column, naming what was expected.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError("no such file", hint="check the path", path=str(path)) from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"not a readable parquet file ({exc})", hint=f"expected {what}", path=str(path)
        ) from None
    names = set(file.schema_arrow.names)
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(
            f"parquet file has no column {', '.join(repr(c) for c in missing)}"
            f" (it has {', '.join(sorted(names))})",
            hint=f"expected {what}",
            path=str(path),
        )
    present = [c for c in columns if c in names]
    try:
        for batch in file.iter_batches(batch_size=batch_size, columns=present):
            yield {name: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"parquet file is damaged ({exc})", hint="download or write the file again", path=str(path)
        ) from None


def no_files_error(what: str, where: Path, tried: list[str], hint: str) -> InputError:
    """The error for a folder that lacks the files a source publishes."""
    return InputError(
        f"no {what} found (looked for {', '.join(tried)})",
        hint=hint,
        path=str(where),
    )


def first_match(root: Path, patterns: list[str]) -> list[Path]:
    """The files of the first glob pattern (relative to ``root``) that matches any, in natural order."""
    for pattern in patterns:
        found = sorted((p for p in root.glob(pattern) if p.is_file()), key=natural_key)
        if found:
            return found
    return []


def input_root(request: FetchRequest) -> Path:
    """``--input`` as given, refusing a path that does not exist."""
    assert request.input is not None
    if not request.input.exists():
        raise InputError("no such file or folder", hint="check the --input path", path=str(request.input))
    return request.input


def locate_splits(
    request: FetchRequest,
    splits: tuple[str, ...],
    *,
    download: Callable[[], Path],
    patterns: Callable[[str], list[str]],
    what: Callable[[str], str],
    hint: str,
) -> dict[str, list[Path]]:
    """The files of each split: under the downloaded snapshot, or under --input (a folder of the
    published layout, or one file when one split is asked for)."""
    if request.input is None:
        root = download()
    else:
        root = input_root(request)
        if root.is_file():
            if len(splits) != 1:
                raise InputError(
                    "a single file holds one split",
                    hint="pick it with --split, or give the folder that holds all three",
                    path=str(root),
                )
            return {splits[0]: [root]}
    located = {}
    for split in splits:
        tried = patterns(split)
        files = first_match(root, tried)
        if not files:
            raise no_files_error(what(split), root, tried[:3], hint=hint)
        located[split] = files
    return located
