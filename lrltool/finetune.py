"""Task training (``finetune``): topic classification, sentiment and NER on top of language adapters.

Reads DIR/{train,validation,test}.jsonl(.zst/.gz) as ``fetch sib200|sentiment|wikiann -o DIR`` writes them
(classification records ``{"id", "text", "label"}``, NER records ``{"id", "tokens", "tags"}``) and trains
one of these setups (DESIGN.md "Downstream", "Models and adapters"):

- ``adapter`` without a language adapter: a seq_bn task adapter + head (the paper's baseline);
- ``adapter`` with ``--lang-adapter``: MAD-X, ``Stack(lang, task)``; only the task adapter and head train;
  a ``full`` train-adapter run as the language adapter makes its model/ the base model instead;
- ``adapter`` with two language adapters and ``fusion``: ``Stack(Fuse(a, b), task)``; the fusion layer,
  the task adapter and the head train, both language adapters stay frozen;
- ``full``: every weight trains (full fine-tuning baseline).

Training is our own loop (AdamW, linear schedule with warmup, gradient clipping): the order of examples
and the dropout of each step are functions of (seed, step), so ``--resume`` from a checkpoint ends with the
same weights as an uninterrupted run. The validation score (macro-F1, or seqeval F1 for NER) picks the
best checkpoint, which is exported; ``patience`` stops early. Run folder layout: :mod:`lrltool.runs`,
plus ``fusion/`` (the fusion layer) for fusion runs. ``seeds`` trains one run per seed in OUTDIR/seed-N.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import os
import re
import shlex
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lrltool import models, runs, ui
from lrltool.errors import InputError, RunError, UsageError
from lrltool.runs import StopRequest, check_positive, library_versions, linear_lr_factor, seeded_rng
from lrltool.streams import Stats, read_records
from lrltool.train import TrainingInterrupted

SIB200_LABELS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
SENTIMENT_LABELS = ("0", "1")
WIKIANN_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

RUN_KIND = "finetune"
FUSION_DIR = "fusion"
SEED_DIR = re.compile(r"^seed-(\d+)$")
DEFAULT_EPOCHS = 10.0
DEFAULT_LR = {"adapter": 1e-4, "full": 2e-5}
TASK_METHODS = ("adapter", "full")
# Random streams: one per purpose, so the data order never depends on how much dropout came before.
_SHUFFLE, _DROPOUT = 1, 2


# ---------------------------------------------------------------------------------------------------
# Tasks (one registry)


@dataclass(frozen=True)
class TaskSpec:
    """A downstream task: its records, label set (fixed order), validation metric and paper settings."""

    name: str
    description: str
    kind: str  # "classification" ({"text", "label"}) or "tagging" ({"tokens", "tags"})
    labels: tuple[str, ...]
    metric: str  # the validation score that picks the best checkpoint
    paper_epochs: int
    paper_max_length: int

    @property
    def head(self) -> str:
        return "sequence-classification" if self.kind == "classification" else "token-classification"


TASKS: dict[str, TaskSpec] = {
    "tc": TaskSpec(
        "tc", "topic classification (SIB-200)", "classification", SIB200_LABELS, "macro_f1", 20, 256
    ),
    "sa": TaskSpec(
        "sa", "binary sentiment analysis", "classification", SENTIMENT_LABELS, "macro_f1", 25, 512
    ),
    "ner": TaskSpec("ner", "named entities (WikiANN)", "tagging", WIKIANN_TAGS, "f1", 100, 512),
}


def task_spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UsageError(f"unknown task '{name}'", hint=f"choose one of {', '.join(TASKS)}") from None


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass
class FinetuneSettings:
    """Every setting that shapes the trained weights (recorded in training.json, compared on --resume)."""

    method: str = "adapter"  # how the task is learned: adapter | full
    epochs: float = DEFAULT_EPOCHS
    max_steps: int | None = None  # None: epochs over the training set
    lr: float = DEFAULT_LR["adapter"]
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    max_length: int = 256
    eval_steps: int | None = None  # None: evaluate at the end of every epoch
    patience: int | None = None  # evaluations without improvement before stopping; None: never
    reduction_factor: int = 16
    label_all_subwords: bool = False
    seed: int = 42
    preset: str | None = None


PRESETS = ("paper",)


def make_settings(task: str, preset: str | None = None, **explicit: Any) -> FinetuneSettings:
    """Defaults, then the preset's values, then every explicitly given (non-None) value.

    Defaults: lr 1e-4 (2e-5 for method full), batch 32, weight decay 0.01, warmup ratio 0.05, 10 epochs,
    the task's paper max length. ``paper`` (DESIGN.md "Downstream"): lr 1e-4, batch 32, weight decay
    0.01, warmup 0.05, epochs TC 20 / SA 25 / NER 100, max length 256 (TC) or 512, evaluation every epoch.
    """
    spec = task_spec(task)
    known = {f.name for f in fields(FinetuneSettings)}
    given = {k: v for k, v in explicit.items() if v is not None}
    for key in given:
        if key not in known:
            raise TypeError(f"unknown finetune setting {key!r}")
    method = given.get("method", "adapter")
    if method not in TASK_METHODS:
        raise UsageError(f"unknown method '{method}'", hint=f"choose one of {', '.join(TASK_METHODS)}")
    values: dict[str, Any] = {"lr": DEFAULT_LR[method], "max_length": spec.paper_max_length}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset '{preset}'", hint=f"choose one of {', '.join(PRESETS)}")
        values.update(
            lr=1e-4,
            batch_size=32,
            weight_decay=0.01,
            warmup_ratio=0.05,
            epochs=float(spec.paper_epochs),
            max_length=spec.paper_max_length,
            eval_steps=None,
        )
    values.update(given)
    values["preset"] = preset
    settings = FinetuneSettings(**values)
    _check_settings(settings)
    return settings


def _check_settings(s: FinetuneSettings) -> None:
    check_positive(
        s, "epochs", "max_steps", "lr", "batch_size", "max_length", "eval_steps", "reduction_factor"
    )
    if s.patience is not None and s.patience < 1:
        raise UsageError(f"--patience must be at least 1, not {s.patience}")
    if not 0 <= s.warmup_ratio < 1:
        raise UsageError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")
    if s.weight_decay < 0:
        raise UsageError(f"--weight-decay must not be negative, not {s.weight_decay}")


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> [1, 2, 3] (distinct non-negative integers)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"--seeds '{text}' is not a comma-separated list of integers", hint="e.g. --seeds 1,2,3"
        ) from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(
            f"--seeds '{text}' must list distinct non-negative integers", hint="e.g. --seeds 1,2,3"
        )
    return seeds


# ---------------------------------------------------------------------------------------------------
# Data


SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "dev"), "test": ("test",)}
DATA_SUFFIXES = (".jsonl.zst", ".jsonl", ".jsonl.gz", ".zst", ".gz")


def find_split(data_dir: str | Path, split: str) -> Path | None:
    """DIR/<split>.jsonl(.zst/.gz) (``dev`` also names the validation split), or None."""
    folder = Path(data_dir)
    for name in SPLIT_NAMES[split]:
        for suffix in DATA_SUFFIXES:
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def split_name(path: str | Path) -> str:
    """The split a data file holds, from its name: test.jsonl.zst -> test, dev.jsonl -> validation."""
    name = Path(path).name.split(".")[0]
    return "validation" if name == "dev" else name


@dataclass
class Example:
    id: str
    text: str | None  # classification
    tokens: list[str] | None  # tagging
    gold: Any  # label id (classification) or list of tag ids (tagging)


@dataclass
class TaskData:
    path: str
    examples: list[Example]
    hash: str
    langs: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.examples)


def _label_id(value: Any, labels: Sequence[str], index: dict[str, int]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
        if text in index:  # sentiment labels 0/1 written as numbers
            return index[text]
        return value if 0 <= value < len(labels) and labels is WIKIANN_TAGS else None
    if isinstance(value, str):
        return index.get(value)
    return None


def read_task_data(
    path: str | Path,
    spec: TaskSpec,
    labels: Sequence[str],
    *,
    unseen_hint: str | None = None,
    skip_bad_lines: bool = False,
    stats: Stats | None = None,
) -> TaskData:
    """The examples of one split, with labels as ids into ``labels``; refuses (InputError, at file:line)
    records without the task's keys, labels outside ``labels``, and an empty file.

    ``unseen_hint``: the hint for a label outside ``labels`` (eval: "the run never saw it").
    """
    import orjson

    index = {label: i for i, label in enumerate(labels)}
    reader = read_records(path, skip_bad_lines=skip_bad_lines, stats=stats)
    examples: list[Example] = []
    langs: Counter[str] = Counter()
    digest = hashlib.sha256()
    label_key = "label" if spec.kind == "classification" else "tags"
    hint = unseen_hint or f"{spec.name} labels are {', '.join(labels)}"
    for record in reader:
        try:
            example = _example(record, spec, labels, index, reader.line, hint)
        except InputError as exc:
            reader.reject(exc)
            continue
        examples.append(example)
        payload = [example.id, example.text if example.tokens is None else example.tokens, record[label_key]]
        digest.update(orjson.dumps(payload) + b"\n")
        lang = record.get("lang")
        if isinstance(lang, str) and lang:
            langs[lang] += 1
    if not examples:
        raise InputError(
            f"no {spec.name} examples in the file",
            hint="check the path; fetch writes train/validation/test files with records",
            path=str(path),
        )
    return TaskData(path=str(path), examples=examples, hash=digest.hexdigest(), langs=langs)


def _example(
    record: dict[str, Any], spec: TaskSpec, labels: Sequence[str], index: dict[str, int], line: int, hint: str
) -> Example:
    record_id = record.get("id", line)
    record_id = str(record_id) if record_id is not None else str(line)
    if spec.kind == "classification":
        text = record.get("text")
        if not isinstance(text, str):
            raise InputError(
                "classification record has no string 'text'" if text is None else "'text' is not a string",
                hint='expected {"id", "text", "label"}',
            )
        if "label" not in record:
            raise InputError("classification record has no 'label'", hint='expected {"id", "text", "label"}')
        label = _label_id(record["label"], labels, index)
        if label is None:
            raise InputError(f"label {record['label']!r} is not one of the {spec.name} labels", hint=hint)
        return Example(id=record_id, text=text, tokens=None, gold=label)
    tokens, tags = record.get("tokens"), record.get("tags")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise InputError(
            "NER record has no list of strings 'tokens'", hint='expected {"id", "tokens", "tags"}'
        )
    if not isinstance(tags, list):
        raise InputError("NER record has no list 'tags'", hint='expected {"id", "tokens", "tags"}')
    if len(tags) != len(tokens):
        raise InputError(
            f"NER record has {len(tokens)} tokens but {len(tags)} tags", hint="give one tag per token"
        )
    ids = []
    for tag in tags:
        tag_id = _label_id(tag, labels, index)
        if tag_id is None:
            raise InputError(f"tag {tag!r} is not one of the {spec.name} tags", hint=hint)
        ids.append(tag_id)
    return Example(id=record_id, text=None, tokens=list(tokens), gold=ids)


# ---------------------------------------------------------------------------------------------------
# Tokenization and alignment


@dataclass
class Encoded:
    """One tokenized example. Tagging: ``labels`` per token (-100 where no loss), ``word_of`` each
    token's word (-1 for special tokens), ``first`` each word's first token (-1 if truncated away)."""

    input_ids: Any  # np.int64 [tokens]
    labels: Any  # int (classification) or np.int64 [tokens]
    word_of: Any = None
    first: Any = None


def align_words(
    tokenizer: Any, words_list: Sequence[Sequence[str]], max_length: int
) -> list[tuple[Any, Any]]:
    """Tokenize word lists; return (input ids, word index of each token or -1) per list.

    The words are joined with single spaces and tokenized as text; each token belongs to the word its
    character offsets start in (a token of the space before a word belongs to that word). For BERT and
    XLM-R this gives exactly ``is_split_into_words=True``; for byte-level BPE decoders it keeps the
    spaces the model saw in pre-training (``is_split_into_words`` would drop them).
    """
    import numpy as np

    texts, all_starts, all_ends = [], [], []
    for words in words_list:
        starts, ends, pos = [], [], 0
        for word in words:
            starts.append(pos)
            ends.append(pos + len(word))
            pos += len(word) + 1
        texts.append(" ".join(words))
        all_starts.append(starts)
        all_ends.append(ends)
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    out = []
    special = set(tokenizer.all_special_ids)
    for i, ids in enumerate(encoded["input_ids"]):
        starts, ends = all_starts[i], all_ends[i]
        word_of = np.full(len(ids), -1, dtype=np.int64)
        for j, (a, b) in enumerate(encoded["offset_mapping"][i]):
            if a == b or (ids[j] in special and a == 0 and b == 0):
                continue
            w = bisect.bisect_right(starts, a) - 1
            if w < 0:
                w = 0
            elif a >= ends[w] and w + 1 < len(starts):
                w += 1  # the space in front of the next word
            word_of[j] = w
        out.append((np.asarray(ids, dtype=np.int64), word_of))
    return out


def encode_examples(
    examples: Sequence[Example],
    tokenizer: Any,
    spec: TaskSpec,
    *,
    max_length: int,
    label_all_subwords: bool = False,
    chunk: int = 1000,
) -> list[Encoded]:
    """Tokenize examples (truncated to ``max_length`` tokens, special tokens included).

    Tagging: the first sub-token of each word carries the word's tag, the other sub-tokens and the
    special tokens -100 (no loss); ``label_all_subwords`` gives every sub-token its word's tag, as the
    seed's script (transformers' run_ner ``label_all_tokens``) did.
    """
    import numpy as np

    out: list[Encoded] = []
    for begin in range(0, len(examples), chunk):
        part = examples[begin : begin + chunk]
        if spec.kind == "classification":
            encoded = tokenizer([e.text for e in part], truncation=True, max_length=max_length)
            for e, ids in zip(part, encoded["input_ids"], strict=True):
                out.append(Encoded(input_ids=np.asarray(ids, dtype=np.int64), labels=int(e.gold)))
            continue
        for e, (ids, word_of) in zip(
            part, align_words(tokenizer, [e.tokens for e in part], max_length), strict=True
        ):
            gold = np.asarray(e.gold, dtype=np.int64)
            first = np.full(len(gold), -1, dtype=np.int64)
            labels = np.full(len(ids), -100, dtype=np.int64)
            for j, w in enumerate(word_of):
                if w < 0:
                    continue
                if first[w] < 0:
                    first[w] = j
                    labels[j] = gold[w]
                elif label_all_subwords:
                    labels[j] = gold[w]
            out.append(Encoded(input_ids=ids, labels=labels, word_of=word_of, first=first))
    return out


def collate(encoded: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (-100 padding for tagging)."""
    import numpy as np
    import torch

    width = max(len(e.input_ids) for e in encoded)
    input_ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(encoded), width), dtype=np.int64)
    tagging = not isinstance(encoded[0].labels, int)
    labels = (
        np.full((len(encoded), width), -100, dtype=np.int64) if tagging else np.zeros(len(encoded), np.int64)
    )
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        input_ids[row, :n] = e.input_ids
        attention[row, :n] = 1
        if tagging:
            labels[row, :n] = e.labels
        else:
            labels[row] = e.labels
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention),
        "labels": torch.from_numpy(labels),
    }


