"""The one training loop of train-adapter and finetune, on 🤗 Accelerate.

Each command supplies only what is its own: a *step* (forward and backward of one optimizer step's
examples, returning the loss and the tokens it saw) and an *evaluation* (the validation score). The
loop does the rest, the same way for both:

- :func:`train_while_improving` (after spaCy's loop of that name) is a generator: it sets the learning rate
  of the linear schedule with warmup, runs the step, clips the gradients, steps the optimizer, evaluates
  every ``eval_every`` steps and at the end, tracks the best score and the patience, and yields one
  :class:`StepResult` (step, loss, validation score, is_best) per optimizer step;
- :func:`fit` drives it for a run folder (:class:`lrltool.runs.Run`): log.jsonl, progress on stderr,
  the best checkpoint when a score improves, the last checkpoint every ``eval_every`` steps and on
  Ctrl-C/SIGTERM (then :class:`TrainingInterrupted`, exit 130), and a non-finite loss stops the run with one
  line (the last good checkpoint kept, nothing exported);
- :class:`TrainState` is the loop's state, saved as ``state.json`` in each checkpoint (as transformers'
  ``TrainerState``): a resumed run continues bit for bit, because every random draw of the commands is
  keyed by (seed, purpose, step, position) and the RNG state travels in the checkpoint.

Accelerate (``devices.make_accelerator``) provides the device, bf16 autocast, the gradient all-reduce over
the processes that torchrun / ``accelerate launch`` started (DDP), and process coordination.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from lrltool import runs, ui
from lrltool.errors import RunError

S = TypeVar("S")
#: The test hook: a real SIGINT to this process after that optimizer step (tests of Ctrl-C and --resume).
INTERRUPT_ENV = "LRLTOOL_TEST_INTERRUPT_AT_STEP"


class TrainingInterrupted(RunError):
    """Ctrl-C (or SIGTERM) during training: a checkpoint was saved; exit status 130."""

    exit_code = 130


# ---------------------------------------------------------------------------------------------------
# State and settings


@dataclass
class TrainState:
    """Where a run stands; ``state.json`` of a checkpoint."""

    step: int = 0
    best_step: int | None = None
    best_score: float | None = None
    evals_without_improvement: int = 0
    seconds: float = 0.0  # training time before this process (resumed runs add theirs)
    scheduler: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if (
            "best_score" not in data and "best_eval_loss" in data
        ):  # checkpoints of lrltool <= 0.1 train-adapter
            values["best_score"] = data["best_eval_loss"]
        return cls(**values)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs from a command's settings."""

    total_steps: int
    lr: float
    warmup_steps: int
    max_grad_norm: float
    eval_every: int  # validate (when there is a validation set) and save the last checkpoint
    higher_is_better: bool  # the validation score: a metric (F1) or a loss
    patience: int | None = None  # validations without improvement before stopping; None: never


