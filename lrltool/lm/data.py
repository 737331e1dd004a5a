"""Training data of language adapters: texts, the validation split, cached tokenization, MLM masking.

- :func:`read_training_data` reads text records (``{"text": ...}``, JSONL plain/.gz/.zst, ``-`` = stdin)
  and holds out a deterministic validation set (or reads ``--validation``);
- :func:`load_or_tokenize` tokenizes once with the fast (Rust) tokenizer into a cache and packs the tokens
  into full-length blocks (or keeps one text per example). Cache: ``--cache-dir``, else
  ``$LRLTOOL_CACHE``, else ``$HF_HOME/lrltool`` (``~/.cache/huggingface/lrltool``), under
  ``tokenized/<key>`` where the key hashes the data, the tokenizer and the length settings;
- :class:`Masker` masks one example as a pure function of (ids, random generator), so masks are keyed by
  (seed, step, sample position) and a resumed or distributed run draws the same ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lrltool import models, ui
from lrltool.errors import InputError
from lrltool.streams import Stats, read_records, require

CACHE_VERSION = 1


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass
class TextData:
    texts: list[str]
    langs: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)


def read_texts(
    path: str | os.PathLike[str], *, skip_bad_lines: bool = False, stats: Stats | None = None
) -> TextData:
    """The ``text`` of every record (blank texts dropped and counted), with the records' lang/source."""
    data = TextData(texts=[])
    reader = read_records(path, skip_bad_lines=skip_bad_lines, stats=stats)
    for record in reader:
        try:
            text = require(record, "text", str, what="text record")
        except InputError as exc:
            reader.reject(exc)
            continue
        if not text.strip():
            if stats is not None:
                stats.drop("empty_text")
            continue
        data.texts.append(text)
        for key, counter in (("lang", data.langs), ("source", data.sources)):
            value = record.get(key)
            if isinstance(value, str) and value:
                counter[value] += 1
    return data


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def split_validation(texts: Sequence[str], fraction: float, max_records: int) -> tuple[list[str], list[str]]:
    """Hold out ``round(fraction * n)`` texts (at least 1, at most ``max_records``), deterministically.

    The texts with the smallest content hashes are held out, so the split does not depend on the input
    order, and copies of a held-out text are held out too (no validation text is trained on).
    """
    n = len(texts)
    if fraction <= 0 or n < 2:
        return list(texts), []
    k = min(max_records, max(1, round(fraction * n)), n - 1)
    keys = [_text_key(t) for t in texts]
    threshold = sorted(set(keys))[k - 1]
    train = [t for t, key in zip(texts, keys, strict=True) if key > threshold]
    validation = [t for t, key in zip(texts, keys, strict=True) if key <= threshold]
    return train, validation


