"""``eval``: one command, three evaluators, each a typed function returning metric records.

- ``--task mlm``: :func:`lrltool.lm.evaluate.evaluate_mlm` (pseudo-perplexity of text records);
- ``--task clm``: :func:`lrltool.lm.evaluate.evaluate_clm` (perplexity of text records, a decoder);
- ``--task tc|sa|ner --run DIR``: :func:`lrltool.downstream.evaluate.evaluate_task_run` (a finetune run);
- ``--task tc|sa --prompt``: :func:`lrltool.downstream.prompting.evaluate_prompt` (a causal LM).

The records are written here, in one place (:func:`lrltool.records.write_metric_records`), and the
command's one-line summary finished. An option that the chosen evaluator does not take is refused.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lrltool import ui
from lrltool.cli.group import command
from lrltool.cli.options import (
    ConfigOpt,
    DeviceOpt,
    InputArg,
    InputFormatOpt,
    OutputOpt,
    QuietOpt,
    RevisionOpt,
    SkipBadOpt,
    StatsOpt,
    set_input_format,
)
from lrltool.errors import UsageError
from lrltool.records import write_metric_records
from lrltool.streams import Stats, check_writable
from lrltool.tasks import TASKS, TRAINABLE_TASKS

#: The options each evaluator takes (besides --task, IN, -o, --stats, -q and --device).
MLM_OPTIONS = frozenset(
    {
        "model",
        "adapter",
        "revision",
        "variant",
        "paper_compat",
        "per_sentence",
        "token_logprobs",
        "max_length",
        "batch_size",
        "batch_tokens",
        "dtype",
        "lang",
        "method",
        "source",
        "skip_bad_lines",
    }
)
CLM_OPTIONS = MLM_OPTIONS - {"variant", "paper_compat", "token_logprobs"}
RUN_OPTIONS = frozenset({"run", "data", "predictions", "batch_size", "lang", "skip_bad_lines"})
PROMPT_OPTIONS = frozenset(
    {
        "model",
        "data",
        "split",
        "shots",
        "seed",
        "adapter",
        "template",
        "score",
        "answer",
        "max_new_tokens",
        "paper_compat",
        "predictions",
        "batch_size",
        "dtype",
        "max_length",
        "revision",
        "lang",
        "method",
        "source",
    }
)
_ALWAYS = frozenset(
    {"task", "input_path", "output", "stats", "quiet", "device", "prompt", "config", "input_format"}
)


@command(
    "eval",
    examples=[
        "lrltool fetch flores --lang mlt | lrltool eval -t mlm -m xlm-roberta-base"
        " --adapter runs/seq_bn-glotcc"
        " >> results.jsonl",
        "lrltool eval -t tc --run runs/tc-seq_bn >> results.jsonl",
        "lrltool eval -t mlm -m xlm-roberta-base --input-format text < sentences.txt",
        "lrltool eval -t tc --prompt --paper-compat -m deepseek-ai/DeepSeek-R1-Distill-Qwen-7B -d data/sib200"
        " >> results.jsonl",
    ],
)
def eval_cli(
    task: Annotated[
        str,
        typer.Option(
            "--task",
            "-t",
            help="mlm: pseudo-perplexity of text records (an encoder); clm: perplexity (a decoder);"
            " tc, sa, ner: a finetune run's scores (tc, sa with --prompt: a causal LM's).",
        ),
    ],
    input_path: InputArg = "-",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model folder or hub id.")] = None,
    adapter: Annotated[
        str | None,
        typer.Option("--adapter", help="Language adapter: train-adapter run, adapter folder or hub id."),
    ] = None,
    revision: RevisionOpt = None,
    variant: Annotated[
        str | None, typer.Option(help="PLL variant: original (Salazar et al.) or within_word_l2r.")
    ] = None,
    paper_compat: Annotated[
        bool,
        typer.Option(
            "--paper-compat",
            help="mlm: the paper's PPPL script: special tokens scored, inputs cut at 512 tokens, tha_Thai"
            " words split every 99 characters. tc --prompt: the paper's prompting script: its prompt,"
            " --answer generate (docs/paper-protocol.md).",
        ),
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
        int | None,
        typer.Option(
            "--batch-size",
            "-b",
            help="mlm: most masked copies per forward pass; clm: sentences; tc/sa/ner: examples (32).",
        ),
    ] = None,
    batch_tokens: Annotated[
        int | None,
        typer.Option(help="mlm, clm: most copies (sentences) x padded length per forward pass (8192)."),
    ] = None,
    device: DeviceOpt = "auto",
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
            "--data", "-d", help="tc/sa/ner: test file, or folder with test.jsonl(.zst) (default: the run's)."
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
            "--prompt",
            help="tc/sa: classify by prompting a causal LM (--model): label likelihood, or --answer generate",
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
    answer: Annotated[
        str | None,
        typer.Option(
            help="--prompt: score (default: the label with the highest log-likelihood) or generate (the"
            " paper's: greedy answer, the one label named in it; answers naming none or several dropped)."
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="--prompt --answer generate: most tokens of an answer (100).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="--prompt: the split to classify (test).")] = None,
    output: OutputOpt = "-",
    skip_bad_lines: SkipBadOpt = False,
    stats: StatsOpt = None,
    input_format: InputFormatOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate a model: metric records to stdout, one per metric (append them to a results file).

    mlm: pseudo-perplexity of text records (IN) under an encoder; clm: perplexity under a decoder (no
    KV cache). tc/sa/ner: a finetune run (--run). tc/sa with --prompt:
    zero/K-shot prompting of a causal LM on a data folder (--data).
    """
    given = {k: v for k, v in locals().items() if k not in _ALWAYS and v is not None and v is not False}
    ui.configure(quiet=quiet)
    set_input_format(input_format)
    if task not in TASKS:
        raise UsageError(f"unknown task '{task}'", hint=f"choose one of {', '.join(TASKS)}")
    allowed = (
        {"mlm": MLM_OPTIONS, "clm": CLM_OPTIONS}.get(task, RUN_OPTIONS) if not prompt else PROMPT_OPTIONS
    )
    for name in given:
        if name not in allowed:
            raise UsageError(
                f"--{name.replace('_', '-')} does not apply to --task {task}",
                hint=f"drop it, or see 'lrltool eval --help' for what --task {task} takes",
            )
    for target in (output, given.get("per_sentence"), given.get("predictions")):
        check_writable(target)  # before hours of scoring, not after
    summary = Stats(f"eval {task}" + (" --prompt" if prompt else ""))
    if prompt:
        records = _prompted(task, input_path, device, given)
    elif task == "mlm":
        records = _mlm(input_path, device, summary, given)
    elif task == "clm":
        records = _clm(input_path, device, summary, given)
    else:
        records = _finetuned(task, input_path, device, given)
    summary.records_out = write_metric_records(records, output)
    _summarize(summary, task, prompt, records)
    summary.finish(stats)


