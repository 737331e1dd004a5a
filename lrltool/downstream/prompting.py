"""``eval --task tc|sa --prompt``: zero- and K-shot classification with a causal LM, by label log-likelihood.

The model never generates text. For every example it scores each label's verbalizer as the continuation
of the prompt, ``log P(verbalizer | prompt)``, and predicts the label with the highest score, so a
prediction can never fail to parse (issue 6 §2).

Prompt (the task's default, :attr:`lrltool.tasks.TaskConfig.prompt`; ``--template FILE`` replaces any
part)::

    <instruction>

    <example, with shot 1's text and verbalizer>

    <example, with the query's text, cut before {answer}>

and the scored continuation is ``" " + verbalizer`` (the text between the answer prefix, e.g. "Topic:",
and ``{answer}``, then the verbalizer). Verbalizers map each label of the task (in the order of its
source) to one word: tc (SIB-200) the first word of each topic, sa (labels "0"/"1" as the source has
them) negative / positive.

A template file is a JSON object with any of ``instruction`` (``{labels}`` = the verbalizers joined by
", "), ``example`` (how one example reads: must contain ``{text}`` and end with ``{answer}``; the query
is the same text cut before ``{answer}``, the space before ``{answer}`` moves into the scored
continuation), ``separator`` (between instruction, shots and query) and ``verbalizers``
(``{label: word}``, in label order; it also defines the label set, so other label sets work too).
Records carry the template's hash, so scores from different prompts are never mixed up.

Tokens: the prompt is tokenized once (BOS + text, no other special tokens); each label's continuation
tokens are those the tokenizer gives after the answer prefix (``"Topic:" + " science"`` minus
``"Topic:"``), so SentencePiece tokenizers do not add a stray word-boundary token. A prompt longer than
``max_length`` loses its oldest tokens (after BOS; counted as ``truncated``), as lm-eval-harness does.

Scoring is exact and batched: one forward pass per batch of prompts scores every label, each row
holding its prompt followed by all labels' tokens under a 4-D attention mask (each label sees the prompt
and its own earlier tokens), so the prompt is computed once, not once per label; equal to one forward
pass per (example, label) to float tolerance (tests/test_prompting.py). ``score="sum"`` sums the
continuation's token log-probabilities; ``"mean"`` divides by its token count.

Shots: ``K`` examples from the train split, drawn per query from a generator seeded by (seed, query id),
so a query gets the same shots whatever the order of the file; balanced over labels where possible
(round-robin over the labels in a seeded order), never the query itself (same id or same text), then
shuffled.

``answer="generate"`` (``eval --prompt --answer generate``): the paper's prompting rows, as
src/tc/get_deepseek.py of the seed repository ran them (at commit 8638155, unchanged up to 150ad4f):
the model writes an answer (greedy, at most ``max_new_tokens`` = 100 new tokens, :45; no KV cache, :46),
the prompt and answer are decoded together without special tokens (:50), the text after the first
"Answer:" (case-insensitive, ``\\s*(.*)``: to the end of that line, :53-57) is the answer, and the label is
the one verbalizer found in it as a substring, both lower-cased (:60-67); no verbalizer or several make the
example unparseable, and it is dropped before macro-F1 (:77-80; over all labels, ``labels=categories``,
:93; 0.0 when none is left, :94-95); lrltool adds accuracy over the same kept examples.
Nothing strips a ``<think>`` part: with 100 tokens a reasoning model's answer
line is whatever follows "Answer:". lrltool searches from the query's start (the shots before it hold
their own "Answer:"); with 0 shots and the seed's prompt that is the seed's search from the text's start.
The seed's prompt (``paper_compat``, :19-22, :33-36): "Classify the following text into one of these
categories: {categories}. Text: {input_text} Answer:", the categories lower-cased in the order they first
appear in the train split (``dataset["train"].unique("category")``, :14-17). One difference: the seed
called ``generate`` without ``do_sample``, so the model's own generation_config.json decided (sampling
where it says so); lrltool always decodes greedily (reproducible, what the brief of the paper's rows says).
Batches are left-padded (position ids from the attention mask, as ``generate`` computes them) and equal
one ``generate`` per example (tests/test_prompting_generate.py).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrltool import models, ui
from lrltool.devices import resolve_device, resolve_dtype
from lrltool.downstream.data import Example, data_folder, find_split, read_task_data
from lrltool.downstream.metrics import classification_metrics
from lrltool.errors import InputError, LrlError, ModelError, UsageError
from lrltool.languages import resolve_language
from lrltool.records import METHODS, MetricRecord
from lrltool.streams import write_records
from lrltool.tasks import PROMPT_TASKS, TASKS

SCORES = ("sum", "mean")
ANSWERS = ("score", "generate")  # label log-likelihoods (lrltool's default) or the paper's generation
PAPER_MAX_NEW_TOKENS = 100  # src/tc/get_deepseek.py:45 `max_new_tokens=100`
#: The seed's prompt (get_deepseek.py:19-22) as a template: instruction, separator, query "Text: ... Answer:".
PAPER_PROMPTS: dict[str, dict[str, str]] = {
    "tc": {
        "instruction": "Classify the following text into one of these categories: {labels}.",
        "example": "Text: {text} Answer: {answer}",
        "separator": " ",
    }
}
#: SIB-200's categories in the order they first appear in its train split (measured on ron_Latn's
#: train.tsv; the splits are parallel): the seed's `dataset["train"].unique("category")` order, used when
#: the data folder has no train split to read it from.
PAPER_TC_ORDER = (
    "geography",
    "science/technology",
    "entertainment",
    "politics",
    "health",
    "travel",
    "sports",
)
_TEMPLATE_KEYS = ("instruction", "example", "separator", "verbalizers")


# ---------------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class PromptTemplate:
    """How examples become a prompt, and each label's verbalizer (label order = ``verbalizers`` order)."""

    task: str
    instruction: str
    example: str
    separator: str
    verbalizers: dict[str, str]
    origin: str = "default"

    @property
    def labels(self) -> list[str]:
        return list(self.verbalizers)

    @property
    def query(self) -> str:
        """``example`` cut before ``{answer}``, without the trailing spaces (they go to the answer)."""
        return self.example[: self.example.index("{answer}")].rstrip(" ")

    @property
    def answer_lead(self) -> str:
        """What precedes the verbalizer in the scored continuation (the space after "Topic:")."""
        return self.example[len(self.query) : self.example.index("{answer}")]

    @property
    def answer_prefix(self) -> str:
        """The query's last line after the text ("Topic:"): the context label tokens are cut against."""
        return self.query.rsplit("{text}", 1)[-1].rsplit("\n", 1)[-1]

    def continuation(self, label: str) -> str:
        return self.answer_lead + self.verbalizers[label]

    def render(self, text: str, shots: Sequence[Example] = ()) -> str:
        """The prompt for ``text`` after ``shots`` (each shown with its verbalized label)."""
        parts = []
        if self.instruction:
            parts.append(self.instruction.replace("{labels}", ", ".join(self.verbalizers.values())))
        for shot in shots:
            # {answer} first: a text that happens to contain "{answer}" stays as it is.
            parts.append(
                self.example.replace("{answer}", self.verbalizers[shot.label]).replace("{text}", shot.text)
            )
        parts.append(self.query.replace("{text}", text))
        return self.separator.join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _TEMPLATE_KEYS}

    @property
    def digest(self) -> str:
        """A short hash of everything that shapes the prompt (recorded with every score)."""
        canonical = json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def _template_error(message: str, path: str | None) -> InputError:
    hint = (
        "a template is a JSON object with instruction, example ('...{text}...{answer}'), separator,"
        " verbalizers"
    )
    return InputError(message, hint=hint, path=path)