# ---------------------------------------------------------------------------------------------------
# Model setups


@dataclass
class TaskModel:
    """A task model ready to train or predict, and what it is made of."""

    model: Any
    tokenizer: Any
    source: Any  # models.ModelSource of the base model actually loaded
    head_names: list[str]
    task_adapter: str | None  # None for full fine-tuning
    lang_names: list[str]
    fusion: bool
    trainable: set[str]

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else 0


def lang_adapter_names(infos: Sequence[dict[str, Any]]) -> list[str]:
    """Module names of the language adapters: "lang"; for fusion "lang_<source>" (or lang_1, lang_2)."""
    if len(infos) == 1:
        return ["lang"]
    sources = [re.sub(r"[^A-Za-z0-9_]", "_", str(info.get("source") or "")) for info in infos]
    if all(sources) and len(set(sources)) == len(sources):
        return [f"lang_{s}" for s in sources]
    return [f"lang_{i}" for i in range(1, len(infos) + 1)]


_SOURCE_ORDER = ("glotcc", "conceptnet")


def combined_source(infos: Sequence[dict[str, Any]]) -> str | None:
    """The adaptation data of the language adapter(s): "glotcc", or "glotcc+conceptnet" for fusion."""
    found = [str(i["source"]) for i in infos if i.get("source")]
    if not found:
        return None
    order = {name: k for k, name in enumerate(_SOURCE_ORDER)}
    return "+".join(sorted(set(found), key=lambda s: (order.get(s, len(order)), s)))


