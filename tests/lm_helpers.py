"""An independent reference for the PLL scorer (tests of lrltool.lm.pppl and eval --task mlm)."""

from __future__ import annotations


def reference_pll(model, tokenizer, text, *, variant="original", paper_compat=False, max_length=None):
    """(PLL, scored tokens) of ``text``: one masked copy at a time through the full model (all logits)."""
    import torch

    enc = tokenizer(
        text,
        return_special_tokens_mask=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    ids = enc["input_ids"]
    special = enc["special_tokens_mask"]
    words = enc.word_ids()
    total = 0.0
    count = 0
    for i in range(len(ids)):
        if special[i] and not paper_compat:
            continue
        masked = list(ids)
        masked[i] = tokenizer.mask_token_id
        if variant == "within_word_l2r" and words[i] is not None:
            for j in range(i + 1, len(ids)):
                if words[j] == words[i]:
                    masked[j] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(torch.tensor([masked])).logits[0, i].double()
        total += (logits.log_softmax(-1)[ids[i]]).item()
        count += 1
    return total, count
