"""Language-adapter training (``train-adapter``): MLM for encoders, CLM for decoders; resumable, cached, fast.

Reads text records (``{"text": ...}``, JSONL plain/.gz/.zst, ``-`` = stdin), holds out a deterministic
validation set (or reads ``--validation``), tokenizes once into a cache, and trains one adapter
(or every weight, method ``full``) with its own loop:

- MLM loss with the LM head applied only at the masked positions (same loss as full logits, a fraction of
  the time and memory on 250k vocabularies); CLM loss over the non-padding positions;
- data order, masks and dropout are functions of (seed, step, sample position), so ``--resume`` from a
  checkpoint continues bit for bit, and ``torchrun --nproc_per_node=N`` splits every step's samples
  across processes (the loss is normalised by the step's global token count, gradients summed);
- the best weights by validation loss are exported to OUTDIR/adapter (or OUTDIR/model for ``full``).

Run folder layout and refusal rules: :mod:`lrltool.runs`. Tokenization cache: ``--cache-dir``, else
``$LRLTOOL_CACHE``, else ``$HF_HOME/lrltool`` (``~/.cache/huggingface/lrltool``), under ``tokenized/<key>``
where the key hashes the data, the tokenizer and the length settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lrltool import ui
from lrltool.errors import InputError, ModelError, RunError, UsageError
from lrltool.runs import StopRequest, check_positive, library_versions, linear_lr_factor, seeded_rng
from lrltool.streams import Stats, read_records, require

CACHE_VERSION = 1
# Random streams: one per purpose, so a mask never depends on how many dropout draws came before it.
_TRAIN_MASK, _EVAL_MASK, _DROPOUT, _SHUFFLE = 1, 2, 3, 4


class TrainingInterrupted(RunError):
    """Ctrl-C (or SIGTERM) during training: a checkpoint was saved; exit status 130."""

    exit_code = 130


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass
class TrainSettings:
    """Every setting that shapes the trained weights (recorded in training.json, compared on --resume)."""

    method: str = "seq_bn"
    objective: str | None = None  # None: from the model (mlm for encoders, clm for decoders)
    reduction_factor: int = 16
    lora_r: int = 8
    lora_alpha: int = 8
    max_steps: int | None = None  # None: --epochs over the training blocks
    epochs: float = 1.0
    batch_size: int = 16  # per process
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    max_seq_length: int | None = None  # None: min(512, the model's limit)
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    line_by_line: bool = False  # False: pack texts into full-length blocks (no padding wasted)
    eval_steps: int = 500
    seed: int = 42
    validation_fraction: float = 0.01
    max_validation_records: int = 2000


# DESIGN.md "Paper settings": 100k (GlotCC) / 25k (ConceptNet) steps, batch 16, lr 1e-4, MLM 0.15, length 512,
# eval every 500 steps, seed 42, linear schedule without warmup, one text per example.
_PAPER_COMMON: dict[str, Any] = dict(
    batch_size=16, lr=1e-4, mlm_probability=0.15, eval_steps=500, seed=42, warmup_ratio=0.0, line_by_line=True
)
PRESETS: dict[str, dict[str, Any]] = {
    "paper-glotcc": dict(_PAPER_COMMON, max_steps=100_000),
    "paper-conceptnet": dict(_PAPER_COMMON, max_steps=25_000),
}


def make_settings(preset: str | None = None, **explicit: Any) -> TrainSettings:
    """Defaults, then the preset's values, then every explicitly given (non-None) value."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset '{preset}'", hint=f"choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    known = {f.name for f in fields(TrainSettings)}
    for key, value in explicit.items():
        if key not in known:
            raise TypeError(f"unknown training setting {key!r}")
        if value is not None:
            values[key] = value
    return TrainSettings(**values)


