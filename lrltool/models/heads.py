"""Task models (finetune, eval --task tc|sa|ner): classification heads, task adapters and fusion layers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrltool.errors import ModelError
from lrltool.models.adapters import (
    _write_pickle_copy,
    is_adapter_parameter,
    load_adapter,
)
from lrltool.models.loading import (
    ModelSource,
    checkpoint_parameter_names,
    load_model,
    read_json,
    trainable_parameters,
)
from lrltool.streams import atomic_dir

TASK_HEADS: tuple[str, ...] = ("sequence-classification", "token-classification")
HEAD_CONFIG = "head_config.json"
HEAD_SAFETENSORS = "model_head.safetensors"
HEAD_PICKLE = "pytorch_model_head.bin"
FUSION_CONFIG = "adapter_fusion_config.json"
FUSION_SAFETENSORS = "model_adapter_fusion.safetensors"
FUSION_PICKLE = "pytorch_model_adapter_fusion.bin"


def load_task_model(
    source: ModelSource, *, head: str, labels: Sequence[str], device: Any = None, dtype: Any = None
) -> tuple[Any, list[str]]:
    """A classification (``head`` "sequence-classification") or tagging ("token-classification") model.

    Returns the model (adapters-enabled, eval mode, ``id2label`` from ``labels`` in order) and the names
    of its task-head parameters: every parameter outside the base model (classifier / score) plus base
    parameters the checkpoint does not hold and ``from_pretrained`` initialised at random (BERT's pooler
    when the checkpoint is a masked-LM one). Those must train and be saved with the head: a randomly
    initialised weight that is not saved cannot be rebuilt at evaluation time.
    """
    if head not in TASK_HEADS:
        raise ModelError(f"'{head}' is not a task head", hint=f"choose one of {', '.join(TASK_HEADS)}")
    from transformers.utils import logging as hf_logging

    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    # "Some weights ... are newly initialized: train this model" is exactly what we are about to do.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)
    try:
        model = load_model(
            source,
            head=head,
            device=device,
            dtype=dtype,
            num_labels=len(labels),
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=True,  # a checkpoint with another head: that head is replaced
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    stored = checkpoint_parameter_names(source)
    prefix = model.base_model_prefix
    if stored and not any(name.startswith(f"{prefix}.") for name in stored):
        stored = {f"{prefix}.{name}" for name in stored}  # a checkpoint of the bare base model
    head_names = [
        name
        for name, _ in model.named_parameters()
        if not name.startswith(f"{prefix}.") or name not in stored
    ]
    return model, head_names


def _fusion_parameter(param_name: str) -> bool:
    return "adapter_fusion_layer" in param_name.split(".")


def set_trainable(model: Any, names: set[str]) -> int:
    """Train exactly the parameters in ``names`` (everything else frozen); return the trainable count."""
    known = {name for name, _ in model.named_parameters()}
    missing = sorted(names - known)
    if missing:
        raise ModelError(f"no parameter '{missing[0]}' in the model ({len(missing)} missing)")
    for name, param in model.named_parameters():
        param.requires_grad = name in names
    return trainable_parameters(model)


def adapter_parameter_names(model: Any, adapter: str) -> set[str]:
    """Names of the parameters of adapter ``adapter`` (bottleneck, invertible, LoRA, ...)."""
    return {name for name, _ in model.named_parameters() if is_adapter_parameter(name, adapter)}


def fusion_parameter_names(model: Any) -> set[str]:
    return {name for name, _ in model.named_parameters() if _fusion_parameter(name)}


def add_task_adapter(model: Any, name: str, *, reduction_factor: int = 16) -> None:
    """Add a seq_bn task adapter (not yet active, nothing frozen: the caller decides the setup)."""
    from adapters import SeqBnConfig

    model.add_adapter(name, config=SeqBnConfig(reduction_factor=reduction_factor))


def save_task_adapter(model: Any, name: str, out_dir: str | Path, *, head_names: Sequence[str]) -> None:
    """Write task adapter ``name`` with its head to ``out_dir`` (AdapterHub layout, atomic, no base model).

    Files: adapter_config.json, adapter.safetensors, head_config.json, model_head.safetensors (every
    name in ``head_names``, which may include base parameters the checkpoint lacked, e.g. BERT's
    pooler), and pickle copies (pytorch_adapter.bin, pytorch_model_head.bin) for plain
    ``model.load_adapter(dir)`` of adapters 1.3.0 (which loads the head parameters outside the base model).
    """
    import torch
    from safetensors.torch import save_file

    with atomic_dir(out_dir) as tmp:
        model.save_adapter(str(tmp), name, with_head=True, use_safetensors=True)
        _write_pickle_copy(tmp)
        params = dict(model.named_parameters())
        head = {key: params[key].detach().cpu().contiguous().clone() for key in head_names}
        save_file(head, str(tmp / HEAD_SAFETENSORS))
        torch.save(head, tmp / HEAD_PICKLE)


def load_task_adapter(model: Any, path: str | Path, *, name: str, head_names: Sequence[str]) -> str:
    """Load a task adapter + head written by :func:`save_task_adapter` into ``model`` (not activated).

    Refuses (ModelError) a head saved from another model class, one with other head parameters or
    shapes, and adapter weights that do not fit (through :func:`load_adapter`).
    """
    from safetensors.torch import load_file

    folder = Path(path)
    head_config = folder / HEAD_CONFIG
    if not head_config.is_file() or not (folder / HEAD_SAFETENSORS).is_file():
        raise ModelError(
            "the task adapter has no head (head_config.json, model_head.safetensors)",
            hint="train it again with lrltool finetune",
            path=str(folder),
        )
    saved_class = read_json(head_config).get("model_class")
    if saved_class != type(model).__name__:
        raise ModelError(
            f"the task head was saved from a {saved_class} model, not {type(model).__name__}",
            hint="evaluate it with the model it was trained on",
            path=str(folder),
        )
    loaded = load_adapter(model, folder, name=name, set_active=False)
    weights = load_file(str(folder / HEAD_SAFETENSORS))
    params = dict(model.named_parameters())
    if set(weights) != set(head_names):
        odd = sorted(set(weights) ^ set(head_names))
        raise ModelError(
            f"the task head's weights do not fit this model ({len(odd)} mismatched, e.g. {odd[0]})",
            hint="evaluate it with the model it was trained on",
            path=str(folder),
        )
    import torch

    with torch.no_grad():
        for key, tensor in weights.items():
            if tuple(tensor.shape) != tuple(params[key].shape):
                raise ModelError(
                    f"the task head's '{key}' has shape {tuple(tensor.shape)}, the model "
                    f"{tuple(params[key].shape)}",
                    hint="evaluate it with the model it was trained on",
                    path=str(folder),
                )
            params[key].copy_(tensor.to(params[key].device, params[key].dtype))
    return loaded


def save_fusion(model: Any, adapter_names: Sequence[str], out_dir: str | Path) -> None:
    """Write the fusion layer over ``adapter_names`` (config, safetensors, pickle copy), atomically."""
    import torch
    from safetensors.torch import load_file

    with atomic_dir(out_dir) as tmp:
        model.save_adapter_fusion(str(tmp), ",".join(adapter_names), use_safetensors=True)
        torch.save(load_file(str(tmp / FUSION_SAFETENSORS)), tmp / FUSION_PICKLE)


def load_fusion(model: Any, path: str | Path, adapter_names: Sequence[str]) -> None:
    """Load a fusion layer written by :func:`save_fusion` over the (already loaded) ``adapter_names``."""
    folder = Path(path)
    if not (folder / FUSION_CONFIG).is_file() or not (folder / FUSION_SAFETENSORS).is_file():
        raise ModelError("no fusion layer in the folder", hint="train it again", path=str(folder))
    saved = read_json(folder / FUSION_CONFIG).get("adapter_names")
    if saved is not None and list(saved) != list(adapter_names):
        raise ModelError(f"the fusion layer fuses {saved}, not {list(adapter_names)}", path=str(folder))
    before = fusion_parameter_names(model)
    try:
        model.load_adapter_fusion(str(folder), load_as=",".join(adapter_names), use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(
            f"cannot load the fusion layer ({str(exc).splitlines()[0]})", path=str(folder)
        ) from None
    if fusion_parameter_names(model) == before:
        raise ModelError("the fusion layer's weights did not load", path=str(folder))


# ---------------------------------------------------------------------------------------------------
# The seed's task head: the adapters library's flexible head, built on the static classes

TASK_HEAD_KINDS: tuple[str, ...] = ("model", "adapters")  # the transformers class's head | the library's
_FIRST_TOKEN_CLASSIFIERS = ("xlm-roberta", "roberta", "camembert")  # classifier(sequence_output)
_POOLER_CLASSIFIERS = ("bert",)  # classifier(dropout(pooler(sequence_output)))
# score(hidden) at every position, then the last token that is not padding (LlamaForSequenceClassification)
_LAST_TOKEN_CLASSIFIERS = ("llama",)


def _head_dropout(config: Any) -> float:
    """The dropout of the adapters library's heads (PredictionHead._get_dropout_prob)."""
    for key in ("classifier_dropout", "hidden_dropout_prob"):
        value = getattr(config, key, None)
        if value is not None:
            return float(value)
    return 0.0


