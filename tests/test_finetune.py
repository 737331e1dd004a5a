"""lrltool finetune: label alignment, MAD-X and fusion freezing, resume, seeds, presets, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from task_helpers import (
    evaluate_run,
    make_full_run,
    make_lang_run,
    make_task_data,
    read_jsonl,
    write_jsonl,
)

from lrltool import models
from lrltool.downstream import finetune as ft
from lrltool.downstream.data import Example, align_words, collate, encode_examples, read_task_data
from lrltool.downstream.model import build_task_model, load_finetuned
from lrltool.errors import InputError, ModelError, UsageError
from lrltool.tasks import TASKS, get_task
from tests.wandb_helpers import wandb_run

SIB200_LABELS, WIKIANN_TAGS = TASKS["tc"].labels, TASKS["ner"].labels
FAST = dict(max_steps=4, batch_size=8, eval_steps=2)


def _words(text: str) -> list[str]:
    return text.split()


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("task-data")
    return {task: make_task_data(root / task, task) for task in ("tc", "sa", "ner")}


@pytest.fixture(scope="module")
def xlmr_lang_runs(tiny_xlmr, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lang-runs")
    return {
        "glotcc": make_lang_run(tiny_xlmr, root / "glotcc", method="seq_bn_inv", source="glotcc", seed=1),
        "conceptnet": make_lang_run(
            tiny_xlmr, root / "conceptnet", method="seq_bn", source="conceptnet", seed=2
        ),
    }


def _train(task, model, data, out, *, lang_adapters=(), fusion=False, **settings):
    prep = ft.prepare(
        task=task,
        model=str(model),
        data=data,
        lang_adapters=[str(p) for p in lang_adapters],
        fusion=fusion,
        method=settings.get("method", "adapter"),
    )
    return ft.train_run(prep, ft.make_settings(task, **{**FAST, **settings}), out=out, device="cpu")


def _fresh_lang_params(model_dir: Path, run: Path, name: str, head: str) -> dict[str, torch.Tensor]:
    """The language adapter's weights as an independent load puts them into a fresh model."""
    source = models.resolve_model(str(model_dir))
    net, _ = models.load_task_model(source, head=head, labels=["a", "b"])
    models.load_adapter(net, run, name=name, set_active=False)
    return {n: p.detach().clone() for n, p in net.named_parameters() if models.is_adapter_parameter(n, name)}


# --- NER label alignment --------------------------------------------------------------------------


def test_ner_labels_first_subtoken_and_all_subwords_on_a_hand_made_example(tiny_bert):
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_bert)))
    spec = get_task("ner")
    example = Example(id="x", text=None, tokens=["Ion", "câine", "Popescu"], gold=[1, 0, 2])
    tokens = tokenizer.convert_ids_to_tokens(
        encode_examples([example], tokenizer, spec, max_length=64)[0].input_ids
    )
    assert tokens == ["[CLS]", "I", "##on", "câ", "##ine", "P", "##op", "##e", "##sc", "##u", "[SEP]"]
    first = encode_examples([example], tokenizer, spec, max_length=64)[0]
    assert first.labels.tolist() == [-100, 1, -100, 0, -100, 2, -100, -100, -100, -100, -100]
    assert first.first.tolist() == [1, 3, 5]
    assert first.word_of.tolist() == [-1, 0, 0, 1, 1, 2, 2, 2, 2, 2, -1]
    every = encode_examples([example], tokenizer, spec, max_length=64, label_all_subwords=True)[0]
    assert every.labels.tolist() == [-100, 1, 1, 0, 0, 2, 2, 2, 2, 2, -100]
    # truncation: 6 tokens keep [CLS] + 4 sub-tokens + [SEP]; the third word is cut off entirely
    cut = encode_examples([example], tokenizer, spec, max_length=6)[0]
    assert cut.labels.tolist() == [-100, 1, -100, 0, -100, -100]
    assert cut.first.tolist() == [1, 3, -1]


@pytest.mark.parametrize("fixture", ["tiny_xlmr", "tiny_bert"])
def test_word_alignment_equals_is_split_into_words_for_encoders(request, fixture):
    from lrltool.tiny import corpus_lines

    tokenizer = models.load_tokenizer(models.resolve_model(str(request.getfixturevalue(fixture))))
    word_lists = [line.split() for line in corpus_lines()[:150]] + [["Ion", "(", "n.", "1950", ")", "."]]
    aligned = align_words(tokenizer, word_lists, 128)
    for words, (ids, word_of) in zip(word_lists, aligned, strict=True):
        reference = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128)
        assert ids.tolist() == reference["input_ids"]
        assert word_of.tolist() == [-1 if w is None else w for w in reference.word_ids()]


