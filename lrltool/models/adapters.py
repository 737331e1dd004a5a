"""Language adapters: the methods, adding, saving, loading and identifying them (adapters-library traps).

Adapters-library traps handled here (docs/design.md "Models and adapters"):

- the static HF classes never apply the invertible adapter's inverse before the output embedding:
  :func:`add_adapter` / :func:`load_adapter` register a forward pre-hook that does;
- ``train_adapter`` leaves the MLM head's dense/LayerNorm trainable: :func:`add_adapter` freezes them;
- ``save_adapter(with_head=True)`` writes the tied embedding matrix: :func:`save_adapter` never does.

Which method made an adapter is decided in one place, :func:`adaptation_of` (a train-adapter run's
training.json, else the adapter's own config by :func:`method_of_config`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrltool.errors import ModelError, UsageError
from lrltool.models.loading import (
    MODEL_FAMILY,
    hub_download,
    looks_like_path,
    read_json,
    resolve_model,
    trainable_parameters,
)
from lrltool.streams import atomic_dir, file_sha256

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter.safetensors"
ADAPTER_PICKLE = "pytorch_adapter.bin"
HEAD_SAFETENSORS = (
    "lm_head.safetensors"  # the MLM head's trained transform, saved with the adapter (train_head)
)
HUB_ADAPTER_FILES = [ADAPTER_CONFIG, ADAPTER_SAFETENSORS, ADAPTER_PICKLE]  # .bin: weights_only


# ---------------------------------------------------------------------------------------------------
# Adapter methods (one registry)


@dataclass(frozen=True)
class AdapterMethod:
    """One way to adapt a model: its adapters-library config (None for full training) and a description."""

    name: str
    description: str
    make_config: Callable[..., Any] | None  # (reduction_factor, lora_r, lora_alpha) -> adapters config
    invertible: bool = False


def _seq_bn(reduction_factor: int = 16, **_: Any) -> Any:
    from adapters import SeqBnConfig

    return SeqBnConfig(reduction_factor=reduction_factor)


def _seq_bn_inv(reduction_factor: int = 16, **_: Any) -> Any:
    from adapters import SeqBnInvConfig

    return SeqBnInvConfig(reduction_factor=reduction_factor)


def _lora(lora_r: int = 8, lora_alpha: int = 8, **_: Any) -> Any:
    from adapters import LoRAConfig

    return LoRAConfig(r=lora_r, alpha=lora_alpha)  # q and v of self-attention, as the paper


ADAPTER_METHODS: dict[str, AdapterMethod] = {
    "seq_bn": AdapterMethod("seq_bn", "bottleneck adapter after each layer's FFN (Pfeiffer)", _seq_bn),
    "seq_bn_inv": AdapterMethod(
        "seq_bn_inv", "seq_bn + invertible adapter at the embeddings (MAD-X)", _seq_bn_inv, invertible=True
    ),
    "lora": AdapterMethod("lora", "LoRA on the attention's query and value", _lora),
    "full": AdapterMethod("full", "every weight trains (continued pre-training)", None),
}


def adapter_method(name: str) -> AdapterMethod:
    """The registered method ``name``, or a ModelError listing the known ones."""
    try:
        return ADAPTER_METHODS[name]
    except KeyError:
        raise ModelError(
            f"unknown adapter method '{name}'", hint=f"choose one of {', '.join(ADAPTER_METHODS)}"
        ) from None


_ADAPTER_CONTAINERS = frozenset(
    {
        "adapters",
        "invertible_adapters",
        "loras",
        "prefix_tunings",
        "prefix_gates",
        "refts",
        "prompt_tunings",
        "shared_parameters",
    }
)


def is_adapter_parameter(param_name: str, adapter: str) -> bool:
    """Whether ``param_name`` belongs to the adapter ``adapter`` (the adapters library's module names)."""
    parts = param_name.split(".")
    return any(parts[i] == adapter and parts[i - 1] in _ADAPTER_CONTAINERS for i in range(1, len(parts)))


def _inverse_pre_hook(base_model: Any) -> Callable[..., Any]:
    def hook(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        if hidden.dim() == 2:  # gathered positions [n, hidden]: the NICE block wants [batch, length, hidden]
            return (base_model.invertible_adapters_forward(hidden[None], rev=True)[0], *args[1:])
        return (base_model.invertible_adapters_forward(hidden, rev=True), *args[1:])

    return hook


def ensure_inverse_hook(model: Any) -> bool:
    """Apply the invertible adapter's inverse right before the output embedding (once per model).

    adapters 1.3.0 applies it only in its flexible-head models; with the static HF classes the inverse is
    never run (docs/design.md "Models and adapters"). The hook does nothing while no invertible adapter
    is active.
    """
    base = model.base_model
    if getattr(model, "_lrltool_inverse_hook", None) is not None or not hasattr(
        base, "invertible_adapters_forward"
    ):
        return False
    output_embeddings = model.get_output_embeddings()
    if output_embeddings is None:  # classification heads: nothing to invert before
        return False
    model._lrltool_inverse_hook = output_embeddings.register_forward_pre_hook(_inverse_pre_hook(base))
    return True


def add_adapter(
    model: Any,
    name: str,
    method: str,
    *,
    reduction_factor: int = 16,
    lora_r: int = 8,
    lora_alpha: int = 8,
    train_head: bool = False,
    inverse: bool = True,
) -> int:
    """Add adapter ``name`` of ``method``, activate it, and freeze everything else; return trainable count.

    Only the adapter's weights train: every base weight and the MLM head (dense, LayerNorm, decoder,
    bias) are frozen, which ``train_adapter`` alone does not do. ``train_head``: the paper's code instead
    (``train_adapter`` on a static ``*ForMaskedLM``): the head weights ``train_adapter`` leaves trainable
    (the transform's dense + LayerNorm) train too. ``inverse=False``: no inverse of an invertible adapter
    before the output embedding (what the paper's training on the static classes did). ``full``: nothing
    is added and every weight trains. The model's train/eval mode is left as it was.
    """
    spec = adapter_method(method)
    was_training = model.training
    if spec.make_config is None:
        for param in model.parameters():
            param.requires_grad = True
        return trainable_parameters(model)
    config = spec.make_config(reduction_factor=reduction_factor, lora_r=lora_r, lora_alpha=lora_alpha)
    model.add_adapter(name, config=config)
    with _adapters_log_level(logging.ERROR):
        # train_adapter resets the active set on the way and warns that "none are activated": noise.
        model.train_adapter(name)
    head = set(head_parameter_names(model)) if train_head else set()
    for param_name, param in model.named_parameters():
        param.requires_grad = is_adapter_parameter(param_name, name) or param_name in head
    if spec.invertible and inverse:
        ensure_inverse_hook(model)
    model.train(was_training)
    count = trainable_parameters(model)
    if count == 0:
        raise ModelError(f"adapter '{name}' added no trainable weights to this model")
    return count


def head_parameter_names(model: Any) -> list[str]:
    """The MLM head weights that ``train_adapter`` leaves trainable on a static ``*ForMaskedLM`` class:
    those outside the base model and not tied to its embeddings (XLM-R ``lm_head.dense``/``layer_norm``,
    BERT ``cls.predictions.transform``); none for a model without an LM head transform."""
    base = {id(p) for p in model.base_model.parameters()}
    return [
        n
        for n, p in model.named_parameters()
        if id(p) not in base and any(part in n.lower() for part in (".dense.", "layer_norm.", "layernorm."))
    ]


@contextlib.contextmanager
def _adapters_log_level(level: int) -> Iterator[None]:
    logger = logging.getLogger("adapters")
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def find_adapter_dir(path: str | Path) -> Path:
    """``run/adapter`` for a train-adapter run, the folder itself for an adapter, ``run/model`` for `full`."""
    folder = Path(path)
    if (folder / ADAPTER_CONFIG).is_file():
        return folder
    if (folder / "adapter" / ADAPTER_CONFIG).is_file():
        return folder / "adapter"
    if (folder / "model" / "config.json").is_file():
        return folder / "model"
    if not folder.exists():
        raise ModelError("no such adapter folder", hint="check the path", path=str(folder))
    raise ModelError(
        "not an adapter folder (no adapter_config.json) nor a train-adapter run (no adapter/ or model/)",
        hint="point at OUTDIR of train-adapter, its adapter/ folder, or a folder written by save_adapter",
        path=str(folder),
    )


def resolve_adapter(adapter: str | Path, *, revision: str | None = None) -> Path:
    """A local adapter/run folder, or a hub repository holding an adapter (config + safetensors only)."""
    name = str(adapter)
    local = Path(name).expanduser()
    if local.exists() or looks_like_path(name):
        return find_adapter_dir(local)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelError(f"'{name}' is neither a folder nor a valid hub id", hint="check the path") from None
    return find_adapter_dir(hub_download(name, revision, HUB_ADAPTER_FILES, "adapter"))


def read_adapter_config(folder: Path) -> dict[str, Any]:
    data = read_json(folder / ADAPTER_CONFIG)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ModelError(
            "adapter_config.json is not an adapters-library adapter config",
            hint="save adapters with save_adapter or train-adapter",
            path=str(folder / ADAPTER_CONFIG),
        )
    return data


def load_adapter(model: Any, path: str | Path, *, name: str | None = None, set_active: bool = True) -> str:
    """Load an adapter (adapter folder or train-adapter run) into ``model``; return its name.

    Refuses (ModelError) an adapter made for another model family or hidden size, weights that do not
    fit the model's modules, and a `full` run (load its model/ folder as the model instead). Weights are
    read from adapter.safetensors, or pytorch_adapter.bin through ``torch.load(weights_only=True)``.
    Registers the inverse hook for invertible adapters.
    """
    folder = find_adapter_dir(path)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ModelError(
            "this run trained every weight (method full): it has a model, not an adapter",
            hint=f"use --model {folder} instead of --adapter",
            path=str(path),
        )
    data = read_adapter_config(folder)
    model_type = model.config.model_type
    saved_type = data.get("model_type")
    family = MODEL_FAMILY.get(model_type, model_type)
    if saved_type is not None and MODEL_FAMILY.get(saved_type, saved_type) != family:
        raise ModelError(
            f"the adapter was made for a {saved_type} model, not {model_type}",
            hint="load it into the model it was trained on",
            path=str(folder),
        )
    saved_hidden = data.get("hidden_size")
    if saved_hidden is not None and saved_hidden != model.config.hidden_size:
        raise ModelError(
            f"the adapter was made for hidden size {saved_hidden}, the model has {model.config.hidden_size}",
            hint="load it into the model it was trained on",
            path=str(folder),
        )
    if not (folder / ADAPTER_SAFETENSORS).is_file() and not (folder / ADAPTER_PICKLE).is_file():
        raise ModelError("the adapter folder has no weights", hint="save it again", path=str(folder))
    info: dict[str, list[str]] = {}
    try:
        with _adapters_log_level(logging.ERROR):  # its spurious "none are activated" (see add_adapter)
            loaded = model.load_adapter(
                str(folder),
                load_as=name,
                with_head=False,
                set_active=set_active,
                use_safetensors=True,
                loading_info=info,
            )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(
            f"cannot load the adapter ({str(exc).splitlines()[0]})", hint="check the folder", path=str(folder)
        ) from None
    if info.get("unexpected_keys") or info.get("missing_keys"):
        keys = (info.get("unexpected_keys") or []) + (info.get("missing_keys") or [])
        model.delete_adapter(loaded)
        raise ModelError(
            f"the adapter's weights do not fit this model ({len(keys)} mismatched, e.g. {keys[0]})",
            hint="load it into the model it was trained on",
            path=str(folder),
        )
    if data["config"].get("inv_adapter"):
        ensure_inverse_hook(model)
    return loaded


def save_adapter(model: Any, name: str, out_dir: str | Path, *, with_head: bool = False) -> None:
    """Write adapter ``name`` to ``out_dir`` (created or replaced atomically), without any head.

    The folder holds adapter_config.json, adapter.safetensors (what lrltool reads) and
    pytorch_adapter.bin (the same tensors). Both stay: plain ``model.load_adapter(dir)`` of adapters 1.3.0,
    and ``load_adapter(repo, source="hf")`` from the hub, read only pytorch_adapter.bin (with
    ``torch.load(weights_only=True)``) unless the caller passes ``use_safetensors=True``
    (tests/test_publish.py loads a saved adapter with plain adapters code both ways). No embedding
    matrix: a few MB for a base-size model.
    ``with_head``: also lm_head.safetensors, the MLM head transform (:func:`head_parameter_names`) trained
    with the adapter (``train_head``), which :func:`load_adapter` puts back.
    """
    with atomic_dir(out_dir) as tmp:
        model.save_adapter(str(tmp), name, with_head=False, use_safetensors=True)
        _write_pickle_copy(tmp)
        if with_head:
            from safetensors.torch import save_file

            params = dict(model.named_parameters())
            tensors = {n: params[n].detach().cpu().contiguous() for n in head_parameter_names(model)}
            if tensors:  # a model without an MLM head transform has nothing to save
                save_file(tensors, str(tmp / HEAD_SAFETENSORS))


def load_head(model: Any, folder: Path) -> bool:
    """Put the MLM head transform saved with an adapter (lm_head.safetensors) into ``model``; False when
    the adapter has none. Refuses (ModelError) weights that do not fit the model's head."""
    path = folder / HEAD_SAFETENSORS
    if not path.is_file():
        return False
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    wanted = set(head_parameter_names(model))
    bad = [n for n, t in tensors.items() if n not in wanted or params[n].shape != t.shape]
    if bad or not tensors:
        raise ModelError(
            f"the saved MLM head does not fit this model ({bad[0] if bad else 'no tensors'})",
            hint="load it into the model it was trained on",
            path=str(path),
        )
    import torch

    with torch.no_grad():
        for n, t in tensors.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    return True


def _write_pickle_copy(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / ADAPTER_SAFETENSORS))
    torch.save(tensors, folder / ADAPTER_PICKLE)


def adapters_warnings_off() -> contextlib.AbstractContextManager[None]:
    """Silence the adapters library's warnings (its spurious "none are activated", see add_adapter)."""
    return _adapters_log_level(logging.ERROR)


# ---------------------------------------------------------------------------------------------------
# Which method made an adapter (the one rule)


def method_of_config(config: dict[str, Any]) -> str | None:
    """seq_bn / seq_bn_inv / lora from an AdapterHub adapter_config.json; None if it is something else.

    A bottleneck adapter is seq_bn only as SeqBnConfig makes it: after the FFN (``output_adapter``),
    none in the attention block (``mh_adapter``), not parallel; with an invertible adapter, seq_bn_inv.
    """
    inner = config.get("config") or {}
    architecture = inner.get("architecture")
    if architecture == "lora":
        return "lora"
    if architecture in (None, "bottleneck") and inner.get("output_adapter"):
        if inner.get("mh_adapter") or inner.get("is_parallel"):
            return None
        return "seq_bn_inv" if inner.get("inv_adapter") else "seq_bn"
    return None


def run_training_json(folder: Path) -> dict[str, Any] | None:
    """The training.json of the run an adapter/ or model/ folder belongs to (or of the folder), if any."""
    for run_dir in (folder.parent, folder) if folder.name in ("adapter", "model") else (folder,):
        path = run_dir / "training.json"
        if path.is_file():
            try:
                data = read_json(path)
            except ModelError:
                return None
            return data if isinstance(data, dict) else None
    return None


def adaptation_of(
    model_path: Path,
    adapter_dir: Path | None,
    *,
    method: str | None,
    source: str | None,
    known: tuple[str, ...],
) -> tuple[str, str | None]:
    """The (method, source) a metric record names for a model and its adapter.

    The options if given; else the train-adapter run's training.json (an adapter's run, or a ``full`` run
    whose model/ folder is the model); else what the adapter's config says (method only); else
    ("base", None) without an adapter. ``known``: the method names records allow. Refuses (UsageError)
    an adapter whose method cannot be told without ``method``, and a method not in ``known``.
    """
    run_info = None
    if adapter_dir is not None:
        run_info = run_training_json(adapter_dir)
    elif model_path.name == "model":
        info = run_training_json(model_path)
        run_info = info if info is not None and info.get("method") == "full" else None
    found_method = found_source = None
    if run_info is not None:
        found_method, found_source = run_info.get("method"), run_info.get("source")
    elif adapter_dir is not None:
        found_method = method_of_config(read_adapter_config(adapter_dir))
    else:
        found_method = "base"
    method = method or found_method
    if method is None:
        raise UsageError(
            "cannot tell which method made this adapter (it is not a train-adapter run)",
            hint=f"give --method ({', '.join(known)})",
        )
    if method not in known:
        raise UsageError(f"unknown method '{method}'", hint=f"choose one of {', '.join(known)}")
    return method, source if source is not None else found_source


def adapter_info(path: str | Path) -> dict[str, Any]:
    """What a language adapter is: a dict with path, folder, kind ("adapter" or "full"), method, source,
    lang, model (the base model it was trained on, if known), model_type, hidden_size and weights_sha256.

    ``path``: a train-adapter run (its adapter/ or, for ``full``, model/ folder), an adapter folder, or a
    hub repository holding an adapter (see :func:`resolve_adapter`).
    Method, source and language come from the run's training.json when there is one; an adapter folder
    alone gives its method from adapter_config.json and leaves source and language unknown (None).
    """
    folder = resolve_adapter(path).resolve()
    training = run_training_json(folder) or {}
    if (folder / ADAPTER_CONFIG).is_file():
        config = read_adapter_config(folder)
        kind = "adapter"
        architecture = str(config["config"].get("architecture") or "adapter")  # named, if not a method
        method = training.get("method") or method_of_config(config) or architecture
        model_type, hidden = config.get("model_type"), config.get("hidden_size")
    else:
        source = resolve_model(str(folder))
        kind, method = "full", "full"
        model_type, hidden = source.model_type, source.config.get("hidden_size")
    return {
        "path": str(path),
        "folder": str(folder),
        "kind": kind,
        "method": method,
        "source": training.get("source"),
        "lang": training.get("lang"),
        "model": training.get("model"),
        "model_revision": training.get("model_revision"),
        "model_type": model_type,
        "hidden_size": hidden,
        "weights_sha256": weights_sha256(folder),
    }


def weights_sha256(folder: str | Path) -> str:
    """sha256 of an adapter folder's adapter.safetensors (or .bin), or of a model folder's safetensors
    (one file: its sha256; shards: the sha256 of their sha256s in name order)."""
    path = Path(folder)
    for name in (ADAPTER_SAFETENSORS, ADAPTER_PICKLE):
        if (path / name).is_file():
            return file_sha256(path / name)
    shards = sorted(path.glob("*.safetensors"))
    if not shards:
        raise ModelError("no weights in the folder", hint="check the path", path=str(path))
    if len(shards) == 1:
        return file_sha256(shards[0])
    return hashlib.sha256("".join(file_sha256(f) for f in shards).encode()).hexdigest()
