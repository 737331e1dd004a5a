"""`make LANG=xx plan`: what `make all` would run for one language, and what it costs.

Called by pipeline.mk with the plan as JSON on stdin: the adapter runs (method, source, steps), the task
runs (task, variant, seeds) and the evaluations. Prints, per kind of run, how many runs and optimizer
steps, and the GPU hours and disk they take at a throughput and run size that are measured, never
guessed: given (ADAPTER_STEPS_PER_SEC, FINETUNE_STEPS_PER_SEC), or read from the finished runs already
under OUT (training.json: steps / seconds; the folder's size on disk). Finetune steps need the task data
(epochs x ceil(train records / batch)); before `make data` they are unknown and said so.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PAPER_EPOCHS = {"tc": 20, "sa": 25, "ner": 100}  # finetune --preset paper (docs/design.md "Downstream")


def _records(folder: Path) -> int | None:
    """Training records of a fetched task (train.jsonl or .zst), None before `make data`."""
    for name in ("train.jsonl", "train.jsonl.zst"):
        path = folder / name
        if path.is_file():
            if name.endswith(".zst"):
                import zstandard

                with path.open("rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
                    return r.read().count(b"\n")
            return path.read_bytes().count(b"\n")
    return None


def _measured(root: Path, pattern: str) -> tuple[float | None, float | None, int]:
    """(steps per second, MB per run, runs measured) over the finished runs matching ``pattern``."""
    steps = seconds = size = 0.0
    found = 0
    for info_path in root.glob(pattern):
        info = json.loads(info_path.read_text())
        if not info.get("finished") or not info.get("seconds"):
            continue
        found += 1
        steps += info.get("steps", 0)
        seconds += info["seconds"]
        size += sum(p.stat().st_size for p in info_path.parent.rglob("*") if p.is_file())
    if not found:
        return None, None, 0
    return steps / seconds, size / found / 2**20, found


def main() -> None:
    plan = json.load(sys.stdin)
    out = Path(plan["out"])
    rates = {"adapter": plan.get("adapter_rate"), "finetune": plan.get("finetune_rate")}
    rows = []
    adapter_steps = sum(a["steps"] or 0 for a in plan["adapters"])
    unknown_adapter = [a for a in plan["adapters"] if not a["steps"]]
    rows.append(
        ("language adapters", len(plan["adapters"]), adapter_steps, "adapter", "adapters/*/training.json")
    )
    finetune_steps, unknown_tasks = 0, set()
    for run in plan["tasks"]:
        n = _records(out / "data" / run["task"])
        if n is None:
            unknown_tasks.add(run["task"])
            continue
        epochs = plan["epochs"] or PAPER_EPOCHS[run["task"]]
        finetune_steps += run["seeds"] * math.ceil(epochs * math.ceil(n / plan["batch"]))
    runs_total = sum(run["seeds"] for run in plan["tasks"])
    rows.append(
        ("task runs (seeds)", runs_total, finetune_steps, "finetune", "tasks/*/*/seed-*/training.json")
    )
    print(f"plan for {plan['lang']} ({plan['model']}), under {out}")
    print(f"{'':24}{'runs':>8}{'steps':>14}{'steps/s':>10}{'GPU hours':>11}{'disk GB':>10}")
    total_hours, total_gb = 0.0, 0.0
    for label, count, steps, kind, pattern in rows:
        rate, mb, measured = _measured(out, pattern)
        given = rates[kind]
        rate = float(given) if given else rate
        hours = steps / rate / 3600 if rate else None
        gb = count * mb / 1024 if mb else None
        total_hours += hours or 0.0
        total_gb += gb or 0.0
        rate_text = f"{rate:.2f}" if rate else "?"
        hours_text = f"{hours:.1f}" if hours is not None else "?"
        gb_text = f"{gb:.1f}" if gb is not None else "?"
        print(f"{label:24}{count:>8,}{steps:>14,}{rate_text:>10}{hours_text:>11}{gb_text:>10}")
        if not given:
            source = f"{measured} finished run(s) under {out}" if measured else "no finished run to measure"
            print(f"{'':24}  steps/s and disk: {source}")
    print(f"{'evaluations':24}{plan['evals']:>8,}")
    fusion = plan.get("fusion") or {}
    fused = [f"{r['task']}/{r['variant']}" for r in plan["tasks"] if r["variant"].startswith("fusion-")]
    print(
        f"fusion runs: {', '.join(fused) or 'none'}"
        f" (FUSION_TASKS={fusion.get('tasks') or '<none>'},"
        f" FUSION_METHODS={fusion.get('methods') or '<none>'})"
    )
    print(f"total: {total_hours:.1f} GPU hours and {total_gb:.1f} GB for what could be estimated")
    if unknown_adapter:
        print(f"steps unknown for {len(unknown_adapter)} adapter run(s): no --max-steps or PRESET")
    if unknown_tasks:
        print(
            f"finetune steps unknown for {', '.join(sorted(unknown_tasks))}: run `make LANG=... data` first"
        )
    missing = [k for k, v in rates.items() if not v]
    if missing:
        print(
            "pass a measured throughput for a run not yet done here: ADAPTER_STEPS_PER_SEC=... and"
            " FINETUNE_STEPS_PER_SEC=... (a short run prints steps and seconds in its training.json)"
        )
        print(
            f"  e.g. on the GPU you will use: make LANG={plan['lang']} adapters TRAIN_ARGS='--max-steps 200'"
            f" OUT=/tmp/probe; steps / seconds in /tmp/probe/{plan['lang']}/adapters/*/training.json is"
            f" ADAPTER_STEPS_PER_SEC for make LANG={plan['lang']} plan (FINETUNE_STEPS_PER_SEC likewise)"
        )


if __name__ == "__main__":
    main()
