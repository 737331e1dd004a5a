"""lrltool.models: untrusted configs refused, adapters attached, frozen, saved and loaded correctly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lrltool import models
from lrltool.errors import ModelError

ARCH_FIXTURES = ["tiny_xlmr", "tiny_bert", "tiny_llama"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The suite shares two cores with other jobs; oversubscribed torch threads are many times slower here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SENTENCES = ["Un câine mare a venit acasă.", "Ploaia cade încet peste oraș și peste câmpuri."]


def _copy_model(src: Path, dst: Path, **config_changes) -> Path:
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(config_changes)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _batch(tokenizer):
    return tokenizer(SENTENCES, return_tensors="pt", padding=True)


def _randomize_trainable(model, seed: int = 0) -> None:
    """Adapters start near identity (LoRA exactly); random weights make their effect visible."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _plain_model(path: Path):
    from transformers import AutoConfig, BertForMaskedLM, LlamaForCausalLM, XLMRobertaForMaskedLM

    cls = {"xlm-roberta": XLMRobertaForMaskedLM, "bert": BertForMaskedLM, "llama": LlamaForCausalLM}[
        AutoConfig.from_pretrained(path).model_type
    ]
    return cls.from_pretrained(path).eval()


# --- untrusted configs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"_attn_implementation_internal": "kernels-community/evil"}, "a hub repository"),
        ({"attn_implementation": "someone/flash"}, "a hub repository"),
        (
            {"text_config": {"_attn_implementation_internal": "a/b"}},
            "'text_config._attn_implementation_internal'",
        ),
        ({"_attn_implementation": "my_custom_attention"}, "not a built-in one"),
        ({"auto_map": {"AutoModel": "modeling_evil.EvilModel"}}, "run its own code"),
        ({"trust_remote_code": True}, "run its own code"),
        ({"model_type": "gpt2"}, "model type 'gpt2' is not supported"),
    ],
)
def test_hostile_or_unsupported_configs_are_refused_before_loading(
    tiny_xlmr, tmp_path, monkeypatch, changes, expected
):
    import transformers

    def must_not_load(*args, **kwargs):
        raise AssertionError("from_pretrained called on a refused model")

    monkeypatch.setattr(transformers.XLMRobertaForMaskedLM, "from_pretrained", must_not_load)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", must_not_load)
    folder = _copy_model(tiny_xlmr, tmp_path / "m", **changes)
    with pytest.raises(ModelError) as info:
        models.resolve_model(str(folder))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith(str(folder / "config.json"))


def test_tokenizer_with_remote_code_is_refused(tiny_xlmr, tmp_path):
    folder = _copy_model(tiny_xlmr, tmp_path / "m")
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["auto_map"] = {"AutoTokenizer": ["tok.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    with pytest.raises(ModelError, match="tokenizer wants to run its own code"):
        models.resolve_model(str(folder))


def test_pickle_only_weights_are_refused(tiny_xlmr, tmp_path):
    folder = _copy_model(tiny_xlmr, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"only pickle weights \(pytorch_model.bin\)"):
        models.resolve_model(str(folder))


def test_folder_without_weights_or_config_is_refused(tiny_xlmr, tmp_path):
    folder = _copy_model(tiny_xlmr, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"no weights \(\*\.safetensors\)"):
        models.resolve_model(str(folder))
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match=r"no config\.json"):
        models.resolve_model(str(folder))
    with pytest.raises(ModelError, match="no such model folder"):
        models.resolve_model(str(tmp_path / "missing" / "model"))


def test_local_folder_source(tiny_xlmr, tiny_llama):
    source = models.resolve_model(str(tiny_xlmr))
    assert (source.model_type, source.is_decoder, source.revision, source.objective) == (
        "xlm-roberta",
        False,
        None,
        "mlm",
    )
    assert source.max_positions == 128  # 130 position embeddings - padding index 1 - 1
    llama = models.resolve_model(str(tiny_llama))
    assert (llama.model_type, llama.is_decoder, llama.objective, llama.max_positions) == (
        "llama",
        True,
        "clm",
        128,
    )


def _fake_hub(monkeypatch, tmp_path, src: Path, commit: str = "a" * 40, **config_changes):
    """A fake HF cache snapshot of ``src`` and a snapshot_download that records what was asked for."""
    import huggingface_hub

    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / commit
    _copy_model(src, snapshot, **config_changes)
    calls = []

    def fake_snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kwargs):
        calls.append({"repo_id": repo_id, "revision": revision, "allow_patterns": list(allow_patterns)})
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return calls


