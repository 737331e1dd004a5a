"""Options shared by the commands, defined once (as huggingface_hub's CLI keeps its ``Annotated`` aliases):
the same names and short flags everywhere, and help texts whose defaults come from the settings
dataclasses instead of being typed again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from lrltool.devices import DEVICE_HELP

InputArg = Annotated[str, typer.Argument(help="Input JSONL (plain, .gz or .zst); '-' reads stdin.")]
OutputOpt = Annotated[
    str, typer.Option("--output", "-o", help="Output file ('.zst'/'.gz' compress); '-' writes stdout.")
]
RunOutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Run folder to write (OUTDIR).")]
LangOpt = Annotated[
    str,
    typer.Option(
        "--lang",
        "-l",
        help="Language: an ISO 639 code, FLORES code or English name (ron, ro, fao_Latn, Breton, ...);"
        " see 'lrltool languages'.",
    ),
]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad-lines", help="Count and skip malformed records instead of stopping.")
]
StatsOpt = Annotated[
    Path | None, typer.Option("--stats", help="Also write the run's summary as JSON to this file.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]
DeviceOpt = Annotated[str, typer.Option("--device", help=f"Device: {DEVICE_HELP}.")]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit) to download.")
]
DeterministicOpt = Annotated[
    bool,
    typer.Option(
        "--deterministic",
        help="Deterministic algorithms only (bit-identical runs and resumes on CUDA; the CPU is without it).",
    ),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the interrupted run in OUTDIR.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the run in OUTDIR.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Options from a JSON or YAML file (keys: option names, - or _ alike); the command line"
        " overrides them.",
    ),
]
InputFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--input-format",
        help="jsonl (records) or text (one text per line) [default: text for .txt files, else jsonl]",
    ),
]
ReportToOpt = Annotated[
    str,
    typer.Option(
        "--report-to",
        help="Follow training live: none, tensorboard (RUN/tensorboard) or wandb (RUN/wandb, offline unless"
        " WANDB_MODE=online);"
        " comma-separated for both.",
    ),
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="fp32, bf16 or fp16 autocast (bf16/fp16 on CUDA GPUs only)"
        " [default: bf16 on a GPU that has it, else fp32 (finetune: fp32)]",
    ),
]


def show(value: Any) -> str:
    """A default as a help text shows it: 1e-4 rather than 0.0001, 16, 0.15, true."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value and abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of the settings dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.default
    raise KeyError(name)


def described(text: str, cls: type, name: str) -> str:
    """``text`` with the dataclass default of ``name`` appended as ``[default: X]`` (where it has one)."""
    value = default(cls, name)
    return text if value is None else f"{text} [default: {show(value)}]"


def settings_values(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """The options that are fields of the settings dataclass ``cls`` (a command's locals()), by name."""
    return {f.name: options[f.name] for f in dataclasses.fields(cls) if f.name in options}


def set_input_format(value: str | None) -> None:
    """``--input-format``: how this command reads input whose file name does not say (stdin)."""
    from lrltool import streams
    from lrltool.errors import UsageError

    if value is not None and value not in streams.INPUT_FORMATS:
        raise UsageError(f"unknown --input-format '{value}'", hint="choose jsonl or text")
    streams.input_format = value
