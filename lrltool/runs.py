"""Run folders of training commands (train-adapter, finetune): layout, refusal rules, logs, checkpoints.

Layout of OUTDIR::

    adapter/ (or model/ for full training)   the exported result, written last, atomically
    checkpoints/last/  checkpoints/best/     resumable state: trained weights (safetensors), optimizer
                                             (torch.save of tensors/numbers only: weights_only loads it),
                                             state.json (step, schedule, best so far, ...), rng.safetensors
    training.json                            every setting, versions, data hash, steps, best loss, time
    README.md                                a model card
    log.jsonl                                {"step", "loss", "lr", "epoch"} and {"step", "eval_loss"} lines

A folder that holds another run is refused unless ``resume`` (continue it) or ``force`` (replace it);
a non-empty folder that is not a run is always refused (we never delete what we did not write).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrltool import __version__, ui
from lrltool.errors import RunError, UsageError
from lrltool.streams import write_json

TRAINING_JSON = "training.json"
LOG_JSONL = "log.jsonl"
README = "README.md"
CHECKPOINTS = "checkpoints"
# What a run writes; --force removes exactly these (and nothing else a user may have put there).
RUN_ENTRIES = ("adapter", "model", CHECKPOINTS, TRAINING_JSON, LOG_JSONL, README)


@dataclass
class RunDir:
    """Paths of one run folder."""

    path: Path

    @property
    def training_json(self) -> Path:
        return self.path / TRAINING_JSON

    @property
    def log(self) -> Path:
        return self.path / LOG_JSONL

    @property
    def readme(self) -> Path:
        return self.path / README

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best"

    def output(self, full: bool) -> Path:
        return self.path / ("model" if full else "adapter")

    def read_training_json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.training_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RunError(
                f"cannot read training.json ({exc})", hint="the run folder is damaged", path=str(self.path)
            ) from None
        if not isinstance(data, dict):
            raise RunError("training.json is not a JSON object", path=str(self.path))
        return data


def check_run_dir(
    out: str | Path, *, resume: bool = False, force: bool = False
) -> tuple[RunDir, dict | None]:
    """Decide what to do with OUTDIR before any work starts; change nothing on disk.

    Returns the run folder and, for ``resume``, the earlier run's training.json. Refuses (RunError): a
    file in the way; a folder holding another run without ``resume``/``force``; ``resume`` of a folder
    that holds no run or a finished one; a non-empty folder that is not a run.
    """
    if resume and force:
        raise RunError("--resume and --force exclude each other", hint="give one of them")
    run = RunDir(Path(out))
    path = run.path
    if path.exists() and not path.is_dir():
        raise RunError("the output is a file, not a folder", hint="choose another -o", path=str(path))
    entries = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if run.training_json.is_file():
        previous = run.read_training_json()
        if resume:
            if previous.get("finished"):
                raise RunError(
                    "the run in this folder has already finished; nothing to resume",
                    hint="use --force to train it again from scratch, or choose another -o",
                    path=str(path),
                )
            return run, previous
        if force:
            return run, None
        raise RunError(
            "the output folder holds another run",
            hint="choose a new -o, add --resume to continue it, or --force to replace it",
            path=str(path),
        )
    if resume:
        raise RunError(
            "no run to resume in this folder (no training.json)", hint="drop --resume", path=str(path)
        )
    if entries:
        raise RunError(
            f"the output folder is not empty and holds no run ({', '.join(entries[:3])}...)",
            hint="choose a new or empty folder for -o",
            path=str(path),
        )
    return run, None


def start_run_dir(run: RunDir, *, force: bool = False) -> None:
    """Create the run folder; with ``force``, first remove what an earlier run wrote there."""
    if force:
        for name in RUN_ENTRIES:
            target = run.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    run.path.mkdir(parents=True, exist_ok=True)


def write_training_json(run: RunDir, info: dict[str, Any]) -> None:
    write_json(run.training_json, info)


# ---------------------------------------------------------------------------------------------------
# log.jsonl


class RunLog:
    """Appends one JSON object per line to log.jsonl, flushed at once (a crash loses nothing logged)."""

    def __init__(self, path: Path, *, keep_through_step: int | None = None) -> None:
        """Open for appending; ``keep_through_step`` first drops lines logged after that step (resume)."""
        self.path = path
        if keep_through_step is not None and path.exists():
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    step = json.loads(line).get("step", 0)
                except (json.JSONDecodeError, AttributeError):
                    continue  # a line cut by a crash
                if isinstance(step, int) and step <= keep_through_step:
                    kept.append(line)
            path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, **entry: Any) -> None:
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------
# Checkpoints


@dataclass
class Checkpoint:
    weights: dict[str, Any]  # parameter name -> tensor (only what trains)
    optimizer: dict[str, Any] | None
    state: dict[str, Any]  # step, schedule, best so far, ... (JSON)
    rng: dict[str, Any]  # name -> uint8 tensor


def save_checkpoint(
    folder: Path,
    *,
    weights: dict[str, Any],
    optimizer: dict[str, Any] | None,
    state: dict[str, Any],
    rng: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder atomically (a crash mid-write keeps the previous one intact).

    ``weights``: safetensors; ``optimizer``: ``torch.save`` of a state dict of tensors and numbers, which
    ``torch.load(weights_only=True)`` reads; ``state``: JSON; ``rng``: safetensors of RNG state tensors.
    """
    import torch
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        # safetensors refuses tensors that share memory (tied weights); clone so each is its own copy.
        save_file(
            {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()},
            str(tmp / "weights.safetensors"),
        )
        if optimizer is not None:
            torch.save(optimizer, tmp / "optimizer.pt")
        if rng:
            save_file({k: v.cpu() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_checkpoint(folder: Path, *, device: Any = "cpu", with_optimizer: bool = True) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle beyond weights_only loading)."""
    import torch
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        weights = load_file(str(folder / "weights.safetensors"), device=str(device))
        optimizer = None
        if with_optimizer and (folder / "optimizer.pt").exists():
            optimizer = torch.load(folder / "optimizer.pt", map_location=device, weights_only=True)
        rng = load_file(str(folder / "rng.safetensors")) if (folder / "rng.safetensors").exists() else {}
    except (OSError, json.JSONDecodeError, RuntimeError) as exc:
        raise RunError(
            f"cannot read the checkpoint ({str(exc).splitlines()[0]})",
            hint="the checkpoint is damaged; use --force to start again",
            path=str(folder),
        ) from None
    return Checkpoint(weights=weights, optimizer=optimizer, state=state, rng=rng)


def rng_state() -> dict[str, Any]:
    """The torch RNG states (CPU and every CUDA device) as tensors, for a checkpoint."""
    import torch

    states = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"torch_cuda_{i}"] = s
    return states


def set_rng_state(states: dict[str, Any]) -> None:
    import torch

    if "torch_cpu" in states:
        torch.set_rng_state(states["torch_cpu"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"torch_cuda_{i}" in states:
                torch.cuda.set_rng_state(states[f"torch_cuda_{i}"], i)


# ---------------------------------------------------------------------------------------------------
# Model card


def model_card(info: dict[str, Any]) -> str:
    """README.md of a run: what was trained, on what, how well, and how to load it."""
    method = info.get("method", "?")
    full = method == "full"
    lines = [
        f"# {info.get('kind', 'language adapter')}: {info.get('model')} / {method}",
        "",
        f"- base model: `{info.get('model')}`"
        + (f" (revision `{info['model_revision']}`)" if info.get("model_revision") else ""),
        f"- method: `{method}`, objective: {info.get('objective', '?').upper()}",
        f"- language: {info.get('lang') or 'unknown'}; data source: {info.get('source') or 'unknown'}",
    ]
    data = info.get("data") or {}
    if data:
        lines.append(
            f"- data: {data.get('records', 0):,} records, {data.get('tokens', 0):,} tokens"
            f" (sha256 {str(data.get('hash', ''))[:16]}...)"
        )
    lines.append(f"- trainable parameters: {info.get('trainable_parameters', 0):,}")
    steps = info.get("steps")
    lines.append(
        f"- steps: {steps}; best validation loss {info.get('best_eval_loss')} at step {info.get('best_step')}"
        f" (the exported weights); {info.get('seconds', 0):.0f} s"
    )
    settings = info.get("settings") or {}
    if settings:
        lines += ["", "## Settings", "", "| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in settings.items()]
    lines += ["", "## Use", "", "```python"]
    if full:
        lines += [
            "from transformers import AutoModelForMaskedLM  # AutoModelForCausalLM for decoders",
            "model = AutoModelForMaskedLM.from_pretrained('model')",
        ]
    else:
        lines += [
            "import adapters",
            "from transformers import AutoModelForMaskedLM  # AutoModelForCausalLM for decoders",
            f"model = AutoModelForMaskedLM.from_pretrained({info.get('model')!r})",
            "adapters.init(model)",
            "name = model.load_adapter('adapter', set_active=True)",
        ]
        if method == "seq_bn_inv":
            lines += [
                "# adapters 1.3.0 skips the invertible adapter's inverse with the static HF classes;",
                "# lrltool.models.load_adapter does (it registers a hook before the output embedding).",
            ]
    lines += ["```", "", f"Command: `{info.get('command', '')}`", ""]
    return "\n".join(lines)


def write_model_card(run: RunDir, info: dict[str, Any]) -> None:
    from lrltool.streams import atomic_output

    with atomic_output(run.readme) as stream:
        stream.write(model_card(info).encode("utf-8"))


# ---------------------------------------------------------------------------------------------------
# Shared by the training loops of train-adapter and finetune


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the end of the step. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        ui.warn("stopping after this step and saving a checkpoint (Ctrl-C again to abort without one)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def seeded_rng(*key: int) -> Any:
    """A numpy generator keyed by integers (seed, purpose, step, ...): the same key, the same draws."""
    import numpy as np

    return np.random.default_rng([abs(int(k)) for k in key])


def linear_lr_factor(step: int, total: int, warmup: int) -> float:
    # transformers' get_linear_schedule_with_warmup, evaluated at the optimizer step about to be taken
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def library_versions() -> dict[str, str]:
    """The versions behind a run, for training.json."""
    import platform

    import adapters
    import tokenizers
    import torch
    import transformers

    return {
        "lrltool": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "adapters": adapters.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
    }


def check_positive(settings: Any, *names: str) -> None:
    """Refuse a setting (None = unset, allowed) that is zero or negative, naming its option."""
    for name in names:
        value = getattr(settings, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, not {value}")