def test_hub_model_downloads_config_first_then_safetensors_only(monkeypatch, tmp_path, tiny_xlmr):
    calls = _fake_hub(monkeypatch, tmp_path, tiny_xlmr, commit="0123456789abcdef0123456789abcdef01234567")
    source = models.resolve_model("org/tiny", revision="v1.0")
    assert source.revision == "0123456789abcdef0123456789abcdef01234567"
    assert source.name == "org/tiny"
    assert calls[0]["allow_patterns"] == ["config.json"]
    second = calls[1]["allow_patterns"]
    assert "model.safetensors" in second and "tokenizer.json" in second
    assert not [p for p in second if p.endswith((".bin", ".pt", ".pth", ".py", ".ckpt"))]
    assert calls[0]["revision"] == "v1.0"
    assert calls[1]["revision"] == "0123456789abcdef0123456789abcdef01234567"  # pinned to what was validated
    assert all(c["repo_id"] == "org/tiny" for c in calls)


def test_hostile_hub_config_stops_before_weights_download(monkeypatch, tmp_path, tiny_xlmr):
    calls = _fake_hub(monkeypatch, tmp_path, tiny_xlmr, _attn_implementation_internal="evil/kernels")
    with pytest.raises(ModelError, match=r"org/tiny/config\.json: .*a hub repository"):
        models.resolve_model("org/tiny")
    assert [c["allow_patterns"] for c in calls] == [["config.json"]]


def test_offline_hub_model_not_in_cache_says_how_to_get_it(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelError) as info:
        models.resolve_model("xlm-roberta-base")
    text = str(info.value)
    assert "'xlm-roberta-base' is not in the Hugging Face cache" in text
    assert "hf download xlm-roberta-base" in text


def test_load_model_passes_attention_and_safetensors_explicitly(tiny_xlmr, monkeypatch):
    import transformers

    seen = {}
    real = transformers.XLMRobertaForMaskedLM.from_pretrained

    def spy(path, **kwargs):
        seen.update(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(transformers.XLMRobertaForMaskedLM, "from_pretrained", spy)
    model = models.load_model(models.resolve_model(str(tiny_xlmr)))
    assert seen["attn_implementation"] == "sdpa"
    assert seen["use_safetensors"] is True
    assert "trust_remote_code" not in seen
    assert not model.training
    assert hasattr(model, "adapters_config")  # adapters.init applied


def test_decoder_tokenizer_pads_with_eos(tiny_llama):
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_llama)))
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"


# --- adapters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"), [("seq_bn", 894_528), ("seq_bn_inv", 1_190_592), ("lora", 294_912)]
)
def test_parameter_counts_on_xlmr_base_dimensions(method, expected):
    import adapters
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    config = XLMRobertaConfig(
        vocab_size=1000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    )
    with torch.device("meta"):  # shapes only: no 85M random weights to initialise
        model = XLMRobertaForMaskedLM(config)
    adapters.init(model)
    assert models.add_adapter(model, "lang", method) == expected
    assert models.trainable_parameters(model) == expected


@pytest.mark.parametrize("fixture", ARCH_FIXTURES)
@pytest.mark.parametrize("method", ["seq_bn", "seq_bn_inv", "lora"])
def test_only_adapter_weights_train(request, fixture, method):
    source = models.resolve_model(str(request.getfixturevalue(fixture)))
    model = models.load_model(source)
    count = models.add_adapter(model, "lang", method)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(models.is_adapter_parameter(n, "lang") for n in trainable)
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    head = {
        "xlm-roberta": ["lm_head.dense.weight", "lm_head.layer_norm.weight", "lm_head.bias"],
        "bert": ["cls.predictions.transform.dense.weight", "cls.predictions.transform.LayerNorm.weight"],
        "llama": ["lm_head.weight"],
    }[source.model_type]
    assert set(head) <= frozen
    assert not model.training  # add_adapter keeps the mode it found


def test_full_method_trains_everything(tiny_xlmr):
    model = models.load_model(models.resolve_model(str(tiny_xlmr)))
    total = sum(p.numel() for p in model.parameters())
    assert models.add_adapter(model, "lang", "full") == total


