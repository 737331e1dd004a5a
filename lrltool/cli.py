"""The ``lrltool`` command line: one thin function per command that parses options and calls the core.

The single error handler lives in :class:`LrlGroup`: an :class:`LrlError` becomes one line on stderr and
exit status 1 (2 for usage errors); ``LRLTOOL_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
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
    field: Annotated[
        str | None,
        typer.Option(
            "--field",
            help="Print only this code of each language (flores, glotcc, iso1, iso3, conceptnet, ...).",
        ),
    ] = None,
) -> None:
    """List the supported languages and the code each data source uses for them."""
    from lrltool.errors import UsageError
    from lrltool.languages import registry, resolve_language

    langs = [resolve_language(code)] if code else list(registry())
    if field is not None:
        known = list(langs[0].as_record())
        if field not in known:
            raise UsageError(f"unknown field '{field}'", hint=f"choose one of {', '.join(known)}")
        for lang in langs:
            sys.stdout.write(f"{lang.as_record()[field]}\n")
        return
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


@app.command("fetch")
def fetch_cli(
    source: Annotated[FetchSource, typer.Argument(help="Data source.", show_default=False)],
    lang: LangOpt,
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
    output: OutputOpt = "-",
    match: Annotated[
        MatchMode | None,
        typer.Option(
            help="conceptnet: the language on the start node (default, as the paper), either or both."
        ),
    ] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code", help="This source's code for the language (overrides the table; needed outside it)."
        ),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (branch, tag or commit) to download from.")
    ] = None,
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Read a data source in its published format and write JSONL records.

    conceptnet: triples. glotcc, flores: texts. sib200, sentiment: labelled texts. wikiann: NER tags.

    Without --input, the published files are first downloaded into the Hugging Face cache.
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
    )


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


@app.command("train-adapter")
def train_adapter_cli(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Hub id (xlm-roberta-base) or local model folder.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Run folder to write (OUTDIR).")],
    train: Annotated[
        str, typer.Option("--train", help="Text records (JSONL, .gz, .zst); '-' reads stdin.")
    ] = "-",
    method: Annotated[str, typer.Option(help="seq_bn, seq_bn_inv, lora or full.")] = "seq_bn",
    preset: Annotated[
        str | None,
        typer.Option(help="paper-glotcc or paper-conceptnet: the paper's settings (options override)."),
    ] = None,
    validation: Annotated[
        str | None, typer.Option(help="Validation text records (default: hold out part of --train).")
    ] = None,
    validation_fraction: Annotated[
        float | None, typer.Option(help="Share of --train held out for validation (default 0.01; 0: none).")
    ] = None,
    max_validation_records: Annotated[
        int | None, typer.Option(help="At most this many held out (2000).")
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="mlm or clm (default: from the model: MLM encoders, CLM decoders).")
    ] = None,
    reduction_factor: Annotated[int | None, typer.Option(help="Bottleneck reduction factor (16).")] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank (8).")] = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha (8).")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (default: --epochs over the data).")
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Passes over the data when --max-steps is not given (1).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step and process (16).")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Micro-batches per optimizer step (1).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (1e-4).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay (0).")] = None,
    warmup_ratio: Annotated[float | None, typer.Option(help="Share of steps of linear warmup (0).")] = None,
    max_seq_length: Annotated[
        int | None, typer.Option(help="Tokens per example (default min(512, the model's limit)).")
    ] = None,
    mlm_probability: Annotated[float | None, typer.Option(help="Share of tokens masked (0.15).")] = None,
    whole_word_mask: Annotated[
        bool | None, typer.Option("--whole-word-mask", help="Mask whole words.")
    ] = None,
    line_by_line: Annotated[
        bool | None,
        typer.Option("--line-by-line", help="One text per example (the paper); default packs full blocks."),
    ] = None,
    eval_steps: Annotated[
        int | None, typer.Option(help="Validate (and checkpoint) every N steps (500).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (42).")] = None,
    revision: Annotated[str | None, typer.Option(help="Hub model revision (branch, tag or commit).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast (default: on with CUDA).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in OUTDIR.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the run in OUTDIR.")] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Tokenization cache (default $LRLTOOL_CACHE or $HF_HOME/lrltool).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the tokenization cache.")
    ] = False,
    adapter_name: Annotated[
        str | None, typer.Option(help="Adapter name (default: the records' lang).")
    ] = None,
    log_steps: Annotated[int, typer.Option(help="Without a progress bar, print a line every N steps.")] = 50,
    skip_bad_lines: SkipBadOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a language adapter (MLM or CLM) on text records; write OUTDIR/adapter and the run's records."""
    import shlex

    from lrltool.train import make_settings, train_language_adapter

    ui.configure(quiet=quiet)
    settings = make_settings(
        preset,
        method=method,
        objective=objective,
        reduction_factor=reduction_factor,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        max_seq_length=max_seq_length,
        mlm_probability=mlm_probability,
        whole_word_mask=whole_word_mask,
        line_by_line=line_by_line,
        eval_steps=eval_steps,
        seed=seed,
        validation_fraction=validation_fraction,
        max_validation_records=max_validation_records,
    )
    train_language_adapter(
        model=model,
        output=output,
        train=train,
        validation=validation,
        settings=settings,
        revision=revision,
        device=device,
        bf16=bf16,
        resume=resume,
        force=force,
        cache_dir=cache_dir,
        use_cache=not no_cache,
        adapter_name=adapter_name,
        skip_bad_lines=skip_bad_lines,
        log_steps=log_steps,
        command=shlex.join(["lrltool", *sys.argv[1:]]),
    )


