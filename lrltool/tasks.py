"""The task registry: every fact about an evaluation task, written once.

A task is what ``eval --task`` measures and what a metric record's ``task`` names. As lm-evaluation-harness
keeps a task in one ``TaskConfig``, each :class:`TaskConfig` here holds its name and titles, the ``fetch``
source of its data, the record kind, the labels (imported from the source module, which owns the order
the data publishes), the metrics ``eval`` writes and the one that picks checkpoints and heads report
tables, the paper's epochs and maximum length, and, for a promptable task, its default prompt.

Every other table (finetune's task choices, eval's metric lists, report's titles, the Makefile's
task -> source table, checked by a test) is derived from :data:`TASKS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from lrltool.errors import UsageError
from lrltool.sources.sentiment import LABELS as SENTIMENT_LABELS
from lrltool.sources.sib200 import LABELS as SIB200_LABELS
from lrltool.sources.wikiann import TAGS as WIKIANN_TAGS

#: Record kinds: ``text`` {"text"}, ``classification`` {"text", "label"}, ``tagging`` {"tokens", "tags"}.
RECORD_KINDS = ("text", "classification", "tagging")


@dataclass(frozen=True)
class PromptSpec:
    """A promptable task's default prompt (read by lrltool.downstream.prompting; ``--template`` overrides)."""

    instruction: str  # ``{labels}`` = the verbalizers joined by ", "
    example: str  # one example: contains ``{text}`` and ends with ``{answer}``
    verbalizers: Mapping[str, str]  # label -> word, in label order
    separator: str = "\n\n"


@dataclass(frozen=True)
class TaskConfig:
    """One evaluation task (see the module docstring)."""

    name: str  # what --task and the records' "task" say: mlm, clm, tc, sa, ner
    title: str  # the report's table title
    description: str  # lower case, for sentences and model cards
    source: str  # the `lrltool fetch` source of its data
    kind: str  # one of RECORD_KINDS
    metrics: tuple[str, ...]  # what eval writes, in order (names in lrltool.records.METRICS)
    metric: str  # the headline metric: picks the best checkpoint, heads the report's table
    labels: tuple[str, ...] = ()  # fixed order (the source's); empty for text tasks
    paper_epochs: int | None = None
    paper_max_length: int | None = None
    prompt: PromptSpec | None = None  # promptable with `eval --prompt` when set

    @property
    def trainable(self) -> bool:
        """Whether `finetune` trains it (a labelled task)."""
        return self.kind in ("classification", "tagging")

    @property
    def head(self) -> str:
        """The model head a finetune run puts on the body."""
        return "sequence-classification" if self.kind == "classification" else "token-classification"


_SIB200_WORDS = {label: label.split("/")[0] for label in SIB200_LABELS}  # science/technology -> science

TASKS: Mapping[str, TaskConfig] = MappingProxyType(
    {
        task.name: task
        for task in (
            TaskConfig(
                name="mlm",
                title="Pseudo-perplexity",
                description="masked-LM pseudo-perplexity (FLORES-200)",
                source="flores",
                kind="text",
                metrics=("pppl", "pppl_mean", "pppl_word"),
                metric="pppl_mean",
            ),
            TaskConfig(
                name="clm",
                title="Perplexity",
                description="causal-LM perplexity (FLORES-200)",
                source="flores",
                kind="text",
                metrics=("ppl", "ppl_mean", "ppl_word"),
                metric="ppl_mean",
            ),
            TaskConfig(
                name="tc",
                title="Topic classification (SIB-200)",
                description="topic classification (SIB-200)",
                source="sib200",
                kind="classification",
                metrics=("macro_f1", "accuracy"),
                metric="macro_f1",
                labels=SIB200_LABELS,
                paper_epochs=20,
                paper_max_length=256,
                prompt=PromptSpec(
                    instruction="What is the topic of the text? Answer with one of: {labels}.",
                    example="Text: {text}\nTopic: {answer}",
                    verbalizers=MappingProxyType(_SIB200_WORDS),
                ),
            ),
            TaskConfig(
                name="sa",
                title="Sentiment analysis",
                description="binary sentiment analysis",
                source="sentiment",
                kind="classification",
                metrics=("macro_f1", "accuracy"),
                metric="macro_f1",
                labels=SENTIMENT_LABELS,
                paper_epochs=25,
                paper_max_length=512,
                prompt=PromptSpec(
                    instruction="Is the sentiment of the text negative or positive?"
                    " Answer with one of: {labels}.",
                    example="Text: {text}\nSentiment: {answer}",
                    verbalizers=MappingProxyType(
                        dict(zip(SENTIMENT_LABELS, ("negative", "positive"), strict=True))
                    ),
                ),
            ),
            TaskConfig(
                name="ner",
                title="Named entity recognition (WikiANN)",
                description="named entities (WikiANN)",
                source="wikiann",
                kind="tagging",
                metrics=("precision", "recall", "f1"),
                metric="f1",
                labels=WIKIANN_TAGS,
                paper_epochs=100,
                paper_max_length=512,
            ),
        )
    }
)

#: The tasks `finetune` trains (labelled data), in registry order.
TRAINABLE_TASKS: tuple[str, ...] = tuple(name for name, task in TASKS.items() if task.trainable)
#: The tasks `eval --prompt` classifies.
PROMPT_TASKS: tuple[str, ...] = tuple(name for name, task in TASKS.items() if task.prompt is not None)


def get_task(name: str, *, among: tuple[str, ...] | None = None) -> TaskConfig:
    """The task ``name`` (UsageError listing the choices otherwise); ``among`` narrows the choices."""
    choices = among if among is not None else tuple(TASKS)
    if name not in choices:
        raise UsageError(f"unknown task '{name}'", hint=f"choose one of {', '.join(choices)}")
    return TASKS[name]
