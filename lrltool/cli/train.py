"""The training commands: train-adapter (a language adapter) and finetune (a task on top of it).

Each setting option is a field of the command's settings dataclass (``TrainSettings``,
``FinetuneSettings``): its help shows that field's default, and the options the user gave are passed on
by name (:func:`lrltool.cli.options.settings_values`), so no option is written twice.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from lrltool import ui
from lrltool.cli.group import command
from lrltool.cli.options import (
    ConfigOpt,
    DeterministicOpt,
    DeviceOpt,
    ForceOpt,
    InputFormatOpt,
    PrecisionOpt,
    QuietOpt,
    ReportToOpt,
    ResumeOpt,
    RevisionOpt,
    RunOutputOpt,
    SkipBadOpt,
    described,
    set_input_format,
    settings_values,
    show,
)
from lrltool.downstream.finetune import DEFAULT_LR, FinetuneSettings
from lrltool.lm.adapter import PRESETS as ADAPTER_PRESETS
from lrltool.lm.adapter import TrainSettings
from lrltool.models.adapters import ADAPTER_METHODS
from lrltool.tasks import TASKS, TRAINABLE_TASKS


def _command() -> str:
    return shlex.join(["lrltool", *sys.argv[1:]])


def _t(text: str, name: str) -> str:
    return described(text, TrainSettings, name)


def _f(text: str, name: str) -> str:
    return described(text, FinetuneSettings, name)


# --- train-adapter --------------------------------------------------------------------------------


@command(
    "train-adapter",
    examples=[
        "lrltool train-adapter -m xlm-roberta-base --train corpus.txt -o runs/seq_bn-mine",
        "lrltool train-adapter -m xlm-roberta-base --preset paper-glotcc --train data/glotcc/train.jsonl.zst"
        " --validation data/glotcc/validation.jsonl.zst --report-to tensorboard -o runs/seq_bn-glotcc",
        "lrltool train-adapter --config adapter.yaml --lr 3e-4 -o runs/lr3e-4   (the command line wins)",
    ],
)
def train_adapter_cli(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Hub id (xlm-roberta-base) or local model folder.")
    ],
    output: RunOutputOpt,
    train: Annotated[
        str,
        typer.Option(
            "--train", help="Text records (JSONL, .gz, .zst) or a .txt file (one text per line); '-': stdin."
        ),
    ] = "-",
    method: Annotated[
        str | None, typer.Option(help=_t(f"Adaptation method: {', '.join(ADAPTER_METHODS)}.", "method"))
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help=f"The paper's settings ({' or '.join(ADAPTER_PRESETS)}); options override them."),
    ] = None,
    validation: Annotated[
        str | None, typer.Option(help="Validation text records (default: hold out part of --train).")
    ] = None,
    validation_fraction: Annotated[
        float | None,
        typer.Option(help=_t("Share of --train held out for validation (0: none).", "validation_fraction")),
    ] = None,
    max_validation_records: Annotated[
        int | None, typer.Option(help=_t("At most this many held out.", "max_validation_records"))
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="mlm or clm (default: from the model: MLM encoders, CLM decoders).")
    ] = None,
    reduction_factor: Annotated[
        int | None, typer.Option(help=_t("Bottleneck reduction factor.", "reduction_factor"))
    ] = None,
    lora_r: Annotated[int | None, typer.Option(help=_t("LoRA rank.", "lora_r"))] = None,
    lora_alpha: Annotated[int | None, typer.Option(help=_t("LoRA alpha.", "lora_alpha"))] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (default: --epochs over the data).")
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(help=_t("Passes over the data when --max-steps is not given.", "epochs"))
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "-b", help=_t("Examples per micro-batch and process.", "batch_size")),
    ] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help=_t("Micro-batches per optimizer step.", "grad_accum"))
    ] = None,
    lr: Annotated[float | None, typer.Option(help=_t("Peak learning rate.", "lr"))] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help=_t("AdamW weight decay.", "weight_decay"))
    ] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option(help=_t("Share of steps of linear warmup.", "warmup_ratio"))
    ] = None,
    max_seq_length: Annotated[
        int | None,
        typer.Option("--max-length", help="Tokens per example [default: min(512, the model's limit)]"),
    ] = None,
    mlm_probability: Annotated[
        float | None, typer.Option(help=_t("Share of tokens masked.", "mlm_probability"))
    ] = None,
    whole_word_mask: Annotated[
        bool | None, typer.Option("--whole-word-mask", help="Mask whole words.")
    ] = None,
    line_by_line: Annotated[
        bool | None,
        typer.Option("--line-by-line", help="One text per example (the paper); default packs full blocks."),
    ] = None,
    eval_steps: Annotated[
        int | None, typer.Option(help=_t("Validate (and checkpoint) every N steps.", "eval_steps"))
    ] = None,
    seed: Annotated[int | None, typer.Option(help=_t("Random seed.", "seed"))] = None,
    global_batch: Annotated[
        int | None,
        typer.Option(
            help="Examples per optimizer step over all processes: sets --grad-accum to reach it"
            " (the paper: 32 GlotCC, 64 ConceptNet)."
        ),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option(
            help=_t("Exported weights: best (by validation loss) or last (the paper's code).", "select")
        ),
    ] = None,
    train_head: Annotated[
        bool | None,
        typer.Option(
            "--train-head/--no-train-head",
            help=_t(
                "Train the MLM head's dense + LayerNorm with the adapter and save them with it.", "train_head"
            ),
        ),
    ] = None,
    train_inverse: Annotated[
        bool | None,
        typer.Option(
            "--train-inverse/--no-train-inverse",
            help=_t(
                "seq_bn_inv: apply the inverse before the output embedding while training.", "train_inverse"
            ),
        ),
    ] = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = None,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", hidden=True)] = None,  # --precision bf16
    report_to: ReportToOpt = "none",
    deterministic: DeterministicOpt = False,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
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
    input_format: InputFormatOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a language adapter (MLM or CLM) on text records; write OUTDIR/adapter and the run's records."""
    from lrltool.errors import UsageError
    from lrltool.lm.adapter import make_settings, train_language_adapter

    ui.configure(quiet=quiet)
    set_input_format(input_format)
    if bf16 is not None and precision is not None:
        raise UsageError("--bf16 is the old spelling of --precision bf16", hint="give --precision only")
    if bf16 is not None:
        precision = "bf16" if bf16 else "fp32"
    settings = make_settings(preset, **settings_values(TrainSettings, locals()))
    train_language_adapter(
        model=model,
        output=output,
        train=train,
        validation=validation,
        settings=settings,
        revision=revision,
        device=device,
        precision=precision,
        report_to=report_to,
        resume=resume,
        force=force,
        cache_dir=cache_dir,
        use_cache=not no_cache,
        adapter_name=adapter_name,
        skip_bad_lines=skip_bad_lines,
        log_steps=log_steps,
        command=_command(),
        deterministic=deterministic,
    )


