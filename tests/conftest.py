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


def pytest_collection_modifyitems(config, items):
    """The tests marked slow run first, so that parallel workers do not end waiting on one long test."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


@pytest.fixture(scope="session")
def small_examples(tmp_path_factory) -> Path:
    """examples/ in its own layout, FLORES cut to its first 40 devtest and 20 dev sentences, every other
    source linked unchanged: the end-to-end `make` tests score pseudo-perplexity (a forward pass per
    token) on fewer sentences, and assert the chain's structure, not its values."""
    data = tmp_path_factory.mktemp("small-examples")
    for source in EXAMPLES.iterdir():
        if source.is_dir() and source.name != "flores":
            (data / source.name).symlink_to(source)
    for split, keep in (("devtest", 40), ("dev", 20)):
        lines = (EXAMPLES / "flores" / split / f"ron_Latn.{split}").read_text(encoding="utf-8").splitlines()
        assert len(lines) > keep
        (data / "flores" / split).mkdir(parents=True)
        (data / "flores" / split / f"ron_Latn.{split}").write_text(
            "\n".join(lines[:keep]) + "\n", encoding="utf-8"
        )
    return data
