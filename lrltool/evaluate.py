"""``eval``: measure a model (and its language adapter) and write metric records (lrltool/records.py).

One evaluator per task in :data:`EVALUATORS`; each reads its inputs, computes its metrics and writes one
metric record per metric, so ``lrltool eval ... >> results.jsonl`` builds the input of ``report``.

- ``mlm``: pseudo-perplexity of text records (FLORES devtest from ``fetch flores``) with
  :func:`lrltool.pppl.score_pll`: ``pppl`` (corpus/micro), ``pppl_mean`` (mean per-sentence PPPL, the
  paper's number) and ``pppl_word`` (word-normalised).
- ``tc``, ``sa``, ``ner``: the scores of a finetune run on its test split
  (:func:`lrltool.downstream.evaluate.evaluate_task_run`): macro-F1 and accuracy, or seqeval precision,
  recall and F1; one record per seed plus the mean. ``tc``, ``sa`` with ``--prompt``: zero/K-shot
  prompting of a causal LM (:func:`lrltool.downstream.prompting.evaluate_prompt`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrltool import ui
from lrltool.downstream.evaluate import evaluate_task_run
from lrltool.downstream.prompting import check_prompt_task, evaluate_prompt
from lrltool.errors import InputError, LanguageError, ModelError, UsageError
from lrltool.records import METHODS, MetricRecord, write_metric_records
from lrltool.streams import Record, Stats, read_records, require, write_records
from lrltool.tasks import TASKS, TRAINABLE_TASKS

PPPL_METRICS = ("pppl", "pppl_mean", "pppl_word")


def adaptation_of(
    model_path: Path, adapter_dir: Path | None, *, method: str | None, source: str | None
) -> tuple[str, str | None]:
    from lrltool.models import adaptation_of as rule

    return rule(model_path, adapter_dir, method=method, source=source, known=METHODS)


# ---------------------------------------------------------------------------------------------------
# mlm


def _read_texts(
    input_path: str, *, skip_bad_lines: bool, stats: Stats
) -> tuple[list[str], list[str], set[str], set[str]]:
    texts: list[str] = []
    ids: list[str] = []
    langs: set[str] = set()
    splits: set[str] = set()
    reader = read_records(input_path, skip_bad_lines=skip_bad_lines, stats=stats)
    for record in reader:
        try:
            text = require(record, "text", str, what="text record")
            if not text.split():
                raise InputError("text record has an empty 'text'", hint="remove empty texts")
        except InputError as exc:
            reader.reject(exc)
            continue
        texts.append(text)
        ids.append(str(record.get("id", reader.line)))
        if isinstance(record.get("lang"), str):
            langs.add(record["lang"])
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        split = record.get("split", meta.get("split"))
        if isinstance(split, str):
            splits.add(split)
    if not texts:
        raise InputError(
            "nothing to evaluate: no text records",
            hint="give the JSONL text records that 'fetch flores' writes",
            path=reader.name,
        )
    return texts, ids, langs, splits


def _language(lang: str | None, found: set[str], where: str) -> str | None:
    if lang is not None:
        from lrltool.languages import resolve_language

        return resolve_language(lang).flores
    if len(found) > 1:
        raise InputError(
            f"the records mix languages ({', '.join(sorted(found)[:4])})",
            hint="evaluate one language at a time, or give --lang to label them all as one",
            path=where,
        )
    if not found:
        return None
    [code] = found
    from lrltool.languages import resolve_language

    try:
        return resolve_language(code).flores
    except LanguageError:
        return code  # a language outside the registry: keep the records' own code


def _data_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


def evaluate_mlm(
    *,
    model: str | None = None,
    input_path: str = "-",
    output: str = "-",
    adapter: str | None = None,
    revision: str | None = None,
    variant: str = "original",
    paper_compat: bool = False,
    per_sentence: str | None = None,
    token_logprobs: bool = False,
    max_length: int | None = None,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    lang: str | None = None,
    method: str | None = None,
    source: str | None = None,
    skip_bad_lines: bool = False,
    stats_path: str | None = None,
) -> list[Record]:
    """Pseudo-perplexity of the text records in ``input_path`` under ``model`` (+ ``adapter``).

    Reads: JSONL text records (``text``; ``lang``, ``id`` used when present), the model (folder or hub
    id, validated by models.resolve_model) and an adapter folder, a train-adapter run or a hub adapter;
    a `full` run given as the adapter has its model/ scored instead of ``model``.
    Writes: three metric records (pppl, pppl_mean, pppl_word) to ``output`` (stdout by default) and, with
    ``per_sentence``, one record per text (id, pll, pppl, tokens, words, truncated; token log-probs with
    ``token_logprobs``), each file atomically. ``lang``: the records' (one language) or ``--lang``;
    ``method``/``source``: from the run's training.json unless given. Returns the metric records.

    Refuses: no --model (UsageError); a decoder model, an adapter or `full` run made from another base
    model (ModelError); an empty
    evaluation set, a record without text, records of several languages without --lang (InputError).
    """
    from lrltool import models
    from lrltool.pppl import DEFAULT_BATCH_TOKENS, score_pll

    if model is None:
        raise UsageError("--task mlm needs --model", hint="give a model folder or hub id with --model")
    stats = Stats("eval mlm")
    texts, ids, langs, splits = _read_texts(input_path, skip_bad_lines=skip_bad_lines, stats=stats)
    language = _language(lang, langs, input_path)
    model_source = models.resolve_model(model, revision=revision)
    if model_source.is_decoder:
        raise ModelError(
            f"pseudo-perplexity is defined for masked language models; {model} is a decoder"
            f" ({model_source.model_type})",
            hint="give --task mlm an encoder (XLM-R, mBERT); a decoder has ordinary perplexity instead",
        )
    adapter_dir = models.resolve_adapter(adapter) if adapter is not None else None
    method, source = adaptation_of(model_source.path, adapter_dir, method=method, source=source)
    scored_source = model_source
    if adapter_dir is not None and not (adapter_dir / models.ADAPTER_CONFIG).is_file():
        # A `full` run (continued pre-training) has a whole model, not an adapter: score that model.
        scored_source = _full_run_model(adapter_dir, model_source)
        adapter_dir = None
    torch_device, torch_dtype = _device_and_dtype(device, dtype)

    tokenizer = models.load_tokenizer(scored_source)
    lm = models.load_model(scored_source, head="lm", device=torch_device, dtype=torch_dtype)
    if adapter_dir is not None:
        models.load_adapter(lm, adapter_dir)
    result = score_pll(
        lm,
        tokenizer,
        texts,
        variant=variant,
        paper_compat=paper_compat,
        batch_tokens=batch_tokens or DEFAULT_BATCH_TOKENS,
        batch_size=batch_size,
        max_length=max_length,
        token_logprobs=token_logprobs,
    )
    if result.truncated:
        ui.warn(
            f"{result.truncated:,} of {len(texts):,} texts were longer than {result.max_length} tokens;"
            " only their first part was scored (details.truncated counts them; see --max-length)"
        )

    common = dict(
        lang=language,
        model=model_source.name,
        adapter=adapter,
        method=method,
        source=source,
        task="mlm",
        split=splits.pop() if len(splits) == 1 else "test",
        n=len(texts),
    )
    details = {
        "sentences": len(texts),
        "tokens": result.tokens,
        "words": result.words,
        "truncated": result.truncated,
        "pll": result.pll,
        "seconds": round(result.seconds, 3),
    }
    settings = {
        "variant": variant,
        "paper_compat": paper_compat,
        "max_length": result.max_length,
        "data_hash": _data_hash(texts),
        "model_revision": model_source.revision,
        "dtype": str(torch_dtype or "float32").removeprefix("torch."),
    }
    values = {"pppl": result.pppl, "pppl_mean": result.pppl_mean, "pppl_word": result.pppl_word}
    records = [
        MetricRecord(metric=name, value=values[name], details=details, settings=settings, **common).to_json()
        for name in PPPL_METRICS
    ]
    if per_sentence is not None:
        with write_records(per_sentence) as writer:
            for sentence in result.sentences:
                row: Record = {
                    "id": ids[sentence.index],
                    "lang": language,
                    "pll": sentence.pll,
                    "pppl": sentence.pppl,
                    "tokens": sentence.tokens,
                    "words": sentence.words,
                    "truncated": sentence.truncated,
                }
                if sentence.token_logprobs is not None:
                    row["token_logprobs"] = [[token, value] for token, value in sentence.token_logprobs]
                writer.write(row)
    with write_records(output) as writer:
        writer.write_all(records)
    stats.records_out = len(records)
    stats.extra.update(
        tokens=result.tokens,
        tokens_per_s=round(result.tokens / max(result.seconds, 1e-9), 1),
        pppl_mean=round(result.pppl_mean, 4),
    )
    stats.finish(stats_path)
    return records


def _full_run_model(model_dir: Path, base: Any) -> Any:
    """The model of a `full` run, refused unless it was trained from a model like ``base``."""
    from lrltool import models

    trained = models.resolve_model(str(model_dir))
    if (trained.model_type, trained.config["hidden_size"]) != (base.model_type, base.config["hidden_size"]):
        raise ModelError(
            f"the run trained a {trained.model_type} model of hidden size {trained.config['hidden_size']},"
            f" not one like {base.name} ({base.model_type}, hidden size {base.config['hidden_size']})",
            hint="give --model the base model the run was trained from",
            path=str(model_dir.parent),
        )
    return trained


def _device_and_dtype(device: str | None, dtype: str | None) -> tuple[Any, Any]:
    import torch

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch_device = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}'", hint="give cpu, cuda, cuda:1 or auto") from None
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype is not None and dtype not in dtypes:
        raise UsageError(f"unknown dtype '{dtype}'", hint=f"choose one of {', '.join(dtypes)}")
    return torch_device, dtypes.get(dtype) if dtype is not None else None


# ---------------------------------------------------------------------------------------------------
# tc, sa, ner


def evaluate_task_command(
    task: str,
    *,
    run: str | None = None,
    data: str | None = None,
    input_path: str = "-",
    predictions: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    lang: str | None = None,
    output: str = "-",
    skip_bad_lines: bool = False,
    stats_path: str | None = None,
) -> list[Record]:
    """``eval --task tc|sa|ner --run DIR [--data FILE_OR_DIR | FILE]``: metric records to ``output``.

    ``lang`` labels the records with that language (a run trained without --lang or language adapter
    knows none); by default the run's language.

    Reads a finetune run (or a folder of seed-N runs) and its test split, or ``data`` / the ``IN``
    argument; writes the metric records (stdout by default) and, with ``predictions``, one record per
    example, each atomically. Refuses a missing --run and test data given twice (UsageError), and
    everything :func:`lrltool.downstream.evaluate.evaluate_task_run` refuses.
    """
    if run is None:
        raise UsageError(f"--task {task} needs --run", hint="give the -o folder of lrltool finetune")
    if input_path != "-":
        if data is not None:
            raise UsageError("the test data is given twice (IN and --data)", hint="give one of them")
        data = input_path
    stats = Stats(f"eval {task}")
    records = evaluate_task_run(
        task=task,
        run=run,
        data=data,
        predictions=predictions,
        batch_size=batch_size or 32,
        device=device or "auto",
        lang=lang,
        skip_bad_lines=skip_bad_lines,
    )
    write_metric_records(records, output)
    first = TASKS[task].metrics[0]
    singles = [r for r in records if r.metric == first and r.aggregate is None]
    stats.records_in = sum(r.n for r in singles)
    stats.records_out = len(records)
    stats.extra["runs"] = len(singles)
    stats.finish(stats_path)
    return [record.to_json() for record in records]


# eval's registry checks each option against the evaluator's signature: partials keep it.
TASK_EVALUATORS: dict[str, Callable[..., list[Record]]] = {
    task: functools.partial(evaluate_task_command, task) for task in TRAINABLE_TASKS
}


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
    """``eval --task tc|sa --prompt``: zero/K-shot classification by a causal LM (downstream.prompting).

    Reads DIR/test.jsonl(.zst) (and DIR/train for the shots) of ``data``; writes macro_f1 and accuracy
    records to ``output``. Refuses an encoder model, a task other than tc/sa, a missing split.
    """
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
    write_metric_records(records, output)
    stats.records_out = len(records)
    stats.records_in = records[0].n if records else 0
    stats.extra.update({r.metric: round(r.value, 4) for r in records})
    stats.finish(stats_path)
    return [record.to_json() for record in records]


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
