"""finetune / eval --task: our training loop and batched prediction, each against a baseline.

1. Training throughput (examples/s) of ``lrltool finetune``'s loop vs the adapters library's
   ``AdapterTrainer`` (the HF Trainer) on the same model, data, batch and number of steps: a seq_bn task
   adapter + head on SIB-200 Romanian topic classification (the bundled real sentences), an XLM-R-shaped
   model with a small body (256 hidden, 4 layers). Goal: not slower (>= 0.9x).
2. Prediction (eval) with examples batched by length vs in input order (padding to each batch's longest),
   same model and examples: seconds, and the predictions must be identical. Goal: > 1x.

One torch thread on both sides (a shared, loaded machine); each measurement in a fresh interpreter.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, WORK, Row, run_python

sys.path.insert(0, str(ROOT))
THREADS = 1

DATA_CODE = r"""
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from task_helpers import write_jsonl
from lrltool.sources.sib200 import LABELS
import csv
rows = list(csv.DictReader(open({tsv!r}, encoding="utf-8"), delimiter="\t"))
records = [{{"id": r["index_id"], "text": r["text"], "label": r["category"]}} for r in rows]
write_jsonl(Path({out!r}) / "train.jsonl", records)
"""

OURS_CODE = r"""
import json, torch
torch.set_num_threads({threads})
from lrltool.downstream import finetune as ft
prep = ft.prepare(task="tc", model={model!r}, data={data!r}, lang="ron_Latn")
settings = ft.make_settings("tc", max_steps={steps}, batch_size={batch}, max_length={length})
result = ft.train_run(prep, settings, out={out!r} + "/run", device="cpu")
rate = result.info["examples_per_second"]
open({out!r} + "/result.json", "w").write(json.dumps({{"examples_per_s": rate}}))
"""

TRAINER_CODE = r"""
import json, time, torch
torch.set_num_threads({threads})
from adapters import AdapterTrainer
from transformers import TrainingArguments
from lrltool import models
from lrltool.downstream.data import collate, encode_examples, read_task_data
from lrltool.downstream.model import build_task_model
from lrltool.tasks import TASKS
spec = TASKS["tc"]
source = models.resolve_model({model!r})
task = build_task_model(spec, spec.labels, base=source, lang_infos=[], method="adapter", fusion=False,
                        reduction_factor=16, seed=42, device="cpu")
data = read_task_data({data!r} + "/train.jsonl", spec)
encoded = encode_examples(data.examples, task.tokenizer, spec, max_length={length})

class Examples(torch.utils.data.Dataset):
    def __len__(self): return len(encoded)
    def __getitem__(self, i): return encoded[i]

args = TrainingArguments(output_dir={out!r}, max_steps={steps}, per_device_train_batch_size={batch},
                         learning_rate=1e-4, weight_decay=0.01, warmup_ratio=0.05, use_cpu=True, report_to=[],
                         save_strategy="no", logging_strategy="no", dataloader_num_workers=0,
                         remove_unused_columns=False, disable_tqdm=True, seed=42)
trainer = AdapterTrainer(model=task.model, args=args, train_dataset=Examples(),
                         data_collator=lambda rows: collate(rows, task.pad_id))
start = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - start
open({out!r} + "/result.json", "w").write(json.dumps({{"examples_per_s": {steps} * {batch} / seconds}}))
"""

PREDICT_CODE = r"""
import json, time, torch
torch.set_num_threads({threads})
from lrltool import models
from lrltool.downstream.data import collate, encode_examples, read_task_data
from lrltool.downstream.metrics import predict, predict_with_loss
from lrltool.downstream.model import build_task_model
from lrltool.tasks import TASKS
spec = TASKS["tc"]
source = models.resolve_model({model!r})
task = build_task_model(spec, spec.labels, base=source, lang_infos=[], method="adapter", fusion=False,
                        reduction_factor=16, seed=42, device="cpu")
data = read_task_data({data!r} + "/train.jsonl", spec)
encoded = encode_examples(data.examples, task.tokenizer, spec, max_length={length})

def in_order():
    out, loss_sum = [], 0.0
    with torch.no_grad():
        for b in range(0, len(encoded), {batch}):
            batch = collate(encoded[b : b + {batch}], task.pad_id)
            logits = task.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss_sum += float(torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum"))
            out += logits.argmax(-1).tolist()
    return out, loss_sum / len(encoded)

predict(task, encoded[:8], batch_size={batch}, device="cpu")  # warm-up
start = time.perf_counter()
sorted_preds, sorted_loss = predict_with_loss(task, encoded, batch_size={batch}, device="cpu")
ours = time.perf_counter() - start
start = time.perf_counter(); order_preds, order_loss = in_order(); baseline = time.perf_counter() - start
same = sorted_preds == order_preds and abs(sorted_loss - order_loss) <= 1e-5 * abs(order_loss)
open({out!r}, "w").write(json.dumps({{"ours": ours, "baseline": baseline, "same": same, "loss": order_loss,
                                     "examples": len(encoded), "distinct": len(set(sorted_preds))}}))
"""


def _model() -> Path:
    from lrltool.tiny import build_tiny

    # build_tiny scales the body's weights, so the <s> state depends on the text and predictions vary
    folder = WORK / "finetune-xlmr-256"
    if not (folder / "model.safetensors").exists():
        build_tiny("xlmr", folder, hidden_size=256, num_layers=4, num_heads=4, max_length=256)
    return folder


def _data() -> Path:
    folder = WORK / "finetune-sib200-train"
    if not (folder / "train.jsonl").exists():
        tsv = ROOT / "examples" / "sib200" / "data" / "annotated" / "ron_Latn" / "train.tsv"
        code = DATA_CODE.format(tests=str(ROOT / "tests"), tsv=str(tsv), out=str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        run_python(code, env={"PYTHONPATH": str(ROOT)})
    return folder


def _examples_per_s(template: str, **values) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run_python(template.format(out=tmp, threads=THREADS, **values), env={"PYTHONPATH": str(ROOT)})
        return json.loads((Path(tmp) / "result.json").read_text())["examples_per_s"]


def run(quick: bool) -> list[Row]:
    model, data = _model(), _data()
    steps, batch, length = (4, 16, 128) if quick else (20, 32, 128)
    common = dict(model=str(model), data=str(data), steps=steps, batch=batch, length=length)
    ours = _examples_per_s(OURS_CODE, **common)
    trainer = _examples_per_s(TRAINER_CODE, **common)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "predict.json"
        code = PREDICT_CODE.format(out=str(out), threads=THREADS, **common)
        run_python(code, env={"PYTHONPATH": str(ROOT)})
        predict = json.loads(out.read_text())
    details = {
        "model": "XLM-R-shaped, 256 hidden, 4 layers",
        "batch": batch,
        "max_length": length,
        "steps": steps,
    }
    return [
        Row(
            "finetune",
            "training throughput, lrltool loop vs AdapterTrainer (examples/s)",
            ours,
            trainer,
            ours / trainer,
            ">= 0.9x",
            ours / trainer >= 0.9,
            {**details, "torch_threads": THREADS},
        ),
        Row(
            "finetune",
            "eval prediction, batched by length vs input order (s)",
            predict["ours"],
            predict["baseline"],
            predict["baseline"] / predict["ours"],
            "> 1x, same predictions and loss",
            predict["baseline"] > predict["ours"] and predict["same"],
            {
                **details,
                "examples": predict["examples"],
                "identical": predict["same"],
                "mean_loss": predict["loss"],
                "distinct_predictions": predict["distinct"],
            },
        ),
    ]