# --- finetune -------------------------------------------------------------------------------------

_MAX_LENGTHS = ", ".join(f"{name} {TASKS[name].paper_max_length}" for name in TRAINABLE_TASKS)


@command(
    "finetune",
    examples=[
        "lrltool finetune -t tc -d data/sib200 --lang-adapter runs/seq_bn-glotcc --seeds 1,2,3"
        " -o runs/tc-seq_bn",
        "lrltool finetune -t ner -m xlm-roberta-base -l mlt -d data/wikiann --preset paper"
        " -o runs/ner-baseline",
        "lrltool finetune -t sa -d data/sentiment --task-method full -m xlm-roberta-base -l mlt"
        " --precision bf16 --grad-accum 4 --report-to tensorboard -o runs/sa-full",
    ],
)
def finetune_cli(
    task: Annotated[
        str,
        typer.Option(
            "--task",
            "-t",
            help=", ".join(f"{name} ({TASKS[name].description})" for name in TRAINABLE_TASKS) + ".",
        ),
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
    task_method: Annotated[
        str | None,
        typer.Option(
            "--task-method",
            help=_f("How the task is learned: adapter (a task adapter) or full (every weight).", "method"),
        ),
    ] = None,
    old_method: Annotated[str | None, typer.Option("--method", hidden=True)] = None,  # before --task-method
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="paper: the paper's lr, batch, epochs, max length, head and selection (a decoder: its"
            " LLaMA runs' lr 2e-5, batch 16 / 8 / 8, epochs 20 / 25 / 25).",
        ),
    ] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help=_f("Training epochs.", "epochs"))] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Training steps (overrides --epochs).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr",
            help=f"Peak learning rate [default: {show(DEFAULT_LR['adapter'])};"
            f" {show(DEFAULT_LR['full'])} with --task-method full]",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", "-b", help=_f("Examples per micro-batch.", "batch_size"))
    ] = None,
    grad_accum: Annotated[
        int | None,
        typer.Option("--grad-accum", help=_f("Micro-batches per optimizer step.", "grad_accum")),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help=_f("AdamW weight decay.", "weight_decay"))
    ] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option("--warmup-ratio", help=_f("Linear warmup share.", "warmup_ratio"))
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option("--max-length", help=f"Longest input in tokens [default: {_MAX_LENGTHS}]."),
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
        int | None,
        typer.Option("--reduction-factor", help=_f("Task adapter bottleneck reduction.", "reduction_factor")),
    ] = None,
    task_head: Annotated[
        str | None,
        typer.Option(
            "--task-head",
            help=_f(
                "The task head: model (the transformers class's) or adapters (the adapters library's"
                " flexible head, a 2-layer tanh MLP on the first token, a decoder's last: the seed's;"
                " --preset paper).",
                "task_head",
            ),
        ),
    ] = None,
    select_by: Annotated[
        str | None,
        typer.Option(
            "--select-by",
            help=_f(
                "The exported step: metric (the best validation F1) or loss (the lowest validation loss:"
                " the seed's Trainer; --preset paper).",
                "select_by",
            ),
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help=_f("Random seed of a single run.", "seed"))
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Comma-separated seeds, one run each in OUTDIR/seed-N (paper: 1,2,3)."),
    ] = None,
    lang: Annotated[
        str | None,
        typer.Option("--lang", "-l", help="Language of the data, for the records (default: the adapter's)."),
    ] = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = None,
    report_to: ReportToOpt = "none",
    deterministic: DeterministicOpt = False,
    resume: ResumeOpt = False,
    force: ForceOpt = False,
    skip_bad_lines: SkipBadOpt = False,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a task adapter (on a language adapter, a fusion of two, or alone) or fine-tune every weight."""
    from lrltool.downstream.finetune import finetune, make_settings, parse_seeds
    from lrltool.errors import UsageError

    ui.configure(quiet=quiet)
    if eval_every_epoch and eval_steps is not None:
        raise UsageError("--eval-steps and --eval-every-epoch exclude each other", hint="give one of them")
    if seed is not None and seeds is not None:
        raise UsageError("--seed and --seeds exclude each other", hint="give one of them")
    if old_method is not None and task_method is not None:
        raise UsageError("--method is the old name of --task-method", hint="give --task-method only")
    options = settings_values(FinetuneSettings, locals())
    options.update(method=task_method or old_method, label_all_subwords=label_all_subwords or None)
    options.pop("preset", None)
    settings = make_settings(task, preset, **options)
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
        precision=precision,
        report_to=report_to,
        resume=resume,
        force=force,
        skip_bad_lines=skip_bad_lines,
        command=_command(),
        deterministic=deterministic,
        options=options,
    )