def _activate(model: Any, task_adapter: str | None, lang_names: Sequence[str], fusion: bool) -> None:
    from adapters import Fuse, Stack

    if task_adapter is None:
        return
    if fusion:
        model.active_adapters = Stack(Fuse(*lang_names), task_adapter)
    elif lang_names:
        model.active_adapters = Stack(lang_names[0], task_adapter)
    else:
        model.set_active_adapters(task_adapter)


def build_task_model(
    spec: TaskSpec,
    labels: Sequence[str],
    *,
    base: Any,
    lang_infos: Sequence[dict[str, Any]],
    method: str,
    fusion: bool,
    reduction_factor: int,
    seed: int,
    device: Any,
) -> TaskModel:
    """Load the base model with the task head, the language adapter(s), and add what trains.

    ``base``: the ModelSource to load (for a ``full`` language "adapter", its model/ folder). MAD-X as
    DESIGN.md says: ``train_adapter(task)`` first, then ``Stack(lang, task)`` (train_adapter resets the
    active set); fusion: ``add_adapter_fusion`` + ``train_adapter_fusion``, then the task adapter and the
    head are unfrozen and ``Stack(Fuse(a, b), task)`` is active. The trainable set is then pinned
    explicitly (task adapter + fusion layer + head; everything for ``full``).
    """
    import torch

    torch.manual_seed(seed)  # the head's (and the task adapter's) initialisation
    with models.adapters_warnings_off():
        return _build_task_model(spec, labels, base, lang_infos, method, fusion, reduction_factor, device)


def _build_task_model(
    spec: TaskSpec,
    labels: Sequence[str],
    base: Any,
    lang_infos: Sequence[dict[str, Any]],
    method: str,
    fusion: bool,
    reduction_factor: int,
    device: Any,
) -> TaskModel:
    from adapters import Fuse

    model, head_names = models.load_task_model(base, head=spec.head, labels=labels, device=device)
    adapters_ = [info for info in lang_infos if info["kind"] == "adapter"]
    lang_names = lang_adapter_names(adapters_) if adapters_ else []
    for info, name in zip(adapters_, lang_names, strict=True):
        models.load_adapter(model, info["folder"], name=name, set_active=False)
    task_adapter = None
    if method == "full":
        trainable = {name for name, _ in model.named_parameters()}
    else:
        task_adapter = spec.name
        models.add_task_adapter(model, task_adapter, reduction_factor=reduction_factor)
        if fusion:
            model.add_adapter_fusion(Fuse(*lang_names))
            model.train_adapter_fusion(Fuse(*lang_names))
        else:
            model.train_adapter(task_adapter)
        trainable = models.adapter_parameter_names(model, task_adapter) | set(head_names)
        if fusion:
            trainable |= models.fusion_parameter_names(model)
        _activate(model, task_adapter, lang_names, fusion)
    models.set_trainable(model, trainable)
    model.to(device)
    model.eval()
    tokenizer = models.load_tokenizer(base)
    return TaskModel(
        model=model,
        tokenizer=tokenizer,
        source=base,
        head_names=head_names,
        task_adapter=task_adapter,
        lang_names=lang_names,
        fusion=fusion,
        trainable=trainable,
    )


