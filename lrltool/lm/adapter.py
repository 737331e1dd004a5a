"""Language-adapter training (``train-adapter``): MLM for encoders, CLM for decoders, on the shared loop.

What is this command's own (the loop, checkpoints and resume are :mod:`lrltool.training`'s):

- the loss: the LM head applied only at the predicted positions (masked tokens for MLM; every position
  followed by a real token for CLM), the same loss as full logits in a fraction of the time and memory on
  250k vocabularies (docs/design.md "Models and adapters");
- the step: example ``p`` of the run is block ``order(epoch)[p mod n]``, masked with a generator keyed by
  (seed, p), dropout keyed by (seed, step, micro-batch, process): every draw is a function of the run's
  position, so ``--resume`` continues bit for bit and ``torchrun --nproc_per_node=N`` (or ``accelerate
  launch``) splits each step's samples across processes. The loss is normalised by the step's global
  count of predicted tokens, so N processes or ``--grad-accum`` micro-batches give one big batch's gradient;
- the evaluation: the validation loss (the same masks every time), lower is better;
- the export: the best weights by validation loss go to OUTDIR/adapter (or OUTDIR/model for ``full``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lrltool import devices, models, runs, training, ui
from lrltool.errors import ModelError, UsageError
from lrltool.lm import vocab_loss
from lrltool.lm.data import (
    Blocks,
    Masker,
    TokenizeSpec,
    TrainingData,
    collate,
    default_cache_dir,
    load_or_tokenize,
    read_training_data,
)
from lrltool.streams import atomic_dir

# Random streams: one per purpose, so a mask never depends on how many dropout draws came before it.
_TRAIN_MASK, _EVAL_MASK, _DROPOUT, _SHUFFLE = 1, 2, 3, 4


# ---------------------------------------------------------------------------------------------------
# Settings


@dataclass
class TrainSettings:
    """Every setting that shapes the trained weights (recorded in training.json, compared on --resume)."""

    method: str = "seq_bn"
    objective: str | None = None  # None: from the model (mlm for encoders, clm for decoders)
    reduction_factor: int = 16
    lora_r: int = 8
    lora_alpha: int = 8
    max_steps: int | None = None  # None: --epochs over the training blocks
    epochs: float = 1.0
    batch_size: int = 16  # per process
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    max_seq_length: int | None = None  # None: min(512, the model's limit)
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    line_by_line: bool = False  # False: pack texts into full-length blocks (no padding wasted)
    eval_steps: int = 500
    seed: int = 42
    validation_fraction: float = 0.01
    max_validation_records: int = 2000
    # None: batch_size x grad_accum x processes as given; N: grad_accum is set so that the product is N
    global_batch: int | None = None
    select: str = "best"  # the exported weights: best by validation loss, or the last step's
    train_head: bool = False  # the MLM head's transform (dense + LayerNorm) trains and is saved too
    train_inverse: bool = True  # apply the invertible adapter's inverse before the output embedding


SELECT = ("best", "last")

# What the paper's code ran (docs/paper-protocol.md, generated from these dicts): src/mlm/glot_lang_adapter.sh
# and cn_lang_adapter.sh through run_mlm.py (HF Trainer defaults: linear schedule, no warmup, weight decay
# 0, gradient clipping at 1.0, a checkpoint every 500 steps), the last checkpoint used downstream.
_PAPER_COMMON: dict[str, Any] = dict(
    mlm_probability=0.15,
    eval_steps=500,
    seed=42,
    warmup_ratio=0.0,
    weight_decay=0.0,
    max_grad_norm=1.0,
    max_seq_length=512,
    line_by_line=True,
    whole_word_mask=False,
    select="last",
    train_head=True,
    train_inverse=False,
)
PRESETS: dict[str, dict[str, Any]] = {
    # torchrun --nproc_per_node=2 x 16 per device = 32; on one process: 16 x grad_accum 2
    "paper-glotcc": dict(_PAPER_COMMON, max_steps=100_000, batch_size=16, global_batch=32, lr=1e-4),
    # python run_mlm.py (one process) x 64
    "paper-conceptnet": dict(_PAPER_COMMON, max_steps=25_000, batch_size=64, global_batch=64, lr=1e-5),
}


def make_settings(preset: str | None = None, **explicit: Any) -> TrainSettings:
    """Defaults, then the preset's values, then every explicitly given (non-None) value."""
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"unknown preset '{preset}'", hint=f"choose one of {', '.join(PRESETS)}")
    return training.make_settings(TrainSettings, PRESETS.get(preset or "", {}), explicit)


