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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lrltool import devices, models, runs, training, ui
from lrltool.downstream import metrics
from lrltool.downstream.card import task_model_card
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
    RUN_KIND,
    SEED_DIR,
    TaskModel,
    build_task_model,
    combined_source,
    export_task_model,
    lang_adapter_names,
)
from lrltool.errors import InputError, RunError, UsageError
from lrltool.languages import resolve_language
from lrltool.tasks import TRAINABLE_TASKS, TaskConfig, get_task

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
    batch_size: int = 32  # examples per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (the effective batch is batch_size x grad_accum)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    max_length: int = 256
    eval_steps: int | None = None  # None: evaluate at the end of every epoch
    patience: int | None = None  # evaluations without improvement before stopping; None: never
    reduction_factor: int = 16
    label_all_subwords: bool = False
    task_head: str = "model"  # model: the transformers class's head | adapters: the library's flexible head
    # The exported step: metric (the best validation F1) | loss (the lowest validation loss: the HF Trainer's
    # load_best_model_at_end without metric_for_best_model, as the seed's scripts ran it)
    select_by: str = "metric"
    seed: int = 42
    preset: str | None = None
    preset_model: str | None = None  # the model kind the preset's values are for: encoder | decoder


PRESETS = ("paper",)
# --preset paper on a decoder (LLaMA): what the seed's LLaMA runs changed (commit d101b0a, "updated
# downstream scripts for llama"); the rest is as for encoders (weight decay 0.01: 1-train_*.sh; warmup 0.05,
# evaluation and saving each epoch, load_best_model_at_end: train_*.py at 08d2c23; max length 256 / 512 /
# 512: train_tc.py:63, train_sa.py:62, train_ner.py:84; the adapters library's heads: pad = EOS).
DECODER_PRESET: dict[str, dict[str, Any]] = {
    "tc": {"lr": 2e-5, "batch_size": 16, "epochs": 20.0},  # src/tc/1-train_tc.sh:46-49
    "sa": {"lr": 2e-5, "batch_size": 8, "epochs": 25.0},  # src/sa/1-train_sa.sh:44-47
    "ner": {"lr": 2e-5, "batch_size": 8, "epochs": 25.0},  # src/ner/1-train_ner.sh:47-50
}
SELECT_BY = ("metric", "loss")  # FinetuneSettings.select_by


def make_settings(
    task: str, preset: str | None = None, *, decoder: bool = False, **explicit: Any
) -> FinetuneSettings:
    """Defaults, then the preset's values, then every explicitly given (non-None) value.

    Defaults: lr 1e-4 (2e-5 for method full), batch 32, weight decay 0.01, warmup ratio 0.05, 10 epochs,
    the task's paper max length. ``paper`` (docs/design.md "Downstream"): lr 1e-4, batch 32, weight decay
    0.01, warmup 0.05, epochs TC 20 / SA 25 / NER 100, max length 256 (TC) or 512, evaluation every epoch,
    NER with every sub-token labelled and scored (``label_all_subwords``, the paper's code). ``decoder``:
    the preset's values for a decoder (:data:`DECODER_PRESET`: lr 2e-5, batch TC 16 / SA 8 / NER 8, epochs
    TC 20 / SA 25 / NER 25), recorded as ``preset_model``.
    """
    spec = get_task(task, among=TRAINABLE_TASKS)
    method = explicit.get("method") or "adapter"
    if method not in TASK_METHODS:
        raise UsageError(f"unknown task method '{method}'", hint=f"choose one of {', '.join(TASK_METHODS)}")
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
            # src/ner/train_ner.py (4213cd5):80-105 labels every sub-token, :44-55 scores them
            label_all_subwords=spec.name == "ner",
            # src/tc/train_tc.py (0cf3abd):181, 189 add_classification_head (2-layer tanh MLP, first token)
            task_head="adapters",
            # train_tc.py (0cf3abd):194-208, train_sa.py (4213cd5):209, train_ner.py (08d2c23):254:
            # load_best_model_at_end=True without metric_for_best_model, i.e. the lowest eval loss
            select_by="loss",
            preset_model="decoder" if decoder else "encoder",
        )
        if decoder:
            values.update(DECODER_PRESET[spec.name])
    values["preset"] = preset
    settings = training.make_settings(FinetuneSettings, values, explicit)
    _check_settings(settings)
    if settings.task_head not in models.TASK_HEAD_KINDS:
        raise UsageError(
            f"unknown task head '{settings.task_head}'",
            hint=f"choose one of {', '.join(models.TASK_HEAD_KINDS)}",
        )
    if settings.select_by not in SELECT_BY:
        raise UsageError(
            f"unknown --select-by '{settings.select_by}'", hint=f"choose one of {', '.join(SELECT_BY)}"
        )
    if settings.task_head != "model" and settings.method == "full":
        raise UsageError(
            "--task-head adapters is for task adapters (the seed's MAD-X setup)",
            hint="drop --task-head, or train with --task-method adapter",
        )
    return settings