def export_task_model(task: TaskModel, run: runs.RunDir) -> Path:
    """Write what was trained: run/adapter (task adapter + head) [+ run/fusion], or run/model (full)."""
    if task.task_adapter is None:
        out = run.output(True)
        _save_full_task_model(task, out)
        return out
    out = run.output(False)
    if task.fusion:
        models.save_fusion(task.model, task.lang_names, run.path / FUSION_DIR)
    models.save_task_adapter(task.model, task.task_adapter, out, head_names=task.head_names)
    return out


def _save_full_task_model(task: TaskModel, out: Path) -> None:
    """A fully fine-tuned model as a plain HF folder (safetensors, its head and labels), atomically."""
    import json
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        task.model.save_pretrained(str(tmp), safe_serialization=True)
        task.tokenizer.save_pretrained(str(tmp))
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config.pop("adapters", None)  # nothing of the adapters library in a plain model
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        from lrltool.streams import replace_dir

        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_finetuned(info: dict[str, Any], run_path: Path, *, device: Any) -> TaskModel:
    """Rebuild the model of a finished finetune run for prediction (eval).

    Refuses (RunError) a language adapter whose weights changed since training (sha256 recorded) and a
    run without its exported weights; model/adapter incompatibilities are ModelErrors from models.py.
    """
    spec = task_spec(info["task"])
    labels = list(info["labels"])
    method = info["task_method"]
    lang_infos = info.get("lang_adapters") or []
    for lang in lang_infos:
        folder = Path(lang["folder"])
        current = models.weights_sha256(folder) if folder.exists() else None
        if current != lang["weights_sha256"]:
            raise RunError(
                f"the language adapter {lang['path']} "
                + ("is gone" if current is None else "has changed since this run was trained"),
                hint="evaluate with the adapter the run was trained on (training.json lang_adapters)",
                path=str(run_path),
            )
    if method == "full":
        folder = run_path / "model"
        if not (folder / "config.json").is_file():
            raise RunError("the run has no model/ folder", hint="train it again", path=str(run_path))
        source = models.resolve_model(str(folder))
        saved = source.config.get("id2label") or {}
        if [saved.get(str(i)) for i in range(len(saved))] != labels:
            raise RunError("the run's model has other labels than its training.json", path=str(folder))
        model, _ = models.load_task_model(source, head=spec.head, labels=labels, device=device)
        stored = models.checkpoint_parameter_names(source)
        missing = [name for name, _ in model.named_parameters() if name not in stored]
        if missing:
            raise RunError(f"the run's model lacks trained weights (e.g. {missing[0]})", path=str(folder))
        model.to(device)
        return TaskModel(model, models.load_tokenizer(source), source, [], None, [], False, set())
    base = _base_source(info)
    with models.adapters_warnings_off():
        return _load_trained_adapters(info, run_path, spec, labels, base, lang_infos, device)


def _load_trained_adapters(
    info: dict[str, Any],
    run_path: Path,
    spec: TaskSpec,
    labels: list[str],
    base: Any,
    lang_infos: list[dict[str, Any]],
    device: Any,
) -> TaskModel:
    task = build_task_model(
        spec,
        labels,
        base=base,
        lang_infos=lang_infos,
        method="adapter",
        fusion=bool(info.get("fusion")),
        reduction_factor=int(info["settings"]["reduction_factor"]),
        seed=0,
        device=device,
    )
    model = task.model
    model.delete_adapter(spec.name)  # replaced by the trained one
    if task.fusion:
        model.delete_adapter_fusion(",".join(task.lang_names))
        models.load_fusion(model, run_path / FUSION_DIR, task.lang_names)
    adapter_dir = run_path / "adapter"
    if not adapter_dir.is_dir():
        raise RunError("the run has no adapter/ folder", hint="train it again", path=str(run_path))
    models.load_task_adapter(model, adapter_dir, name=spec.name, head_names=task.head_names)
    _activate(model, spec.name, task.lang_names, task.fusion)
    model.to(device)
    model.eval()
    return task


def _base_source(info: dict[str, Any]) -> Any:
    full_lang = [lang for lang in info.get("lang_adapters") or [] if lang["kind"] == "full"]
    if full_lang:
        return models.resolve_model(full_lang[0]["folder"])
    return models.resolve_model(info["model"], revision=info.get("model_revision"))


# ---------------------------------------------------------------------------------------------------
# Devices, versions, interruption


def pick_device(requested: str) -> Any:
    """The torch device for ``--device`` (auto: CUDA, then MPS, then CPU), as train-adapter picks it."""
    from lrltool.train import Distributed
    from lrltool.train import pick_device as pick

    return pick(requested, Distributed())


# ---------------------------------------------------------------------------------------------------
# Inputs of a finetune command (read and checked before anything is written)


@dataclass
class Prepared:
    spec: TaskSpec
    labels: list[str]
    data_dir: Path
    train: TaskData
    validation: TaskData | None
    test_path: Path | None
    model_name: str
    model_revision: str | None
    base: Any  # models.ModelSource
    lang_infos: list[dict[str, Any]]
    lang: str | None
    fusion: bool
    notes: list[str] = field(default_factory=list)  # warnings, shown once the model has loaded


_FUSABLE = ("seq_bn", "seq_bn_inv")  # adapters' Fuse combines bottleneck adapters of one configuration