def check_settings(s: TrainSettings) -> None:
    training.check_positive(
        s,
        "batch_size",
        "grad_accum",
        "lr",
        "eval_steps",
        "epochs",
        "reduction_factor",
        "lora_r",
        "max_steps",
        "max_seq_length",
    )
    training.check_non_negative(s, "weight_decay")
    if not 0 < s.mlm_probability < 1:
        raise UsageError(f"--mlm-probability must be between 0 and 1, not {s.mlm_probability}")
    if not 0 <= s.warmup_ratio < 1:
        raise UsageError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")
    if not 0 <= s.validation_fraction < 1:
        raise UsageError(f"--validation-fraction must be in [0, 1), not {s.validation_fraction}")
    if s.objective not in (None, "mlm", "clm"):
        raise UsageError(f"unknown objective '{s.objective}'", hint="choose mlm or clm")
    if s.select not in SELECT:
        raise UsageError(f"unknown --select '{s.select}'", hint=f"choose {' or '.join(SELECT)}")
    if s.global_batch is not None and s.global_batch < 1:
        raise UsageError(f"--global-batch must be positive, not {s.global_batch}")


def resolve_global_batch(s: TrainSettings, processes: int) -> TrainSettings:
    """``s`` with grad_accum set so that batch_size x grad_accum x processes == global_batch (when set).

    Refuses (UsageError) a global batch that batch_size x processes does not divide.
    """
    if s.global_batch is None:
        return s
    per_step = s.batch_size * processes
    if s.global_batch % per_step:
        raise UsageError(
            f"--global-batch {s.global_batch} is not a multiple of --batch-size {s.batch_size} x"
            f" {processes} process(es)",
            hint=f"give a --batch-size that divides {s.global_batch // processes or 1}",
        )
    return replace(s, grad_accum=s.global_batch // per_step)


# ---------------------------------------------------------------------------------------------------
# Loss


def lm_loss_sum(model: Any, head: Any, batch: dict[str, Any], objective: str) -> tuple[Any, Any]:
    """(summed cross-entropy, number of predicted tokens) with the LM head only where a token is predicted.

    MLM: hidden states at the masked positions (labels != -100) go through the head; CLM: every
    position whose next token is not padding. Never materialises batch x length x vocabulary logits.
    """
    import torch
    import torch.nn.functional as F

    extra = {"use_cache": False} if objective == "clm" else {}  # no KV cache while training
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **extra)[
        0
    ]
    if objective == "mlm":
        labels = batch["labels"]
        selected = labels != -100
        targets = labels[selected]
        states = _rows(hidden, selected)
    else:
        selected = batch["attention_mask"][:, 1:].bool()
        targets = batch["input_ids"][:, 1:][selected]
        states = _rows(hidden[:, :-1], selected)
    if targets.numel() == 0:
        return hidden.sum() * 0.0, torch.zeros((), dtype=torch.long, device=hidden.device)
    projection = model.get_output_embeddings()
    if projection is not None and vocab_loss.frozen(projection):  # adapters: the vocabulary is frozen
        with vocab_loss.projection_input(projection):
            states = head(states)
        return vocab_loss.cross_entropy_sum(states, projection, targets), selected.sum()
    logits = head(states)
    return F.cross_entropy(logits.float(), targets, reduction="sum"), selected.sum()


def _rows(hidden: Any, selected: Any) -> Any:
    """``hidden[selected]`` (batch x length x width at a boolean batch x length mask), whose backward on
    CUDA accumulates with atomics in no fixed order; in deterministic mode an ``index_select`` of the same
    rows, whose backward has a deterministic CUDA kernel (the same values and gradients)."""
    import torch

    if not torch.are_deterministic_algorithms_enabled():
        return hidden[selected]
    index = selected.reshape(-1).nonzero().squeeze(1)
    return hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)


def full_logits_loss(model: Any, batch: dict[str, Any], objective: str) -> Any:
    """The reference: the model's own loss from full logits (mean over predicted tokens)."""
    if objective == "mlm":
        return model(**batch).loss
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss


