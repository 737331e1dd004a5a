"""train-adapter: loss, masking, data, cache, run folder, resume, bad input, processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrltool import devices, models, runs, training
from lrltool.lm import adapter, data
from lrltool.tiny import corpus_lines
from tests.paths import ROOT
from tests.wandb_helpers import run_offline_wandb, wandb_run

STEPS_ARGS = ["--batch-size", "4", "--max-length", "32", "--eval-steps", "3", "--log-steps", "1"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The suite shares two cores with other jobs; oversubscribed torch threads are many times slower here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Text records in the published shape: id, text, lang, source."""
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i, line in enumerate(corpus_lines()[:240]):
            record = {"id": f"glotcc-{i}", "text": line, "lang": "ron_Latn", "source": "glotcc"}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def _run(cli, model, corpus, out, *extra, cache=None, input=None, env=None):
    args = [
        "train-adapter",
        "-m",
        model,
        "-o",
        out,
        *STEPS_ARGS,
        "--cache-dir",
        cache or out.parent / "cache",
    ]
    if corpus is not None:
        args += ["--train", corpus]
    return cli([*args, *extra], input=input, env=env)


def _adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter.safetensors"))


def _last_line_error(result, text: str) -> None:
    """Exit 1 and one error line after the progress lines of the steps that ran."""
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]], result.stderr
    assert text in lines[-1] and "Traceback" not in result.stderr


def _one_line_error(result, text: str) -> None:
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.stderr


# --- loss -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny_xlmr", "tiny_bert", "tiny_llama"])
def test_masked_position_head_loss_equals_full_logits_loss(request, fixture):
    source = models.resolve_model(str(request.getfixturevalue(fixture)))
    tokenizer = models.load_tokenizer(source)
    model = models.load_model(source)
    models.add_adapter(model, "lang", "seq_bn_inv")  # the inverse hook must act on both paths
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    spec = data.TokenizeSpec(source.objective, 24, packing=False, whole_word=False)
    blocks = data.tokenize_texts([*corpus_lines()[:5], "Un câine."], tokenizer, spec)
    examples = []
    for i in range(len(blocks)):
        ids, ws = blocks.example(i)
        if source.objective == "mlm":
            masker = data.Masker(
                tokenizer.mask_token_id, np.array(tokenizer.all_special_ids), len(tokenizer), 0.3, False
            )
            examples.append(masker(ids, ws, np.random.default_rng(i)))
        else:
            examples.append((ids, None))
    batch = data.collate(examples, tokenizer.pad_token_id)
    assert (batch["attention_mask"] == 0).any()  # padding is present and must be ignored
    with torch.no_grad():
        loss_sum, count = adapter.lm_loss_sum(model, models.lm_head(model), batch, source.objective)
        reference = adapter.full_logits_loss(model, batch, source.objective)
    expected_count = (
        int((batch["labels"] != -100).sum())
        if source.objective == "mlm"
        else int(batch["attention_mask"][:, 1:].sum())
    )
    assert int(count) == expected_count > 0
    torch.testing.assert_close(loss_sum / count, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture", ["tiny_xlmr", "tiny_bert", "tiny_llama"])
def test_chunked_frozen_vocabulary_loss_has_the_model_losss_gradients(request, fixture, monkeypatch):
    """lm/vocab_loss.py (the loss and the states' gradient made chunk by chunk in the forward pass) gives
    the adapter the gradients of the model's own full-logits loss; tiles of 3 rows x 100 columns, so
    tiles join both ways."""
    from lrltool.lm import vocab_loss

    source = models.resolve_model(str(request.getfixturevalue(fixture)))
    tokenizer = models.load_tokenizer(source)
    model = models.load_model(source)
    models.add_adapter(model, "lang", "seq_bn_inv")
    model.eval()  # no dropout: both passes see the same network
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    assert vocab_loss.frozen(model.get_output_embeddings())
    monkeypatch.setattr(vocab_loss, "CPU_ROWS", 3)
    monkeypatch.setattr(vocab_loss, "CPU_CHUNK_BYTES", 3 * 4 * 100)
    assert vocab_loss.tile_shape(7, model.get_output_embeddings().weight.shape[0], "cpu") == (3, 100)
    blocks = data.tokenize_texts(
        corpus_lines()[:4],
        tokenizer,
        data.TokenizeSpec(source.objective, 24, packing=False, whole_word=False),
    )
    examples = [blocks.example(i) for i in range(len(blocks))]
    if source.objective == "mlm":
        masker = data.Masker(
            tokenizer.mask_token_id, np.array(tokenizer.all_special_ids), len(tokenizer), 0.3, False
        )
        examples = [masker(ids, ws, np.random.default_rng(i)) for i, (ids, ws) in enumerate(examples)]
    else:
        examples = [(ids, None) for ids, _ in examples]
    batch = data.collate(examples, tokenizer.pad_token_id)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def gradients(loss) -> dict[str, torch.Tensor]:
        grads = torch.autograd.grad(loss, [p for _, p in trainable])
        return {n: g for (n, _), g in zip(trainable, grads, strict=True)}

    loss_sum, count = adapter.lm_loss_sum(model, models.lm_head(model), batch, source.objective)
    assert int(count) > 3  # more than one chunk
    ours = gradients(loss_sum / count)
    reference = gradients(adapter.full_logits_loss(model, batch, source.objective))
    assert set(ours) == set(reference) and any(g.abs().sum() > 0 for g in reference.values())
    for name, grad in reference.items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_bias", [True, False])
def test_chunked_loss_and_gradient_equal_cross_entropy(monkeypatch, dtype, with_bias):
    """lm/vocab_loss.py against ``F.cross_entropy(linear(...), reduction="sum")`` and autograd: 7 rows in
    tiles of 3 rows (one partial) x 300 of the 1,000 columns (one partial), fp32 through the reused
    buffer, bf16 (autocast states) through linear."""
    from lrltool.lm import vocab_loss

    gen = torch.Generator().manual_seed(1)
    vocabulary, hidden = 1000, 16
    weight = (torch.randn(vocabulary, hidden, generator=gen) * 0.5).to(dtype)
    bias = (torch.randn(vocabulary, generator=gen) * 0.1).to(dtype) if with_bias else None
    states = torch.randn(7, hidden, generator=gen).to(dtype).requires_grad_()
    targets = torch.randint(0, vocabulary, (7,), generator=gen)
    monkeypatch.setattr(vocab_loss, "CPU_ROWS", 3)
    monkeypatch.setattr(vocab_loss, "CPU_CHUNK_BYTES", 3 * 4 * 300)
    assert vocab_loss.tile_shape(7, vocabulary, "cpu") == (3, 300)
    projection = torch.nn.Linear(hidden, vocabulary, bias=with_bias, dtype=dtype)
    projection.weight.data, projection.weight.requires_grad = weight, False
    if with_bias:
        projection.bias.data, projection.bias.requires_grad = bias, False
    loss = vocab_loss.cross_entropy_sum(states, projection, targets)
    (ours,) = torch.autograd.grad(loss * 0.5, states)
    reference_states = states.detach().clone().requires_grad_()
    reference = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(reference_states, weight, bias).float(), targets, reduction="sum"
    )
    (theirs,) = torch.autograd.grad(reference * 0.5, reference_states)
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(loss, reference, **tolerance)
    assert ours.dtype == dtype
    torch.testing.assert_close(ours.float(), theirs.float(), **tolerance)