def _mlm(input_path: str, device: str, summary: Stats, given: dict[str, Any]) -> list[Any]:
    from lrltool.lm.evaluate import evaluate_mlm

    return evaluate_mlm(
        model=given.get("model"),
        input_path=input_path,
        adapter=given.get("adapter"),
        revision=given.get("revision"),
        variant=given.get("variant", "original"),
        paper_compat=given.get("paper_compat", False),
        per_sentence=given.get("per_sentence"),
        token_logprobs=given.get("token_logprobs", False),
        max_length=given.get("max_length"),
        batch_size=given.get("batch_size"),
        batch_tokens=given.get("batch_tokens"),
        device=device,
        dtype=given.get("dtype"),
        lang=given.get("lang"),
        method=given.get("method"),
        source=given.get("source"),
        skip_bad_lines=given.get("skip_bad_lines", False),
        stats=summary,
    )


def _clm(input_path: str, device: str, summary: Stats, given: dict[str, Any]) -> list[Any]:
    from lrltool.lm.evaluate import evaluate_clm

    return evaluate_clm(input_path=input_path, device=device, stats=summary, **given)


def _finetuned(task: str, input_path: str, device: str, given: dict[str, Any]) -> list[Any]:
    from lrltool.downstream.evaluate import evaluate_task_run

    if given.get("run") is None:
        raise UsageError(f"--task {task} needs --run", hint="give the -o folder of lrltool finetune")
    data = given.get("data")
    if input_path != "-":
        if data is not None:
            raise UsageError("the test data is given twice (IN and --data)", hint="give one of them")
        data = input_path
    return evaluate_task_run(
        task=task,
        run=given["run"],
        data=data,
        predictions=given.get("predictions"),
        batch_size=given.get("batch_size", 32),
        device=device,
        lang=given.get("lang"),
        skip_bad_lines=given.get("skip_bad_lines", False),
    )


def _prompted(task: str, input_path: str, device: str, given: dict[str, Any]) -> list[Any]:
    from lrltool.downstream.prompting import check_prompt_task, evaluate_prompt

    check_prompt_task(task)
    if input_path != "-":
        raise UsageError("--prompt reads a data folder, not IN", hint=f"use --data instead of {input_path}")
    if given.get("model") is None:
        raise UsageError("--prompt needs --model (a causal LM folder or hub id)", hint="add --model")
    if given.get("data") is None:
        raise UsageError(
            "--prompt needs --data (the folder that 'fetch sib200|sentiment -o DIR' wrote)", hint="add --data"
        )
    options = {k: v for k, v in given.items() if k not in ("model", "data")}
    return evaluate_prompt(task=task, model=given["model"], data=given["data"], device=device, **options)


def _summarize(summary: Stats, task: str, prompt: bool, records: list[Any]) -> None:
    """The figures of the one-line summary each evaluator adds (examples and runs, or scores)."""
    if prompt:
        summary.records_in = records[0].details.get("examples", records[0].n) if records else 0
        if records and "dropped" in records[0].details:
            summary.extra["dropped"] = records[0].details["dropped"]
        summary.extra.update({r.metric: round(r.value, 4) for r in records})
    elif task in TRAINABLE_TASKS:
        first = TASKS[task].metrics[0]
        singles = [r for r in records if r.metric == first and r.aggregate is None]
        summary.records_in = sum(r.n for r in singles)
        summary.extra["runs"] = len(singles)