def _loss_module(model: Any, objective: str) -> Any:
    """The loss as a module, so that DDP (over several processes) sees the forward pass it syncs."""
    import torch

    class LanguageModelLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, batch: dict[str, Any]) -> tuple[Any, Any]:
            return lm_loss_sum(self.model, models.lm_head(self.model), batch, objective)

    return LanguageModelLoss()


# ---------------------------------------------------------------------------------------------------
# The step and the evaluation of one run


class LanguageModelling:
    """The examples, the step and the validation of one train-adapter run in one process."""

    def __init__(
        self,
        *,
        accelerator: Any,
        net: Any,
        loss: Any,  # the (prepared) loss module
        tokenizer: Any,
        objective: str,
        settings: TrainSettings,
        train_blocks: Blocks,
        val_blocks: Blocks | None,
    ) -> None:
        import numpy as np

        self.accelerator, self.net, self.loss, self.objective = accelerator, net, loss, objective
        self.settings, self.train_blocks, self.val_blocks = settings, train_blocks, val_blocks
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.global_batch = settings.batch_size * settings.grad_accum * self.world
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.masker: Masker | None = None
        if objective == "mlm":
            self.masker = Masker(
                mask_id=tokenizer.mask_token_id,
                special_ids=np.asarray(sorted(tokenizer.all_special_ids), dtype=np.int64),
                random_vocab=len(tokenizer),
                probability=settings.mlm_probability,
                whole_word=settings.whole_word_mask,
            )
        self._order: tuple[int, Any] | None = None

    def _epoch_order(self, epoch: int) -> Any:
        if self._order is None or self._order[0] != epoch:
            order = training.seeded_rng(self.settings.seed, _SHUFFLE, epoch).permutation(
                len(self.train_blocks)
            )
            self._order = (epoch, order)
        return self._order[1]

    def _example(self, blocks: Blocks, index: int, mask_key: tuple[int, ...]) -> tuple[Any, Any | None]:
        ids, word_start = blocks.example(index)
        if self.masker is None:
            return ids, None
        return self.masker(ids, word_start, training.seeded_rng(self.settings.seed, *mask_key))

    def _train_example(self, position: int) -> tuple[Any, Any | None]:
        epoch, offset = divmod(position, len(self.train_blocks))
        return self._example(
            self.train_blocks, int(self._epoch_order(epoch)[offset]), (_TRAIN_MASK, position)
        )

    def _batch(self, examples: list[tuple[Any, Any | None]]) -> dict[str, Any]:
        return {k: v.to(self.accelerator.device) for k, v in collate(examples, self.pad_id).items()}

    def _predicted(self, batch: dict[str, Any]) -> int:
        if self.objective == "mlm":
            return int((batch["labels"] != -100).sum())
        return int(batch["attention_mask"][:, 1:].sum())

    def train_step(self, step: int) -> tuple[float, int]:
        """Forward and backward of this process's share of step ``step``: (its loss share, its tokens)."""
        import torch

        s, acc = self.settings, self.accelerator
        batches = []
        for a in range(s.grad_accum):
            first = step * self.global_batch + (a * self.world + self.rank) * s.batch_size
            batches.append(self._batch([self._train_example(p) for p in range(first, first + s.batch_size)]))
        predicted = torch.tensor([float(sum(self._predicted(b) for b in batches))], device=acc.device)
        # Normalise by the step's predicted tokens over all processes and micro-batches, so N processes
        # or grad-accum micro-batches give the gradient of one big batch.
        denominator = max(1.0, float(acc.reduce(predicted.double(), reduction="sum")[0]))
        loss_total, tokens = 0.0, 0
        for a, batch in enumerate(batches):
            seed = int(training.seeded_rng(s.seed, _DROPOUT, step, a, self.rank).integers(2**62))
            torch.manual_seed(seed)
            sync = acc.no_sync(self.loss) if a < len(batches) - 1 else _no_context()
            with sync, acc.autocast():
                loss_sum, _ = self.loss(batch)
            scaled = loss_sum / denominator
            # DDP averages the processes' gradients; each holds its share of a sum: scale back to the sum.
            acc.backward(scaled * self.world if self.world > 1 else scaled)
            loss_total += float(loss_sum.detach())
            tokens += int(batch["attention_mask"].sum())
        return loss_total / denominator, tokens

    def evaluate(self) -> training.Evaluation:
        """Validation loss (the same masks every time), over all processes' shares."""
        import torch

        assert self.val_blocks is not None
        acc = self.accelerator
        self.net.eval()
        total = torch.zeros(2, dtype=torch.float64, device=acc.device)
        mine = list(range(self.rank, len(self.val_blocks), self.world))
        head = models.lm_head(self.net)
        with torch.no_grad(), acc.autocast():
            for begin in range(0, len(mine), self.settings.batch_size):
                chunk = mine[begin : begin + self.settings.batch_size]
                batch = self._batch([self._example(self.val_blocks, i, (_EVAL_MASK, i)) for i in chunk])
                loss_sum, count = lm_loss_sum(self.net, head, batch, self.objective)
                total[0] += loss_sum.double()
                total[1] += count
        total = acc.reduce(total, reduction="sum")
        self.net.train()
        loss = float(total[0] / total[1].clamp(min=1))
        return training.Evaluation(score=loss, logged={"eval_loss": loss})