def test_chunked_loss_follows_a_maximum_that_grows_from_tile_to_tile(monkeypatch):
    """The online softmax rescales its running sum and gradient when a later tile holds a row's larger
    logits: logits from about -60 (first tile) to +60 (last), targets in every tile, against
    ``F.cross_entropy`` and autograd, in tiles of 2 rows x 64 columns and in one whole-vocabulary tile."""
    from lrltool.lm import vocab_loss

    gen = torch.Generator().manual_seed(2)
    vocabulary, hidden = 640, 8
    weight = torch.randn(vocabulary, hidden, generator=gen)
    bias = torch.linspace(-60.0, 60.0, vocabulary)
    states = torch.randn(5, hidden, generator=gen).requires_grad_()
    targets = torch.tensor([0, 100, 300, 639, 638])
    projection = torch.nn.Linear(hidden, vocabulary)
    projection.weight.data, projection.bias.data = weight, bias
    projection.requires_grad_(False)
    reference_states = states.detach().clone().requires_grad_()
    reference = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(reference_states, weight, bias), targets, reduction="sum"
    )
    (theirs,) = torch.autograd.grad(reference, reference_states)
    for rows, columns in ((2, 64), (5, 640)):
        monkeypatch.setattr(vocab_loss, "CPU_ROWS", rows)
        monkeypatch.setattr(vocab_loss, "CPU_CHUNK_BYTES", rows * 4 * columns)
        assert vocab_loss.tile_shape(5, vocabulary, "cpu") == (rows, columns)
        loss = vocab_loss.cross_entropy_sum(states, projection, targets)
        (ours,) = torch.autograd.grad(loss, states)
        torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_tile_shape_splits_rows_evenly_and_fills_the_budget():
    """Rows in even parts of at most CPU_ROWS (CPU) or ROWS; columns fill the tile's bytes, at least 64,
    at most the vocabulary."""
    from lrltool.lm import vocab_loss

    assert vocab_loss.tile_shape(608, 250_002, "cpu") == (304, (512 << 10) // (4 * 304))
    assert vocab_loss.tile_shape(512, 250_002, "cpu") == (512, 256)
    assert vocab_loss.tile_shape(4096, 250_002, "cpu") == (512, 256)
    assert vocab_loss.tile_shape(608, 250_002, "cuda") == (608, (256 << 20) // (4 * 608))
    assert vocab_loss.tile_shape(16_384, 128_256, "cuda") == (8192, 8192)
    assert vocab_loss.tile_shape(10_000, 250_002, "cpu") == (500, 262)  # 20 parts of 500 rows
    assert vocab_loss.tile_shape(3, 50, "cpu") == (3, 50)
    assert vocab_loss.tile_shape(100_000, 250_002, "cpu") == (511, 256)  # 196 parts of 510-511 rows


def test_a_trained_vocabulary_takes_the_plain_loss(tiny_xlmr):
    """--method full trains the embeddings (the projection's weight): the chunked loss, which gives no
    gradient to the projection, is not used, and the projection gets one."""
    from lrltool.lm import vocab_loss

    source = models.resolve_model(str(tiny_xlmr))
    model = models.load_model(source)
    models.add_adapter(model, "lang", "full")
    assert not vocab_loss.frozen(model.get_output_embeddings())
    ids = torch.tensor([[0, 5, 6, 7, 8, 2]])
    labels = torch.full_like(ids, -100)
    labels[0, 2] = 6
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    loss_sum, _ = adapter.lm_loss_sum(model, models.lm_head(model), batch, "mlm")
    loss_sum.backward()
    assert model.get_output_embeddings().weight.grad.abs().sum() > 0


def test_masking_rates_specials_and_whole_words(tiny_bert):
    source = models.resolve_model(str(tiny_bert))
    tokenizer = models.load_tokenizer(source)
    specials = np.array(sorted(tokenizer.all_special_ids))
    spec = data.TokenizeSpec("mlm", 128, packing=True, whole_word=True)
    blocks = data.tokenize_texts(corpus_lines(), tokenizer, spec)
    masker = data.Masker(tokenizer.mask_token_id, specials, len(tokenizer), 0.15, whole_word=False)
    chosen = replaced = randomized = candidates = 0
    for i in range(len(blocks)):
        ids, _ = blocks.example(i)
        inputs, labels = masker(ids, None, np.random.default_rng([7, i]))
        selected = labels != -100
        assert not np.isin(ids[selected], specials).any()  # special tokens are never targets
        assert np.array_equal(labels[selected], ids[selected])
        assert np.array_equal(inputs[~selected], ids[~selected])
        candidates += int((~np.isin(ids, specials)).sum())
        chosen += int(selected.sum())
        replaced += int((inputs[selected] == tokenizer.mask_token_id).sum())
        randomized += int(((inputs != ids) & selected & (inputs != tokenizer.mask_token_id)).sum())
    assert candidates > 20_000
    assert abs(chosen / candidates - 0.15) < 0.01
    assert abs(replaced / chosen - 0.8) < 0.02
    assert 0.07 < randomized / chosen < 0.11  # 10% random draws, a few of which hit the same token

    wwm = data.Masker(tokenizer.mask_token_id, specials, len(tokenizer), 0.3, whole_word=True)
    encoding = tokenizer("Ploaia cade încet peste orașele îndepărtate și câmpurile nesfârșite.")
    words = encoding.word_ids()
    ids = np.array(encoding["input_ids"])
    word_blocks = data.tokenize_texts(
        ["Ploaia cade încet peste orașele îndepărtate și câmpurile nesfârșite."], tokenizer, spec
    )
    assert np.array_equal(word_blocks.example(0)[0], ids)
    multi_piece = [w for w in set(words) if w is not None and words.count(w) > 1]
    assert multi_piece  # the sentence has words of several word pieces
    for seed in range(20):
        _, labels = wwm(ids, word_blocks.example(0)[1], np.random.default_rng(seed))
        for w in set(words) - {None}:
            positions = [i for i, x in enumerate(words) if x == w]
            masked = {labels[i] != -100 for i in positions}
            assert len(masked) == 1  # a word is masked whole or not at all


# --- data -----------------------------------------------------------------------------------------


def test_validation_split_is_deterministic_and_order_free():
    texts = [f"text {i}" for i in range(200)] + ["text 5"] * 3
    train_a, val_a = data.split_validation(texts, 0.05, 2000)
    _, val_b = data.split_validation(list(reversed(texts)), 0.05, 2000)
    assert sorted(val_a) == sorted(val_b) and len(set(val_a)) == 10
    assert not set(train_a) & set(val_a)  # copies of a held-out text are held out too
    assert len(train_a) + len(val_a) == len(texts)
    assert train_a == [t for t in texts if t not in set(val_a)]  # training order kept
    assert len(data.split_validation(texts, 0.5, 7)[1]) >= 7
    assert data.split_validation(["only one"], 0.1, 10) == (["only one"], [])


def test_packing_and_line_by_line_blocks(tiny_xlmr, tiny_llama):
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_xlmr)))
    texts = corpus_lines()[:50]
    per_text = [tokenizer(t)["input_ids"] for t in texts]
    packed = data.tokenize_texts(texts, tokenizer, data.TokenizeSpec("mlm", 32, True, False))
    assert packed.tokens == sum(map(len, per_text))
    assert np.array_equal(packed.ids, np.concatenate(per_text))
    lengths = np.diff(packed.starts)
    assert (lengths[:-1] == 32).all() and 0 < lengths[-1] <= 32
    lines = data.tokenize_texts(texts, tokenizer, data.TokenizeSpec("mlm", 16, False, False))
    assert len(lines) == 50
    for i, ids in enumerate(per_text):
        got, _ = lines.example(i)
        expected = ids if len(ids) <= 16 else [*ids[:15], tokenizer.sep_token_id]  # truncation keeps </s>
        assert got.tolist() == expected

    llama_tok = models.load_tokenizer(models.resolve_model(str(tiny_llama)))
    clm = data.tokenize_texts(texts[:3], llama_tok, data.TokenizeSpec("clm", 512, False, False))
    for i, text in enumerate(texts[:3]):
        assert clm.example(i)[0].tolist() == [*llama_tok(text)["input_ids"], llama_tok.eos_token_id]


