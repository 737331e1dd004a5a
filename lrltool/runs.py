"""Run folders of the training commands (train-adapter, finetune): layout, RunInfo, refusal rules, logs,
checkpoints, model cards.

Layout of OUTDIR::

    adapter/ (or model/ for full training)   the exported result, written last, atomically
    checkpoints/last/  checkpoints/best/     resumable state: trained weights (safetensors), optimizer
                                             (torch.save of tensors/numbers only: weights_only loads it),
                                             state.json (the loop's TrainState), rng.safetensors
    training.json                            RunInfo: every setting, versions, data hash, steps, best, time
    README.md                                a model card
    log.jsonl                                {"step", "loss", "lr", "epoch"} and {"step", "eval_..."} lines

A folder that holds another run is refused unless ``resume`` (continue it) or ``force`` (replace it);
a non-empty folder that is not a run is always refused (we never delete what we did not write).
:class:`Run` owns this lifecycle: :meth:`Run.open` decides (and changes nothing), :meth:`Run.start`
creates the folder, checkpoints are saved and restored through it, :meth:`Run.finish` writes the model
card and then training.json with ``finished: true`` (last: a finished training.json means a complete run).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lrltool import __version__
from lrltool.errors import RunError
from lrltool.streams import atomic_output, write_json

TRAINING_JSON = "training.json"
LOG_JSONL = "log.jsonl"
README = "README.md"
CHECKPOINTS = "checkpoints"
# What a run writes; --force removes exactly these (and nothing else a user may have put there).
RUN_ENTRIES = (
    "adapter",
    "model",
    "fusion",
    CHECKPOINTS,
    TRAINING_JSON,
    LOG_JSONL,
    README,
    "tensorboard",
    "wandb",
)


# ---------------------------------------------------------------------------------------------------
# training.json


@dataclass
class RunInfo:
    """training.json of a run (both commands): the fields every run has, typed, and ``extra`` for what
    one command adds (train-adapter: objective, adapter_name, ...; finetune: task, labels, ...)."""

    kind: str = ""  # "language adapter", "continued pre-training" or "finetune"
    command: str | None = None
    model: str | None = None
    model_revision: str | None = None
    model_type: str | None = None
    method: str | None = None
    source: str | None = None
    lang: str | None = None
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    trainable_parameters: int = 0
    total_steps: int = 0
    steps: int = 0
    best_step: int | None = None
    seconds: float = 0.0
    device: str | None = None
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of training.json: the typed fields in order, then ``extra``'s keys."""
        typed = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**typed, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> RunInfo:
        """The training.json of the run in ``folder``; RunError if it is missing or damaged."""
        path = Path(folder) / TRAINING_JSON
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunError(
                f"cannot read training.json ({exc})", hint="the run folder is damaged", path=str(folder)
            ) from None
        if not isinstance(data, dict):
            raise RunError("training.json is not a JSON object", path=str(folder))
        return cls.from_json(data)

    @classmethod
    def find(cls, folder: str | os.PathLike[str]) -> RunInfo | None:
        """The RunInfo of ``folder``'s run, of the run an ``adapter/`` or ``model/`` folder belongs to, or
        None where there is none (or it cannot be read)."""
        path = Path(folder)
        for run_dir in (path.parent, path) if path.name in ("adapter", "model") else (path,):
            if (run_dir / TRAINING_JSON).is_file():
                try:
                    return cls.load(run_dir)
                except RunError:
                    return None
        return None

    def get(self, key: str, default: Any = None) -> Any:
        """A field by name: a typed one, else one of ``extra``."""
        if key != "extra" and key in {f.name for f in fields(self)}:
            return getattr(self, key)
        return self.extra.get(key, default)


def differences(previous: dict[str, Any], current: dict[str, Any], keys: Sequence[str]) -> list[str]:
    """``"key old -> new"`` for each of ``keys`` whose value differs (for --resume refusals)."""
    return [
        f"{key} {previous.get(key)!r} -> {current.get(key)!r}"
        for key in keys
        if previous.get(key) != current.get(key)
    ]


