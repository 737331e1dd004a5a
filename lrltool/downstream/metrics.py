"""Predictions of a task model and their scores (the metrics of :data:`lrltool.tasks.TASKS`).

- classification (tc, sa; finetune validation, eval and prompting alike): macro-F1 (scikit-learn's
  ``f1_score(average="macro")``: the mean over the labels found in the gold or predicted labels, its
  default) and accuracy, by :func:`classification_metrics`;
- tagging (ner): seqeval precision, recall and F1 (its default conlleval-style chunking) over word-level
  tag sequences: each word's prediction is its first sub-token's; a word cut off by ``max_length`` is
  predicted ``O``. A run trained with ``label_all_subwords`` is scored over every sub-token instead
  (what the seed's script, transformers' run_ner with ``label_all_tokens``, reported); ``details.scoring``
  says which.

seqeval and scikit-learn are called directly (``evaluate.load`` fetches metric scripts from the hub and
fails offline; docs/design.md "Models and adapters").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lrltool.downstream.data import Encoded, Example, collate
from lrltool.downstream.model import TaskModel
from lrltool.tasks import TaskConfig


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


def classification_metrics(
    gold: Sequence[str], predicted: Sequence[str], *, labels: Sequence[str] | None = None
) -> dict[str, float]:
    """Macro-F1 (over the labels present in gold or predictions, scikit-learn's default, or over ``labels``:
    one absent from both counts 0) and accuracy."""
    from sklearn.metrics import accuracy_score, f1_score

    over = None if labels is None else list(labels)
    return {
        "macro_f1": float(
            f1_score(list(gold), list(predicted), average="macro", labels=over, zero_division=0)
        ),
        "accuracy": float(accuracy_score(list(gold), list(predicted))),
    }


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
    task: TaskConfig,
    labels: Sequence[str],
    examples: Sequence[Example],
    encoded: Sequence[Encoded],
    predicted: Sequence[Any],
    *,
    subwords: bool = False,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """The task's metrics (``task.metrics``: macro_f1 + accuracy, or precision + recall + f1) and a
    ``details`` dict (per label / per entity type)."""
    if task.kind == "classification":
        from sklearn.metrics import f1_score

        gold = [labels[e.gold] for e in examples]
        pred = [labels[p] for p in predicted]
        per_label = f1_score(gold, pred, labels=list(labels), average=None, zero_division=0)
        values: dict[str, Any] = classification_metrics(gold, pred)
        details = {
            "f1_per_label": {label: round(float(v), 6) for label, v in zip(labels, per_label, strict=True)},
            "gold_counts": {label: gold.count(label) for label in labels},
            "macro_over": "labels in the gold or predicted labels (scikit-learn's default)",
            # per example, for report's bootstrap over test examples: label indices into the run's labels
            "gold": [int(e.gold) for e in examples],
            "predicted": [int(p) for p in predicted],
        }
    else:
        values, details = _tagging_scores(labels, examples, encoded, predicted, subwords, tokenizer)
    return {**{metric: values[metric] for metric in task.metrics}, "details": details}


def _tagging_scores(
    labels: Sequence[str],
    examples: Sequence[Example],
    encoded: Sequence[Encoded],
    predicted: Sequence[Any],
    subwords: bool,
    tokenizer: Any,
) -> tuple[dict[str, float], dict[str, Any]]:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    golds, preds, _, cut = tag_sequences(
        labels, examples, encoded, predicted, subwords=subwords, tokenizer=tokenizer
    )
    report = classification_report(golds, preds, output_dict=True, zero_division=0)
    values = {
        "precision": float(precision_score(golds, preds, zero_division=0)),
        "recall": float(recall_score(golds, preds, zero_division=0)),
        "f1": float(f1_score(golds, preds, zero_division=0)),
    }
    details = {
        "scoring": "subword" if subwords else "word",
        "per_type": {
            name: {k: round(float(v), 6) for k, v in values_.items()}
            for name, values_ in report.items()
            if name not in ("micro avg", "macro avg", "weighted avg")
        },
        "words": sum(len(g) for g in golds) if not subwords else sum(len(e.gold) for e in examples),
        "words_cut_off": cut,
        # per sentence [correct, predicted, gold] entities, for report's bootstrap over test examples
        "entity_counts": entity_counts(golds, preds),
    }
    return values, details


def entity_counts(golds: Sequence[list[str]], preds: Sequence[list[str]]) -> list[list[int]]:
    """Per sentence: [entities predicted exactly, entities predicted, gold entities] (seqeval's chunks).
    Their sums give seqeval's micro precision, recall and F1 (no entity crosses a sentence)."""
    from seqeval.metrics.sequence_labeling import get_entities

    rows = []
    for gold, pred in zip(golds, preds, strict=True):
        g, p = set(get_entities(list(gold))), set(get_entities(list(pred)))
        rows.append([len(g & p), len(p), len(g)])
    return rows


def prediction_records(
    task: TaskConfig,
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
    if task.kind == "classification":
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
