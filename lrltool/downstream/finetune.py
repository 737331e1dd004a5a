"""``finetune``: train topic classification, sentiment or NER on top of language adapters.

Reads DIR/{train,validation,test}.jsonl(.zst/.gz) as ``fetch sib200|sentiment|wikiann -o DIR`` writes them
(:mod:`lrltool.downstream.data`) and trains one of the setups of :mod:`lrltool.downstream.model`
(docs/design.md "Downstream", "Models and adapters"): a task adapter alone, on a language adapter
(MAD-X), on a fusion of two, or full fine-tuning.

Training is our own loop (AdamW, linear schedule with warmup, gradient clipping): the order of examples
and the dropout of each step are functions of (seed, step), so ``--resume`` from a checkpoint ends with the
same weights as an uninterrupted run. The validation score (the task's headline metric: macro-F1, or
seqeval F1 for NER) picks the best checkpoint, which is exported; ``patience`` stops early. Run folder
layout: :mod:`lrltool.runs`, plus ``fusion/`` (the fusion layer) for fusion runs. ``seeds`` trains one run
per seed in OUTDIR/seed-N.
"""

from __future__ import annotations

import hashlib
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lrltool import models, runs, ui
from lrltool.devices import resolve_device
from lrltool.downstream import metrics
from lrltool.downstream.card import write_model_card
from lrltool.downstream.data import (
    Encoded,
    TaskData,
    collate,
    data_folder,
    encode_examples,
    find_split,
    read_task_data,
)
from lrltool.downstream.model import (
    FUSION_DIR,
    RUN_KIND,
    SEED_DIR,
    TaskModel,
    build_task_model,
    combined_source,
    export_task_model,
)
from lrltool.errors import InputError, RunError, UsageError
from lrltool.languages import resolve_language
from lrltool.runs import StopRequest, check_positive, library_versions, linear_lr_factor, seeded_rng
from lrltool.tasks import TRAINABLE_TASKS, TaskConfig, get_task
from lrltool.train import TrainingInterrupted

DEFAULT_EPOCHS = 10.0
DEFAULT_LR = {"adapter": 1e-4, "full": 2e-5}
TASK_METHODS = ("adapter", "full")
# Random streams: one per purpose, so the data order never depends on how much dropout came before.
_SHUFFLE, _DROPOUT = 1, 2


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass
class FinetuneSettings:
    """Every setting that shapes the trained weights (recorded in training.json, compared on --resume)."""

    method: str = "adapter"  # how the task is learned: adapter | full
    epochs: float = DEFAULT_EPOCHS
    max_steps: int | None = None  # None: epochs over the training set
    lr: float = DEFAULT_LR["adapter"]
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    max_length: int = 256
    eval_steps: int | None = None  # None: evaluate at the end of every epoch
    patience: int | None = None  # evaluations without improvement before stopping; None: never
    reduction_factor: int = 16
    label_all_subwords: bool = False
    seed: int = 42
    preset: str | None = None


PRESETS = ("paper",)


def make_settings(task: str, preset: str | None = None, **explicit: Any) -> FinetuneSettings:
    """Defaults, then the preset's values, then every explicitly given (non-None) value.

    Defaults: lr 1e-4 (2e-5 for method full), batch 32, weight decay 0.01, warmup ratio 0.05, 10 epochs,
    the task's paper max length. ``paper`` (docs/design.md "Downstream"): lr 1e-4, batch 32, weight decay
    0.01, warmup 0.05, epochs TC 20 / SA 25 / NER 100, max length 256 (TC) or 512, evaluation every epoch.
    """
    spec = get_task(task, among=TRAINABLE_TASKS)
    known = {f.name for f in fields(FinetuneSettings)}
    given = {k: v for k, v in explicit.items() if v is not None}
    for key in given:
        if key not in known:
            raise TypeError(f"unknown finetune setting {key!r}")
    method = given.get("method", "adapter")
    if method not in TASK_METHODS:
        raise UsageError(f"unknown method '{method}'", hint=f"choose one of {', '.join(TASK_METHODS)}")
    values: dict[str, Any] = {"lr": DEFAULT_LR[method], "max_length": spec.paper_max_length}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset '{preset}'", hint=f"choose one of {', '.join(PRESETS)}")
        values.update(
            lr=1e-4,
            batch_size=32,
            weight_decay=0.01,
            warmup_ratio=0.05,
            epochs=float(spec.paper_epochs),
            max_length=spec.paper_max_length,
            eval_steps=None,
        )
    values.update(given)
    values["preset"] = preset
    settings = FinetuneSettings(**values)
    _check_settings(settings)
    return settings


