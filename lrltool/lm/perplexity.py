"""Exact, batched perplexity of sentences under a causal (decoder) language model, with or without an adapter.

log P(s) = sum over positions i >= 1 of log P(token_i | token_0 .. token_{i-1}), with token_0 the tokenizer's
BOS token when it has one (then every token of the text is scored; without a BOS the first is not);
PPL = exp(-log P / N). Reported like pseudo-perplexity (:mod:`lrltool.lm.pppl`): corpus (micro), mean of
the per-sentence perplexities, and per whitespace word (exp(-log P / words): comparable across tokenizers).

How it stays exact and fast:
- sentences are sorted by length and packed into right-padded batches of at most ``batch_tokens`` rows x
  width (the attention mask hides the padding; right padding leaves every real token's position as in the
  unpadded sentence);
- the body (``model.model``, adapters inside) runs once per batch; its hidden states are gathered at the
  positions followed by a real token and only those go through the LM head (``HEAD_ROWS`` at a time): no
  batch x length x vocabulary logits; log-softmax in float32;
- no key-value cache (``use_cache=False``): adapters 1.3.0's LLaMA attention ignores ``past_key_values``
  after ``adapters.init``, and scoring a whole sentence needs none.

The inverse of an invertible adapter runs as a forward pre-hook on the output embeddings (the LM head),
which this path calls as the full model does. Checked against an independent loop (full logits of the
plain HF model, one sentence at a time) in tests/test_eval_clm.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrltool import ui
from lrltool.errors import InputError, ModelError, UsageError
from lrltool.models.loading import DECODER_MODEL_TYPES, lm_head, max_positions

DEFAULT_BATCH_TOKENS = 8192  # rows x padded length per forward pass
HEAD_ROWS = 512  # scored positions per LM-head call: bounds the rows x vocabulary logits in memory


@dataclass
class SentencePerplexity:
    """The log-probability of one sentence and what it was computed over."""

    index: int  # position in the input
    logprob: float  # sum of the scored tokens' log-probabilities (natural log)
    tokens: int  # scored tokens
    words: int  # whitespace-separated words of the (kept part of the) text
    truncated: bool

    @property
    def ppl(self) -> float:
        return math.exp(-self.logprob / self.tokens)


@dataclass
class PerplexityResult:
    """Per-sentence scores and the corpus aggregates."""

    sentences: list[SentencePerplexity]
    max_length: int
    bos: bool  # a BOS token was prepended (so every token of the text is scored)
    seconds: float = 0.0

    @property
    def logprob(self) -> float:
        return math.fsum(s.logprob for s in self.sentences)

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
    def ppl(self) -> float:
        """Corpus (micro) perplexity: exp(-sum log P / scored tokens)."""
        return math.exp(-self.logprob / self.tokens)

    @property
    def ppl_mean(self) -> float:
        """Mean of the per-sentence perplexities."""
        return math.fsum(s.ppl for s in self.sentences) / len(self.sentences)

    @property
    def ppl_word(self) -> float:
        """Word-normalised perplexity: exp(-sum log P / words), comparable across tokenizers."""
        return math.exp(-self.logprob / self.words)


def _encode(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[list[list[int]], list[int], list[bool], bool]:
    """Token ids of each text (BOS first when the tokenizer has one, no EOS), cut to ``max_length``;
    the words of the kept part of each text; which were cut; whether a BOS was prepended."""
    bos = tokenizer.bos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    rows, words, cut = [], [], []
    for index, (ids, offsets) in enumerate(zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)):
        ids = ([bos] if bos is not None else []) + list(ids)
        if len(ids) < 2:
            raise InputError(
                f"text {index + 1} has no token to score",
                hint="remove empty texts (a text needs a token after the BOS, or two without one)",
            )
        kept = min(len(ids), max_length)
        last = kept - (1 if bos is not None else 0)  # tokens of the text kept
        end = offsets[last - 1][1] if kept < len(ids) else len(texts[index])
        rows.append(ids[:kept])
        words.append(len(texts[index][:end].split()))
        cut.append(kept < len(ids))
    return rows, words, cut, bos is not None


def _batches(lengths: list[int], *, batch_tokens: int, batch_size: int | None) -> list[list[int]]:
    """Sentence indices grouped into batches of similar length, longest first."""
    order = sorted(range(len(lengths)), key=lambda k: -lengths[k])
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for k in order:
        width = max(width, lengths[k]) if current else lengths[k]
        full = (len(current) + 1) * width > batch_tokens
        if current and (full or (batch_size is not None and len(current) >= batch_size)):
            batches.append(current)
            current, width = [], lengths[k]
        current.append(k)
    if current:
        batches.append(current)
    return batches


def _batch_logprobs(body: Any, head: Any, rows: list[list[int]], pad_id: int) -> list[float]:
    """The summed log-probability of each row's tokens after the first, the LM head only where scored."""
    import torch

    device = next(body.parameters()).device
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, : len(row)] = 1
    input_ids, attention = input_ids.to(device), attention.to(device)
    hidden = body(input_ids=input_ids, attention_mask=attention, use_cache=False)[0]
    scored = attention[:, 1:].bool()  # position i predicts token i + 1 where that token is real
    states = hidden[:, :-1][scored]
    targets = input_ids[:, 1:][scored]
    owner = torch.arange(len(rows), device=device)[:, None].expand_as(scored)[scored]
    picked = torch.empty(len(targets), dtype=torch.float32, device=device)
    for start in range(0, len(targets), HEAD_ROWS):
        # 3-D input: an invertible adapter's inverse (the output-embedding pre-hook) expects it.
        logits = head(states[start : start + HEAD_ROWS].unsqueeze(0))[0].float()
        gold = targets[start : start + HEAD_ROWS].unsqueeze(1)
        picked[start : start + HEAD_ROWS] = logits.gather(1, gold).squeeze(1) - logits.logsumexp(dim=1)
        del logits
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device).index_add_(0, owner, picked.double())
    return sums.cpu().tolist()