def test_tokenization_cache_is_reused_and_keyed(tiny_xlmr, tmp_path, monkeypatch):
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_xlmr)))
    texts = corpus_lines()[:40]
    spec = data.TokenizeSpec("mlm", 32, True, False)
    digest = data.hash_texts(texts)
    first, hit, folder = data.load_or_tokenize(texts, digest, tokenizer, spec, tmp_path)
    assert not hit and (folder / "meta.json").is_file() and folder.parent == tmp_path / "tokenized"

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again although the cache holds this data")

    monkeypatch.setattr(data, "tokenize_texts", no_tokenizing)
    second, hit, same = data.load_or_tokenize(texts, digest, tokenizer, spec, tmp_path)
    assert hit and same == folder
    assert np.array_equal(first.ids, second.ids) and np.array_equal(first.starts, second.starts)
    other = data.TokenizeSpec("mlm", 16, True, False)
    assert data.cache_key(digest, tokenizer, other) != data.cache_key(digest, tokenizer, spec)
    assert data.cache_key(data.hash_texts(texts[1:]), tokenizer, spec) != data.cache_key(
        digest, tokenizer, spec
    )


def test_presets_and_explicit_settings():
    paper = adapter.make_settings("paper-conceptnet")
    assert (paper.max_steps, paper.batch_size, paper.lr, paper.eval_steps, paper.seed) == (
        25_000,
        64,
        1e-5,
        500,
        42,
    )
    assert paper.line_by_line and paper.mlm_probability == 0.15 and paper.warmup_ratio == 0.0
    assert adapter.make_settings("paper-glotcc", lr=5e-5).max_steps == 100_000
    assert adapter.make_settings("paper-glotcc", lr=5e-5).lr == 5e-5
    assert adapter.make_settings(None).line_by_line is False


# --- the command ----------------------------------------------------------------------------------


def test_train_adapter_run_folder(cli, tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "6", "--method", "seq_bn_inv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # stdout carries data only
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "adapter",
        "checkpoints",
        "log.jsonl",
        "training.json",
    ]
    info = json.loads((out / "training.json").read_text())
    assert info["finished"] is True and info["steps"] == 6 and info["method"] == "seq_bn_inv"
    assert (info["lang"], info["source"], info["objective"], info["adapter_name"]) == (
        "ron_Latn",
        "glotcc",
        "mlm",
        "ron_Latn",
    )
    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    assert info["data"]["hash"] == data.hash_texts(texts)
    assert info["data"]["records"] == 240 and info["data"]["validation_records"] == 2
    assert info["data"]["train_records"] == 238
    assert info["model"] == str(tiny_xlmr) and info["model_revision"] is None
    assert info["settings"]["max_seq_length"] == 32 and info["settings"]["batch_size"] == 4
    assert set(info["versions"]) >= {"lrltool", "torch", "transformers", "adapters"}
    assert info["trainable_parameters"] == sum(t.numel() for t in _adapter_tensors(out / "adapter").values())
    assert f"{info['trainable_parameters']:,} trainable parameters" in result.stderr
    log = runs.read_log(out / "log.jsonl")
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert set(log[0]) == {"step", "loss", "lr", "epoch"} and log[0]["lr"] == 1e-4
    evals = [e for e in log if "eval_loss" in e]
    assert [e["step"] for e in evals] == [3, 6]
    best = min(evals, key=lambda e: e["eval_loss"])
    assert (info["best_step"], info["best_eval_loss"]) == (best["step"], best["eval_loss"])
    assert "step 6/6" in result.stderr and "tokens/s" in result.stderr and "ETA" in result.stderr
    assert "# language adapter" in (out / "README.md").read_text()
    # steps 2..6 of 4 packed blocks x 32 tokens, in less time than the whole run took
    assert info["steady_tokens_per_second"] >= 5 * 4 * 32 / info["seconds"]


