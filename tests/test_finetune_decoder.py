"""finetune --preset paper on a decoder (LLaMA): the seed's LLaMA task settings and heads.

The seed's LLaMA runs are its commits 08d2c23 ("added llama option to downstream tasks": train_tc.py,
train_sa.py, train_ner.py) and d101b0a ("updated downstream scripts for llama": 1-train_tc.sh,
1-train_sa.sh, 1-train_ner.sh); the values below are read there.
"""

from __future__ import annotations

import json

import pytest
import torch
from task_helpers import make_lang_run, make_task_data

from lrltool import models
from lrltool.downstream import finetune as ft
from lrltool.errors import UsageError
from lrltool.tasks import get_task

# task -> (lr, per-device batch, epochs, max length), as the seed ran LLaMA:
SEED = {
    # src/tc/1-train_tc.sh (d101b0a):46-49 --learning_rate 2e-5 --num_train_epochs 20
    # --per_device_train_batch_size 16; src/tc/train_tc.py (08d2c23):61-66 max_length=256, max-length padding
    "tc": (2e-5, 16, 20.0, 256),
    # src/sa/1-train_sa.sh (d101b0a):44-47 2e-5, 25 epochs, batch 8; src/sa/train_sa.py (08d2c23):60-65
    # max_length=512
    "sa": (2e-5, 8, 25.0, 512),
    # src/ner/1-train_ner.sh (d101b0a):47-50 2e-5, 25 epochs, batch 8; src/ner/train_ner.py (08d2c23):84
    # max_length=512 (without truncation=True: the seed cuts nothing; lrltool cuts at 512)
    "ner": (2e-5, 8, 25.0, 512),
}


def test_decoder_preset_values_per_task():
    for task, (lr, batch, epochs, max_length) in SEED.items():
        s = ft.make_settings(task, "paper", decoder=True)
        assert (s.lr, s.batch_size, s.epochs, s.max_length) == (lr, batch, epochs, max_length), task
        # the same in all three scripts: --weight_decay 0.01 (1-train_*.sh), warmup_ratio=0.05,
        # --evaluation_strategy/--save_strategy epoch, load_best_model_at_end=True without a metric
        # (train_*.py TrainingArguments), the library's heads (add_classification_head / add_tagging_head)
        assert (s.weight_decay, s.warmup_ratio, s.eval_steps, s.select_by) == (0.01, 0.05, None, "loss")
        assert (s.task_head, s.preset_model, s.grad_accum) == ("adapters", "decoder", 1)
        # train_ner.py (08d2c23):97-106 labels every sub-token, for LLaMA as for encoders
        assert s.label_all_subwords is (task == "ner")
    encoder = ft.make_settings("ner", "paper")
    assert (encoder.lr, encoder.batch_size, encoder.epochs, encoder.preset_model) == (
        1e-4,
        32,
        100.0,
        "encoder",
    )
    assert ft.make_settings("ner", "paper", decoder=True, lr=1e-3, epochs=2).lr == 1e-3  # options win
    assert ft.make_settings("tc", decoder=True).preset_model is None  # no preset: lrltool's defaults