def linear_lr_factor(step: int, total: int, warmup: int) -> float:
    """transformers' get_linear_schedule_with_warmup, evaluated at the optimizer step about to be taken."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def seeded_rng(*key: int) -> Any:
    """A numpy generator keyed by integers (seed, purpose, step, ...): the same key, the same draws."""
    import numpy as np

    return np.random.default_rng([abs(int(k)) for k in key])


def make_settings(cls: type[S], base: Mapping[str, Any], explicit: Mapping[str, Any]) -> S:
    """A settings dataclass: its defaults, then ``base`` (a preset's values), then every value of
    ``explicit`` that is not None (the options the user gave). An unknown key is a programming error."""
    known = {f.name for f in fields(cls)}
    unknown = sorted((set(base) | set(explicit)) - known)
    if unknown:
        raise TypeError(f"unknown {cls.__name__} setting {unknown[0]!r}")
    values = dict(base)
    values.update({k: v for k, v in explicit.items() if v is not None})
    return cls(**values)


def check_positive(settings: Any, *names: str) -> None:
    """Refuse a setting (None = unset, allowed) that is zero, negative or not finite (inf, nan), naming
    its option (a usage error: exit 2)."""
    from lrltool.errors import UsageError

    for name in names:
        value = getattr(settings, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            what = "positive" if isinstance(value, int) else "a positive finite number"
            raise UsageError(f"--{name.replace('_', '-')} must be {what}, not {value}")


def check_non_negative(settings: Any, *names: str) -> None:
    """Refuse a setting (None = unset, allowed) that is negative or not finite, naming its option."""
    from lrltool.errors import UsageError

    for name in names:
        value = getattr(settings, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number >= 0, not {value}")


# ---------------------------------------------------------------------------------------------------
# The generator


@dataclass
class Evaluation:
    """A validation: the score that selects checkpoints and what log.jsonl records of it."""

    score: float
    logged: dict[str, Any]  # e.g. {"eval_loss": 2.3} or {"eval_loss": 0.7, "eval_macro_f1": 0.41}


@dataclass
class StepResult:
    step: int
    loss: float  # the step's training loss (summed over processes where the step is shared)
    lr: float
    tokens: int  # tokens the step trained on, over all processes
    evaluation: Evaluation | None
    is_best: bool
    stop_early: bool  # patience ran out
    stop_requested: bool  # Ctrl-C / SIGTERM in any process


TrainStep = Callable[[int], tuple[float, int]]  # step -> (this process's share of the loss, tokens)
Evaluate = Callable[[], Evaluation]


def train_while_improving(
    *,
    accelerator: Any,
    params: list[Any],
    optimizer: Any,
    state: TrainState,
    settings: LoopSettings,
    train_step: TrainStep,
    evaluate: Evaluate | None,
    stop: StopRequest,
) -> Iterator[StepResult]:
    """Train from ``state.step`` to ``settings.total_steps``, one :class:`StepResult` per optimizer step.

    ``train_step(step)`` runs the forward and backward passes of one optimizer step's examples (through
    ``accelerator.backward``); this loop then clips, sets the learning rate, steps the optimizer and, every
    ``eval_every`` steps and at the last step, calls ``evaluate`` (when there is a validation set).
    ``state`` is updated in place (step, best, patience).
    """
    import torch

    while state.step < settings.total_steps:
        loss, tokens = train_step(state.step)
        if settings.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, settings.max_grad_norm)
        lr = settings.lr * linear_lr_factor(state.step, settings.total_steps, settings.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        if os.environ.get(INTERRUPT_ENV) == str(state.step):
            os.kill(os.getpid(), signal.SIGINT)
        summary = torch.tensor(
            [loss, float(tokens), 1.0 if stop.requested else 0.0],
            dtype=torch.float64,
            device=accelerator.device,
        )
        summary = accelerator.reduce(summary, reduction="sum")  # the processes' shares add up
        evaluation, is_best, stop_early = None, False, False
        at_eval = state.step % settings.eval_every == 0 or state.step == settings.total_steps
        if evaluate is not None and at_eval:
            evaluation = evaluate()
            is_best = _improves(evaluation.score, state.best_score, settings.higher_is_better)
            if is_best:
                state.best_score, state.best_step, state.evals_without_improvement = (
                    evaluation.score,
                    state.step,
                    0,
                )
            else:
                state.evals_without_improvement += 1
            patience = settings.patience
            stop_early = patience is not None and state.evals_without_improvement >= patience
            stop_early = stop_early and state.step < settings.total_steps
        yield StepResult(
            step=state.step,
            loss=float(summary[0]),
            lr=lr,
            tokens=int(summary[1]),
            evaluation=evaluation,
            is_best=is_best,
            stop_early=stop_early,
            stop_requested=bool(summary[2] > 0),
        )
        if stop_early:
            return


def _improves(score: float, best: float | None, higher_is_better: bool) -> bool:
    if best is None:
        return True
    return score > best if higher_is_better else score < best


# ---------------------------------------------------------------------------------------------------
# Driving a run


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


@dataclass
class Trainable:
    """What a command trains: the model (unwrapped), the names of its trained weights, the optimizer."""

    model: Any
    names: set[str]
    optimizer: Any

    def weights(self) -> dict[str, Any]:
        return {n: p.detach() for n, p in self.model.named_parameters() if n in self.names}

    @property
    def params(self) -> list[Any]:
        return [p for n, p in self.model.named_parameters() if n in self.names]

    def load_weights(self, weights: dict[str, Any]) -> None:
        """Copy ``weights`` (a checkpoint's) into the trained parameters; RunError if some are missing."""
        import torch

        missing = sorted(self.names - set(weights))
        if missing:
            raise RunError(
                f"the checkpoint lacks {len(missing)} trained weights (e.g. {missing[0]})",
                hint="it belongs to another run; use --force to start again",
            )
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                if name in self.names:
                    param.copy_(weights[name].to(param.device, param.dtype))


@dataclass
class LogFormat:
    """How a command writes its steps to log.jsonl and stderr."""

    name: str  # "train" / "finetune": the progress bar's label
    epoch: Callable[[int], float]  # log.jsonl's "epoch" at a step, rounded as the command writes it
    score_name: str  # the validation score on the progress bar and in status lines ("loss", "macro_f1")
    loss_digits: int | None = None  # log.jsonl rounds the loss to this many digits (None: as computed)
    log_steps: int = 50  # without a progress bar, a line every N steps


@dataclass
class FitResult:
    state: TrainState  # state.seconds: the run's training time so far, earlier processes included
    seconds: float  # this process's time in the loop (training and validation)
    tokens_per_second: float
    first_step_seconds: float | None  # from the command's start to the end of its first step here
    #: tokens of steps 2..N over the time from the end of step 1 to the end of step N (warm-up, model
    #: load and the first step's allocations left out: what a longer run sustains); None under 2 steps
    steady_tokens_per_second: float | None
    stopped_early: bool


def fit(
    *,
    run: runs.Run,
    accelerator: Any,
    trainable: Trainable,
    state: TrainState,
    settings: LoopSettings,
    train_step: TrainStep,
    evaluate: Evaluate | None,
    log_format: LogFormat,
    command: str | None,
    started: float,
) -> FitResult:
    """Train ``trainable`` in ``run`` to the end (or until patience runs out); see the module docstring.

    ``state`` may come from :func:`restore`. Raises :class:`TrainingInterrupted` after saving the last
    checkpoint on Ctrl-C/SIGTERM, and RunError on a non-finite loss (the last checkpoint kept).
    """
    main = accelerator.is_main_process
    start_step, tokens_seen, loop_started = state.step, 0, time.perf_counter()
    seconds_before = state.seconds
    state.scheduler = {
        "kind": "linear",
        "warmup_steps": settings.warmup_steps,
        "total_steps": settings.total_steps,
    }
    first_step: float | None = None
    steady_from: tuple[float, int] | None = None  # (time, tokens) at the end of this process's first step
    steady: float | None = None
    stopped_early = False

    def checkpoint(best: bool = False) -> None:
        state.seconds = seconds_before + time.perf_counter() - started
        save(run, trainable, state, accelerator, best=best)

    log = run.log(keep_through_step=state.step) if main else None
    tracking = start_trackers(accelerator, run)
    trainable.model.train()
    try:
        with StopRequest() as stop, ui.progress(log_format.name, total=settings.total_steps) as bar:
            bar.update(completed=state.step)
            for result in train_while_improving(
                accelerator=accelerator,
                params=trainable.params,
                optimizer=trainable.optimizer,
                state=state,
                settings=settings,
                train_step=train_step,
                evaluate=evaluate,
                stop=stop,
            ):
                first_step = first_step if first_step is not None else time.perf_counter() - started
                _refuse_non_finite(result, run)
                tokens_seen += result.tokens
                if steady_from is None:
                    steady_from = (time.perf_counter(), tokens_seen)
                else:
                    steady = (tokens_seen - steady_from[1]) / max(time.perf_counter() - steady_from[0], 1e-9)
                if log is not None:
                    _log_step(log, result, log_format)
                if tracking:
                    rate = tokens_seen / max(time.perf_counter() - loop_started, 1e-9)
                    accelerator.log(tracked_values(result, rate), step=result.step)
                if result.is_best:
                    checkpoint(best=True)
                at_cadence = result.step % settings.eval_every == 0 and result.step < settings.total_steps
                if at_cadence and not result.stop_early:
                    checkpoint()  # a crash loses < eval_every steps
                if main:
                    elapsed = time.perf_counter() - loop_started
                    _report(bar, result, state, settings, log_format, elapsed, start_step, tokens_seen)
                if result.stop_early:
                    stopped_early = True
                    ui.info(
                        f"{log_format.name}: no improvement in {settings.patience} evaluations;"
                        f" stopping at step {result.step:,}"
                    )
                elif result.stop_requested and result.step < settings.total_steps:
                    checkpoint()
                    raise TrainingInterrupted(
                        f"interrupted at step {result.step:,} of {settings.total_steps:,};"
                        f" checkpoint saved in {run.last_checkpoint}",
                        hint=f"resume with: {resume_command(command)}",
                    )
    finally:
        if log is not None:
            log.close()
        if tracking:
            for tracker in accelerator.trackers:  # flushes and closes the event files
                tracker.finish()  # (not end_training: that also leaves the process group, still in use)
    elapsed = time.perf_counter() - loop_started
    state.seconds = seconds_before + time.perf_counter() - started
    return FitResult(
        state=state,
        seconds=elapsed,
        tokens_per_second=tokens_seen / elapsed if elapsed > 0 else 0.0,
        first_step_seconds=first_step,
        steady_tokens_per_second=steady,
        stopped_early=stopped_early,
    )


#: Where --report-to tensorboard writes in a run folder (``tensorboard --logdir RUN/tensorboard``).
TENSORBOARD_DIR = "tensorboard"


def start_trackers(accelerator: Any, run: runs.Run) -> bool:
    """Start the run's ``--report-to`` trackers (none: False): TensorBoard under RUN/tensorboard,
    Weights & Biases under RUN/wandb (offline unless ``WANDB_MODE`` says otherwise), with the run's
    settings from training.json (its scalar values: settings, the command's own fields such as the task,
    model, method, source, language, seed) as the tracker's configuration."""
    if not accelerator.log_with:
        return False
    config: dict[str, Any] = {}
    if accelerator.is_main_process and run.training_json.is_file():
        info = runs.RunInfo.load(run.path)
        typed = {"kind": info.kind, "model": info.model, "method": info.method, "source": info.source}
        flat = {**info.extra, **info.settings, **typed, "lang": info.lang, "seed": info.seed}
        config = {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}
    wandb: dict[str, Any] = {}
    if any(str(getattr(t, "value", t)) == "wandb" for t in accelerator.log_with):
        # wandb's process-wide settings (its telemetry among them) read WANDB_MODE, not init's mode=:
        # without it an offline run still looks up and posts to the W&B server (wandb 0.31).
        os.environ.setdefault("WANDB_MODE", "offline")
        wandb = {"dir": str(run.path), "mode": os.environ["WANDB_MODE"], "name": run.path.name}
    accelerator.init_trackers("lrltool", config=config, init_kwargs={"wandb": wandb})
    return True


def tracked_values(result: StepResult, tokens_per_second: float) -> dict[str, float]:
    """What a tracker records of one step: train/loss, train/learning_rate, train/tokens_per_second and,
    at a validation, eval/<name> for each value log.jsonl records (eval_loss -> eval/loss)."""
    values = {
        "train/loss": result.loss,
        "train/learning_rate": result.lr,
        "train/tokens_per_second": tokens_per_second,
    }
    if result.evaluation is not None:
        for key, value in result.evaluation.logged.items():
            if isinstance(value, (int, float)):
                values[f"eval/{key.removeprefix('eval_')}"] = float(value)
    return values


def _refuse_non_finite(result: StepResult, run: runs.Run) -> None:
    if not math.isfinite(result.loss):
        raise RunError(
            f"the training loss is {result.loss} at step {result.step}",
            hint="lower --lr, or check the data",
            path=str(run.path),
        )


def _log_step(log: runs.RunLog, result: StepResult, fmt: LogFormat) -> None:
    loss = result.loss if fmt.loss_digits is None else round(result.loss, fmt.loss_digits)
    log.write(step=result.step, loss=loss, lr=result.lr, epoch=fmt.epoch(result.step))
    if result.evaluation is not None:
        log.write(step=result.step, **result.evaluation.logged)


def _report(
    bar: Any,
    result: StepResult,
    state: TrainState,
    settings: LoopSettings,
    fmt: LogFormat,
    elapsed: float,
    start_step: int,
    tokens_seen: int,
) -> None:
    """The progress bar, or without one a line every ``log_steps`` steps and at each validation."""
    fields_: dict[str, Any] = {"loss": result.loss, "tok/s": int(tokens_seen / elapsed) if elapsed > 0 else 0}
    score = result.evaluation.score if result.evaluation is not None else None
    if state.best_score is not None:
        fields_[fmt.score_name] = state.best_score if score is None else score
    bar.update(completed=result.step, **fields_)
    if ui.progress_enabled():
        return
    last = result.step == settings.total_steps
    if result.step % fmt.log_steps != 0 and score is None and not last:
        return
    steps_per_second = (result.step - start_step) / elapsed if elapsed > 0 else 0.0
    left = settings.total_steps - result.step
    eta = left / steps_per_second if steps_per_second > 0 else float("inf")
    text = f"step {result.step:,}/{settings.total_steps:,}  loss {result.loss:.4f}"
    if score is not None:
        best = f"(best {state.best_score:.4f} at step {state.best_step:,})"
        text += f"  validation {fmt.score_name} {score:.4f}  {best}"
    rate = tokens_seen / elapsed if elapsed > 0 else 0.0
    ui.info(f"{text}  {rate:,.0f} tokens/s  ETA {_format_eta(eta)}")


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def resume_command(command: str | None) -> str:
    """The command that continues this run: the original command with ``--resume``."""
    if not command:
        command = shlex.join(["lrltool", *sys.argv[1:]])
    if "--resume" not in command.split():
        command = f"{command} --resume"
    return command


# ---------------------------------------------------------------------------------------------------
# Checkpoints of the loop


def save(
    run: runs.Run, trainable: Trainable, state: TrainState, accelerator: Any, *, best: bool = False
) -> None:
    """Save the last checkpoint (weights, optimizer, RNG, state), or the best one (weights and state)."""
    if accelerator.is_main_process:
        if best:
            runs.save_checkpoint(
                run.best_checkpoint,
                weights=trainable.weights(),
                optimizer=None,
                state={"step": state.step, "score": state.best_score},
            )
        else:
            runs.save_checkpoint(
                run.last_checkpoint,
                weights=trainable.weights(),
                optimizer=trainable.optimizer.state_dict(),
                state=state.to_json(),
                rng=runs.rng_state(),
            )
    if not best:
        accelerator.wait_for_everyone()


def begin(run: runs.Run, accelerator: Any, trainable: Trainable, info: runs.RunInfo) -> TrainState:
    """Start (or continue) ``run``: its lock taken, the interrupted run's state restored (:func:`restore`),
    training.json written; the processes of a torchrun group wait for the first one, which alone locks,
    recovers a checkpoint a crash left under a temporary name, and writes."""
    if accelerator.is_main_process:
        run.acquire(info.command)  # before reading checkpoints: one process writes a run folder
        if run.previous is not None and runs.checkpoint_to_resume(run.last_checkpoint) is not None:
            runs.checkpoint_to_resume(run.best_checkpoint)
    accelerator.wait_for_everyone()
    state = restore(run, trainable, device=accelerator.device)
    if accelerator.is_main_process:
        run.start(info)
    accelerator.wait_for_everyone()
    return state


def restore(run: runs.Run, trainable: Trainable, *, device: Any) -> TrainState:
    """The state of the interrupted run's last checkpoint, its weights, optimizer and RNG restored
    (a fresh TrainState when there is no checkpoint to resume from, which is said). A checkpoint that a
    crash left under a temporary name is recovered (:func:`lrltool.runs.checkpoint_to_resume`). Call it
    holding the run's lock (:meth:`lrltool.runs.Run.acquire`)."""
    if run.previous is None:
        return TrainState()
    last = runs.checkpoint_to_resume(run.last_checkpoint)
    if last is None:
        ui.info(f"{run.path}: the interrupted run saved no checkpoint; starting again at step 0")
        return TrainState()
    checkpoint = runs.load_checkpoint(last, device=device)
    trainable.load_weights(checkpoint.weights)
    if checkpoint.optimizer is not None:
        trainable.optimizer.load_state_dict(checkpoint.optimizer)
    runs.set_rng_state(checkpoint.rng)
    state = TrainState.from_json(checkpoint.state)
    if state.best_step is not None and runs.checkpoint_to_resume(run.best_checkpoint) is None:
        state.best_score, state.best_step = None, None
    return state


def load_best(run: runs.Run, trainable: Trainable, state: TrainState, *, device: Any) -> int:
    """Put the best weights (by validation) into the model; return the step they come from (the last
    step when there was no validation)."""
    if state.best_step is not None and state.best_step != state.step:
        best = runs.load_checkpoint(run.best_checkpoint, device=device, with_optimizer=False)
        trainable.load_weights(best.weights)
    return state.best_step if state.best_step is not None else state.step
