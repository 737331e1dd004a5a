"""Exact, batched pseudo-log-likelihood (PLL) scoring of sentences with a masked language model.

PLL(s) = sum over scored positions i of log P(token_i | s with token_i masked); PPPL = exp(-PLL / N).

How it stays exact and fast:
- one masked copy of the sentence per scored token (as Salazar et al. 2020), nothing approximated;
- copies of many sentences are packed into batches of similar length (sentences sorted by length, so
  padding is minimal; the attention mask hides it);
- the body (``model.roberta`` / ``model.bert``) runs on the batch, its hidden states are gathered at the
  one scored position of each copy, and only those go through the MLM head: a copies x vocabulary matrix,
  never copies x length x vocabulary; log-softmax in float32.

Adapters still apply: they live inside the body's layers (bottleneck, LoRA) or at its embeddings (the
forward half of an invertible adapter); the inverse of an invertible adapter runs as a forward pre-hook on
the output embeddings (``models.load_adapter`` registers it), which this path calls as the full model does.

Variants: ``original`` masks the scored token only; ``within_word_l2r`` (Kauf & Ivanova 2023) also masks
the tokens to its right that belong to the same word (word boundaries from the fast tokenizer's
``word_ids``). Special tokens (``<s>``, ``</s>``, ``[CLS]`` ...) are not scored unless ``paper_compat``.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrltool import ui
from lrltool.errors import InputError, ModelError, UsageError
from lrltool.models.loading import DECODER_MODEL_TYPES, SUPPORTED_MODEL_TYPES, lm_head, max_positions

VARIANTS = ("original", "within_word_l2r")

MLM_MODEL_TYPES = frozenset(SUPPORTED_MODEL_TYPES - DECODER_MODEL_TYPES)
DEFAULT_BATCH_TOKENS = 8192  # copies x padded length per forward pass
HEAD_ROWS = 128  # masked positions per MLM-head call: bounds the rows x vocabulary logits in memory
#: The activations one forward pass may hold (--batch-tokens is capped to fit; see memory_bound_batch_tokens).
MEMORY_BUDGET_BYTES = int(float(os.environ.get("LRLTOOL_PPPL_MEMORY_GB", "4")) * 2**30)
#: A text longer than this many characters per allowed token is cut before it is tokenized (_encode_cut).
PREFIX_CHARS_PER_TOKEN = 32
_WHITESPACE = re.compile(r"\s")
TRIM_EVERY = 4  # batches between returns of freed memory to the OS (each return costs page faults)


@dataclass
class SentenceScore:
    """The PLL of one sentence and what it was computed over."""

    index: int  # position in the input
    pll: float  # sum of the scored tokens' log-probabilities (natural log)
    tokens: int  # scored tokens
    words: int  # whitespace-separated words of the (kept part of the) text
    length: int  # tokens of the model input, special tokens included
    truncated: bool  # the text was longer than max_length and was cut
    token_logprobs: list[tuple[str, float]] | None = None

    @property
    def pppl(self) -> float:
        return math.exp(-self.pll / self.tokens)


@dataclass
class PllResult:
    """Per-sentence scores and the corpus aggregates."""

    sentences: list[SentenceScore]
    variant: str
    paper_compat: bool
    max_length: int
    seconds: float = 0.0

    @property
    def pll(self) -> float:
        return math.fsum(s.pll for s in self.sentences)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.sentences)

    @property
    def words(self) -> int:
        return sum(s.words for s in self.sentences)

    @property
    def truncated(self) -> int:
        return sum(s.truncated for s in self.sentences)

    @property
    def pppl(self) -> float:
        """Corpus (micro) PPPL: exp(-sum PLL / scored tokens)."""
        return math.exp(-self.pll / self.tokens)

    @property
    def pppl_mean(self) -> float:
        """Mean of the per-sentence PPPLs (the number the paper reports)."""
        return math.fsum(s.pppl for s in self.sentences) / len(self.sentences)

    @property
    def pppl_word(self) -> float:
        """Word-normalised PPPL: exp(-sum PLL / words), comparable across tokenizers."""
        return math.exp(-self.pll / self.words)


@dataclass
class _Sentence:
    index: int
    ids: list[int]
    scored: list[int]  # positions scored
    word_ids: list[int | None]
    words: int
    truncated: bool


def mlm_parts(model: Any) -> tuple[Any, Any]:
    """The body (base model) and the MLM head of a masked LM, or a :class:`ModelError` saying why not."""
    config = model.config
    model_type = getattr(config, "model_type", "?")
    if model_type not in MLM_MODEL_TYPES:
        name = type(model).__name__
        if name.endswith("ForCausalLM") or "CausalLM" in " ".join(config.architectures or []):
            raise ModelError(
                f"pseudo-perplexity is defined for masked language models; {model_type} is a decoder",
                hint="give --task mlm an encoder (XLM-R, mBERT); a decoder has ordinary perplexity instead",
            )
        raise ModelError(
            f"pseudo-perplexity is not supported for model type '{model_type}'",
            hint=f"use a masked LM of type {', '.join(sorted(MLM_MODEL_TYPES))}",
        )
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    try:
        head = lm_head(model)
    except ModelError:
        head = None
    if head is None or body is None:
        raise ModelError(
            f"{type(model).__name__} has no masked-LM head",
            hint="load the model with its MLM head (XLMRobertaForMaskedLM, BertForMaskedLM)",
        )
    return body, head


PAPER_MAX_LENGTH = (
    512  # get_pppl_flores_adapter.py:34: tokenizer.encode(..., truncation=True, max_length=512)
)
PAPER_WORD_SPLIT = 99  # get_pppl_flores_adapter.py:68-74 split_long_words, applied to tha_Thai only (:95-96)
PAPER_WORD_SPLIT_LANGS = frozenset({"tha_Thai"})


def split_long_words(text: str, max_chars: int = PAPER_WORD_SPLIT) -> str:
    """Every whitespace word longer than ``max_chars`` characters cut into pieces of ``max_chars``, the
    words joined by single spaces (what the paper's PPPL script did to Thai, which writes no spaces)."""
    words = text.split()
    return " ".join(
        " ".join(word[i : i + max_chars] for i in range(0, len(word), max_chars))
        if len(word) > max_chars
        else word
        for word in words
    )


def default_max_length(model: Any, tokenizer: Any) -> int:
    """The longest input the model's position embeddings allow (and the tokenizer declares)."""
    limit = max_positions(model.config.model_type, model.config.to_dict())
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < limit:
        limit = declared
    return limit


def _tokenize(
    tokenizer: Any, texts: Sequence[str], *, max_length: int, paper_compat: bool
) -> list[_Sentence]:
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            "pseudo-perplexity needs a fast tokenizer (word boundaries come from its word_ids)",
            hint="save the model with a tokenizer.json",
        )
    if tokenizer.mask_token_id is None:
        raise ModelError("the tokenizer has no mask token", hint="give a masked language model")
    for index, text in enumerate(texts):
        if not text.split():
            raise InputError(f"text {index + 1} is empty", hint="remove empty texts from the evaluation set")
    encoded = _encode_cut(tokenizer, texts, max_length)
    sample_of_row = encoded["overflow_to_sample_mapping"]
    sentences: list[_Sentence] = []
    kept_end: list[int] = []
    seen: set[int] = set()
    for row, index in enumerate(sample_of_row):
        if index in seen:
            sentences[-1].truncated = True
            continue
        seen.add(index)
        ids = encoded["input_ids"][row]
        special = encoded["special_tokens_mask"][row]
        if all(special):
            raise InputError(
                f"text {index + 1} has no tokens to score",
                hint="remove empty texts from the evaluation set",
            )
        scored = [i for i in range(len(ids)) if paper_compat or not special[i]]
        offsets = encoded["offset_mapping"][row]
        kept_end.append(max(end for (_, end), s in zip(offsets, special, strict=True) if not s))
        sentences.append(_Sentence(index, ids, scored, encoded.word_ids(row), words=0, truncated=False))
    for sentence, end in zip(sentences, kept_end, strict=True):
        text = texts[sentence.index]
        # Words of the part that was scored: a cut text counts only the words it kept.
        sentence.words = len((text[:end] if sentence.truncated else text).split())
    return sentences