def _no_context() -> Any:
    import contextlib

    return contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------------
# The command


@dataclass
class TrainResult:
    info: dict[str, Any]  # what training.json holds
    model: Any  # the model with the exported (best) weights loaded
    output: Path


@dataclass
class _Setup:
    """Everything checked and read before the first byte is written."""

    source: Any  # models.ModelSource
    objective: str
    max_len: int
    recorded: dict[str, Any]  # what --resume must find unchanged
    data: TrainingData


def train_language_adapter(
    *,
    model: str,
    output: str | os.PathLike[str],
    train: str | os.PathLike[str] = "-",
    validation: str | os.PathLike[str] | None = None,
    settings: TrainSettings | None = None,
    revision: str | None = None,
    device: str = "auto",
    precision: str | None = None,
    report_to: str | None = None,
    resume: bool = False,
    force: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    adapter_name: str | None = None,
    skip_bad_lines: bool = False,
    log_steps: int = 50,
    command: str | None = None,
    deterministic: bool = False,
) -> TrainResult:
    """Train a language adapter (or every weight, method ``full``) and write the run folder ``output``.

    Reads text records from ``train`` (``-``: stdin) and ``validation`` (default: a held-out fraction
    of ``train``). Writes ``output``/adapter (or model/), checkpoints/, training.json, README.md, log.jsonl
    (:mod:`lrltool.runs`). Refuses, before writing anything: an unknown method or objective, an
    untrusted or unsupported model, ``max_seq_length`` beyond the model's limit, empty training data,
    records without ``text``, an output folder holding another run (unless ``resume``/``force``), and a
    ``resume`` with other settings or data. Ctrl-C saves a checkpoint and raises
    :class:`lrltool.training.TrainingInterrupted` (exit 130). ``deterministic``:
    :func:`lrltool.devices.set_deterministic` for the run (bit-identical runs and resumes on CUDA).
    """
    started = time.perf_counter()
    settings = settings or TrainSettings()
    check_settings(settings)
    method = models.adapter_method(settings.method)
    if settings.train_head and method.name == "full":
        raise UsageError("--train-head applies to adapters; method full trains the head anyway")
    with (
        devices.deterministic(deterministic),
        runs.Run.open(output, resume=resume, force=force) as run,
        devices.accelerated(
            device,
            precision=precision,
            report_to=devices.parse_report_to(report_to),
            logging_dir=run.path / training.TENSORBOARD_DIR,
        ) as accelerator,
    ):
        settings = resolve_global_batch(settings, accelerator.num_processes)
        if accelerator.num_processes > 1 and str(train) == "-":
            raise UsageError(
                "reading training data from stdin does not work with several processes",
                hint="give the training file with --train",
            )
        setup = _check_inputs(run, model, revision, train, validation, settings, method.name, skip_bad_lines)
        tokenizer = models.load_tokenizer(setup.source)
        if setup.objective == "mlm" and tokenizer.mask_token_id is None:
            raise ModelError(
                "the tokenizer has no mask token, so MLM cannot train", path=str(setup.source.path)
            )
        cache_root = (
            (Path(cache_dir) if cache_dir is not None else default_cache_dir()) if use_cache else None
        )
        train_blocks, val_blocks, cache_path = _tokenize(accelerator, setup, tokenizer, settings, cache_root)

        name = adapter_name or (setup.data.lang.replace("+", "_") if setup.data.lang else "lang")
        net, trainable, task = _build(
            accelerator, setup, tokenizer, settings, method.name, name, train_blocks, val_blocks
        )
        trainable_count = models.trainable_parameters(net)
        total_steps = settings.max_steps or max(
            1, math.ceil(settings.epochs * len(train_blocks) / task.global_batch)
        )
        info = _run_info(
            setup, settings, method.name, name, command, trainable_count, total_steps, accelerator
        )
        info.data.update(
            tokens=train_blocks.tokens,
            examples=len(train_blocks),
            validation_tokens=val_blocks.tokens if val_blocks is not None else 0,
        )
        info.extra["cache"] = str(cache_path) if cache_path else None
        state = training.begin(run, accelerator, trainable, info)
        if accelerator.is_main_process:
            if run.previous is not None and state.step:
                ui.info(f"train-adapter: resuming {run.path} at step {state.step:,} of {total_steps:,}")
            ui.info(f"train-adapter: {method.name}: {trainable_count:,} trainable parameters;"
                    f" {total_steps:,} steps")  # fmt: skip

        result = training.fit(
            run=run,
            accelerator=accelerator,
            trainable=trainable,
            state=state,
            settings=training.LoopSettings(
                total_steps=total_steps,
                lr=settings.lr,
                warmup_steps=math.ceil(settings.warmup_ratio * total_steps),
                max_grad_norm=settings.max_grad_norm,
                eval_every=settings.eval_steps,
                higher_is_better=False,
            ),
            train_step=task.train_step,
            evaluate=task.evaluate if val_blocks is not None else None,
            log_format=training.LogFormat(
                name="train",
                epoch=lambda step: round(step * task.global_batch / len(train_blocks), 6),
                score_name="loss",
                log_steps=log_steps,
            ),
            command=command,
            started=started,
        )
        return _export(run, accelerator, trainable, result, info, tokenizer, method.name, name)