def load_template(
    task: str, path: str | Path | None = None, *, paper_order: Sequence[str] | None = None
) -> PromptTemplate:
    """The default template of ``task`` (its :class:`lrltool.tasks.PromptSpec`), or with ``paper_order``
    the seed's prompt (:data:`PAPER_PROMPTS`, each label its own lower-cased name, in that order), with the
    keys of the JSON file ``path`` (if given) replacing its own.

    Refuses (InputError) an unreadable file, unknown keys, an ``example`` without ``{text}`` or not ending
    with ``{answer}``, empty or duplicate verbalizers.
    """
    check_prompt_task(task)
    default = TASKS[task].prompt
    assert default is not None  # check_prompt_task: a task of PROMPT_TASKS
    values: dict[str, Any] = {
        "instruction": default.instruction,
        "example": default.example,
        "separator": default.separator,
        "verbalizers": dict(default.verbalizers),
    }
    if paper_order is not None:
        values.update(PAPER_PROMPTS[task])
        values["verbalizers"] = {label: label.lower() for label in paper_order}
    where = None
    if path is not None:
        where = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("no such template file", hint="check --template", path=where) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _template_error(f"cannot read the template ({exc})", where) from None
        if not isinstance(data, dict):
            raise _template_error("the template is not a JSON object", where)
        unknown = sorted(set(data) - set(_TEMPLATE_KEYS))
        if unknown:
            raise _template_error(f"unknown template key '{unknown[0]}'", where)
        values.update(data)
    for key in ("instruction", "example", "separator"):
        if not isinstance(values[key], str):
            raise _template_error(f"template '{key}' is not a string", where)
    example = values["example"]
    if "{text}" not in example or not example.endswith("{answer}") or example.count("{answer}") != 1:
        raise _template_error("template 'example' must contain {text} and end with {answer}", where)
    if example.index("{text}") > example.index("{answer}"):
        raise _template_error("template 'example' must put {text} before {answer}", where)
    verbalizers = values["verbalizers"]
    if not isinstance(verbalizers, dict) or not verbalizers:
        raise _template_error("template 'verbalizers' must be a non-empty object {label: word}", where)
    words = [str(word) for word in verbalizers.values()]
    if any(not isinstance(w, str) or not w.strip() for w in verbalizers.values()):
        raise _template_error("template 'verbalizers' has an empty or non-string word", where)
    if len(set(words)) != len(words):
        raise _template_error("two labels share a verbalizer; each label needs its own word", where)
    return PromptTemplate(
        task=task,
        instruction=values["instruction"],
        example=example,
        separator=values["separator"],
        verbalizers={str(label): str(word) for label, word in verbalizers.items()},
        origin=Path(path).name if path is not None else "paper" if paper_order is not None else "default",
    )


