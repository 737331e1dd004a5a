"""Devices, dtypes and processes: one meaning of ``--device``, one place that sets up 🤗 Accelerate.

``--device auto`` means the first of CUDA, Apple MPS and the CPU that this machine has (Accelerate's own
order); ``cuda`` without an index means this process's GPU (``LOCAL_RANK`` under torchrun / accelerate
launch). A device that is not there is a usage error, before anything is loaded.

Training runs through :func:`make_accelerator` (device placement, bf16 autocast, DDP over the processes
that torchrun or ``accelerate launch`` started, trackers); evaluation needs only a device and a dtype.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from lrltool.errors import UsageError

DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"
DTYPE_NAMES = ("float32", "bfloat16", "float16")


def local_rank() -> int:
    """This process's index on its machine (0 without torchrun / accelerate launch)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """How many processes train together (1 without torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(requested: str | None = "auto") -> Any:
    """The torch device ``--device`` names; UsageError for a malformed name or a device not present."""
    import torch

    requested = requested or "auto"
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank())
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available() and world_size() == 1:
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"unknown device '{requested}'", hint=f"use {DEVICE_HELP}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda, but no CUDA device is available", hint="use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank())
        if device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {requested}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                hint=f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}",
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("--device mps, but MPS is not available", hint="use --device cpu")
    elif device.type != "cpu":
        raise UsageError(f"unknown device '{requested}'", hint=f"use {DEVICE_HELP}")
    return device


def resolve_dtype(name: str | None) -> Any:
    """The torch dtype ``--dtype`` names, or None (the model's own) for None."""
    import torch

    if name is None:
        return None
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise UsageError(f"unknown dtype '{name}'", hint=f"choose one of {', '.join(DTYPE_NAMES)}")
    return dtypes[name]


def dtype_name(dtype: Any) -> str:
    """``torch.bfloat16`` -> ``bfloat16``; None (the model's own) -> ``float32``."""
    return str(dtype or "float32").removeprefix("torch.")


def default_bf16(device: Any) -> bool:
    """bf16 autocast by default where the device runs it natively: a CUDA GPU that supports bf16."""
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported()


#: How long the processes of a torchrun group wait for each other (NCCL's default is 10 minutes): the first
#: process tokenizes the corpus (and fills the cache) while the others wait in a barrier.
PROCESS_GROUP_TIMEOUT_S = int(os.environ.get("LRLTOOL_PROCESS_GROUP_TIMEOUT", str(6 * 3600)))
#: cuBLAS needs a fixed workspace to be deterministic (set before the first cuBLAS call).
CUBLAS_WORKSPACE = ":4096:8"


def set_deterministic(on: bool) -> None:
    """``--deterministic``: deterministic algorithms only (an op that has none is an error, not a silent
    difference), cuDNN without autotuning, a fixed cuBLAS workspace. On the CPU the training loop is
    bit-identical without it; on CUDA only with it."""
    import torch

    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def deterministic(on: bool) -> Iterator[None]:
    """:func:`set_deterministic` ``on`` for the block (nothing when off); the previous mode afterwards."""
    import torch

    if not on:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic
    set_deterministic(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic = before[1]


def is_deterministic() -> bool:
    import torch

    return torch.are_deterministic_algorithms_enabled()


#: ``--report-to``: the trackers a training run can write to (Accelerate's names), and the module each needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}


def parse_report_to(value: str | None) -> list[str]:
    """``--report-to`` (``none``, ``tensorboard``, ``wandb`` or a comma-separated list, as the HF Trainer's
    ``report_to``) as Accelerate tracker names; UsageError for an unknown one or a package not installed."""
    import importlib.util

    names = [n.strip() for n in (value or "none").split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    for name in names:
        if name not in TRACKERS:
            raise UsageError(f"unknown --report-to '{name}'", hint="choose none, tensorboard or wandb")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UsageError(
                f"--report-to {name} needs the {TRACKERS[name]} package",
                hint=f"pip install 'lrltool[{name}]' (or pip install {TRACKERS[name]})",
            )
    return list(dict.fromkeys(names))


PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_precision(precision: str | None, target: Any) -> str:
    """``--precision`` on the device ``target``: fp32, bf16 or fp16 (None: bf16 where the GPU has it, else
    fp32). UsageError for an unknown name, and for bf16/fp16 anywhere but on a CUDA device that runs it."""
    import torch

    if precision is None:
        return "bf16" if default_bf16(target) else "fp32"
    if precision not in PRECISIONS:
        raise UsageError(f"unknown --precision '{precision}'", hint=f"choose {', '.join(PRECISIONS)}")
    if precision != "fp32" and target.type != "cuda":
        raise UsageError(f"--precision {precision} needs a CUDA device", hint="use fp32 or --device cuda")
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise UsageError("--precision bf16: this GPU does not support bfloat16", hint="use fp16 or fp32")
    return precision


def make_accelerator(
    device: str,
    *,
    precision: str | None = None,
    report_to: list[str] | None = None,
    logging_dir: Any = None,
) -> Any:
    """The 🤗 Accelerate ``Accelerator`` of one training run on ``--device``.

    ``precision`` (:func:`resolve_precision`): fp32, or bf16/fp16 autocast (fp16 with Accelerate's loss
    scaler, which needs the optimizer through ``accelerator.prepare``). ``report_to``: Accelerate trackers
    (:func:`parse_report_to`); TensorBoard writes under ``logging_dir``. Joins the process group that
    torchrun / accelerate launch describe in the environment (gloo on the CPU, NCCL on GPUs, each process
    on its own GPU). Refuses (UsageError) a device that is not there and a precision it cannot run.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    target = resolve_device(device)
    mixed = resolve_precision(precision, target)
    if world_size() == 1:
        # Accelerate keeps one process-wide state; a new run in the same process may ask another device.
        AcceleratorState._reset_state(reset_partial_state=True)
        if target.type == "cuda":
            torch.cuda.set_device(target)
    accelerator = Accelerator(
        cpu=target.type == "cpu",
        mixed_precision="no" if mixed == "fp32" else mixed,
        log_with=report_to or None,
        project_dir=str(logging_dir) if report_to else None,
        kwargs_handlers=[process_group_kwargs()],
    )
    return accelerator


@contextlib.contextmanager
def accelerated(device: str, **kwargs: Any) -> Iterator[Any]:
    """:func:`make_accelerator`'s Accelerator for the length of one run; on the way out, finished or failed,
    this process leaves the process group torchrun / accelerate launch started (nothing in one process).
    Left to the interpreter's exit, gloo's worker threads can abort the process after its work is done
    ("terminate called without an active exception", exit -6), so the launcher reports a failed run."""
    accelerator = make_accelerator(device, **kwargs)
    try:
        yield accelerator
    finally:
        accelerator.state.destroy_process_group()


def process_group_kwargs() -> Any:
    """The process group's settings: a timeout long enough for the first process to tokenize a corpus."""
    import datetime

    from accelerate.utils import InitProcessGroupKwargs

    return InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=PROCESS_GROUP_TIMEOUT_S))


def global_rank() -> int:
    """This process's index among all processes (0 without torchrun / accelerate launch)."""
    return int(os.environ.get("RANK", "0"))
