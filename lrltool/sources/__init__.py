"""Data sources for ``lrltool fetch``: one module per source, registered in ``SOURCES``.

Each source reads its real published format from ``--input`` or, without it, downloads exactly the
files that reader reads into the Hugging Face cache (see :mod:`lrltool.sources.base` and ``hub``).
Heavy imports (pyarrow, huggingface_hub) happen inside the functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from lrltool.errors import InputError, UsageError
from lrltool.languages import SOURCE_TITLES, Language, custom_language, resolve_language
from lrltool.sources import conceptnet, flores, glotcc, sentiment, sib200, wikiann
from lrltool.sources.base import SPLIT_ALIASES, FetchRequest, Source
from lrltool.streams import Stats, write_record_files, write_records

TASK_SPLITS = ("train", "validation", "test")

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "conceptnet",
            "triple",
            ("all",),
            False,
            "all",
            conceptnet.locate,
            conceptnet.read,
            summary="ConceptNet 5.7 assertions dump -> triples (start node in the language by default)",
        ),
        Source(
            "glotcc",
            "text",
            ("all",),
            False,
            "all",
            glotcc.locate,
            glotcc.read,
            summary="GlotCC-V1 parquet shards -> text records",
        ),
        Source(
            "flores",
            "text",
            flores.SPLITS,
            False,
            "devtest",
            flores.locate,
            flores.read,
            summary="FLORES-200 / FLORES+ devtest (default) or dev -> text records",
        ),
        Source(
            "sib200",
            "classification",
            TASK_SPLITS,
            True,
            None,
            sib200.locate,
            sib200.read,
            labels=sib200.LABELS,
            summary="SIB-200 topic classification TSVs or parquet export -> labelled texts",
        ),
        Source(
            "wikiann",
            "ner",
            TASK_SPLITS,
            True,
            None,
            wikiann.locate,
            wikiann.read,
            labels=wikiann.TAGS,
            summary="WikiANN parquet -> tokens and NER tags",
        ),
        Source(
            "sentiment",
            "classification",
            TASK_SPLITS,
            True,
            None,
            sentiment.locate,
            sentiment.read,
            labels=sentiment.LABELS,
            summary="<name>_sa sentiment CSVs -> labelled texts (0/1)",
        ),
    )
}

#: The ``custom_language`` option that overrides each source's code.
_CODE_OPTION = {
    "conceptnet": "conceptnet",
    "glotcc": "glotcc",
    "flores": "flores",
    "sib200": "flores",
    "wikiann": "wikiann",
    "sentiment": "sentiment",
}


def source_language(source: str, lang: str, code: str | None = None) -> tuple[Language, str]:
    """The language ``lang`` names and its code for ``source`` (``code`` overrides the resolved one).

    Refuses (InputError, exit 1) a language the source does not have, naming the sources that have it.
    """
    language = custom_language(lang, **{_CODE_OPTION[source]: code}) if code else resolve_language(lang)
    source_code = language.code_for(source)
    if not source_code:
        raise missing_source_error(language, source)
    return language, source_code


def missing_source_error(language: Language, source: str) -> InputError:
    """``FLORES-200 has no Breton (bre_Latn); it is in: glotcc (bre-Latn), conceptnet (br), ...``."""
    others = [
        f"{other} ({language.code_for(other)}" + (", by its naming rule" if other == "glotcc" else "") + ")"
        for other in language.sources()
        if other != source
    ]
    where = f"; it is in: {', '.join(others)}" if others else "; no source lrltool reads has it"
    return InputError(
        f"{SOURCE_TITLES[source]} has no {language.name} ({language.code}){where}",
        hint=f"use a source that has it, or give {source}'s code with --code if you know one",
    )


def _splits(spec: Source, split: str | None, output: str) -> tuple[str, ...]:
    """The splits to write, validating ``--split`` and ``-o`` against what the source publishes."""
    if spec.splits == ("all",):
        if split is not None:
            raise UsageError(f"{spec.name} has no splits", hint="leave out --split")
        return ("all",)
    if split is not None:
        name = split if split in spec.splits else SPLIT_ALIASES.get(split, split)
        if name not in spec.splits:
            raise UsageError(
                f"{spec.name} has no split {split!r}", hint=f"use one of {', '.join(spec.splits)}"
            )
        return (name,)
    if not spec.multi_split:
        assert spec.default_split is not None
        return (spec.default_split,)
    if output == "-":
        raise UsageError(
            f"{spec.name} has {len(spec.splits)} splits ({', '.join(spec.splits)})",
            hint="give -o DIR to write all of them, or --split NAME for one on stdout",
        )
    if Path(output).exists() and not Path(output).is_dir():
        raise UsageError(
            f"{output} is a file; without --split, -o names a folder for {', '.join(spec.splits)}",
            hint="give a folder, or pick one split with --split",
        )
    return spec.splits


def fetch_source(
    *,
    source: str,
    lang: str,
    code: str | None = None,
    input_path: Path | None = None,
    split: str | None = None,
    output: str = "-",
    match: str | None = None,
    revision: str | None = None,
    skip_bad_lines: bool = False,
    stats_path: Path | None = None,
) -> Stats:
    """Read ``source`` for language ``lang`` and write its records (docs/design.md "Records").

    Reads the published files under ``input_path`` or downloads them into the Hugging Face cache.
    Writes JSONL to ``output`` (``-`` = stdout, ``.zst``/``.gz`` compress); a multi-split source without
    ``split`` writes ``output/{train,validation,test}.jsonl.zst`` together, and with ``split`` and an
    existing folder as ``output``, ``output/<split>.jsonl.zst``. Refuses an unknown source,
    language, split or match mode (usage errors), missing or malformed files, and a result with no
    records (input errors); nothing is left behind on failure. Returns the run's counts, after printing
    the one-line summary to stderr (and writing ``stats_path`` if given).
    """
    spec = SOURCES.get(source)
    if spec is None:
        raise UsageError(f"unknown source {source!r}", hint=f"use one of {', '.join(SOURCES)}")
    if match is not None and source != "conceptnet":
        raise UsageError("--match applies to conceptnet only", hint="leave out --match")
    if (match or "start") not in conceptnet.MATCH_MODES:
        raise UsageError(f"unknown --match {match!r}", hint=f"use one of {', '.join(conceptnet.MATCH_MODES)}")
    language, source_code = source_language(source, lang, code)
    splits = _splits(spec, split, output)
    stats = Stats(f"fetch {source}")
    request = FetchRequest(
        source=source,
        language=language,
        code=source_code,
        input=input_path,
        revision=revision,
        match=match or "start",
        skip_bad_lines=skip_bad_lines,
        stats=stats,
    )
    if len(splits) == 1 and output != "-" and Path(output).is_dir():
        if not spec.multi_split:
            raise UsageError(f"-o {output} is a folder", hint="name the output file")
        output = str(Path(output) / f"{splits[0]}.jsonl.zst")  # one split into its place in DIR
    located = spec.locate(request, splits)
    counts: dict[str, int] = {}
    if len(splits) == 1:
        with write_records(output) as writer:
            for record in spec.read(located[splits[0]], request, splits[0]):
                writer.write(record)
            counts[splits[0]] = writer.count
            _refuse_empty(counts, request)
    else:
        paths = {name: Path(output) / f"{name}.jsonl.zst" for name in splits}
        with write_record_files(paths) as writers:
            for name in splits:
                for record in spec.read(located[name], request, name):
                    writers[name].write(record)
                counts[name] = writers[name].count
            _refuse_empty(counts, request)
    stats.records_out = sum(counts.values())
    if len(splits) > 1:
        stats.extra.update(counts)
    stats.extra["code"] = source_code
    stats.finish(stats_path)
    return stats


def _refuse_empty(counts: dict[str, int], request: FetchRequest) -> None:
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        where = "" if empty == ["all"] else f" in {', '.join(empty)}"
        raise InputError(
            f"no {request.source} records for code {request.code!r}{where}"
            f" ({request.stats.records_in:,} rows read)",
            hint="check the language's code for this source (--code)"
            + ("; ConceptNet 5.7 has Indonesian under 'ms'" if request.source == "conceptnet" else ""),
        )
