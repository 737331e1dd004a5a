from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.pop("LRLTOOL_DEBUG", None)
os.environ.pop(
    "MAKELEVEL", None
)  # `make test` must not look like a pipeline recipe (sources/hub.py messages)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel test workers share the cores: one intra-op thread each, or they only oversubscribe them.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.paths import EXAMPLES, ROOT  # noqa: F401 - re-exported for older helpers


def _seconds(item) -> float:
    mark = item.get_closest_marker("slow")
    return float(mark.kwargs.get("seconds", 1)) if mark else 0.0


def pytest_collection_modifyitems(config, items):
    """The tests marked slow (``@pytest.mark.slow(seconds=N)``, N a rough figure) run first, longest
    first, shared out among `make test`'s workers so that none ends waiting on a long test.

    pytest-xdist's worksteal scheduler gives worker k the k-th contiguous share of this list (then lets
    idle workers steal from the busy ones' tails), so each share starts with its part of the slow tests.
    """
    slow = sorted((item for item in items if _seconds(item)), key=lambda item: -_seconds(item))
    rest = [item for item in items if not _seconds(item)]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        items[:] = slow + rest
        return
    heads: list[list] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for item in slow:  # the longest to the least loaded worker
        k = loads.index(min(loads))
        heads[k].append(item)
        loads[k] += _seconds(item)
    ordered, remaining, fill = [], len(items), iter(rest)
    for k in range(workers):  # the scheduler's shares: remaining // workers left, in turn
        size = remaining // (workers - k)
        remaining -= size
        ordered += heads[k] + [next(fill) for _ in range(max(size - len(heads[k]), 0))]
    ordered += list(fill)
    items[:] = ordered


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run the real app: ``cli(args, input=...)`` -> Result with .exit_code, .stdout, .stderr."""
    from lrltool.cli import app

    def invoke(args, input=None, env=None):
        return runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return invoke


def _tiny(tmp_path_factory, arch: str, **kwargs) -> Path:
    from lrltool.tiny import build_tiny

    return build_tiny(arch, tmp_path_factory.mktemp(f"tiny-{arch}"), **kwargs)


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory, "xlmr")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory, "bert")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory, "llama")