def test_only_adapter_weights_change_and_best_checkpoint_is_exported(
    tiny_bert, corpus, tmp_path, monkeypatch
):
    settings = adapter.make_settings(max_steps=8, batch_size=4, max_seq_length=32, eval_steps=2, lr=3e-2)
    # Scripted validation losses make step 4 the best, whatever the float noise of real ones on this CPU
    # (with real losses the best step can be the last one, and then "best != last" cannot be checked).
    scripted = iter([3.0, 1.0, 2.0, 4.0])

    def evaluate(self):
        loss = next(scripted)
        return training.Evaluation(score=loss, logged={"eval_loss": loss})

    monkeypatch.setattr(adapter.LanguageModelling, "evaluate", evaluate)
    result = adapter.train_language_adapter(
        model=str(tiny_bert),
        train=corpus,
        output=tmp_path / "run",
        settings=settings,
        cache_dir=tmp_path / "c",
    )
    fresh = models.load_model(models.resolve_model(str(tiny_bert)))
    fresh_state = fresh.state_dict()
    for name, tensor in result.model.state_dict().items():
        if not models.is_adapter_parameter(name, "ron_Latn"):
            assert torch.equal(tensor, fresh_state[name]), name  # body and MLM head: bitwise unchanged
    torch.manual_seed(settings.seed)  # the adapter's initial weights, as train-adapter draws them
    models.add_adapter(fresh, "ron_Latn", "seq_bn")
    initial = {n: p.detach().clone() for n, p in fresh.named_parameters() if p.requires_grad}
    trained = {n: p for n, p in result.model.named_parameters() if p.requires_grad}
    assert initial.keys() == trained.keys() and len(initial) == 8
    assert all(not torch.equal(initial[n], trained[n]) for n in initial)  # every adapter weight trained
    log = runs.read_log(tmp_path / "run" / "log.jsonl")
    evals = {e["step"]: e["eval_loss"] for e in log if "eval_loss" in e}
    best_step = min(evals, key=evals.get)
    assert result.info["best_step"] == best_step == result.info["exported_step"] == 4
    best = runs.load_checkpoint(tmp_path / "run" / "checkpoints" / "best", with_optimizer=False)
    assert best.state["step"] == best_step
    exported = _adapter_tensors(tmp_path / "run" / "adapter")
    assert exported.keys() == best.weights.keys()
    assert all(torch.equal(exported[k], best.weights[k]) for k in exported)
    last = runs.load_checkpoint(tmp_path / "run" / "checkpoints" / "last").weights  # step 8 != best step 4
    assert any(not torch.equal(exported[k], last[k]) for k in exported)


def test_stdin_pipeline_llama_clm(cli, tiny_llama, corpus, tmp_path):
    out = tmp_path / "run"
    result = _run(
        cli, tiny_llama, None, out, "--max-steps", "3", "--method", "lora", input=corpus.read_text()
    )
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "training.json").read_text())
    assert info["objective"] == "clm" and info["data"]["records"] == 240 and info["method"] == "lora"
    fresh = models.load_model(models.resolve_model(str(tiny_llama)))
    assert models.load_adapter(fresh, out) == "ron_Latn"


def test_full_training_writes_a_model(cli, tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "2", "--method", "full", "--lr", "1e-2")
    assert result.exit_code == 0, result.stderr
    assert (out / "model" / "model.safetensors").is_file() and not (out / "adapter").exists()
    source = models.resolve_model(str(out / "model"))  # a plain, valid model folder
    trained = models.load_model(source).state_dict()
    base_model = models.load_model(models.resolve_model(str(tiny_xlmr)))
    base = base_model.state_dict()
    assert not torch.equal(trained["lm_head.dense.weight"], base["lm_head.dense.weight"])
    assert not torch.equal(
        trained["roberta.embeddings.word_embeddings.weight"],
        base["roberta.embeddings.word_embeddings.weight"],
    )
    # every distinct weight (parameters() counts the tied embedding/decoder matrix once): 144,744
    assert json.loads((out / "training.json").read_text())["trainable_parameters"] == sum(
        p.numel() for p in base_model.parameters()
    )


def test_whole_word_line_by_line_run(cli, tiny_bert, corpus, tmp_path):
    out = tmp_path / "run"
    result = _run(cli, tiny_bert, corpus, out, "--max-steps", "2", "--whole-word-mask", "--line-by-line")
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "training.json").read_text())
    assert info["settings"]["whole_word_mask"] and info["settings"]["line_by_line"]
    assert info["data"]["examples"] == 238  # one example per training text


def test_second_run_uses_the_cache(cli, tiny_xlmr, corpus, tmp_path):
    first = _run(cli, tiny_xlmr, corpus, tmp_path / "a", "--max-steps", "1", cache=tmp_path / "cache")
    second = _run(cli, tiny_xlmr, corpus, tmp_path / "b", "--max-steps", "1", cache=tmp_path / "cache")
    assert first.exit_code == second.exit_code == 0
    assert "(tokenized in" in first.stderr and "(cached in" in second.stderr
    info = json.loads((tmp_path / "b" / "training.json").read_text())
    assert info["cache"].startswith(str(tmp_path / "cache" / "tokenized"))


# --- resume ---------------------------------------------------------------------------------------


