"""benchmarks/common.py: a command's time and peak RSS are its own, whatever the benchmark process holds."""

from __future__ import annotations

import json
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


def test_step_flops_count_lrltools_loss_and_the_full_logits_of_the_seed(tmp_path):
    """Against the products' sizes: full-vocabulary logits score every position, lrltool's loss only the
    predicted rows, with the same body. Per position not predicted the seed does the head's dense layer
    (2 H^2 forward, 2 H^2 for its input's gradient) and the vocabulary projection (2 H V for the logits,
    2 H V for the gradient) more; lrltool's in-place gradient product is counted too."""
    import bench_train

    from lrltool.tiny import build_tiny

    model = build_tiny("xlmr", tmp_path / "m", hidden_size=32, num_layers=1, max_length=32)
    config = json.loads((model / "config.json").read_text())
    hidden, vocab = config["hidden_size"], config["vocab_size"]
    batch, length, predicted = 2, 16, 5
    flops = bench_train.step_flops(
        model, {"ours": ((batch, length), predicted, False), "full": ((batch, length), predicted, True)}
    )
    positions = batch * length
    assert flops["full"] - flops["ours"] == (positions - predicted) * (4 * hidden * vocab + 4 * hidden**2)
    # the body counts too: at least its layer's forward products (attention 4 H^2, feed-forward 2 H I)
    inner = config["intermediate_size"]
    assert flops["ours"] > 4 * predicted * hidden * vocab + positions * 2 * (
        4 * hidden**2 + 2 * hidden * inner
    )

    seed = {"tokens_per_second": 1e5, "tokens_per_step": 20.0, "positions_per_step": positions}
    split = bench_train.work_split(
        model, batch=batch, length=length, ours=1e6, seed=seed, host={"sgemm_gflops": 100.0}
    )
    assert split["seed_padded_batch"] == "2 x 16"
    per_token = split["mflop_per_real_token"]
    assert per_token["seed"] == round(flops["full"] / 20 / 1e6, 3)  # the logits do not depend on the labels
    assert split["work_ratio"] == round(flops["full"] / 20 / (flops["ours"] / positions), 3)
    # the ratio of real tokens/s (1e6 / 1e5) = work ratio x the ratio of GFLOP/s
    speeds = split["gflop_per_second"]
    assert speeds["ours"] == round(flops["ours"] / positions * 1e6 / 1e9, 1)
    assert split["work_ratio"] * speeds["ours"] / speeds["seed"] == pytest.approx(10.0, rel=1e-2)
    assert split["share_of_host_sgemm"] == {side: round(v / 100, 3) for side, v in speeds.items()}
