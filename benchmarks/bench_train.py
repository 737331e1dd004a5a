"""train-adapter: the speed levers of language-adapter training, each against its baseline in the same run.

1. MLM loss with the LM head only at the masked positions (lrltool) vs full logits (``model(**batch).loss``)
   on an XLM-R-shaped model with the 250,002-token vocabulary and a small body (256 hidden, 4 layers),
   one seq_bn training step on a batch of 16 x 256: seconds per step (goal >= 4x), peak RSS (goal <= 1/3),
   and the same loss.
2. An adapter step (seq_bn) vs a full step (every weight trains), same model and head path.
3. Packed blocks vs one text per example (--line-by-line): real tokens per step on real text (the bundled
   Romanian SIB-200 sentences), batch 16, 256 tokens.
4. Time to first step of ``lrltool train-adapter`` on the same data with a warm tokenization cache vs none.
5. What users run today: ``lrltool train-adapter`` (defaults; and ``--preset paper-glotcc``, line by line
   as the seed) against the seed scripts' way of training the same seq_bn adapter (the adapters library's
   ``AdapterTrainer`` with ``DataCollatorForLanguageModeling``, one text per example padded per batch,
   full-vocabulary logits: adapters' ``run_mlm.py --line_by_line`` as the paper's scripts call it), same
   250k-vocabulary model, batch 16 x 256, the bundled Romanian text: real (non-padding) tokens per second.
   Both are timed from the end of the first step to the end of the last (ours: training.json's
   ``steady_tokens_per_second``; the seed's: a TrainerCallback), so model loading and the first step's
   allocations count on neither side. The default row's details split the ratio into work and speed
   (``work_split``: matrix-product FLOPs per real token on each side, counted by torch's
   ``FlopCounterMode``, and the GFLOP/s each reached) and give the seed's kernel time and page faults per
   step: most of the ratio's spread between runs is the seed waiting for the kernel to map fresh memory
   for its full-vocabulary logits (benchmarks/README.md).

Each measurement runs in a fresh interpreter so its peak RSS is its own.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from common import PYTHON, ROOT, WORK, Row, run_python, run_timed

sys.path.insert(0, str(ROOT))

VOCAB = 250_002
# One torch thread on both sides of every comparison: on a shared, loaded machine extra threads mostly
# measure the other jobs (a 2-thread step ran up to 16x slower than a 1-thread step here).
THREADS = 1

STEP_CODE = r"""
import json, time, torch
torch.set_num_threads({threads})
torch.manual_seed(0)
from lrltool import models
from lrltool.lm import adapter, data
source = models.resolve_model({model!r})
net = models.load_model(source)
models.add_adapter(net, "lang", {method!r})
net.train()
head = models.lm_head(net)
gen = torch.Generator().manual_seed(1)
ids = torch.randint(5, 1000, ({batch}, {length}), generator=gen)
chosen = torch.rand({batch}, {length}, generator=gen) < 0.15
labels = ids.masked_fill(~chosen, -100)
batch = {{"input_ids": ids.masked_fill(chosen, 4), "attention_mask": torch.ones_like(ids), "labels": labels}}
optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)

def step():
    if {masked!r}:
        loss_sum, count = adapter.lm_loss_sum(net, head, batch, "mlm")
        loss = loss_sum / count
    else:
        loss = net(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())

first_loss = step()  # warm-up; the loss of the untrained adapter, the same for both paths
start = time.perf_counter()
for _ in range({steps}):
    step()