def _build(
    accelerator: Any,
    setup: _Setup,
    tokenizer: Any,
    settings: TrainSettings,
    method: str,
    name: str,
    train_blocks: Blocks,
    val_blocks: Blocks | None,
) -> tuple[Any, training.Trainable, LanguageModelling]:
    """The model with its new adapter (seeded: the same in every process), the optimizer, both prepared
    by Accelerate (on the device, DDP over processes), and the run's step and validation."""
    import torch

    torch.manual_seed(settings.seed)  # adapter initialisation: the same in every process
    net = models.load_model(setup.source)
    models.add_adapter(
        net,
        name,
        method,
        reduction_factor=settings.reduction_factor,
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        train_head=settings.train_head,
        inverse=settings.train_inverse,
    )
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(
        [p for n, p in net.named_parameters() if n in names],
        lr=settings.lr,
        weight_decay=settings.weight_decay,
    )
    loss, optimizer = accelerator.prepare(_loss_module(net, setup.objective), optimizer)  # moves net too
    task = LanguageModelling(
        accelerator=accelerator,
        net=net,
        loss=loss,
        tokenizer=tokenizer,
        objective=setup.objective,
        settings=settings,
        train_blocks=train_blocks,
        val_blocks=val_blocks,
    )
    return net, training.Trainable(model=net, names=names, optimizer=optimizer), task


def _check_inputs(
    run: runs.Run,
    model: str,
    revision: str | None,
    train: str | os.PathLike[str],
    validation: str | os.PathLike[str] | None,
    settings: TrainSettings,
    method: str,
    skip_bad_lines: bool,
) -> _Setup:
    """The model, the objective, the length and the data, each checked (and against an interrupted run)."""
    source = models.resolve_model(model, revision=revision)
    objective = settings.objective or source.objective
    if objective != source.objective:
        kind = "a decoder" if source.is_decoder else "an encoder"
        raise ModelError(
            f"{source.name} is {kind} ({source.model_type}): it trains with {source.objective.upper()},"
            f" not {objective.upper()}",
            hint=f"drop --objective or use --objective {source.objective}",
        )
    limit = source.max_positions
    max_len = settings.max_seq_length or min(512, limit)
    if max_len > limit:
        raise ModelError(
            f"--max-length {max_len} is beyond the model's limit of {limit} tokens",
            hint=f"use --max-length {limit} or less",
        )
    if settings.whole_word_mask and objective != "mlm":
        raise UsageError("--whole-word-mask applies to MLM only")
    if settings.train_head and objective != "mlm":
        raise UsageError("--train-head applies to MLM (the head's dense + LayerNorm); a decoder has none")
    recorded = {
        "model": source.name,
        "model_revision": source.revision,
        "model_path": models.model_location(source),
        "model_hash": models.model_fingerprint(source),
        "method": method,
        "objective": objective,
        "settings": {**asdict(settings), "objective": objective, "max_seq_length": max_len},
    }
    previous = run.previous.to_json() if run.previous is not None else None
    if previous is not None:
        _refuse_resume(
            runs.differences(previous, recorded, resume_model_keys(previous))
            + runs.differences(
                previous.get("settings", {}), recorded["settings"], sorted(recorded["settings"])
            )
        )
    data = read_training_data(
        train,
        validation,
        validation_fraction=settings.validation_fraction,
        max_validation_records=settings.max_validation_records,
        skip_bad_lines=skip_bad_lines,
    )
    if previous is not None:
        _refuse_resume(
            [
                f"training data ({what})"
                for key, what in (("hash", "its content"), ("validation_hash", "the validation texts"))
                if previous.get("data", {}).get(key) != data.info[key]
            ]
        )
    return _Setup(source=source, objective=objective, max_len=max_len, recorded=recorded, data=data)