def _check_settings(s: FinetuneSettings) -> None:
    training.check_positive(
        s,
        "epochs",
        "max_steps",
        "lr",
        "batch_size",
        "grad_accum",
        "max_length",
        "eval_steps",
        "reduction_factor",
    )
    if s.patience is not None and s.patience < 1:
        raise UsageError(f"--patience must be at least 1, not {s.patience}")
    if not 0 <= s.warmup_ratio < 1:
        raise UsageError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")
    training.check_non_negative(s, "weight_decay")


def settings_for_model(
    settings: FinetuneSettings, prep: Prepared, options: dict[str, Any] | None = None
) -> FinetuneSettings:
    """The settings for the prepared model: a preset's values are the encoder's or the decoder's.

    ``options``: the explicit values ``settings`` were made from (the command line's); given, settings made
    for the other kind of model are made again for this one. Refuses (UsageError) settings of a preset
    made for the other kind without ``options``, and a decoder fusion under a preset: the seed fused encoder
    adapters only (src/ner/train_ner.py at 08d2c23:193-197 loads MLM adapters; its LLaMA runs have none).
    """
    kind = "decoder" if prep.base.is_decoder else "encoder"
    if settings.preset is None:
        return settings
    if kind == "decoder" and prep.fusion:
        raise UsageError(
            f"--preset {settings.preset} fuses encoder adapters only, as the paper's code did",
            hint="drop --fusion, or drop --preset to fuse decoder adapters with lrltool's settings",
        )
    if settings.preset_model == kind:
        return settings
    if options is None:
        raise UsageError(
            f"these --preset {settings.preset} settings hold its {settings.preset_model} values, and"
            f" {prep.model_name} is {'a decoder' if kind == 'decoder' else 'an encoder'}",
            hint=f"make them with make_settings(..., decoder={kind == 'decoder'})",
        )
    return make_settings(prep.spec.name, settings.preset, decoder=kind == "decoder", **options)


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
    if fusion and (inverse := _invertible_note(lang_infos)):
        notes.append(inverse)
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


def _invertible_note(lang_infos: Sequence[dict[str, Any]]) -> str | None:
    """Which invertible adapter a fusion applies: the adapters library fuses none; the first adapter of the
    active setup's applies at the embeddings (``invertible_adapters_forward``), as in the seed's
    ``Stack(Fuse(conceptnet, glot), ner)`` (src/ner/train_ner.py at 08d2c23:200-215)."""
    names = lang_adapter_names(lang_infos)
    invertible = [n for info, n in zip(lang_infos, names, strict=True) if info["method"] == "seq_bn_inv"]
    if not invertible:
        return None
    used = names[0] if names[0] in invertible else None
    unused = [n for n in invertible if n != used]
    said = (
        [f"the invertible adapter of {used} (the first --lang-adapter) applies at the embeddings"]
        if used
        else []
    )
    said += [f"that of {', '.join(unused)} is not used"] if unused else []
    return "fusion: " + "; ".join(said) + " (the adapters library fuses no invertible adapters)"


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


