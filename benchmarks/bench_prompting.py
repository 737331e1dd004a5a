"""Prompting: lrltool's label scorer against one forward pass per (example, label) and against row batching.

Model: a LLaMA-shaped lrltool.tiny model with LLaMA-2's 32,000-row vocabulary on a small body (256
hidden, 4 layers), 4,000-piece tokenizer. Queries: bundled SIB-200 Romanian sentences as 3-shot topic
prompts (the default tc template, 7 labels), shots from other bundled sentences.

- ours: :func:`lrltool.downstream.prompting.score_continuations` (each prompt computed once for all labels);
- rows: what harnesses usually do: one row per (example, label), prompt + label, right-padded, batched;
- loop: one unpadded forward pass per (example, label) (the tests' reference).

All three must agree to 1e-4; reported: seconds of scoring (model loading excluded), in one process.

    python benchmarks/run.py --only prompting [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import WORK, Row  # noqa: E402

MODEL_DIR = WORK / "prompt-llama-32k"
MODEL_SETTINGS = dict(vocab_size=4000, model_vocab_size=32000, hidden_size=256, num_layers=4, max_length=1024)
ROWS_GOAL = 3.0  # 7 labels: rows repeat each prompt 7 times, ours computes it once


def _model():
    from lrltool import models
    from lrltool.tiny import build_tiny

    if not (MODEL_DIR / "config.json").is_file():
        build_tiny("llama", MODEL_DIR, **MODEL_SETTINGS)
    source = models.resolve_model(str(MODEL_DIR))
    return models.load_tokenizer(source), models.load_model(source)


def _contexts(tokenizer, n: int) -> tuple[list[list[int]], list[list[int]]]:
    from lrltool.downstream import prompting
    from lrltool.downstream.data import Example
    from lrltool.tiny import corpus_lines

    template = prompting.load_template("tc")
    lines = [line for line in corpus_lines() if len(line.split()) >= 8]
    labels = template.labels
    pool = [Example(f"p{i}", line, labels[i % len(labels)]) for i, line in enumerate(lines[n:])]
    queries = [Example(f"q{i}", lines[i % len(lines)], labels[0]) for i in range(n)]
    prompts = [
        template.render(q.text, prompting.select_shots(pool, q, 3, seed=1, labels=labels)) for q in queries
    ]
    label_ids = prompting.label_token_ids(tokenizer, template)
    contexts, _ = prompting.context_ids(tokenizer, prompts, max_length=1024, reserve=8)
    return contexts, label_ids


def score_rows(model, contexts, continuations, *, batch_rows: int, pad_id: int):
    """The usual way: one right-padded row per (context, continuation), log-probs gathered per row."""
    import numpy as np
    import torch

    pairs = [(i, j) for i in range(len(contexts)) for j in range(len(continuations))]
    pairs.sort(key=lambda p: -(len(contexts[p[0]]) + len(continuations[p[1]])))
    scores = np.zeros((len(contexts), len(continuations)))
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_rows):
            batch = pairs[start : start + batch_rows]
            rows = [list(contexts[i]) + list(continuations[j]) for i, j in batch]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, row in enumerate(rows):
                ids[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for r, (i, j) in enumerate(batch):
                cont, start_at = continuations[j], len(contexts[i]) - 1
                scores[i, j] = sum(logprobs[r, start_at + k, t].item() for k, t in enumerate(cont))
    return scores


def score_loop(model, contexts, continuations):
    import numpy as np
    import torch

    scores = np.zeros((len(contexts), len(continuations)))
    with torch.inference_mode():
        for i, context in enumerate(contexts):
            for j, cont in enumerate(continuations):
                ids = torch.tensor([list(context) + list(cont)])
                logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
                scores[i, j] = sum(logprobs[len(context) - 1 + k, t].item() for k, t in enumerate(cont))
    return scores


def run(quick: bool) -> list[Row]:
    import numpy as np

    from lrltool.downstream import prompting

    tokenizer, model = _model()
    n = 16 if quick else 64
    contexts, label_ids = _contexts(tokenizer, n)
    pad = tokenizer.pad_token_id
    prompting.score_continuations(model, contexts[:2], label_ids, pad_id=pad)  # warm-up

    start = time.perf_counter()
    ours = prompting.score_continuations(model, contexts, label_ids, batch_size=8, pad_id=pad)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = score_rows(model, contexts, label_ids, batch_rows=8, pad_id=pad)
    rows_s = time.perf_counter() - start
    start = time.perf_counter()
    loop = score_loop(model, contexts, label_ids)
    loop_s = time.perf_counter() - start

    agree = bool(np.abs(ours - rows).max() < 1e-4 and np.abs(ours - loop).max() < 1e-4)
    details = {
        "queries": n,
        "labels": len(label_ids),
        "mean_prompt_tokens": round(float(np.mean([len(c) for c in contexts])), 1),
        "ours_s": round(ours_s, 3),
        "rows_s": round(rows_s, 3),
        "loop_s": round(loop_s, 3),
        "max_abs_diff": float(max(np.abs(ours - rows).max(), np.abs(ours - loop).max())),
        "model": MODEL_SETTINGS,
    }
    return [
        Row(
            "prompting",
            "seconds to score 3-shot prompts x 7 labels vs row batching",
            ours_s,
            rows_s,
            rows_s / ours_s,
            f">= {ROWS_GOAL}x",
            agree and rows_s / ours_s >= ROWS_GOAL,
            details,
        ),
        Row(
            "prompting",
            "seconds to score 3-shot prompts x 7 labels vs one pass per (example, label)",
            ours_s,
            loop_s,
            loop_s / ours_s,
            f">= {ROWS_GOAL}x",
            agree and loop_s / ours_s >= ROWS_GOAL,
            details,
        ),
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row.as_dict())