seconds = (time.perf_counter() - start) / {steps}
open({out!r}, "w").write(json.dumps({{"seconds": seconds, "loss": first_loss}}))
"""


def _model(name: str, **kwargs) -> Path:
    from lrltool.tiny import build_tiny

    folder = WORK / name
    if not (folder / "model.safetensors").exists():
        build_tiny("xlmr", folder, **kwargs)
    return folder


def _step(model: Path, *, method: str, masked: bool, batch: int, length: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "step.json"
        code = STEP_CODE.format(
            model=str(model),
            method=method,
            masked=masked,
            batch=batch,
            length=length,
            steps=steps,
            out=str(out),
            threads=THREADS,
        )
        timing = run_python(code, env={"PYTHONPATH": str(ROOT)})
        result = json.loads(out.read_text())
    return {**result, "peak_rss_mb": timing.peak_rss_mb}


def _head_rows(quick: bool) -> list[Row]:
    batch, length, steps = (4, 128, 2) if quick else (16, 256, 3)
    model = _model("train-xlmr-250k", model_vocab_size=VOCAB, hidden_size=256, num_layers=4, max_length=256)
    masked = _step(model, method="seq_bn", masked=True, batch=batch, length=length, steps=steps)
    full = _step(model, method="seq_bn", masked=False, batch=batch, length=length, steps=steps)
    same_loss = abs(masked["loss"] - full["loss"]) <= 1e-4 * abs(full["loss"])
    details = {
        "batch": f"{batch} x {length}",
        "vocab": VOCAB,
        "body": "256 hidden, 4 layers",
        "torch_threads": THREADS,
        "loss_masked": masked["loss"],
        "loss_full": full["loss"],
        "same_loss": same_loss,
    }
    full_step = _step(model, method="full", masked=True, batch=batch, length=length, steps=steps)
    return [
        Row(
            "train",
            "MLM step, masked-position head vs full logits (s/step)",
            masked["seconds"],
            full["seconds"],
            full["seconds"] / masked["seconds"],
            ">= 4x and same loss",
            full["seconds"] / masked["seconds"] >= 4 and same_loss,
            details,
        ),
        Row(
            "train",
            "MLM step peak RSS, masked-position head vs full logits (MB)",
            masked["peak_rss_mb"],
            full["peak_rss_mb"],
            full["peak_rss_mb"] / masked["peak_rss_mb"],
            ">= 3x (<= 1/3 memory)",
            full["peak_rss_mb"] / masked["peak_rss_mb"] >= 3,
            details,
        ),
        Row(
            "train",
            "seq_bn adapter step vs full step (s/step)",
            masked["seconds"],
            full_step["seconds"],
            full_step["seconds"] / masked["seconds"],
            "> 1x",
            full_step["seconds"] > masked["seconds"],
            {
                "batch": f"{batch} x {length}",
                "adapter_peak_rss_mb": masked["peak_rss_mb"],
                "full_peak_rss_mb": full_step["peak_rss_mb"],
            },
        ),
    ]


def _packing_row(model: Path) -> Row:
    import numpy as np

    from lrltool import models
    from lrltool.lm import data
    from lrltool.tiny import corpus_lines

    tokenizer = models.load_tokenizer(models.resolve_model(str(model)))
    texts = corpus_lines()
    batch, length = 16, 256

    def tokens_per_step(packing: bool) -> float:
        blocks = data.tokenize_texts(texts, tokenizer, data.TokenizeSpec("mlm", length, packing, False))
        lengths = np.diff(blocks.starts)
        full_batches = len(lengths) // batch
        return float(lengths[: full_batches * batch].reshape(full_batches, batch).sum(1).mean())

    packed, lines = tokens_per_step(True), tokens_per_step(False)
    return Row(
        "train",
        "real tokens per step, packed vs line-by-line (16 x 256)",
        packed,
        lines,
        packed / lines,
        "> 1x",
        packed > lines,
        {"texts": len(texts), "padding_share_line_by_line": round(1 - lines / (batch * length), 3)},
    )


def _cache_row(model: Path, quick: bool) -> Row:
    from lrltool.tiny import corpus_lines

    repeats = 20 if quick else 300
    data = WORK / f"train-text-{repeats}.jsonl"
    if not data.exists():
        lines = corpus_lines()
        with data.open("w", encoding="utf-8") as f:
            for r in range(repeats):
                for i, line in enumerate(lines):
                    f.write(
                        json.dumps({"id": f"{r}-{i}", "text": f"{line} ({r})"}, ensure_ascii=False) + "\n"
                    )
    cache = WORK / "train-cache"
    shutil.rmtree(cache, ignore_errors=True)
    seconds = {}
    for label in ("uncached", "cached"):
        out = WORK / f"train-run-{label}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            PYTHON,
            "-m",
            "lrltool",
            "train-adapter",
            "-m",
            str(model),
            "--train",
            str(data),
            "-o",
            str(out),
        ]
        cmd += [
            "--max-steps",
            "1",
            "--batch-size",
            "16",
            "--max-length",
            "256",
            "--cache-dir",
            str(cache),
            "-q",
        ]
        run_timed(cmd, env={"PYTHONPATH": str(ROOT)})
        seconds[label] = json.loads((out / "training.json").read_text())["first_step_seconds"]
    return Row(
        "train",
        "time to first step, cached vs uncached tokenization (s)",
        seconds["cached"],
        seconds["uncached"],
        seconds["uncached"] / seconds["cached"],
        "> 1x",
        seconds["cached"] < seconds["uncached"],
        {"data": f"{data.name}, {data.stat().st_size / 1e6:.1f} MB"},
    )


SEED_CODE = r"""
import json, resource, time, torch
torch.set_num_threads({threads})
import adapters
from adapters.training import AdapterArguments, setup_adapter_training
from datasets import Dataset
from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling
from transformers import TrainerCallback, TrainingArguments
texts = [json.loads(line)["text"] for line in open({data!r}, encoding="utf-8")]
tokenizer = AutoTokenizer.from_pretrained({model!r})
model = AutoModelForMaskedLM.from_pretrained({model!r})
adapters.init(model)
# run_mlm.py --train_adapter --adapter_config seq_bn: add, train and activate the adapter
setup_adapter_training(model, AdapterArguments(train_adapter=True, adapter_config="seq_bn"), "mlm")
assert model.active_adapters is not None
# run_mlm.py --line_by_line: each text truncated to max_seq_length, no padding (the collator pads a batch).
enc = tokenizer(texts, truncation=True, max_length={length}, return_special_tokens_mask=True)
dataset = Dataset.from_dict(dict(enc))
collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm_probability=0.15)
tokens, positions = [], []
def counting(features):
    batch = collator(features)
    tokens.append(int(batch["attention_mask"].sum()))
    positions.append(batch["input_ids"].numel())  # padding included: the head scores every position
    return batch