def _language(lang: str | None, lang_infos: Sequence[dict[str, Any]], train: TaskData) -> str:
    """``--lang`` as the code metric records use (ron_Latn); else the adapters' or the records' one.

    Refuses (UsageError) a run whose language cannot be told: its metric records would carry no ``lang``,
    and the report could not put it next to the adapters of its language (a baseline without a column).
    """
    if lang is not None:
        return resolve_language(lang).code
    adapter_langs = {info["lang"] for info in lang_infos if info.get("lang")}
    if len(adapter_langs) == 1:
        return adapter_langs.pop()
    if len(train.langs) == 1:
        return next(iter(train.langs))
    found = f"the records name {len(train.langs)} languages" if train.langs else "the records carry no lang"
    raise UsageError(
        f"the language of this run is unknown: {found} and no language adapter names one",
        hint="give --lang (e.g. --lang ron), which the metric records and the report use",
    )


# ---------------------------------------------------------------------------------------------------
# Training one run


def _run_info(prep: Prepared, settings: FinetuneSettings, command: str | None, device: Any) -> runs.RunInfo:
    spec = prep.spec
    lang_method = "base"
    if prep.fusion:
        lang_method = "fusion"
    elif prep.lang_infos:
        lang_method = prep.lang_infos[0]["method"]
    validation = prep.validation
    return runs.RunInfo(
        kind=RUN_KIND,
        command=command,
        model=prep.model_name,
        model_revision=prep.model_revision,
        model_path=models.model_location(prep.base),
        model_hash=models.model_fingerprint(prep.base),
        model_type=prep.base.model_type,
        method=settings.method,
        lang=prep.lang,
        seed=settings.seed,
        settings=asdict(settings),
        versions=runs.library_versions(),
        data={
            "dir": str(prep.data_dir.resolve()),
            "train": str(Path(prep.train.path).resolve()),
            "train_hash": prep.train.hash,
            "train_records": len(prep.train),
            "validation": str(Path(validation.path).resolve()) if validation else None,
            "validation_hash": validation.hash if validation else None,
            "validation_records": len(validation) if validation else 0,
            "test": str(prep.test_path.resolve()) if prep.test_path else None,
            "hash": hashlib.sha256(
                (prep.train.hash + (validation.hash if validation else "")).encode()
            ).hexdigest(),
        },
        device=str(device),
        extra={
            "task": spec.name,
            "task_description": spec.description,
            "labels": prep.labels,
            "metric": spec.metric,
            "task_method": settings.method,
            "lang_method": lang_method,
            "lang_source": combined_source(prep.lang_infos),
            "lang_adapter": "+".join(info["path"] for info in prep.lang_infos) or None,
            "lang_adapters": prep.lang_infos,
            "fusion": prep.fusion,
            "base_model_path": str(prep.base.path),
            "deterministic": devices.is_deterministic(),
        },
    )


_RESUME_KEYS = ("task", "labels", "task_method", "model_revision", "fusion", "seed", "settings")