def test_interrupted_and_resumed_run_equals_uninterrupted_run(cli, tiny_xlmr, corpus, tmp_path):
    args = ["--max-steps", "7", "--method", "seq_bn_inv", "--lr", "1e-2", "--eval-steps", "2"]
    whole = _run(cli, tiny_xlmr, corpus, tmp_path / "whole", *args)
    assert whole.exit_code == 0, whole.stderr
    cut = _run(cli, tiny_xlmr, corpus, tmp_path / "cut", *args, env={"LRLTOOL_TEST_INTERRUPT_AT_STEP": "3"})
    assert cut.exit_code == 130, cut.stderr
    assert "interrupted at step 3 of 7; checkpoint saved in" in cut.stderr
    assert "resume with: " in cut.stderr and "--resume" in cut.stderr and "Traceback" not in cut.stderr
    assert not (tmp_path / "cut" / "adapter").exists()
    assert json.loads((tmp_path / "cut" / "training.json").read_text())["finished"] is False
    assert runs.load_checkpoint(tmp_path / "cut" / "checkpoints" / "last").state["step"] == 3
    resumed = _run(cli, tiny_xlmr, corpus, tmp_path / "cut", *args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "at step 3 of 7" in resumed.stderr
    a, b = _adapter_tensors(tmp_path / "whole" / "adapter"), _adapter_tensors(tmp_path / "cut" / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert runs.read_log(tmp_path / "whole" / "log.jsonl") == runs.read_log(tmp_path / "cut" / "log.jsonl")
    whole_info = json.loads((tmp_path / "whole" / "training.json").read_text())
    cut_info = json.loads((tmp_path / "cut" / "training.json").read_text())
    assert (cut_info["best_step"], cut_info["best_eval_loss"]) == (
        whole_info["best_step"],
        whole_info["best_eval_loss"],
    )
    again = _run(cli, tiny_xlmr, corpus, tmp_path / "cut", *args, "--resume")
    _one_line_error(again, "already finished")


def test_resume_with_other_settings_is_refused(cli, tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    cut = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "4", env={"LRLTOOL_TEST_INTERRUPT_AT_STEP": "1"})
    assert cut.exit_code == 130
    other = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "4", "--lr", "1e-3", "--resume")
    _one_line_error(other, "--resume with different settings than the interrupted run: lr 0.0001 -> 0.001")


@pytest.mark.slow
def test_ctrl_c_in_a_real_pipeline(tiny_xlmr, corpus, tmp_path):
    """A real process reading a pipe, a real SIGINT: exit 130 and the resume command on stderr."""
    out = tmp_path / "run"
    lrltool = Path(sys.executable).parent / "lrltool"
    command = (
        f"cat {corpus} | {lrltool} train-adapter -m {tiny_xlmr} -o {out} --max-steps 5 --batch-size 4"
        f" --max-seq-length 32 --cache-dir {tmp_path / 'cache'}"
    )
    env = {**os.environ, "LRLTOOL_TEST_INTERRUPT_AT_STEP": "2", "OMP_NUM_THREADS": "1"}
    proc = _run_group(["bash", "-o", "pipefail", "-c", command], env)
    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: interrupted at step 2 of 5")
    assert f"resume with: lrltool train-adapter -m {tiny_xlmr} -o {out}" in last and last.endswith("--resume")
    assert runs.load_checkpoint(out / "checkpoints" / "last").state["step"] == 2


# --- bad input ------------------------------------------------------------------------------------


def test_empty_training_data(cli, tiny_xlmr, tmp_path):
    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, None, out, input='{"text": "  "}\n')
    _one_line_error(result, "no training text")
    assert not out.exists()


def test_record_without_text(cli, tiny_xlmr, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"text": "Un câine."}\n{"id": "2", "sentence": "fără text"}\n')
    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, data, out)
    _one_line_error(result, f"{data}:2: text record has no 'text' key")
    assert not out.exists()


def test_unknown_method(cli, tiny_xlmr, corpus, tmp_path):
    result = _run(cli, tiny_xlmr, corpus, tmp_path / "run", "--method", "houlsby")
    _one_line_error(result, "unknown adapter method 'houlsby'; choose one of seq_bn, seq_bn_inv, lora, full")
    assert not (tmp_path / "run").exists()


def test_max_seq_length_beyond_the_model(cli, tiny_xlmr, corpus, tmp_path):
    result = _run(cli, tiny_xlmr, corpus, tmp_path / "run", "--max-length", "4096")
    _one_line_error(result, "--max-length 4096 is beyond the model's limit of 128 tokens")
    assert not (tmp_path / "run").exists()


def test_model_without_weights_and_hostile_model(cli, tiny_xlmr, corpus, tmp_path):
    empty = tmp_path / "m"
    shutil.copytree(tiny_xlmr, empty)
    (empty / "model.safetensors").unlink()
    result = _run(cli, empty, corpus, tmp_path / "run")
    _one_line_error(result, "no weights (*.safetensors)")
    hostile = tmp_path / "h"
    shutil.copytree(tiny_xlmr, hostile)
    config = json.loads((hostile / "config.json").read_text())
    config["_attn_implementation_internal"] = "kernels-community/evil"
    (hostile / "config.json").write_text(json.dumps(config))
    result = _run(cli, hostile, corpus, tmp_path / "run")
    _one_line_error(result, "a hub repository")
    assert not (tmp_path / "run").exists()


def test_output_holding_another_run(cli, tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    assert _run(cli, tiny_xlmr, corpus, out, "--max-steps", "1").exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.rglob("*")}
    result = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "1")
    _one_line_error(result, "holds another run; choose a new -o, add --resume to continue it, or --force")
    assert {p.name: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    forced = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "2", "--force")
    assert forced.exit_code == 0 and json.loads((out / "training.json").read_text())["steps"] == 2


def test_hub_model_revision_is_recorded(cli, tiny_xlmr, corpus, tmp_path, monkeypatch):
    import huggingface_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / commit
    shutil.copytree(tiny_xlmr, snapshot)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: str(snapshot))
    out = tmp_path / "run"
    result = _run(cli, "org/tiny", corpus, out, "--max-steps", "1", "--revision", "v1")
    assert result.exit_code == 0, result.stderr
    info = json.loads((out / "training.json").read_text())
    assert (info["model"], info["model_revision"]) == ("org/tiny", commit)
    assert f"revision `{commit}`" in (out / "README.md").read_text()