def hash_texts(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def _single(counter: Counter[str]) -> str | None:
    """The one value of a counter, 'a+b' for several, None for none (records' lang / source)."""
    if not counter:
        return None
    return "+".join(sorted(counter))


@dataclass
class TrainingData:
    """Training and validation texts, and what training.json says about them."""

    train_texts: list[str]
    val_texts: list[str]
    val_from: str
    info: dict[str, Any]
    lang: str | None
    source: str | None


def read_training_data(
    train: str | os.PathLike[str],
    validation: str | os.PathLike[str] | None,
    *,
    validation_fraction: float,
    max_validation_records: int,
    skip_bad_lines: bool,
) -> TrainingData:
    """The texts of ``train`` and ``validation`` (default: a held-out part of ``train``, see
    :func:`split_validation`). Refuses (InputError) no training text, no validation text in a given file,
    and nothing left to train on after holding out."""
    stats = Stats("train-adapter")
    data = read_texts(train, skip_bad_lines=skip_bad_lines, stats=stats)
    if not data.texts:
        raise InputError(
            "no training text: the input holds no record with a non-empty 'text'",
            hint="train-adapter reads {'text': ...} records (e.g. from verbalize or fetch glotcc)",
            path=str(train),
        )
    if validation is not None:
        val_data = read_texts(validation, skip_bad_lines=skip_bad_lines)
        if not val_data.texts:
            raise InputError(
                "no validation text in the file", hint="check --validation", path=str(validation)
            )
        train_texts, val_texts, val_from = data.texts, val_data.texts, str(validation)
    else:
        train_texts, val_texts = split_validation(data.texts, validation_fraction, max_validation_records)
        val_from = f"held out {len(val_texts)} of the training records" if val_texts else "none"
        if not train_texts:
            raise InputError(
                "no training text left after holding out the validation set",
                hint="give more data, or --validation FILE",
                path=str(train),
            )
    info = {
        "hash": hash_texts(data.texts),
        "records": len(data.texts),
        "train_hash": hash_texts(train_texts),
        "train_records": len(train_texts),
        "validation_hash": hash_texts(val_texts) if val_texts else None,
        "validation_records": len(val_texts),
        "validation_from": val_from,
        "langs": dict(data.langs),
        "sources": dict(data.sources),
        "dropped": dict(stats.dropped),
    }
    return TrainingData(train_texts, val_texts, val_from, info, _single(data.langs), _single(data.sources))


# ---------------------------------------------------------------------------------------------------
# Tokenization (cached)


@dataclass
class Blocks:
    """Training examples as slices of one flat token array: example i is ids[starts[i]:starts[i+1]]."""

    ids: Any  # np.int32 [tokens]
    starts: Any  # np.int64 [examples + 1]
    word_start: Any | None  # np.uint8 [tokens] (whole-word masking) or None

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def tokens(self) -> int:
        return int(self.starts[-1]) if len(self.starts) else 0

    def example(self, i: int) -> tuple[Any, Any | None]:
        a, b = int(self.starts[i]), int(self.starts[i + 1])
        return self.ids[a:b], (self.word_start[a:b] if self.word_start is not None else None)


@dataclass(frozen=True)
class TokenizeSpec:
    objective: str
    max_len: int
    packing: bool
    whole_word: bool


def tokenizer_fingerprint(tokenizer: Any) -> str:
    digest = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8"))
    digest.update(json.dumps(sorted(tokenizer.all_special_ids)).encode())
    digest.update(str(tokenizer.eos_token_id).encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return models.default_cache_dir()


def cache_key(data_hash: str, tokenizer: Any, spec: TokenizeSpec) -> str:
    key = {
        "v": CACHE_VERSION,
        "data": data_hash,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        **asdict(spec),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def tokenize_texts(texts: Sequence[str], tokenizer: Any, spec: TokenizeSpec, *, chunk: int = 2000) -> Blocks:
    """Tokenize in batches with the fast (Rust) tokenizer, then pack into blocks or keep one per text."""
    import numpy as np
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())  # a copy: truncation is set on it
    backend.no_padding()
    truncate_here = spec.objective == "mlm" and not spec.packing
    if truncate_here:
        backend.enable_truncation(max_length=spec.max_len)  # keeps the closing special token
    else:
        backend.no_truncation()
    eos = tokenizer.eos_token_id if spec.objective == "clm" else None
    id_parts, ws_parts, lengths = [], [], []
    for begin in range(0, len(texts), chunk):
        chunk_ids: list[Any] = []
        chunk_ws: list[Any] = []
        for enc in backend.encode_batch(list(texts[begin : begin + chunk]), add_special_tokens=True):
            ids = np.asarray(enc.ids, dtype=np.int32)
            ws = None
            if spec.whole_word:
                word_ids = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
                ws = np.ones(len(word_ids), dtype=np.uint8)
                ws[1:] = (word_ids[1:] != word_ids[:-1]) | (word_ids[1:] < 0)
            if eos is not None and (len(ids) == 0 or ids[-1] != eos):
                # Decoders: end each text with EOS so packed texts are separated.
                ids = np.append(ids, np.int32(eos))
                if ws is not None:
                    ws = np.append(ws, np.uint8(1))
            if not spec.packing and len(ids) > spec.max_len:
                ids = ids[: spec.max_len]
                ws = ws[: spec.max_len] if ws is not None else None
            chunk_ids.append(ids)
            lengths.append(len(ids))
            if ws is not None:
                chunk_ws.append(ws)
        # One array per chunk, not per text: millions of small arrays would cost more than the tokens.
        id_parts.append(np.concatenate(chunk_ids) if chunk_ids else np.zeros(0, dtype=np.int32))
        if chunk_ws:
            ws_parts.append(np.concatenate(chunk_ws))
    flat = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
    word_start = (
        (np.concatenate(ws_parts) if ws_parts else np.zeros(0, dtype=np.uint8)) if spec.whole_word else None
    )
    if spec.packing:
        starts = np.arange(0, len(flat), spec.max_len, dtype=np.int64)
        starts = np.append(starts, np.int64(len(flat)))  # the last block may be shorter
    else:
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
    return Blocks(ids=flat, starts=starts, word_start=word_start)


def load_or_tokenize(
    texts: Sequence[str], data_hash: str, tokenizer: Any, spec: TokenizeSpec, cache_dir: Path | None
) -> tuple[Blocks, bool, Path | None]:
    """Blocks from the cache when this data + tokenizer + spec was seen before; else tokenize and store.

    Returns (blocks, cache_hit, cache folder). ``cache_dir`` None disables the cache.
    """
    import numpy as np

    if cache_dir is None:
        return tokenize_texts(texts, tokenizer, spec), False, None
    folder = cache_dir / "tokenized" / cache_key(data_hash, tokenizer, spec)
    if (folder / "meta.json").is_file():
        try:
            # Memory-mapped: a GB-sized token array is ready at once and paged in as training reads it.
            ws = np.load(folder / "word_start.npy", mmap_mode="r") if spec.whole_word else None
            ids = np.load(folder / "ids.npy", mmap_mode="r")
            return Blocks(ids, np.load(folder / "starts.npy"), ws), True, folder
        except (OSError, ValueError):
            pass  # a damaged entry: tokenize again and replace it
    blocks = tokenize_texts(texts, tokenizer, spec)
    meta = {
        "data": data_hash,
        "texts": len(texts),
        "tokens": blocks.tokens,
        "blocks": len(blocks),
        **asdict(spec),
    }
    try:
        _store(folder, blocks, meta)
    except OSError as exc:
        ui.warn(f"could not write the tokenization cache in {cache_dir} ({exc}); continuing without it")
    return blocks, False, folder


def _store(folder: Path, blocks: Blocks, meta: dict[str, Any]) -> None:
    """Write a cache entry under a temporary name and rename it into place (never half an entry)."""
    import numpy as np

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.save(tmp / "ids.npy", blocks.ids)
        np.save(tmp / "starts.npy", blocks.starts)
        if blocks.word_start is not None:
            np.save(tmp / "word_start.npy", blocks.word_start)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process stored the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------
# Examples -> batches


@dataclass
class Masker:
    """MLM masking of one example, a pure function of (ids, random generator).

    As BERT and transformers' DataCollatorForLanguageModeling: each non-special token is chosen with
    ``probability``; a chosen token becomes the mask token (80%), a random token (10%) or stays (10%).
    Whole-word masking chooses words instead, and makes one 80/10/10 decision per word.
    """

    mask_id: int
    special_ids: Any  # np array of ids never masked
    random_vocab: int  # random replacements draw from [0, random_vocab)
    probability: float
    whole_word: bool

    def __call__(self, ids: Any, word_start: Any | None, rng: Any) -> tuple[Any, Any]:
        import numpy as np

        candidate = ~np.isin(ids, self.special_ids)
        n = len(ids)
        if self.whole_word and word_start is not None:
            ws = word_start.astype(bool).copy()
            if n:
                ws[0] = True
            word = np.cumsum(ws) - 1  # word index of each token
            n_words = int(word[-1]) + 1 if n else 0
            chosen = (rng.random(n_words) < self.probability)[word]
            action = rng.random(n_words)[word]  # one decision per word
        else:
            chosen = rng.random(n) < self.probability
            action = rng.random(n)
        selected = chosen & candidate
        labels = np.where(selected, ids, -100).astype(np.int64)
        inputs = ids.astype(np.int64).copy()
        inputs[selected & (action < 0.8)] = self.mask_id  # 80% [MASK]
        randomize = selected & (action >= 0.8) & (action < 0.9)  # 10% a random token, 10% unchanged
        inputs[randomize] = rng.integers(0, self.random_vocab, size=int(randomize.sum()))
        return inputs, labels


def collate(examples: list[tuple[Any, Any | None]], pad_id: int) -> dict[str, Any]:
    """Right-pad examples of (input ids, labels or None) into tensors."""
    import numpy as np
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = np.full((len(examples), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(examples), width), dtype=np.int64)
    labels = np.full((len(examples), width), -100, dtype=np.int64)
    for row, (ids, lab) in enumerate(examples):
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
        if lab is not None:
            labels[row, : len(lab)] = lab
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention)}
    if any(lab is not None for _, lab in examples):
        batch["labels"] = torch.from_numpy(labels)
    return batch
