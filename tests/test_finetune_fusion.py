"""finetune --fusion of two seq_bn_inv language adapters (the paper's NER fusion) against plain adapters code.

The seed (src/ner/train_ner.py at 08d2c23:187-226) loads the ConceptNet and the GlotCC adapter into an
AutoAdapterModel, ``add_adapter_fusion(Fuse(cn, glot))``, adds a task adapter and a tagging head and
trains ``Stack(Fuse(cn, glot), "ner")``; 1-train_ner.sh ran it with seq_bn and seq_bn_inv adapters. The
adapters library fuses no invertible adapters: the first adapter of the setup's (ConceptNet's) is applied at
the embeddings (``InvertibleAdaptersMixin.invertible_adapters_forward``), the second's is not used, and a
tagging head applies no inverse.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from task_helpers import make_lang_run, make_task_data

from lrltool.downstream.model import load_finetuned
from lrltool.tasks import TASKS

TAGS = TASKS["ner"].labels


@pytest.fixture(scope="module")
def fused_run(tiny_xlmr, tmp_path_factory):
    """Two seq_bn_inv adapters fused for NER with `finetune --preset paper`, then `eval`."""
    from typer.testing import CliRunner

    from lrltool.cli import app

    root = tmp_path_factory.mktemp("fusion-inv")
    langs = {
        source: make_lang_run(tiny_xlmr, root / source, method="seq_bn_inv", source=source, seed=seed)
        for source, seed in (("conceptnet", 3), ("glotcc", 4))
    }
    data = make_task_data(root / "ner", "ner")
    runner = CliRunner()
    args = ["finetune", "--task", "ner", "--model", tiny_xlmr, "--data", data, "--lang", "ron"]
    args += ["--lang-adapter", langs["conceptnet"], "--lang-adapter", langs["glotcc"], "--fusion"]
    args += ["--preset", "paper", "--max-steps", "6", "--eval-steps", "3", "-b", "8", "--lr", "3e-3"]
    trained = runner.invoke(app, [str(a) for a in [*args, "--device", "cpu", "-o", root / "run"]])
    assert trained.exit_code == 0, trained.stderr
    evaluated = runner.invoke(app, ["eval", "--task", "ner", "--run", str(root / "run"), "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.stderr
    return {
        "run": root / "run",
        "langs": langs,
        "data": data,
        "eval": evaluated.stdout,
        "log": trained.stderr,
    }


def test_fusion_of_two_seq_bn_inv_adapters_trains_and_evaluates(fused_run):
    info = json.loads((fused_run["run"] / "training.json").read_text(encoding="utf-8"))
    assert info["finished"] and info["steps"] == 6
    assert (info["lang_method"], info["lang_source"], info["fusion"]) == ("fusion", "glotcc+conceptnet", True)
    assert [a["method"] for a in info["lang_adapters"]] == ["seq_bn_inv", "seq_bn_inv"]
    assert info["lang_adapter_names"] == ["lang_conceptnet", "lang_glotcc"]
    # the paper preset's NER settings (train_ner.py): every sub-token labelled, the lowest validation loss
    assert info["settings"]["label_all_subwords"] is True and info["settings"]["select_by"] == "loss"
    # the invertible adapter that applies is named in the log (the first adapter's)
    assert "invertible adapter of lang_conceptnet" in fused_run["log"]
    records = [json.loads(line) for line in fused_run["eval"].splitlines()]
    f1 = [r for r in records if r["metric"] == "f1"]
    assert len(f1) == 1 and (f1[0]["method"], f1[0]["source"]) == ("fusion", "glotcc+conceptnet")
    assert 0.0 <= f1[0]["value"] <= 1.0 and f1[0]["n"] == 12
    # the fusion layer trained (it moved away from the library's initialisation: value = identity)
    fusion = load_file(str(fused_run["run"] / "fusion" / "model_adapter_fusion.safetensors"))
    values = [t for name, t in fusion.items() if name.endswith("value.weight")]
    assert values and any(not torch.equal(v, torch.eye(v.shape[0])) for v in values)


def _library_model(tiny_xlmr, fused_run, order):
    """Plain adapters code as the seed's train_ner.py: AutoAdapterModel, both adapters loaded with their
    configs, Fuse()d, the task adapter and the fusion layer of the finished run, its tagging head."""
    from adapters import AdapterConfig, AutoAdapterModel, Fuse
    from adapters.composition import Stack

    run = fused_run["run"]
    model = AutoAdapterModel.from_pretrained(str(tiny_xlmr))
    for source in ("conceptnet", "glotcc"):
        folder = fused_run["langs"][source] / "adapter"
        config = AdapterConfig.load(str(folder / "adapter_config.json"))
        model.load_adapter(str(folder), config=config, load_as=f"lang_{source}", with_head=False)
    names = [f"lang_{s}" for s in order]
    model.add_adapter_fusion(Fuse(*names))
    fusion = load_file(str(run / "fusion" / "model_adapter_fusion.safetensors"))
    fused_key = ",".join(names)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, tensor in fusion.items():
            params[key.replace("lang_conceptnet,lang_glotcc", fused_key)].copy_(tensor)
    model.load_adapter(str(run / "adapter"), load_as="ner", with_head=False)
    model.add_tagging_head("ner", num_labels=len(TAGS))
    head = load_file(str(run / "adapter" / "model_head.safetensors"))
    with torch.no_grad():
        model.heads["ner"][1].weight.copy_(head["classifier.weight"])
        model.heads["ner"][1].bias.copy_(head["classifier.bias"])
    model.set_active_adapters(Stack(Fuse(*names), "ner"))
    return model.eval()


def test_fused_model_matches_plain_adapters_code(fused_run, tiny_xlmr):
    ours = load_finetuned(
        json.loads((fused_run["run"] / "training.json").read_text(encoding="utf-8")),
        fused_run["run"],
        device="cpu",
    )
    library = _library_model(tiny_xlmr, fused_run, ("conceptnet", "glotcc"))
    enc = ours.tokenizer(["Ana merge la București", "Un text scurt cu Ion Popescu"], padding=True)
    ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
    with torch.no_grad():
        got = ours.model(input_ids=ids, attention_mask=mask).logits
        expected = library(input_ids=ids, attention_mask=mask).logits
    assert got.shape == (2, ids.shape[1], len(TAGS))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # not vacuous: with GlotCC first, the library applies GlotCC's invertible adapter instead (the fusion
    # layer's softmax over the two adapters is the same either way), and the logits change
    swapped = _library_model(tiny_xlmr, fused_run, ("glotcc", "conceptnet"))
    with torch.no_grad():
        other = swapped(input_ids=ids, attention_mask=mask).logits
    assert (other - expected).abs().max() > 1e-3