def prepare(
    *,
    task: str,
    model: str | None,
    data: str | Path,
    lang_adapters: Sequence[str] = (),
    fusion: bool = False,
    method: str = "adapter",
    lang: str | None = None,
    revision: str | None = None,
    skip_bad_lines: bool = False,
) -> Prepared:
    """Check the options, read the data and describe the language adapters; write nothing."""
    spec = task_spec(task)
    if fusion and len(lang_adapters) != 2:
        raise UsageError(
            f"--fusion needs exactly two --lang-adapter (got {len(lang_adapters)})",
            hint="give a ConceptNet and a GlotCC adapter: --lang-adapter A --lang-adapter B --fusion",
        )
    if len(lang_adapters) > 1 and not fusion:
        raise UsageError("several --lang-adapter need --fusion", hint="add --fusion, or give one adapter")
    lang_infos = [models.adapter_info(path) for path in lang_adapters]
    full_runs = [info for info in lang_infos if info["kind"] == "full"]
    if full_runs and fusion:
        raise UsageError(
            f"{full_runs[0]['path']} is a full continued-pre-training run, which cannot be fused",
            hint="fuse two adapter runs (seq_bn or seq_bn_inv)",
        )
    not_bottleneck = [info for info in lang_infos if fusion and info["method"] not in _FUSABLE]
    if not_bottleneck:
        raise UsageError(
            f"{not_bottleneck[0]['path']} is a {not_bottleneck[0]['method']} adapter; AdapterFusion fuses"
            " bottleneck adapters",
            hint=f"fuse two adapters trained with --method {' or '.join(_FUSABLE)}",
        )
    if method == "full" and len(lang_infos) > len(full_runs):
        raise UsageError(
            "--method full trains every weight; it cannot sit on a language adapter",
            hint="use --method adapter with --lang-adapter, or give a full train-adapter run",
        )
    if fusion and method == "full":
        raise UsageError("--fusion trains a task adapter", hint="drop --method full")
    if model is None:
        known = {info["model"] for info in lang_infos if info.get("model")}
        if len(known) != 1:
            raise UsageError("--model is required", hint="name the base model the task is trained on")
        model = known.pop()
        revision = revision or next(i.get("model_revision") for i in lang_infos if i.get("model"))
    notes = [
        f"{info['path']} was trained on {info['model']}, not {model}"
        for info in lang_infos
        if info.get("model") and info["model"] != model
    ]
    data_dir = Path(data)
    if not data_dir.is_dir():
        raise InputError(
            "--data is not a folder",
            hint=f"give the folder `lrltool fetch {_fetch_source(spec)} -o DIR` wrote",
            path=str(data_dir),
        )
    train_path = find_split(data_dir, "train")
    if train_path is None:
        raise InputError(
            "no train.jsonl(.zst) in the data folder",
            hint=f"give the folder `lrltool fetch {_fetch_source(spec)} -o DIR` wrote",
            path=str(data_dir),
        )
    labels = list(spec.labels)
    train = read_task_data(train_path, spec, labels, skip_bad_lines=skip_bad_lines)
    validation_path = find_split(data_dir, "validation")
    validation = (
        read_task_data(validation_path, spec, labels, skip_bad_lines=skip_bad_lines)
        if validation_path is not None
        else None
    )
    if validation is None:
        notes.append(f"no validation split in {data_dir}: the last step's weights are exported")
    # the model last: a hub download should not come before a mistake in the data is found
    base = (
        models.resolve_model(full_runs[0]["folder"])
        if full_runs
        else models.resolve_model(model, revision=revision)
    )
    if not full_runs:
        revision = base.revision
    if lang is None:
        adapter_langs = {info["lang"] for info in lang_infos if info.get("lang")}
        if len(adapter_langs) == 1:
            lang = adapter_langs.pop()
        elif len(train.langs) == 1:
            lang = next(iter(train.langs))
    else:
        from lrltool.languages import resolve_language

        lang = resolve_language(lang).flores  # the code metric records use (ron_Latn)
    return Prepared(
        spec=spec,
        labels=labels,
        data_dir=data_dir,
        train=train,
        validation=validation,
        test_path=find_split(data_dir, "test"),
        model_name=model,
        model_revision=revision,
        base=base,
        lang_infos=lang_infos,
        lang=lang,
        fusion=fusion,
        notes=notes,
    )


def _fetch_source(spec: TaskSpec) -> str:
    return {"tc": "sib200", "sa": "sentiment", "ner": "wikiann"}[spec.name]


# ---------------------------------------------------------------------------------------------------
# Training one run


def _run_info(prep: Prepared, settings: FinetuneSettings, command: str | None, device: Any) -> dict[str, Any]:
    spec = prep.spec
    lang_method = "base"
    if prep.fusion:
        lang_method = "fusion"
    elif prep.lang_infos:
        lang_method = prep.lang_infos[0]["method"]
    return {
        "kind": RUN_KIND,
        "command": command,
        "task": spec.name,
        "task_description": spec.description,
        "labels": prep.labels,
        "metric": spec.metric,
        "task_method": settings.method,
        "method": settings.method,
        "lang_method": lang_method,
        "lang_source": combined_source(prep.lang_infos),
        "lang_adapter": "+".join(info["path"] for info in prep.lang_infos) or None,
        "lang_adapters": prep.lang_infos,
        "fusion": prep.fusion,
        "lang": prep.lang,
        "model": prep.model_name,
        "model_revision": prep.model_revision,
        "model_type": prep.base.model_type,
        "base_model_path": str(prep.base.path),
        "seed": settings.seed,
        "settings": asdict(settings),
        "versions": library_versions(),
        "data": {
            "dir": str(prep.data_dir.resolve()),
            "train": str(Path(prep.train.path).resolve()),
            "train_hash": prep.train.hash,
            "train_records": len(prep.train),
            "validation": str(Path(prep.validation.path).resolve()) if prep.validation else None,
            "validation_hash": prep.validation.hash if prep.validation else None,
            "validation_records": len(prep.validation) if prep.validation else 0,
            "test": str(prep.test_path.resolve()) if prep.test_path else None,
            "hash": hashlib.sha256(
                (prep.train.hash + (prep.validation.hash if prep.validation else "")).encode()
            ).hexdigest(),
        },
        "device": str(device),
        "finished": False,
    }


_RESUME_KEYS = ("task", "labels", "task_method", "model", "model_revision", "fusion", "seed", "settings")


def _check_resume(previous: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    if previous.get("kind") != RUN_KIND:
        raise RunError(
            "the folder holds a run that is not a finetune run", hint="choose another -o", path=str(path)
        )
    for key in _RESUME_KEYS:
        if previous.get(key) != current.get(key):
            raise RunError(
                f"--resume with a different {key} than the interrupted run",
                hint="repeat the original command with --resume, or use --force to start again",
                path=str(path),
            )
    old, new = previous.get("data") or {}, current["data"]
    if (old.get("train_hash"), old.get("validation_hash")) != (new["train_hash"], new["validation_hash"]):
        raise RunError(
            "--resume with other data than the interrupted run",
            hint="use the original --data, or --force to start again",
            path=str(path),
        )
    old_langs = [i.get("weights_sha256") for i in previous.get("lang_adapters") or []]
    if old_langs != [i["weights_sha256"] for i in current["lang_adapters"]]:
        raise RunError("--resume with other language adapters than the interrupted run", path=str(path))


def _weights_of(model: Any, names: set[str]) -> dict[str, Any]:
    return {n: p.detach() for n, p in model.named_parameters() if n in names}


def _load_weights(model: Any, weights: dict[str, Any], names: set[str]) -> None:
    import torch

    missing = sorted(names - set(weights))
    if missing:
        raise RunError(
            f"the checkpoint lacks {len(missing)} trained weights (e.g. {missing[0]})",
            hint="it belongs to another run; use --force to start again",
        )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param.copy_(weights[name].to(param.device, param.dtype))


def _optimizer(model: Any, settings: FinetuneSettings) -> Any:
    import torch

    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            # biases and normalisation weights are not decayed (as transformers' Trainer does)
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.lr)