def _check_settings(s: TrainSettings) -> None:
    check_positive(
        s,
        "batch_size",
        "grad_accum",
        "lr",
        "eval_steps",
        "epochs",
        "reduction_factor",
        "lora_r",
        "max_steps",
        "max_seq_length",
    )
    if not 0 < s.mlm_probability < 1:
        raise UsageError(f"--mlm-probability must be between 0 and 1, not {s.mlm_probability}")
    if not 0 <= s.warmup_ratio < 1:
        raise UsageError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")
    if not 0 <= s.validation_fraction < 1:
        raise UsageError(f"--validation-fraction must be in [0, 1), not {s.validation_fraction}")
    if s.objective not in (None, "mlm", "clm"):
        raise UsageError(f"unknown objective '{s.objective}'", hint="choose mlm or clm")


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
    if os.environ.get("LRLTOOL_CACHE"):
        return Path(os.environ["LRLTOOL_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "lrltool"


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
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        np.save(tmp / "ids.npy", blocks.ids)
        np.save(tmp / "starts.npy", blocks.starts)
        if blocks.word_start is not None:
            np.save(tmp / "word_start.npy", blocks.word_start)
        meta = {
            "data": data_hash,
            "texts": len(texts),
            "tokens": blocks.tokens,
            "blocks": len(blocks),
            **asdict(spec),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process stored the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        ui.warn(f"could not write the tokenization cache in {cache_dir} ({exc}); continuing without it")
    return blocks, False, folder


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


# ---------------------------------------------------------------------------------------------------
# Loss


def lm_loss_sum(model: Any, head: Any, batch: dict[str, Any], objective: str) -> tuple[Any, Any]:
    """(summed cross-entropy, number of predicted tokens) with the LM head only where a token is predicted.

    MLM: hidden states at the masked positions (labels != -100) go through the head; CLM: every
    position whose next token is not padding. Never materialises batch x length x vocabulary logits.
    """
    import torch
    import torch.nn.functional as F

    extra = {"use_cache": False} if objective == "clm" else {}  # no KV cache while training
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra)[
        0
    ]
    if objective == "mlm":
        labels = batch["labels"]
        selected = labels != -100
        targets = labels[selected]
        states = hidden[selected]
    else:
        selected = batch["attention_mask"][:, 1:].bool()
        targets = batch["input_ids"][:, 1:][selected]
        states = hidden[:, :-1][selected]
    if targets.numel() == 0:
        return hidden.sum() * 0.0, torch.zeros((), dtype=torch.long, device=hidden.device)
    logits = head(states)
    return F.cross_entropy(logits.float(), targets, reduction="sum"), selected.sum()


def full_logits_loss(model: Any, batch: dict[str, Any], objective: str) -> Any:
    """The reference: the model's own loss from full logits (mean over predicted tokens)."""
    if objective == "mlm":
        return model(**batch).loss
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss


# ---------------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, tensor: Any) -> Any:
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(tensor)
        return tensor

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def init_distributed(device: str) -> Distributed:
    """Join the process group that torchrun / accelerate launch describe in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch
    import torch.distributed as dist

    info = Distributed(
        rank=int(os.environ.get("RANK", "0")), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )
    if not dist.is_initialized():
        use_nccl = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return info


def pick_device(requested: str, dist: Distributed) -> Any:
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank)
        if (
            getattr(torch.backends, "mps", None) is not None
            and torch.backends.mps.is_available()
            and not dist.enabled
        ):
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"unknown device '{requested}'", hint="use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda, but no CUDA device is available", hint="use --device cpu")
        if device.index is None:
            device = torch.device("cuda", dist.local_rank)
    return device


# ---------------------------------------------------------------------------------------------------
# Interruption


# ---------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    info: dict[str, Any]  # what training.json holds
    model: Any  # the model with the exported (best) weights loaded
    output: Path


def _single(counter: Counter[str]) -> str | None:
    """The one value of a counter, 'a+b' for several, None for none (records' lang / source)."""
    if not counter:
        return None
    return "+".join(sorted(counter))


def _trainable(model: Any) -> list[tuple[str, Any]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _load_weights(model: Any, weights: dict[str, Any]) -> None:
    import torch

    params = dict(_trainable(model))
    missing = sorted(set(params) - set(weights))
    if missing:
        raise RunError(
            f"the checkpoint lacks {len(missing)} trained weights (e.g. {missing[0]})",
            hint="it belongs to another run; use --force to start again",
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name].to(param.device, param.dtype))


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _differences(previous: dict[str, Any], current: dict[str, Any], keys: Sequence[str]) -> list[str]:
    return [
        f"{key} {previous.get(key)!r} -> {current.get(key)!r}"
        for key in keys
        if previous.get(key) != current.get(key)
    ]


def _refuse_resume(differences: list[str]) -> None:
    if differences:
        raise RunError(
            f"--resume with different settings than the interrupted run: {'; '.join(differences[:4])}",
            hint="resume with the same command and data, or use --force to start again",
        )


@dataclass
class _Data:
    """Training and validation texts, and what training.json says about them."""

    train_texts: list[str]
    val_texts: list[str]
    val_from: str
    info: dict[str, Any]
    lang: str | None
    source: str | None


def _read_data(
    train: str | os.PathLike[str],
    validation: str | os.PathLike[str] | None,
    settings: TrainSettings,
    skip_bad_lines: bool,
) -> _Data:
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
        train_texts, val_texts = split_validation(
            data.texts, settings.validation_fraction, settings.max_validation_records
        )
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
    return _Data(train_texts, val_texts, val_from, info, _single(data.langs), _single(data.sources))


class _Trainer:
    """The training loop of one process: data order, masks, steps, evaluation, checkpoints.

    Every random draw is keyed by (seed, purpose, step or sample position), so a run resumed from a
    checkpoint and a run split over N processes see exactly the examples and masks of one uninterrupted
    single-process run.
    """

    def __init__(
        self,
        *,
        net: Any,
        tokenizer: Any,
        objective: str,
        settings: TrainSettings,
        train_blocks: Blocks,
        val_blocks: Blocks | None,
        dist: Distributed,
        device: Any,
        bf16: bool,
        run: Any,
        total_steps: int,
        started: float,
    ) -> None:
        import numpy as np
        import torch

        from lrltool import models

        self.net, self.objective, self.settings = net, objective, settings
        self.train_blocks, self.val_blocks = train_blocks, val_blocks
        self.dist, self.device, self.bf16, self.run = dist, device, bf16, run
        self.head = models.lm_head(net)
        self.params = [p for _, p in _trainable(net)]
        self.optimizer = torch.optim.AdamW(self.params, lr=settings.lr, weight_decay=settings.weight_decay)
        self.global_batch = settings.batch_size * settings.grad_accum * dist.world
        self.total_steps = total_steps
        self.warmup = math.ceil(settings.warmup_ratio * total_steps)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.masker: Masker | None = None
        if objective == "mlm":
            self.masker = Masker(
                mask_id=tokenizer.mask_token_id,
                special_ids=np.asarray(sorted(tokenizer.all_special_ids), dtype=np.int64),
                random_vocab=len(tokenizer),
                probability=settings.mlm_probability,
                whole_word=settings.whole_word_mask,
            )
        self.step = 0
        self.best_loss: float | None = None
        self.best_step: int | None = None
        self.seconds_before = 0.0
        self.started = started  # when the command started (time.perf_counter())
        self.first_step_seconds: float | None = None
        self._order: tuple[int, Any] | None = None

    # --- examples

    def _epoch_order(self, epoch: int) -> Any:
        if self._order is None or self._order[0] != epoch:
            order = seeded_rng(self.settings.seed, _SHUFFLE, epoch).permutation(len(self.train_blocks))
            self._order = (epoch, order)
        return self._order[1]

    def _example(self, blocks: Blocks, index: int, mask_key: tuple[int, ...]) -> tuple[Any, Any | None]:
        ids, word_start = blocks.example(index)
        if self.masker is None:
            return ids, None
        return self.masker(ids, word_start, seeded_rng(self.settings.seed, *mask_key))

    def _train_example(self, position: int) -> tuple[Any, Any | None]:
        epoch, offset = divmod(position, len(self.train_blocks))
        return self._example(
            self.train_blocks, int(self._epoch_order(epoch)[offset]), (_TRAIN_MASK, position)
        )

    def _batch(self, examples: list[tuple[Any, Any | None]]) -> dict[str, Any]:
        return {k: v.to(self.device) for k, v in collate(examples, self.pad_id).items()}

    def _predicted(self, batch: dict[str, Any]) -> int:
        if self.objective == "mlm":
            return int((batch["labels"] != -100).sum())
        return int(batch["attention_mask"][:, 1:].sum())

    # --- state

    def weights(self) -> dict[str, Any]:
        return {n: p.detach() for n, p in _trainable(self.net)}

    def restore(self, checkpoint: Any) -> None:
        from lrltool import runs

        _load_weights(self.net, checkpoint.weights)
        if checkpoint.optimizer is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer)
        runs.set_rng_state(checkpoint.rng)
        state = checkpoint.state
        self.step = int(state["step"])
        self.best_loss, self.best_step = state.get("best_eval_loss"), state.get("best_step")
        self.seconds_before = float(state.get("seconds", 0.0))
        if self.best_step is not None and not self.run.best_checkpoint.is_dir():
            self.best_loss, self.best_step = None, None

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def save_last(self) -> None:
        from lrltool import runs

        if self.dist.main:
            runs.save_checkpoint(
                self.run.last_checkpoint,
                weights=self.weights(),
                optimizer=self.optimizer.state_dict(),
                state={
                    "step": self.step,
                    "best_eval_loss": self.best_loss,
                    "best_step": self.best_step,
                    "seconds": self.seconds(),
                    "scheduler": {
                        "kind": "linear",
                        "warmup_steps": self.warmup,
                        "total_steps": self.total_steps,
                    },
                    "lr": self.optimizer.param_groups[0]["lr"],
                },
                rng=runs.rng_state(),
            )
        self.dist.barrier()

    def _save_best(self, eval_loss: float) -> None:
        from lrltool import runs

        self.best_loss, self.best_step = eval_loss, self.step
        if self.dist.main:
            runs.save_checkpoint(
                self.run.best_checkpoint,
                weights=self.weights(),
                optimizer=None,
                state={"step": self.step, "eval_loss": eval_loss},
            )

    # --- steps

    def train_step(self) -> tuple[float, int, float]:
        """One optimizer step over this process's share of the global batch: (loss, tokens, lr)."""
        import torch

        s, dist = self.settings, self.dist
        batches = []
        for a in range(s.grad_accum):
            first = self.step * self.global_batch + (a * dist.world + dist.rank) * s.batch_size
            batches.append(self._batch([self._train_example(p) for p in range(first, first + s.batch_size)]))
        predicted = torch.tensor([float(sum(self._predicted(b) for b in batches))], device=self.device)
        # Normalise by the step's predicted tokens over all processes and micro-batches, so N processes
        # or grad-accum micro-batches give the gradient of one big batch.
        denominator = max(1.0, float(dist.all_reduce(predicted.double())[0]))
        loss_total, tokens = 0.0, 0
        for a, batch in enumerate(batches):
            torch.manual_seed(int(seeded_rng(s.seed, _DROPOUT, self.step, a, dist.rank).integers(2**62)))
            with _autocast(self.device, self.bf16):
                loss_sum, _ = lm_loss_sum(self.net, self.head, batch, self.objective)
            (loss_sum / denominator).backward()
            loss_total += float(loss_sum.detach())
            tokens += int(batch["attention_mask"].sum())
        if dist.enabled:
            _all_reduce_grads(self.params, dist)
        if s.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, s.max_grad_norm)
        lr = s.lr * linear_lr_factor(self.step, self.total_steps, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss_total / denominator, tokens, lr

    def evaluate(self) -> float:
        """Validation loss (the same masks every time), over all processes' shares."""
        import torch

        assert self.val_blocks is not None
        self.net.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        mine = list(range(self.dist.rank, len(self.val_blocks), self.dist.world))
        with torch.no_grad(), _autocast(self.device, self.bf16):
            for begin in range(0, len(mine), self.settings.batch_size):
                chunk = mine[begin : begin + self.settings.batch_size]
                batch = self._batch([self._example(self.val_blocks, i, (_EVAL_MASK, i)) for i in chunk])
                loss_sum, count = lm_loss_sum(self.net, self.head, batch, self.objective)
                total[0] += loss_sum.double()
                total[1] += count
        self.dist.all_reduce(total)
        self.net.train()
        return float(total[0] / total[1].clamp(min=1))

    def loop(self, log: Any, log_steps: int, command: str | None) -> int:
        """Train to ``total_steps``; returns the tokens seen per second. Ctrl-C: checkpoint + raise."""
        import torch

        interrupt_at = int(os.environ.get("LRLTOOL_TEST_INTERRUPT_AT_STEP", "0"))  # tests: a real SIGINT
        start_step, tokens_seen, loop_started = self.step, 0, time.perf_counter()
        self.net.train()
        with StopRequest() as stop, ui.progress("train", total=self.total_steps) as bar:
            bar.update(completed=self.step)
            while self.step < self.total_steps:
                loss, tokens, lr = self.train_step()
                if self.first_step_seconds is None:
                    self.first_step_seconds = time.perf_counter() - self.started
                if interrupt_at and self.step == interrupt_at:
                    os.kill(os.getpid(), signal.SIGINT)
                summary = torch.tensor(
                    [loss, float(tokens), 1.0 if stop.requested else 0.0],
                    dtype=torch.float64,
                    device=self.device,
                )
                self.dist.all_reduce(summary)
                tokens_seen += int(summary[1])
                loss = float(summary[0])  # the processes' shares of the globally normalised loss add up
                if log is not None:
                    epoch = self.step * self.global_batch / len(self.train_blocks)
                    log.write(step=self.step, loss=loss, lr=lr, epoch=round(epoch, 6))
                eval_loss = None
                every = self.step % self.settings.eval_steps == 0
                if self.val_blocks is not None and (every or self.step == self.total_steps):
                    eval_loss = self.evaluate()
                    if log is not None:
                        log.write(step=self.step, eval_loss=eval_loss)
                    if self.best_loss is None or eval_loss < self.best_loss:
                        self._save_best(eval_loss)
                if every and self.step < self.total_steps:
                    self.save_last()  # with or without a validation set: a crash loses < eval_steps steps
                elapsed = time.perf_counter() - loop_started
                rate = tokens_seen / elapsed if elapsed > 0 else 0.0
                if self.dist.main:
                    self._report(bar, loss, eval_loss, rate, elapsed, start_step, log_steps)
                if summary[2] > 0 and self.step < self.total_steps:
                    self.save_last()
                    raise TrainingInterrupted(
                        f"interrupted at step {self.step:,} of {self.total_steps:,};"
                        f" checkpoint saved in {self.run.last_checkpoint}",
                        hint=f"resume with: {_resume_command(command)}",
                    )
        elapsed = time.perf_counter() - loop_started
        return round(tokens_seen / elapsed) if elapsed > 0 else 0

    def _report(
        self,
        bar: Any,
        loss: float,
        eval_loss: float | None,
        rate: float,
        elapsed: float,
        start: int,
        every: int,
    ) -> None:
        steps_per_second = (self.step - start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total_steps - self.step) / steps_per_second if steps_per_second > 0 else float("inf")
        fields_: dict[str, Any] = {"loss": loss, "tok/s": int(rate)}
        if self.best_loss is not None:
            fields_["eval"] = self.best_loss if eval_loss is None else eval_loss
        bar.update(completed=self.step, **fields_)
        if ui.progress_enabled():
            return
        if self.step % every == 0 or eval_loss is not None or self.step == self.total_steps:
            text = f"step {self.step:,}/{self.total_steps:,}  loss {loss:.4f}"
            if eval_loss is not None:
                text += f"  eval loss {eval_loss:.4f}"
            ui.info(f"{text}  {rate:,.0f} tokens/s  ETA {_format_eta(eta)}")


def train_language_adapter(
    *,
    model: str,
    output: str | os.PathLike[str],
    train: str | os.PathLike[str] = "-",
    validation: str | os.PathLike[str] | None = None,
    settings: TrainSettings | None = None,
    revision: str | None = None,
    device: str = "auto",
    bf16: bool | None = None,
    resume: bool = False,
    force: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    adapter_name: str | None = None,
    skip_bad_lines: bool = False,
    log_steps: int = 50,
    command: str | None = None,
) -> TrainResult:
    """Train a language adapter (or every weight, method ``full``) and write the run folder ``output``.

    Reads text records from ``train`` (``-``: stdin) and ``validation`` (default: a held-out fraction
    of ``train``). Writes ``output``/adapter (or model/), checkpoints/, training.json, README.md, log.jsonl
    (:mod:`lrltool.runs`). Refuses, before writing anything: an unknown method or objective, an
    untrusted or unsupported model, ``max_seq_length`` beyond the model's limit, empty training data,
    records without ``text``, an output folder holding another run (unless ``resume``/``force``), and a
    ``resume`` with other settings or data. Ctrl-C saves a checkpoint and raises
    :class:`TrainingInterrupted` (exit 130).
    """
    import torch

    from lrltool import models, runs

    started = time.perf_counter()
    settings = settings or TrainSettings()
    _check_settings(settings)
    method = models.adapter_method(settings.method)
    run, previous = runs.check_run_dir(output, resume=resume, force=force)
    dist = init_distributed(device)
    if dist.enabled and str(train) == "-":
        raise UsageError(
            "reading training data from stdin does not work with several processes",
            hint="give the training file with --train",
        )
    source = models.resolve_model(model, revision=revision)
    objective = settings.objective or source.objective
    if objective != source.objective:
        kind = "a decoder" if source.is_decoder else "an encoder"
        raise ModelError(
            f"{source.name} is {kind} ({source.model_type}): it trains with {source.objective.upper()},"
            f" not {objective.upper()}",
            hint=f"drop --objective or use --objective {source.objective}",
        )
    limit = source.max_positions
    max_len = settings.max_seq_length or min(512, limit)
    if max_len > limit:
        raise ModelError(
            f"--max-seq-length {max_len} is beyond the model's limit of {limit} tokens",
            hint=f"use --max-seq-length {limit} or less",
        )
    if settings.whole_word_mask and objective != "mlm":
        raise UsageError("--whole-word-mask applies to MLM only")
    recorded = {
        "model": source.name,
        "model_revision": source.revision,
        "method": method.name,
        "objective": objective,
        "settings": {**asdict(settings), "objective": objective, "max_seq_length": max_len},
    }
    if previous is not None:
        _refuse_resume(
            _differences(previous, recorded, ("model", "model_revision", "method", "objective"))
            + _differences(previous.get("settings", {}), recorded["settings"], sorted(recorded["settings"]))
        )

    data = _read_data(train, validation, settings, skip_bad_lines)
    if previous is not None:
        _refuse_resume(
            [
                f"training data ({what})"
                for key, what in (("hash", "its content"), ("validation_hash", "the validation texts"))
                if previous.get("data", {}).get(key) != data.info[key]
            ]
        )
    tokenizer = models.load_tokenizer(source)
    if objective == "mlm" and tokenizer.mask_token_id is None:
        raise ModelError("the tokenizer has no mask token, so MLM cannot train", path=str(source.path))
    spec = TokenizeSpec(objective, max_len, not settings.line_by_line, settings.whole_word_mask)
    cache_root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) if use_cache else None
    t0 = time.perf_counter()
    if not dist.main:
        dist.barrier()  # process 0 tokenizes and fills the cache first; the others then read it
    train_blocks, hit, cache_path = load_or_tokenize(
        data.train_texts, data.info["train_hash"], tokenizer, spec, cache_root
    )
    val_blocks = None
    if data.val_texts:
        val_blocks, _, _ = load_or_tokenize(
            data.val_texts, data.info["validation_hash"], tokenizer, spec, cache_root
        )
    if dist.main:
        dist.barrier()
        ui.info(
            f"train-adapter: {len(data.train_texts):,} training texts -> {len(train_blocks):,} examples,"
            f" {train_blocks.tokens:,} tokens ({'cached' if hit else 'tokenized'} in"
            f" {time.perf_counter() - t0:.1f} s); validation: {data.val_from}"
        )

    torch_device = pick_device(device, dist)
    use_bf16 = (torch_device.type == "cuda") if bf16 is None else bf16
    if use_bf16 and torch_device.type != "cuda":
        raise UsageError("--bf16 needs a CUDA device", hint="drop --bf16 or use --device cuda")
    torch.manual_seed(settings.seed)  # adapter initialisation: the same in every process
    net = models.load_model(source, device=torch_device)
    name = adapter_name or (data.lang.replace("+", "_") if data.lang else "lang")
    trainable_count = models.add_adapter(
        net,
        name,
        method.name,
        reduction_factor=settings.reduction_factor,
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
    )
    if dist.enabled:
        with torch.no_grad():  # start from process 0's weights, as DDP does
            for _, param in _trainable(net):
                torch.distributed.broadcast(param.data, src=0)
    global_batch = settings.batch_size * settings.grad_accum * dist.world
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * len(train_blocks) / global_batch))
    trainer = _Trainer(
        net=net,
        tokenizer=tokenizer,
        objective=objective,
        settings=settings,
        train_blocks=train_blocks,
        val_blocks=val_blocks,
        dist=dist,
        device=torch_device,
        bf16=use_bf16,
        run=run,
        total_steps=total_steps,
        started=started,
    )
    info: dict[str, Any] = {
        "kind": "language adapter" if method.name != "full" else "continued pre-training",
        "command": command,
        **recorded,
        "adapter_name": None if method.name == "full" else name,
        "model_type": source.model_type,
        "source": data.source,
        "lang": data.lang,
        "versions": library_versions(),
        "data": {
            **data.info,
            "tokens": train_blocks.tokens,
            "examples": len(train_blocks),
            "validation_tokens": val_blocks.tokens if val_blocks is not None else 0,
        },
        "trainable_parameters": trainable_count,
        "total_steps": total_steps,
        "steps": 0,
        "best_step": None,
        "best_eval_loss": None,
        "seconds": 0.0,
        "processes": dist.world,
        "device": str(torch_device),
        "bf16": use_bf16,
        "cache": str(cache_path) if cache_path else None,
        "finished": False,
    }
    if previous is not None and run.last_checkpoint.is_dir():
        trainer.restore(runs.load_checkpoint(run.last_checkpoint, device=torch_device))
        if dist.main:
            ui.info(f"train-adapter: resuming {run.path} at step {trainer.step:,} of {total_steps:,}")
    if dist.main:
        runs.start_run_dir(run, force=force)
        runs.write_training_json(run, info)
        ui.info(
            f"train-adapter: {method.name}: {trainable_count:,} trainable parameters; {total_steps:,} steps"
        )
    dist.barrier()

    log = runs.RunLog(run.log, keep_through_step=trainer.step) if dist.main else None
    try:
        tokens_per_second = trainer.loop(log, log_steps, command)
    finally:
        if log is not None:
            log.close()

    # Export the best weights by validation loss (the last ones when there is no validation set).
    if trainer.best_step is not None and trainer.best_step != trainer.step:
        best = runs.load_checkpoint(run.best_checkpoint, device=torch_device, with_optimizer=False)
        _load_weights(net, best.weights)
    net.eval()
    out = run.output(method.name == "full")
    exported = trainer.best_step if trainer.best_step is not None else trainer.step
    info.update(
        steps=trainer.step,
        best_step=exported,
        best_eval_loss=trainer.best_loss,
        exported_step=exported,
        seconds=round(trainer.seconds(), 2),
        tokens_per_second=tokens_per_second,
        first_step_seconds=round(trainer.first_step_seconds or 0.0, 3),  # reading + tokenizing + loading
        finished=True,
    )
    if dist.main:
        if method.name == "full":
            _save_full_model(net, tokenizer, out)
        else:
            models.save_adapter(net, name, out)
        runs.write_model_card(run, info)
        runs.write_training_json(run, info)  # last: a finished training.json means a complete run
        best_text = (
            f"best eval loss {trainer.best_loss:.4f} at step {exported:,}"
            if trainer.best_loss is not None
            else "no validation set"
        )
        ui.info(f"train-adapter: {trainer.step:,} steps, {best_text}; wrote {out}")
    dist.barrier()
    return TrainResult(info=info, model=net, output=out)


def _autocast(device: Any, enabled: bool) -> Any:
    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _all_reduce_grads(params: list[Any], dist: Distributed) -> None:
    """Sum gradients over processes in one flat buffer (each process's loss is globally normalised)."""
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def _resume_command(command: str | None) -> str:
    import shlex

    if not command:
        command = shlex.join(["lrltool", *sys.argv[1:]])
    if "--resume" not in command.split():
        command = f"{command} --resume"
    return command


def _save_full_model(model: Any, tokenizer: Any, out: Path) -> None:
    """A fully trained model as a plain HF folder (safetensors), replacing ``out`` atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("adapters", None)  # no adapters in a fully trained model: keep the config plain
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        from lrltool.streams import replace_dir

        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
