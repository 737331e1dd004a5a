"""The seed's task head (finetune --task-head adapters, --preset paper) against the adapters library's own."""

from __future__ import annotations

import json

import pytest
import torch
from task_helpers import make_lang_run, make_task_data

from lrltool import models
from lrltool.downstream import finetune as ft
from lrltool.downstream.model import build_task_model, load_finetuned
from lrltool.errors import ModelError, UsageError
from lrltool.tasks import get_task

LABELS = ["a", "b", "c"]


def _library_model(model_dir, task: str):
    """The seed's model: AutoAdapterModel + add_classification_head / add_tagging_head (train_tc.py)."""
    from adapters import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(model_dir))
    if task == "tc":
        model.add_classification_head("tc", num_labels=len(LABELS), layers=2, activation_function="tanh")
    else:
        model.add_tagging_head("ner", num_labels=len(LABELS))
    return model.eval()


def _ours(model_dir, task: str):
    spec = get_task(task)
    model, names = models.load_task_model(models.resolve_model(str(model_dir)), head=spec.head, labels=LABELS)
    names = models.install_task_head(model, "adapters", head=spec.head, head_names=names)
    return model.eval(), names


@pytest.mark.parametrize("arch", ["tiny_xlmr", "tiny_bert"])
def test_classification_head_matches_the_library_head(arch, request):
    model_dir = request.getfixturevalue(arch)
    torch.manual_seed(0)
    lib = _library_model(model_dir, "tc")
    ours, names = _ours(model_dir, "tc")
    hidden = ours.config.hidden_size
    lib_head = {n.split("heads.tc.")[1]: p for n, p in lib.named_parameters() if n.startswith("heads.tc.")}
    our_head = {
        n.split("classifier.")[1]: p for n, p in ours.named_parameters() if n.startswith("classifier.")
    }
    shapes = {k: tuple(p.shape) for k, p in our_head.items()}
    assert shapes == {k: tuple(p.shape) for k, p in lib_head.items()}
    assert shapes == {
        "1.weight": (hidden, hidden),
        "1.bias": (hidden,),
        "4.weight": (3, hidden),
        "4.bias": (3,),
    }
    assert sorted(names) == sorted(
        f"classifier.{k}" for k in shapes
    )  # no pooler: the head is all that is new
    with torch.no_grad():
        for key, param in our_head.items():
            param.copy_(lib_head[key])
    ids = torch.tensor([[0, 5, 17, 23, 9, 2], [0, 44, 8, 2, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        expected = lib(input_ids=ids, attention_mask=mask).logits
        got = ours(input_ids=ids, attention_mask=mask).logits
    assert got.shape == (2, 3)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got[0], got[1])


def test_tagging_head_is_the_library_tagging_head(tiny_xlmr):
    torch.manual_seed(0)
    lib = _library_model(tiny_xlmr, "ner")
    ours, names = _ours(tiny_xlmr, "ner")
    lib_head = {n.split("heads.ner.")[1]: p for n, p in lib.named_parameters() if n.startswith("heads.ner.")}
    assert {k: tuple(p.shape) for k, p in lib_head.items()} == {
        "1.weight": (3, ours.config.hidden_size),
        "1.bias": (3,),
    }
    assert sorted(names) == ["classifier.bias", "classifier.weight"]
    with torch.no_grad():
        ours.classifier.weight.copy_(lib_head["1.weight"])
        ours.classifier.bias.copy_(lib_head["1.bias"])
        ids = torch.tensor([[0, 5, 17, 23, 9, 2]])
        torch.testing.assert_close(
            ours(input_ids=ids).logits, lib(input_ids=ids).logits, rtol=1e-5, atol=1e-6
        )


def test_unsupported_model_type_is_refused(tiny_xlmr):
    spec = get_task("tc")
    model, names = models.load_task_model(models.resolve_model(str(tiny_xlmr)), head=spec.head, labels=LABELS)
    model.config.model_type = "gpt2"  # a type whose classification head is not built here
    with pytest.raises(ModelError, match="BERT, XLM-R and LLaMA"):
        models.install_task_head(model, "adapters", head=spec.head, head_names=names)


def test_preset_records_the_head_and_eval_rebuilds_it(tiny_xlmr, tmp_path):
    assert ft.make_settings("tc", "paper").task_head == "adapters"
    assert ft.make_settings("ner", "paper").task_head == "adapters"
    assert ft.make_settings("tc").task_head == "model"
    assert ft.make_settings("tc", "paper", task_head="model").task_head == "model"
    with pytest.raises(UsageError, match="for task adapters"):
        ft.make_settings("tc", method="full", task_head="adapters")
    with pytest.raises(UsageError, match="unknown task head"):
        ft.make_settings("tc", task_head="mlp")
    data = make_task_data(tmp_path / "data", "tc")
    lang = make_lang_run(tiny_xlmr, tmp_path / "lang")
    prep = ft.prepare(task="tc", model=str(tiny_xlmr), data=data, lang_adapters=[str(lang)], method="adapter")
    settings = ft.make_settings("tc", "paper", max_steps=3, batch_size=8, eval_steps=3)
    ft.train_run(prep, settings, out=tmp_path / "run", device="cpu")
    run = tmp_path / "run"
    info = json.loads((run / "training.json").read_text(encoding="utf-8"))
    assert info["settings"]["task_head"] == "adapters"
    rebuilt = load_finetuned(info, run, device="cpu")
    assert isinstance(rebuilt.model.classifier, torch.nn.Sequential)
    assert sorted(rebuilt.head_names) == [
        "classifier.1.bias",
        "classifier.1.weight",
        "classifier.4.bias",
        "classifier.4.weight",
    ]
    fresh = build_task_model(
        get_task("tc"),
        info["labels"],
        base=models.resolve_model(str(tiny_xlmr)),
        lang_infos=[],
        method="adapter",
        fusion=False,
        reduction_factor=16,
        seed=0,
        device="cpu",
        task_head="adapters",
    )
    trained = dict(rebuilt.model.named_parameters())["classifier.4.weight"]
    assert not torch.equal(trained, dict(fresh.model.named_parameters())["classifier.4.weight"])
