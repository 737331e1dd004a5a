"""Task evaluation (``eval --task tc|sa|ner``): predictions of finetune runs, their scores, metric records.

- TC, SA: macro-F1 (scikit-learn's ``f1_score(average="macro")``: the mean over the labels found in
  the gold or predicted labels, its default) and accuracy.
- NER: seqeval precision, recall and F1 (its default conlleval-style chunking) over word-level tag
  sequences: each word's prediction is its first sub-token's; a word cut off by ``max_length`` is
  predicted ``O``. A run trained with ``label_all_subwords`` is scored over every sub-token instead
  (what the seed's script, transformers' run_ner with ``label_all_tokens``, reported); ``details.scoring``
  says which.

seqeval and scikit-learn are called directly (``evaluate.load`` fetches metric scripts from the hub and
fails offline). A folder of seed-N runs gives one record per seed and metric, plus a ``mean`` record per
metric (``details.sd`` the sample standard deviation, ``details.seeds``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lrltool import ui
from lrltool.errors import RunError
from lrltool.finetune import (
    Encoded,
    Example,
    FinetuneRun,
    TaskModel,
    TaskSpec,
    encode_examples,
    find_runs,
    find_split,
    load_finetuned,
    mean_and_sd,
    pick_device,
    read_task_data,
    split_name,
    task_spec,
)
from lrltool.records import MetricRecord

TASK_METRICS = {"classification": ("macro_f1", "accuracy"), "tagging": ("precision", "recall", "f1")}


def predict(task: TaskModel, encoded: Sequence[Encoded], *, batch_size: int, device: Any) -> list[Any]:
    """The predicted label id of each example (classification) or of each token (tagging, an array).

    Examples are batched by length (less padding); the results come back in input order.
    """
    return predict_with_loss(task, encoded, batch_size=batch_size, device=device)[0]


def predict_with_loss(
    task: TaskModel, encoded: Sequence[Encoded], *, batch_size: int, device: Any
) -> tuple[list[Any], float]:
    """:func:`predict`, and the mean cross-entropy over the labelled examples (tokens for tagging)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from lrltool.finetune import collate

    model = task.model
    was_training = model.training
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].input_ids))
    out: list[Any] = [None] * len(encoded)
    loss_sum, count = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            batch = {k: v.to(device) for k, v in collate([encoded[i] for i in rows], task.pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"]
            loss_sum += float(
                F.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
                )
            )  # ignore_index -100: the tokens without a label
            count += int((labels != -100).sum())
            best = logits.argmax(-1).cpu().numpy()
            for k, i in enumerate(rows):
                out[i] = int(best[k]) if best.ndim == 1 else np.asarray(best[k, : len(encoded[i].input_ids)])
    model.train(was_training)
    return out, loss_sum / max(count, 1)


def tag_sequences(
    labels: Sequence[str],
    examples: Sequence[Example],
    encoded: Sequence[Encoded],
    predicted: Sequence[Any],
    *,
    subwords: bool,
    tokenizer: Any = None,
) -> tuple[list[list[str]], list[list[str]], list[list[str]], int]:
    """(gold, predicted, tokens, words cut off) tag sequences for seqeval.

    Word level: one tag per word, the prediction of the word's first sub-token (``O`` for a word that
    truncation cut off). Sub-word level: every sub-token of a word carries the word's gold tag.
    """
    golds, preds, tokens, cut = [], [], [], 0
    for example, enc, pred in zip(examples, encoded, predicted, strict=True):
        if subwords:
            keep = [j for j, w in enumerate(enc.word_of) if w >= 0]
            golds.append([labels[example.gold[enc.word_of[j]]] for j in keep])
            preds.append([labels[int(pred[j])] for j in keep])
            tokens.append(tokenizer.convert_ids_to_tokens([int(enc.input_ids[j]) for j in keep]))
            continue
        golds.append([labels[g] for g in example.gold])
        row = []
        for first in enc.first:
            if first < 0:
                cut += 1
                row.append("O")
            else:
                row.append(labels[int(pred[first])])
        preds.append(row)
        tokens.append(list(example.tokens or []))
    return golds, preds, tokens, cut


def score(
    spec: TaskSpec,
    labels: Sequence[str],
    examples: Sequence[Example],
    encoded: Sequence[Encoded],
    predicted: Sequence[Any],
    *,
    subwords: bool = False,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """The task's metrics (macro_f1 + accuracy, or precision + recall + f1) and a ``details`` dict."""
    if spec.kind == "classification":
        from sklearn.metrics import accuracy_score, f1_score

        gold = [labels[e.gold] for e in examples]
        pred = [labels[p] for p in predicted]
        per_label = f1_score(gold, pred, labels=list(labels), average=None, zero_division=0)
        return {
            "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(gold, pred)),
            "details": {
                "f1_per_label": {
                    label: round(float(v), 6) for label, v in zip(labels, per_label, strict=True)
                },
                "gold_counts": {label: gold.count(label) for label in labels},
                "macro_over": "labels in the gold or predicted labels (scikit-learn's default)",
            },
        }
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    golds, preds, _, cut = tag_sequences(
        labels, examples, encoded, predicted, subwords=subwords, tokenizer=tokenizer
    )
    report = classification_report(golds, preds, output_dict=True, zero_division=0)
    return {
        "precision": float(precision_score(golds, preds, zero_division=0)),
        "recall": float(recall_score(golds, preds, zero_division=0)),
        "f1": float(f1_score(golds, preds, zero_division=0)),
        "details": {
            "scoring": "subword" if subwords else "word",
            "per_type": {
                name: {k: round(float(v), 6) for k, v in values.items()}
                for name, values in report.items()
                if name not in ("micro avg", "macro avg", "weighted avg")
            },
            "words": sum(len(g) for g in golds) if not subwords else sum(len(e.gold) for e in examples),
            "words_cut_off": cut,
        },
    }


def prediction_records(
    spec: TaskSpec,
    labels: Sequence[str],
    examples: Sequence[Example],
    encoded: Sequence[Encoded],
    predicted: Sequence[Any],
    *,
    subwords: bool,
    tokenizer: Any,
    seed: int | None,
) -> list[dict[str, Any]]:
    """One record per example: id, gold, predicted (label names; tag lists and tokens for NER)."""
    records = []
    if spec.kind == "classification":
        for example, pred in zip(examples, predicted, strict=True):
            records.append({"id": example.id, "gold": labels[example.gold], "predicted": labels[pred]})
    else:
        golds, preds, tokens, _ = tag_sequences(
            labels, examples, encoded, predicted, subwords=subwords, tokenizer=tokenizer
        )
        for example, gold, pred, toks in zip(examples, golds, preds, tokens, strict=True):
            records.append({"id": example.id, "tokens": toks, "gold": gold, "predicted": pred})
    if seed is not None:
        for record in records:
            record["seed"] = seed
    return records


def _test_file(run: FinetuneRun, data: str | Path | None) -> Path:
    if data is not None:
        path = Path(data)
        if path.is_dir():
            found = find_split(path, "test")
            if found is None:
                raise RunError(
                    "no test.jsonl(.zst) in the --data folder",
                    hint="name the file to evaluate",
                    path=str(path),
                )
            return found
        return path
    test = (run.info.get("data") or {}).get("test")
    if not test or not Path(test).is_file():
        raise RunError(
            "the run's data folder has no test split" + (f" ({test} is gone)" if test else ""),
            hint="give the evaluation file with --data",
            path=str(run.path),
        )
    return Path(test)


def evaluate_task_run(
    *,
    task: str,
    run: str | Path,
    data: str | Path | None = None,
    predictions: str | Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
    skip_bad_lines: bool = False,
) -> list[dict[str, Any]]:
    """Metric records of a finetune run (or of each seed-N run in it, plus their means).

    Reads the run's training.json and weights (with its language adapters and base model) and the test
    split of its data (or ``data``: a file, or a folder holding test.jsonl(.zst)). Writes ``predictions``
    (one record per example, atomically) if given. Refuses (one-line errors): a folder that is no
    finished finetune run, a run trained for another task, labels the run never saw, an empty file.
    """
    from lrltool.streams import write_records

    spec = task_spec(task)
    if batch_size < 1:
        from lrltool.errors import UsageError

        raise UsageError(f"--batch-size must be positive, not {batch_size}")
    found, several = find_runs(run)
    for item in found:
        if item.info.get("task") != spec.name:
            raise RunError(
                f"the run was trained for the task {item.info.get('task')}, not {spec.name}",
                hint=f"use --task {item.info.get('task')}",
                path=str(item.path),
            )
    if several:
        _check_same_setup(found)
    torch_device = pick_device(device)
    records: list[dict[str, Any]] = []
    predicted_records: list[dict[str, Any]] = []
    per_metric: dict[str, list[float]] = {}
    for item in found:
        info = item.info
        labels = list(info["labels"])
        path = _test_file(item, data)
        test = read_task_data(
            path,
            spec,
            labels,
            unseen_hint=f"the run was trained on the labels {', '.join(labels)} and has never seen this one",
            skip_bad_lines=skip_bad_lines,
        )
        model = load_finetuned(info, item.path, device=torch_device)
        subwords = bool(info["settings"].get("label_all_subwords"))
        encoded = encode_examples(
            test.examples,
            model.tokenizer,
            spec,
            max_length=int(info.get("max_length") or info["settings"]["max_length"]),
            label_all_subwords=subwords,
        )
        predicted = predict(model, encoded, batch_size=batch_size, device=torch_device)
        scores = score(
            spec, labels, test.examples, encoded, predicted, subwords=subwords, tokenizer=model.tokenizer
        )
        if predictions is not None:
            predicted_records += prediction_records(
                spec,
                labels,
                test.examples,
                encoded,
                predicted,
                subwords=subwords,
                tokenizer=model.tokenizer,
                seed=info.get("seed") if several else None,
            )
        details = {
            **scores["details"],
            "run": str(item.path),
            "data": str(path),
            "data_hash": test.hash,
            "labels": labels,
        }
        for metric in TASK_METRICS[spec.kind]:
            per_metric.setdefault(metric, []).append(scores[metric])
            records.append(_record(info, spec, metric, scores[metric], split_name(path), len(test), details))
        if not ui.quiet():
            summary = ", ".join(f"{m} {scores[m]:.4f}" for m in TASK_METRICS[spec.kind])
            ui.info(f"eval {spec.name}: {item.path} ({split_name(path)}, {len(test):,} examples): {summary}")
    if several:
        first = found[0].info
        seeds = [item.info.get("seed") for item in found]
        for metric in TASK_METRICS[spec.kind]:
            mean, sd = mean_and_sd(per_metric[metric])
            record = _record(
                first,
                spec,
                metric,
                mean,
                records[0]["split"],
                records[0]["n"],
                {"sd": sd, "seeds": seeds, "values": per_metric[metric], "run": str(Path(run))},
            )
            record.update(seed=None, aggregate="mean")
            records.append(record)
    if predictions is not None:
        with write_records(predictions) as writer:
            writer.write_all(predicted_records)
    return records


def _check_same_setup(found: Sequence[FinetuneRun]) -> None:
    keys = ("task", "model", "task_method", "lang_method", "lang_source", "labels")
    first = found[0].info
    for item in found[1:]:
        for key in keys:
            if item.info.get(key) != first.get(key):
                raise RunError(
                    f"the seed runs differ in {key} ({first.get(key)} vs {item.info.get(key)})",
                    hint="evaluate each run folder on its own",
                    path=str(item.path),
                )


def _record(
    info: dict[str, Any],
    spec: TaskSpec,
    metric: str,
    value: float,
    split: str,
    n: int,
    details: dict[str, Any],
) -> dict[str, Any]:
    settings = dict(info.get("settings") or {})
    settings.update(
        max_length=info.get("max_length"), steps=info.get("steps"), best_step=info.get("best_step")
    )
    return MetricRecord(
        metric=metric,
        value=value,
        lang=info.get("lang"),
        model=info["model"],
        task=spec.name,
        method=info.get("lang_method") or "base",
        adapter=info.get("lang_adapter"),
        source=info.get("lang_source"),
        task_method=info.get("task_method"),
        split=split,
        n=n,
        seed=info.get("seed"),
        details=details,
        settings=settings,
    ).to_json()


# ---------------------------------------------------------------------------------------------------
# The `eval --task tc|sa|ner` evaluators (registered in lrltool.evaluate.EVALUATORS)


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
) -> list[dict[str, Any]]:
    """``eval --task tc|sa|ner --run DIR [--data FILE_OR_DIR | FILE]``: metric records to ``output``.

    ``lang`` labels the records with that language (a run trained without --lang or language adapter
    knows none); by default the run's language.

    Reads a finetune run (or a folder of seed-N runs) and its test split, or ``data`` / the ``IN``
    argument; writes the metric records (stdout by default) and, with ``predictions``, one record per
    example, each atomically. Refuses a missing --run and test data given twice (UsageError), and
    everything :func:`evaluate_task_run` refuses.
    """
    from lrltool.errors import UsageError
    from lrltool.streams import Stats, write_records

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
        skip_bad_lines=skip_bad_lines,
    )
    if lang is not None:
        from lrltool.languages import resolve_language

        code = resolve_language(lang).flores
        for record in records:
            record["lang"] = code
    with write_records(output) as writer:
        writer.write_all(records)
    first = TASK_METRICS[task_spec(task).kind][0]
    singles = [r for r in records if r["metric"] == first and r["aggregate"] is None]
    stats.records_in = sum(r["n"] for r in singles)
    stats.records_out = len(records)
    stats.extra["runs"] = len(singles)
    stats.finish(stats_path)
    return records


# eval's registry checks each option against the evaluator's signature: partials keep it.
TASK_EVALUATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    task: functools.partial(evaluate_task_command, task) for task in ("tc", "sa", "ner")
}