def _encode_cut(tokenizer: Any, texts: Sequence[str], max_length: int) -> Any:
    """The texts tokenized and cut at ``max_length`` tokens, a cut text in several rows (its overflow).

    A long text is cut first (a 50 MB line must not become 100,000 overflow rows): a prefix of
    ``PREFIX_CHARS_PER_TOKEN x max_length`` characters that ends before a whitespace, so that every word
    in it is whole and is tokenized as in the full text (the pre-tokenizers of the MLM types split at
    whitespace). If the prefix already yields more than ``max_length`` tokens, its first ``max_length``
    are the full text's, and it was cut; otherwise the prefix doubles (very long unknown words), up to
    the whole text. The same rows, in far less memory and time. (A text without whitespace after the
    prefix, e.g. unsegmented Thai, is one pre-token and is tokenized whole.)
    """
    budget = PREFIX_CHARS_PER_TOKEN * max_length
    cut = []
    for text in texts:
        while len(text) > budget:
            prefix = _whitespace_prefix(text, budget)
            if prefix is None or _longer_than(tokenizer, prefix, max_length):
                text = prefix if prefix is not None else text
                break
            budget *= 2
        cut.append(text)
        budget = PREFIX_CHARS_PER_TOKEN * max_length
    return tokenizer(
        cut,
        truncation=True,
        max_length=max_length,
        return_overflowing_tokens=True,  # to notice truncation: a cut text comes back in several rows
        return_special_tokens_mask=True,
        return_offsets_mapping=True,
    )


