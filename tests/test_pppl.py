"""The batched PLL scorer against an independent one-copy-at-a-time loop (full logits, one forward per
masked position), on tiny XLM-R and BERT, with and without adapters (seq_bn, seq_bn_inv)."""

from __future__ import annotations

import math

import pytest

from lrltool.errors import InputError, ModelError, UsageError
from lrltool.lm.pppl import _mask_positions, _tokenize, score_pll
from tests.lm_helpers import reference_pll

TEXTS = [
    "Ana are mere și pere.",
    "Vremea este frumoasă astăzi în București, spuse el încet.",
    "Da",
    "Guvernul a anunțat ieri noi măsuri pentru sprijinirea agriculturii din zonele afectate de secetă.",
]
REL = 1e-5


def _load(folder):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    return AutoModelForMaskedLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def _with_adapter(folder, method):
    """A tiny model with a randomly perturbed adapter (so it changes the output) set up with the adapters
    library directly, the inverse of an invertible adapter as a pre-hook on the output embeddings."""
    import adapters
    import torch

    model, tokenizer = _load(folder)
    if method is None:
        return model, tokenizer, None
    adapters.init(model)
    torch.manual_seed(0)  # the adapter's own initialisation, so every test sees the same adapter
    model.add_adapter("lang", config=method)
    model.set_active_adapters("lang")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lang" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.5)
    calls = []
    if method == "seq_bn_inv":

        def inverse(module, args):
            calls.append(args[0].shape)
            return (model.base_model.invertible_adapters_forward(args[0], rev=True),)

        model.get_output_embeddings().register_forward_pre_hook(inverse)
    model.eval()
    return model, tokenizer, calls


@pytest.fixture(scope="module", params=["xlmr", "bert"])
def arch_folder(request, tiny_xlmr, tiny_bert):
    return request.param, {"xlmr": tiny_xlmr, "bert": tiny_bert}[request.param]


@pytest.mark.parametrize("method", [None, "seq_bn", "seq_bn_inv"])
@pytest.mark.parametrize("variant", ["original", "within_word_l2r"])
@pytest.mark.parametrize("paper_compat", [False, True])
def test_batched_pll_equals_one_copy_at_a_time(arch_folder, method, variant, paper_compat):
    _, folder = arch_folder
    model, tokenizer, calls = _with_adapter(folder, method)
    result = score_pll(model, tokenizer, TEXTS, variant=variant, paper_compat=paper_compat, batch_tokens=300)
    references = [
        reference_pll(model, tokenizer, t, variant=variant, paper_compat=paper_compat) for t in TEXTS
    ]
    for sentence, (pll, count) in zip(result.sentences, references, strict=True):
        assert sentence.tokens == count
        assert sentence.pll == pytest.approx(pll, rel=REL)
        assert sentence.pppl == pytest.approx(math.exp(-pll / count), rel=REL)
    n = sum(c for _, c in references)
    total = sum(p for p, _ in references)
    words = sum(len(t.split()) for t in TEXTS)
    assert result.tokens == n
    assert result.words == words == 29
    assert result.pppl == pytest.approx(math.exp(-total / n), rel=REL)
    assert result.pppl_mean == pytest.approx(
        sum(math.exp(-p / c) for p, c in references) / len(TEXTS), rel=REL
    )
    assert result.pppl_word == pytest.approx(math.exp(-total / words), rel=REL)
    if method == "seq_bn_inv":
        # The inverse ran on the gathered path: once per head call, on masked positions only.
        assert calls and all(len(shape) == 3 for shape in calls)


@pytest.mark.parametrize("method", ["seq_bn", "seq_bn_inv"])
def test_the_adapter_changes_the_score(tiny_xlmr, method):
    # Guards the test above: an adapter that changed nothing would make it vacuous. Differences are
    # small on a random tiny model (near-uniform predictions) but 100x the comparison's tolerance.
    base, tokenizer = _load(tiny_xlmr)
    adapted, _, _ = _with_adapter(tiny_xlmr, method)
    plain = score_pll(base, tokenizer, TEXTS[:2]).pll
    assert score_pll(adapted, tokenizer, TEXTS[:2]).pll != pytest.approx(plain, rel=100 * REL)


def test_without_the_inverse_hook_the_score_differs(tiny_xlmr):
    model, tokenizer, _ = _with_adapter(tiny_xlmr, "seq_bn_inv")
    with_inverse = score_pll(model, tokenizer, TEXTS[:2]).pll
    model.get_output_embeddings()._forward_pre_hooks.clear()
    without = score_pll(model, tokenizer, TEXTS[:2]).pll
    reference = sum(reference_pll(model, tokenizer, t)[0] for t in TEXTS[:2])
    assert without == pytest.approx(reference, rel=REL)
    assert with_inverse != pytest.approx(without, rel=100 * REL)


def test_batch_size_and_padding_do_not_change_the_result(tiny_bert):
    model, tokenizer = _load(tiny_bert)
    alone = [score_pll(model, tokenizer, [t], batch_size=1).sentences[0].pll for t in TEXTS]
    for options in ({"batch_size": 1}, {"batch_size": 7}, {"batch_tokens": 40}, {"batch_tokens": 100_000}):
        together = score_pll(model, tokenizer, TEXTS, **options)
        for sentence, value in zip(together.sentences, alone, strict=True):
            assert sentence.pll == pytest.approx(value, rel=1e-6)
    # With one big batch the short sentences share it with (are padded to) the longest one.
    big = score_pll(model, tokenizer, TEXTS, batch_tokens=100_000)
    assert big.sentences[2].length < big.sentences[3].length