def seed_classification_head(model: Any, num_labels: int, *, first_token: bool = True) -> Any:
    """The adapters library's ``ClassificationHead`` (layers=2, tanh, no pooler) as a plain module.

    Dropout, Linear(h, h), Tanh, Dropout, Linear(h, num_labels) on the first token's hidden state, the
    modules numbered 0-4 as the library numbers them (so its weights load by name) and initialised with
    the model's ``_init_weights`` as the library does. Called with (batch, seq, hidden) it takes the first
    token; with (batch, hidden) it is applied as is. ``first_token=False`` (decoders): applied at every
    position, the model's own pooling then picks the last token (every layer acts per position, so this is
    the library's head on the last token, as LlamaAdapterModel's ``cls_output`` gives it).
    """
    from torch import nn

    class SeedClassificationHead(nn.Sequential):
        def forward(self, features: Any, *args: Any, **kwargs: Any) -> Any:
            return super().forward(features[:, 0] if first_token and features.dim() == 3 else features)

    hidden, dropout = model.config.hidden_size, _head_dropout(model.config)
    head = SeedClassificationHead(
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_labels),
    )
    head.apply(model._init_weights)
    return head


def install_task_head(model: Any, kind: str, *, head: str, head_names: Sequence[str]) -> list[str]:
    """Give a static task model the task head ``kind``; return the names of its head parameters.

    ``model``: the transformers class's own head, as loaded. ``adapters``: the adapters library's
    flexible head as src/tc/train_tc.py (0cf3abd:181, 189) adds it with ``add_classification_head``: for
    sequence classification :func:`seed_classification_head` replaces the classifier (BERT: its pooler
    becomes the first token and the dropout before the classifier moves into the head, so no pretrained
    pooler is used, as in the library); for tagging the library's ``TaggingHead`` (layers=1: Dropout,
    Linear) is what the token-classification classes already have, so nothing changes, except a decoder's
    dropout: the library's is 0 where the config names none (LLaMA), transformers' 0.1.
    Decoders (LLaMA, the seed's later commits d101b0a: AutoAdapterModel + the same heads): the
    classification head on the last non-padding token, the class's own pooling (right padding, pad = EOS).
    """
    if kind not in TASK_HEAD_KINDS:
        raise ModelError(f"unknown task head '{kind}'", hint=f"choose one of {', '.join(TASK_HEAD_KINDS)}")
    if kind == "model":
        return list(head_names)
    from torch import nn

    model_type = model.config.model_type
    if head == "token-classification":
        if model_type in _LAST_TOKEN_CLASSIFIERS:
            model.dropout = nn.Dropout(_head_dropout(model.config))
        return list(head_names)
    attribute = "score" if model_type in _LAST_TOKEN_CLASSIFIERS else "classifier"
    new = seed_classification_head(
        model, model.config.num_labels, first_token=model_type not in _LAST_TOKEN_CLASSIFIERS
    )
    if model_type in _FIRST_TOKEN_CLASSIFIERS or model_type in _LAST_TOKEN_CLASSIFIERS:
        setattr(model, attribute, new)
    elif model_type in _POOLER_CLASSIFIERS:

        class FirstToken(nn.Module):
            def forward(self, hidden: Any) -> Any:
                return hidden[:, 0]

        getattr(model, model.base_model_prefix).pooler = FirstToken()
        model.dropout = nn.Identity()
        model.classifier = new
    else:
        raise ModelError(
            f"the adapters library's classification head is built here for BERT, XLM-R and LLaMA models, "
            f"not {model_type}",
            hint="use --task-head model",
        )
    kept = set(head_names)
    return [name for name, _ in model.named_parameters() if name in kept or name.startswith(f"{attribute}.")]