def resume_model_keys(previous: dict[str, Any]) -> tuple[str, ...]:
    """What --resume checks against the interrupted run: the model where it is (its absolute path or hub
    id, not as typed) and its weights, the method and the objective. A run of an older lrltool recorded
    the model as typed only."""
    model = ("model_path", "model_hash") if previous.get("model_hash") else ("model",)
    return (*model, "model_revision", "method", "objective")


def _refuse_resume(differences: list[str]) -> None:
    from lrltool.errors import RunError

    if differences:
        raise RunError(
            f"--resume with different settings than the interrupted run: {'; '.join(differences[:4])}",
            hint="resume with the same command and data, or use --force to start again",
        )


def _tokenize(
    accelerator: Any, setup: _Setup, tokenizer: Any, settings: TrainSettings, cache_root: Path | None
) -> tuple[Blocks, Blocks | None, Path | None]:
    """Training and validation blocks, from the cache when it has them. Process 0 tokenizes first."""
    data = setup.data
    spec = TokenizeSpec(setup.objective, setup.max_len, not settings.line_by_line, settings.whole_word_mask)
    t0 = time.perf_counter()
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()  # process 0 tokenizes and fills the cache first; the others read it
    train_blocks, hit, cache_path = load_or_tokenize(
        data.train_texts, data.info["train_hash"], tokenizer, spec, cache_root
    )
    val_blocks = None
    if data.val_texts:
        val_blocks, _, _ = load_or_tokenize(
            data.val_texts, data.info["validation_hash"], tokenizer, spec, cache_root
        )
    if accelerator.is_main_process:
        accelerator.wait_for_everyone()
        ui.info(
            f"train-adapter: {len(data.train_texts):,} training texts -> {len(train_blocks):,} examples,"
            f" {train_blocks.tokens:,} tokens ({'cached' if hit else 'tokenized'} in"
            f" {time.perf_counter() - t0:.1f} s); validation: {data.val_from}"
        )
    return train_blocks, val_blocks, cache_path


def _run_info(
    setup: _Setup,
    settings: TrainSettings,
    method: str,
    name: str,
    command: str | None,
    trainable_count: int,
    total_steps: int,
    accelerator: Any,
) -> runs.RunInfo:
    recorded = setup.recorded
    return runs.RunInfo(
        kind="language adapter" if method != "full" else "continued pre-training",
        command=command,
        model=recorded["model"],
        model_revision=recorded["model_revision"],
        model_path=recorded["model_path"],
        model_hash=recorded["model_hash"],
        model_type=setup.source.model_type,
        method=method,
        source=setup.data.source,
        lang=setup.data.lang,
        settings=recorded["settings"],
        versions=runs.library_versions(),
        data=dict(setup.data.info),
        trainable_parameters=trainable_count,
        total_steps=total_steps,
        device=str(accelerator.device),
        extra={
            "objective": recorded["objective"],
            "adapter_name": None if method == "full" else name,
            "best_eval_loss": None,
            "processes": accelerator.num_processes,
            "bf16": accelerator.mixed_precision == "bf16",
            "deterministic": devices.is_deterministic(),
            "precision": {"no": "fp32"}.get(accelerator.mixed_precision, accelerator.mixed_precision),
        },
    )