# ---------------------------------------------------------------------------------------------------
# The run folder


class Run:
    """One run folder and its lifecycle (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.previous: RunInfo | None = None  # the interrupted run's training.json, when resuming
        self.force = False

    # --- paths

    @property
    def training_json(self) -> Path:
        return self.path / TRAINING_JSON

    @property
    def log_path(self) -> Path:
        return self.path / LOG_JSONL

    @property
    def readme(self) -> Path:
        return self.path / README

    @property
    def last_checkpoint(self) -> Path:
        return self.path / CHECKPOINTS / "last"

    @property
    def best_checkpoint(self) -> Path:
        return self.path / CHECKPOINTS / "best"

    def output(self, full: bool) -> Path:
        return self.path / ("model" if full else "adapter")

    # --- lifecycle

    @classmethod
    def open(cls, out: str | os.PathLike[str], *, resume: bool = False, force: bool = False) -> Run:
        """Decide what to do with OUTDIR before any work starts; change nothing on disk.

        For ``resume``, :attr:`previous` holds the earlier run's training.json. Refuses (RunError): a file
        in the way; a folder holding another run without ``resume``/``force``; ``resume`` of a folder
        that holds no run or a finished one; a non-empty folder that is not a run.
        """
        if resume and force:
            raise RunError("--resume and --force exclude each other", hint="give one of them")
        run = cls(out)
        run.force = force
        path = run.path
        if path.exists() and not path.is_dir():
            raise RunError("the output is a file, not a folder", hint="choose another -o", path=str(path))
        if run.training_json.is_file():
            previous = RunInfo.load(path)
            if resume:
                if previous.finished:
                    raise RunError(
                        "the run in this folder has already finished; nothing to resume",
                        hint="use --force to train it again from scratch, or choose another -o",
                        path=str(path),
                    )
                run.previous = previous
                return run
            if force:
                return run
            raise RunError(
                "the output folder holds another run",
                hint="choose a new -o, add --resume to continue it, or --force to replace it",
                path=str(path),
            )
        if resume:
            raise RunError(
                "no run to resume in this folder (no training.json)", hint="drop --resume", path=str(path)
            )
        entries = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        if entries:
            raise RunError(
                f"the output folder is not empty and holds no run ({', '.join(entries[:3])}...)",
                hint="choose a new or empty folder for -o",
                path=str(path),
            )
        return run

    def start(self, info: RunInfo) -> None:
        """Create the folder (with ``force``, first remove what an earlier run wrote) and write ``info``."""
        if self.force:
            for name in RUN_ENTRIES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_info(info)

    def write_info(self, info: RunInfo) -> None:
        write_json(self.training_json, info.to_json())

    def finish(self, info: RunInfo, card: str) -> None:
        """The model card, then training.json (``info`` with ``finished`` true), each atomically."""
        with atomic_output(self.readme) as stream:
            stream.write(card.encode("utf-8"))
        info.finished = True
        self.write_info(info)

    def log(self, *, keep_through_step: int | None = None) -> RunLog:
        return RunLog(self.log_path, keep_through_step=keep_through_step)


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
    state: dict[str, Any]  # the loop's TrainState as JSON
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
# Model cards and versions


@dataclass
class Card:
    """A run's README.md: a title, facts (bullet lines), settings, how to use it, and the command."""

    title: str
    facts: list[str]
    settings: dict[str, Any]
    usage: list[str]  # lines shown under "## Use"
    command: str | None

    def render(self) -> str:
        lines = [f"# {self.title}", "", *self.facts]
        if self.settings:
            lines += ["", "## Settings", "", "| setting | value |", "| --- | --- |"]
            lines += [f"| {k} | {v} |" for k, v in self.settings.items()]
        lines += ["", "## Use", "", *self.usage, "", f"Command: `{self.command or ''}`", ""]
        return "\n".join(lines)


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


def settings_dict(settings: Any) -> dict[str, Any]:
    """A settings dataclass as the JSON object training.json records."""
    return asdict(settings)
