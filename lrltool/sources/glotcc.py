"""GlotCC-V1 web text -> text records, read from its parquet shards in batches.

Published format (hub dataset ``cis-lmu/GlotCC-V1``, CC0; confirmed: the repository's file tree has one
folder per language-script under ``v1.0/`` such as ``v1.0/ron-Latn/``, loaders in public code read
``data_files="v1.0/<code>/*.parquet"``, and the text column is ``content``; the other columns, confirmed
from re-uploads that state they were parsed from GlotCC-V1 (``udmurtNLP/udmurt_glotcc``,
``akahana/GlotCC-V1-jav-Latn``): ``warc-target-uri``, ``warc-date``, ``warc-record-id``,
``quality-warnings`` (list), ``categories`` (list), ``identification-language``, ``identification-prob``,
``identification-consistency``, ``script-percentage``, ``num-sents``, ``content-length``, ``tlsh``).
Not confirmed: the exact shard file names inside a language folder (``<code>_<n>.parquet`` per
docs/design.md); every ``*.parquet`` in the folder is read, in natural order, so the names do not matter.

``--input`` is a shard, a language folder, or a folder holding ``v1.0/<code>/``. Without it, only
``v1.0/<code>/*.parquet`` is downloaded. Records: ``id`` (the WARC record id), ``text`` (``content``),
``lang`` (the FLORES code), ``source`` ``"glotcc"``, ``meta`` (url, date, WARC record id, categories,
quality warnings, language-id probability, shard). Empty documents are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lrltool.errors import InputError
from lrltool.sources import hub
from lrltool.sources.base import FetchRequest, first_match, input_root, no_files_error, parquet_batches
from lrltool.streams import Record

REPO = "cis-lmu/GlotCC-V1"
WHAT = "GlotCC-V1 parquet (column 'content')"
#: Source column -> meta key, for the columns worth carrying along.
META_COLUMNS = {
    "warc-target-uri": "url",
    "warc-date": "date",
    "warc-record-id": "warc_record_id",
    "categories": "categories",
    "quality-warnings": "quality_warnings",
    "identification-prob": "lid_prob",
}


def locate(request: FetchRequest, splits: tuple[str, ...] = ("all",)) -> dict[str, list[Path]]:
    code = request.code
    if request.input is None:
        root = hub.snapshot(
            REPO, [f"v1.0/{code}/*.parquet"], revision=request.revision, what=f"GlotCC-V1 {code} shards"
        )
    else:
        root = input_root(request)
        if root.is_file():
            return {"all": [root]}
    tried = [f"v1.0/{code}/*.parquet", f"{code}/*.parquet", "*.parquet"]
    shards = first_match(root, tried)
    if shards:
        return {"all": shards}
    raise no_files_error(
        f"GlotCC shards for {code}",
        root,
        tried,
        hint="give a shard or the folder that holds v1.0/<code>/ (check the code with --code)",
    )


def read(paths: list[Path], request: FetchRequest, split: str) -> Iterator[Record]:
    from lrltool import ui

    stats = request.stats
    lang = request.language.code
    columns = ["content", *META_COLUMNS]
    with ui.progress(f"glotcc {request.code}", len(paths)) as bar:
        for shard in paths:
            row = 0
            for batch in parquet_batches(shard, columns, ["content"], what=WHAT):
                texts = batch["content"]
                meta_values = {META_COLUMNS[c]: batch[c] for c in META_COLUMNS if c in batch}
                for i, text in enumerate(texts):
                    row += 1
                    stats.records_in += 1
                    if text is not None and not isinstance(text, str):
                        request.reject(
                            InputError(
                                f"row {row}: 'content' is {type(text).__name__}, expected a string",
                                hint=f"expected {WHAT}",
                            ),
                            shard,
                        )
                        continue
                    if not text or not text.strip():
                        stats.drop("empty_text")
                        continue
                    meta = {key: values[i] for key, values in meta_values.items()}
                    meta["file"] = shard.name
                    yield {
                        "id": meta.get("warc_record_id") or f"{shard.stem}:{row}",
                        "text": text,
                        "lang": lang,
                        "source": "glotcc",
                        "meta": meta,
                    }
            bar.update(advance=1)
