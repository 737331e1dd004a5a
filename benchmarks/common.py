"""Shared helpers for benchmarks: time a command and read its peak RSS, build result rows."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"  # generated inputs (git-ignored)
PYTHON = sys.executable


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float  # largest resident set of the process and the children it waited for


def run_timed(cmd: list[str] | str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Timing:
    """Run ``cmd`` (a list, or a string for ``bash -o pipefail -c``) and measure wall time and peak RSS."""
    args = ["bash", "-o", "pipefail", "-c", cmd] if isinstance(cmd, str) else cmd
    start = time.perf_counter()
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"benchmark command failed with exit status {code}: {cmd}")
    return Timing(seconds, usage.ru_maxrss / 1024)


def run_python(code: str, *, env: dict[str, str] | None = None) -> Timing:
    """Time a Python snippet in a fresh interpreter (so its peak RSS is its own)."""
    return run_timed([PYTHON, "-c", code], env=env)


@dataclass
class Row:
    """One benchmark result: ours against a baseline measured in the same run."""

    benchmark: str
    measure: str  # what was compared, e.g. "throughput (MB/s)" or "seconds per step"
    ours: float
    baseline: float
    ratio: float  # >1 means ours is better, whatever the unit
    goal: str  # e.g. ">= 0.8x"
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine() -> dict[str, Any]:
    import psutil

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
    }
