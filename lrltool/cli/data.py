"""The data commands: languages, fetch, verbalize, cap, and tiny-model (a tiny model for tests, demo)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from lrltool import ui
from lrltool.cli.group import command
from lrltool.cli.options import (
    InputArg,
    InputFormatOpt,
    OutputOpt,
    QuietOpt,
    RevisionOpt,
    SkipBadOpt,
    StatsOpt,
    set_input_format,
)

# --- languages ------------------------------------------------------------------------------------


@command(
    "languages",
    examples=[
        "lrltool languages",
        "lrltool languages Breton",
        "lrltool languages --json mlt",
    ],
)
def languages_cli(
    code: Annotated[
        str | None,
        typer.Argument(help="Show the language this ISO 639 code, FLORES code or English name names."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per language.")] = False,
    field: Annotated[
        str | None,
        typer.Option(
            "--field",
            help="Print only this field of each language (code, flores, sib200, glotcc, conceptnet, wikiann,"
            " sentiment, sources, iso1, iso3, ...); an empty line where the source does not have it.",
        ),
    ] = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Every language a source lists (FLORES-200/SIB-200, ConceptNet, WikiANN)."
        ),
    ] = False,
) -> None:
    """Show each data source's code for a language (or the paper's 30, or --all); "-": the source lacks it.

    Any ISO 639-1/2/3 code, FLORES/GlotCC code with script (fra_Latn, uzn-Cyrl) or English name resolves.

    An ambiguous code (msa: a macrolanguage; kas: two scripts) is refused, listing the codes to choose from.

    GlotCC codes follow its naming rule: whether its folder exists is known only when downloading.
    """
    from lrltool.errors import UsageError
    from lrltool.languages import RECORD_FIELDS, all_languages, registry, resolve_language

    if code is not None and every:
        raise UsageError("give a language or --all, not both", hint="drop one of them")
    langs = [resolve_language(code)] if code else all_languages() if every else list(registry())
    if field is not None:
        if field not in RECORD_FIELDS:
            raise UsageError(f"unknown field '{field}'", hint=f"choose one of {', '.join(RECORD_FIELDS)}")
        for lang in langs:
            value = lang.as_record()[field]
            if isinstance(value, list):  # sources: space-separated, for Make
                value = " ".join(value)
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            sys.stdout.write(f"{text}\n")
        return
    if as_json:
        import orjson

        for lang in langs:
            sys.stdout.buffer.write(orjson.dumps(lang.as_record()) + b"\n")
        return
    _languages_table(langs, title="lrltool languages" + (f": {len(langs)} in the sources" if every else ""))


def _languages_table(langs: list[Any], *, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    columns = ("name", "code", "FLORES/SIB", "GlotCC", "ConceptNet", "WikiANN", "sentiment", "paper")
    for column in (*columns, "mBERT GB", "XLM-R GB"):
        table.add_column(column, justify="right" if "GB" in column else "left")
    for lang in langs:
        codes = (lang.flores, lang.glotcc, lang.conceptnet, lang.wikiann, lang.sentiment)
        sizes = (lang.mbert_gb, lang.xlmr_gb)
        table.add_row(
            lang.name,
            lang.code,
            *(value or "-" for value in codes),
            "yes" if lang.paper else "",
            *("?" if not lang.paper else "-" if gb is None else f"{gb:.2f}" for gb in sizes),
        )
    table.caption = (
        "-: the source does not have the language (GB: not in the model's pre-training; ?: not known)."
        " GlotCC codes follow its naming rule; a missing folder is reported when downloading."
    )
    table.caption_justify = "left"
    Console(width=None if sys.stdout.isatty() else 160).print(table)


# --- fetch ----------------------------------------------------------------------------------------


class FetchSource(str, Enum):
    conceptnet = "conceptnet"
    glotcc = "glotcc"
    flores = "flores"
    sib200 = "sib200"
    wikiann = "wikiann"
    sentiment = "sentiment"


class MatchMode(str, Enum):
    start = "start"
    either = "either"
    both = "both"


@command(
    "fetch",
    examples=[
        "lrltool fetch sib200 --lang mlt -o data/sib200",
        "lrltool fetch flores --lang ron --input examples/flores | head",
        "lrltool fetch flores --lang mlt --edition flores200 -o data/flores.jsonl.zst",
        "lrltool fetch glotcc --lang mlt | lrltool cap --max-bytes 1G -o data/glotcc",
    ],
)
def fetch_cli(
    source: Annotated[FetchSource, typer.Argument(help="Data source.", show_default=False)],
    lang: Annotated[
        str,
        typer.Option(
            "--lang",
            "-l",
            help="Language: ron, ro, ron_Latn, Romanian, ...; several: ron,mlt,bul with -o naming {lang}"
            " (conceptnet reads its dump once for all of them).",
        ),
    ],
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "-i",
            help="Local copy as published (a file or folder); default: download to the HF cache.",
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="flores: devtest (default) or dev. sib200/wikiann/sentiment: train, validation (dev)"
            " or test, written to -o/stdout; without it -o DIR gets all three.",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output file ('.zst'/'.gz' compress; '-' writes stdout) or folder of splits;"
            " {lang} in it becomes the language's code (ron_Latn, bre_Latn): -o 'data/{lang}.jsonl.zst'.",
        ),
    ] = "-",
    match: Annotated[
        MatchMode | None,
        typer.Option(
            help="conceptnet: the language on the start node (default, as the paper), either or both."
        ),
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code", help="This source's code for the language (overrides the one lrltool resolves)."
        ),
    ] = None,
    edition: Annotated[
        str | None,
        typer.Option(
            help="flores: what to download, flores_plus (openlanguagedata/flores_plus, default) or flores200"
            " (facebook/flores, the paper's); --input files say their edition themselves."
        ),
    ] = None,
    revision: RevisionOpt = None,
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Read a data source in its published format and write JSONL records.

    conceptnet: triples. glotcc, flores: texts. sib200, sentiment: labelled texts. wikiann: NER tags.

    Without --input, the published files are first downloaded into the Hugging Face cache.

    Several languages: --lang ron,mlt,bul -o 'DIR/{lang}.jsonl.zst' (conceptnet: one pass over the dump).
    """
    from lrltool.sources import fetch_source

    ui.configure(quiet=quiet)
    fetch_source(
        source=source.value,
        lang=lang,
        code=code,
        input_path=input_path,
        split=split,
        output=output,
        match=match.value if match else None,
        revision=revision,
        skip_bad_lines=skip_bad_lines,
        stats_path=stats,
        edition=edition,
    )


