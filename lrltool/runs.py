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
:class:`Run` owns this lifecycle: :meth:`Run.open` decides (and changes nothing), :meth:`Run.acquire`
takes the folder's lock (:class:`RunLock`: one process writes a run folder; a second one is refused
with one line naming the holder) and checks the decision again under it, :meth:`Run.start` writes
training.json, checkpoints are saved and restored through it, :meth:`Run.finish` writes the model card and
then training.json with ``finished: true`` (last: a finished training.json means a complete run), and
:meth:`Run.release` lets the lock go (the kernel does it too when a process dies).

Checkpoints are switched crash-safely (:func:`save_checkpoint`): the new one is written in full under a
temporary name, then swapped with the old one in one atomic step; a process killed at any moment leaves
``checkpoints/last`` complete (old or new). Where the system cannot swap (no renameat2), two renames
leave a window after which :func:`checkpoint_to_resume` recovers the newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lrltool import __version__, ui
from lrltool.devices import global_rank
from lrltool.errors import RunError, UsageError
from lrltool.languages import resolve_language
from lrltool.streams import atomic_output, exchange, write_error, write_json

TRAINING_JSON = "training.json"
LOG_JSONL = "log.jsonl"
README = "README.md"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".lrltool.lock"  # held (flock) by the process that writes the run; removed when it ends
#: The test hook of crash-safe checkpoints: "NAME:STEP" SIGKILLs this process when checkpoint NAME (last,
#: best) of STEP is complete under its temporary name, before the switch; "NAME:STEP:between" switches by
#: two renames (as where the system cannot swap) and kills between them.
KILL_ENV = "LRLTOOL_TEST_KILL_IN_CHECKPOINT"
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
    model: str | None = None  # as given (a hub id or a folder)
    model_revision: str | None = None  # a hub model's resolved commit
    model_path: str | None = None  # a local model's absolute path (what eval --run and --resume load)
    model_hash: str | None = None  # models.model_fingerprint: refused on --resume / eval --run if it changed
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
        self.resume = False
        self._lock: RunLock | None = None

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
        if global_rank() == 0 and Path(out).is_dir():
            RunLock(out).check()  # in use by another process: refused before any data is read
        return cls._decide(out, resume=resume, force=force)

    @classmethod
    def _decide(cls, out: str | os.PathLike[str], *, resume: bool, force: bool) -> Run:
        run = cls(out)
        run.force, run.resume = force, resume
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
        # The lock and what a killed run left under temporary names are ours (start() removes the latter).
        entries = sorted(p.name for p in path.iterdir() if not _ours(p.name)) if path.is_dir() else []
        if entries:
            raise RunError(
                f"the output folder is not empty and holds no run ({', '.join(entries[:3])}...)",
                hint="choose a new or empty folder for -o",
                path=str(path),
            )
        return run

    def acquire(self, command: str | None = None) -> None:
        """Take the run folder's lock for the rest of this process's work on it (creating the folder), and
        check under the lock that the folder still holds what :meth:`open` found; RunError when another
        process holds the lock (naming it) or has changed the folder since. Only the first process of a
        torchrun / accelerate launch group takes it. Idempotent."""
        if self._lock is not None or global_rank() != 0:
            return
        lock = RunLock(self.path)
        lock.acquire(command)
        self._lock = lock
        try:
            again = Run._decide(self.path, resume=self.resume, force=self.force)
        except RunError:
            self.release()
            raise
        before = self.previous.to_json() if self.previous is not None else None
        if (again.previous.to_json() if again.previous is not None else None) != before:
            self.release()
            raise RunError(
                "another process changed the run folder while this command was starting",
                hint="check what it holds, then run the command again",
                path=str(self.path),
            )

    def release(self) -> None:
        """Let the lock go (the folder is removed if taking the lock created it and nothing was written)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def start(self, info: RunInfo) -> None:
        """Take the lock (:meth:`acquire`) if not yet held, create the folder (with ``force``, first remove
        what an earlier run wrote) and write ``info``."""
        self.acquire(info.command)
        self._remove_leftovers()
        if self.force:
            for name in RUN_ENTRIES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_info(info)

    def _remove_leftovers(self) -> None:
        """Temporary files and folders of an earlier process of this run that was killed (SIGKILL, power
        loss) while writing training.json, the card, the log or an export; ours to remove under the lock."""
        if not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry.name != LOCK_FILE and _ours(entry.name):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

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


def _ours(name: str) -> bool:
    """The lock file, or a temporary file or folder of a run's own writes (training.json, an export)."""
    return name == LOCK_FILE or name.startswith(_TEMPORARY_PREFIXES)


_TEMPORARY_PREFIXES = tuple(f".{name}." for name in RUN_ENTRIES if name != CHECKPOINTS)


# ---------------------------------------------------------------------------------------------------
# The lock