def test_offline_hub_model_not_in_the_cache(cli, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = _run(cli, "someone/uncached-model", corpus, tmp_path / "run")
    _one_line_error(result, "'someone/uncached-model' is not in the Hugging Face cache")
    assert "hf download someone/uncached-model" in result.stderr
    assert not (tmp_path / "run").exists()


def test_objective_that_does_not_fit_the_model(cli, tiny_llama, corpus, tmp_path):
    result = _run(cli, tiny_llama, corpus, tmp_path / "run", "--objective", "mlm")
    _one_line_error(result, "is a decoder (llama): it trains with CLM, not MLM")


# --- several processes ----------------------------------------------------------------------------


def _run_group(command: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command in its own process group, and kill the whole group (torchrun's workers) on timeout."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_torchrun_and_accelerate_launch_equal_one_process_with_the_global_batch(tiny_xlmr, corpus, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(tiny_xlmr, model)
    config = json.loads((model / "config.json").read_text())
    config.update(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )  # dropout draws differ by process
    (model / "config.json").write_text(json.dumps(config))
    common = [
        "-m",
        str(model),
        "--train",
        str(corpus),
        "--max-steps",
        "4",
        "--eval-steps",
        "2",
        "--lr",
        "1e-2",
    ]
    common += ["--max-length", "32", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    launch = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "lrltool", "train-adapter"]
    two = _run_group([*launch, *common, "-o", str(tmp_path / "two"), "--batch-size", "2"], env)
    assert two.returncode == 0, two.stderr[-3000:]
    single = [sys.executable, "-m", "lrltool", "train-adapter", *common, "-o", str(tmp_path / "one")]
    one = _run_group([*single, "--batch-size", "4"], env)
    assert one.returncode == 0, one.stderr[-3000:]
    info = json.loads((tmp_path / "two" / "training.json").read_text())
    assert info["processes"] == 2 and info["finished"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "README.md",
        "adapter",
        "checkpoints",
        "log.jsonl",
        "training.json",
    ]
    a, b = _adapter_tensors(tmp_path / "two" / "adapter"), _adapter_tensors(tmp_path / "one" / "adapter")
    fresh = models.load_model(models.resolve_model(str(model)))
    torch.manual_seed(42)  # the adapter's initial weights, as train-adapter draws them
    models.add_adapter(fresh, "ron_Latn", "seq_bn")
    initial = {n: p.detach() for n, p in fresh.named_parameters() if p.requires_grad}
    assert a.keys() == b.keys() == initial.keys()
    for key in a:
        # Sums in another order differ in the last bits, and Adam magnifies that where a gradient is ~0;
        # two steps of training moved the weights by far more than the tolerance.
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=5e-5)
    assert max(float((b[k] - initial[k]).abs().max()) for k in b) > 1e-2
    two_log, one_log = (
        runs.read_log(tmp_path / "two" / "log.jsonl"),
        runs.read_log(tmp_path / "one" / "log.jsonl"),
    )
    assert [e["step"] for e in two_log] == [e["step"] for e in one_log]
    for x, y in zip(two_log, one_log, strict=True):
        key = "loss" if "loss" in x else "eval_loss"
        assert x[key] == pytest.approx(y[key], rel=1e-5)

    # Interrupted after step 2 and resumed in two processes: the same weights as the uninterrupted run, bit
    # for bit. Each process of a CPU group is on Accelerate's "cpu:0", which torch.load refused for the
    # optimizer's state: the resume called the checkpoint damaged.
    cut_args = [*launch, *common, "-o", str(tmp_path / "cut"), "--batch-size", "2"]
    cut = _run_group(cut_args, {**env, "LRLTOOL_TEST_INTERRUPT_AT_STEP": "2"})
    assert cut.returncode != 0 and "interrupted at step 2 of 4" in cut.stderr, cut.stderr[-3000:]
    resumed = _run_group([*cut_args, "--resume"], env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "cut" / "training.json").read_text())["finished"]
    assert runs.read_log(tmp_path / "cut" / "log.jsonl") == two_log
    d = _adapter_tensors(tmp_path / "cut" / "adapter")
    assert d.keys() == a.keys() and all(torch.equal(d[key], a[key]) for key in a)

    # `accelerate launch` (its multi-process launcher is torch's elastic runner, gloo on CPU) runs the same
    # command unchanged and gives the same weights as torchrun, bit for bit. With a tracker too: closing
    # it once left the process group that the export's barrier still needed.
    accelerate = Path(sys.executable).parent / "accelerate"
    flags = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch = [str(accelerate), "launch", *flags, "--dynamo_backend", "no", "-m", "lrltool", "train-adapter"]
    tracked = ["-o", str(tmp_path / "acc"), "--batch-size", "2", "--report-to", "tensorboard"]
    acc = _run_group([*launch, *common, *tracked], env)
    assert acc.returncode == 0, acc.stderr[-3000:]
    acc_info = json.loads((tmp_path / "acc" / "training.json").read_text())
    assert acc_info["processes"] == 2 and acc_info["finished"]
    assert list((tmp_path / "acc" / "tensorboard").rglob("events.out.tfevents.*"))
    c = _adapter_tensors(tmp_path / "acc" / "adapter")
    assert c.keys() == a.keys() and all(torch.equal(c[key], a[key]) for key in a)


# --- non-finite loss and option values ------------------------------------------------------------


def test_a_non_finite_loss_stops_keeping_the_last_good_checkpoint(
    cli, tiny_xlmr, corpus, tmp_path, monkeypatch
):
    real = adapter.LanguageModelling.train_step

    def nan_at_step_5(self, step):
        loss, tokens = real(self, step)
        return (float("nan"), tokens) if step == 4 else (loss, tokens)  # the 5th optimizer step

    monkeypatch.setattr(adapter.LanguageModelling, "train_step", nan_at_step_5)
    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "8", "--eval-steps", "2")
    _last_line_error(
        result, f"error: {out}: the training loss is nan at step 5; lower --lr, or check the data"
    )
    assert not (out / "adapter").exists()
    assert json.loads((out / "training.json").read_text())["finished"] is False
    last = runs.load_checkpoint(out / "checkpoints" / "last")
    assert last.state["step"] == 4 and all(torch.isfinite(w).all() for w in last.weights.values())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]  # strict JSON
    assert max(e["step"] for e in log) == 4


