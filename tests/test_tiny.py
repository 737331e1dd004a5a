from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from lrltool.tiny import build_tiny

TEXTS = ["Turcia este înconjurată de mări.", "Echipa a câștigat meciul.", "Guvernul a votat legea."]


def test_tiny_model_is_deterministic(tmp_path, tiny_xlmr):
    again = build_tiny("xlmr", tmp_path / "again")
    first, second = (
        load_file(str(tiny_xlmr / "model.safetensors")),
        load_file(str(again / "model.safetensors")),
    )
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    # Unigram training's piece scores vary in the last float digit between runs (threaded sums); the
    # vocabulary and the tokenization do not.
    one, two = AutoTokenizer.from_pretrained(tiny_xlmr), AutoTokenizer.from_pretrained(again)
    assert one.get_vocab() == two.get_vocab()
    assert one(TEXTS)["input_ids"] == two(TEXTS)["input_ids"]


@pytest.mark.parametrize("arch", ["xlmr", "bert"])
def test_tiny_mlm_head_has_a_bias_and_the_first_token_depends_on_the_text(arch, tiny_xlmr, tiny_bert):
    folder = {"xlmr": tiny_xlmr, "bert": tiny_bert}[arch]
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    bias = model.lm_head.bias if arch == "xlmr" else model.cls.predictions.bias
    assert float(bias.detach().abs().min()) > 0.0  # a dropped LM-head bias changes the logits
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        states = model.base_model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).last_hidden_state[
            :, 0
        ]
    spread = float(states.std(0).mean() / states.abs().mean())
    assert spread > 0.1  # unscaled HF init gives ~0.004: every classifier would predict one label


def test_tiny_model_folder_appears_whole_or_not_at_all(cli, tmp_path, monkeypatch):
    import transformers

    out = tmp_path / "tiny"
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    refused = cli(["tiny-model", "-o", tmp_path / "stuff"])
    assert refused.exit_code == 2 and "not empty and holds no model" in refused.stderr
    assert [p.name for p in (tmp_path / "stuff").iterdir()] == ["notes.txt"]

    def fail(self, *args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) while the tokenizer is being saved

    with monkeypatch.context() as patch:
        patch.setattr(transformers.PreTrainedTokenizerBase, "save_pretrained", fail)
        interrupted = cli(["tiny-model", "-o", out])
    assert interrupted.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stuff"]  # no partial folder, no temporary one
    assert cli(["tiny-model", "-o", out]).exit_code == 0
    again = cli(["tiny-model", "-o", out, "--arch", "bert"])  # an earlier model folder is replaced
    assert again.exit_code == 0 and '"bert"' in (out / "config.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stuff", "tiny"]
