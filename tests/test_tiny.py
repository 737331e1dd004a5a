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
