"""Shared helpers for benchmarks: time a command and read its peak RSS, build result rows."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
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


# A command started straight from this process would start with this process's peak RSS as its own: Linux
# records the old address space's high-water mark at exec. After a module that holds a few hundred MB
# (datacache: 385 MB), every later command's peak read as at least that. So each command is started by a
# small launcher, whose children begin from its own few MB; it times the command and reports both.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
report = f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}"
os.write(int(os.environ["BENCH_REPORT_FD"]), report.encode())
"""


def run_timed(cmd: list[str] | str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Timing:
    """Run ``cmd`` (a list, or a string for ``bash -o pipefail -c``) and measure wall time and peak RSS
    (its own, whatever this process holds: see ``_LAUNCHER``)."""
    args = ["bash", "-o", "pipefail", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as report:
        try:
            proc = subprocess.Popen(
                [PYTHON, "-c", _LAUNCHER, *args],
                env={**os.environ, **(env or {}), "BENCH_REPORT_FD": str(write_end)},
                cwd=cwd,
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)  # the launcher holds its own copy: EOF here when it exits
        fields = report.read().split()
    proc.wait()
    if len(fields) != 3 or int(fields[2]) != 0:
        code = fields[2].decode() if len(fields) == 3 else f"launcher {proc.returncode}"
        raise RuntimeError(f"benchmark command failed with exit status {code}: {cmd}")
    return Timing(float(fields[0]), int(fields[1]) / 1024)


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