def test_a_learning_rate_that_blows_up_stops_with_one_line_and_valid_json(cli, tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "6", "--lr", "1e30")
    _last_line_error(result, "the training loss is nan at step 2")
    assert not (out / "adapter").exists()
    for line in (out / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in log.jsonl"))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "inf", "--lr must be a positive finite number, not inf"),
        ("--lr", "nan", "--lr must be a positive finite number, not nan"),
        ("--lr", "-1e-4", "--lr must be a positive finite number, not -0.0001"),
        ("--weight-decay", "-0.1", "--weight-decay must be a finite number >= 0, not -0.1"),
        ("--weight-decay", "inf", "--weight-decay must be a finite number >= 0, not inf"),
        ("--epochs", "inf", "--epochs must be a positive finite number, not inf"),
        ("--epochs", "nan", "--epochs must be a positive finite number, not nan"),
    ],
)
def test_non_finite_or_negative_settings_are_usage_errors(
    cli, tiny_xlmr, corpus, tmp_path, option, value, message
):
    result = _run(cli, tiny_xlmr, corpus, tmp_path / "run", option, value)
    assert result.exit_code == 2 and result.stderr == f"error: {message}\n"
    assert not (tmp_path / "run").exists()


# --- one process per run folder -------------------------------------------------------------------


def _hold_lock(folder: Path):
    """Another process holding the run folder's lock, as a running train-adapter does."""
    code = (
        "import sys, time; from lrltool import runs; lock = runs.RunLock(sys.argv[1]);"
        " lock.acquire('lrltool train-adapter -o elsewhere'); print('ready', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_run_folder_in_use_is_refused_naming_the_holder(cli, tiny_xlmr, corpus, tmp_path):
    import socket

    out = tmp_path / "run"
    cut = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "4", env={"LRLTOOL_TEST_INTERRUPT_AT_STEP": "2"})
    assert cut.exit_code == 130
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    holder = _hold_lock(out)
    try:
        resumed = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "4", "--resume")
        _one_line_error(
            resumed,
            f"error: {out}: another lrltool process is writing this run folder (pid {holder.pid} on"
            f" {socket.gethostname()} since ",
        )
        assert resumed.stderr.rstrip().endswith(
            ": lrltool train-adapter -o elsewhere); wait for it to end (or stop it);"
            " one run folder takes one process"
        )
        new = _run(cli, tiny_xlmr, corpus, tmp_path / "new", "--max-steps", "1")
        assert new.exit_code == 0  # other folders are free
    finally:
        holder.kill()
        holder.wait()
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.name != runs.LOCK_FILE}
    assert after == before  # the refused process changed nothing (the holder made the lock file)
    # The holder died without cleaning up: its lock file stays, but the lock went with the process.
    assert (out / runs.LOCK_FILE).exists()
    resumed = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "4", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "adapter",
        "checkpoints",
        "log.jsonl",
        "training.json",
    ]


def test_two_runs_started_together_on_one_folder(tiny_xlmr, corpus, tmp_path):
    """The issue's case: both used to exit 0 with every step logged twice."""
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "lrltool", "train-adapter", "-m", str(tiny_xlmr), "--train", str(corpus),
        "-o", str(out), "--max-steps", "6", *STEPS_ARGS, "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LRLTOOL_PROGRESS": "0"}
    procs = [
        subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env) for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    [(_, refused)] = [r for r in results if r[0] == 1]
    last = refused.strip().splitlines()[-1]
    assert "another lrltool process is writing this run folder" in last or "holds another run" in last, last
    steps = [e["step"] for e in runs.read_log(out / "log.jsonl") if "loss" in e]
    assert steps == [1, 2, 3, 4, 5, 6]