def test_word_alignment_for_a_byte_level_decoder_keeps_the_spaces(tiny_llama):
    tokenizer = models.load_tokenizer(models.resolve_model(str(tiny_llama)))
    words = ["Ion", "Popescu", "a", "venit", "."]
    ids, word_of = align_words(tokenizer, [words], 64)[0]
    assert ids.tolist() == tokenizer("Ion Popescu a venit .")["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids.tolist())
    # every word's pieces re-join to the word (with its leading space, Ġ, from the second word on)
    for w, word in enumerate(words):
        joined = "".join(p for p, k in zip(pieces, word_of, strict=True) if k == w)
        assert joined == ("Ġ" if w else "") + word


# --- settings -------------------------------------------------------------------------------------


def test_paper_preset_and_explicit_values():
    ner = ft.make_settings("ner", "paper")
    assert (ner.lr, ner.batch_size, ner.weight_decay, ner.warmup_ratio, ner.epochs, ner.max_length) == (
        1e-4,
        32,
        0.01,
        0.05,
        100.0,
        512,
    )
    assert (ft.make_settings("tc", "paper").epochs, ft.make_settings("tc", "paper").max_length) == (20.0, 256)
    assert (ft.make_settings("sa", "paper").epochs, ft.make_settings("sa", "paper").max_length) == (25.0, 512)
    assert ft.make_settings("sa", "paper", epochs=2, lr=3e-4).epochs == 2
    assert ft.make_settings("tc", method="full").lr == 2e-5
    with pytest.raises(UsageError, match="unknown preset 'fast'"):
        ft.make_settings("tc", "fast")
    with pytest.raises(UsageError, match="--batch-size must be positive"):
        ft.make_settings("tc", batch_size=0)
    assert ft.parse_seeds("1,2,3") == [1, 2, 3]
    with pytest.raises(UsageError, match="distinct"):
        ft.parse_seeds("1,1")


@pytest.mark.parametrize("select_by", ["loss", "metric"])
def test_the_exported_step_is_the_best_by_the_chosen_criterion(tiny_xlmr, data_dirs, tmp_path, select_by):
    """--select-by loss (the seed's Trainer, set by --preset paper) or metric, checked against log.jsonl."""
    from lrltool import runs

    assert (
        ft.make_settings("tc", "paper").select_by == "loss" and ft.make_settings("tc").select_by == "metric"
    )
    with pytest.raises(UsageError, match="unknown --select-by 'f1'"):
        ft.make_settings("tc", select_by="f1")
    prep = ft.prepare(task="tc", model=str(tiny_xlmr), data=data_dirs["tc"], lang_adapters=[], fusion=False)
    settings = ft.make_settings("tc", max_steps=8, batch_size=8, eval_steps=2, lr=1e-3, select_by=select_by)
    result = ft.train_run(prep, settings, out=tmp_path / "run", device="cpu")
    evals = [e for e in runs.read_log(tmp_path / "run" / "log.jsonl") if "eval_loss" in e]
    assert [e["step"] for e in evals] == [2, 4, 6, 8]
    if select_by == "loss":  # the first of the lowest, as the Trainer keeps the first best
        expected = min(evals, key=lambda e: e["eval_loss"])
        assert result.info["best_score"] == pytest.approx(expected["eval_loss"], abs=1e-6)
    else:
        expected = max(evals, key=lambda e: e["eval_macro_f1"])
        assert result.info["best_score"] == expected["eval_macro_f1"]
    assert result.info["best_step"] == expected["step"]
    assert result.info["settings"]["select_by"] == select_by


# --- MAD-X and fusion -----------------------------------------------------------------------------


def test_madx_trains_only_task_adapter_and_head_language_adapter_bitwise_unchanged(
    tiny_xlmr, data_dirs, xlmr_lang_runs, tmp_path
):
    lang_run = xlmr_lang_runs["glotcc"]
    result = _train("tc", tiny_xlmr, data_dirs["tc"], tmp_path / "run", lang_adapters=[lang_run])
    net = result.task.model
    assert str(net.active_adapters) == "Stack[lang, tc]"
    expected = _fresh_lang_params(tiny_xlmr, lang_run, "lang", "sequence-classification")
    assert any("invertible_adapters" in n for n in expected)  # seq_bn_inv: the NICE block is there too
    params = dict(net.named_parameters())
    for name, tensor in expected.items():
        assert torch.equal(params[name], tensor), name
        assert not params[name].requires_grad
    assert {n for n, p in params.items() if p.requires_grad} == (
        models.adapter_parameter_names(net, "tc") | set(result.task.head_names)
    )
    # the task adapter and the head did train; the base model did not
    base = models.load_task_model(
        models.resolve_model(str(tiny_xlmr)), head="sequence-classification", labels=list(SIB200_LABELS)
    )[0]
    base_params = dict(base.named_parameters())
    assert all(torch.equal(params[n], base_params[n]) for n in base_params if n.startswith("roberta."))
    saved = load_file(str(tmp_path / "run" / "adapter" / "adapter.safetensors"))
    assert saved and all(".tc." in key for key in saved)
    assert any(not torch.equal(params[k], torch.zeros_like(params[k])) for k in saved)
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert (info["lang_method"], info["lang_source"], info["lang"], info["task_method"]) == (
        "seq_bn_inv",
        "glotcc",
        "ron_Latn",
        "adapter",
    )
    assert info["trainable_parameters"] == sum(p.numel() for p in net.parameters() if p.requires_grad)
    # the language adapter is really in the forward pass: switching it off changes the logits
    batch = collate(
        encode_examples(
            read_task_data(data_dirs["tc"] / "test.jsonl", get_task("tc"), SIB200_LABELS).examples[:4],
            result.task.tokenizer,
            get_task("tc"),
            max_length=64,
        ),
        result.task.pad_id,
    )
    batch.pop("labels")
    with torch.no_grad():
        stacked = net(**batch).logits
        net.set_active_adapters("tc")
        alone = net(**batch).logits
    assert not torch.allclose(stacked, alone)


def test_fusion_trains_fusion_task_adapter_and_head_both_language_adapters_unchanged(
    tiny_xlmr, data_dirs, xlmr_lang_runs, tmp_path
):
    runs_ = [xlmr_lang_runs["conceptnet"], xlmr_lang_runs["glotcc"]]
    result = _train("ner", tiny_xlmr, data_dirs["ner"], tmp_path / "run", lang_adapters=runs_, fusion=True)
    net = result.task.model
    assert result.task.lang_names == ["lang_conceptnet", "lang_glotcc"]
    assert str(net.active_adapters) == "Stack[Fuse[lang_conceptnet, lang_glotcc], ner]"
    params = dict(net.named_parameters())
    for run, name in zip(runs_, result.task.lang_names, strict=True):
        expected = _fresh_lang_params(tiny_xlmr, run, name, "token-classification")
        assert expected
        for key, tensor in expected.items():
            assert torch.equal(params[key], tensor), key
    fusion = models.fusion_parameter_names(net)
    trainable = {n for n, p in params.items() if p.requires_grad}
    assert fusion and fusion <= trainable
    assert trainable == fusion | models.adapter_parameter_names(net, "ner") | set(result.task.head_names)
    info = result.info
    assert (info["lang_method"], info["lang_source"], info["fusion"]) == ("fusion", "glotcc+conceptnet", True)
    assert sorted(p.name for p in (tmp_path / "run" / "fusion").iterdir()) == [
        "adapter_fusion_config.json",
        "model_adapter_fusion.safetensors",
        "pytorch_model_adapter_fusion.bin",
    ]
    # the fusion layer moved away from its initialisation (it trained)
    fresh = build_task_model(
        get_task("ner"),
        list(WIKIANN_TAGS),
        base=models.resolve_model(str(tiny_xlmr)),
        lang_infos=info["lang_adapters"],
        method="adapter",
        fusion=True,
        reduction_factor=16,
        seed=42,
        device="cpu",
    ).model
    fresh_params = dict(fresh.named_parameters())
    assert any(not torch.equal(params[n], fresh_params[n]) for n in fusion)


def test_bert_pooler_missing_from_checkpoint_trains_and_is_saved_with_the_head(
    tiny_bert, data_dirs, tmp_path
):
    result = _train("sa", tiny_bert, data_dirs["sa"], tmp_path / "run")
    assert result.task.head_names == [
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    head = load_file(str(tmp_path / "run" / "adapter" / "model_head.safetensors"))
    params = dict(result.task.model.named_parameters())
    assert sorted(head) == sorted(result.task.head_names)
    assert all(torch.equal(head[k], params[k]) for k in head)
    rebuilt = load_finetuned(result.info, tmp_path / "run", device="cpu").model
    assert all(torch.equal(v, params[k]) for k, v in rebuilt.named_parameters() if k in params)


def test_full_language_run_is_the_base_model_plus_a_task_adapter(tiny_xlmr, data_dirs, tmp_path):
    full_run = make_full_run(tiny_xlmr, tmp_path / "full-run", source="conceptnet")
    prep = ft.prepare(task="tc", model=None, data=data_dirs["tc"], lang_adapters=[str(full_run)])
    assert prep.base.path == (full_run / "model").resolve()
    assert prep.model_name == str(tiny_xlmr)  # the base model's name (from the run), for the records
    result = ft.train_run(prep, ft.make_settings("tc", **FAST), out=tmp_path / "run", device="cpu")
    assert (result.info["lang_method"], result.info["lang_source"]) == ("full", "conceptnet")
    assert result.task.lang_names == []
    assert str(result.task.model.active_adapters) == "Stack[tc]"
    records = evaluate_run(task="tc", run=tmp_path / "run", data=data_dirs["tc"] / "validation.jsonl")
    assert (records[0]["method"], records[0]["source"], records[0]["model"]) == (
        "full",
        "conceptnet",
        str(tiny_xlmr),
    )
    assert records[0]["value"] == result.info["best_score"]


def test_full_fine_tuning_trains_every_weight_and_writes_a_plain_model(tiny_xlmr, data_dirs, tmp_path):
    result = _train("tc", tiny_xlmr, data_dirs["tc"], tmp_path / "run", method="full")
    net = result.task.model
    assert all(p.requires_grad for p in net.parameters())
    assert result.info["trainable_parameters"] == sum(p.numel() for p in net.parameters())
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert "adapters" not in config
    assert config["id2label"] == {str(i): label for i, label in enumerate(SIB200_LABELS)}
    assert not (tmp_path / "run" / "adapter").exists()
    from transformers import XLMRobertaForSequenceClassification

    plain = XLMRobertaForSequenceClassification.from_pretrained(tmp_path / "run" / "model").eval()
    ids = torch.tensor([[0, 100, 200, 2]])
    with torch.no_grad():
        assert torch.allclose(plain(ids).logits, net.eval()(ids).logits, atol=1e-6)
    records = evaluate_run(task="tc", run=tmp_path / "run", data=data_dirs["tc"] / "validation.jsonl")
    assert (records[0]["task_method"], records[0]["method"]) == ("full", "base")
    assert records[0]["value"] == result.info["best_score"]


# --- the exported checkpoint, resume, early stopping, seeds ----------------------------------------


def test_exported_weights_are_the_best_validation_checkpoint(tiny_xlmr, data_dirs, tmp_path):
    result = _train("tc", tiny_xlmr, data_dirs["tc"], tmp_path / "run", max_steps=6, eval_steps=1, lr=1e-2)
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    scores = {e["step"]: e["eval_macro_f1"] for e in log if "eval_macro_f1" in e}
    assert sorted(scores) == [1, 2, 3, 4, 5, 6]
    best_step = max(scores, key=lambda s: (scores[s], -s))  # the first step with the highest score
    assert scores[6] != scores[best_step]  # the last step is worse: exporting it would show
    assert (result.info["best_step"], result.info["best_score"]) == (best_step, scores[best_step])
    # evaluating the exported run on the validation split gives the best score again
    records = evaluate_run(task="tc", run=tmp_path / "run", data=data_dirs["tc"] / "validation.jsonl")
    assert records[0]["metric"] == "macro_f1" and records[0]["split"] == "validation"
    assert records[0]["value"] == scores[best_step]
    # the logged validation loss is the model's own mean cross-entropy over the validation set
    spec = get_task("tc")
    validation = read_task_data(data_dirs["tc"] / "validation.jsonl", spec, SIB200_LABELS).examples
    batch = collate(encode_examples(validation, result.task.tokenizer, spec, max_length=128), 1)
    with torch.no_grad():
        loss = result.task.model.eval()(**batch).loss.item()
    (logged,) = [e["eval_loss"] for e in log if e["step"] == best_step and "eval_loss" in e]
    assert logged == pytest.approx(loss, abs=2e-6)


def test_patience_stops_when_the_score_stops_improving(tiny_xlmr, data_dirs, tmp_path):
    # a learning rate too small to change any prediction: the score never improves after the first evaluation
    result = _train(
        "tc", tiny_xlmr, data_dirs["tc"], tmp_path / "run", max_steps=20, eval_steps=2, lr=1e-12, patience=2
    )
    assert (result.info["steps"], result.info["stopped_early"], result.info["best_step"]) == (6, True, 2)
    assert result.info["finished"] is True


def test_resume_after_interrupt_ends_with_the_same_weights(
    cli, tiny_xlmr, data_dirs, xlmr_lang_runs, tmp_path
):
    lang = xlmr_lang_runs["glotcc"]
    args = [*_words("finetune --task ner --max-steps 6 --eval-steps 2 -b 8 --device cpu --lr 3e-3"),
            "--model", tiny_xlmr, "--data", data_dirs["ner"], "--lang-adapter", lang]  # fmt: skip
    straight = cli([*args, "-o", tmp_path / "straight"])
    assert straight.exit_code == 0, straight.stderr
    stopped = cli([*args, "-o", tmp_path / "resumed"], env={"LRLTOOL_TEST_INTERRUPT_AT_STEP": "3"})
    assert stopped.exit_code == 130
    assert "interrupted at step 3 of 6" in stopped.stderr and "--resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert not (tmp_path / "resumed" / "adapter").exists()
    assert json.loads((tmp_path / "resumed" / "training.json").read_text())["finished"] is False
    other = cli([*args, "-o", tmp_path / "resumed", "--resume", "--lr", "1e-3"])
    assert other.exit_code == 1 and "--resume with a different settings" in other.stderr
    resumed = cli([*args, "-o", tmp_path / "resumed", "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    for name in ("adapter.safetensors", "model_head.safetensors"):
        a = load_file(str(tmp_path / "straight" / "adapter" / name))
        b = load_file(str(tmp_path / "resumed" / "adapter" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    straight_log = read_jsonl(tmp_path / "straight" / "log.jsonl")
    assert straight_log == read_jsonl(tmp_path / "resumed" / "log.jsonl")
    finished = cli([*args, "-o", tmp_path / "resumed", "--resume"])
    assert finished.exit_code == 1 and "already finished" in finished.stderr


def test_resume_follows_the_model_folder_and_refuses_other_weights_there(
    cli, tiny_xlmr, data_dirs, tmp_path, monkeypatch
):
    shutil.copytree(tiny_xlmr, tmp_path / "model")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    args = [
        *_words("finetune --task tc --max-steps 4 --eval-steps 2 -b 8 --device cpu"),
        "--data",
        data_dirs["tc"],
    ]
    cut = cli([*args, "--model", "model", "-o", out], env={"LRLTOOL_TEST_INTERRUPT_AT_STEP": "2"})
    assert cut.exit_code == 130, cut.stderr
    info = json.loads((out / "training.json").read_text())
    assert info["model"] == "model" and info["model_path"] == str((tmp_path / "model").resolve())
    assert info["model_hash"] == models.model_fingerprint(models.resolve_model(str(tmp_path / "model")))
    weights = tmp_path / "model" / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # the folder rebuilt: other weights
    refused = cli([*args, "--model", "model", "-o", out, "--resume"])
    assert refused.exit_code == 1 and "--resume with a different model_hash" in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]  # after the info line on the max length
    assert last.startswith(f"error: {out}") and "Traceback" not in refused.stderr
    weights.write_bytes(original)
    monkeypatch.chdir(tmp_path / "elsewhere")  # the same model, typed otherwise from another folder
    resumed = cli([*args, "--model", "../model", "-o", out, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming" in resumed.stderr and (out / "adapter").is_dir()


def test_seeds_write_one_full_run_each(cli, tiny_xlmr, data_dirs, tmp_path):
    out = tmp_path / "seeds"
    common = [*_words("finetune --task sa --max-steps 2 -b 8 --device cpu"), "--model", tiny_xlmr,
              "--data", data_dirs["sa"], "-o", out]  # fmt: skip
    result = cli([*common, "--seeds", "1,2", "--lang", "ro"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["seed-1", "seed-2"]
    infos = [json.loads((out / f"seed-{s}" / "training.json").read_text()) for s in (1, 2)]
    assert [i["seed"] for i in infos] == [1, 2] and all(i["finished"] for i in infos)
    assert [i["lang"] for i in infos] == ["ron_Latn", "ron_Latn"]
    heads = [load_file(str(out / f"seed-{s}" / "adapter" / "model_head.safetensors")) for s in (1, 2)]
    assert not torch.equal(heads[0]["classifier.out_proj.weight"], heads[1]["classifier.out_proj.weight"])
    (out / ".done").touch()  # a Makefile's marker from an earlier run does not stop a rerun
    again = cli([*common, "--seeds", "1,2,3", "--lang", "ro", "--resume"])
    assert again.exit_code == 0, again.stderr
    assert "seed 1 has finished; keeping it" in again.stderr
    assert sorted(p.name for p in out.iterdir()) == [".done", "seed-1", "seed-2", "seed-3"]
    kept = load_file(str(out / "seed-1" / "adapter" / "model_head.safetensors"))
    assert all(torch.equal(kept[k], heads[0][k]) for k in heads[0])  # the finished seed was not retrained
    (out / "notes.txt").touch()
    refused = cli([*common, "--seeds", "1,2,3", "--force"])
    assert refused.exit_code == 1 and "holds other things than seed-N runs (notes.txt)" in refused.stderr
    (out / "notes.txt").unlink()
    replaced = cli([*common, "--seeds", "2", "--force"])  # --force: OUTDIR holds exactly the new seeds
    assert replaced.exit_code == 0, replaced.stderr
    assert sorted(p.name for p in out.iterdir()) == [".done", "seed-2"]


@pytest.mark.parametrize("task", ["tc", "ner"])
def test_decoder_models_train_with_pad_eos_last_token(tiny_llama, data_dirs, tmp_path, task):
    result = _train(task, tiny_llama, data_dirs[task], tmp_path / "run")
    tokenizer = result.task.tokenizer
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    if task == "tc":  # LlamaForSequenceClassification classifies the last token that is not padding
        assert result.task.model.config.pad_token_id == tokenizer.eos_token_id
    records = evaluate_run(task=task, run=tmp_path / "run")
    assert records[0]["n"] == 12


# --- bad input --------------------------------------------------------------------------------------


def _fails(result, code: int, text: str, *absent: Path) -> None:
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.stderr
    for path in absent:
        assert not path.exists(), path


def test_fusion_with_one_adapter_is_refused(cli, tiny_xlmr, data_dirs, xlmr_lang_runs, tmp_path):
    out = tmp_path / "run"
    args = ["finetune", "--task", "tc", "--model", tiny_xlmr, "--data", data_dirs["tc"], "-o", out]
    result = cli([*args, "--lang-adapter", xlmr_lang_runs["glotcc"], "--fusion"])
    _fails(result, 2, "--fusion needs exactly two --lang-adapter (got 1)", out)


def test_adapter_of_another_base_model_is_refused(cli, tiny_xlmr, tiny_bert, data_dirs, tmp_path):
    from lrltool.tiny import build_tiny

    other_bert = make_lang_run(tiny_bert, tmp_path / "bert-run")
    narrow = build_tiny("xlmr", tmp_path / "narrow-xlmr", hidden_size=32)
    narrow_run = make_lang_run(narrow, tmp_path / "narrow-run")
    out = tmp_path / "run"
    args = ["finetune", "--task", "tc", "--model", tiny_xlmr, "--data", data_dirs["tc"], "-o", out]
    for run, text in ((other_bert, "made for a bert model, not xlm-roberta"), (narrow_run, "hidden size 32")):
        result = cli([*args, "--lang-adapter", run])
        _fails(result, 1, text, out)


def test_unknown_label_and_empty_training_set_are_refused(cli, tiny_xlmr, data_dirs, tmp_path):
    bad = tmp_path / "bad"
    write_jsonl(
        bad / "train.jsonl",
        [{"id": "1", "text": "a b", "label": "travel"}, {"id": "2", "text": "c d", "label": "cooking"}],
    )
    out = tmp_path / "run"
    result = cli(["finetune", "--task", "tc", "--model", tiny_xlmr, "--data", bad, "-o", out])
    _fails(result, 1, f"{bad / 'train.jsonl'}:2: label 'cooking' is not one of the tc labels", out)
    assert "science/technology, travel" in result.stderr
    write_jsonl(bad / "train.jsonl", [])
    result = cli(["finetune", "--task", "tc", "--model", tiny_xlmr, "--data", bad, "-o", out])
    _fails(result, 1, "no tc examples in the file", out)
    write_jsonl(bad / "train.jsonl", [{"id": "1", "tokens": ["a", "b"], "tags": ["O"]}])
    result = cli(["finetune", "--task", "ner", "--model", tiny_xlmr, "--data", bad, "-o", out])
    _fails(result, 1, "train.jsonl:1: NER record has 2 tokens but 1 tags", out)


def test_option_combinations_are_refused(cli, tiny_xlmr, data_dirs, xlmr_lang_runs, tmp_path):
    out = tmp_path / "run"
    base = ["finetune", "--task", "tc", "--model", tiny_xlmr, "--data", data_dirs["tc"], "-o", out]
    _fails(
        cli([*base, "--method", "full", "--lang-adapter", xlmr_lang_runs["glotcc"]]),
        2,
        "--method full trains every weight",
        out,
    )
    two = ["--lang-adapter", xlmr_lang_runs["glotcc"], "--lang-adapter", xlmr_lang_runs["conceptnet"]]
    _fails(cli([*base, *two]), 2, "several --lang-adapter need --fusion", out)
    lora = make_lang_run(tiny_xlmr, tmp_path / "lora-run", method="lora", source="conceptnet")
    _fails(
        cli([*base, *two[:2], "--lang-adapter", lora, "--fusion"]), 2, "AdapterFusion fuses bottleneck", out
    )
    _fails(cli([*base, "--eval-steps", 3, "--eval-every-epoch"]), 2, "exclude each other", out)
    _fails(cli([*base, "--task", "pos"]), 2, "unknown task 'pos'", out)
    _fails(cli([*base[:-2], "--data", tmp_path / "nowhere", "-o", out]), 1, "--data is not a folder", out)


def test_output_folder_with_another_run_is_refused(cli, tiny_xlmr, data_dirs, tmp_path):
    out = tmp_path / "run"
    args = [*_words("finetune --task sa --max-steps 1 -b 8"), "--model", tiny_xlmr, "--data", data_dirs["sa"],
            "-o", out]  # fmt: skip
    assert cli(args).exit_code == 0
    before = (out / "training.json").read_bytes()
    _fails(cli(args), 1, "the output folder holds another run")
    assert (out / "training.json").read_bytes() == before
    forced = cli([*args, "--force"])
    assert forced.exit_code == 0, forced.stderr


def test_core_errors_name_the_problem(tiny_xlmr, data_dirs, xlmr_lang_runs):
    with pytest.raises(UsageError, match="--model is required"):
        ft.prepare(task="tc", model=None, data=data_dirs["tc"])
    with pytest.raises(ModelError, match="no such adapter folder"):
        ft.prepare(task="tc", model=str(tiny_xlmr), data=data_dirs["tc"], lang_adapters=["/nonexistent/run"])
    with pytest.raises(InputError, match=r"no train\.jsonl"):
        ft.prepare(task="tc", model=str(tiny_xlmr), data=data_dirs["tc"].parent)


# --- end to end on the bundled sample: fetch -> train-adapter -> finetune -> eval -> report ---------


@pytest.fixture(scope="module")
def pipeline(cli_module, tiny_xlmr, tmp_path_factory) -> dict[str, Path]:
    """The bundled Romanian sample fetched as published, and two tiny language adapters trained on it."""
    from conftest import EXAMPLES

    root = tmp_path_factory.mktemp("e2e")
    fetches = {"tc": "sib200", "sa": "sentiment", "ner": "wikiann"}
    for task, source in fetches.items():
        done = cli_module(["fetch", source, "--lang", "ron", "--input", EXAMPLES / source, "-o", root / task])
        assert done.exit_code == 0, done.stderr
    done = cli_module(
        ["fetch", "glotcc", "--lang", "ron", "--input", EXAMPLES / "glotcc", "-o", root / "glot.jsonl"]
    )
    assert done.exit_code == 0, done.stderr
    triples = cli_module(
        ["fetch", "conceptnet", "--lang", "ron", "--input", EXAMPLES / "conceptnet", "-o", "-"]
    )
    done = cli_module(["verbalize", "-o", root / "cn.jsonl"], input=triples.stdout)
    assert done.exit_code == 0, done.stderr
    train = [*_words("train-adapter --max-steps 2 --batch-size 4 --eval-steps 2"), "--model", tiny_xlmr]
    for name, text in (("glotcc", "glot.jsonl"), ("conceptnet", "cn.jsonl")):
        done = cli_module([*train, "--train", root / text, "-o", root / f"lang-{name}"])
        assert done.exit_code == 0, done.stderr
    done = cli_module([*train, "--method", "full", "--train", root / "glot.jsonl", "-o", root / "lang-full"])
    assert done.exit_code == 0, done.stderr
    return {"root": root, **{task: root / task for task in fetches}}


@pytest.fixture(scope="module")
def cli_module():
    from typer.testing import CliRunner

    from lrltool.cli import app

    runner = CliRunner()

    def invoke(args, input=None, env=None):
        return runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


@pytest.mark.parametrize("task", ["tc", "sa", "ner"])
@pytest.mark.parametrize("with_lang", [True, False], ids=["madx", "baseline"])
def test_end_to_end_train_adapter_finetune_eval(cli, pipeline, tiny_xlmr, task, with_lang, tmp_path):
    root = pipeline["root"]
    out = tmp_path / "run"
    args = [
        *_words(f"finetune --task {task} --max-steps 2 -b 8 --device cpu"),
        "--data",
        pipeline[task],
        "-o",
        out,
    ]
    args += ["--lang-adapter", root / "lang-glotcc"] if with_lang else ["--model", tiny_xlmr, "--lang", "ron"]
    done = cli(args)
    assert done.exit_code == 0, done.stderr
    assert done.stdout == ""  # stdout carries data only; finetune writes a folder
    evaluated = cli(["eval", "--task", task, "--run", out])
    assert evaluated.exit_code == 0, evaluated.stderr
    records = [json.loads(line) for line in evaluated.stdout.splitlines()]
    metrics = ["macro_f1", "accuracy"] if task != "ner" else ["precision", "recall", "f1"]
    assert [r["metric"] for r in records] == metrics
    n_test = {"tc": 204, "sa": 80, "ner": 60}[task]
    expected = ("seq_bn", "glotcc", str(root / "lang-glotcc")) if with_lang else ("base", None, None)
    for record in records:
        assert (record["method"], record["source"], record["adapter"]) == expected
        assert (record["task"], record["task_method"], record["lang"], record["n"]) == (
            task, "adapter", "ron_Latn", n_test,
        )  # fmt: skip
        assert record["model"] == str(tiny_xlmr) and record["split"] == "test"
        assert 0.0 <= record["value"] <= 1.0


def test_end_to_end_fusion_then_report(cli, pipeline, tmp_path):
    root = pipeline["root"]
    out = tmp_path / "fusion"
    langs = ["--lang-adapter", root / "lang-conceptnet", "--lang-adapter", root / "lang-glotcc", "--fusion"]
    args = [
        *_words("finetune --task ner --max-steps 2 -b 8 --device cpu --seeds 1,2"),
        "--data",
        pipeline["ner"],
    ]
    done = cli([*args, "-o", out, *langs])
    assert done.exit_code == 0, done.stderr
    evaluated = cli(["eval", "--task", "ner", "--run", out])
    assert evaluated.exit_code == 0, evaluated.stderr
    records = [json.loads(line) for line in evaluated.stdout.splitlines()]
    assert {(r["method"], r["source"]) for r in records} == {("fusion", "glotcc+conceptnet")}
    assert [r["seed"] for r in records if r["metric"] == "f1"] == [1, 2, None]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(evaluated.stdout)  # eval ... >> results.jsonl, then report
    report = cli(["report", metrics])
    assert report.exit_code == 0, report.stderr
    assert "fusion" in report.stdout


def test_end_to_end_on_a_full_continued_pretraining_run(cli, pipeline, tiny_xlmr, tmp_path):
    root = pipeline["root"]
    out = tmp_path / "run"
    args = [
        *_words("finetune --task tc --max-steps 2 -b 8 --device cpu"),
        "--data",
        pipeline["tc"],
        "-o",
        out,
    ]
    done = cli([*args, "--lang-adapter", root / "lang-full"])
    assert done.exit_code == 0, done.stderr
    info = json.loads((out / "training.json").read_text())
    assert info["base_model_path"] == str((root / "lang-full" / "model").resolve())
    evaluated = cli(["eval", "--task", "tc", "--run", out])
    assert evaluated.exit_code == 0, evaluated.stderr
    records = [json.loads(line) for line in evaluated.stdout.splitlines()]
    assert {(r["method"], r["source"], r["model"]) for r in records} == {("full", "glotcc", str(tiny_xlmr))}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "inf", "--lr must be a positive finite number, not inf"),
        ("--lr", "-1", "--lr must be a positive finite number, not -1.0"),
        ("--weight-decay", "nan", "--weight-decay must be a finite number >= 0, not nan"),
        ("--weight-decay", "-0.01", "--weight-decay must be a finite number >= 0, not -0.01"),
        ("--epochs", "inf", "--epochs must be a positive finite number, not inf"),
    ],
)
def test_non_finite_or_negative_settings_are_usage_errors(
    cli, tiny_xlmr, data_dirs, tmp_path, option, value, message
):
    out = tmp_path / "run"
    result = cli(["finetune", "--task", "sa", "--model", tiny_xlmr, "--data", data_dirs["sa"], "-o", out,
                  option, value])  # fmt: skip
    _fails(result, 2, f"error: {message}", out)


def test_a_run_folder_in_use_is_refused_and_leftovers_of_a_killed_run_go(cli, tiny_xlmr, data_dirs, tmp_path):
    import subprocess
    import sys

    from lrltool import runs
    from tests.paths import ROOT

    single, seeds = tmp_path / "single", tmp_path / "seeds"
    common = ["finetune", "--task", "sa", "--model", tiny_xlmr, "--data", data_dirs["sa"], "--max-steps", "1"]
    code = (
        "import sys, time; from lrltool import runs; locks = [runs.RunLock(p) for p in sys.argv[1:]];"
        " [lock.acquire('lrltool finetune elsewhere') for lock in locks]; print('ready', flush=True);"
        " time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(single), str(seeds)], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        for out, extra in ((single, []), (seeds, ["--seeds", "1,2"])):
            result = cli([*common, "-o", out, *extra])
            _fails(result, 1, f"{out}: another lrltool process is writing this run folder (pid {holder.pid}")
            assert "lrltool finetune elsewhere" in result.stderr
            assert [p.name for p in out.iterdir()] == [runs.LOCK_FILE]  # the holder's; nothing of ours
    finally:
        holder.kill()
        holder.wait()
    # A killed run's temporary files (training.json being replaced, an export) go when the folder is used.
    (single / ".training.json.abc123.tmp").write_text("{")
    (single / ".adapter.xyz").mkdir()
    result = cli([*common, "-o", single])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in single.iterdir()) == ["README.md", "adapter", "checkpoints", "log.jsonl",
                                                        "training.json"]  # fmt: skip


def test_eval_run_uses_the_recorded_model_from_any_folder_and_refuses_other_weights(
    cli, tiny_xlmr, data_dirs, tmp_path, monkeypatch
):
    """The issue's case: a run of "--model ../tiny" evaluated from another folder used another model."""
    shutil.copytree(tiny_xlmr, tmp_path / "tiny")
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "tiny").mkdir(parents=True)  # what "../tiny" names from b/sub: not a model
    (tmp_path / "b" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    out = tmp_path / "run"
    done = cli(["finetune", "--task", "sa", "--model", "../tiny", "--data", data_dirs["sa"], "-o", out,
                "--max-steps", "2", "-b", "8"])  # fmt: skip
    assert done.exit_code == 0, done.stderr
    info = json.loads((out / "training.json").read_text())
    assert info["model"] == "../tiny" and info["model_path"] == str((tmp_path / "tiny").resolve())
    here = cli(["eval", "--task", "sa", "--run", out])
    assert here.exit_code == 0, here.stderr
    monkeypatch.chdir(tmp_path / "b" / "sub")
    there = cli(["eval", "--task", "sa", "--run", out])
    assert there.exit_code == 0, there.stderr
    assert there.stdout == here.stdout and there.stdout.count("\n") == 2  # macro_f1, accuracy
    weights = tmp_path / "tiny" / "model.safetensors"
    rebuilt = bytearray(weights.read_bytes())
    rebuilt[-1] ^= 1
    weights.write_bytes(bytes(rebuilt))
    refused = cli(["eval", "--task", "sa", "--run", out])
    _fails(refused, 1, "is not the one this run was trained on (its weights differ)")


# --- gradient accumulation, precision, trackers ---------------------------------------------------


def _first_step_gradients(model_dir, data, task, **settings):
    from lrltool import devices

    prep = ft.prepare(
        task=task, model=str(model_dir), data=data, lang_adapters=[], fusion=False, method="adapter"
    )
    s = ft.make_settings(task, seed=3, **settings)
    accelerator = devices.make_accelerator("cpu")
    built = build_task_model(
        prep.spec, prep.labels, base=prep.base, lang_infos=[], method="adapter", fusion=False,
        reduction_factor=16, seed=3, device=accelerator.device,
    )  # fmt: skip
    model, _ = accelerator.prepare(built.model, ft._optimizer(built.model, s))
    work = ft.TaskTraining(prep, s, built, model, accelerator)
    model.eval()  # no dropout: micro-batches and one batch must give the same gradient
    loss, tokens = work.train_step(0)
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss, tokens, grads


@pytest.mark.parametrize("task", ["tc", "ner"])
def test_grad_accum_gives_the_gradient_of_one_batch(tiny_xlmr, data_dirs, task):
    loss1, _, _ = _first_step_gradients(tiny_xlmr, data_dirs[task], task, batch_size=8)
    loss3, tokens3, accum = _first_step_gradients(
        tiny_xlmr, data_dirs[task], task, batch_size=3, grad_accum=3
    )
    loss9, tokens9, nine = _first_step_gradients(tiny_xlmr, data_dirs[task], task, batch_size=9)
    # 3 x 3 micro-batches are the 9 examples of one batch of 9 (the same shuffled order), not those of 8
    assert loss3 == pytest.approx(loss9, rel=1e-5) and loss9 != pytest.approx(loss1, rel=1e-5)
    assert tokens3 == tokens9
    assert set(accum) == set(nine) and len(accum) > 0
    for name in nine:
        torch.testing.assert_close(accum[name], nine[name], rtol=1e-4, atol=1e-6)


def test_precision_and_tracker_options_are_checked_before_anything_is_written(
    cli, tiny_xlmr, data_dirs, tmp_path
):
    base = ["finetune", "-t", "tc", "-d", str(data_dirs["tc"]), "-m", str(tiny_xlmr), "--device", "cpu"]
    result = cli([*base, "-o", str(tmp_path / "a"), "--precision", "fp16"])
    assert result.exit_code == 2 and "--precision fp16 needs a CUDA device" in result.stderr
    result = cli([*base, "-o", str(tmp_path / "b"), "--precision", "fp8"])
    assert result.exit_code == 2 and "unknown --precision 'fp8'" in result.stderr
    result = cli([*base, "-o", str(tmp_path / "c"), "--grad-accum", "0"])
    assert result.exit_code == 2 and "--grad-accum must be positive" in result.stderr
    assert not any((tmp_path / name).exists() for name in "abc")


def test_finetune_reports_validation_scores_to_tensorboard(tiny_xlmr, data_dirs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    prep = ft.prepare(task="tc", model=str(tiny_xlmr), data=data_dirs["tc"], lang_adapters=[], fusion=False)
    settings = ft.make_settings("tc", **FAST, grad_accum=2)
    ft.train_run(prep, settings, out=tmp_path / "run", device="cpu", report_to="tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "lrltool"))
    events.Reload()
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    f1 = [(e["step"], e["eval_macro_f1"]) for e in log if "eval_macro_f1" in e]
    scalars = events.Scalars("eval/macro_f1")
    assert [s.step for s in scalars] == [2, 4] == [step for step, _ in f1]
    assert [s.value for s in scalars] == pytest.approx([v for _, v in f1], rel=1e-6)
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["settings"]["grad_accum"] == 2 and info["steps_per_epoch"] == 2  # 32 examples / (8 x 2)


def test_finetune_reports_to_wandb_offline(tiny_xlmr, data_dirs, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # restored after the test (lrltool sets it when unset)
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    prep = ft.prepare(task="tc", model=str(tiny_xlmr), data=data_dirs["tc"], lang_adapters=[], fusion=False)
    ft.train_run(prep, ft.make_settings("tc", **FAST), out=tmp_path / "run", device="cpu", report_to="wandb")
    history, config = wandb_run(tmp_path / "run")
    log = read_jsonl(tmp_path / "run" / "log.jsonl")
    for tag, key in (
        ("train/learning_rate", "lr"),
        ("eval/macro_f1", "eval_macro_f1"),
        ("eval/loss", "eval_loss"),
    ):
        expected = [(e["step"], e[key]) for e in log if key in e]
        assert [(row["_step"], row[tag]) for row in history if tag in row] == expected, tag
    losses = [(row["_step"], round(row["train/loss"], 6)) for row in history]  # log.jsonl keeps 6 digits
    assert losses == [(e["step"], e["loss"]) for e in log if "loss" in e]
    assert [row["_step"] for row in history if "eval/macro_f1" in row] == [2, 4]
    assert config["task"] == "tc" and config["max_steps"] == 4 and config["batch_size"] == 8


def test_a_run_without_a_language_is_refused_and_takes_the_records_lang(cli, tiny_xlmr, data_dirs, tmp_path):
    data = tmp_path / "no-lang"
    for split in ("train", "validation", "test"):
        rows = [json.loads(line) for line in (data_dirs["tc"] / f"{split}.jsonl").read_text().splitlines()]
        write_jsonl(data / f"{split}.jsonl", [{k: v for k, v in r.items() if k != "lang"} for r in rows])
    base = ["finetune", "-t", "tc", "-m", str(tiny_xlmr), "--device", "cpu", "--max-steps", "1", "-b", "8"]
    result = cli([*base, "-d", str(data), "-o", str(tmp_path / "a")])
    assert (
        result.exit_code == 2 and "the records carry no lang" in result.stderr and "--lang" in result.stderr
    )
    assert not (tmp_path / "a").exists()
    result = cli([*base, "-d", str(data_dirs["tc"]), "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "b" / "training.json").read_text())["lang"] == "ron_Latn"
