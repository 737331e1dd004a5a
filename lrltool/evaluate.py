"""``eval``: measure a model (and its language adapter) and write metric records (lrltool/records.py).

One evaluator per task in :data:`EVALUATORS`; each reads its inputs, computes its metrics and writes one
metric record per metric, so ``lrltool eval ... >> results.jsonl`` builds the input of ``report``.

- ``mlm``: pseudo-perplexity of text records (FLORES devtest from ``fetch flores``) with
  :func:`lrltool.lm.pppl.score_pll`: ``pppl`` (corpus/micro), ``pppl_mean`` (mean per-sentence PPPL, the
  paper's number) and ``pppl_word`` (word-normalised).
- ``tc``, ``sa``, ``ner``: the scores of a finetune run on its test split (:mod:`lrltool.taskeval`):
  macro-F1 and accuracy, or seqeval precision, recall and F1; one record per seed plus the mean.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrltool.errors import UsageError
from lrltool.records import METHODS
from lrltool.streams import Record, Stats, write_records
from lrltool.taskeval import TASK_EVALUATORS

PPPL_METRICS = ("pppl", "pppl_mean", "pppl_word")


def adaptation_of(
    model_path: Path, adapter_dir: Path | None, *, method: str | None, source: str | None
) -> tuple[str, str | None]:
    from lrltool.models import adaptation_of as rule

    return rule(model_path, adapter_dir, method=method, source=source, known=METHODS)


# ---------------------------------------------------------------------------------------------------
# mlm


def evaluate_mlm(*, output: str = "-", stats_path: str | None = None, **options: Any) -> list[Record]:
    """``eval --task mlm``: :func:`lrltool.lm.evaluate.evaluate_mlm`, its records written to ``output``."""
    from lrltool.lm.evaluate import evaluate_mlm as score
    from lrltool.records import write_metric_records

    stats = Stats("eval mlm")
    records = score(stats=stats, **options)
    stats.records_out = write_metric_records(records, output)
    stats.finish(stats_path)
    return [record.to_json() for record in records]


def _mlm_signature() -> inspect.Signature:
    from lrltool.lm.evaluate import evaluate_mlm as score

    params = [p for name, p in inspect.signature(score).parameters.items() if name != "stats"]
    extra = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in ("output", "stats_path")
    ]
    return inspect.Signature(params + extra)


evaluate_mlm.__signature__ = _mlm_signature()  # type: ignore[attr-defined]


def _device_and_dtype(device: str | None, dtype: str | None) -> tuple[Any, Any]:
    from lrltool import devices

    return devices.resolve_device(device), devices.resolve_dtype(dtype)


# ---------------------------------------------------------------------------------------------------
# The registry

EVALUATORS: dict[str, Callable[..., list[Record]]] = {"mlm": evaluate_mlm, **TASK_EVALUATORS}


def evaluate_prompted(
    *,
    task: str,
    model: str | None = None,
    data: str | None = None,
    input_path: str = "-",
    output: str = "-",
    stats_path: str | None = None,
    split: str = "test",
    shots: int = 0,
    seed: int = 1,
    adapter: str | None = None,
    template: str | None = None,
    score: str = "sum",
    predictions: str | None = None,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str | None = None,
    max_length: int | None = None,
    revision: str | None = None,
    lang: str | None = None,
    method: str | None = None,
    source: str | None = None,
) -> list[Record]:
    """``eval --task tc|sa --prompt``: zero/K-shot classification by a causal LM (lrltool.prompting).

    Reads DIR/test.jsonl(.zst) (and DIR/train for the shots) of ``data``; writes macro_f1 and accuracy
    records to ``output``. Refuses an encoder model, a task other than tc/sa, a missing split.
    """
    from lrltool.prompting import check_prompt_task, evaluate_prompt

    check_prompt_task(task)
    if input_path != "-":
        raise UsageError("--prompt reads a data folder, not IN", hint=f"use --data instead of {input_path}")
    if model is None:
        raise UsageError("--prompt needs --model (a causal LM folder or hub id)", hint="add --model")
    if data is None:
        raise UsageError(
            "--prompt needs --data (the folder that 'fetch sib200|sentiment -o DIR' wrote)", hint="add --data"
        )
    stats = Stats(f"eval {task} --prompt")
    records = evaluate_prompt(
        task=task,
        model=model,
        data=data,
        split=split,
        shots=shots,
        seed=seed,
        adapter=adapter,
        template=template,
        score=score,
        predictions=predictions,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        max_length=max_length,
        revision=revision,
        lang=lang,
        method=method,
        source=source,
    )
    with write_records(output) as writer:
        writer.write_all(records)
    stats.records_out = len(records)
    stats.records_in = records[0]["n"] if records else 0
    stats.extra.update({r["metric"]: round(r["value"], 4) for r in records})
    stats.finish(stats_path)
    return records


def run_eval(task: str, options: dict[str, Any]) -> list[Record]:
    """Run the evaluator of ``task`` with ``options`` (the command-line options the user set).

    Refuses (UsageError) an unknown task and an option that does not apply to the task.
    """
    evaluator = EVALUATORS.get(task)
    if evaluator is None:
        raise UsageError(f"unknown task '{task}'", hint=f"choose one of {', '.join(EVALUATORS)}")
    if options.pop("prompt", False):
        evaluator = functools.partial(evaluate_prompted, task=task)
    accepted = inspect.signature(evaluator).parameters
    for name in options:
        if name not in accepted:
            raise UsageError(
                f"--{name.replace('_', '-')} does not apply to --task {task}",
                hint=f"drop it, or see 'lrltool eval --help' for what --task {task} takes",
            )
    return evaluator(**options)
