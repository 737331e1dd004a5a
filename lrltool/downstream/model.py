"""The task model: build it (MAD-X, fusion, full fine-tuning), export it, rebuild a finished run's model.

Setups (docs/design.md "Downstream", "Models and adapters"):

- a seq_bn task adapter + head without a language adapter (the paper's baseline);
- MAD-X: ``Stack(lang, task)``; only the task adapter and the head train; a ``full`` train-adapter run as
  the language "adapter" makes its model/ the base model instead;
- fusion of two language adapters: ``Stack(Fuse(a, b), task)``; the fusion layer, the task adapter and
  the head train, both language adapters stay frozen;
- ``full``: every weight trains (full fine-tuning baseline).

A finetune run folder (:mod:`lrltool.runs`) holds adapter/ (task adapter + head) or model/ (full), plus
fusion/ (the fusion layer) for fusion runs; ``--seeds`` writes one run per seed in OUTDIR/seed-N.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrltool import models, runs
from lrltool.errors import RunError
from lrltool.streams import atomic_dir
from lrltool.tasks import TRAINABLE_TASKS, TaskConfig, get_task

RUN_KIND = "finetune"  # training.json "kind" of a finetune run
FUSION_DIR = "fusion"
SEED_DIR = re.compile(r"^seed-(\d+)$")


@dataclass
class TaskModel:
    """A task model ready to train or predict, and what it is made of."""

    model: Any
    tokenizer: Any
    source: Any  # models.ModelSource of the base model actually loaded
    head_names: list[str]
    task_adapter: str | None  # None for full fine-tuning
    lang_names: list[str]
    fusion: bool
    trainable: set[str]

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else 0


def lang_adapter_names(infos: Sequence[dict[str, Any]]) -> list[str]:
    """Module names of the language adapters: "lang"; for fusion "lang_<source>" (or lang_1, lang_2)."""
    if len(infos) == 1:
        return ["lang"]
    sources = [re.sub(r"[^A-Za-z0-9_]", "_", str(info.get("source") or "")) for info in infos]
    if all(sources) and len(set(sources)) == len(sources):
        return [f"lang_{s}" for s in sources]
    return [f"lang_{i}" for i in range(1, len(infos) + 1)]


_SOURCE_ORDER = ("glotcc", "conceptnet")


def combined_source(infos: Sequence[dict[str, Any]]) -> str | None:
    """The adaptation data of the language adapter(s): "glotcc", or "glotcc+conceptnet" for fusion."""
    found = [str(i["source"]) for i in infos if i.get("source")]
    if not found:
        return None
    order = {name: k for k, name in enumerate(_SOURCE_ORDER)}
    return "+".join(sorted(set(found), key=lambda s: (order.get(s, len(order)), s)))


def _activate(model: Any, task_adapter: str | None, lang_names: Sequence[str], fusion: bool) -> None:
    from adapters import Fuse, Stack

    if task_adapter is None:
        return
    if fusion:
        model.active_adapters = Stack(Fuse(*lang_names), task_adapter)
    elif lang_names:
        model.active_adapters = Stack(lang_names[0], task_adapter)
    else:
        model.set_active_adapters(task_adapter)


# ---------------------------------------------------------------------------------------------------
# Build


def build_task_model(
    task: TaskConfig,
    labels: Sequence[str],
    *,
    base: Any,
    lang_infos: Sequence[dict[str, Any]],
    method: str,
    fusion: bool,
    reduction_factor: int,
    seed: int,
    device: Any,
    task_head: str = "model",
) -> TaskModel:
    """Load the base model with the task head, the language adapter(s), and add what trains.

    ``base``: the ModelSource to load (for a ``full`` language "adapter", its model/ folder). MAD-X as
    docs/design.md "Models and adapters" says: ``train_adapter(task)`` first, then ``Stack(lang, task)``
    (train_adapter resets the active set); fusion: ``add_adapter_fusion`` + ``train_adapter_fusion``, then
    the task adapter and the head are unfrozen and ``Stack(Fuse(a, b), task)`` is active. The trainable
    set is then pinned explicitly (task adapter + fusion layer + head; everything for ``full``).
    ``task_head``: "model" (the transformers class's head) or "adapters" (the adapters library's flexible
    head, as the seed: :func:`lrltool.models.install_task_head`).
    """
    import torch

    torch.manual_seed(seed)  # the head's (and the task adapter's) initialisation
    with models.adapters_warnings_off():
        return _build_task_model(
            task, labels, base, lang_infos, method, fusion, reduction_factor, device, task_head
        )


def _build_task_model(
    task: TaskConfig,
    labels: Sequence[str],
    base: Any,
    lang_infos: Sequence[dict[str, Any]],
    method: str,
    fusion: bool,
    reduction_factor: int,
    device: Any,
    task_head: str = "model",
) -> TaskModel:
    from adapters import Fuse

    model, head_names = models.load_task_model(base, head=task.head, labels=labels, device=device)
    head_names = models.install_task_head(model, task_head, head=task.head, head_names=head_names)
    adapters_ = [info for info in lang_infos if info["kind"] == "adapter"]
    lang_names = lang_adapter_names(adapters_) if adapters_ else []
    for info, name in zip(adapters_, lang_names, strict=True):
        models.load_adapter(model, info["folder"], name=name, set_active=False)
    task_adapter = None
    if method == "full":
        trainable = {name for name, _ in model.named_parameters()}
    else:
        task_adapter = task.name
        models.add_task_adapter(model, task_adapter, reduction_factor=reduction_factor)
        if fusion:
            model.add_adapter_fusion(Fuse(*lang_names))
            model.train_adapter_fusion(Fuse(*lang_names))
        else:
            model.train_adapter(task_adapter)
        trainable = models.adapter_parameter_names(model, task_adapter) | set(head_names)
        if fusion:
            trainable |= models.fusion_parameter_names(model)
        _activate(model, task_adapter, lang_names, fusion)
    models.set_trainable(model, trainable)
    model.to(device)
    model.eval()
    tokenizer = models.load_tokenizer(base)
    return TaskModel(
        model=model,
        tokenizer=tokenizer,
        source=base,
        head_names=head_names,
        task_adapter=task_adapter,
        lang_names=lang_names,
        fusion=fusion,
        trainable=trainable,
    )


# ---------------------------------------------------------------------------------------------------
# Export


def export_task_model(task: TaskModel, run: runs.Run) -> Path:
    """Write what was trained: run/adapter (task adapter + head) [+ run/fusion], or run/model (full)."""
    if task.task_adapter is None:
        out = run.output(True)
        save_full_task_model(task, out)
        return out
    out = run.output(False)
    if task.fusion:
        models.save_fusion(task.model, task.lang_names, run.path / FUSION_DIR)
    models.save_task_adapter(task.model, task.task_adapter, out, head_names=task.head_names)
    return out


def save_full_task_model(task: TaskModel, out: Path) -> None:
    """A fully fine-tuned model as a plain HF folder (safetensors, its head and labels), atomically."""
    import json

    with atomic_dir(out) as tmp:
        task.model.save_pretrained(str(tmp), safe_serialization=True)
        task.tokenizer.save_pretrained(str(tmp))
        config_path = tmp / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config.pop("adapters", None)  # nothing of the adapters library in a plain model
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# Finished runs


@dataclass
class FinetuneRun:
    """A finished finetune run: its folder and its training.json."""

    path: Path
    info: dict[str, Any]

    @property
    def seed(self) -> int | None:
        return self.info.get("seed")


def find_runs(path: str | Path) -> tuple[list[FinetuneRun], bool]:
    """The finetune run(s) at ``path``: the run itself, or its seed-N runs (sorted by seed).

    Returns (runs, several seeds). Refuses (RunError) a folder that is no finetune run (a train-adapter
    run, anything else) and an unfinished run.
    """
    root = Path(path)
    if not root.is_dir():
        raise RunError("no such run folder", hint="give the -o folder of lrltool finetune", path=str(root))
    if (root / runs.TRAINING_JSON).is_file():
        return [_finetune_run(root)], False
    seed_dirs = sorted(
        (int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := SEED_DIR.match(p.name))
    )
    if not seed_dirs:
        raise RunError(
            "not a finetune run (no training.json, no seed-N folders)",
            hint="give the -o folder of lrltool finetune",
            path=str(root),
        )
    return [_finetune_run(p) for _, p in seed_dirs], True


def _finetune_run(folder: Path) -> FinetuneRun:
    info = runs.RunInfo.load(folder).to_json()
    if info.get("kind") != RUN_KIND:
        what = "a train-adapter run (a language adapter)" if "objective" in info else "not a finetune run"
        raise RunError(
            f"the folder holds {what}, not a finetune run",
            hint="give the -o folder of lrltool finetune (for adapters: eval --task mlm --adapter)",
            path=str(folder),
        )
    if not info.get("finished"):
        raise RunError(
            "the finetune run has not finished", hint="finish it with finetune ... --resume", path=str(folder)
        )
    return FinetuneRun(path=folder, info=info)


def load_finetuned(info: dict[str, Any], run_path: Path, *, device: Any) -> TaskModel:
    """Rebuild the model of a finished finetune run for prediction (eval).

    Refuses (RunError) a language adapter whose weights changed since training (sha256 recorded) and a
    run without its exported weights; model/adapter incompatibilities are ModelErrors from lrltool.models.
    """
    task = get_task(info["task"], among=TRAINABLE_TASKS)
    labels = list(info["labels"])
    lang_infos = info.get("lang_adapters") or []
    for lang in lang_infos:
        folder = Path(lang["folder"])
        current = models.weights_sha256(folder) if folder.exists() else None
        if current != lang["weights_sha256"]:
            raise RunError(
                f"the language adapter {lang['path']} "
                + ("is gone" if current is None else "has changed since this run was trained"),
                hint="evaluate with the adapter the run was trained on (training.json lang_adapters)",
                path=str(run_path),
            )
    if info["task_method"] == "full":
        return _load_full_model(run_path, task, labels, device)
    base = _base_source(info, run_path)
    with models.adapters_warnings_off():
        return _load_trained_adapters(info, run_path, task, labels, base, lang_infos, device)


def _load_full_model(run_path: Path, task: TaskConfig, labels: list[str], device: Any) -> TaskModel:
    folder = run_path / "model"
    if not (folder / "config.json").is_file():
        raise RunError("the run has no model/ folder", hint="train it again", path=str(run_path))
    source = models.resolve_model(str(folder))
    saved = source.config.get("id2label") or {}
    if [saved.get(str(i)) for i in range(len(saved))] != labels:
        raise RunError("the run's model has other labels than its training.json", path=str(folder))
    model, _ = models.load_task_model(source, head=task.head, labels=labels, device=device)
    stored = models.checkpoint_parameter_names(source)
    missing = [name for name, _ in model.named_parameters() if name not in stored]
    if missing:
        raise RunError(f"the run's model lacks trained weights (e.g. {missing[0]})", path=str(folder))
    model.to(device)
    return TaskModel(model, models.load_tokenizer(source), source, [], None, [], False, set())


def _load_trained_adapters(
    info: dict[str, Any],
    run_path: Path,
    task: TaskConfig,
    labels: list[str],
    base: Any,
    lang_infos: list[dict[str, Any]],
    device: Any,
) -> TaskModel:
    built = build_task_model(
        task,
        labels,
        base=base,
        lang_infos=lang_infos,
        method="adapter",
        fusion=bool(info.get("fusion")),
        reduction_factor=int(info["settings"]["reduction_factor"]),
        seed=0,
        device=device,
        task_head=str(info["settings"].get("task_head") or "model"),
    )
    model = built.model
    model.delete_adapter(task.name)  # replaced by the trained one
    if built.fusion:
        model.delete_adapter_fusion(",".join(built.lang_names))
        models.load_fusion(model, run_path / FUSION_DIR, built.lang_names)
    adapter_dir = run_path / "adapter"
    if not adapter_dir.is_dir():
        raise RunError("the run has no adapter/ folder", hint="train it again", path=str(run_path))
    models.load_task_adapter(model, adapter_dir, name=task.name, head_names=built.head_names)
    _activate(model, task.name, built.lang_names, built.fusion)
    model.to(device)
    model.eval()
    return built


def _base_source(info: dict[str, Any], run_path: Path) -> Any:
    """The base model the run was trained on: where training.json says it is (an absolute path or hub id;
    a run of an older lrltool recorded it as typed), refused if its weights changed since (model_hash)."""
    full_lang = [lang for lang in info.get("lang_adapters") or [] if lang["kind"] == "full"]
    if full_lang:
        source = models.resolve_model(full_lang[0]["folder"])
    else:
        source = models.resolve_model(
            info.get("model_path") or info["model"], revision=info.get("model_revision")
        )
    if info.get("model_hash") and models.model_fingerprint(source) != info["model_hash"]:
        raise RunError(
            f"the base model {source.path} is not the one this run was trained on (its weights differ)",
            hint="evaluate with the model the run was trained on (training.json model_path, model_hash)",
            path=str(run_path),
        )
    return source
