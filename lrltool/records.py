"""Metric records: what ``eval`` writes and ``report`` reads (one JSON object per metric).

Every record carries enough to rebuild any table without guessing::

    {"metric": "pppl_mean", "value": 5.94, "lang": "ron_Latn", "model": "xlm-roberta-base",
     "adapter": "runs/ron/seq_bn-glotcc" | null, "method": "seq_bn", "source": "glotcc" | null,
     "task": "mlm", "task_method": null, "split": "test", "n": 1012, "seed": null, "aggregate": null,
     "details": {...}, "settings": {...}, "version": "0.1.0"}

- ``metric``: ``pppl`` (corpus/micro), ``pppl_mean`` (mean of per-sentence PPPL, the paper's number),
  ``pppl_word`` (word-normalised), ``macro_f1``, ``accuracy``, ``f1``, ``precision``, ``recall``.
- ``method``: how the language was adapted: ``base`` (nothing), ``seq_bn``, ``seq_bn_inv``, ``lora``,
  ``full`` (continued pre-training), ``fusion``, ``prompt``.
- ``source``: the adaptation data: ``glotcc``, ``conceptnet``, ``glotcc+conceptnet`` (fusion) or null.
- ``task``: ``mlm``, ``tc``, ``sa``, ``ner``. ``task_method``: how the downstream task was learned:
  ``adapter`` (task adapter), ``full`` (full fine-tuning), ``prompt-0shot``/``prompt-3shot``; null for mlm.
- ``seed``: the seed of a downstream run, null otherwise. ``aggregate``: null for a single run, ``mean``
  for the mean over seeds (with ``details.sd`` and ``details.seeds``).
"""

from __future__ import annotations

from typing import Any

from lrltool import __version__
from lrltool.errors import InputError

METRIC_KEYS = (
    "metric",
    "value",
    "lang",
    "model",
    "adapter",
    "method",
    "source",
    "task",
    "task_method",
    "split",
    "n",
    "seed",
    "aggregate",
    "details",
    "settings",
    "version",
)
METRICS = ("pppl", "pppl_mean", "pppl_word", "macro_f1", "accuracy", "f1", "precision", "recall")
METHODS = ("base", "seq_bn", "seq_bn_inv", "lora", "full", "fusion", "prompt")
TASKS = ("mlm", "tc", "sa", "ner")


def metric_record(
    *,
    metric: str,
    value: float,
    lang: str | None,
    model: str,
    task: str,
    method: str = "base",
    adapter: str | None = None,
    source: str | None = None,
    task_method: str | None = None,
    split: str | None = "test",
    n: int,
    seed: int | None = None,
    aggregate: str | None = None,
    details: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One metric record with every key in :data:`METRIC_KEYS`, in that order."""
    return {
        "metric": metric,
        "value": float(value),
        "lang": lang,
        "model": model,
        "adapter": adapter,
        "method": method,
        "source": source,
        "task": task,
        "task_method": task_method,
        "split": split,
        "n": int(n),
        "seed": seed,
        "aggregate": aggregate,
        "details": details or {},
        "settings": settings or {},
        "version": __version__,
    }


def check_metric_record(record: dict[str, Any]) -> dict[str, Any]:
    """Raise :class:`InputError` unless ``record`` is a metric record (unknown extra keys are kept)."""
    for key in ("metric", "value", "model", "task", "method", "n"):
        if key not in record:
            raise InputError(
                f"metric record has no '{key}' key",
                hint="give report the records that 'lrltool eval' writes",
            )
    if not isinstance(record["value"], (int, float)) or isinstance(record["value"], bool):
        raise InputError("metric record 'value' is not a number", hint="check the metrics file")
    return record