class RunLock:
    """An exclusive ``flock`` on OUTDIR/.lrltool.lock, which names its holder (pid, host, command, since).

    flock, not a lock file's mere existence: the kernel releases it when the holder dies, even by SIGKILL,
    so a stale file never blocks a run. The holder removes the file when it is done; a process that opened
    the old file just before that checks, once it holds the lock, that the path still names that file.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._created = False

    def check(self) -> None:
        """Refuse now (RunError naming the holder) if another process holds the lock; take nothing and
        write nothing, so that a command refused later does not read its data first."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return  # no lock file (or none we may open): nobody to wait for; acquire() decides
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self._in_use(fd) from None
        finally:
            os.close(fd)  # closing releases a lock taken here

    def _in_use(self, fd: int) -> RunError:
        return RunError(
            f"another lrltool process is writing this run folder ({_lock_holder(fd)})",
            hint="wait for it to end (or stop it); one run folder takes one process",
            path=str(self.folder),
        )

    def acquire(self, command: str | None = None) -> None:
        import fcntl

        if self.folder.exists() and not self.folder.is_dir():
            raise RunError(
                "the output is a file, not a folder", hint="choose another -o", path=str(self.folder)
            )
        self._created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    error = self._in_use(fd)
                    os.close(fd)
                    self._remove_created_folder()
                    raise error from None
                if _same_file(fd, self.path):
                    break
                os.close(fd)  # its holder removed it as we opened it: take the new one
        except OSError as exc:
            self._remove_created_folder()
            raise (write_error(exc, self.folder) or exc) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder_info(command)).encode("utf-8"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still held: no other process can hold this file now
        os.close(self._fd)
        self._fd = None
        self._remove_created_folder()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _remove_created_folder(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only if nothing was written into it


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _holder_info(command: str | None) -> dict[str, Any]:
    import datetime
    import socket
    import sys

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or " ".join(["lrltool", *sys.argv[1:]]),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _lock_holder(fd: int) -> str:
    """Who holds the lock, as its file says; "another process" while the holder has not written it yet."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 65536).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


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
            with atomic_output(path) as stream:  # a crash here keeps the old log whole
                stream.write("".join(f"{line}\n" for line in kept).encode("utf-8"))
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
    """Write a checkpoint folder crash-safely: a process killed at any moment leaves ``folder`` complete.

    The new checkpoint is written in full under a temporary name beside ``folder`` (state.json last: its
    presence marks a complete checkpoint), flushed to disk, then swapped with the old one in one atomic
    step (renameat2 RENAME_EXCHANGE), and the old one removed. Where the system cannot swap, two renames;
    a crash between them is repaired by :func:`checkpoint_to_resume`.

    ``weights``: safetensors; ``optimizer``: ``torch.save`` of a state dict of tensors and numbers, which
    ``torch.load(weights_only=True)`` reads; ``state``: JSON; ``rng``: safetensors of RNG state tensors.
    A full disk or read-only folder is an OutputError naming the checkpoint (torch's own message is not).
    """
    import torch
    from safetensors.torch import save_file

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as exc:
        raise (write_error(exc, folder) or exc) from None
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
        _sync_folder(tmp)
        os.chmod(tmp, 0o755)
        _switch(tmp, folder, _kill_hook(folder.name, state.get("step")))
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        error = write_error(exc, folder) if isinstance(exc, Exception) else None
        if error is not None:
            raise error from None
        raise
    for stale in folder.parent.glob(f".{folder.name}.*"):  # what earlier crashes left
        shutil.rmtree(stale, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    """Flush the folder's files and the folder itself to disk (a power loss then keeps a whole checkpoint)."""
    for path in (*folder.iterdir(), folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _switch(tmp: Path, folder: Path, kill: str | None) -> None:
    """Put the complete checkpoint ``tmp`` at ``folder``: one atomic swap where the system has it."""
    if kill == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    if not folder.exists():
        os.replace(tmp, folder)
    elif kill != "between" and exchange(tmp, folder):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old checkpoint
    else:
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        if kill == "between":
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)


def _kill_hook(name: str, step: Any) -> str | None:
    parts = os.environ.get(KILL_ENV, "").split(":")
    if len(parts) >= 2 and parts[0] == name and parts[1] == str(step):
        return parts[2] if len(parts) > 2 else "before"
    return None


def _complete_step(folder: Path) -> int | None:
    """The step of a complete checkpoint folder (weights and a readable state.json), else None."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(state, dict) or not (folder / "weights.safetensors").is_file():
        return None
    step = state.get("step")
    return step if isinstance(step, int) else None


def checkpoint_to_resume(folder: Path) -> Path | None:
    """The checkpoint at ``folder`` (checkpoints/last or best) to resume from, or None when there is none.

    When ``folder`` is missing but a crash left complete checkpoints under temporary names beside it (two
    renames without a swap, or an older lrltool), the newest of them is put back at ``folder`` and a warning
    says so. The other temporary folders (incomplete or older) are removed: call it holding the run's lock.
    """
    leftovers = list(folder.parent.glob(f".{folder.name}.*"))
    found = (
        [] if folder.exists() else [(step, p) for p in leftovers if (step := _complete_step(p)) is not None]
    )
    if found:
        step, newest = max(found, key=lambda item: item[0])
        os.replace(newest, folder)
        ui.warn(
            f"{folder} was missing (the run was killed while it was being replaced);"
            f" recovered the complete checkpoint of step {step:,}"
        )
    for stale in leftovers:
        shutil.rmtree(stale, ignore_errors=True)  # incomplete, older, or the one just moved into place
    return folder if folder.exists() else None


def load_checkpoint(folder: Path, *, device: Any = "cpu", with_optimizer: bool = True) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickle beyond weights_only loading)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        # Accelerate puts each process of a CPU group on "cpu:0", a name neither safetensors nor torch.load's
        # map_location takes ("device cpu:0 is invalid", "don't know how to restore data location")
        target = torch.device(device)
        where = "cpu" if target.type == "cpu" else str(target)
        weights = load_file(str(folder / "weights.safetensors"), device=where)
        optimizer = None
        if with_optimizer and (folder / "optimizer.pt").exists():
            optimizer = torch.load(folder / "optimizer.pt", map_location=where, weights_only=True)
        rng = load_file(str(folder / "rng.safetensors")) if (folder / "rng.safetensors").exists() else {}
    except (OSError, json.JSONDecodeError, RuntimeError, SafetensorError) as exc:
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


# ---------------------------------------------------------------------------------------------------
# Publishing a run on the Hugging Face hub (`push`): what train-adapter and finetune runs share


def check_repo_id(repo: str) -> None:
    """UsageError unless ``repo`` is a hub repository id, owner/name."""
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UsageError(f"'{repo}' is not a repository id", hint="write it as owner/name")


def language_tag(code: str | None) -> str | None:
    """The hub card's ``language`` of a run's language: ISO 639-1 where there is one, else 639-3."""
    if not code:
        return None
    try:
        language = resolve_language(code.split("+")[0])
    except Exception:  # a code the registry does not know: the code's language part as given
        return code.split("_")[0]
    return language.iso1 or language.iso3


def front_matter(meta: dict[str, Any]) -> str:
    """A model card's YAML front matter (keys in the given order; empty values left out)."""
    import yaml

    kept = {k: v for k, v in meta.items() if v not in (None, [], {}, "")}
    return "---\n" + yaml.safe_dump(kept, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def push_folder(
    folder: Path,
    repo: str,
    *,
    card: str,
    extra: dict[str, Path],
    message: str,
    public: bool,
    token: str | None,
    dry_run: bool,
) -> list[str]:
    """What ``push`` sends once the run is checked, sorted as in the repository: ``folder``'s files, the
    card as README.md and each ``extra`` file (or folder's files) under its name. Unless ``dry_run``,
    writes the card into ``folder`` and uploads (:func:`upload_to_hub`)."""
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} | {"README.md"}
    for in_repo, local in extra.items():
        if local.is_dir():
            files |= {f"{in_repo}/{p.relative_to(local).as_posix()}" for p in local.rglob("*") if p.is_file()}
        else:
            files.add(in_repo)
    if dry_run:
        return sorted(files)
    with atomic_output(folder / "README.md") as stream:
        stream.write(card.encode("utf-8"))
    url = upload_to_hub(folder, repo, public=public, token=token, message=message, extra=extra)
    ui.info(f"push: {len(files)} files to {url} ({'public' if public else 'private'})")
    return sorted(files)


def upload_to_hub(
    folder: Path,
    repo: str,
    *,
    public: bool,
    token: str | None,
    message: str,
    extra: dict[str, Path] | None = None,
) -> str:
    """Create the model repository ``repo`` (private unless ``public``; kept if it exists), upload
    ``folder``'s files to its root with ``HfApi.upload_folder``, then each ``extra`` path in the repository
    -> local file or folder; its URL. RunError (one line) for any hub, auth or network failure."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo, private=not public, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model", commit_message=message)
        for in_repo, local in (extra or {}).items():
            if local.is_dir():
                api.upload_folder(
                    repo_id=repo,
                    folder_path=str(local),
                    path_in_repo=in_repo,
                    repo_type="model",
                    commit_message=f"{message}: {in_repo}",
                )
            else:
                api.upload_file(
                    path_or_fileobj=str(local),
                    path_in_repo=in_repo,
                    repo_id=repo,
                    repo_type="model",
                    commit_message=f"lrltool push: {in_repo}",
                )
    except Exception as exc:  # huggingface_hub's HTTP, auth and offline errors
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RunError(
            f"the upload to {repo} failed ({type(exc).__name__}: {first})",
            hint="log in with 'hf auth login' (a token with write access) and check the network",
        ) from None
    return str(url)
