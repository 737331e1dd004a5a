"""The ``lrltool`` command line: one thin function per command that parses options and calls the core.

The single error handler lives in :class:`LrlGroup`: an :class:`LrlError` becomes one line on stderr and
exit status 1 (2 for usage errors); ``LRLTOOL_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from lrltool import __version__, ui
from lrltool.errors import LrlError


class LrlGroup(TyperGroup):
    """Turns known errors into one readable line, a broken pipe into a quiet exit, Ctrl-C into 130."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LrlError as exc:
            if os.environ.get("LRLTOOL_DEBUG") == "1":
                raise
            _error_line(f"error: {exc}")
            raise SystemExit(exc.exit_code) from None
        except BrokenPipeError:
            # `lrltool ... | head`: the reader went away; end quietly as Unix filters do.
            _silence_stdout()
            raise SystemExit(141) from None
        except KeyboardInterrupt:
            if os.environ.get("LRLTOOL_DEBUG") == "1":
                raise
            _error_line("interrupted")
            raise SystemExit(130) from None
        except (SystemExit, typer.Exit):
            raise
        except Exception as exc:  # a bug or an environment problem: still one line, unless debugging
            if os.environ.get("LRLTOOL_DEBUG") == "1" or _is_click_exception(exc):
                raise
            _error_line(
                f"error: {type(exc).__name__}: {exc}; rerun with LRLTOOL_DEBUG=1 for the traceback"
                " (and report it if it is not about your input)"
            )
            raise SystemExit(1) from None


def _is_click_exception(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("typer", "click"))


def _error_line(text: str) -> None:
    try:
        sys.stderr.write(text.replace("\n", " ") + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


app = typer.Typer(
    cls=LrlGroup,
    name="lrltool",
    help="Adapt small multilingual language models to low-resource languages, and measure what it bought.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrltool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Composable commands that exchange JSONL (plain, .gz, .zst) on stdin/stdout or files."""


# Shared options: the same names and short flags in every command.
InputArg = Annotated[str, typer.Argument(help="Input JSONL (plain, .gz or .zst); '-' reads stdin.")]
OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help="Output file ('.zst'/'.gz' compress); '-' writes stdout.")
]
LangOpt = Annotated[str, typer.Option("--lang", "-l", help="Language: ron, ro, ron_Latn, Romanian, ...")]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad-lines", help="Count and skip malformed records instead of stopping.")
]
StatsOpt = Annotated[
    Path | None, typer.Option("--stats", help="Also write the run's summary as JSON to this file.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]


# --- languages ------------------------------------------------------------------------------------


@app.command("languages")
def languages_cli(
    code: Annotated[str | None, typer.Argument(help="Show only the language this code names.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per language.")] = False,
) -> None:
    """List the supported languages and the code each data source uses for them."""
    from lrltool.languages import registry, resolve_language

    langs = [resolve_language(code)] if code else list(registry())
    if as_json:
        import orjson

        for lang in langs:
            sys.stdout.buffer.write(orjson.dumps(lang.as_record()) + b"\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lrltool languages", title_justify="left")
    for column in (
        "name",
        "FLORES/SIB",
        "GlotCC",
        "ConceptNet",
        "WikiANN",
        "sentiment",
        "mBERT GB",
        "XLM-R GB",
    ):
        table.add_column(column, justify="right" if "GB" in column else "left")
    for lang in langs:
        table.add_row(
            lang.name,
            lang.flores,
            lang.glotcc,
            lang.conceptnet,
            lang.wikiann,
            lang.sentiment,
            "-" if lang.mbert_gb is None else f"{lang.mbert_gb:.2f}",
            "-" if lang.xlmr_gb is None else f"{lang.xlmr_gb:.2f}",
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)


# --- fetch ----------------------------------------------------------------------------------------


# --- verbalize, cap -------------------------------------------------------------------------------


@app.command("verbalize")
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
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Turn ConceptNet triples (from 'fetch conceptnet') into text records "<start> <predicate> <end>.".

    Drops self-loops, relations without a template (counted by relation) and repeated sentences.
    """
    from lrltool.verbalize import verbalize_triples

    ui.configure(quiet=quiet)
    verbalize_triples(
        input_path=input,
        output=output,
        templates_path=templates,
        keep_duplicates=keep_duplicates,
        skip_bad_lines=skip_bad_lines,
    ).finish(stats)


@app.command("cap")
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
            "(powers of 1000), 1GiB (powers of 1024) or a plain number. Default: no cap.",
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
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Clean text records (NFC, no control characters, single spaces), drop exact duplicates, cap the bytes.

    Records are kept in input order until the next would push the UTF-8 bytes of the kept texts over
    --max-bytes; other keys pass through unchanged.
    """
    from lrltool.cap import cap_records, parse_size, parse_split

    ui.configure(quiet=quiet)
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
    ).finish(stats)


# --- tiny-model -----------------------------------------------------------------------------------


@app.command("tiny-model")
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


# --- train-adapter --------------------------------------------------------------------------------


# --- finetune -------------------------------------------------------------------------------------


# --- eval -----------------------------------------------------------------------------------------


# --- report ---------------------------------------------------------------------------------------


def main() -> None:
    app()