def score_clm(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    batch_size: int | None = None,
    max_length: int | None = None,
) -> PerplexityResult:
    """Score ``texts`` with a causal LM (``*ForCausalLM``, adapters active as the caller set them up).

    ``batch_tokens`` bounds rows x padded length per forward pass, ``batch_size`` the rows; neither changes
    the result. Texts longer than ``max_length`` tokens (default: the model's positions, or the tokenizer's
    declared limit if lower) are cut and counted as truncated. Shows progress on stderr.

    Refuses (ModelError): an encoder; (InputError): no texts, a text with no token to score;
    (UsageError): batch sizes below 1, a max_length out of range.
    """
    if model.config.model_type not in DECODER_MODEL_TYPES:
        raise ModelError(
            f"perplexity is defined for causal language models; {model.config.model_type} is an encoder",
            hint="give --task clm a decoder (LLaMA-style); an encoder has pseudo-perplexity (--task mlm)",
        )
    if not texts:
        raise InputError("nothing to evaluate: no texts", hint="give at least one text record")
    limit = max_positions(model.config.model_type, model.config.to_dict())
    declared = getattr(tokenizer, "model_max_length", None)
    limit = declared if isinstance(declared, int) and 0 < declared < limit else limit
    if max_length is None:
        max_length = limit
    elif not 2 <= max_length <= limit:
        raise UsageError(f"max length {max_length} is out of range", hint=f"give a value from 2 to {limit}")
    if batch_tokens < 1 or (batch_size is not None and batch_size < 1):
        raise UsageError("batch sizes must be positive", hint="give --batch-size 1 or more")
    model.eval()
    started = time.perf_counter()
    rows, words, cut, bos = _encode(tokenizer, texts, max_length)
    lengths = [len(r) for r in rows]
    sums = [0.0] * len(rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    body, head = model.base_model, lm_head(model)
    import torch

    with ui.progress("perplexity", total=len(rows), unit="sentences") as bar, torch.inference_mode():
        for batch in _batches(lengths, batch_tokens=batch_tokens, batch_size=batch_size):
            for k, value in zip(
                batch, _batch_logprobs(body, head, [rows[k] for k in batch], pad_id), strict=True
            ):
                sums[k] = value
            bar.update(advance=len(batch))
    sentences = [
        SentencePerplexity(k, sums[k], lengths[k] - 1, words[k], truncated=cut[k]) for k in range(len(rows))
    ]
    return PerplexityResult(sentences, max_length=max_length, bos=bos, seconds=time.perf_counter() - started)
