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
from lrltool.streams import Stats, write_json, write_record_files, write_records

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
            read_languages=conceptnet.read_languages,
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


#: The placeholder of ``-o`` (and ``--stats``) that a language's code replaces (its FLORES code where
#: FLORES has it, else ISO 639-3 + script: bre_Latn).
LANG_FIELD = "{lang}"


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
    edition: str | None = None,
) -> list[Stats]:
    """Read ``source`` for language ``lang`` (or several: ``ron,mlt,bul``) and write its records.

    Reads the published files under ``input_path`` or downloads them into the Hugging Face cache.
    Writes JSONL (docs/design.md "Records") to ``output`` (``-`` = stdout, ``.zst``/``.gz`` compress);
    a multi-split source without ``split`` writes ``output/{train,validation,test}.jsonl.zst`` together,
    and with ``split`` and an existing folder as ``output``, ``output/<split>.jsonl.zst``. ``{lang}`` in
    ``output`` (and ``stats_path``) becomes the language's code (ron_Latn, bre_Latn); several languages
    need it, and each gets exactly the output of a run for it alone. conceptnet reads the dump once for all of
    them and writes every file together or none; other sources are read one language after the other.
    ``edition`` (flores only): what is downloaded without ``input_path``, ``flores_plus`` (default) or
    ``flores200`` (facebook/flores); a local copy says its edition itself (records' ``meta.edition``).
    Refuses an unknown source, language, split, match mode or edition and a clash of languages (usage errors),
    missing or malformed files, and a result with no records (input errors); nothing is left behind on
    failure. Returns each language's counts, after printing its one-line summary to stderr (and writing
    ``stats_path``: one file per language with ``{lang}``, else one JSON object, by language if several).
    """
    spec = SOURCES.get(source)
    if spec is None:
        raise UsageError(f"unknown source {source!r}", hint=f"use one of {', '.join(SOURCES)}")
    if match is not None and source != "conceptnet":
        raise UsageError("--match applies to conceptnet only", hint="leave out --match")
    if (match or "start") not in conceptnet.MATCH_MODES:
        raise UsageError(f"unknown --match {match!r}", hint=f"use one of {', '.join(conceptnet.MATCH_MODES)}")
    if edition is not None and source != "flores":
        raise UsageError(f"--edition applies to flores only, not {source}", hint="leave out --edition")
    if edition is not None and edition not in flores.EDITIONS:
        raise UsageError(f"unknown --edition {edition!r}", hint=f"use one of {', '.join(flores.EDITIONS)}")
    jobs = _language_jobs(spec, lang, code, split, output)
    requests = [
        FetchRequest(
            source=source,
            language=language,
            code=source_code,
            input=input_path,
            revision=revision,
            match=match or "start",
            edition=edition,
            skip_bad_lines=skip_bad_lines,
            stats=Stats(f"fetch {source}"),
        )
        for language, source_code, _, _ in jobs
    ]
    if len(jobs) > 1 and spec.read_languages is not None:
        _write_languages(spec, requests, [target for _, _, _, target in jobs])
    else:
        for request, (_, _, splits, target) in zip(requests, jobs, strict=True):
            _write_language(spec, request, splits, target)
    for request in requests:
        request.stats.extra["code"] = request.code
        request.stats.finish(_stats_path(stats_path, request) if len(jobs) == 1 else None)
    if stats_path is not None and len(jobs) > 1:
        _write_stats(stats_path, requests)
    return [request.stats for request in requests]


def _language_jobs(
    spec: Source, lang: str, code: str | None, split: str | None, output: str
) -> list[tuple[Language, str, tuple[str, ...], str]]:
    """``(language, its code for the source, splits, output)`` for each language of ``--lang``."""
    names = [name.strip() for name in lang.split(",") if name.strip()]
    if not names:
        raise UsageError("--lang is empty", hint="name a language, e.g. --lang ron, or several: ron,mlt")
    if len(names) > 1:
        if code is not None:
            raise UsageError("--code names one language's code", hint="give one --lang with --code")
        if LANG_FIELD not in output:
            raise UsageError(
                f"{len(names)} languages need an output name with {LANG_FIELD} in it",
                hint=f"e.g. -o 'data/{LANG_FIELD}.jsonl.zst' ({LANG_FIELD} becomes each language's code)",
            )
    jobs, seen = [], {}
    for name in names:
        language, source_code = source_language(spec.name, name, code)
        if language.code in seen:
            raise UsageError(
                f"--lang names {language.name} twice ({seen[language.code]!r} and {name!r})",
                hint="name each language once",
            )
        seen[language.code] = name
        target = output.replace(LANG_FIELD, language.code)
        splits = _splits(spec, split, target)
        if len(splits) == 1 and target != "-" and Path(target).is_dir():
            if not spec.multi_split:
                raise UsageError(f"-o {target} is a folder", hint="name the output file")
            target = str(Path(target) / f"{splits[0]}.jsonl.zst")  # one split into its place in DIR
        jobs.append((language, source_code, splits, target))
    return jobs


def _write_language(spec: Source, request: FetchRequest, splits: tuple[str, ...], output: str) -> None:
    """One language's records to ``output`` (a file, stdout, or a folder of splits)."""
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
    request.stats.records_out = sum(counts.values())
    if len(splits) > 1:
        request.stats.extra.update(counts)


def _write_languages(spec: Source, requests: list[FetchRequest], outputs: list[str]) -> None:
    """Several languages' records in one pass over the source, every file written or none."""
    assert spec.read_languages is not None
    located = spec.locate(requests[0], ("all",))
    paths = {str(i): Path(output) for i, output in enumerate(outputs)}
    with write_record_files(paths) as writers:
        for index, record in spec.read_languages(located["all"], requests):
            writers[str(index)].write(record)
        for i, request in enumerate(requests):
            request.stats.records_out = writers[str(i)].count
            _refuse_empty({"all": writers[str(i)].count}, request)


def _stats_path(stats_path: Path | None, request: FetchRequest) -> Path | None:
    if stats_path is None:
        return None
    return Path(str(stats_path).replace(LANG_FIELD, request.language.code))


def _write_stats(stats_path: Path, requests: list[FetchRequest]) -> None:
    """Several languages' summaries: one file each with ``{lang}``, else one object by language code."""
    if LANG_FIELD in str(stats_path):
        for request in requests:
            write_json(_stats_path(stats_path, request), request.stats.as_dict())  # type: ignore[arg-type]
    else:
        write_json(
            stats_path,
            {
                "command": requests[0].stats.command,
                "languages": {r.language.code: r.stats.as_dict() for r in requests},
            },
        )


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