ends, kernel = [], []
class Timer(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        ends.append(time.perf_counter())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        kernel.append((usage.ru_stime, usage.ru_minflt))  # CPU time in the kernel, pages it mapped
args = TrainingArguments(
    output_dir={out!r}, per_device_train_batch_size={batch}, max_steps={steps}, learning_rate=1e-4,
    save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=42,
    logging_strategy="no", disable_tqdm=True,
)
trainer = adapters.AdapterTrainer(
    model=model, args=args, train_dataset=dataset, data_collator=counting, callbacks=[Timer()]
)
trainer.train()
seconds = ends[-1] - ends[0]  # steps 2..N: the first step (allocation, warm-up) left out
timed = sum(tokens[1 : len(ends)])
result = {{"tokens_per_second": timed / seconds, "seconds_per_step": seconds / (len(ends) - 1)}}
result.update(tokens_per_step=timed / (len(ends) - 1), steps=len(ends))
result.update(positions_per_step=sum(positions[1 : len(ends)]) / (len(ends) - 1))
result.update(kernel_seconds_per_step=(kernel[-1][0] - kernel[0][0]) / (len(ends) - 1))
result.update(page_faults_per_step=(kernel[-1][1] - kernel[0][1]) / (len(ends) - 1))
json.dump(result, open({result!r}, "w"))
"""


HOST_CODE = r"""
import json, time, torch
torch.set_num_threads(1)
def best(f):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
x = torch.empty(64 << 20)  # 256 MB of fp32
y = torch.empty_like(x)
gemm = 2 * 2048**3 / best(lambda: a @ b) / 1e9
copy = 2 * x.numel() * 4 / best(lambda: y.copy_(x)) / 1e9
json.dump({{"sgemm_gflops": round(gemm, 1), "copy_gb_per_s": round(copy, 1)}}, open({out!r}, "w"))
"""


def host_rates() -> dict[str, float]:
    """This machine's one-thread fp32 matrix-product rate (2048^3, GFLOP/s) and memory copy rate (256 MB,
    GB/s read + written), best of 3, in a fresh interpreter, recorded beside the ratio against the seed:
    lrltool's loss runs at the first, while the seed also moves its full-vocabulary logits through memory
    (every padded position x 250,002: about 1.6 GB a step at this shape), so the ratio moves with the
    machine (benchmarks/README.md)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "host.json"
        run_python(HOST_CODE.format(out=str(out)), env={"OMP_NUM_THREADS": "1"})
        return json.loads(out.read_text())


