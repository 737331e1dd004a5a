"""Run the benchmarks (benchmarks/bench_*.py) and print one table of ratios against their baselines.

Each module defines ``run(quick: bool) -> list[Row]``; the baseline of every row is measured in the same
run. Results go to benchmarks/results.json (rows of modules not run this time are kept).

    python benchmarks/run.py [--only NAME ...] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row, machine  # noqa: E402


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="benchmark module names (e.g. cap fetch)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    args = parser.parse_args(argv)
    modules = sorted(HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in args.only]
    results_path = HERE / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    results = previous.get("benchmarks", {})
    failed = False
    for path in modules:
        name = path.stem.removeprefix("bench_")
        print(f"== {name}", file=sys.stderr)
        start = time.perf_counter()
        try:
            rows: list[Row] = _load(path).run(quick=args.quick)
        except Exception:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            failed = True
            continue
        results[name] = {
            "rows": [r.as_dict() for r in rows],
            "seconds": round(time.perf_counter() - start, 1),
            "quick": args.quick,
            "date": time.strftime("%Y-%m-%d"),
        }
        failed |= not all(r.ok for r in rows)
        results_path.write_text(json.dumps({"machine": machine(), "benchmarks": results}, indent=2) + "\n")
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lrltool benchmarks (ratio > 1: ours is better)", title_justify="left")
    for col in ("benchmark", "measure", "ours", "baseline", "ratio", "goal", "ok"):
        table.add_column(col, justify="right" if col in {"ours", "baseline", "ratio"} else "left")
    for _name, entry in sorted(results.items()):
        for r in entry["rows"]:
            table.add_row(
                r["benchmark"],
                r["measure"],
                f"{r['ours']:.4g}",
                f"{r['baseline']:.4g}",
                f"{r['ratio']:.2f}x",
                r["goal"],
                "yes" if r["ok"] else "NO",
            )
    Console(width=160).print(table)
    results_path.write_text(json.dumps({"machine": machine(), "benchmarks": results}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