def check_prompt_task(task: str) -> None:
    """Refuse (LrlError, exit 1) a task that cannot be prompted (one without a default prompt)."""
    if task not in PROMPT_TASKS:
        raise LrlError(
            f"prompting supports the classification tasks {', '.join(PROMPT_TASKS)}, not '{task}'",
            hint="use --task tc (topics) or --task sa (sentiment)",
        )


# ---------------------------------------------------------------------------------------------------
# Shots


def select_shots(
    pool: Sequence[Example], query: Example, k: int, *, seed: int, labels: Sequence[str]
) -> list[Example]:
    """``k`` examples of ``pool`` to show before ``query``: deterministic per (seed, query id), balanced
    over labels where possible, never the query (same id or same text). InputError if too few remain."""
    if k <= 0:
        return []
    rng = random.Random(f"lrltool-shots:{seed}:{query.id}")
    groups: dict[str, list[Example]] = {label: [] for label in labels}
    for example in pool:
        if example.id != query.id and example.text != query.text:
            groups.setdefault(example.label, []).append(example)
    available = sum(len(group) for group in groups.values())
    if available < k:
        raise InputError(
            f"--shots {k} needs {k} train examples other than the query, the train split has {available}",
            hint="lower --shots or give a larger train split",
        )
    order = [label for label in groups if groups[label]]
    rng.shuffle(order)
    for label in order:
        rng.shuffle(groups[label])
    shots: list[Example] = []
    while len(shots) < k:
        for label in order:
            if groups[label] and len(shots) < k:
                shots.append(groups[label].pop())
    rng.shuffle(shots)  # the last shot's label must not follow a fixed pattern
    return shots


# ---------------------------------------------------------------------------------------------------
# Tokens and scoring


def label_token_ids(tokenizer: Any, template: PromptTemplate) -> list[list[int]]:
    """Each label's continuation tokens, as the tokenizer splits them after the answer prefix.

    Refuses (InputError) two labels with the same tokens.
    """
    prefix = template.answer_prefix
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else []
    result = []
    for label in template.labels:
        continuation = template.continuation(label)
        ids: list[int] = []
        if prefix:
            joined = tokenizer(prefix + continuation, add_special_tokens=False)["input_ids"]
            if joined[: len(prefix_ids)] == prefix_ids:
                ids = joined[len(prefix_ids) :]
        if not ids:  # no prefix, or the continuation merged into it: tokenize it alone
            ids = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InputError(f"the verbalizer of label '{label}' has no tokens", hint="check the template")
        result.append(list(ids))
    seen: dict[tuple[int, ...], str] = {}
    for label, ids in zip(template.labels, result, strict=True):
        if tuple(ids) in seen:
            raise InputError(
                f"labels '{seen[tuple(ids)]}' and '{label}' have the same tokens",
                hint="give them different verbalizers (--template)",
            )
        seen[tuple(ids)] = label
    return result