FLOP_CODE = r"""
import json, torch
torch.set_num_threads(1)
from torch.utils.flop_counter import FlopCounterMode
from lrltool import models
from lrltool.lm import adapter
net = models.load_model(models.resolve_model({model!r}))
models.add_adapter(net, "lang", "seq_bn")
net.train()
head = models.lm_head(net)

def addmm_(self_shape, a_shape, b_shape, out_shape=None, **kwargs):
    # the in-place product lrltool's loss accumulates its gradient with; torch's counter has no formula for it
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]

def step_flops(shape, predicted, full):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, shape, generator=gen)
    chosen = torch.zeros(ids.numel(), dtype=torch.bool)
    chosen[torch.randperm(ids.numel(), generator=gen)[:predicted]] = True
    chosen = chosen.view(shape)
    batch = {{"input_ids": ids.masked_fill(chosen, 4), "attention_mask": torch.ones_like(ids)}}
    batch["labels"] = ids.masked_fill(~chosen, -100)
    with FlopCounterMode(display=False, custom_mapping={{torch.ops.aten.addmm_: addmm_}}) as counter:
        if full:
            net(**batch).loss.backward()
        else:
            adapter.lm_loss_sum(net, head, batch, "mlm")[0].backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()

cases = {cases!r}
json.dump({{name: step_flops(tuple(c[0]), c[1], c[2]) for name, c in cases.items()}}, open({out!r}, "w"))
"""


def step_flops(model: Path, cases: dict[str, tuple[tuple[int, int], int, bool]]) -> dict[str, int]:
    """Floating-point operations of the matrix products of one seq_bn training step's forward and backward
    pass (torch's ``FlopCounterMode``), per case ``name: ((batch, length), predicted rows, full)``:
    ``full`` is the model's own loss from full-vocabulary logits (the seed), otherwise lrltool's loss at
    the predicted rows only. Padding costs the same as a token, so a case needs only the batch's shape.
    Run in a fresh one-thread interpreter, as every measurement here."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flops.json"
        code = FLOP_CODE.format(model=str(model), cases=cases, out=str(out))
        run_python(code, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
        return json.loads(out.read_text())


def work_split(model: Path, *, batch: int, length: int, ours: float, seed: dict, host: dict) -> dict:
    """The ratio against the seed as (work ratio) x (speed ratio). The work: matrix-product floating-point
    operations per real token on each side (lrltool: packed blocks of ``batch x length``, 15% of them
    predicted, the masker's expected share; the seed: its mean padded batch, logits at every position).
    The speed: the GFLOP/s each side reached at its real tokens/s (``ours`` for lrltool), also as a share
    of this machine's one-thread sgemm rate (``host_rates``). The ratio equals work ratio x ours' GFLOP/s
    / the seed's GFLOP/s (benchmarks/README.md)."""
    packed = batch * length
    padded = max(1, round(seed["positions_per_step"] / batch))
    flops = step_flops(
        model,
        {"ours": ((batch, length), round(0.15 * packed), False), "seed": ((batch, padded), 1, True)},
    )
    per_token = {"ours": flops["ours"] / packed, "seed": flops["seed"] / seed["tokens_per_step"]}
    speed = {"ours": ours, "seed": seed["tokens_per_second"]}
    gflops = {side: per_token[side] * speed[side] / 1e9 for side in per_token}
    return {
        "mflop_per_real_token": {side: round(v / 1e6, 3) for side, v in per_token.items()},
        "work_ratio": round(per_token["seed"] / per_token["ours"], 3),
        "seed_padded_batch": f"{batch} x {padded}",
        "gflop_per_second": {side: round(v, 1) for side, v in gflops.items()},
        "share_of_host_sgemm": {side: round(v / host["sgemm_gflops"], 3) for side, v in gflops.items()},
    }


def _text_records(path: Path, texts: list[str]) -> Path:
    if not path.exists():
        with path.open("w", encoding="utf-8") as f:
            for i, text in enumerate(texts):
                f.write(
                    json.dumps({"id": str(i), "text": text, "lang": "ron_Latn"}, ensure_ascii=False) + "\n"
                )
    return path


def _ours_tokens_per_second(
    model: Path, data: Path, validation: Path, *, preset: str | None, **shape
) -> dict:
    out = WORK / f"train-vs-seed-{preset or 'default'}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [PYTHON, "-m", "lrltool", "train-adapter", "-m", str(model), "--method", "seq_bn"]
    cmd += ["--train", str(data), "--validation", str(validation), "-o", str(out), "-q"]
    cmd += ["--max-steps", str(shape["steps"]), "--batch-size", str(shape["batch"])]
    cmd += ["--max-seq-length", str(shape["length"]), "--eval-steps", "1000000"]
    cmd += ["--cache-dir", str(WORK / "train-vs-seed-cache")] + (["--preset", preset] if preset else [])
    run_timed(cmd, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(THREADS)})
    info = json.loads((out / "training.json").read_text())
    return {
        "tokens_per_second": info["steady_tokens_per_second"],
        "whole_loop_tokens_per_second": info["tokens_per_second"],
        "steps": shape["steps"],
    }


