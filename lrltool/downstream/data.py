"""Task data: the split files of a data folder, one example type and one reader, tokenization, batches.

A data folder is what ``fetch sib200|sentiment|wikiann -o DIR`` writes: DIR/<split>.jsonl(.zst/.gz), the
validation split also named ``dev``. Classification records are ``{"id", "text", "label"}``, tagging
(NER) records ``{"id", "tokens", "tags"}`` (docs/design.md "Records"); the label set and its order come
from :data:`lrltool.tasks.TASKS` (or, for eval, from the run that was trained on them).

The same :class:`Example` serves finetune, eval and prompting; :func:`read_task_data` is the one reader
and refuses a bad record at its file:line.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrltool.errors import InputError
from lrltool.streams import Stats, read_records
from lrltool.tasks import TaskConfig

# ---------------------------------------------------------------------------------------------------
# Split files

#: The file names a split may have (the validation split is also called ``dev``); other splits: their name.
SPLIT_NAMES = {"validation": ("validation", "dev"), "dev": ("dev", "validation")}
DATA_SUFFIXES = (".jsonl.zst", ".jsonl", ".jsonl.gz", ".zst", ".gz")


def data_folder(data: str | Path, *, hint: str) -> Path:
    """``data`` as a folder; InputError "--data is not a folder" (with ``hint``) otherwise."""
    folder = Path(data)
    if not folder.is_dir():
        raise InputError("--data is not a folder", hint=hint, path=str(data))
    return folder


def find_split(data_dir: str | Path, split: str) -> Path | None:
    """DIR/<split>.jsonl(.zst/.gz) (``dev`` and ``validation`` name each other), or None."""
    folder = Path(data_dir)
    for name in SPLIT_NAMES.get(split, (split,)):
        for suffix in DATA_SUFFIXES:
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def split_name(path: str | Path) -> str:
    """The split a data file holds, from its name: test.jsonl.zst -> test, dev.jsonl -> validation."""
    name = Path(path).name.split(".")[0]
    return "validation" if name == "dev" else name


# ---------------------------------------------------------------------------------------------------
# Examples


@dataclass(frozen=True)
class Example:
    """One task example. Classification: ``text`` and ``label``; tagging: ``tokens``.

    ``gold`` is what the model learns, as indices into the label set the reader was given: the label's
    (classification) or one per token (tagging); None for an example built by hand for prompting.
    """

    id: str
    text: str | None = None  # classification
    label: str | None = None  # classification: the label, as the label set writes it
    tokens: list[str] | None = None  # tagging
    gold: Any = None  # label index (classification) or list of tag indices (tagging)


@dataclass
class TaskData:
    """The examples of one split file, the sha256 of what they hold, and the languages the records name."""

    path: str
    examples: list[Example]
    hash: str
    langs: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.examples)


def read_task_data(
    path: str | Path,
    task: TaskConfig,
    labels: Sequence[str] | None = None,
    *,
    labels_name: str | None = None,
    unseen_hint: str | None = None,
    refuse_empty_text: bool = False,
    skip_bad_lines: bool = False,
    stats: Stats | None = None,
) -> TaskData:
    """The examples of one split of ``task``, their labels as indices into ``labels`` (default: the task's).

    Refuses (InputError, at file:line) records without the task's keys, labels outside ``labels``, with
    ``refuse_empty_text`` an empty text, and (InputError naming the file) a file without examples.
    ``labels_name``: how the error names the label set (default "the tc labels"); ``unseen_hint``: its hint
    (eval: "the run never saw it"). A sentiment label may be written as a number (0/1).
    """
    import orjson

    labels = list(task.labels if labels is None else labels)
    index = {label: i for i, label in enumerate(labels)}
    reader = read_records(path, skip_bad_lines=skip_bad_lines, stats=stats)
    examples: list[Example] = []
    langs: Counter[str] = Counter()
    digest = hashlib.sha256()
    check = _RecordCheck(
        task=task,
        labels=labels,
        index=index,
        labels_name=labels_name or f"the {task.name} {'tags' if task.kind == 'tagging' else 'labels'}",
        hint=unseen_hint or f"{task.name} labels are {', '.join(labels)}",
        refuse_empty_text=refuse_empty_text,
    )
    label_key = "label" if task.kind == "classification" else "tags"
    for record in reader:
        try:
            example = check.example(record, reader.line)
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
            f"no {task.name} examples in the file",
            hint="check the path; fetch writes train/validation/test files with records",
            path=str(path),
        )
    return TaskData(path=str(path), examples=examples, hash=digest.hexdigest(), langs=langs)


def _label_id(value: Any, index: dict[str, int]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return index.get(str(value))  # sentiment labels 0/1 written as numbers
    if isinstance(value, str):
        return index.get(value)
    return None


@dataclass(frozen=True)
class _RecordCheck:
    """Turns one record into an :class:`Example`, or refuses it (InputError without location)."""

    task: TaskConfig
    labels: list[str]
    index: dict[str, int]
    labels_name: str
    hint: str
    refuse_empty_text: bool

    def example(self, record: dict[str, Any], line: int) -> Example:
        record_id = record.get("id", line)
        record_id = str(record_id) if record_id is not None else str(line)
        if self.task.kind == "classification":
            return self._classification(record, record_id)
        return self._tagging(record, record_id)

    def _classification(self, record: dict[str, Any], record_id: str) -> Example:
        text = record.get("text")
        if not isinstance(text, str):
            raise InputError(
                "classification record has no string 'text'" if text is None else "'text' is not a string",
                hint='expected {"id", "text", "label"}',
            )
        if "label" not in record:
            raise InputError("classification record has no 'label'", hint='expected {"id", "text", "label"}')
        label = _label_id(record["label"], self.index)
        if label is None:
            raise InputError(f"label {record['label']!r} is not one of {self.labels_name}", hint=self.hint)
        if self.refuse_empty_text and not text.strip():
            raise InputError("classification record has an empty 'text'", hint="remove empty texts")
        return Example(id=record_id, text=text, label=self.labels[label], gold=label)

    def _tagging(self, record: dict[str, Any], record_id: str) -> Example:
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
            tag_id = _label_id(tag, self.index)
            if tag_id is None:
                raise InputError(f"tag {tag!r} is not one of {self.labels_name}", hint=self.hint)
            ids.append(tag_id)
        return Example(id=record_id, tokens=list(tokens), gold=ids)


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
    task: TaskConfig,
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
        if task.kind == "classification":
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