# --- crash-safe checkpoints -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "between"])
def test_a_kill_while_a_checkpoint_is_switched_loses_nothing(cli, tiny_xlmr, corpus, tmp_path, where):
    args = ["--max-steps", "6", "--eval-steps", "2", "--lr", "1e-2"]
    whole = _run(cli, tiny_xlmr, corpus, tmp_path / "whole", *args)
    assert whole.exit_code == 0, whole.stderr
    out = tmp_path / "cut"
    hook = "last:4" if where == "before" else "last:4:between"
    command = [
        sys.executable, "-m", "lrltool", "train-adapter", "-m", str(tiny_xlmr), "--train", str(corpus),
        "-o", str(out), *STEPS_ARGS, *args, "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LRLTOOL_PROGRESS": "0", runs.KILL_ENV: hook}
    killed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    temporary = sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".last."))
    if where == "before":  # the new checkpoint was complete under its temporary name; last is the old one
        assert runs.load_checkpoint(out / "checkpoints" / "last").state["step"] == 2 and len(temporary) == 1
    else:  # killed between two renames: no last, the old one and the new one under temporary names
        assert not (out / "checkpoints" / "last").exists() and ".last.old" in temporary
    resumed = _run(cli, tiny_xlmr, corpus, out, *args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    step = 2 if where == "before" else 4
    assert f"resuming {out} at step {step} of 6" in resumed.stderr
    if where == "between":
        assert (
            "was missing (the run was killed while it was being replaced); recovered the complete"
            in resumed.stderr
        )
    a, b = _adapter_tensors(tmp_path / "whole" / "adapter"), _adapter_tensors(out / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert runs.read_log(tmp_path / "whole" / "log.jsonl") == runs.read_log(out / "log.jsonl")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best", "last"]  # leftovers gone


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(cli, tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "lrltool", "train-adapter", "-m", str(tiny_xlmr), "--train", str(corpus),
        "-o", str(out), *STEPS_ARGS, "--max-steps", "4", "--eval-steps", "2", "--cache-dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LRLTOOL_PROGRESS": "0", runs.KILL_ENV: "best:2"}
    killed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    resumed = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "4", "--eval-steps", "2", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "the interrupted run saved no checkpoint; starting again at step 0" in resumed.stderr


# --- the model a run was trained on ---------------------------------------------------------------


def test_resume_follows_the_model_folder_and_refuses_other_weights_there(
    cli, tiny_xlmr, corpus, tmp_path, monkeypatch
):
    shutil.copytree(tiny_xlmr, tmp_path / "model")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cut = _run(cli, "model", corpus, out, "--max-steps", "4", env={"LRLTOOL_TEST_INTERRUPT_AT_STEP": "2"})
    assert cut.exit_code == 130, cut.stderr
    info = json.loads((out / "training.json").read_text())
    weights = tmp_path / "model" / "model.safetensors"
    original = weights.read_bytes()
    assert info["model"] == "model" and info["model_path"] == str((tmp_path / "model").resolve())
    assert info["model_hash"] == models.model_fingerprint(models.resolve_model(str(tmp_path / "model")))
    rebuilt = bytearray(original)
    rebuilt[-1] ^= 1  # the model folder rebuilt: same path, other weights
    weights.write_bytes(bytes(rebuilt))
    refused = _run(cli, "model", corpus, out, "--max-steps", "4", "--resume")
    _one_line_error(refused, "error: --resume with different settings than the interrupted run: model_hash")
    weights.write_bytes(original)
    monkeypatch.chdir(tmp_path / "elsewhere")  # the same model, typed otherwise from another folder
    resumed = _run(cli, "../model", corpus, out, "--max-steps", "4", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"resuming {out} at step 2 of 4" in resumed.stderr


# --- --deterministic --------------------------------------------------------------------------------


def test_the_deterministic_gather_equals_boolean_indexing_in_values_and_gradients():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 7, 5, generator=gen)
    selected = torch.rand(3, 7, generator=gen) < 0.4
    weights = torch.randn(int(selected.sum()), 5, generator=gen)
    results = []
    for on in (False, True):
        leaf = hidden.clone().requires_grad_(True)
        with devices.deterministic(on):
            rows = adapter._rows(leaf, selected)
            (rows * weights).sum().backward()
        results.append((rows.detach(), leaf.grad))
    (a, grad_a), (b, grad_b) = results
    assert torch.equal(a, hidden[selected]) and torch.equal(a, b) and torch.equal(grad_a, grad_b)
    assert int((grad_b != 0).any(-1).sum()) == int(selected.sum())  # the rows picked, and only them


def test_deterministic_training_on_cpu_equals_the_default_and_is_recorded(cli, tiny_xlmr, corpus, tmp_path):
    args = ["--max-steps", "3", "--lr", "1e-2"]
    plain = _run(cli, tiny_xlmr, corpus, tmp_path / "plain", *args)
    strict = _run(cli, tiny_xlmr, corpus, tmp_path / "strict", *args, "--deterministic")
    assert plain.exit_code == 0 and strict.exit_code == 0, strict.stderr
    a, b = _adapter_tensors(tmp_path / "plain" / "adapter"), _adapter_tensors(tmp_path / "strict" / "adapter")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the CPU is deterministic anyway
    assert json.loads((tmp_path / "strict" / "training.json").read_text())["deterministic"] is True
    assert json.loads((tmp_path / "plain" / "training.json").read_text())["deterministic"] is False
    assert not torch.are_deterministic_algorithms_enabled()  # the mode ends with the run


# --- watching a run -------------------------------------------------------------------------------


def test_report_to_tensorboard_writes_the_logged_values(cli, tiny_xlmr, corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = _run(cli, tiny_xlmr, corpus, out, "--max-steps", "6", "--report-to", "tensorboard")
    assert result.exit_code == 0, result.stderr
    events = EventAccumulator(str(out / "tensorboard" / "lrltool"))
    events.Reload()
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
    log = runs.read_log(out / "log.jsonl")
    for tag, key in (("train/loss", "loss"), ("train/learning_rate", "lr"), ("eval/loss", "eval_loss")):
        expected = [(e["step"], e[key]) for e in log if key in e]
        assert [s.step for s in scalars[tag]] == [step for step, _ in expected], tag
        assert [s.value for s in scalars[tag]] == pytest.approx([v for _, v in expected], rel=1e-6), tag
    assert [s.step for s in scalars["eval/loss"]] == [3, 6]
    assert [s.step for s in scalars["train/tokens_per_second"]] == [1, 2, 3, 4, 5, 6]
    assert all(s.value > 0 for s in scalars["train/tokens_per_second"])


@pytest.mark.slow
def test_report_to_wandb_logs_offline_into_the_run_folder(tiny_xlmr, corpus, tmp_path):
    out = tmp_path / "run"
    args = ["train-adapter", "-m", tiny_xlmr, "-o", out, "--train", corpus, *STEPS_ARGS, "--device", "cpu"]
    proc, network = run_offline_wandb([*args, "--max-steps", "3", "--report-to", "wandb"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and network == []  # offline: no lookup, no connection (wandb's telemetry)
    history, config = wandb_run(out)
    log = runs.read_log(out / "log.jsonl")
    assert [row["_step"] for row in history] == [1, 2, 3]
    for tag, key in (("train/loss", "loss"), ("train/learning_rate", "lr"), ("eval/loss", "eval_loss")):
        expected = [(e["step"], e[key]) for e in log if key in e]
        assert [(row["_step"], row[tag]) for row in history if tag in row] == expected, tag
    assert [row["_step"] for row in history if "eval/loss" in row] == [3]
    assert all(row["train/tokens_per_second"] > 0 for row in history)
    info = json.loads((out / "training.json").read_text())
    assert config["lr"] == info["settings"]["lr"] == 1e-4 and config["method"] == "seq_bn"
    assert config["max_steps"] == 3 and config["model"] == str(tiny_xlmr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "wandb-home"]  # wandb writes in RUN/wandb


def test_report_to_refuses_unknown_trackers_and_missing_packages(
    cli, tiny_xlmr, corpus, tmp_path, monkeypatch
):
    result = _run(cli, tiny_xlmr, corpus, tmp_path / "a", "--report-to", "mlflow")
    assert result.exit_code == 2 and "unknown --report-to 'mlflow'" in result.stderr
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    result = _run(cli, tiny_xlmr, corpus, tmp_path / "b", "--report-to", "wandb")
    assert result.exit_code == 2, result.stderr
    assert "--report-to wandb needs the wandb package" in result.stderr and "lrltool[wandb]" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