def test_unknown_method_is_one_line_error(tiny_xlmr):
    model = models.load_model(models.resolve_model(str(tiny_xlmr)))
    with pytest.raises(
        ModelError, match="unknown adapter method 'houlsby'; choose one of seq_bn, seq_bn_inv, lora, full"
    ):
        models.add_adapter(model, "lang", "houlsby")


@pytest.mark.parametrize("fixture", ARCH_FIXTURES)
@pytest.mark.parametrize("method", ["seq_bn", "seq_bn_inv", "lora"])
def test_deactivated_adapter_gives_the_base_logits_exactly(request, fixture, method):
    path = request.getfixturevalue(fixture)
    source = models.resolve_model(str(path))
    tokenizer = models.load_tokenizer(source)
    batch = _batch(tokenizer)
    with torch.no_grad():
        base = _plain_model(path)(**batch).logits  # plain transformers: the LM-head bias is there
    model = models.load_model(source)
    models.add_adapter(model, "lang", method)
    _randomize_trainable(model)
    with torch.no_grad():
        active = model(**batch).logits
        model.set_active_adapters(None)
        inactive = model(**batch).logits
    assert torch.equal(inactive, base)
    assert (active - base).abs().max() > 1e-3  # the adapter does change the output when active


def _manual_inverse_logits(model, source, batch, inv):
    """Logits computed by hand: body, head transform, inverse adapter, output embedding (weights, bias)."""
    hidden = model.base_model(**batch).last_hidden_state
    if source.model_type == "xlm-roberta":
        head = model.lm_head
        x = head.layer_norm(torch.nn.functional.gelu(head.dense(hidden)))
        return torch.nn.functional.linear(inv(x, rev=True), head.decoder.weight, head.bias)
    if source.model_type == "bert":
        pred = model.cls.predictions
        x = pred.transform(hidden)
        return torch.nn.functional.linear(inv(x, rev=True), pred.decoder.weight, pred.bias)
    return torch.nn.functional.linear(
        inv(hidden, rev=True), model.lm_head.weight
    )  # not lm_head(): it has the hook


@pytest.mark.parametrize("fixture", ARCH_FIXTURES)
def test_invertible_adapter_runs_forward_and_inverse_and_gets_gradients(request, fixture):
    source = models.resolve_model(str(request.getfixturevalue(fixture)))
    tokenizer = models.load_tokenizer(source)
    batch = _batch(tokenizer)
    model = models.load_model(source)
    models.add_adapter(model, "lang", "seq_bn_inv")
    _randomize_trainable(model)
    inv = model.base_model.invertible_adapters["lang"]
    calls = []
    inv.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs.get("rev", False)), with_kwargs=True
    )
    logits = model(**batch).logits
    assert calls == [False, True]  # after the embeddings, then the inverse before the output embedding
    with torch.no_grad():
        calls.clear()
        expected = _manual_inverse_logits(model, source, batch, inv)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    logits.float().logsumexp(-1).mean().backward()
    grads = {n: p.grad for n, p in inv.named_parameters()}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def _no_embedding_matrix(folder: Path, vocab_size: int) -> None:
    from safetensors import safe_open

    with safe_open(str(folder / models.ADAPTER_SAFETENSORS), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a dict
            shape = f.get_slice(key).get_shape()
            assert vocab_size not in shape, key
            assert "embeddings.word_embeddings" not in key and "lm_head" not in key and "decoder" not in key


@pytest.mark.parametrize("fixture", ARCH_FIXTURES)
@pytest.mark.parametrize("method", ["seq_bn", "seq_bn_inv", "lora"])
def test_saved_adapter_loads_with_plain_adapters_code_and_in_lrltool(request, tmp_path, fixture, method):
    import adapters

    path = request.getfixturevalue(fixture)
    source = models.resolve_model(str(path))
    batch = _batch(models.load_tokenizer(source))
    model = models.load_model(source)
    models.add_adapter(model, "ron", method)
    _randomize_trainable(model, seed=3)
    with torch.no_grad():
        expected = model(**batch).logits
    out = tmp_path / "adapter"
    models.save_adapter(model, "ron", out)
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter.safetensors",
        "adapter_config.json",
        "pytorch_adapter.bin",
    ]
    _no_embedding_matrix(out, source.config["vocab_size"])
    assert sum(p.stat().st_size for p in out.iterdir()) < 200_000

    fresh = _plain_model(path)  # plain adapters-library code, as a user would write it
    adapters.init(fresh)
    name = fresh.load_adapter(str(out), set_active=True)
    assert name == "ron"
    if method == "seq_bn_inv":
        models.ensure_inverse_hook(fresh)  # adapters 1.3.0 skips the inverse with static HF classes
    with torch.no_grad():
        assert torch.equal(fresh(**batch).logits, expected)

    ours = models.load_model(source)
    assert models.load_adapter(ours, out) == "ron"
    with torch.no_grad():
        assert torch.equal(ours(**batch).logits, expected)