# --- verbalize, cap -------------------------------------------------------------------------------


@command(
    "verbalize",
    examples=[
        "lrltool fetch conceptnet --lang ron | lrltool verbalize -o data/conceptnet.jsonl",
    ],
)
def verbalize_cli(
    input: InputArg = "-",
    output: OutputOpt = "-",
    templates: Annotated[
        Path | None,
        typer.Option(
            "--templates",
            help="Your own TSV of 'relation<TAB>predicate' lines (replaces the paper's 33 English ones).",
        ),
    ] = None,
    keep_duplicates: Annotated[
        bool, typer.Option("--keep-duplicates", help="Keep sentences that occurred before.")
    ] = False,
    paper_compat: Annotated[
        bool,
        typer.Option(
            "--paper-compat",
            help="The paper's verbalizer: the word is the node URI's last segment (a POS or sense"
            " tag when the URI has one), only exact self-loops dropped, duplicates kept.",
        ),
    ] = False,
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Turn ConceptNet triples (from 'fetch conceptnet') into text records "<start> <predicate> <end>.".

    Drops self-loops (ignoring case), relations without a template (counted by relation) and repeated
    sentences.
    """
    from lrltool.corpus.verbalize import verbalize_triples

    ui.configure(quiet=quiet)
    verbalize_triples(
        input_path=input,
        output=output,
        templates_path=templates,
        keep_duplicates=keep_duplicates,
        skip_bad_lines=skip_bad_lines,
        paper_compat=paper_compat,
    ).finish(stats)


@command(
    "cap",
    examples=[
        "lrltool cap corpus.jsonl.zst --max-bytes 1G --split train=0.9,validation=0.1 -o data/glotcc",
        "cat corpus.txt | lrltool cap --input-format text --lang mlt -o corpus.jsonl.zst",
    ],
)
def cap_cli(
    input: InputArg = "-",
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output file ('.zst'/'.gz' compress; '-' writes stdout), or with --split a folder.",
        ),
    ] = "-",
    max_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-bytes",
            help="Keep records until their texts reach this many UTF-8 bytes: 100k, 500M, 1G "
            "(powers of 1000), 1GiB (powers of 1024) or a plain number. Default: no cap. With"
            " --paper-compat, per split: train=1GiB,validation=200MiB.",
        ),
    ] = None,
    min_chars: Annotated[
        int,
        typer.Option(
            "--min-chars", min=0, help="Drop texts shorter than this after cleaning (empty ones always)."
        ),
    ] = 1,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Write DIR/<name>.jsonl.zst per split, by a hash of each id: "
            "train=0.8,validation=0.1,test=0.1.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split assignment.")] = 42,
    keep_duplicates: Annotated[
        bool, typer.Option("--keep-duplicates", help="Keep texts that occurred before.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes that clean batches (default: the CPUs, at most 8)."),
    ] = None,
    paper_compat: Annotated[
        bool,
        typer.Option(
            "--paper-compat",
            help="The paper's data preparation into -o DIR: no cleaning, no dedup, scikit-learn's"
            " train_test_split 80/10/10 (random_state 42) in file order, then each split cut by line share"
            " to --max-bytes train=...,validation=... (docs/paper-protocol.md).",
        ),
    ] = False,
    input_format: InputFormatOpt = None,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            "-l",
            help="Set this language (an ISO 639 or FLORES code, a name) as 'lang' on records that have"
            " none: the lines of a plain-text input.",
        ),
    ] = None,
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Clean text records (NFC, no control characters, single spaces), drop exact duplicates, cap the bytes.

    Records are kept in input order until the next would push the UTF-8 bytes of the kept texts over
    --max-bytes; other keys pass through unchanged. Plain text (a .txt file, or stdin with --input-format
    text) is one record a line, as train-adapter reads it.
    """
    from lrltool.corpus.cap import cap_records, paper_cap_records, parse_size, parse_split, parse_split_sizes
    from lrltool.errors import UsageError
    from lrltool.languages import resolve_language

    ui.configure(quiet=quiet)
    set_input_format(input_format)
    code = None if lang is None else resolve_language(lang).code
    if paper_compat:
        if split is not None or keep_duplicates or min_chars != 1:
            raise UsageError("--paper-compat makes its own split and neither cleans nor deduplicates",
                             hint="drop --split, --keep-duplicates and --min-chars")  # fmt: skip
        paper_cap_records(
            input_path=input,
            output=output,
            max_bytes=None if max_bytes is None else parse_split_sizes(max_bytes),
            skip_bad_lines=skip_bad_lines,
            lang=code,
        ).finish(stats)
        return
    if max_bytes is not None and "=" in max_bytes:
        raise UsageError("per-split --max-bytes (name=size) needs --paper-compat", hint="give one size")
    cap_records(
        input_path=input,
        output=output,
        max_bytes=None if max_bytes is None else parse_size(max_bytes),
        min_chars=min_chars,
        split=None if split is None else parse_split(split),
        seed=seed,
        keep_duplicates=keep_duplicates,
        skip_bad_lines=skip_bad_lines,
        workers=workers,
        lang=code,
    ).finish(stats)


# --- tiny-model -----------------------------------------------------------------------------------


@command(
    "tiny-model",
    examples=[
        "lrltool tiny-model -o tiny",
        "lrltool tiny-model --arch llama -o tiny-llama",
    ],
)
def tiny_model_cli(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write the model and tokenizer to.")
    ],
    arch: Annotated[str, typer.Option("--arch", help="xlmr, bert or llama.")] = "xlmr",
    vocab_size: Annotated[int, typer.Option(help="Tokenizer vocabulary size.")] = 1000,
    model_vocab_size: Annotated[
        int | None, typer.Option(help="Embedding rows if larger than the tokenizer (e.g. 250002).")
    ] = None,
    hidden_size: Annotated[int, typer.Option(help="Hidden size.")] = 64,
    num_layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    num_heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    max_length: Annotated[int, typer.Option(help="Longest input in tokens.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed for the weights.")] = 0,
) -> None:
    """Build a tiny random-weight model with a real tokenizer, offline (for tests and the demo)."""
    from lrltool.tiny import build_tiny

    out = build_tiny(
        arch,
        output,
        vocab_size=vocab_size,
        model_vocab_size=model_vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        max_length=max_length,
        seed=seed,
    )
    ui.info(f"tiny {arch} model written to {out}")
