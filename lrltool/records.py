"""Metric records: what ``eval`` writes and ``report`` reads (one JSON object per metric).

Every record carries enough to rebuild any table without guessing::

    {"metric": "pppl_mean", "value": 5.94, "lang": "ron_Latn", "model": "xlm-roberta-base",
     "adapter": "runs/ron/seq_bn-glotcc" | null, "method": "seq_bn", "source": "glotcc" | null,
     "task": "mlm", "task_method": null, "split": "test", "n": 1012, "seed": null, "aggregate": null,
     "details": {...}, "settings": {...}, "version": "0.1.0"}

- ``metric``: a name in :data:`METRICS` (``pppl`` corpus/micro, ``pppl_mean`` the paper's mean of
  per-sentence PPPL, ``pppl_word`` word-normalised; ``ppl``, ``ppl_mean``, ``ppl_word`` the same for
  a causal LM's perplexity; ``macro_f1``, ``accuracy``, ``f1``, ``precision``, ``recall``).
- ``method``: how the language was adapted: ``base`` (nothing), ``seq_bn``, ``seq_bn_inv``, ``lora``,
  ``full`` (continued pre-training), ``fusion``, ``prompt``.
- ``source``: the adaptation data: ``glotcc``, ``conceptnet``, ``glotcc+conceptnet`` (fusion) or null.
- ``task``: a task of :data:`lrltool.tasks.TASKS`. ``task_method``: how the downstream task was learned:
  ``adapter`` (task adapter), ``full`` (full fine-tuning), ``prompt-0shot``/``prompt-3shot``; null for mlm
  and clm.
- ``seed``: the seed of a downstream run, null otherwise. ``aggregate``: null for a single run, ``mean``
  for the mean over seeds (with ``details.sd`` and ``details.seeds``).

:class:`MetricRecord` is the one type: evaluators build them, :func:`write_metric_records` writes them,
``report`` reads them back with :meth:`MetricRecord.from_json`, which refuses what cannot be right.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lrltool import __version__
from lrltool.errors import InputError
from lrltool.streams import require, write_records
from lrltool.tasks import TASKS


@dataclass(frozen=True)
class MetricSpec:
    """A metric: how values read (``perplexity`` >= 1, ``fraction`` in [0, 1]) and which way is better."""

    name: str
    title: str
    kind: str  # "perplexity" or "fraction"
    higher_is_better: bool


METRICS: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("pppl", "corpus pseudo-perplexity (micro)", "perplexity", False),
        MetricSpec(
            "pppl_mean", "mean of per-sentence pseudo-perplexity (the paper's number)", "perplexity", False
        ),
        MetricSpec("pppl_word", "word-normalised pseudo-perplexity", "perplexity", False),
        MetricSpec("ppl", "corpus perplexity (micro)", "perplexity", False),
        MetricSpec("ppl_mean", "mean of per-sentence perplexity", "perplexity", False),
        MetricSpec("ppl_word", "word-normalised perplexity", "perplexity", False),
        MetricSpec("macro_f1", "macro-F1", "fraction", True),
        MetricSpec("accuracy", "accuracy", "fraction", True),
        MetricSpec("f1", "F1", "fraction", True),
        MetricSpec("precision", "precision", "fraction", True),
        MetricSpec("recall", "recall", "fraction", True),
    )
}
#: Metrics whose values are fractions in [0, 1] (shown in percent) and perplexities (lower is better).
FRACTION_METRICS: tuple[str, ...] = tuple(n for n, s in METRICS.items() if s.kind == "fraction")
PERPLEXITY_METRICS: tuple[str, ...] = tuple(n for n, s in METRICS.items() if s.kind == "perplexity")
METHODS = ("base", "seq_bn", "seq_bn_inv", "lora", "full", "fusion", "prompt")
AGGREGATES = (None, "mean")


@dataclass(frozen=True)
class MetricRecord:
    """One metric of one evaluation (see the module docstring); ``to_json`` keeps the key order below."""

    metric: str
    value: float
    model: str
    task: str
    n: int
    lang: str | None = None
    adapter: str | None = None
    method: str = "base"
    source: str | None = None
    task_method: str | None = None
    split: str | None = "test"
    seed: int | None = None
    aggregate: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__

    def __post_init__(self) -> None:
        # Evaluators hand over numpy numbers too; the record holds plain ones.
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "n", int(self.n))

    def to_json(self) -> dict[str, Any]:
        return {key: _plain(getattr(self, key)) for key in METRIC_KEYS}

    def replace(self, **changes: Any) -> MetricRecord:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> MetricRecord:
        """The record ``record`` holds; InputError (no location: readers add file:line) if it is none.

        Unknown extra keys are ignored. Refused: a missing or mistyped key, a non-finite value, an
        F1-type value outside [0, 1], a perplexity that is not positive, an unknown aggregate.
        """
        for key in ("metric", "value", "model", "task", "method", "n"):
            if key not in record:
                raise InputError(
                    f"metric record has no '{key}' key",
                    hint="give report the records that 'lrltool eval' writes",
                )
        if not isinstance(record["value"], (int, float)) or isinstance(record["value"], bool):
            raise InputError("metric record 'value' is not a number", hint="check the metrics file")
        for key in ("metric", "model", "task", "method"):
            require(record, key, str, what="metric record")
        if not isinstance(record["n"], int) or isinstance(record["n"], bool):
            raise InputError(
                f"metric record field 'n' is {type(record['n']).__name__}, expected int",
                hint="write 'n' as a JSON int",
            )
        optional = {key: _optional(record, key, str) for key in _OPTIONAL_TEXT}
        seed = _optional(record, "seed", int)
        details, settings = (_optional(record, key, dict) or {} for key in ("details", "settings"))
        built = cls(
            metric=record["metric"],
            value=float(record["value"]),
            model=record["model"],
            task=record["task"],
            n=record["n"],
            method=record["method"],
            seed=seed,
            details=details,
            settings=settings,
            version=str(record.get("version", "")),
            **optional,
        )
        built.check()
        return built

    def check(self) -> None:
        """Refuse values that cannot be right (InputError)."""
        metric, value = self.metric, self.value
        if not math.isfinite(value):
            raise InputError(f"'{metric}' value is not a finite number", hint="check the metrics file")
        if self.aggregate not in AGGREGATES:
            raise InputError(
                f"unknown aggregate '{self.aggregate}'",
                hint="aggregate is null for one run or 'mean' for the mean over seeds",
            )
        if self.aggregate == "mean":
            sd, seeds = self.details.get("sd"), self.details.get("seeds")
            if sd is not None and (not isinstance(sd, (int, float)) or isinstance(sd, bool) or sd < 0):
                raise InputError(
                    "aggregate record 'details.sd' is not a non-negative number",
                    hint="check the metrics file",
                )
            if seeds is not None and not (isinstance(seeds, list) and all(isinstance(x, int) for x in seeds)):
                raise InputError(
                    "aggregate record 'details.seeds' is not a list of seeds", hint="check the metrics file"
                )
        spec = METRICS.get(metric)
        if spec is not None and spec.kind == "fraction" and not 0.0 <= value <= 1.0:
            raise InputError(
                f"'{metric}' value {value:g} is outside [0, 1]",
                hint="metric records hold scores as fractions (0.79), not percentages (79)",
            )
        if spec is not None and spec.kind == "perplexity" and value <= 0.0:
            raise InputError(f"'{metric}' value {value:g} is not positive", hint="a perplexity is at least 1")


#: The keys of a metric record, in the order records are written.
METRIC_KEYS: tuple[str, ...] = (
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
_OPTIONAL_TEXT = ("lang", "source", "task_method", "adapter", "split", "aggregate")
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def _optional(record: Mapping[str, Any], key: str, kind: type) -> Any:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(
            f"metric record field '{key}' is {type(value).__name__}, expected {kind.__name__} or null",
            hint=f"write '{key}' as a JSON {kind.__name__} or null",
        )
    return value


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def mean_and_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (n - 1; None for fewer than two values) of scores."""
    mean = math.fsum(values) / len(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def write_metric_records(records: Iterable[MetricRecord], output: str | os.PathLike[str] = "-") -> int:
    """Write ``records`` as JSONL to ``output`` (``-``: stdout), atomically; return how many."""
    with write_records(output) as writer:
        return writer.write_all(record.to_json() for record in records)