@pytest.fixture(scope="module")
def decoder_runs(tiny_llama, tmp_path_factory):
    """`finetune --preset paper --max-steps 2` on the tiny LLaMA with a seq_bn_inv CLM language adapter."""
    from typer.testing import CliRunner

    from lrltool.cli import app

    root = tmp_path_factory.mktemp("decoder")
    lang = make_lang_run(tiny_llama, root / "lang", method="seq_bn_inv")
    runner, done = CliRunner(), {}
    for task in ("tc", "sa", "ner"):
        data = make_task_data(root / f"data-{task}", task)
        args = ["finetune", "--task", task, "--model", tiny_llama, "--data", data, "--lang-adapter", lang]
        args += ["--preset", "paper", "--max-steps", "2", "--device", "cpu", "-o", root / task]
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.stderr
        done[task] = root / task
    evaluated = runner.invoke(app, ["eval", "--task", "tc", "--run", str(done["tc"]), "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.stderr
    return {"runs": done, "lang": lang, "eval": evaluated.stdout, "root": root}


@pytest.mark.parametrize("task", ["tc", "sa", "ner"])
def test_two_step_decoder_runs_record_the_seed_settings(decoder_runs, task):
    info = json.loads((decoder_runs["runs"][task] / "training.json").read_text(encoding="utf-8"))
    lr, batch, epochs, max_length = SEED[task]
    settings = info["settings"]
    assert (settings["lr"], settings["batch_size"], settings["epochs"], settings["max_length"]) == (
        lr,
        batch,
        epochs,
        max_length,
    )
    assert (settings["preset"], settings["preset_model"], settings["task_head"]) == (
        "paper",
        "decoder",
        "adapters",
    )
    assert (settings["weight_decay"], settings["warmup_ratio"], settings["select_by"]) == (0.01, 0.05, "loss")
    assert settings["label_all_subwords"] is (task == "ner")
    assert info["finished"] and info["steps"] == 2
    assert info["max_length"] == 128  # the setting, capped at the tiny model's 128 positions
    # train_*.py (08d2c23): tokenizer.pad_token = tokenizer.eos_token, right padding (the tokenizer's default)
    assert (info["padding_side"], info["pad_token"]) == ("right", "</s>")
    # LlamaAdapterModel's classification head reads the last non-padding token; tagging every token
    assert info["pooling"] == (None if task == "ner" else "last")
    head = sorted(info["head_parameters"])
    expected = (
        ["score.bias", "score.weight"]
        if task == "ner"
        else ["score.1.bias", "score.1.weight", "score.4.bias", "score.4.weight"]
    )
    assert head == expected


def test_decoder_run_evaluates(decoder_runs):
    records = [json.loads(line) for line in decoder_runs["eval"].splitlines()]
    f1 = [r for r in records if r["metric"] == "macro_f1"]
    assert len(f1) == 1 and f1[0]["n"] == 12 and 0.0 <= f1[0]["value"] <= 1.0
    assert f1[0]["settings"]["task_head"] == "adapters"


def test_decoder_fusion_under_the_preset_is_refused(cli, tiny_llama, decoder_runs, tmp_path):
    other = make_lang_run(tiny_llama, tmp_path / "cn", method="seq_bn_inv", source="conceptnet", seed=5)
    data = make_task_data(tmp_path / "data", "ner")
    out = tmp_path / "run"
    args = ["finetune", "--task", "ner", "--model", tiny_llama, "--data", data, "--preset", "paper"]
    args += ["--lang-adapter", other, "--lang-adapter", decoder_runs["lang"], "--fusion", "-o", out]
    result = cli(args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--preset paper fuses encoder adapters only" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_encoder_settings_on_a_decoder_are_refused_without_the_options(tiny_llama, tmp_path):
    prep = ft.prepare(task="tc", model=str(tiny_llama), data=make_task_data(tmp_path / "d", "tc"))
    with pytest.raises(UsageError, match="hold its encoder values"):
        ft.train_run(prep, ft.make_settings("tc", "paper"), out=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()
    made = ft.settings_for_model(ft.make_settings("tc", "paper"), prep, {"epochs": 3.0})
    assert (made.lr, made.batch_size, made.epochs, made.preset_model) == (2e-5, 16, 3.0, "decoder")


def _llama_library(model_dir, task, labels):
    """The seed's decoder model: AutoAdapterModel (LlamaAdapterModel) + the library's head, pad = EOS."""
    from adapters import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(model_dir))
    model.config.pad_token_id = model.config.eos_token_id  # train_tc.py (08d2c23):206-207
    if task == "tc":
        model.add_classification_head("tc", num_labels=len(labels))
    else:
        model.add_tagging_head("ner", num_labels=len(labels))
    return model.eval()


def test_decoder_heads_match_the_library_heads(tiny_llama):
    labels = ["a", "b", "c"]
    source = models.resolve_model(str(tiny_llama))
    tokenizer = models.load_tokenizer(source)
    batch = tokenizer(["Ana are mere si pere", "Un text"], padding=True, return_tensors="pt")
    assert batch["input_ids"][1, -1] == tokenizer.eos_token_id  # right-padded with EOS
    for task in ("tc", "ner"):
        torch.manual_seed(0)
        library = _llama_library(tiny_llama, task, labels)
        spec = get_task(task)
        ours, names = models.load_task_model(source, head=spec.head, labels=labels)
        names = models.install_task_head(ours, "adapters", head=spec.head, head_names=names)
        lib_head = {
            # the tagging head is Sequential(Dropout, Linear): its "1.weight" is the class's score.weight
            n.split(f"heads.{task}.")[1].removeprefix("1." if task == "ner" else "-"): p
            for n, p in library.named_parameters()
            if n.startswith(f"heads.{task}.")
        }
        our_head = {n.split("score.", 1)[1]: p for n, p in ours.named_parameters() if n.startswith("score.")}
        assert {k: tuple(p.shape) for k, p in our_head.items()} == {
            k: tuple(p.shape) for k, p in lib_head.items()
        }
        assert sorted(names) == sorted(f"score.{k}" for k in our_head)
        with torch.no_grad():
            for key, param in our_head.items():
                param.copy_(lib_head[key])
            got = ours(**batch).logits
            expected = library(**batch).logits
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got[0], got[1])
    # the library's head has no dropout where LlamaConfig names none; transformers' token class has 0.1
    assert ours.dropout.p == 0.0 and library.heads["ner"][0].p == 0.0