def context_ids(
    tokenizer: Any, prompts: Sequence[str], *, max_length: int, reserve: int
) -> tuple[list[list[int]], int]:
    """BOS + tokens of each prompt, cut from the left to ``max_length - reserve`` tokens (BOS kept), and
    how many prompts were cut."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    budget = max_length - reserve - len(bos)
    if budget < 1:
        raise UsageError(
            f"--max-length {max_length} leaves no room for the prompt and a {reserve}-token answer",
            hint="raise --max-length",
        )
    # verbose=False: the too-long warning would be wrong, the prompts are cut right below.
    encoded = (
        tokenizer(list(prompts), add_special_tokens=False, verbose=False)["input_ids"] if prompts else []
    )
    truncated = sum(1 for ids in encoded if len(ids) > budget)
    return [bos + list(ids[-budget:]) for ids in encoded], truncated


def score_continuations(
    model: Any,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    pad_id: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Any:
    """Summed log-probability of each continuation after each context: float64 [contexts, continuations].

    One forward pass per batch of contexts scores every continuation: each row holds its context
    (left-padded) followed by all continuations' input tokens, and a 4-D attention mask lets each
    continuation see the context and its own earlier tokens only, with position ids that continue the
    context's. The context is computed once for all labels, and the result equals one unpadded forward
    pass per (context, continuation) to float tolerance. (Not a shared KV cache: adapters 1.3.0's LLaMA
    attention reads ``past_key_value`` while transformers 4.57 passes ``past_key_values``, so with
    ``adapters.init`` a cache is silently ignored.)
    """
    import numpy as np
    import torch

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    n_labels = len(continuations)
    first = torch.tensor([c[0] for c in continuations], device=device)
    # The block after the context: each continuation's tokens but its last (inputs predicting tokens 1..end).
    block_ids: list[int] = []
    block_group: list[int] = []  # which continuation a block position belongs to
    block_offset: list[int] = []  # its index within that continuation
    for j, cont in enumerate(continuations):
        for k, token in enumerate(cont[:-1]):
            block_ids.append(int(token))
            block_group.append(j)
            block_offset.append(k)
    block_targets = [int(continuations[j][k + 1]) for j, k in zip(block_group, block_offset, strict=True)]
    span = len(block_ids)
    group = torch.tensor(block_group, dtype=torch.long, device=device)
    offset = torch.tensor(block_offset, dtype=torch.long, device=device)
    targets = torch.tensor(block_targets, dtype=torch.long, device=device)
    # Within the block: same continuation, not a later token.
    block_allowed = (group[:, None] == group[None, :]) & (offset[None, :] <= offset[:, None])
    blocked = torch.finfo(dtype).min

    scores = np.zeros((len(contexts), n_labels), dtype=np.float64)
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))  # similar lengths share a batch
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            count = len(rows)
            width = max(len(contexts[i]) for i in rows)
            total = width + span
            lengths = torch.tensor([len(contexts[i]) for i in rows], dtype=torch.long, device=device)
            ids = torch.full((count, total), pad_id, dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, width - len(contexts[i]) : width] = torch.tensor(list(contexts[i]), dtype=torch.long)
            ids[:, width:] = torch.tensor(block_ids, dtype=torch.long)
            ids = ids.to(device)
            where = torch.arange(total, device=device)
            first_real = (width - lengths)[:, None]  # [rows, 1]
            key_real = where[None, :] >= first_real  # pads are the context's left part
            # allowed[r, q, k]: context queries see real context keys up to themselves; block queries see
            # the whole real context and their own continuation's earlier tokens; everyone sees itself
            # (so no row is fully masked).
            allowed = torch.zeros((count, total, total), dtype=torch.bool, device=device)
            context_causal = where[None, :width, None] >= where[None, None, :width]
            allowed[:, :width, :width] = context_causal & key_real[:, None, :width]
            allowed[:, width:, :width] = key_real[:, None, :width]
            allowed[:, width:, width:] = block_allowed
            allowed |= torch.eye(total, dtype=torch.bool, device=device)
            mask = torch.zeros((count, 1, total, total), dtype=dtype, device=device)
            mask.masked_fill_(~allowed[:, None], blocked)
            positions = torch.empty((count, total), dtype=torch.long, device=device)
            positions[:, :width] = (where[None, :width] - first_real).clamp(min=0)
            positions[:, width:] = lengths[:, None] + offset[None, :]
            # Logits only at the context's last position and the block: [rows, 1 + span, vocab].
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=span + 1)
            logprobs = torch.log_softmax(out.logits.float(), dim=-1)
            batch_scores = logprobs[:, 0, first]  # each continuation's first token, after the context
            if span:
                picked = logprobs[:, 1:].gather(-1, targets[None, :, None].expand(count, span, 1)).squeeze(-1)
                batch_scores = batch_scores.index_add(1, group, picked)
            scores[rows] = batch_scores.double().cpu().numpy()
            del out, logprobs
            if on_batch is not None:
                on_batch(count)
    return scores


def generate_answers(
    model: Any,
    contexts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS,
    batch_size: int = 8,
    pad_id: int = 0,
    eos_ids: Sequence[int] = (),
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """The tokens each context makes the model write: greedy, at most ``max_new_tokens``, up to (without)
    the first of ``eos_ids``.

    Contexts are sorted by length and left-padded into batches; ``generate`` derives position ids from the
    attention mask, so a padded row writes what it writes alone. No KV cache (``use_cache=False``, as the
    seed; adapters 1.3.0's LLaMA attention ignores one).
    """
    import torch
    from transformers import GenerationConfig

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if max_new_tokens < 1:
        raise UsageError("--max-new-tokens must be at least 1")
    device = next(model.parameters()).device
    config = GenerationConfig(
        bos_token_id=getattr(getattr(model, "generation_config", None), "bos_token_id", None),
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
        use_cache=False,
        pad_token_id=pad_id,
        eos_token_id=list(eos_ids) or None,
    )
    stops = set(eos_ids)
    answers: list[list[int]] = [[] for _ in contexts]
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(contexts[i]) for i in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, width - len(contexts[i]) :] = torch.tensor(list(contexts[i]), dtype=torch.long)
                mask[r, width - len(contexts[i]) :] = 1
            out = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config
            )
            for r, i in enumerate(rows):
                written = [int(t) for t in out[r, width:].tolist()]
                cut = next((k for k, t in enumerate(written) if t in stops), len(written))
                answers[i] = written[:cut]
            if on_batch is not None:
                on_batch(len(rows))
    return answers


#: Why a generated answer gave no label (the seed dropped all three alike, get_deepseek.py:57, :64-67).
UNPARSED = ("no_answer_prefix", "no_label", "several_labels")


def extract_answer(text: str, prefix: str = "Answer:", start: int = 0) -> str | None:
    """The seed's answer: what follows the first ``prefix`` (case-insensitive) at or after ``start``, after
    any whitespace, to the end of that line, stripped (get_deepseek.py:53-57); None if there is none."""
    match = re.compile(re.escape(prefix) + r"\s*(.*)", re.IGNORECASE).search(text, start)
    return match.group(1).strip() if match else None


def match_label(answer: str | None, verbalizers: dict[str, str]) -> tuple[str | None, str | None]:
    """(label, None) when exactly one verbalizer occurs in ``answer`` (substring, both lower-cased; tested in
    label order, get_deepseek.py:60-65), else (None, why: one of :data:`UNPARSED`)."""
    if answer is None:
        return None, "no_answer_prefix"
    lowered = answer.lower()
    found = [label for label, word in verbalizers.items() if word.lower() in lowered]
    if len(found) == 1:
        return found[0], None
    return None, "no_label" if not found else "several_labels"


# ---------------------------------------------------------------------------------------------------
# Classification and metrics


@dataclass
class PromptPredictions:
    """What prompting produced for a list of examples."""

    labels: list[str]  # the label set, in template order
    predictions: list[str | None]  # None: a generated answer that named no label or several
    scores: Any  # float64 [examples, labels]: the chosen score (sum or mean log-prob); None when generated
    shots: list[list[str]] = field(default_factory=list)  # ids of each example's shots
    truncated: int = 0
    label_tokens: list[int] = field(default_factory=list)  # tokens of each label's continuation
    answers: list[str] = field(default_factory=list)  # answer="generate": what the model wrote
    unparsed: list[str | None] = field(default_factory=list)  # ... and why it gave no label (UNPARSED)


def classify_by_prompt(
    model: Any,
    tokenizer: Any,
    template: PromptTemplate,
    examples: Sequence[Example],
    *,
    train: Sequence[Example] = (),
    shots: int = 0,
    seed: int = 1,
    score: str = "sum",
    batch_size: int = 8,
    max_length: int = 2048,
) -> PromptPredictions:
    """Predict each example's label: the label whose continuation scores highest (ties: the first label).

    ``shots`` examples of ``train`` are shown before each query (see :func:`select_shots`).
    """
    import numpy as np

    if score not in SCORES:
        raise UsageError(f"unknown --score '{score}'", hint=f"choose one of {', '.join(SCORES)}")
    if shots < 0:
        raise UsageError("--shots must be 0 or more")
    if shots > 0 and shots > len(train):
        raise InputError(
            f"--shots {shots} is more than the {len(train)} examples of the train split",
            hint="lower --shots",
        )
    label_ids = label_token_ids(tokenizer, template)
    chosen = [select_shots(train, ex, shots, seed=seed, labels=template.labels) for ex in examples]
    prompts = [template.render(ex.text, shot_list) for ex, shot_list in zip(examples, chosen, strict=True)]
    contexts, truncated = context_ids(
        tokenizer, prompts, max_length=max_length, reserve=max(len(ids) for ids in label_ids)
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with ui.progress("prompting", total=len(contexts), unit="examples") as bar:
        sums = score_continuations(
            model,
            contexts,
            label_ids,
            batch_size=batch_size,
            pad_id=pad_id,
            on_batch=lambda n: bar.update(advance=n),
        )
    lengths = np.array([len(ids) for ids in label_ids], dtype=np.float64)
    scores = sums if score == "sum" else sums / lengths[None, :]
    labels = template.labels
    predictions = [labels[int(i)] for i in scores.argmax(axis=1)] if len(examples) else []
    return PromptPredictions(
        labels=labels,
        predictions=predictions,
        scores=scores,
        shots=[[s.id for s in shot_list] for shot_list in chosen],
        truncated=truncated,
        label_tokens=[len(ids) for ids in label_ids],
    )


def classify_by_generation(
    model: Any,
    tokenizer: Any,
    template: PromptTemplate,
    examples: Sequence[Example],
    *,
    train: Sequence[Example] = (),
    shots: int = 0,
    seed: int = 1,
    batch_size: int = 8,
    max_length: int = 2048,
    max_new_tokens: int = PAPER_MAX_NEW_TOKENS,
) -> PromptPredictions:
    """Let the model answer each prompt (:func:`generate_answers`) and read the label from the answer as
    the seed did (:func:`extract_answer` from the query's start, then :func:`match_label`); an example
    whose answer gives no label gets prediction None and the reason in ``unparsed``."""
    chosen = [select_shots(train, ex, shots, seed=seed, labels=template.labels) for ex in examples]
    prompts = [template.render(ex.text, shot_list) for ex, shot_list in zip(examples, chosen, strict=True)]
    contexts, truncated = context_ids(tokenizer, prompts, max_length=max_length, reserve=max_new_tokens)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos_ids = {*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id} - {None}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
    with ui.progress("generating", total=len(contexts), unit="examples") as bar:
        written = generate_answers(
            model,
            contexts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            pad_id=pad_id,
            eos_ids=sorted(eos_ids),
            on_batch=lambda n: bar.update(advance=n),
        )
    prefix = template.answer_prefix.strip()
    result = PromptPredictions(
        labels=template.labels,
        predictions=[],
        scores=None,
        shots=[[s.id for s in shot_list] for shot_list in chosen],
        truncated=truncated,
    )
    for ex, context, answer_ids in zip(examples, contexts, written, strict=True):
        # The seed decodes prompt + answer together (get_deepseek.py:50); the search starts at the query.
        full = tokenizer.decode(list(context) + answer_ids, skip_special_tokens=True)
        shown = tokenizer.decode(list(context), skip_special_tokens=True)
        start = max(0, len(shown) - len(template.query.replace("{text}", ex.text)))
        label, why = match_label(extract_answer(full, prefix, start), template.verbalizers)
        result.predictions.append(label)
        result.unparsed.append(why)
        result.answers.append(tokenizer.decode(answer_ids, skip_special_tokens=True))
    return result


def generation_metrics(
    gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]
) -> tuple[dict[str, float], int]:
    """Macro-F1 over all ``labels`` and accuracy, on the examples with a prediction (the seed's
    ``f1_score(..., average='macro', labels=categories)`` on the parsed ones, 0.0 when there are none,
    get_deepseek.py:92-95); and how many were scored."""
    kept = [(g, p) for g, p in zip(gold, predicted, strict=True) if p is not None]
    if not kept:
        return {"macro_f1": 0.0, "accuracy": 0.0}, 0
    return classification_metrics([g for g, _ in kept], [p for _, p in kept], labels=labels), len(kept)


# ---------------------------------------------------------------------------------------------------
# The `eval --prompt` core


def evaluate_prompt(
    *,
    task: str,
    model: str,
    data: str | Path,
    split: str = "test",
    shots: int = 0,
    seed: int = 1,
    adapter: str | None = None,
    template: str | Path | None = None,
    score: str | None = None,
    answer: str | None = None,
    max_new_tokens: int | None = None,
    paper_compat: bool = False,
    predictions: str | None = None,
    batch_size: int = 8,
    device: str | None = None,
    dtype: str | None = None,
    max_length: int | None = None,
    revision: str | None = None,
    lang: str | None = None,
    method: str | None = None,
    source: str | None = None,
) -> list[MetricRecord]:
    """Classify ``data``'s ``split`` by prompting the causal LM ``model``; return metric records.

    ``answer``: "score" (label log-likelihoods, the default) or "generate" (the paper's: the model writes,
    the label is read from its answer, unparseable answers are dropped); ``paper_compat`` (tc only) puts
    the seed's prompt in place of the task's and makes "generate" the default answer.
    Reads DIR/<split>.jsonl(.zst) and, with ``shots`` > 0 (or ``paper_compat``, for the label order),
    DIR/train.jsonl(.zst); writes ``predictions`` (one record per example: id, label, prediction, scores or
    the generated answer, shots) atomically if given; the metric records are returned, not written.
    Returns a ``macro_f1`` and an ``accuracy`` record (method "prompt", or the adapter's ``method``;
    task_method "prompt-<K>shot"; with "generate", ``n`` is the number of parsed examples scored and
    details say how many were dropped). Refuses: a task other than tc/sa, an encoder model (ModelError), a
    missing split, ``shots`` larger than the train split or without one (InputError), labels outside the
    template, ``score`` with "generate" and ``max_new_tokens`` with "score" (UsageError).
    """
    check_prompt_task(task)
    answer = _check_answer_options(task, answer, score, max_new_tokens, paper_compat)
    score = score or "sum"
    max_new_tokens = max_new_tokens or PAPER_MAX_NEW_TOKENS
    if shots < 0:
        raise UsageError("--shots must be 0 or more")
    code = resolve_language(lang).code if lang is not None else None
    order = paper_label_order(task, data) if paper_compat else None
    prompt_template = load_template(task, template, paper_order=order)
    test_path, examples, train = _read_prompt_data(task, data, split, shots, prompt_template)
    lm = _load_lm(
        model, revision=revision, adapter=adapter, device=device, dtype=dtype, max_length=max_length
    )
    result = _classify(
        lm, prompt_template, examples, answer=answer, score=score, max_new_tokens=max_new_tokens,
        train=train, shots=shots, seed=seed, batch_size=batch_size,
    )  # fmt: skip
    if result.truncated:
        ui.warn(
            f"{result.truncated} of {len(examples)} prompts were longer than {lm.max_length} tokens"
            " and lost their start"
        )
    if predictions is not None:
        _write_predictions(predictions, examples, result)
    if lm.adapter_dir is None:
        method = method or "prompt"
    else:
        method, source = models.adaptation_of(
            lm.source.path, lm.adapter_dir, method=method, source=source, known=METHODS
        )
    common = dict(
        lang=code,
        model=model,
        task=task,
        method=method,
        adapter=None if adapter is None else str(adapter),
        source=source,
        task_method=f"prompt-{shots}shot",
        split=split,
        n=len(examples),
        seed=seed if shots > 0 else None,
    )
    settings = {
        "shots": shots,
        "seed": seed,
        "answer": answer,
        "score": score if answer == "score" else None,
        "max_new_tokens": max_new_tokens if answer == "generate" else None,
        "decoding": "greedy" if answer == "generate" else None,
        "paper_compat": paper_compat,
    }
    return _prompt_records(common, settings, prompt_template, lm, result, examples, test_path)


def _classify(
    lm: _LoadedLM,
    template: PromptTemplate,
    examples: Sequence[Example],
    *,
    answer: str,
    score: str,
    max_new_tokens: int,
    **common: Any,
) -> PromptPredictions:
    """:func:`classify_by_generation` or :func:`classify_by_prompt`, as ``answer`` says."""
    if answer == "generate":
        return classify_by_generation(
            lm.model, lm.tokenizer, template, examples, max_length=lm.max_length,
            max_new_tokens=max_new_tokens, **common,
        )  # fmt: skip
    return classify_by_prompt(
        lm.model, lm.tokenizer, template, examples, score=score, max_length=lm.max_length, **common
    )


def _check_answer_options(
    task: str, answer: str | None, score: str | None, max_new_tokens: int | None, paper_compat: bool
) -> str:
    """The answer mode (``paper_compat``: "generate" unless given); UsageError for options that do not fit."""
    if paper_compat and task not in PAPER_PROMPTS:
        raise UsageError(
            f"--paper-compat prompting reproduces the paper's tc script (src/tc/get_deepseek.py); it has none"
            f" for --task {task}",
            hint="drop --paper-compat, or use --task tc",
        )
    answer = answer or ("generate" if paper_compat else "score")
    if answer not in ANSWERS:
        raise UsageError(f"unknown --answer '{answer}'", hint=f"choose one of {', '.join(ANSWERS)}")
    if score is not None and score not in SCORES:
        raise UsageError(f"unknown --score '{score}'", hint=f"choose one of {', '.join(SCORES)}")
    if answer == "generate" and score is not None:
        raise UsageError("--score applies to --answer score", hint="drop --score, or use --answer score")
    if answer == "score" and max_new_tokens is not None:
        raise UsageError(
            "--max-new-tokens applies to --answer generate", hint="drop it, or add --answer generate"
        )
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UsageError("--max-new-tokens must be at least 1")
    return answer


def paper_label_order(task: str, data: str | Path) -> list[str]:
    """The seed's category order: as they first appear in the data folder's train split
    (``dataset["train"].unique("category")``, get_deepseek.py:14), any label it lacks after them; without a
    train split, :data:`PAPER_TC_ORDER` (what SIB-200's train splits give)."""
    labels = list(TASKS[task].labels)
    folder = data_folder(data, hint="give the folder that 'fetch sib200 -o DIR' wrote")
    train_path = find_split(folder, "train")
    if train_path is None:
        return list(PAPER_TC_ORDER)
    seen: list[str] = []
    for example in _read_examples(train_path, task, load_template(task)):
        if example.label not in seen:
            seen.append(example.label)
    return seen + [label for label in labels if label not in seen]


def _prompt_records(
    common: dict[str, Any],
    settings: dict[str, Any],
    template: PromptTemplate,
    lm: _LoadedLM,
    result: PromptPredictions,
    examples: Sequence[Example],
    test_path: Path,
) -> list[MetricRecord]:
    """The macro_f1 and accuracy records (``common``: the fields that say what was evaluated)."""
    settings = {
        **settings,
        "template": template.origin,
        "template_hash": template.digest,
        "max_length": lm.max_length,
        "model_revision": lm.source.revision,
    }
    details: dict[str, Any] = {
        "labels": result.labels,
        "verbalizers": template.verbalizers,
        "truncated": result.truncated,
        "data": str(test_path),
    }
    gold = [ex.label for ex in examples]
    if settings["answer"] == "generate":
        values, scored = generation_metrics(gold, result.predictions, result.labels)
        unparsed = {why: result.unparsed.count(why) for why in UNPARSED}
        details.update(
            examples=len(examples), scored=scored, dropped=len(examples) - scored, unparsed=unparsed
        )
        common = {**common, "n": scored}
        if scored == 0:
            ui.warn(
                f"none of the {len(examples)} answers named exactly one label: macro_f1 and accuracy are 0"
            )
    else:
        details["label_tokens"] = result.label_tokens
        values = classification_metrics(gold, [str(p) for p in result.predictions])
    return [
        MetricRecord(metric=name, value=value, details=details, settings=settings, **common)
        for name, value in values.items()
    ]


def _read_prompt_data(
    task: str, data: str | Path, split: str, shots: int, template: PromptTemplate
) -> tuple[Path, list[Example], list[Example]]:
    """The split file to classify, its examples, and the train examples the shots come from (none for 0)."""
    folder = data_folder(data, hint="give the folder that 'fetch sib200 -o DIR' (or sentiment) wrote")
    test_path = find_split(folder, split)
    if test_path is None:
        raise InputError(
            f"no {split} split in the data folder (expected {split}.jsonl.zst)",
            hint="give the folder that 'fetch ... -o DIR' wrote",
            path=str(data),
        )
    train: list[Example] = []
    if shots > 0:
        train_path = find_split(folder, "train")
        if train_path is None:
            raise InputError(
                f"--shots {shots} draws examples from the train split, and the data folder has none",
                hint="add train.jsonl.zst to the folder, or use --shots 0",
                path=str(data),
            )
        train = _read_examples(train_path, task, template)
        if shots > len(train):
            raise InputError(
                f"--shots {shots} is more than the {len(train)} examples of the train split",
                hint="lower --shots",
                path=str(train_path),
            )
    return test_path, _read_examples(test_path, task, template), train


def _read_examples(path: Path, task: str, template: PromptTemplate) -> list[Example]:
    """The records of one split, with the template's labels (its verbalizers' keys) as the label set."""
    labels = template.labels
    return read_task_data(
        path,
        TASKS[task],
        labels,
        labels_name=f"the task's labels ({', '.join(labels)})",
        unseen_hint="check --task, or give --template with verbalizers for these labels",
        refuse_empty_text=True,
    ).examples


@dataclass
class _LoadedLM:
    source: Any  # models.ModelSource
    tokenizer: Any
    model: Any
    adapter_dir: Path | None
    max_length: int  # the longest prompt + answer, in tokens


def _load_lm(
    model: str,
    *,
    revision: str | None,
    adapter: str | None,
    device: str | None,
    dtype: str | None,
    max_length: int | None,
) -> _LoadedLM:
    """The causal LM (ModelError for an encoder), its tokenizer and the adapter; the prompt length limit:
    ``max_length``, else the model's positions or the tokenizer's declared limit if lower."""
    model_source = models.resolve_model(model, revision=revision)
    if not model_source.is_decoder:
        raise ModelError(
            f"prompting needs a causal (decoder) language model; '{model}' is an encoder"
            f" ({model_source.model_type})",
            hint="give --prompt a LLaMA-style model, or evaluate encoders with finetune + eval",
        )
    tokenizer = models.load_tokenizer(model_source)
    torch_device, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    lm = models.load_model(model_source, head="lm", dtype=torch_dtype)
    adapter_dir = None
    if adapter is not None:
        adapter_dir = models.resolve_adapter(adapter)
        models.load_adapter(lm, adapter_dir)
    models.place(lm, device=torch_device, dtype=torch_dtype)  # after the adapter: it is made on CPU, fp32
    limit = max_length or model_source.max_positions
    declared = getattr(tokenizer, "model_max_length", None)
    if max_length is None and isinstance(declared, int) and 0 < declared < limit:
        limit = declared
    return _LoadedLM(model_source, tokenizer, lm, adapter_dir, limit)


def _write_predictions(path: str, examples: Sequence[Example], result: PromptPredictions) -> None:
    """One record per example: id, label, prediction, each label's score (or the generated answer and why
    it gave no label), the shots' ids (atomically)."""
    with write_records(path) as writer:
        for i, ex in enumerate(examples):
            record: dict[str, Any] = {"id": ex.id, "label": ex.label, "prediction": result.predictions[i]}
            if result.scores is not None:
                record["scores"] = {lab: float(result.scores[i, j]) for j, lab in enumerate(result.labels)}
            else:
                record["answer"] = result.answers[i]
                record["unparsed"] = result.unparsed[i]
            record["shots"] = result.shots[i]
            writer.write(record)
