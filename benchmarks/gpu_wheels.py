"""Wheels to run ``benchmarks/gpu.py`` (or lrltool) on a CUDA machine that has no internet but has PyTorch.

A GPU box's own image usually holds a CUDA PyTorch, numpy, accelerate, safetensors, scikit-learn,
pyarrow, matplotlib, rich, PyYAML and requests, but not lrltool's pins that the adapters library needs
(transformers ~=4.57.6, huggingface_hub < 1.0, tokenizers <= 0.23.0) and not its smaller dependencies.
On a machine with the package index, this downloads exactly those (``PACKAGES``, at constraints.txt's
versions) as wheels for the target's Python and processor, without their dependencies:

    python benchmarks/gpu_wheels.py WHEELS [--python-version 3.12] [--machine x86_64|aarch64] [--list]

All or none: a failed pip command (a version with no wheel for that Python) leaves WHEELS as it was; a
successful run replaces it whole.

Copy WHEELS and the repository to the GPU machine, then, from the repository's root:

    python3 -m pip install --no-index --no-deps --target /tmp/site WHEELS/*.whl
    PYTHONPATH=/tmp/site python3 benchmarks/gpu.py

``PYTHONPATH`` puts these versions before the image's own (a newer transformers there stays installed
and unused); ``gpu.py`` finds lrltool in the repository and records the versions that ran. seqeval is
published as a source archive only: it is built here into a pure-Python wheel (``pip wheel``). Hyperscan
has no wheel for Linux on ARM and lrltool does not require it there (pyproject.toml), so ``--machine
aarch64`` leaves it out. The list was checked against an image with transformers 5.17, huggingface_hub
1.33 and tokenizers 0.23.2 installed (benchmarks/README.md "GPU").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONSTRAINTS = ROOT / "constraints.txt"
sys.path.insert(0, str(ROOT))

#: What lrltool needs beyond a CUDA PyTorch image: the adapters library's pins, then the small ones.
PACKAGES = (
    "transformers",
    "adapters",
    "huggingface-hub",
    "tokenizers",
    "jsonlines",
    "zstandard",
    "isal",
    "orjson",
    "langcodes",
    "language-data",
    "marisa-trie",
    "seqeval",
    "hyperscan",
)
#: Published as a source archive only (pure Python): built into a wheel here.
SOURCE_ONLY = frozenset({"seqeval"})
#: No wheel for this processor, and not required on it (pyproject.toml's markers).
NOT_ON = {"aarch64": frozenset({"hyperscan"})}
#: manylinux tags to accept, newest first (pip matches each tag exactly).
MANYLINUX = ("manylinux_2_28", "manylinux_2_27", "manylinux_2_24", "manylinux_2_17", "manylinux2014")


def pins(constraints: Path = CONSTRAINTS, machine: str = "x86_64") -> list[str]:
    """``name==version`` for each of ``PACKAGES`` the machine needs, at the version ``constraints`` pins."""
    pinned = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pinned[canonicalize_name(name)] = version.strip()
    missing = [name for name in PACKAGES if name not in pinned]
    if missing:
        raise SystemExit(f"error: {constraints}: no pinned version of {', '.join(missing)}")
    skipped = NOT_ON.get(machine, frozenset())
    return [f"{name}=={pinned[name]}" for name in PACKAGES if name not in skipped]


def commands(folder: Path, python_version: str, machine: str) -> list[list[str]]:
    """The pip commands that fill ``folder``: one download of the binary wheels, one build per source
    archive."""
    wanted = pins(machine=machine)
    binary = [pin for pin in wanted if pin.split("==")[0] not in SOURCE_ONLY]
    source = [pin for pin in wanted if pin.split("==")[0] in SOURCE_ONLY]
    download = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    download += ["-d", str(folder), "--python-version", python_version, "--implementation", "cp"]
    for tag in MANYLINUX:
        download += ["--platform", f"{tag}_{machine}"]
    runs = [download + binary]
    runs += [[sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(folder), pin] for pin in source]
    return runs


class PipFailed(Exception):
    """A pip command of :func:`download` failed (its own output says why)."""


def download(
    folder: Path, python_version: str, machine: str, run: Callable[..., Any] = subprocess.run
) -> list[Path]:
    """Fill ``folder`` with the wheels, all or none (``lrltool.streams.atomic_dir``): pip fills a
    temporary folder beside it, which replaces ``folder`` only once every command succeeded. A failed
    download leaves no partial set that would install and then fail to import, and no wheel of an earlier
    download stays beside the new ones (two versions of a package stop ``pip install``). ``run``:
    ``subprocess.run`` (a stand-in in the tests)."""
    from lrltool.streams import atomic_dir

    with atomic_dir(folder) as tmp:
        for command in commands(tmp, python_version, machine):
            done = run(command)
            if done.returncode != 0:
                raise PipFailed(f"pip failed ({done.returncode}): {subprocess.list2cmdline(command)}")
    return sorted(folder.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="where the wheels go")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    parser.add_argument("--python-version", default=here, help=f"the target's Python (default {here})")
    parser.add_argument("--machine", default="x86_64", choices=("x86_64", "aarch64"), help="its processor")
    parser.add_argument("--list", action="store_true", help="print the pins and the pip commands only")
    args = parser.parse_args(argv)
    runs = commands(args.folder, args.python_version, args.machine)
    if args.list:
        print("\n".join(pins(machine=args.machine)))
        for run in runs:
            print("#", subprocess.list2cmdline(run))
        return 0
    try:
        wheels = download(args.folder, args.python_version, args.machine)
    except PipFailed as failed:
        print(f"error: {failed}", file=sys.stderr)
        return 1
    size = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB, in {args.folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