def _export(
    run: runs.Run,
    accelerator: Any,
    trainable: training.Trainable,
    result: training.FitResult,
    info: runs.RunInfo,
    tokenizer: Any,
    method: str,
    name: str,
) -> TrainResult:
    """Export the best weights by validation loss (``select`` best; the last ones without a validation set)
    or the last step's (``select`` last, the paper's code), then the card and training.json (last)."""
    state = result.state
    net = trainable.model
    if info.settings.get("select") == "last":
        exported = state.step  # the weights in the model are the last step's
    else:
        exported = training.load_best(run, trainable, state, device=accelerator.device)
    net.eval()
    out = run.output(method == "full")
    info.steps, info.best_step = state.step, state.best_step if state.best_step is not None else state.step
    info.seconds = round(state.seconds, 2)
    info.extra.update(
        best_eval_loss=state.best_score,
        exported_step=exported,
        tokens_per_second=round(result.tokens_per_second),
        steady_tokens_per_second=(
            round(result.steady_tokens_per_second) if result.steady_tokens_per_second is not None else None
        ),
        first_step_seconds=round(result.first_step_seconds or 0.0, 3),  # reading + tokenizing + loading
    )
    if accelerator.is_main_process:
        if method == "full":
            save_full_model(net, tokenizer, out)
        else:
            models.save_adapter(net, name, out, with_head=bool(info.settings.get("train_head")))
        from lrltool.lm.publish import write_card

        write_card(out, info)  # the AdapterHub card of the folder (the run's README.md is the run's)
        run.finish(info, language_adapter_card(info).render())
        best_text = (
            f"best eval loss {state.best_score:.4f} at step {info.best_step:,}"
            if state.best_score is not None
            else "no validation set"
        )
        best_text += f"; exported the step {exported:,} weights ({info.settings.get('select')})"
        ui.info(f"train-adapter: {state.step:,} steps, {best_text}; wrote {out}")
    accelerator.wait_for_everyone()
    return TrainResult(info=info.to_json(), model=net, output=out)


def save_full_model(model: Any, tokenizer: Any, out: Path) -> None:
    """A fully trained model as a plain HF folder (safetensors), replacing ``out`` atomically."""
    import json

    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("adapters", None)  # no adapters in a fully trained model: keep the config plain
        config_path.write_text(json.dumps(config, indent=2) + "\n")


def language_adapter_card(info: runs.RunInfo) -> runs.Card:
    """README.md of a train-adapter run: what was trained, on what, how well, and how to load it."""
    method = info.method or "?"
    data = info.data
    facts = [
        f"- base model: `{info.model}`"
        + (f" (revision `{info.model_revision}`)" if info.model_revision else ""),
        f"- method: `{method}`, objective: {str(info.get('objective', '?')).upper()}",
        f"- language: {info.lang or 'unknown'}; data source: {info.source or 'unknown'}",
    ]
    if data:
        facts.append(
            f"- data: {data.get('records', 0):,} records, {data.get('tokens', 0):,} tokens"
            f" (sha256 {str(data.get('hash', ''))[:16]}...)"
        )
    facts.append(f"- trainable parameters: {info.trainable_parameters:,}")
    facts.append(
        f"- steps: {info.steps}; best validation loss {info.get('best_eval_loss')} at step {info.best_step};"
        f" exported weights: step {info.get('exported_step')} ({info.settings.get('select', 'best')});"
        f" {info.seconds:.0f} s"
    )
    usage = ["```python"]
    if method == "full":
        usage += [
            "from transformers import AutoModelForMaskedLM  # AutoModelForCausalLM for decoders",
            "model = AutoModelForMaskedLM.from_pretrained('model')",
        ]
    else:
        usage += [
            "import adapters",
            "from transformers import AutoModelForMaskedLM  # AutoModelForCausalLM for decoders",
            f"model = AutoModelForMaskedLM.from_pretrained({info.model!r})",
            "adapters.init(model)",
            "name = model.load_adapter('adapter', set_active=True)",
        ]
        if method == "seq_bn_inv":
            usage += [
                "# adapters 1.3.0 skips the invertible adapter's inverse with the static HF classes;",
                "# lrltool.models.load_adapter does (it registers a hook before the output embedding).",
            ]
    usage.append("```")
    return runs.Card(
        title=f"{info.kind or 'language adapter'}: {info.model} / {method}",
        facts=facts,
        settings=info.settings,
        usage=usage,
        command=info.command,
    )