def test_within_word_l2r_masks_the_rest_of_the_word(tiny_xlmr):
    _, tokenizer = _load(tiny_xlmr)
    [sentence] = _tokenize(tokenizer, ["Vremea frumoasă"], max_length=64, paper_compat=False)
    pieces = tokenizer.convert_ids_to_tokens(sentence.ids)
    assert pieces[0] == "<s>" and pieces[-1] == "</s>"
    first_word = [i for i, w in enumerate(sentence.word_ids) if w == 0]
    assert len(first_word) >= 2 and "".join(pieces[i] for i in first_word) == "▁Vremea"
    start = first_word[0]
    assert _mask_positions(sentence, start, "within_word_l2r") == first_word
    assert _mask_positions(sentence, first_word[-1], "within_word_l2r") == [first_word[-1]]
    assert _mask_positions(sentence, start, "original") == [start]
    assert sentence.scored == list(range(1, len(sentence.ids) - 1))


def test_truncation_is_counted_and_scores_the_kept_part(tiny_xlmr):
    model, tokenizer = _load(tiny_xlmr)
    result = score_pll(model, tokenizer, TEXTS, max_length=12, token_logprobs=True)
    assert [s.truncated for s in result.sentences] == [False, True, False, True]
    assert result.truncated == 2
    long = result.sentences[3]
    assert long.length == 12 and long.tokens == 10
    kept = tokenizer.convert_tokens_to_string([t for t, _ in long.token_logprobs]).strip()
    # Words of the kept part only (the last one may be cut inside a word).
    assert long.words == len(kept.split()) < len(TEXTS[3].split())
    pll, count = reference_pll(model, tokenizer, TEXTS[3], max_length=12)
    assert count == 10 and long.pll == pytest.approx(pll, rel=REL)
    assert math.fsum(lp for _, lp in long.token_logprobs) == pytest.approx(long.pll, rel=1e-12)


def test_token_logprobs_name_the_scored_tokens(tiny_bert):
    model, tokenizer = _load(tiny_bert)
    result = score_pll(model, tokenizer, ["Da"], paper_compat=True, token_logprobs=True)
    names = [t for t, _ in result.sentences[0].token_logprobs]
    assert names == ["[CLS]", *tokenizer.tokenize("Da"), "[SEP]"]


def test_a_decoder_is_refused(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    with pytest.raises(ModelError, match="masked language models; llama is a decoder"):
        score_pll(model, AutoTokenizer.from_pretrained(tiny_llama), TEXTS)


def test_bad_input_is_refused(tiny_xlmr):
    model, tokenizer = _load(tiny_xlmr)
    with pytest.raises(InputError, match="no texts"):
        score_pll(model, tokenizer, [])
    with pytest.raises(InputError, match="text 2 is empty"):
        score_pll(model, tokenizer, ["Da", "  "])
    with pytest.raises(UsageError, match="unknown variant"):
        score_pll(model, tokenizer, TEXTS, variant="l2r")
    with pytest.raises(UsageError, match="from 3 to 128"):
        score_pll(model, tokenizer, TEXTS, max_length=129)


@pytest.mark.parametrize(
    "chars_per_token", [1, 32]
)  # 1: the prefix doubles several times before it is enough
def test_long_texts_are_cut_before_tokenizing_with_the_same_result(
    tiny_xlmr, tiny_bert, monkeypatch, chars_per_token
):
    from lrltool.lm import pppl

    words = [*TEXTS[3].split(), "Supercalifragilisticexpialidocious" * 20, "x", "\t", "ș" * 300]
    texts = [" ".join(words[(i * 7) % len(words) :] + words) * (1 + i) for i in range(6)] + TEXTS
    texts.append("a" * 5000)  # no whitespace at all: tokenized whole
    for folder in (tiny_xlmr, tiny_bert):
        _, tokenizer = _load(folder)
        for max_length in (12, 64):
            monkeypatch.setattr(pppl, "PREFIX_CHARS_PER_TOKEN", 10**9)  # never cut: the whole-text reference
            whole = _tokenize(tokenizer, texts, max_length=max_length, paper_compat=False)
            monkeypatch.setattr(pppl, "PREFIX_CHARS_PER_TOKEN", chars_per_token)
            cut = _tokenize(tokenizer, texts, max_length=max_length, paper_compat=False)
            assert [vars(s) for s in cut] == [vars(s) for s in whole]
            assert all(s.truncated for s in cut[:6]) and not any(s.truncated for s in cut[6:10][::2])


def test_batches_are_bounded_by_memory_whatever_the_user_asks(tiny_bert, monkeypatch, capsys):
    from lrltool.lm import pppl

    model, tokenizer = _load(tiny_bert)
    config = model.config
    longest = max(len(tokenizer(t)["input_ids"]) for t in TEXTS)
    per_token = (
        4 * config.hidden_size + config.intermediate_size + 2 * config.num_attention_heads * longest
    ) * 4
    monkeypatch.setattr(pppl, "MEMORY_BUDGET_BYTES", 40 * per_token)
    assert pppl.memory_bound_batch_tokens(config, longest, 4) == 40
    widths = []
    real = pppl._batches
    monkeypatch.setattr(pppl, "_batches", lambda *a, **k: widths.append(k["batch_tokens"]) or real(*a, **k))
    capped = score_pll(model, tokenizer, TEXTS, batch_tokens=10**9, batch_size=10**6)
    assert widths == [40]
    assert "at most 40 tokens per forward pass (of 1,000,000,000 asked)" in capsys.readouterr().err
    plain = score_pll(model, tokenizer, TEXTS)
    assert [s.pll for s in capped.sentences] == pytest.approx([s.pll for s in plain.sentences], rel=REL)
