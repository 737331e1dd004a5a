"""benchmarks/common.py: a command's time and peak RSS are its own, whatever the benchmark process holds."""

from __future__ import annotations

import sys

import pytest

from tests.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import common


def test_peak_rss_is_the_commands_own_not_the_benchmark_processs():
    """Linux starts a command's peak RSS at the RSS of the process that started it (the high-water mark of
    the old address space is kept at exec): with 400 MB here, ``true`` read as 400 MB."""
    held = bytearray(400 << 20)  # the benchmark process after a module that holds a lot
    held[::4096] = b"x" * len(held[::4096])  # touched: resident
    small = common.run_timed("exec true")
    big = common.run_timed(
        [sys.executable, "-c", "x = bytearray(300 << 20); x[::4096] = b'x' * len(x[::4096])"]
    )
    assert small.peak_rss_mb < 50
    assert 300 < big.peak_rss_mb < 400
    assert small.seconds > 0 and big.seconds > small.seconds
    del held


def test_a_failed_command_is_an_error_with_its_status():
    with pytest.raises(RuntimeError, match="exit status 3: exit 3"):
        common.run_timed("exit 3")


def test_host_rates_are_measured_in_a_fresh_one_thread_interpreter():
    import bench_train

    rates = bench_train.host_rates()
    assert set(rates) == {"sgemm_gflops", "copy_gb_per_s"}
    assert all(isinstance(value, float) and value > 0 for value in rates.values())