# --- finetune -------------------------------------------------------------------------------------


@app.command("finetune")
def finetune_cli(
    task: Annotated[
        str, typer.Option("--task", "-t", help="tc (SIB-200 topics), sa (sentiment) or ner (WikiANN).")
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data", "-d", help="Folder with train/validation/test.jsonl(.zst) from `lrltool fetch`."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Run folder to write (seed-N folders with --seeds).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Base model: a folder or hub id (default: the language adapter's)."
        ),
    ] = None,
    lang_adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--lang-adapter",
            help="Language adapter (train-adapter run or adapter folder); twice with --fusion.",
        ),
    ] = None,
    fusion: Annotated[
        bool, typer.Option("--fusion", help="AdapterFusion of the two --lang-adapter.")
    ] = False,
    method: Annotated[
        str, typer.Option("--method", help="adapter (task adapter) or full (fine-tune every weight).")
    ] = ("adapter"),
    preset: Annotated[
        str | None, typer.Option("--preset", help="paper: the paper's lr, batch, epochs, max length.")
    ] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help="Training epochs (default 10).")] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Training steps (overrides --epochs).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", help="Peak learning rate (1e-4; 2e-5 for --method full).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help="Examples per step (32).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help="AdamW weight decay (0.01).")
    ] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option("--warmup-ratio", help="Linear warmup share (0.05).")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option("--max-length", help="Longest input in tokens (256 for tc, 512 for sa/ner).")
    ] = None,
    eval_steps: Annotated[
        int | None, typer.Option("--eval-steps", help="Validate every N steps (default: every epoch).")
    ] = None,
    eval_every_epoch: Annotated[
        bool, typer.Option("--eval-every-epoch", help="Validate at the end of every epoch (the default).")
    ] = False,
    patience: Annotated[
        int | None, typer.Option("--patience", help="Stop after N validations without improvement.")
    ] = None,
    label_all_subwords: Annotated[
        bool,
        typer.Option(
            "--label-all-subwords", help="NER: tag every sub-token and score sub-tokens (the seed's way)."
        ),
    ] = False,
    reduction_factor: Annotated[
        int | None, typer.Option("--reduction-factor", help="Task adapter bottleneck reduction (16).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed of a single run (42).")] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Comma-separated seeds, one run each in OUTDIR/seed-N (paper: 1,2,3)."),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option("--lang", "-l", help="Language of the data, for the records (default: the adapter's)."),
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Hub commit/branch/tag of --model.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUTDIR.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the run in OUTDIR.")] = False,
    skip_bad_lines: SkipBadOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a task adapter (on a language adapter, a fusion of two, or alone) or fine-tune every weight."""
    import shlex

    from lrltool.downstream.finetune import finetune, make_settings, parse_seeds
    from lrltool.errors import UsageError

    ui.configure(quiet=quiet)
    if eval_every_epoch and eval_steps is not None:
        raise UsageError("--eval-steps and --eval-every-epoch exclude each other", hint="give one of them")
    if seed is not None and seeds is not None:
        raise UsageError("--seed and --seeds exclude each other", hint="give one of them")
    settings = make_settings(
        task,
        preset,
        method=method,
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        max_length=max_length,
        eval_steps=eval_steps,
        patience=patience,
        label_all_subwords=label_all_subwords or None,
        reduction_factor=reduction_factor,
        seed=seed,
    )
    finetune(
        task=task,
        model=model,
        data=data,
        out=output,
        lang_adapters=lang_adapter or [],
        fusion=fusion,
        settings=settings,
        seeds=parse_seeds(seeds) if seeds is not None else None,
        lang=lang,
        revision=revision,
        device=device,
        resume=resume,
        force=force,
        skip_bad_lines=skip_bad_lines,
        command=shlex.join(["lrltool", *sys.argv[1:]]),
    )


# --- eval -----------------------------------------------------------------------------------------


@app.command("eval")
def eval_cli(
    task: Annotated[
        str,
        typer.Option(
            "--task",
            "-t",
            help="mlm: pseudo-perplexity of text records; tc, sa, ner: a finetune run's scores.",
        ),
    ],
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
    batch_size: Annotated[
        int | None, typer.Option(help="mlm: most masked copies per forward pass; tc/sa/ner: examples (32).")
    ] = None,
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
    run: Annotated[
        str | None,
        typer.Option(
            "--run", help="tc/sa/ner: a finetune run folder (a folder of seed-N runs: one each + mean)."
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", help="tc/sa/ner: test file, or folder with test.jsonl(.zst) (default: the run's)."
        ),
    ] = None,
    predictions: Annotated[
        str | None,
        typer.Option(
            "--predictions", help="tc/sa/ner: also write each example's gold and predicted labels here."
        ),
    ] = None,
    prompt: Annotated[
        bool,
        typer.Option(
            "--prompt", help="tc/sa: classify by prompting a causal LM (--model), answer by label likelihood."
        ),
    ] = False,
    shots: Annotated[
        int | None, typer.Option(help="--prompt: examples from the train split shown before each query (0).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="--prompt: seed of the shot selection (1).")] = None,
    template: Annotated[
        str | None, typer.Option(help="--prompt: JSON file replacing parts of the prompt template.")
    ] = None,
    score: Annotated[
        str | None, typer.Option(help="--prompt: label score, sum (default) or mean of token log-probs.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="--prompt: the split to classify (test).")] = None,
    output: OutputOpt = "-",
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a model: metric records to stdout, one per metric (append them to a results file).

    mlm: pseudo-perplexity of text records (IN). tc/sa/ner: a finetune run (--run). tc/sa with --prompt:
    zero/K-shot prompting of a causal LM on a data folder (--data).
    """
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
        run=run,
        data=data,
        predictions=predictions,
        prompt=prompt,
        shots=shots,
        seed=seed,
        template=template,
        score=score,
        split=split,
        output=output,
        skip_bad_lines=skip_bad_lines,
        stats_path=str(stats) if stats is not None else None,
    )
    run_eval(task, {k: v for k, v in options.items() if v is not None and v is not False})


