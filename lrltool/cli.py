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


@app.command("eval")
def eval_cli(
    task: Annotated[str, typer.Option("--task", "-t", help="mlm: pseudo-perplexity of text records.")],
    input_path: InputArg = "-",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model folder or hub id.")] = None,
    adapter: Annotated[
        str | None,
        typer.Option("--adapter", help="Language adapter: train-adapter run, adapter folder or hub id."),
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Hub commit/branch/tag of --model.")] = None,
    variant: Annotated[
        str | None, typer.Option(help="PLL variant: original (Salazar et al.) or within_word_l2r.")
    ] = None,
    paper_compat: Annotated[
        bool, typer.Option("--paper-compat", help="Score the special tokens too, as the paper's script.")
    ] = False,
    per_sentence: Annotated[
        str | None, typer.Option("--per-sentence", help="Also write one record per sentence here.")
    ] = None,
    token_logprobs: Annotated[
        bool, typer.Option("--token-logprobs", help="Add each token's log-probability to --per-sentence.")
    ] = False,
    max_length: Annotated[
        int | None, typer.Option(help="Cut longer texts (counted); default: the model's limit.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Most masked copies per forward pass.")] = None,
    batch_tokens: Annotated[
        int | None, typer.Option(help="Most copies x padded length per forward pass (8192).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or auto (default).")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 (default), bfloat16 or float16.")] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", "-l", help="Language of the texts (default: the records').")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="Override the adaptation method (default: from the run).")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Override the adaptation data source (default: from the run).")
    ] = None,
    output: OutputOpt = "-",
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a model: metric records to stdout, one per metric (append them to a results file)."""
    from lrltool.evaluate import run_eval

    ui.configure(quiet=quiet)
    options = dict(
        input_path=input_path,
        model=model,
        adapter=adapter,
        revision=revision,
        variant=variant,
        paper_compat=paper_compat,
        per_sentence=per_sentence,
        token_logprobs=token_logprobs,
        max_length=max_length,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        device=device,
        dtype=dtype,
        lang=lang,
        method=method,
        source=source,
        output=output,
        skip_bad_lines=skip_bad_lines,
        stats_path=str(stats) if stats is not None else None,
    )
    run_eval(task, {k: v for k, v in options.items() if v is not None and v is not False})


# --- report ---------------------------------------------------------------------------------------


def main() -> None:
    app()