def test_load_adapter_from_run_folder_with_new_name(tiny_xlmr, tmp_path):
    source = models.resolve_model(str(tiny_xlmr))
    model = models.load_model(source)
    models.add_adapter(model, "ron", "seq_bn")
    models.save_adapter(model, "ron", tmp_path / "run" / "adapter")
    other = models.load_model(source)
    assert models.find_adapter_dir(tmp_path / "run") == tmp_path / "run" / "adapter"
    assert models.load_adapter(other, tmp_path / "run", name="lang_ro") == "lang_ro"
    assert "lang_ro" in other.adapters_config.adapters


def test_load_adapter_refuses_other_models(tiny_xlmr, tiny_bert, tmp_path):
    from lrltool.tiny import build_tiny

    source = models.resolve_model(str(tiny_xlmr))
    model = models.load_model(source)
    models.add_adapter(model, "ron", "seq_bn")
    models.save_adapter(model, "ron", tmp_path / "adapter")
    bert = models.load_model(models.resolve_model(str(tiny_bert)))
    with pytest.raises(ModelError, match="made for a xlm-roberta model, not bert"):
        models.load_adapter(bert, tmp_path / "adapter")
    wide = build_tiny("xlmr", tmp_path / "wide", hidden_size=32, num_heads=2)
    narrow = models.load_model(models.resolve_model(str(wide)))
    with pytest.raises(ModelError, match="made for hidden size 64, the model has 32"):
        models.load_adapter(narrow, tmp_path / "adapter")
    deep = build_tiny("xlmr", tmp_path / "deep", num_layers=1)
    shallow = models.load_model(models.resolve_model(str(deep)))
    with pytest.raises(ModelError, match="weights do not fit this model"):
        models.load_adapter(shallow, tmp_path / "adapter")


def test_find_adapter_dir(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    (tmp_path / "full" / "model").mkdir(parents=True)
    (tmp_path / "full" / "model" / "config.json").write_text("{}")
    assert models.find_adapter_dir(tmp_path / "a") == tmp_path / "a"
    assert models.find_adapter_dir(tmp_path / "full") == tmp_path / "full" / "model"
    with pytest.raises(ModelError, match="not an adapter folder"):
        models.find_adapter_dir(tmp_path)
    with pytest.raises(ModelError, match="no such adapter folder"):
        models.find_adapter_dir(tmp_path / "nope")


def test_model_fingerprint_hashes_the_weights_once_and_again_when_they_change(
    tiny_xlmr, tmp_path, monkeypatch
):
    import hashlib

    from lrltool.models import loading

    model = tmp_path / "model"
    shutil.copytree(tiny_xlmr, model)
    weights = model / "model.safetensors"
    file_hash = hashlib.sha256(weights.read_bytes()).hexdigest()
    expected = "sha256:" + hashlib.sha256(f"model.safetensors\0{file_hash}\n".encode()).hexdigest()
    source = models.resolve_model(str(model))
    cache = tmp_path / "cache"
    assert models.model_fingerprint(source, cache_dir=cache) == expected
    assert file_hash in (cache / "weights-hashes.json").read_text()
    hashed = []
    real = loading._sha256_file
    monkeypatch.setattr(loading, "_sha256_file", lambda path: hashed.append(path) or real(path))
    assert models.model_fingerprint(source, cache_dir=cache) == expected and hashed == []  # from the cache
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the same size, another last byte (and another mtime)
    weights.write_bytes(bytes(data))
    changed = models.model_fingerprint(source, cache_dir=cache)
    assert changed != expected and hashed == [weights.resolve()]
    assert models.model_location(source) == str(model.resolve())