def _seed_rows(quick: bool) -> list[Row]:
    from lrltool.tiny import corpus_lines

    batch, length = (4, 128) if quick else (16, 256)
    model = _model("train-xlmr-250k", model_vocab_size=VOCAB, hidden_size=256, num_layers=4, max_length=256)
    texts = corpus_lines()
    data = _text_records(WORK / "train-vs-seed.jsonl", texts)
    validation = _text_records(WORK / "train-vs-seed-validation.jsonl", texts[:16])
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "seed.json"
        code = SEED_CODE.format(
            threads=THREADS,
            data=str(data),
            model=str(model),
            length=length,
            out=str(Path(tmp) / "trainer"),
            batch=batch,
            steps=3 if quick else 6,
            result=str(result),
        )
        seed_timing = run_python(code, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(THREADS)})
        seed = json.loads(result.read_text())
    shape = {"batch": batch, "length": length, "steps": 4 if quick else 20}
    host = host_rates()
    rows = []
    for preset, goal in ((None, 20.0), ("paper-glotcc", 1.0)):
        ours = _ours_tokens_per_second(model, data, validation, preset=preset, **shape)
        ratio = ours["tokens_per_second"] / seed["tokens_per_second"]
        split = {}
        if preset is None:
            tokens_per_second = ours["tokens_per_second"]
            split = work_split(
                model, batch=batch, length=length, ours=tokens_per_second, seed=seed, host=host
            )
        what = "train-adapter" if preset is None else f"train-adapter --preset {preset} (line by line)"
        rows.append(
            Row(
                "train",
                f"real tokens/s, {what} vs the seed's AdapterTrainer",
                round(ours["tokens_per_second"], 1),
                round(seed["tokens_per_second"], 1),
                ratio,
                f">= {goal:g}x" if goal > 1 else "> 1x",
                ratio >= goal if goal > 1 else ratio > 1,
                {
                    "batch": f"{batch} x {length}",
                    "vocab": VOCAB,
                    "body": "256 hidden, 4 layers",
                    "torch_threads": THREADS,
                    "ours_steps": ours["steps"],
                    "ours_whole_loop_tokens_per_second": ours["whole_loop_tokens_per_second"],
                    "seed": {k: round(v, 3) for k, v in seed.items()},
                    "seed_peak_rss_mb": round(seed_timing.peak_rss_mb),
                    "texts": len(texts),
                    "host": host,
                    **split,
                },
            )
        )
    return rows


def run(quick: bool = False) -> list[Row]:
    WORK.mkdir(parents=True, exist_ok=True)
    rows = _head_rows(quick)
    small = _model("train-xlmr-small", hidden_size=256, num_layers=4, max_length=256)
    rows.append(_packing_row(small))
    rows.append(_cache_row(small, quick))
    rows.extend(_seed_rows(quick))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