# --- report ---------------------------------------------------------------------------------------


@app.command("report")
def report_cli(
    metrics: Annotated[
        list[str] | None,
        typer.Argument(
            help="Metric records from 'lrltool eval': files, globs, '-' for stdin (the default when piped)."
            " Run folders given here are plotted as with --runs."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write report.md, results.csv and plots/*.png to this folder."
        ),
    ] = None,
    compare_paper: Annotated[
        bool, typer.Option("--compare-paper", help="Add the paper's published numbers where they exist.")
    ] = False,
    runs: Annotated[
        list[str] | None,
        typer.Option("--runs", help="A run folder (or glob) whose log.jsonl to plot; repeat for more."),
    ] = None,
    pppl_metric: Annotated[
        str,
        typer.Option(
            "--pppl-metric", help="Which pseudo-perplexity to tabulate: pppl_mean, pppl, pppl_word."
        ),
    ] = "pppl_mean",
    note: Annotated[
        str | None, typer.Option("--note", help="A paragraph shown first: what these numbers are.")
    ] = None,
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tables (terminal; with -o also report.md, results.csv, plots) from metric records."""
    import io
    import shutil

    from rich.console import Console

    from lrltool.errors import UsageError
    from lrltool.report import render_terminal, report_metrics
    from lrltool.streams import Stats

    ui.configure(quiet=quiet)
    if not metrics:
        if sys.stdin.isatty() and not runs:
            raise UsageError(
                "no metric records given", hint="name metric files, or pipe 'lrltool eval' into report"
            )
        metrics = [] if sys.stdin.isatty() else ["-"]
    summary = Stats("report")
    report = report_metrics(
        inputs=metrics,
        output_dir=output,
        runs=runs or [],
        compare_paper=compare_paper,
        pppl_metric=pppl_metric,
        skip_bad_lines=skip_bad_lines,
        stats=summary,
        note=note,
    )
    # Rendered to a string first: rich turns a broken pipe into exit 1 itself; `| head` should end as
    # in every other command (the handler above: quiet, 141).
    buffer = io.StringIO()
    tty = sys.stdout.isatty()
    render_terminal(
        report,
        Console(file=buffer, force_terminal=tty, width=shutil.get_terminal_size().columns if tty else 250),
    )
    sys.stdout.write(buffer.getvalue())
    sys.stdout.flush()
    if not report.tables:
        ui.info(f"no metric records; {len(report.runs)} loss curve(s)")
    for warning in report.warnings:
        ui.warn(warning)
    summary.finish(stats)
    if output is not None:
        ui.info(f"report written to {output / 'report.md'}")


def main() -> None:
    app()
