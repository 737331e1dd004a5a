"""The model card (README.md) of a finetune run: task, labels, setup, validation score, how to load it."""

from __future__ import annotations

from typing import Any

from lrltool import runs
from lrltool.tasks import TRAINABLE_TASKS, get_task

#: The transformers Auto class that loads a finetune run's model, by task kind.
_HEAD_CLASSES = {
    "classification": "AutoModelForSequenceClassification",
    "tagging": "AutoModelForTokenClassification",
}


def task_model_card(info: dict[str, Any]) -> runs.Card:
    """README.md of a finetune run (its training.json ``info``): task, labels, setup, validation score,
    how to load it."""
    spec = get_task(info["task"], among=TRAINABLE_TASKS)
    full = info["task_method"] == "full"
    langs = info.get("lang_adapters") or []
    title = f"{spec.description}: {info['model']} / {info['task_method']}" + (
        f" on {info['lang_method']} ({info.get('lang_source') or 'unknown source'})" if langs else ""
    )
    lines = [
        f"- task: `{spec.name}` ({spec.description}); labels in order: {', '.join(info['labels'])}",
        f"- base model: `{info['model']}`"
        + (f" (revision `{info['model_revision']}`)" if info.get("model_revision") else ""),
        f"- language: {info.get('lang') or 'unknown'}; seed {info.get('seed')}",
        f"- task method: `{info['task_method']}`; language adaptation: `{info['lang_method']}`",
    ]
    for lang in langs:
        lines.append(
            f"  - language {'model' if lang['kind'] == 'full' else 'adapter'} `{lang['path']}`:"
            f" {lang['method']},"
            f" source {lang.get('source') or 'unknown'}, sha256 {lang['weights_sha256'][:16]}..."
        )
    data = info.get("data") or {}
    lines += [
        f"- data: {data.get('train_records', 0):,} training and"
        f" {data.get('validation_records', 0):,} validation"
        f" examples from `{data.get('dir')}` (sha256 {str(data.get('hash', ''))[:16]}...)",
        f"- trainable parameters: {info.get('trainable_parameters', 0):,}",
        f"- steps: {info.get('steps')}; best validation"
        f" {'loss' if (info.get('settings') or {}).get('select_by') == 'loss' else info.get('metric')}"
        f" {_score_text(info.get('best_score'))} at step {info.get('best_step')} (the exported weights);"
        f" {info.get('seconds', 0):.0f} s",
    ]
    usage = ["```", f"lrltool eval --task {spec.name} --run {{this folder}}", "```", "", "```python"]
    head_class = _HEAD_CLASSES[spec.kind]
    if full:
        usage += [f"from transformers import {head_class}", f"model = {head_class}.from_pretrained('model')"]
    else:
        usage += _adapter_usage(info, spec.name, head_class, langs)
    usage.append("```")
    return runs.Card(
        title=title,
        facts=lines,
        settings=info.get("settings") or {},
        usage=usage,
        command=info.get("command"),
    )


def _adapter_usage(
    info: dict[str, Any], task: str, head_class: str, langs: list[dict[str, Any]]
) -> list[str]:
    """Plain adapters code that loads a task adapter run (with its language adapters or fusion)."""
    lines = [
        "import adapters",
        "from adapters import Fuse, Stack",
        f"from transformers import {head_class}",
        f"model = {head_class}.from_pretrained({info['model']!r}, num_labels={len(info['labels'])})",
        "adapters.init(model)",
    ]
    names = info.get("lang_adapter_names") or []
    for lang, name in zip([x for x in langs if x["kind"] == "adapter"], names, strict=False):
        lines.append(f"model.load_adapter({lang['folder']!r}, load_as={name!r}, with_head=False)")
    if info.get("fusion"):
        lines.append(f"model.load_adapter_fusion('fusion', load_as={','.join(names)!r})")
    lines.append(f"model.load_adapter('adapter', load_as={task!r})  # task adapter + head")
    if info.get("fusion"):
        lines.append(f"model.active_adapters = Stack(Fuse(*{names!r}), {task!r})")
    elif names:
        lines.append(f"model.active_adapters = Stack({names[0]!r}, {task!r})")
    else:
        lines.append(f"model.set_active_adapters({task!r})")
    if "bert.pooler.dense.weight" in (info.get("head_parameters") or []):
        lines.append(
            "# the checkpoint had no pooler: lrltool trained it with the head (model_head.safetensors)"
        )
    return lines


def _score_text(score: float | None) -> str:
    return "(no validation split)" if score is None else f"{score:.4f}"
