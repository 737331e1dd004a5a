"""FLORES-200 / FLORES+ sentences of one split (``devtest`` by default, or ``dev``) -> text records.

Published formats:

- FLORES-200 tarball (``flores200_dataset/{dev,devtest}/<code>.{dev,devtest}``): one sentence a line,
  997 dev and 1012 devtest sentences. Layout as docs/design.md "Data sources" gives it; no copy was
  available here to check.
- FLORES+ (hub dataset ``openlanguagedata/flores_plus``, gated: the user must accept its terms). Confirmed
  from public code: older revisions hold ``{dev,devtest}/<code>.parquet``, newer ones
  ``{dev,devtest}/<code>.jsonl``; both have a ``text`` column/key and an ``id``. Both are read; without
  ``--input`` both patterns are requested and whichever the revision has is downloaded. Not confirmed
  here: the other FLORES+ columns (``url``, ``domain``, ``topic`` are carried into ``meta`` if present).

- FLORES-200 as the hub's ``facebook/flores`` publishes it (what the paper's PPPL script loaded,
  get_pppl_flores_adapter.py:91): parquet with the sentence in column ``sentence`` (and ``id``, ``URL``,
  ``domain``, ``topic``, ...), one folder per language config. ``--edition flores200`` downloads it
  (``hub.snapshot``, no dataset script is run) from ``--revision``, or else from the main branch and,
  when that has none of the files (a script dataset's main branch holds no data), from the hub's parquet
  export ``refs/convert/parquet``, asking for each
  layout a parquet conversion of a config ``<code>`` has: ``<code>/<split>-*.parquet`` (the layout
  ``datasets``' ``push_to_hub`` writes, which public download code uses for facebook/flores),
  ``<code>/<split>/*.parquet`` (the hub's parquet export, ``--revision refs/convert/parquet``) and
  ``<code>/*-<split>.parquet`` (the export's older naming, ``<config>/<name>-<split>.parquet``).
  Not verified against the live repository from here (no network): which of them facebook/flores holds
  today, and whether older revisions keep the script's ``flores200_dataset.tar.gz`` (the tarball is not
  read). A download that finds none of them in either says so.

``--input`` is one of those files, or a folder holding ``<split>/<code>.<split|parquet|jsonl>`` (or
``flores200_dataset/<split>/...``, or ``<code>/<split>/*.parquet``). Records: ``id`` ``"<split>:<n>"``
(the FLORES+ id or the line number), ``text``, ``lang`` (FLORES code), ``source`` ``"flores"``, ``meta``
with the split and the ``edition`` read: ``flores200`` (the tarball's text files), ``flores_plus``
(column ``text``) or ``facebook/flores`` (column ``sentence``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lrltool import ui
from lrltool.errors import InputError
from lrltool.sources import hub
from lrltool.sources.base import FetchRequest, first_match, input_root, no_files_error, parquet_batches
from lrltool.streams import Record, Stats, iter_lines, read_records, require

REPO = "openlanguagedata/flores_plus"
FLORES200_REPO = "facebook/flores"
#: The hub's parquet export of a dataset repository (the dataset viewer's conversion), a revision.
PARQUET_EXPORT = "refs/convert/parquet"
#: ``fetch flores --edition``: what is downloaded without ``--input`` (the hub repository).
EDITIONS = {"flores_plus": REPO, "flores200": FLORES200_REPO}
PARQUET_FORM = "FLORES+ parquet (column 'text') or facebook/flores parquet (column 'sentence')"
SPLITS = ("devtest", "dev")
META_COLUMNS = ("url", "domain", "topic")


def _patterns(code: str, split: str) -> list[str]:
    return [
        f"{split}/{code}.{split}",
        f"flores200_dataset/{split}/{code}.{split}",
        f"{split}/{code}.parquet",
        f"{split}/{code}.jsonl",
        *_facebook_patterns(code, split),
    ]


def _facebook_patterns(code: str, split: str) -> list[str]:
    """facebook/flores config ``code`` as parquet: push_to_hub's shards, the parquet export's (new, old)."""
    return [f"{code}/{split}-*.parquet", f"{code}/{split}/*.parquet", f"{code}/*-{split}.parquet"]


def _download(request: FetchRequest, splits: tuple[str, ...]) -> Path:
    """The snapshot folder of the edition's files for this language (``request.edition``, FLORES+ unless
    it says flores200)."""
    code = request.code
    if request.edition == "flores200":
        return _download_facebook_flores(request, splits)
    patterns = [p for split in splits for p in (f"{split}/{code}.parquet", f"{split}/{code}.jsonl")]
    return hub.snapshot(REPO, patterns, revision=request.revision, what=f"FLORES+ {code} sentences")


def _download_facebook_flores(request: FetchRequest, splits: tuple[str, ...]) -> Path:
    """facebook/flores at ``--revision``; without one, its main branch and then its parquet export
    (``refs/convert/parquet``: a script dataset's main branch holds no data files). The main branch's
    error is the one raised when neither has the files; a gated repository stops at the first."""
    code = request.code
    patterns = [p for split in splits for p in _facebook_patterns(code, split)]
    what = f"FLORES-200 {code} sentences (parquet)"
    revisions = [request.revision] if request.revision is not None else [None, PARQUET_EXPORT]
    first: InputError | None = None
    for revision in revisions:
        try:
            folder = hub.snapshot(FLORES200_REPO, patterns, revision=revision, what=what)
        except InputError as exc:
            if "gated" in exc.message:
                raise
            first = first or exc
            continue
        if revision is not None and revision != request.revision:
            ui.info(f"fetch flores: facebook/flores has no {code} parquet on main; read its parquet export")
        return folder
    assert first is not None
    if request.revision is None:
        first.hint = f"nor has its parquet export ({PARQUET_EXPORT}); " + (first.hint or "")
    raise first


def locate(request: FetchRequest, splits: tuple[str, ...]) -> dict[str, list[Path]]:
    code = request.code
    if request.input is None:
        root = _download(request, splits)
    else:
        root = input_root(request)
        if root.is_file():
            return {split: [root] for split in splits}
    located = {}
    for split in splits:
        files = first_match(root, _patterns(code, split))
        if not files:
            raise no_files_error(
                f"FLORES {split} file for {code}",
                root,
                _patterns(code, split),
                hint="give the file itself or the folder that holds <split>/ (check the code with --code)",
            )
        sharded = files[0].parent.name == code and files[0].name.startswith(f"{split}-")  # push_to_hub
        exported = files[0].parent.name == split and files[0].parent.parent.name == code
        located[split] = files if sharded or exported else files[:1]
    return located


def read(paths: list[Path], request: FetchRequest, split: str) -> Iterator[Record]:
    lang = request.language.code
    stats = request.stats
    rows = (row for path in paths for row in _rows(path, request))
    for number, text, meta in rows:
        stats.records_in += 1
        if not text.strip():
            stats.drop("empty_text")
            continue
        yield {
            "id": f"{split}:{number}",
            "text": text,
            "lang": lang,
            "source": "flores",
            "meta": {"split": split, **meta},
        }


def _rows(path: Path, request: FetchRequest) -> Iterator[tuple[object, str, dict[str, object]]]:
    """``(id, text, meta)`` of a FLORES+ parquet/jsonl file or a FLORES-200 plain-text file."""
    if path.suffix == ".parquet":
        column, edition = _parquet_text_column(path)
        row = 0
        for batch in parquet_batches(path, ["id", column, *META_COLUMNS], [column], what=PARQUET_FORM):
            ids = batch.get("id")
            for i, text in enumerate(batch[column]):
                row += 1
                if not isinstance(text, str):
                    request.reject(InputError(f"row {row}: '{column}' is not a string"), path)
                    continue
                meta = {key: batch[key][i] for key in META_COLUMNS if key in batch}
                yield (ids[i] if ids is not None else row), text, {**meta, "edition": edition}
    elif path.suffix == ".jsonl":
        bad_json = Stats("flores")  # lines the reader itself skips under --skip-bad-lines
        reader = read_records(path, skip_bad_lines=request.skip_bad_lines, stats=bad_json)
        for record in reader:
            try:
                text = require(record, "text", what="FLORES+ record")
            except InputError as exc:
                request.reject(exc, path, reader.line)
                continue
            meta = {key: record[key] for key in META_COLUMNS if key in record}
            yield record.get("id", reader.line), text, {**meta, "edition": "flores_plus"}
        if bad_json.dropped:
            request.stats.drop("bad_line", bad_json.dropped["bad_line"])
    else:
        for number, raw in iter_lines(path):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                request.reject(
                    InputError("line is not valid UTF-8", hint="expected UTF-8 text"), path, number
                )
                continue
            yield number, text, {"edition": "flores200"}


def _parquet_text_column(path: Path) -> tuple[str, str]:
    """(column, edition): ``text`` for FLORES+, ``sentence`` for facebook/flores; else FLORES+'s ``text``
    (whose absence :func:`parquet_batches` then reports)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError):
        return "text", "flores_plus"  # parquet_batches says what is wrong with the file
    if "text" not in names and "sentence" in names:
        return "sentence", "facebook/flores"
    return "text", "flores_plus"