def _check_settings(s: FinetuneSettings) -> None:
    check_positive(
        s, "epochs", "max_steps", "lr", "batch_size", "max_length", "eval_steps", "reduction_factor"
    )
    if s.patience is not None and s.patience < 1:
        raise UsageError(f"--patience must be at least 1, not {s.patience}")
    if not 0 <= s.warmup_ratio < 1:
        raise UsageError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")
    if s.weight_decay < 0:
        raise UsageError(f"--weight-decay must not be negative, not {s.weight_decay}")


def parse_seeds(text: str) -> list[int]:
    """``"1,2,3"`` -> [1, 2, 3] (distinct non-negative integers)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"--seeds '{text}' is not a comma-separated list of integers", hint="e.g. --seeds 1,2,3"
        ) from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(
            f"--seeds '{text}' must list distinct non-negative integers", hint="e.g. --seeds 1,2,3"
        )
    return seeds


# ---------------------------------------------------------------------------------------------------
# Inputs of a finetune command (read and checked before anything is written)


@dataclass
class Prepared:
    """The checked inputs of a finetune command: data, base model, language adapters (nothing written)."""

    spec: TaskConfig
    labels: list[str]
    data_dir: Path
    train: TaskData
    validation: TaskData | None
    test_path: Path | None
    model_name: str
    model_revision: str | None
    base: Any  # models.ModelSource
    lang_infos: list[dict[str, Any]]
    lang: str | None
    fusion: bool
    notes: list[str] = field(default_factory=list)  # warnings, shown once the model has loaded


_FUSABLE = ("seq_bn", "seq_bn_inv")  # adapters' Fuse combines bottleneck adapters of one configuration


def prepare(
    *,
    task: str,
    model: str | None,
    data: str | Path,
    lang_adapters: Sequence[str] = (),
    fusion: bool = False,
    method: str = "adapter",
    lang: str | None = None,
    revision: str | None = None,
    skip_bad_lines: bool = False,
) -> Prepared:
    """Check the options, read the data and describe the language adapters; write nothing.

    In this order: the options and the language adapters (UsageError, ModelError), the base model's
    name, the data (InputError), then the base model itself (a hub download should not come before a
    mistake in the data is found), then the language of the records.
    """
    spec = get_task(task, among=TRAINABLE_TASKS)
    lang_infos = _lang_adapter_infos(lang_adapters, fusion=fusion, method=method)
    full_runs = [info for info in lang_infos if info["kind"] == "full"]
    if model is None:
        known = {info["model"] for info in lang_infos if info.get("model")}
        if len(known) != 1:
            raise UsageError("--model is required", hint="name the base model the task is trained on")
        model = known.pop()
        revision = revision or next(i.get("model_revision") for i in lang_infos if i.get("model"))
    notes = [
        f"{info['path']} was trained on {info['model']}, not {model}"
        for info in lang_infos
        if info.get("model") and info["model"] != model
    ]
    data_dir, train, validation = _read_splits(spec, data, skip_bad_lines=skip_bad_lines)
    if validation is None:
        notes.append(f"no validation split in {data_dir}: the last step's weights are exported")
    base = (
        models.resolve_model(full_runs[0]["folder"])
        if full_runs
        else models.resolve_model(model, revision=revision)
    )
    if not full_runs:
        revision = base.revision
    return Prepared(
        spec=spec,
        labels=list(spec.labels),
        data_dir=data_dir,
        train=train,
        validation=validation,
        test_path=find_split(data_dir, "test"),
        model_name=model,
        model_revision=revision,
        base=base,
        lang_infos=lang_infos,
        lang=_language(lang, lang_infos, train),
        fusion=fusion,
        notes=notes,
    )


def _lang_adapter_infos(lang_adapters: Sequence[str], *, fusion: bool, method: str) -> list[dict[str, Any]]:
    """Describe the language adapters (models.adapter_info); refuse combinations that cannot train."""
    if fusion and len(lang_adapters) != 2:
        raise UsageError(
            f"--fusion needs exactly two --lang-adapter (got {len(lang_adapters)})",
            hint="give a ConceptNet and a GlotCC adapter: --lang-adapter A --lang-adapter B --fusion",
        )
    if len(lang_adapters) > 1 and not fusion:
        raise UsageError("several --lang-adapter need --fusion", hint="add --fusion, or give one adapter")
    lang_infos = [models.adapter_info(path) for path in lang_adapters]
    full_runs = [info for info in lang_infos if info["kind"] == "full"]
    if full_runs and fusion:
        raise UsageError(
            f"{full_runs[0]['path']} is a full continued-pre-training run, which cannot be fused",
            hint="fuse two adapter runs (seq_bn or seq_bn_inv)",
        )
    not_bottleneck = [info for info in lang_infos if fusion and info["method"] not in _FUSABLE]
    if not_bottleneck:
        raise UsageError(
            f"{not_bottleneck[0]['path']} is a {not_bottleneck[0]['method']} adapter; AdapterFusion fuses"
            " bottleneck adapters",
            hint=f"fuse two adapters trained with --method {' or '.join(_FUSABLE)}",
        )
    if method == "full" and len(lang_infos) > len(full_runs):
        raise UsageError(
            "--method full trains every weight; it cannot sit on a language adapter",
            hint="use --method adapter with --lang-adapter, or give a full train-adapter run",
        )
    if fusion and method == "full":
        raise UsageError("--fusion trains a task adapter", hint="drop --method full")
    return lang_infos


def _read_splits(
    spec: TaskConfig, data: str | Path, *, skip_bad_lines: bool
) -> tuple[Path, TaskData, TaskData | None]:
    """The data folder, its train split and its validation split (None if it has none)."""
    hint = f"give the folder `lrltool fetch {spec.source} -o DIR` wrote"
    data_dir = data_folder(data, hint=hint)
    train_path = find_split(data_dir, "train")
    if train_path is None:
        raise InputError("no train.jsonl(.zst) in the data folder", hint=hint, path=str(data_dir))
    train = read_task_data(train_path, spec, skip_bad_lines=skip_bad_lines)
    validation_path = find_split(data_dir, "validation")
    validation = (
        read_task_data(validation_path, spec, skip_bad_lines=skip_bad_lines)
        if validation_path is not None
        else None
    )
    return data_dir, train, validation


def _language(lang: str | None, lang_infos: Sequence[dict[str, Any]], train: TaskData) -> str | None:
    """``--lang`` as the code metric records use (ron_Latn); else the adapters' or the records' one."""
    if lang is not None:
        return resolve_language(lang).flores
    adapter_langs = {info["lang"] for info in lang_infos if info.get("lang")}
    if len(adapter_langs) == 1:
        return adapter_langs.pop()
    if len(train.langs) == 1:
        return next(iter(train.langs))
    return None


# ---------------------------------------------------------------------------------------------------
# Training one run


def _run_info(prep: Prepared, settings: FinetuneSettings, command: str | None, device: Any) -> dict[str, Any]:
    spec = prep.spec
    lang_method = "base"
    if prep.fusion:
        lang_method = "fusion"
    elif prep.lang_infos:
        lang_method = prep.lang_infos[0]["method"]
    return {
        "kind": RUN_KIND,
        "command": command,
        "task": spec.name,
        "task_description": spec.description,
        "labels": prep.labels,
        "metric": spec.metric,
        "task_method": settings.method,
        "method": settings.method,
        "lang_method": lang_method,
        "lang_source": combined_source(prep.lang_infos),
        "lang_adapter": "+".join(info["path"] for info in prep.lang_infos) or None,
        "lang_adapters": prep.lang_infos,
        "fusion": prep.fusion,
        "lang": prep.lang,
        "model": prep.model_name,
        "model_revision": prep.model_revision,
        "model_type": prep.base.model_type,
        "base_model_path": str(prep.base.path),
        "seed": settings.seed,
        "settings": asdict(settings),
        "versions": library_versions(),
        "data": {
            "dir": str(prep.data_dir.resolve()),
            "train": str(Path(prep.train.path).resolve()),
            "train_hash": prep.train.hash,
            "train_records": len(prep.train),
            "validation": str(Path(prep.validation.path).resolve()) if prep.validation else None,
            "validation_hash": prep.validation.hash if prep.validation else None,
            "validation_records": len(prep.validation) if prep.validation else 0,
            "test": str(prep.test_path.resolve()) if prep.test_path else None,
            "hash": hashlib.sha256(
                (prep.train.hash + (prep.validation.hash if prep.validation else "")).encode()
            ).hexdigest(),
        },
        "device": str(device),
        "finished": False,
    }


_RESUME_KEYS = ("task", "labels", "task_method", "model", "model_revision", "fusion", "seed", "settings")


def _check_resume(previous: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    if previous.get("kind") != RUN_KIND:
        raise RunError(
            "the folder holds a run that is not a finetune run", hint="choose another -o", path=str(path)
        )
    for key in _RESUME_KEYS:
        if previous.get(key) != current.get(key):
            raise RunError(
                f"--resume with a different {key} than the interrupted run",
                hint="repeat the original command with --resume, or use --force to start again",
                path=str(path),
            )
    old, new = previous.get("data") or {}, current["data"]
    if (old.get("train_hash"), old.get("validation_hash")) != (new["train_hash"], new["validation_hash"]):
        raise RunError(
            "--resume with other data than the interrupted run",
            hint="use the original --data, or --force to start again",
            path=str(path),
        )
    old_langs = [i.get("weights_sha256") for i in previous.get("lang_adapters") or []]
    if old_langs != [i["weights_sha256"] for i in current["lang_adapters"]]:
        raise RunError("--resume with other language adapters than the interrupted run", path=str(path))


def _weights_of(model: Any, names: set[str]) -> dict[str, Any]:
    return {n: p.detach() for n, p in model.named_parameters() if n in names}


def _load_weights(model: Any, weights: dict[str, Any], names: set[str]) -> None:
    import torch

    missing = sorted(names - set(weights))
    if missing:
        raise RunError(
            f"the checkpoint lacks {len(missing)} trained weights (e.g. {missing[0]})",
            hint="it belongs to another run; use --force to start again",
        )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in names:
                param.copy_(weights[name].to(param.device, param.dtype))


def _optimizer(model: Any, settings: FinetuneSettings) -> Any:
    import torch

    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            # biases and normalisation weights are not decayed (as transformers' Trainer does)
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.lr)


@dataclass
class FinetuneResult:
    info: dict[str, Any]  # what training.json holds
    task: TaskModel  # the model with the exported (best) weights
    output: Path


def train_run(
    prep: Prepared,
    settings: FinetuneSettings,
    *,
    out: str | Path,
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    command: str | None = None,
    run: runs.RunDir | None = None,
    previous: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Train one task model into ``out``; return its training.json, the trained model and output folder.

    Reads the prepared data; writes the run folder (adapter/ or model/, fusion/, checkpoints/,
    training.json, README.md, log.jsonl). Refuses what :func:`lrltool.runs.check_run_dir` refuses, and a
    ``resume`` whose settings, data or language adapters differ from the interrupted run's.
    """
    import torch

    if run is None:
        run, previous = runs.check_run_dir(out, resume=resume, force=force)
    spec = prep.spec
    torch_device = resolve_device(device)
    started = time.perf_counter()
    task = build_task_model(
        spec,
        prep.labels,
        base=prep.base,
        lang_infos=prep.lang_infos,
        method=settings.method,
        fusion=prep.fusion,
        reduction_factor=settings.reduction_factor,
        seed=settings.seed,
        device=torch_device,
    )
    net = task.model
    for note in prep.notes:
        ui.warn(note)
    max_positions = task.source.max_positions
    max_length = min(settings.max_length, max_positions)
    if max_length < settings.max_length:
        ui.info(f"finetune: max length {settings.max_length} capped at the model's {max_positions} positions")
    encode = dict(max_length=max_length, label_all_subwords=settings.label_all_subwords)
    train_encoded = encode_examples(prep.train.examples, task.tokenizer, spec, **encode)
    val_encoded = (
        encode_examples(prep.validation.examples, task.tokenizer, spec, **encode) if prep.validation else None
    )
    if spec.kind == "tagging" and not any((e.labels != -100).any() for e in train_encoded):
        raise InputError("no training tokens carry a tag", hint="check the data", path=prep.train.path)

    n_train = len(train_encoded)
    steps_per_epoch = math.ceil(n_train / settings.batch_size)
    total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * steps_per_epoch))
    warmup = math.ceil(settings.warmup_ratio * total_steps)
    eval_every = settings.eval_steps or steps_per_epoch
    trainable_count = sum(p.numel() for p in net.parameters() if p.requires_grad)
    optimizer = _optimizer(net, settings)

    info = _run_info(prep, settings, command, torch_device)
    info.update(
        kind_description="full fine-tuning" if settings.method == "full" else "task adapter",
        adapter_name=task.task_adapter,
        lang_adapter_names=task.lang_names,
        head_parameters=task.head_names,
        trainable_parameters=trainable_count,
        max_length=max_length,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        eval_every_steps=eval_every,
        steps=0,
        best_step=None,
        best_score=None,
        seconds=0.0,
        stopped_early=False,
    )
    if previous is not None:
        _check_resume(previous, info, run.path)

    start_step, best_score, best_step, bad_evals, seconds_before = 0, None, None, 0, 0.0
    if previous is not None and run.last_checkpoint.is_dir():
        ckpt = runs.load_checkpoint(run.last_checkpoint, device=torch_device)
        _load_weights(net, ckpt.weights, task.trainable)
        if ckpt.optimizer is not None:
            optimizer.load_state_dict(ckpt.optimizer)
        runs.set_rng_state(ckpt.rng)
        start_step = int(ckpt.state["step"])
        best_score, best_step = ckpt.state.get("best_score"), ckpt.state.get("best_step")
        bad_evals = int(ckpt.state.get("evals_without_improvement", 0))
        seconds_before = float(ckpt.state.get("seconds", 0.0))
        ui.info(f"finetune: resuming {run.path} at step {start_step:,} of {total_steps:,}")
    if best_step is not None and not run.best_checkpoint.is_dir():
        best_score, best_step = None, None

    runs.start_run_dir(run, force=force)
    if force:
        import shutil

        shutil.rmtree(run.path / FUSION_DIR, ignore_errors=True)
    runs.write_training_json(run, info)
    where = f"seed {settings.seed}: " if run.path.name.startswith("seed-") else ""
    ui.info(
        f"finetune: {where}{spec.name} ({settings.method}"
        + (f", {info['lang_method']} language adapter" if prep.lang_infos else "")
        + f"): {trainable_count:,} trainable parameters; {total_steps:,} steps, {n_train:,} examples"
    )
    log = runs.RunLog(run.log, keep_through_step=start_step)

    orders: dict[int, Any] = {}

    def batch_at(step: int) -> list[Encoded]:
        epoch, k = divmod(step, steps_per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = seeded_rng(settings.seed, _SHUFFLE, epoch).permutation(n_train)
        picked = orders[epoch][k * settings.batch_size : (k + 1) * settings.batch_size]
        return [train_encoded[int(i)] for i in picked]

    def validate() -> tuple[float, float]:
        assert prep.validation is not None and val_encoded is not None
        predicted, loss = metrics.predict_with_loss(
            task, val_encoded, batch_size=settings.batch_size, device=torch_device
        )
        scores = metrics.score(
            spec,
            prep.labels,
            prep.validation.examples,
            val_encoded,
            predicted,
            subwords=settings.label_all_subwords,
            tokenizer=task.tokenizer,
        )
        net.train()
        return float(scores[spec.metric]), loss

    def save_last(step: int) -> None:
        runs.save_checkpoint(
            run.last_checkpoint,
            weights=_weights_of(net, task.trainable),
            optimizer=optimizer.state_dict(),
            state={
                "step": step,
                "best_score": best_score,
                "best_step": best_step,
                "evals_without_improvement": bad_evals,
                "seconds": seconds_before + time.perf_counter() - started,
                "scheduler": {"kind": "linear", "warmup_steps": warmup, "total_steps": total_steps},
            },
            rng=runs.rng_state(),
        )

    params = [p for p in net.parameters() if p.requires_grad]
    interrupt_at = int(os.environ.get("LRLTOOL_TEST_INTERRUPT_AT_STEP", "0"))  # tests: a real SIGINT
    net.train()
    step = start_step
    stopped_early = False
    loop_started = time.perf_counter()
    with StopRequest() as stop, ui.progress("finetune", total=total_steps) as bar:
        bar.update(completed=start_step)
        while step < total_steps:
            batch = {k: v.to(torch_device) for k, v in collate(batch_at(step), task.pad_id).items()}
            torch.manual_seed(int(seeded_rng(settings.seed, _DROPOUT, step).integers(2**62)))
            loss = net(**batch).loss
            loss.backward()
            if settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            lr = settings.lr * linear_lr_factor(step, total_steps, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if interrupt_at and step == interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise RunError(
                    f"the training loss is {loss_value} at step {step}",
                    hint="lower --lr, or check the data",
                    path=str(run.path),
                )
            log.write(step=step, loss=round(loss_value, 6), lr=lr, epoch=round(step / steps_per_epoch, 4))
            score = None
            if val_encoded is not None and (step % eval_every == 0 or step == total_steps):
                score, eval_loss = validate()
                log.write(step=step, eval_loss=round(eval_loss, 6), **{f"eval_{spec.metric}": score})
                if best_score is None or score > best_score:
                    best_score, best_step, bad_evals = score, step, 0
                    runs.save_checkpoint(
                        run.best_checkpoint,
                        weights=_weights_of(net, task.trainable),
                        optimizer=None,
                        state={"step": step, "score": score},
                    )
                else:
                    bad_evals += 1
                if settings.patience is not None and bad_evals >= settings.patience and step < total_steps:
                    stopped_early = True
                if step < total_steps and not stopped_early:
                    save_last(step)
            fields_: dict[str, Any] = {"loss": loss_value}
            if best_score is not None:
                fields_[spec.metric] = best_score if score is None else score
            bar.update(completed=step, **fields_)
            if score is not None and not ui.progress_enabled():
                ui.info(
                    f"step {step:,}/{total_steps:,}  loss {loss_value:.4f}"
                    f"  validation {spec.metric} {score:.4f}"
                    f"  (best {best_score:.4f} at step {best_step:,})"
                )
            if stopped_early:
                ui.info(
                    f"finetune: no improvement in {settings.patience} evaluations; stopping at step {step:,}"
                )
                break
            if stop.requested and step < total_steps:
                save_last(step)
                log.close()
                raise TrainingInterrupted(
                    f"interrupted at step {step:,} of {total_steps:,};"
                    f" checkpoint saved in {run.last_checkpoint}",
                    hint=f"resume with: {_resume_command(command)}",
                )
    log.close()
    elapsed = time.perf_counter() - loop_started  # training and validation, not the export below
    if best_step is not None and best_step != step:
        best = runs.load_checkpoint(run.best_checkpoint, device=torch_device, with_optimizer=False)
        _load_weights(net, best.weights, task.trainable)
    net.eval()
    output = export_task_model(task, run)
    info.update(
        steps=step,
        best_step=best_step if best_step is not None else step,
        best_score=best_score,
        stopped_early=stopped_early,
        seconds=round(seconds_before + time.perf_counter() - started, 2),
        examples_per_second=round((step - start_step) * settings.batch_size / max(elapsed, 1e-9), 1),
        finished=True,
    )
    write_model_card(run, info)
    runs.write_training_json(run, info)
    best_text = (
        f"best validation {spec.metric} {best_score:.4f} at step {best_step:,}"
        if best_score is not None
        else "no validation split: exported the last step"
    )
    ui.info(f"finetune: {where}{step:,} steps, {best_text}; wrote {output}")
    return FinetuneResult(info=info, task=task, output=output)


def _resume_command(command: str | None) -> str:
    if not command:
        command = shlex.join(["lrltool", *sys.argv[1:]])
    if "--resume" not in command.split():
        command = f"{command} --resume"
    return command


# ---------------------------------------------------------------------------------------------------
# The command


def finetune(
    *,
    task: str,
    model: str | None,
    data: str | Path,
    out: str | Path,
    lang_adapters: Sequence[str] = (),
    fusion: bool = False,
    settings: FinetuneSettings,
    seeds: Sequence[int] | None = None,
    lang: str | None = None,
    revision: str | None = None,
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    skip_bad_lines: bool = False,
    command: str | None = None,
) -> list[dict[str, Any]]:
    """Train a task model (or one per seed into OUTDIR/seed-N); return the training.json of each.

    Reads DIR/train and DIR/validation (JSONL, .zst/.gz) and the language adapter(s); writes the run
    folder(s). Refuses, before writing anything: unknown labels, empty splits, a language adapter made
    for another base model, fusion without exactly two adapters, a full-fine-tuning run on a language
    adapter, and an output folder that holds something else (see :func:`lrltool.runs.check_run_dir`).
    With seeds and ``resume``, finished seeds are kept and the others resumed or started.
    """
    if resume and force:
        raise RunError("--resume and --force exclude each other", hint="give one of them")
    prep = prepare(
        task=task,
        model=model,
        data=data,
        lang_adapters=lang_adapters,
        fusion=fusion,
        method=settings.method,
        lang=lang,
        revision=revision,
        skip_bad_lines=skip_bad_lines,
    )
    if seeds is None:
        run, previous = runs.check_run_dir(out, resume=resume, force=force)
        result = train_run(
            prep,
            settings,
            out=out,
            device=device,
            resume=resume,
            force=force,
            command=command,
            run=run,
            previous=previous,
        )
        return [result.info]
    root = Path(out)
    plan = _plan_seeds(root, seeds, resume=resume, force=force)
    if force:
        _remove_other_seeds(root, seeds)
    infos = []
    for seed, run, previous, seed_resume in plan:
        seed_settings = FinetuneSettings(**{**asdict(settings), "seed": seed})
        infos.append(
            train_run(
                prep,
                seed_settings,
                out=run.path,
                device=device,
                resume=seed_resume,
                force=force,
                command=command,
                run=run,
                previous=previous,
            ).info
        )
    return infos


def _plan_seeds(
    root: Path, seeds: Sequence[int], *, resume: bool, force: bool
) -> list[tuple[int, runs.RunDir, dict[str, Any] | None, bool]]:
    """(seed, run folder, previous training.json, resume it) of each seed to train in OUTDIR/seed-N.

    Refuses (RunError) an output that is a file or a single run, or that holds other things than seed-N
    runs (hidden files aside); with ``resume``, finished seeds are left out and unstarted ones start.
    """
    if root.exists() and not root.is_dir():
        raise RunError("the output is a file, not a folder", hint="choose another -o", path=str(root))
    if (root / runs.TRAINING_JSON).exists():
        raise RunError(
            "the output folder holds a single run; --seeds writes seed-N folders",
            hint="choose a new -o",
            path=str(root),
        )
    # hidden files are left alone (a Makefile's .done marker lives in OUTDIR)
    strays = (
        sorted(p.name for p in root.iterdir() if not SEED_DIR.match(p.name) and not p.name.startswith("."))
        if root.is_dir()
        else []
    )
    if strays:
        raise RunError(
            f"the output folder holds other things than seed-N runs ({', '.join(strays[:3])})",
            hint="choose a new or empty folder for -o",
            path=str(root),
        )
    plan: list[tuple[int, runs.RunDir, dict[str, Any] | None, bool]] = []
    for seed in seeds:
        folder = root / f"seed-{seed}"
        if resume and not (folder / runs.TRAINING_JSON).exists():
            run, previous = runs.check_run_dir(folder, force=False)  # not started yet: start it
            plan.append((seed, run, previous, False))
            continue
        if resume and runs.RunDir(folder).read_training_json().get("finished"):
            ui.info(f"finetune: seed {seed} has finished; keeping it")
            continue
        run, previous = runs.check_run_dir(folder, resume=resume, force=force)
        plan.append((seed, run, previous, resume))
    return plan


def _remove_other_seeds(root: Path, seeds: Sequence[int]) -> None:
    """--force replaces OUTDIR: seed-N finetune runs of other seeds go (eval would average them in)."""
    import shutil

    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        match = SEED_DIR.match(path.name)
        if not match or int(match.group(1)) in seeds or not (path / runs.TRAINING_JSON).is_file():
            continue
        if runs.RunDir(path).read_training_json().get("kind") == RUN_KIND:
            ui.info(f"finetune: --force: removing {path} (seed {match.group(1)} is not in --seeds)")
            shutil.rmtree(path)
