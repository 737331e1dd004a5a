"""devices: --device checked against the devices present, the process group's timeout, --deterministic
(the CPU checks of the GPU path's logic; a real GPU runs them in `make bench-gpu`)."""

from __future__ import annotations

import datetime
import os

import pytest
import torch

from lrltool import devices
from lrltool.errors import UsageError


class _FakeCuda:
    def __init__(self, count: int) -> None:
        self.count = count

    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count


@pytest.mark.parametrize(
    ("count", "requested", "expected"),
    [
        (0, "cuda", "--device cuda, but no CUDA device is available"),
        (0, "cuda:0", "--device cuda, but no CUDA device is available"),
        (2, "cuda:2", "--device cuda:2: this machine has 2 CUDA device(s)"),
        (2, "cuda:1", torch.device("cuda", 1)),
        (2, "cuda", torch.device("cuda", 1)),  # LOCAL_RANK 1: this process's GPU
        (2, "gpu", "unknown device 'gpu'"),
    ],
)
def test_resolve_device_checks_the_cuda_devices_present(monkeypatch, count, requested, expected):
    monkeypatch.setattr(torch, "cuda", _FakeCuda(count))
    monkeypatch.setenv("LOCAL_RANK", "1")
    if isinstance(expected, str):
        with pytest.raises(UsageError) as error:
            devices.resolve_device(requested)
        assert str(error.value).split("; ")[0] == expected
    else:
        assert devices.resolve_device(requested) == expected


def test_eval_device_cuda_without_cuda_is_a_usage_error(cli, monkeypatch, tmp_path):
    monkeypatch.setattr(torch, "cuda", _FakeCuda(0))
    data = tmp_path / "t.jsonl"
    data.write_text('{"text": "a b"}\n')
    result = cli(["eval", "--task", "mlm", "-m", tmp_path, "--device", "cuda", data])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: --device cuda, but no CUDA device is available; use --device cpu"
    ]


def test_the_process_group_waits_hours_not_nccls_ten_minutes(monkeypatch):
    assert devices.process_group_kwargs().to_kwargs() == {"timeout": datetime.timedelta(hours=6)}
    seen = {}

    class Recorder:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    import accelerate

    monkeypatch.setattr(accelerate, "Accelerator", Recorder)
    devices.make_accelerator("cpu", precision="fp32")
    [handler] = seen["kwargs_handlers"]
    assert handler.timeout == datetime.timedelta(hours=6) and seen["cpu"] is True


def test_deterministic_mode_is_set_for_the_block_and_restored(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with devices.deterministic(True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert devices.is_deterministic()
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    with devices.deterministic(False):
        assert not torch.are_deterministic_algorithms_enabled()


def test_bf16_is_refused_where_the_gpu_lacks_it(monkeypatch):
    class NoBf16(_FakeCuda):
        def is_bf16_supported(self) -> bool:
            return False

    monkeypatch.setattr(torch, "cuda", NoBf16(1))
    assert devices.default_bf16(torch.device("cuda", 0)) is False
    with pytest.raises(UsageError, match="this GPU does not support bfloat16"):
        devices.make_accelerator("cuda:0", precision="bf16")


def test_a_run_leaves_its_process_group_when_it_ends_or_fails(monkeypatch):
    """Left to the interpreter's exit, gloo's threads could abort a finished torchrun worker (exit -6)."""
    left = []

    class State:
        def destroy_process_group(self):
            left.append(True)

    class Accelerator:
        state = State()

    monkeypatch.setattr(devices, "make_accelerator", lambda device, **kwargs: Accelerator())
    with devices.accelerated("cpu") as accelerator:
        assert isinstance(accelerator, Accelerator) and left == []
    assert left == [True]
    with pytest.raises(RuntimeError, match="boom"), devices.accelerated("cpu"):
        raise RuntimeError("boom")
    assert left == [True, True]
