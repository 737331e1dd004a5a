"""`eval --task clm`: exact perplexity under a causal LM (+ adapter), checked against an independent loop."""

from __future__ import annotations

import math

import orjson
import pytest

from lrltool.streams import read_records
from tests.paths import EXAMPLES

FLORES = EXAMPLES / "flores" / "devtest" / "ron_Latn.devtest"


def _texts(n: int = 24) -> list[str]:
    return FLORES.read_text(encoding="utf-8").splitlines()[:n]


def _reference_logprobs(model, tokenizer, texts):
    """The independent loop: plain transformers, full logits, one sentence at a time, BOS + text tokens."""
    import torch

    sums = []
    for text in texts:
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].double()
        logprobs = logits.log_softmax(-1)
        sums.append(sum(logprobs[i - 1, ids[i]].item() for i in range(1, len(ids))))
    return sums


def _plain_llama(folder, adapter=None):
    import adapters
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    if adapter is not None:
        adapters.init(model)
        name = model.load_adapter(str(adapter))
        model.set_active_adapters(name)
    return model, AutoTokenizer.from_pretrained(folder)


def _random_adapter(folder, out):
    """A seq_bn adapter with visibly non-zero weights, saved by plain adapters code."""
    import adapters
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(folder)
    adapters.init(model)
    model.add_adapter("lang", config="seq_bn")
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".adapters.lang." in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    model.save_adapter(str(out), "lang")
    return out


def test_batched_scores_equal_the_independent_loop(tiny_llama):
    from lrltool import models
    from lrltool.lm.perplexity import score_clm

    texts = _texts()
    source = models.resolve_model(str(tiny_llama))
    model = models.load_model(source, head="lm")
    tokenizer = models.load_tokenizer(source)
    # small batches: many batches, padding in each, several sentence lengths per batch
    result = score_clm(model, tokenizer, texts, batch_tokens=400)
    plain, plain_tokenizer = _plain_llama(tiny_llama)
    expected = _reference_logprobs(plain, plain_tokenizer, texts)
    assert [s.logprob for s in result.sentences] == pytest.approx(expected, rel=1e-5, abs=1e-4)
    assert result.bos is True
    tokens = [len(plain_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert [s.tokens for s in result.sentences] == tokens  # every text token scored after the BOS
    assert result.ppl == pytest.approx(math.exp(-sum(expected) / sum(tokens)), rel=1e-6)
    per_sentence = [math.exp(-lp / n) for lp, n in zip(expected, tokens, strict=True)]
    assert result.ppl_mean == pytest.approx(sum(per_sentence) / len(texts), rel=1e-6)
    words = sum(len(t.split()) for t in texts)
    assert result.words == words
    assert result.ppl_word == pytest.approx(math.exp(-sum(expected) / words), rel=1e-6)
    again = score_clm(model, tokenizer, texts, batch_size=1)  # batching does not change the result
    assert [s.logprob for s in again.sentences] == pytest.approx([s.logprob for s in result.sentences])


def test_eval_clm_with_an_adapter_matches_plain_adapters_code(cli, tiny_llama, tmp_path):
    texts = _texts(12)
    flores = tmp_path / "flores.jsonl"
    flores.write_text(
        "".join(orjson.dumps({"id": f"devtest:{i}", "text": t, "lang": "ron_Latn"}).decode() + "\n"
                for i, t in enumerate(texts, 1))
    )  # fmt: skip
    adapter = _random_adapter(tiny_llama, tmp_path / "adapter")
    base = cli(["eval", "--task", "clm", "-m", tiny_llama, flores])
    adapted = cli(["eval", "--task", "clm", "-m", tiny_llama, "--adapter", adapter, flores, "--per-sentence",
                   tmp_path / "sentences.jsonl"])  # fmt: skip
    assert base.exit_code == 0 and adapted.exit_code == 0, base.stderr + adapted.stderr
    base_records = [orjson.loads(line) for line in base.stdout.splitlines()]
    records = [orjson.loads(line) for line in adapted.stdout.splitlines()]
    assert [r["metric"] for r in records] == ["ppl", "ppl_mean", "ppl_word"]
    assert {(r["task"], r["lang"], r["method"], r["n"]) for r in records} == {
        ("clm", "ron_Latn", "seq_bn", 12)
    }
    assert records[0]["settings"]["kv_cache"] is False
    plain, tokenizer = _plain_llama(tiny_llama, adapter)
    expected = _reference_logprobs(plain, tokenizer, texts)
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert records[0]["value"] == pytest.approx(math.exp(-sum(expected) / tokens), rel=1e-5)
    assert records[0]["details"]["tokens"] == tokens
    assert records[0]["value"] != pytest.approx(base_records[0]["value"], rel=1e-3)  # the adapter acts
    sentences = list(read_records(tmp_path / "sentences.jsonl"))
    assert [s["id"] for s in sentences] == [f"devtest:{i}" for i in range(1, 13)]
    assert [s["logprob"] for s in sentences] == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_truncation_is_counted_and_words_are_those_kept(tiny_llama):
    from lrltool import models
    from lrltool.lm.perplexity import score_clm

    source = models.resolve_model(str(tiny_llama))
    model, tokenizer = models.load_model(source, head="lm"), models.load_tokenizer(source)
    texts = _texts(4)
    result = score_clm(model, tokenizer, texts, max_length=8)
    assert result.truncated == 4
    assert [s.tokens for s in result.sentences] == [7, 7, 7, 7]
    assert all(0 < s.words < len(t.split()) for s, t in zip(result.sentences, texts, strict=True))


def test_clm_refuses_an_encoder_and_mlm_options(cli, tiny_xlmr):
    flores = EXAMPLES / "flores" / "devtest" / "ron_Latn.devtest"
    records = cli(["fetch", "flores", "-l", "ron", "-i", flores]).stdout
    result = cli(["eval", "--task", "clm", "-m", tiny_xlmr], input=records)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: perplexity (--task clm) needs a causal language model;")
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli(["eval", "--task", "clm", "-m", tiny_xlmr, "--variant", "original"], input=records)
    assert result.exit_code == 2 and "--variant does not apply to --task clm" in result.stderr


def test_report_shows_clm_as_its_own_table(cli, tiny_llama, tmp_path):
    texts = _texts(6)
    flores = tmp_path / "flores.jsonl"
    flores.write_text("".join(orjson.dumps({"text": t, "lang": "ron_Latn"}).decode() + "\n" for t in texts))
    result = cli(["eval", "--task", "clm", "-m", tiny_llama, flores, "-o", tmp_path / "clm.jsonl"])
    assert result.exit_code == 0, result.stderr
    report = cli(["report", tmp_path / "clm.jsonl", "-o", tmp_path / "report"])
    assert report.exit_code == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    value = next(r["value"] for r in read_records(tmp_path / "clm.jsonl") if r["metric"] == "ppl_mean")
    assert f"## Perplexity (ppl_mean), {tiny_llama}" in text
    assert f"| Romanian (ron_Latn) | ? | {value:.2f} |" in text
