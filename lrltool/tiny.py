"""Tiny random-weight models with real tokenizers, built offline in seconds (tests, demo, benchmarks).

``build_tiny("xlmr" | "bert" | "llama", out_dir)`` trains a tokenizer with ``tokenizers`` on bundled
Romanian text (BPE under a SentencePiece Metaspace pre-tokenizer for XLM-R, WordPiece for BERT, byte-level
BPE for LLaMA; all deterministic),
builds a randomly initialised model of the real HF class, and saves both with ``save_pretrained``
(safetensors) into a temporary folder that replaces ``out_dir`` once complete. The MLM heads get a
non-zero output bias so a dropped bias is visible in tests. Deterministic for a given seed and settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from lrltool.errors import UsageError
from lrltool.streams import atomic_dir

ARCHS = ("xlmr", "bert", "llama")


def corpus_lines() -> list[str]:
    """The bundled text the tiny tokenizers are trained on (SIB-200 Romanian sentences + predicates)."""
    text = resources.files("lrltool.data").joinpath("tiny_corpus.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _train_tokenizer(arch: str, lines: Iterable[str], vocab_size: int, max_length: int) -> Any:
    """A deterministic fast tokenizer of the kind ``arch`` uses, trained on ``lines``."""
    trainers_ = {"xlmr": _xlmr_tokenizer, "bert": _bert_tokenizer, "llama": _llama_tokenizer}
    if arch not in trainers_:
        raise UsageError(f"unknown tiny architecture '{arch}'", hint=f"choose one of {', '.join(ARCHS)}")
    return trainers_[arch](list(lines), vocab_size, max_length)


def _xlmr_tokenizer(lines: list[str], vocab_size: int, max_length: int) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3, mask last
    # BPE under SentencePiece's Metaspace pre-tokenizer: same interface as XLM-R's Unigram model
    # (▁ marks word starts), but deterministic: tokenizers' Unigram and WordPiece trainers are not
    # (their vocabularies differ from run to run at score ties).
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=AddedToken("<mask>", lstrip=True, rstrip=False),
        model_max_length=max_length,
    )


def _bert_tokenizer(lines: list[str], vocab_size: int, max_length: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # tokenizers' WordPiece trainer (and BPE with a "##" prefix) give a different vocabulary on every
    # run, so the pieces come from the deterministic Metaspace BPE, words split as BERT splits them:
    # "▁word" becomes "word" and a non-initial "ord" becomes "##ord".
    normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizer
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.BertPreTokenizer(), pre_tokenizers.Metaspace(prepend_scheme="always")]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    bpe.train_from_iterator(lines, trainer)
    pieces = sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])
    vocab: dict[str, int] = {}
    for piece, _ in pieces:
        if piece in specials:
            word_pieces = [piece]
        elif piece.startswith("▁"):
            word_pieces = [piece[1:]] if len(piece) > 1 else []
        else:  # every character also starts words, so no word becomes [UNK] for want of one
            word_pieces = [f"##{piece}", *([piece] if len(piece) == 1 else [])]
        for word_piece in word_pieces:
            vocab.setdefault(word_piece, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=False,
        model_max_length=max_length,
    )


def _llama_tokenizer(lines: list[str], vocab_size: int, max_length: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_tiny(
    arch: str,
    out_dir: str | Path,
    *,
    vocab_size: int = 1000,
    model_vocab_size: int | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_length: int = 128,
    seed: int = 0,
    body_scale: float = 10.0,
    lines: Iterable[str] | None = None,
) -> Path:
    """Build a tiny ``arch`` model + tokenizer into ``out_dir`` and return the folder.

    ``model_vocab_size`` makes the embedding larger than the tokenizer (for example XLM-R's 250,002 rows
    under a small tokenizer, for benchmarks); the default is the tokenizer's size.

    ``body_scale`` multiplies an encoder's attention and feed-forward weights after the HF initialisation
    (std 0.02). Unscaled, a tiny random body gives the first token nearly the same state for every input
    (its spread across sentences is ~0.4% of its size), so every classifier predicts one label: a poor
    demo and weak tests. Scaled by 10 the spread is ~66% while pseudo-perplexity stays near the vocabulary
    size (embeddings and the LM head are left as initialised).
    """
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        LlamaConfig,
        LlamaForCausalLM,
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
    )

    if arch not in ARCHS:
        raise UsageError(f"unknown tiny architecture '{arch}'", hint=f"choose one of {', '.join(ARCHS)}")
    out = Path(out_dir)
    _check_output(out)
    tokenizer = _train_tokenizer(arch, lines if lines is not None else corpus_lines(), vocab_size, max_length)
    vocab = max(model_vocab_size or 0, len(tokenizer))
    inter = intermediate_size or 2 * hidden_size
    common: dict[str, Any] = dict(
        vocab_size=vocab,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=inter,
    )
    torch.manual_seed(seed)
    model: Any
    if arch == "xlmr":
        config = XLMRobertaConfig(
            **common,
            max_position_embeddings=max_length + 2,  # XLM-R positions start after the padding index
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        model = XLMRobertaForMaskedLM(config)
        with torch.no_grad():
            model.lm_head.bias.normal_(0.0, 0.5)
        _scale_body(model, body_scale)
    elif arch == "bert":
        config = BertConfig(**common, max_position_embeddings=max_length, pad_token_id=tokenizer.pad_token_id)
        model = BertForMaskedLM(config)
        with torch.no_grad():
            model.cls.predictions.bias.normal_(0.0, 0.5)
        _scale_body(model, body_scale)
    else:
        config = LlamaConfig(
            **common,
            num_key_value_heads=num_heads,
            max_position_embeddings=max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(config)
    model.eval()
    with atomic_dir(out) as tmp:  # a crash or Ctrl-C leaves no partial model folder
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


def _check_output(out: Path) -> None:
    """Refuse to replace a file, or a folder that holds something else than a model (we never delete what
    we did not write); an empty folder or an earlier model folder is replaced."""
    if out.exists() and not out.is_dir():
        raise UsageError("the output is a file, not a folder", hint="choose another -o", path=str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise UsageError(
            "the output folder is not empty and holds no model",
            hint="choose a new or empty -o",
            path=str(out),
        )


_BODY_WEIGHTS = (".attention.self.", ".attention.output.dense.", ".intermediate.dense.", ".output.dense.")


def _scale_body(model: Any, scale: float) -> None:
    """Multiply the encoder layers' attention and feed-forward weight matrices by ``scale``."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".weight") and ".encoder." in name and any(k in name for k in _BODY_WEIGHTS):
                param.mul_(scale)