def _whitespace_prefix(text: str, chars: int) -> str | None:
    """``text`` up to its first whitespace at or after ``chars`` characters (None: none there)."""
    match = _WHITESPACE.search(text, chars)
    return text[: match.start()] if match is not None else None


def _longer_than(tokenizer: Any, text: str, max_length: int) -> bool:
    """Whether ``text`` is more than ``max_length`` tokens, special tokens included."""
    ids = tokenizer(text, truncation=True, max_length=max_length + 1)["input_ids"]
    return len(ids) > max_length


def _mask_positions(sentence: _Sentence, position: int, variant: str) -> list[int]:
    """Positions masked in the copy that scores ``position``."""
    if variant == "original":
        return [position]
    word = sentence.word_ids[position]
    if word is None:  # a special token (scored only with paper_compat) is its own word
        return [position]
    return [
        q for q in range(position, len(sentence.ids)) if sentence.word_ids[q] == word
    ]  # within_word_l2r: this token and the rest of its word to the right


def memory_bound_batch_tokens(config: Any, length: int, element_bytes: int) -> int:
    """The most copies x length per forward pass whose activations fit in :data:`MEMORY_BUDGET_BYTES`.

    Per token of a layer's forward pass (no gradients) at most: a few hidden-size tensors (input,
    attention output, residuals), the feed-forward's intermediate and the attention scores of every
    head against ``length`` positions (softmax input and output). The user's --batch-size and
    --batch-tokens only ever lower it; the result does not depend on it.
    """
    hidden = int(getattr(config, "hidden_size", 768))
    intermediate = int(getattr(config, "intermediate_size", 4 * hidden))
    heads = int(getattr(config, "num_attention_heads", 12))
    per_token = (4 * hidden + intermediate + 2 * heads * length) * element_bytes
    return max(length, MEMORY_BUDGET_BYTES // per_token)


def _batches(
    sentences: list[_Sentence], *, batch_tokens: int, batch_size: int | None
) -> list[list[tuple[int, int]]]:
    """(sentence number, scored position) copies grouped into batches; longest sentences first."""
    order = sorted(range(len(sentences)), key=lambda k: -len(sentences[k].ids))
    batches: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    width = 0
    for k in order:
        length = len(sentences[k].ids)
        for position in sentences[k].scored:
            width = max(width, length) if current else length
            full = (len(current) + 1) * width > batch_tokens
            if current and (full or (batch_size is not None and len(current) >= batch_size)):
                batches.append(current)
                current, width = [], length
            current.append((k, position))
    if current:
        batches.append(current)
    return batches


def _release_freed_memory() -> None:
    """Hand freed heap memory back to the OS (glibc only; elsewhere nothing to do).

    Batches of varying shapes leave glibc's arenas fragmented: without this, RSS grew from 0.8 to 1.5 GB
    over 400 sentences of the 250k-vocabulary benchmark model; with it, it stays flat (measured). After
    every batch it cost 8% in page faults, hence only every TRIM_EVERY batches.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): no malloc_trim
        return None


def score_pll(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    variant: str = "original",
    paper_compat: bool = False,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    batch_size: int | None = None,
    max_length: int | None = None,
    device: Any = None,
    token_logprobs: bool = False,
) -> PllResult:
    """Score ``texts`` with a masked LM and return per-sentence PLLs and the corpus PPPLs.

    Reads: a ``*ForMaskedLM`` model (adapters active as the caller set them up; put in eval mode, and
    moved to ``device`` if one is given) and its fast tokenizer. ``batch_tokens`` bounds copies x padded
    length per forward pass, ``batch_size`` the copies per pass; neither changes the result. Texts longer
    than ``max_length`` tokens (default: what the model's positions allow) are cut and counted as
    truncated. ``token_logprobs`` keeps (token, log-probability) pairs per sentence. Shows a progress bar
    on stderr (sentences, tokens/s) when progress is on.

    Refuses (ModelError): a decoder or other non-MLM model, a slow tokenizer; (InputError): no texts,
    a text with no token to score; (UsageError): an unknown variant, a max_length out of range.
    """
    if variant not in VARIANTS:
        raise UsageError(f"unknown variant '{variant}'", hint=f"choose one of {', '.join(VARIANTS)}")
    if not texts:
        raise InputError("nothing to evaluate: no texts", hint="give at least one text record")
    body, head = mlm_parts(model)
    limit = default_max_length(model, tokenizer)
    if max_length is None:
        max_length = limit
    elif not 3 <= max_length <= limit:
        raise UsageError(
            f"max length {max_length} is out of range",
            hint=f"give a value from 3 to {limit} (what the model's positions allow)",
        )
    if batch_tokens < 1 or (batch_size is not None and batch_size < 1):
        raise UsageError("batch sizes must be positive", hint="give --batch-size 1 or more")
    if device is not None:
        model.to(device)
    model.eval()

    started = time.perf_counter()
    sentences = _tokenize(tokenizer, texts, max_length=max_length, paper_compat=paper_compat)
    longest = max(len(sentence.ids) for sentence in sentences)
    bound = memory_bound_batch_tokens(model.config, longest, next(model.parameters()).element_size())
    if batch_tokens > bound:
        ui.info(
            f"pseudo-perplexity: at most {bound:,} tokens per forward pass (of {batch_tokens:,} asked),"
            f" to stay within {MEMORY_BUDGET_BYTES / 2**30:.1f} GiB of activations ($LRLTOOL_PPPL_MEMORY_GB)"
        )
        batch_tokens = bound
    batches = _batches(sentences, batch_tokens=batch_tokens, batch_size=batch_size)
    scorer = _Scorer(body, head, tokenizer, sentences, variant, keep_tokens=token_logprobs)
    with ui.progress("pseudo-perplexity", total=scorer.total, unit="tokens") as bar:
        for batch in batches:
            scorer.score(batch)
            rate = scorer.copies_done / max(time.perf_counter() - started, 1e-9)
            sentences_done = f"{scorer.sentences_done:,}/{len(sentences):,}"
            bar.update(completed=scorer.copies_done, sentences=sentences_done, tokens_per_s=rate)
    return PllResult(
        sentences=scorer.results(),
        variant=variant,
        paper_compat=paper_compat,
        max_length=max_length,
        seconds=time.perf_counter() - started,
    )


class _Scorer:
    """The PLL sums of the sentences, filled one batch of masked copies at a time."""

    def __init__(
        self,
        body: Any,
        head: Any,
        tokenizer: Any,
        sentences: list[_Sentence],
        variant: str,
        *,
        keep_tokens: bool,
    ) -> None:
        import torch

        self.body, self.head, self.tokenizer = body, head, tokenizer
        self.sentences, self.variant, self.keep_tokens = sentences, variant, keep_tokens
        self.device = next(body.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.id_rows = [torch.tensor(s.ids, dtype=torch.long) for s in sentences]
        self.sums = [0.0] * len(sentences)
        self.remaining = [len(s.scored) for s in sentences]
        self.kept: list[dict[int, float]] = [{} for _ in sentences]
        self.total = sum(self.remaining)
        self.copies_done = self.sentences_done = self.batches_done = 0

    def score(self, batch: list[tuple[int, int]]) -> None:
        """Score one batch of (sentence, position) copies and add each log-probability to its sentence."""
        import torch

        sentences = self.sentences
        width = max(len(sentences[k].ids) for k, _ in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        mask_rows: list[int] = []
        mask_cols: list[int] = []
        for row, (k, position) in enumerate(batch):
            length = len(sentences[k].ids)
            input_ids[row, :length] = self.id_rows[k]
            attention[row, :length] = 1
            for q in _mask_positions(sentences[k], position, self.variant):
                mask_rows.append(row)
                mask_cols.append(q)
        positions = torch.tensor([p for _, p in batch], dtype=torch.long)
        targets = input_ids[torch.arange(len(batch)), positions]
        input_ids[mask_rows, mask_cols] = self.tokenizer.mask_token_id
        with torch.inference_mode():
            logprobs = self._logprobs(input_ids, attention, positions, targets, width)
        for (k, position), value in zip(batch, logprobs.tolist(), strict=True):
            self.sums[k] += value
            if self.keep_tokens:
                self.kept[k][position] = value
            self.remaining[k] -= 1
            self.sentences_done += self.remaining[k] == 0
        self.copies_done += len(batch)
        self.batches_done += 1
        if self.batches_done % TRIM_EVERY == 0:
            _release_freed_memory()

    def _logprobs(self, input_ids: Any, attention: Any, positions: Any, targets: Any, width: int) -> Any:
        """log P(target | masked copy) of each row: the body on the batch, the head at masked rows only."""
        import torch

        device, rows = self.device, len(positions)
        hidden = self.body(input_ids=input_ids.to(device), attention_mask=attention.to(device))[0]
        if hidden.shape[1] != width:
            raise ModelError(
                "the model's output is not aligned with its input (a prompt-tuning adapter?)",
                hint="score with a bottleneck or LoRA adapter",
            )
        at_mask = hidden[torch.arange(rows, device=device), positions.to(device)]
        logprobs = torch.empty(rows, dtype=torch.float32)
        for start in range(0, rows, HEAD_ROWS):
            # 3-D input: an invertible adapter's inverse (the output-embedding pre-hook) expects it.
            logits = self.head(at_mask[start : start + HEAD_ROWS].unsqueeze(0))[0].float()
            gold = targets[start : start + HEAD_ROWS].to(device).unsqueeze(1)
            picked = logits.gather(1, gold).squeeze(1)
            # log-sum-exp in place: one rows x vocabulary buffer instead of log_softmax's two.
            largest = logits.amax(dim=1, keepdim=True)
            normalizer = logits.sub_(largest).exp_().sum(dim=1).log_().add_(largest.squeeze(1))
            logprobs[start : start + HEAD_ROWS] = (picked - normalizer).cpu()
            del logits
        return logprobs

    def results(self) -> list[SentenceScore]:
        results = []
        for k, s in enumerate(self.sentences):
            pairs = None
            if self.keep_tokens:
                names = self.tokenizer.convert_ids_to_tokens(s.ids)
                pairs = [(names[p], self.kept[k][p]) for p in s.scored]
            results.append(
                SentenceScore(
                    index=s.index,
                    pll=self.sums[k],
                    tokens=len(s.scored),
                    words=s.words,
                    length=len(s.ids),
                    truncated=s.truncated,
                    token_logprobs=pairs,
                )
            )
        return results