@dataclass
class FinetuneResult:
    info: dict[str, Any]  # what training.json holds
    task: TaskModel  # the model with the exported (best) weights
    output: Path


def train_run(
    prep: Prepared,
    settings: FinetuneSettings,
    *,
    out: str | Path,
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    command: str | None = None,
    run: runs.RunDir | None = None,
    previous: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Train one task model into ``out``; return its training.json, the trained model and output folder.

    Reads the prepared data; writes the run folder (adapter/ or model/, fusion/, checkpoints/,
    training.json, README.md, log.jsonl). Refuses what :func:`lrltool.runs.check_run_dir` refuses, and a
    ``resume`` whose settings, data or language adapters differ from the interrupted run's.
    """
    import torch

    from lrltool import taskeval

    if run is None:
        run, previous = runs.check_run_dir(out, resume=resume, force=force)
    spec = prep.spec
    torch_device = pick_device(device)
    started = time.perf_counter()
    task = build_task_model(
        spec,
        prep.labels,
        base=prep.base,
        lang_infos=prep.lang_infos,
        method=settings.method,
        fusion=prep.fusion,
        reduction_factor=settings.reduction_factor,
        seed=settings.seed,
        device=torch_device,
    )
    net = task.model
    for note in prep.notes:
        ui.warn(note)
    max_positions = task.source.max_positions
    max_length = min(settings.max_length, max_positions)
    if max_length < settings.max_length:
        ui.info(f"finetune: max length {settings.max_length} capped at the model's {max_positions} positions")
    encode = dict(max_length=max_length, label_all_subwords=settings.label_all_subwords)
    train_encoded = encode_examples(prep.train.examples, task.tokenizer, spec, **encode)
    val_encoded = (
        encode_examples(prep.validation.examples, task.tokenizer, spec, **encode) if prep.validation else None
    )
    if spec.kind == "tagging" and not any((e.labels != -100).any() for e in train_encoded):
        raise InputError("no training tokens carry a tag", hint="check the data", path=prep.train.path)

    n_train = len(train_encoded)
    steps_per_epoch = math.ceil(n_train / settings.batch_size)
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
    warmup = math.ceil(settings.warmup_ratio * total_steps)
    eval_every = settings.eval_steps or steps_per_epoch
    trainable_count = sum(p.numel() for p in net.parameters() if p.requires_grad)
    optimizer = _optimizer(net, settings)

    info = _run_info(prep, settings, command, torch_device)
    info.update(
        kind_description="full fine-tuning" if settings.method == "full" else "task adapter",
        adapter_name=task.task_adapter,
        lang_adapter_names=task.lang_names,
        head_parameters=task.head_names,
        trainable_parameters=trainable_count,
        max_length=max_length,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        eval_every_steps=eval_every,
        steps=0,
        best_step=None,
        best_score=None,
        seconds=0.0,
        stopped_early=False,
    )
    if previous is not None:
        _check_resume(previous, info, run.path)

    start_step, best_score, best_step, bad_evals, seconds_before = 0, None, None, 0, 0.0
    if previous is not None and run.last_checkpoint.is_dir():
        ckpt = runs.load_checkpoint(run.last_checkpoint, device=torch_device)
        _load_weights(net, ckpt.weights, task.trainable)
        if ckpt.optimizer is not None:
            optimizer.load_state_dict(ckpt.optimizer)
        runs.set_rng_state(ckpt.rng)
        start_step = int(ckpt.state["step"])
        best_score, best_step = ckpt.state.get("best_score"), ckpt.state.get("best_step")
        bad_evals = int(ckpt.state.get("evals_without_improvement", 0))
        seconds_before = float(ckpt.state.get("seconds", 0.0))
        ui.info(f"finetune: resuming {run.path} at step {start_step:,} of {total_steps:,}")
    if best_step is not None and not run.best_checkpoint.is_dir():
        best_score, best_step = None, None

    runs.start_run_dir(run, force=force)
    if force:
        import shutil

        shutil.rmtree(run.path / FUSION_DIR, ignore_errors=True)
    runs.write_training_json(run, info)
    where = f"seed {settings.seed}: " if run.path.name.startswith("seed-") else ""
    ui.info(
        f"finetune: {where}{spec.name} ({settings.method}"
        + (f", {info['lang_method']} language adapter" if prep.lang_infos else "")
        + f"): {trainable_count:,} trainable parameters; {total_steps:,} steps, {n_train:,} examples"
    )
    log = runs.RunLog(run.log, keep_through_step=start_step)

    orders: dict[int, Any] = {}

    def batch_at(step: int) -> list[Encoded]:
        epoch, k = divmod(step, steps_per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = seeded_rng(settings.seed, _SHUFFLE, epoch).permutation(n_train)
        picked = orders[epoch][k * settings.batch_size : (k + 1) * settings.batch_size]
        return [train_encoded[int(i)] for i in picked]

    def validate() -> tuple[float, float]:
        assert prep.validation is not None and val_encoded is not None
        predicted, loss = taskeval.predict_with_loss(
            task, val_encoded, batch_size=settings.batch_size, device=torch_device
        )
        scores = taskeval.score(
            spec,
            prep.labels,
            prep.validation.examples,
            val_encoded,
            predicted,
            subwords=settings.label_all_subwords,
            tokenizer=task.tokenizer,
        )
        net.train()
        return float(scores[spec.metric]), loss

    def save_last(step: int) -> None:
        runs.save_checkpoint(
            run.last_checkpoint,
            weights=_weights_of(net, task.trainable),
            optimizer=optimizer.state_dict(),
            state={
                "step": step,
                "best_score": best_score,
                "best_step": best_step,
                "evals_without_improvement": bad_evals,
                "seconds": seconds_before + time.perf_counter() - started,
                "scheduler": {"kind": "linear", "warmup_steps": warmup, "total_steps": total_steps},
            },
            rng=runs.rng_state(),
        )

    params = [p for p in net.parameters() if p.requires_grad]
    interrupt_at = int(os.environ.get("LRLTOOL_TEST_INTERRUPT_AT_STEP", "0"))  # tests: a real SIGINT
    net.train()
    step = start_step
    stopped_early = False
    loop_started = time.perf_counter()
    with StopRequest() as stop, ui.progress("finetune", total=total_steps) as bar:
        bar.update(completed=start_step)
        while step < total_steps:
            batch = {k: v.to(torch_device) for k, v in collate(batch_at(step), task.pad_id).items()}
            torch.manual_seed(int(seeded_rng(settings.seed, _DROPOUT, step).integers(2**62)))
            loss = net(**batch).loss
            loss.backward()
            if settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            lr = settings.lr * linear_lr_factor(step, total_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if interrupt_at and step == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise RunError(
                    f"the training loss is {loss_value} at step {step}",
                    hint="lower --lr, or check the data",
                    path=str(run.path),
                )
            log.write(step=step, loss=round(loss_value, 6), lr=lr, epoch=round(step / steps_per_epoch, 4))
            score = None
            if val_encoded is not None and (step % eval_every == 0 or step == total_steps):
                score, eval_loss = validate()
                log.write(step=step, eval_loss=round(eval_loss, 6), **{f"eval_{spec.metric}": score})
                if best_score is None or score > best_score:
                    best_score, best_step, bad_evals = score, step, 0
                    runs.save_checkpoint(
                        run.best_checkpoint,
                        weights=_weights_of(net, task.trainable),
                        optimizer=None,
                        state={"step": step, "score": score},
                    )
                else:
                    bad_evals += 1
                if settings.patience is not None and bad_evals >= settings.patience and step < total_steps:
                    stopped_early = True
                if step < total_steps and not stopped_early:
                    save_last(step)
            fields_: dict[str, Any] = {"loss": loss_value}
            if best_score is not None:
                fields_[spec.metric] = best_score if score is None else score
            bar.update(completed=step, **fields_)
            if score is not None and not ui.progress_enabled():
                ui.info(
                    f"step {step:,}/{total_steps:,}  loss {loss_value:.4f}"
                    f"  validation {spec.metric} {score:.4f}"
                    f"  (best {best_score:.4f} at step {best_step:,})"
                )
            if stopped_early:
                ui.info(
                    f"finetune: no improvement in {settings.patience} evaluations; stopping at step {step:,}"
                )
                break
            if stop.requested and step < total_steps:
                save_last(step)
                log.close()
                raise TrainingInterrupted(
                    f"interrupted at step {step:,} of {total_steps:,};"
                    f" checkpoint saved in {run.last_checkpoint}",
                    hint=f"resume with: {_resume_command(command)}",
                )
    log.close()
    elapsed = time.perf_counter() - loop_started  # training and validation, not the export below
    if best_step is not None and best_step != step:
        best = runs.load_checkpoint(run.best_checkpoint, device=torch_device, with_optimizer=False)
        _load_weights(net, best.weights, task.trainable)
    net.eval()
    output = export_task_model(task, run)
    info.update(
        steps=step,
        best_step=best_step if best_step is not None else step,
        best_score=best_score,
        stopped_early=stopped_early,
        seconds=round(seconds_before + time.perf_counter() - started, 2),
        examples_per_second=round((step - start_step) * settings.batch_size / max(elapsed, 1e-9), 1),
        finished=True,
    )
    write_model_card(run, info)
    runs.write_training_json(run, info)
    best_text = (
        f"best validation {spec.metric} {best_score:.4f} at step {best_step:,}"
        if best_score is not None
        else "no validation split: exported the last step"
    )
    ui.info(f"finetune: {where}{step:,} steps, {best_text}; wrote {output}")
    return FinetuneResult(info=info, task=task, output=output)


def _resume_command(command: str | None) -> str:
    if not command:
        command = shlex.join(["lrltool", *sys.argv[1:]])
    if "--resume" not in command.split():
        command = f"{command} --resume"
    return command


# ---------------------------------------------------------------------------------------------------
# The command


def finetune(
    *,
    task: str,
    model: str | None,
    data: str | Path,
    out: str | Path,
    lang_adapters: Sequence[str] = (),
    fusion: bool = False,
    settings: FinetuneSettings,
    seeds: Sequence[int] | None = None,
    lang: str | None = None,
    revision: str | None = None,
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    skip_bad_lines: bool = False,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Train a task model (or one per seed into OUTDIR/seed-N); return the training.json of each.

    Reads DIR/train and DIR/validation (JSONL, .zst/.gz) and the language adapter(s); writes the run
    folder(s). Refuses, before writing anything: unknown labels, empty splits, a language adapter made
    for another base model, fusion without exactly two adapters, a full-fine-tuning run on a language
    adapter, and an output folder that holds something else (see :func:`lrltool.runs.check_run_dir`).
    With seeds and ``resume``, finished seeds are kept and the others resumed or started.
    """
    if resume and force:
        raise RunError("--resume and --force exclude each other", hint="give one of them")
    prep = prepare(
        task=task,
        model=model,
        data=data,
        lang_adapters=lang_adapters,
        fusion=fusion,
        method=settings.method,
        lang=lang,
        revision=revision,
        skip_bad_lines=skip_bad_lines,
    )
    if seeds is None:
        run, previous = runs.check_run_dir(out, resume=resume, force=force)
        result = train_run(
            prep,
            settings,
            out=out,
            device=device,
            resume=resume,
            force=force,
            command=command,
            run=run,
            previous=previous,
        )
        return [result.info]
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise RunError("the output is a file, not a folder", hint="choose another -o", path=str(root))
    if (root / runs.TRAINING_JSON).exists():
        raise RunError(
            "the output folder holds a single run; --seeds writes seed-N folders",
            hint="choose a new -o",
            path=str(root),
        )
    # hidden files are left alone (a Makefile's .done marker lives in OUTDIR)
    strays = (
        sorted(p.name for p in root.iterdir() if not SEED_DIR.match(p.name) and not p.name.startswith("."))
        if root.is_dir()
        else []
    )
    if strays:
        raise RunError(
            f"the output folder holds other things than seed-N runs ({', '.join(strays[:3])})",
            hint="choose a new or empty folder for -o",
            path=str(root),
        )
    plan: list[tuple[int, runs.RunDir, dict[str, Any] | None, bool]] = []
    for seed in seeds:
        folder = root / f"seed-{seed}"
        if resume and not (folder / runs.TRAINING_JSON).exists():
            run, previous = runs.check_run_dir(folder, force=False)  # not started yet: start it
            plan.append((seed, run, previous, False))
            continue
        if resume and runs.RunDir(folder).read_training_json().get("finished"):
            ui.info(f"finetune: seed {seed} has finished; keeping it")
            continue
        run, previous = runs.check_run_dir(folder, resume=resume, force=force)
        plan.append((seed, run, previous, resume))
    if force:
        _remove_other_seeds(root, seeds)
    infos = []
    for seed, run, previous, seed_resume in plan:
        seed_settings = FinetuneSettings(**{**asdict(settings), "seed": seed})
        infos.append(
            train_run(
                prep,
                seed_settings,
                out=run.path,
                device=device,
                resume=seed_resume,
                force=force,
                command=command,
                run=run,
                previous=previous,
            ).info
        )
    return infos


def _remove_other_seeds(root: Path, seeds: Sequence[int]) -> None:
    """--force replaces OUTDIR: seed-N finetune runs of other seeds go (eval would average them in)."""
    import shutil

    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        match = SEED_DIR.match(path.name)
        if not match or int(match.group(1)) in seeds or not (path / runs.TRAINING_JSON).is_file():
            continue
        if runs.RunDir(path).read_training_json().get("kind") == RUN_KIND:
            ui.info(f"finetune: --force: removing {path} (seed {match.group(1)} is not in --seeds)")
            shutil.rmtree(path)


# ---------------------------------------------------------------------------------------------------
# Model card


def model_card(info: dict[str, Any]) -> str:
    """README.md of a finetune run: task, labels, setup, validation score, how to load it."""
    spec = task_spec(info["task"])
    full = info["task_method"] == "full"
    langs = info.get("lang_adapters") or []
    lines = [
        f"# {spec.description}: {info['model']} / {info['task_method']}"
        + (f" on {info['lang_method']} ({info.get('lang_source') or 'unknown source'})" if langs else ""),
        "",
        f"- task: `{spec.name}` ({spec.description}); labels in order: {', '.join(info['labels'])}",
        f"- base model: `{info['model']}`"
        + (f" (revision `{info['model_revision']}`)" if info.get("model_revision") else ""),
        f"- language: {info.get('lang') or 'unknown'}; seed {info.get('seed')}",
        f"- task method: `{info['task_method']}`; language adaptation: `{info['lang_method']}`",
    ]
    for lang in langs:
        lines.append(
            f"  - language {'model' if lang['kind'] == 'full' else 'adapter'} `{lang['path']}`:"
            f" {lang['method']},"
            f" source {lang.get('source') or 'unknown'}, sha256 {lang['weights_sha256'][:16]}..."
        )
    data = info.get("data") or {}
    lines += [
        f"- data: {data.get('train_records', 0):,} training and"
        f" {data.get('validation_records', 0):,} validation"
        f" examples from `{data.get('dir')}` (sha256 {str(data.get('hash', ''))[:16]}...)",
        f"- trainable parameters: {info.get('trainable_parameters', 0):,}",
        f"- steps: {info.get('steps')}; best validation {info.get('metric')}"
        f" {_score_text(info.get('best_score'))} at step {info.get('best_step')} (the exported weights);"
        f" {info.get('seconds', 0):.0f} s",
    ]
    settings = info.get("settings") or {}
    if settings:
        lines += ["", "## Settings", "", "| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in settings.items()]
    lines += ["", "## Use", "", "```"]
    lines.append(f"lrltool eval --task {spec.name} --run {{this folder}}")
    lines += ["```", "", "```python"]
    head_class = {
        ("classification", True): "AutoModelForSequenceClassification",
        ("tagging", True): "AutoModelForTokenClassification",
    }[(spec.kind, True)]
    if full:
        lines += [f"from transformers import {head_class}", f"model = {head_class}.from_pretrained('model')"]
    else:
        lines += [
            "import adapters",
            "from adapters import Fuse, Stack",
            f"from transformers import {head_class}",
            f"model = {head_class}.from_pretrained({info['model']!r}, num_labels={len(info['labels'])})",
            "adapters.init(model)",
        ]
        names = info.get("lang_adapter_names") or []
        for lang, name in zip([x for x in langs if x["kind"] == "adapter"], names, strict=False):
            lines.append(f"model.load_adapter({lang['folder']!r}, load_as={name!r}, with_head=False)")
        if info.get("fusion"):
            lines.append(f"model.load_adapter_fusion('fusion', load_as={','.join(names)!r})")
        lines.append(f"model.load_adapter('adapter', load_as={spec.name!r})  # task adapter + head")
        if info.get("fusion"):
            lines.append(f"model.active_adapters = Stack(Fuse(*{names!r}), {spec.name!r})")
        elif names:
            lines.append(f"model.active_adapters = Stack({names[0]!r}, {spec.name!r})")
        else:
            lines.append(f"model.set_active_adapters({spec.name!r})")
        if "bert.pooler.dense.weight" in (info.get("head_parameters") or []):
            lines.append(
                "# the checkpoint had no pooler: lrltool trained it with the head (model_head.safetensors)"
            )
    lines += ["```", "", f"Command: `{info.get('command') or ''}`", ""]
    return "\n".join(lines)


def _score_text(score: float | None) -> str:
    return "(no validation split)" if score is None else f"{score:.4f}"


def write_model_card(run: runs.RunDir, info: dict[str, Any]) -> None:
    from lrltool.streams import atomic_output

    with atomic_output(run.readme) as stream:
        stream.write(model_card(info).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------
# Reading finished runs (eval)


@dataclass
class FinetuneRun:
    path: Path
    info: dict[str, Any]

    @property
    def seed(self) -> int | None:
        return self.info.get("seed")


def find_runs(path: str | Path) -> tuple[list[FinetuneRun], bool]:
    """The finetune run(s) at ``path``: the run itself, or its seed-N runs (sorted by seed).

    Returns (runs, several seeds). Refuses (RunError) a folder that is no finetune run (a train-adapter
    run, anything else) and an unfinished run.
    """
    root = Path(path)
    if not root.is_dir():
        raise RunError("no such run folder", hint="give the -o folder of lrltool finetune", path=str(root))
    if (root / runs.TRAINING_JSON).is_file():
        return [_finetune_run(root)], False
    seed_dirs = sorted(
        (int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := SEED_DIR.match(p.name))
    )
    if not seed_dirs:
        raise RunError(
            "not a finetune run (no training.json, no seed-N folders)",
            hint="give the -o folder of lrltool finetune",
            path=str(root),
        )
    return [_finetune_run(p) for _, p in seed_dirs], True


def _finetune_run(folder: Path) -> FinetuneRun:
    info = runs.RunDir(folder).read_training_json()
    if info.get("kind") != RUN_KIND:
        what = "a train-adapter run (a language adapter)" if "objective" in info else "not a finetune run"
        raise RunError(
            f"the folder holds {what}, not a finetune run",
            hint="give the -o folder of lrltool finetune (for adapters: eval --task mlm --adapter)",
            path=str(folder),
        )
    if not info.get("finished"):
        raise RunError(
            "the finetune run has not finished", hint="finish it with finetune ... --resume", path=str(folder)
        )
    return FinetuneRun(path=folder, info=info)


def mean_and_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (None for fewer than two values)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)
