"""``eval --task mlm`` and ``eval --task clm``: (pseudo-)perplexity of text records under a language model
and its language adapter.

mlm: a masked LM, scored with :func:`lrltool.lm.pppl.score_pll`: three :class:`~lrltool.records.MetricRecord`
(``pppl`` corpus/micro, ``pppl_mean`` the paper's mean per-sentence PPPL, ``pppl_word`` word-normalised).
clm: a causal LM (decoder), scored with :func:`lrltool.lm.perplexity.score_clm`: ``ppl``, ``ppl_mean``,
``ppl_word``. The caller writes them; ``--per-sentence`` writes one record per text here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lrltool import devices, models, ui
from lrltool.errors import InputError, LanguageError, ModelError, UsageError
from lrltool.languages import resolve_language
from lrltool.lm.perplexity import PerplexityResult, score_clm
from lrltool.lm.pppl import (
    DEFAULT_BATCH_TOKENS,
    PAPER_MAX_LENGTH,
    PAPER_WORD_SPLIT,
    PAPER_WORD_SPLIT_LANGS,
    PllResult,
    default_max_length,
    score_pll,
    split_long_words,
)
from lrltool.records import METHODS, MetricRecord
from lrltool.streams import Record, Stats, read_records, require, write_records
from lrltool.tasks import TASKS


def evaluate_mlm(
    *,
    model: str | None,
    input_path: str = "-",
    adapter: str | None = None,
    revision: str | None = None,
    variant: str = "original",
    paper_compat: bool = False,
    per_sentence: str | None = None,
    token_logprobs: bool = False,
    max_length: int | None = None,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    lang: str | None = None,
    method: str | None = None,
    source: str | None = None,
    skip_bad_lines: bool = False,
    stats: Stats | None = None,
) -> list[MetricRecord]:
    """Pseudo-perplexity of the text records in ``input_path`` under ``model`` (+ ``adapter``).

    Reads: JSONL text records (``text``; ``lang``, ``id`` used when present), the model (folder or hub
    id, validated by models.resolve_model) and an adapter folder, a train-adapter run or a hub adapter;
    a `full` run given as the adapter has its model/ scored instead of ``model``.
    Returns the three metric records; writes, with ``per_sentence``, one record per text (id, pll, pppl,
    tokens, words, truncated; token log-probs with ``token_logprobs``) atomically. ``lang``: the records'
    (one language) or ``--lang``; ``method``/``source``: from the run's training.json unless given.
    ``stats`` (the command's summary) gets the records read and the figures of the scoring.

    Refuses: no --model (UsageError); a decoder model, an adapter or `full` run made from another base
    model (ModelError); an empty evaluation set, a record without text, records of several languages
    without --lang (InputError).
    """
    if model is None:
        raise UsageError("--task mlm needs --model", hint="give a model folder or hub id with --model")
    torch_device, torch_dtype = devices.resolve_device(device), devices.resolve_dtype(dtype)  # misuse first
    stats = stats if stats is not None else Stats("eval mlm")
    editions: set[str] = set()
    texts, ids, langs, splits = _read_texts(
        input_path, skip_bad_lines=skip_bad_lines, stats=stats, editions=editions
    )
    language = _language(lang, langs, input_path)
    model_source = models.resolve_model(model, revision=revision)
    if model_source.is_decoder:
        raise ModelError(
            f"pseudo-perplexity is defined for masked language models; {model} is a decoder"
            f" ({model_source.model_type})",
            hint="give --task mlm an encoder (XLM-R, mBERT); a decoder has ordinary perplexity instead",
        )
    adapter_dir = models.resolve_adapter(adapter) if adapter is not None else None
    method, source = models.adaptation_of(
        model_source.path, adapter_dir, method=method, source=source, known=METHODS
    )
    scored_source = model_source
    if adapter_dir is not None and not (adapter_dir / models.ADAPTER_CONFIG).is_file():
        # A `full` run (continued pre-training) has a whole model, not an adapter: score that model.
        scored_source = _full_run_model(adapter_dir, model_source)
        adapter_dir = None

    tokenizer = models.load_tokenizer(scored_source)
    lm = models.load_model(scored_source, head="lm", dtype=torch_dtype)
    head = False
    if adapter_dir is not None:
        models.load_adapter(lm, adapter_dir)
        head = models.load_head(lm, adapter_dir)  # the head transform trained with it (--train-head)
    models.place(lm, device=torch_device, dtype=torch_dtype)  # adapters included
    protocol = _paper_protocol(
        paper_compat, language, max_length, lm, tokenizer, head=head, editions=editions
    )
    if protocol["split_long_words"]:
        texts = [split_long_words(text, PAPER_WORD_SPLIT) for text in texts]
    max_length = protocol.pop("max_length")
    result = score_pll(
        lm,
        tokenizer,
        texts,
        variant=variant,
        paper_compat=paper_compat,
        batch_tokens=batch_tokens or DEFAULT_BATCH_TOKENS,
        batch_size=batch_size,
        max_length=max_length,
        token_logprobs=token_logprobs,
    )
    if result.truncated:
        ui.warn(
            f"{result.truncated:,} of {len(texts):,} texts were longer than {result.max_length} tokens;"
            " only their first part was scored (details.truncated counts them; see --max-length)"
        )
    if per_sentence is not None:
        _write_per_sentence(per_sentence, result, ids, language)
    stats.extra.update(
        tokens=result.tokens,
        tokens_per_s=round(result.tokens / max(result.seconds, 1e-9), 1),
        pppl_mean=round(result.pppl_mean, 4),
    )
    records = _records(result, texts, language, model_source, adapter, method, source, splits, variant,
                       paper_compat, torch_dtype)  # fmt: skip
    for record in records:
        record.settings.update(protocol)
    return records


def _paper_protocol(
    paper_compat: bool,
    language: str | None,
    max_length: int | None,
    model: Any,
    tokenizer: Any,
    *,
    head: bool,
    editions: set[str],
) -> dict[str, Any]:
    """The settings of the paper's PPPL script that ``--paper-compat`` adds (recorded in the records):
    special tokens scored, inputs cut at 512 tokens (unless --max-length), Thai words split at 99
    characters; with what was scored whatever the protocol (the adapter's saved head, the FLORES edition)."""
    limit = default_max_length(model, tokenizer)
    if paper_compat and max_length is None:
        max_length = min(PAPER_MAX_LENGTH, limit)
    return {
        "score_special_tokens": paper_compat,
        "split_long_words": PAPER_WORD_SPLIT if paper_compat and language in PAPER_WORD_SPLIT_LANGS else None,
        "max_length": max_length,
        "adapter_head": head,  # the MLM head saved with the adapter was used
        "flores_edition": ",".join(sorted(editions)) or None,  # which FLORES (fetch flores meta.edition)
    }


def evaluate_clm(
    *,
    model: str | None,
    input_path: str = "-",
    adapter: str | None = None,
    revision: str | None = None,
    per_sentence: str | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
    batch_tokens: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    lang: str | None = None,
    method: str | None = None,
    source: str | None = None,
    skip_bad_lines: bool = False,
    stats: Stats | None = None,
) -> list[MetricRecord]:
    """Perplexity of the text records in ``input_path`` under the causal LM ``model`` (+ ``adapter``).

    Reads and refuses as :func:`evaluate_mlm` does, with the roles swapped: an encoder is refused
    (ModelError). Returns the three metric records (``ppl``, ``ppl_mean``, ``ppl_word``); writes, with
    ``per_sentence``, one record per text (id, logprob, ppl, tokens, words, truncated) atomically.
    """
    if model is None:
        raise UsageError(
            "--task clm needs --model", hint="give a decoder model folder or hub id with --model"
        )
    stats = stats if stats is not None else Stats("eval clm")
    texts, ids, langs, splits = _read_texts(input_path, skip_bad_lines=skip_bad_lines, stats=stats)
    language = _language(lang, langs, input_path)
    model_source = models.resolve_model(model, revision=revision)
    if not model_source.is_decoder:
        raise ModelError(
            f"perplexity (--task clm) needs a causal language model; {model} is an encoder"
            f" ({model_source.model_type})",
            hint="give an encoder --task mlm (pseudo-perplexity) instead",
        )
    adapter_dir = models.resolve_adapter(adapter) if adapter is not None else None
    method, source = models.adaptation_of(
        model_source.path, adapter_dir, method=method, source=source, known=METHODS
    )
    scored_source = model_source
    if adapter_dir is not None and not (adapter_dir / models.ADAPTER_CONFIG).is_file():
        scored_source = _full_run_model(adapter_dir, model_source)  # a `full` run: its whole model
        adapter_dir = None
    torch_device, torch_dtype = devices.resolve_device(device), devices.resolve_dtype(dtype)
    tokenizer = models.load_tokenizer(scored_source)
    lm = models.load_model(scored_source, head="lm", dtype=torch_dtype)
    if adapter_dir is not None:
        models.load_adapter(lm, adapter_dir)
    models.place(lm, device=torch_device, dtype=torch_dtype)
    result = score_clm(
        lm,
        tokenizer,
        texts,
        batch_tokens=batch_tokens or DEFAULT_BATCH_TOKENS,
        batch_size=batch_size,
        max_length=max_length,
    )
    if result.truncated:
        ui.warn(
            f"{result.truncated:,} of {len(texts):,} texts were longer than {result.max_length} tokens;"
            " only their first part was scored (details.truncated counts them; see --max-length)"
        )
    if per_sentence is not None:
        with write_records(per_sentence) as writer:
            for s in result.sentences:
                writer.write(
                    {
                        "id": ids[s.index],
                        "lang": language,
                        "logprob": s.logprob,
                        "ppl": s.ppl,
                        "tokens": s.tokens,
                        "words": s.words,
                        "truncated": s.truncated,
                    }
                )
    stats.extra.update(tokens=result.tokens, ppl_mean=round(result.ppl_mean, 4))
    return _clm_records(result, texts, language, model_source, adapter, method, source, splits, torch_dtype)


def _clm_records(
    result: PerplexityResult,
    texts: list[str],
    language: str | None,
    model_source: Any,
    adapter: str | None,
    method: str,
    source: str | None,
    splits: set[str],
    torch_dtype: Any,
) -> list[MetricRecord]:
    details = {
        "sentences": len(texts),
        "tokens": result.tokens,
        "words": result.words,
        "truncated": result.truncated,
        "logprob": result.logprob,
        "bos": result.bos,
        "seconds": round(result.seconds, 3),
    }
    settings = {
        "max_length": result.max_length,
        "data_hash": _data_hash(texts),
        "model_revision": model_source.revision,
        "dtype": devices.dtype_name(torch_dtype),
        "kv_cache": False,
    }
    values = {"ppl": result.ppl, "ppl_mean": result.ppl_mean, "ppl_word": result.ppl_word}
    return [
        MetricRecord(
            metric=name,
            value=values[name],
            lang=language,
            model=model_source.name,
            adapter=adapter,
            method=method,
            source=source,
            task="clm",
            split=splits.pop() if len(splits) == 1 else "test",
            n=len(texts),
            details=details,
            settings=settings,
        )
        for name in TASKS["clm"].metrics
    ]


def _records(
    result: PllResult,
    texts: list[str],
    language: str | None,
    model_source: Any,
    adapter: str | None,
    method: str,
    source: str | None,
    splits: set[str],
    variant: str,
    paper_compat: bool,
    torch_dtype: Any,
) -> list[MetricRecord]:
    """The three metric records of a scoring: every number with the settings and data behind it."""
    common = dict(
        lang=language,
        model=model_source.name,
        adapter=adapter,
        method=method,
        source=source,
        task="mlm",
        split=splits.pop() if len(splits) == 1 else "test",
        n=len(texts),
    )
    details = {
        "sentences": len(texts),
        "tokens": result.tokens,
        "words": result.words,
        "truncated": result.truncated,
        "pll": result.pll,
        "seconds": round(result.seconds, 3),
    }
    settings = {
        "variant": variant,
        "paper_compat": paper_compat,
        "max_length": result.max_length,
        "data_hash": _data_hash(texts),
        "model_revision": model_source.revision,
        "dtype": devices.dtype_name(torch_dtype),
    }
    values = {"pppl": result.pppl, "pppl_mean": result.pppl_mean, "pppl_word": result.pppl_word}
    return [
        MetricRecord(metric=name, value=values[name], details=details, settings=settings, **common)
        for name in TASKS["mlm"].metrics
    ]


def _read_texts(
    input_path: str, *, skip_bad_lines: bool, stats: Stats, editions: set[str] | None = None
) -> tuple[list[str], list[str], set[str], set[str]]:
    texts: list[str] = []
    ids: list[str] = []
    langs: set[str] = set()
    splits: set[str] = set()
    reader = read_records(input_path, skip_bad_lines=skip_bad_lines, stats=stats)
    for record in reader:
        try:
            text = require(record, "text", str, what="text record")
            if not text.split():
                raise InputError("text record has an empty 'text'", hint="remove empty texts")
        except InputError as exc:
            reader.reject(exc)
            continue
        texts.append(text)
        ids.append(str(record.get("id", reader.line)))
        if isinstance(record.get("lang"), str):
            langs.add(record["lang"])
        meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
        split = record.get("split", meta.get("split"))
        if isinstance(split, str):
            splits.add(split)
        if editions is not None and isinstance(meta.get("edition"), str):
            editions.add(
                meta["edition"]
            )  # which FLORES (fetch flores): flores200, flores_plus, facebook/flores
    if not texts:
        raise InputError(
            "nothing to evaluate: no text records",
            hint="give the JSONL text records that 'fetch flores' writes",
            path=reader.name,
        )
    return texts, ids, langs, splits


def _language(lang: str | None, found: set[str], where: str) -> str | None:
    if lang is not None:
        return resolve_language(lang).code
    if len(found) > 1:
        raise InputError(
            f"the records mix languages ({', '.join(sorted(found)[:4])})",
            hint="evaluate one language at a time, or give --lang to label them all as one",
            path=where,
        )
    if not found:
        return None
    [code] = found
    try:
        return resolve_language(code).code
    except LanguageError:
        return code  # a language outside the registry: keep the records' own code


def _data_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return "sha256:" + digest.hexdigest()


def _write_per_sentence(path: str, result: PllResult, ids: list[str], language: str | None) -> None:
    with write_records(path) as writer:
        for sentence in result.sentences:
            row: Record = {
                "id": ids[sentence.index],
                "lang": language,
                "pll": sentence.pll,
                "pppl": sentence.pppl,
                "tokens": sentence.tokens,
                "words": sentence.words,
                "truncated": sentence.truncated,
            }
            if sentence.token_logprobs is not None:
                row["token_logprobs"] = [[token, value] for token, value in sentence.token_logprobs]
            writer.write(row)


def _full_run_model(model_dir: Path, base: Any) -> Any:
    """The model of a `full` run, refused unless it was trained from a model like ``base``."""
    trained = models.resolve_model(str(model_dir))
    if (trained.model_type, trained.config["hidden_size"]) != (base.model_type, base.config["hidden_size"]):
        raise ModelError(
            f"the run trained a {trained.model_type} model of hidden size {trained.config['hidden_size']},"
            f" not one like {base.name} ({base.model_type}, hidden size {base.config['hidden_size']})",
            hint="give --model the base model the run was trained from",
            path=str(model_dir.parent),
        )
    return trained