def _check_resume(previous: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    if previous.get("kind") != RUN_KIND:
        raise RunError(
            "the folder holds a run that is not a finetune run", hint="choose another -o", path=str(path)
        )
    # The model where it is (absolute path or hub id, not as typed) and its weights; a run of an older
    # lrltool recorded the model as typed only.
    model_keys = ("model_path", "model_hash") if previous.get("model_hash") else ("model",)
    for key in (*_RESUME_KEYS, *model_keys):
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


class TaskTraining:
    """The examples, the step and the validation of one finetune run (what is this command's own)."""

    def __init__(
        self, prep: Prepared, settings: FinetuneSettings, task: TaskModel, model: Any, accelerator: Any
    ) -> None:
        self.prep, self.settings, self.task, self.model, self.accelerator = (
            prep,
            settings,
            task,
            model,
            accelerator,
        )
        spec = prep.spec
        max_positions = task.source.max_positions
        self.max_length = min(settings.max_length, max_positions)
        if self.max_length < settings.max_length:
            ui.info(
                f"finetune: max length {settings.max_length} capped at the model's {max_positions} positions"
            )
        encode = dict(max_length=self.max_length, label_all_subwords=settings.label_all_subwords)
        self.train = encode_examples(prep.train.examples, task.tokenizer, spec, **encode)
        self.validation = (
            encode_examples(prep.validation.examples, task.tokenizer, spec, **encode)
            if prep.validation
            else None
        )
        if spec.kind == "tagging" and not any((e.labels != -100).any() for e in self.train):
            raise InputError("no training tokens carry a tag", hint="check the data", path=prep.train.path)
        self.step_examples = settings.batch_size * settings.grad_accum  # one optimizer step's examples
        self.steps_per_epoch = math.ceil(len(self.train) / self.step_examples)
        self.total_steps = settings.max_steps or max(1, math.ceil(settings.epochs * self.steps_per_epoch))
        self.eval_every = settings.eval_steps or self.steps_per_epoch
        self._order: tuple[int, Any] | None = None

    def _batch_at(self, step: int) -> list[Encoded]:
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            order = training.seeded_rng(self.settings.seed, _SHUFFLE, epoch).permutation(len(self.train))
            self._order = (epoch, order)
        picked = self._order[1][k * self.step_examples : (k + 1) * self.step_examples]
        return [self.train[int(i)] for i in picked]

    def train_step(self, step: int) -> tuple[float, int]:
        """Forward and backward of step ``step``'s examples, in ``grad_accum`` micro-batches.

        The model's loss is a mean (over examples, or over tagged tokens for NER); each micro-batch's mean
        is weighted by its share of the step's examples (tagged tokens), so the gradient is that of one
        batch of all of them. With one micro-batch nothing is rescaled: bit for bit the plain step.
        """
        import torch

        acc, size = self.accelerator, self.settings.batch_size
        examples = self._batch_at(step)
        chunks = [examples[i : i + size] for i in range(0, len(examples), size)]
        batches = [{k: v.to(acc.device) for k, v in collate(c, self.task.pad_id).items()} for c in chunks]
        units = [
            float((b["labels"] != -100).sum()) if b["labels"].dim() > 1 else len(c)
            for b, c in zip(batches, chunks, strict=True)
        ]
        total, loss_total, tokens = max(sum(units), 1.0), 0.0, 0
        for a, batch in enumerate(batches):
            key = (self.settings.seed, _DROPOUT, step) if a == 0 else (self.settings.seed, _DROPOUT, step, a)
            torch.manual_seed(int(training.seeded_rng(*key).integers(2**62)))
            with acc.autocast():
                loss = self.model(**batch).loss
            if len(batches) > 1:
                loss = loss * (units[a] / total)
            acc.backward(loss)
            loss_total += float(loss.detach())
            tokens += int(batch["attention_mask"].sum())
        return loss_total, tokens

    def evaluate(self) -> training.Evaluation:
        prep, spec = self.prep, self.prep.spec
        assert prep.validation is not None and self.validation is not None
        predicted, loss = metrics.predict_with_loss(
            self.task, self.validation, batch_size=self.settings.batch_size, device=self.accelerator.device
        )
        scores = metrics.score(
            spec,
            prep.labels,
            prep.validation.examples,
            self.validation,
            predicted,
            subwords=self.settings.label_all_subwords,
            tokenizer=self.task.tokenizer,
        )
        self.task.model.train()
        score = float(scores[spec.metric])
        logged = {"eval_loss": round(loss, 6), f"eval_{spec.metric}": score}
        return training.Evaluation(score=loss if self.settings.select_by == "loss" else score, logged=logged)


def train_run(
    prep: Prepared,
    settings: FinetuneSettings,
    *,
    run: runs.Run | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    device: str = "auto",
    precision: str | None = None,
    report_to: str | None = None,
    command: str | None = None,
) -> FinetuneResult:
    """Train one task model into the run folder ``run`` (opened by :meth:`lrltool.runs.Run.open`; or into
    ``out``, opened here with ``resume``/``force``).

    Reads the prepared data; writes the run folder (adapter/ or model/, fusion/, checkpoints/,
    training.json, README.md, log.jsonl) through the shared loop (:func:`lrltool.training.fit`).
    Refuses a ``resume`` whose settings, data or language adapters differ from the interrupted run's, and
    several processes (finetune trains in one).
    """
    settings = settings_for_model(settings, prep)
    if run is None:
        if out is None:
            raise TypeError("train_run needs run or out")
        run = runs.Run.open(out, resume=resume, force=force)
    with run:  # its lock (taken when training starts) is let go at the end, whatever happens
        return _train_run(prep, settings, run, device, command, precision=precision, report_to=report_to)


def _train_run(
    prep: Prepared,
    settings: FinetuneSettings,
    run: runs.Run,
    device: str,
    command: str | None,
    *,
    precision: str | None,
    report_to: str | None,
) -> FinetuneResult:
    started = time.perf_counter()
    accelerator = devices.make_accelerator(
        device,
        precision=precision or "fp32",  # no default autocast: full fine-tuning asks for it explicitly
        report_to=devices.parse_report_to(report_to),
        logging_dir=run.path / training.TENSORBOARD_DIR,
    )
    if accelerator.num_processes > 1:
        raise UsageError(
            "finetune trains in one process", hint="start it without torchrun or accelerate launch"
        )
    task = build_task_model(
        prep.spec,
        prep.labels,
        base=prep.base,
        lang_infos=prep.lang_infos,
        method=settings.method,
        fusion=prep.fusion,
        reduction_factor=settings.reduction_factor,
        seed=settings.seed,
        device=accelerator.device,
        task_head=settings.task_head,
    )
    for note in prep.notes:
        ui.warn(note)
    model, optimizer = accelerator.prepare(task.model, _optimizer(task.model, settings))
    trainable = training.Trainable(model=task.model, names=task.trainable, optimizer=optimizer)
    work = TaskTraining(prep, settings, task, model, accelerator)
    info = _start(run, prep, settings, task, work, command, accelerator)
    state = training.begin(run, accelerator, trainable, info)
    if state.step:
        ui.info(f"finetune: resuming {run.path} at step {state.step:,} of {work.total_steps:,}")
    where = f"seed {settings.seed}: " if run.path.name.startswith("seed-") else ""
    ui.info(
        f"finetune: {where}{prep.spec.name} ({settings.method}"
        + (f", {info.extra['lang_method']} language adapter" if prep.lang_infos else "")
        + f"): {info.trainable_parameters:,} trainable parameters; {work.total_steps:,} steps,"
        f" {len(work.train):,} examples"
    )
    start_step = state.step
    result = training.fit(
        run=run,
        accelerator=accelerator,
        trainable=trainable,
        state=state,
        settings=training.LoopSettings(
            total_steps=work.total_steps,
            lr=settings.lr,
            warmup_steps=math.ceil(settings.warmup_ratio * work.total_steps),
            max_grad_norm=settings.max_grad_norm,
            eval_every=work.eval_every,
            higher_is_better=settings.select_by != "loss",
            patience=settings.patience,
        ),
        train_step=work.train_step,
        evaluate=work.evaluate if work.validation is not None else None,
        log_format=training.LogFormat(
            name="finetune",
            epoch=lambda step: round(step / work.steps_per_epoch, 4),
            score_name=_selection_name(prep, settings),
            loss_digits=6,
        ),
        command=command,
        started=started,
    )
    best_step = training.load_best(run, trainable, state, device=accelerator.device)
    task.model.eval()
    output = export_task_model(task, run)
    info.steps, info.best_step, info.seconds = state.step, best_step, round(state.seconds, 2)
    done = (state.step - start_step) * work.step_examples
    info.extra.update(
        best_score=state.best_score,
        stopped_early=result.stopped_early,
        examples_per_second=round(done / max(result.seconds, 1e-9), 1),
    )
    run.finish(info, task_model_card(info.to_json()).render())
    best_text = (
        f"best validation {_selection_name(prep, settings)} {state.best_score:.4f} at step {best_step:,}"
        if state.best_score is not None
        else "no validation split: exported the last step"
    )
    ui.info(f"finetune: {where}{state.step:,} steps, {best_text}; wrote {output}")
    return FinetuneResult(info=info.to_json(), task=task, output=output)


def _selection_name(prep: Prepared, settings: FinetuneSettings) -> str:
    """What the best step is chosen by: the task's metric or the validation loss (``select_by``)."""
    return "loss" if settings.select_by == "loss" else prep.spec.metric


def _start(
    run: runs.Run,
    prep: Prepared,
    settings: FinetuneSettings,
    task: TaskModel,
    work: TaskTraining,
    command: str | None,
    accelerator: Any,
) -> runs.RunInfo:
    """The run's training.json before training, checked against an interrupted run's when resuming."""
    info = _run_info(prep, settings, command, accelerator.device)
    info.trainable_parameters = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
    info.total_steps = work.total_steps
    info.extra.update(
        kind_description="full fine-tuning" if settings.method == "full" else "task adapter",
        adapter_name=task.task_adapter,
        lang_adapter_names=task.lang_names,
        head_parameters=task.head_names,
        max_length=work.max_length,
        # batches are right-padded with the tokenizer's pad token (a decoder without one: EOS, as the seed's
        # LLaMA runs set it); a classification head reads the first token, a decoder's the last real one
        padding_side="right",
        pad_token=task.tokenizer.pad_token,
        pooling=None if prep.spec.kind == "tagging" else "last" if task.source.is_decoder else "first",
        steps_per_epoch=work.steps_per_epoch,
        eval_every_steps=work.eval_every,
        best_score=None,
        stopped_early=False,
    )
    if run.previous is not None:
        _check_resume(run.previous.to_json(), info.to_json(), run.path)
    return info


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
    precision: str | None = None,
    report_to: str | None = None,
    resume: bool = False,
    force: bool = False,
    skip_bad_lines: bool = False,
    command: str | None = None,
    deterministic: bool = False,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train a task model (or one per seed into OUTDIR/seed-N); return the training.json of each.

    ``options``: the explicit values ``settings`` were made from; with a preset, the settings are made
    again for a decoder (:func:`settings_for_model`).

    Reads DIR/train and DIR/validation (JSONL, .zst/.gz) and the language adapter(s); writes the run
    folder(s). Refuses, before writing anything: unknown labels, empty splits, a language adapter made
    for another base model, fusion without exactly two adapters, a full-fine-tuning run on a language
    adapter, and an output folder that holds something else (see :meth:`lrltool.runs.Run.open`).
    With seeds and ``resume``, finished seeds are kept and the others resumed or started.
    ``deterministic``: :func:`lrltool.devices.set_deterministic` while training (bit-identical on CUDA).
    """
    if resume and force:
        raise RunError("--resume and --force exclude each other", hint="give one of them")
    if devices.world_size() > 1:
        raise UsageError(
            "finetune trains in one process", hint="start it without torchrun or accelerate launch"
        )
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
    settings = settings_for_model(settings, prep, options)
    extra = {"precision": precision, "report_to": report_to}
    devices.parse_report_to(report_to)  # before any work: an unknown tracker or a missing package
    with devices.deterministic(deterministic):
        if seeds is None:
            run = runs.Run.open(out, resume=resume, force=force)
            return [train_run(prep, settings, run=run, device=device, command=command, **extra).info]
        root = Path(out)
        with runs.RunLock(root) as lock:  # the seeds' root, besides each seed's own run folder
            lock.acquire(command)
            plan = _plan_seeds(root, seeds, resume=resume, force=force)
            if force:
                _remove_other_seeds(root, seeds)
            infos = []
            for seed, run in plan:
                seed_settings = FinetuneSettings(**{**asdict(settings), "seed": seed})
                infos.append(
                    train_run(prep, seed_settings, run=run, device=device, command=command, **extra).info
                )
            return infos


def _plan_seeds(root: Path, seeds: Sequence[int], *, resume: bool, force: bool) -> list[tuple[int, runs.Run]]:
    """(seed, opened run folder) of each seed to train in OUTDIR/seed-N.

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
    plan: list[tuple[int, runs.Run]] = []
    for seed in seeds:
        folder = root / f"seed-{seed}"
        if resume and not (folder / runs.TRAINING_JSON).exists():
            plan.append((seed, runs.Run.open(folder)))  # not started yet: start it
            continue
        if resume and runs.RunInfo.load(folder).finished:
            ui.info(f"finetune: seed {seed} has finished; keeping it")
            continue
        plan.append((seed, runs.Run.open(folder, resume=resume, force=force)))
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
        if runs.RunInfo.load(path).kind == RUN_KIND:
            ui.info(f"finetune: --force: removing {path} (seed {match.group(1)} is not in --seeds)")
            shutil.rmtree(path)
