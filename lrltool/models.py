"""Load models and tokenizers; attach, freeze, save and load adapters (all adapters-library workarounds).

Models are untrusted input (DESIGN.md "Security"): :func:`resolve_model` reads and validates ``config.json``
before anything calls ``from_pretrained`` (supported ``model_type`` only; no ``auto_map``, no
``trust_remote_code``, no attention implementation that names a hub repository, CVE-2026-4372), refuses
folders without safetensors weights, and downloads hub models as config + tokenizer + ``*.safetensors``
only. :func:`load_model` uses the static HF classes with ``use_safetensors=True`` and an explicit
``attn_implementation``, then ``adapters.init``.

Adapters-library traps handled here (DESIGN.md "Models and adapters"):

- the static HF classes never apply the invertible adapter's inverse before the output embedding:
  :func:`add_adapter` / :func:`load_adapter` register a forward pre-hook that does;
- ``train_adapter`` leaves the MLM head's dense/LayerNorm trainable: :func:`add_adapter` freezes them;
- ``save_adapter(with_head=True)`` writes the tied embedding matrix: :func:`save_adapter` never does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrltool.errors import ModelError

# model_type -> static HF class for each head. Encoders are MLM models, decoders CLM models.
_HEAD_CLASSES: dict[str, dict[str, str]] = {
    "xlm-roberta": {
        "lm": "XLMRobertaForMaskedLM",
        "sequence-classification": "XLMRobertaForSequenceClassification",
        "token-classification": "XLMRobertaForTokenClassification",
        "base": "XLMRobertaModel",
    },
    "roberta": {
        "lm": "RobertaForMaskedLM",
        "sequence-classification": "RobertaForSequenceClassification",
        "token-classification": "RobertaForTokenClassification",
        "base": "RobertaModel",
    },
    "bert": {
        "lm": "BertForMaskedLM",
        "sequence-classification": "BertForSequenceClassification",
        "token-classification": "BertForTokenClassification",
        "base": "BertModel",
    },
    "llama": {
        "lm": "LlamaForCausalLM",
        "sequence-classification": "LlamaForSequenceClassification",
        "token-classification": "LlamaForTokenClassification",
        "base": "LlamaModel",
    },
}
SUPPORTED_MODEL_TYPES: frozenset[str] = frozenset(_HEAD_CLASSES)
DECODER_MODEL_TYPES: frozenset[str] = frozenset({"llama"})
HEADS: tuple[str, ...] = ("lm", "sequence-classification", "token-classification", "base")

# Adapters made for one of these can be loaded into another of the same family (same module names).
_FAMILY = {"xlm-roberta": "roberta", "roberta": "roberta", "bert": "bert", "llama": "llama"}

# Attention implementations built into transformers. Anything else (notably "org/repo", which the
# `kernels` package would download and run: CVE-2026-4372) is refused.
BUILTIN_ATTENTION: frozenset[str] = frozenset(
    {"eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"}
)
_ATTENTION_KEYS = ("_attn_implementation_internal", "_attn_implementation", "attn_implementation")
_REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code", "custom_pipelines")

# What a hub download fetches: config, tokenizer files and safetensors weights at the repository root.
# Never *.bin / *.pt / *.pth / *.ckpt (pickle) and never the repository's Python files.
HUB_MODEL_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
]
HUB_ADAPTER_FILES = [
    "adapter_config.json",
    "adapter.safetensors",
    "pytorch_adapter.bin",
]  # .bin: weights_only
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter.safetensors"
ADAPTER_PICKLE = "pytorch_adapter.bin"


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


# ---------------------------------------------------------------------------------------------------
# Resolving and validating a model


@dataclass
class ModelSource:
    """Where a model came from, with its validated config."""

    name: str
    path: Path
    revision: str | None
    config: dict[str, Any] = field(repr=False)
    model_type: str
    is_decoder: bool

    @property
    def max_positions(self) -> int:
        """The longest input in tokens the model's position embeddings allow."""
        positions = int(self.config.get("max_position_embeddings") or 512)
        if self.model_type in ("xlm-roberta", "roberta"):
            # RoBERTa positions start after the padding index: 514 embeddings hold 512 tokens.
            return positions - int(self.config.get("pad_token_id", 1)) - 1
        return positions

    @property
    def objective(self) -> str:
        return "clm" if self.is_decoder else "mlm"


def _walk(value: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every key in nested dicts/lists (sub-configs such as text_config)."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            yield path, str(key), item
            yield from _walk(item, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")


def validate_config(config: Any, *, path: str) -> dict[str, Any]:
    """Check a parsed config.json against DESIGN.md "Security"; return it or raise ModelError."""
    if not isinstance(config, dict):
        raise ModelError(
            "config.json is not a JSON object", hint="point --model at a model folder", path=path
        )
    for where, key, value in _walk(config):
        if key in _REMOTE_CODE_KEYS and value not in (None, False, {}, []):
            raise ModelError(
                f"config.json sets '{where}': the model wants to run its own code, which lrltool refuses",
                hint="use a model that transformers supports natively (no custom code)",
                path=path,
            )
        builtin = isinstance(value, str) and value in BUILTIN_ATTENTION
        if key in _ATTENTION_KEYS and value is not None and not builtin:
            shown = value if isinstance(value, str) else type(value).__name__
            what = "a hub repository" if isinstance(value, str) and "/" in value else "not a built-in one"
            raise ModelError(
                f"config.json sets '{where}' to '{shown}' ({what}), which could run downloaded code",
                hint=f"remove the key or use one of {', '.join(sorted(BUILTIN_ATTENTION))}",
                path=path,
            )
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelError(
            f"model type '{model_type}' is not supported",
            hint=f"lrltool supports {', '.join(sorted(SUPPORTED_MODEL_TYPES))}",
            path=path,
        )
    for key in ("hidden_size", "num_hidden_layers", "vocab_size"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ModelError(f"config.json has no valid '{key}'", hint="check the model folder", path=path)
    return config


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"cannot read {path.name} ({exc})", hint="check the model folder", path=str(path)
        ) from None


def _check_tokenizer_config(folder: Path) -> None:
    tok_config = folder / "tokenizer_config.json"
    if not tok_config.exists():
        return
    data = _read_json(tok_config)
    if isinstance(data, dict):
        for where, key, value in _walk(data):
            if key in _REMOTE_CODE_KEYS and value not in (None, False, {}, []):
                raise ModelError(
                    f"tokenizer_config.json sets '{where}': the tokenizer wants to run its own code",
                    hint="use a model whose tokenizer transformers supports natively",
                    path=str(tok_config),
                )


def _check_weights(folder: Path, name: str) -> None:
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise ModelError(
            f"the model has only pickle weights ({', '.join(pickles[:3])}), which can run code when loaded;"
            " lrltool loads safetensors only",
            hint="use a revision that has model.safetensors, or convert the weights with a tool you trust",
            path=str(folder),
        )
    raise ModelError(
        "the model folder has no weights (*.safetensors)",
        hint=f"check that '{name}' is a complete model folder (config.json, tokenizer, model.safetensors)",
        path=str(folder),
    )


def _inspect_folder(folder: Path, *, name: str, revision: str | None) -> ModelSource:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(
            "no config.json in the model folder",
            hint="point --model at a folder written by save_pretrained, or a hub id",
            path=str(folder),
        )
    config = validate_config(_read_json(config_path), path=str(config_path))
    _check_tokenizer_config(folder)
    _check_weights(folder, name)
    model_type = config["model_type"]
    return ModelSource(
        name=name,
        path=folder,
        revision=revision,
        config=config,
        model_type=model_type,
        is_decoder=model_type in DECODER_MODEL_TYPES,
    )


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or name.endswith("/")


def _hub_download(repo_id: str, revision: str | None, patterns: list[str], what: str) -> Path:
    """``snapshot_download`` of ``patterns`` into the HF cache; errors become one-line ModelErrors."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except LocalEntryNotFoundError:
        raise ModelError(
            f"{what} '{repo_id}' is not in the Hugging Face cache and the hub cannot be reached (offline)",
            hint=f"on a machine with internet run `hf download {repo_id}` (same HF_HOME), "
            "or unset HF_HUB_OFFLINE, or pass a local folder",
        ) from None
    except GatedRepoError:
        raise ModelError(
            f"{what} '{repo_id}' is gated on the hub",
            hint="accept its licence on huggingface.co and log in with `hf auth login`",
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(
            f"no {what} '{repo_id}' on the Hugging Face hub (and no such local folder)",
            hint="check the spelling, or pass a local folder",
        ) from None
    except RevisionNotFoundError:
        raise ModelError(
            f"{what} '{repo_id}' has no revision '{revision}'",
            hint="check --revision (a branch, tag or commit)",
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise ModelError(
            f"cannot download {what} '{repo_id}' ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            hint="check the network, or set HF_HUB_OFFLINE=1 to use the cache",
        ) from None


def _snapshot_revision(folder: Path) -> str | None:
    # snapshot_download returns <cache>/models--org--name/snapshots/<commit>
    return folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else None


def resolve_model(model: str, *, revision: str | None = None) -> ModelSource:
    """Find ``model`` (a local folder or a hub id) and validate it before anything loads it.

    Reads config.json (and tokenizer_config.json); for a hub id, downloads config.json first, validates
    it, and only then the tokenizer files and ``*.safetensors`` (never pickle files or code) into the
    HF cache (offline: the cache only). Refuses unsupported model types, remote code, attention
    implementations that are not built in, and folders without safetensors weights (ModelError).
    """
    name = str(model)
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelError(
                "--model is a file, not a model folder", hint="point it at the folder", path=name
            )
        if revision is not None:
            raise ModelError("--revision applies to hub models, not local folders", path=name)
        return _inspect_folder(local, name=name, revision=None)
    if _looks_like_path(name):
        raise ModelError("no such model folder", hint="check the path, or give a hub id", path=name)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelError(
            f"'{name}' is neither a folder nor a valid hub id", hint="check the path or the hub id"
        ) from None
    # config.json first: a hostile config is refused before a byte of weights or tokenizer is fetched.
    folder = _hub_download(name, revision, ["config.json"], "model")
    validate_config(_read_json(folder / "config.json"), path=f"{name}/config.json")
    commit = _snapshot_revision(folder) or revision  # the rest from the same commit, even if a branch moves
    folder = _hub_download(name, commit, HUB_MODEL_FILES, "model")
    return _inspect_folder(folder, name=name, revision=_snapshot_revision(folder) or commit)


# ---------------------------------------------------------------------------------------------------
# Loading


def load_tokenizer(source: ModelSource) -> Any:
    """The model's fast tokenizer (never remote code); decoders without a pad token pad with EOS."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(source.path), use_fast=True, trust_remote_code=False, local_files_only=True
        )
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(
            f"cannot load the tokenizer ({str(exc).splitlines()[0]})",
            hint="the folder needs tokenizer.json (or the files of a supported tokenizer)",
            path=str(source.path),
        ) from None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise ModelError(
            "the model has no fast tokenizer",
            hint="add a tokenizer.json to the folder",
            path=str(source.path),
        )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _model_class(source: ModelSource, head: str) -> Any:
    import transformers

    if head not in HEADS:
        raise ModelError(f"unknown head '{head}'", hint=f"choose one of {', '.join(HEADS)}")
    return getattr(transformers, _HEAD_CLASSES[source.model_type][head])


def load_model(
    source: ModelSource,
    *,
    head: str = "lm",
    device: Any = None,
    dtype: Any = None,
    attn_implementation: str | None = None,
    **head_kwargs: Any,
) -> Any:
    """The model of ``source`` with ``head`` ("lm": MLM for encoders, CLM for decoders), adapters-enabled.

    Static HF classes, ``use_safetensors=True``, an explicit built-in attention implementation
    (sdpa where the class supports it), ``adapters.init`` applied, eval mode. ``head_kwargs`` go to
    ``from_pretrained`` (e.g. ``num_labels``, ``id2label`` for classification heads).
    """
    import adapters

    cls = _model_class(source, head)
    attn = attn_implementation or ("sdpa" if getattr(cls, "_supports_sdpa", False) else "eager")
    if attn not in BUILTIN_ATTENTION:
        raise ModelError(f"attention implementation '{attn}' is not a built-in one")
    kwargs: dict[str, Any] = dict(head_kwargs)
    if dtype is not None:
        kwargs["dtype"] = dtype
    if source.is_decoder and head == "sequence-classification" and source.config.get("pad_token_id") is None:
        eos = source.config.get("eos_token_id")
        kwargs.setdefault("pad_token_id", eos[0] if isinstance(eos, list) else eos)  # pad = EOS
    try:
        model = cls.from_pretrained(
            str(source.path),
            attn_implementation=attn,
            use_safetensors=True,
            local_files_only=True,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the model ({str(exc).splitlines()[0]})",
            hint="check the model folder",
            path=str(source.path),
        ) from None
    if model.config._attn_implementation not in BUILTIN_ATTENTION:  # defence in depth
        raise ModelError(f"refusing attention implementation '{model.config._attn_implementation}'")
    adapters.init(model)
    model.eval()
    if device is not None:
        model.to(device)
    return model


# ---------------------------------------------------------------------------------------------------
# Adapters

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


_LM_HEAD_ATTRIBUTE = {"xlm-roberta": "lm_head", "roberta": "lm_head", "bert": "cls", "llama": "lm_head"}


def lm_head(model: Any) -> Any:
    """The module that maps final hidden states to vocabulary logits (transform, output embedding, bias).

    ``lm_head(model)(hidden[selected])`` gives the logits of selected positions only: the MLM/CLM loss
    and pseudo-log-likelihoods never need batch x length x vocabulary logits.
    """
    attribute = _LM_HEAD_ATTRIBUTE.get(model.config.model_type)
    module = getattr(model, attribute, None) if attribute else None
    if module is None:
        raise ModelError(
            f"no language-model head on this {model.config.model_type} model (load it with head='lm')"
        )
    return module


def trainable_parameters(model: Any) -> int:
    """The number of parameters that will train (requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
    never run (DESIGN.md). The hook is a no-op while no invertible adapter is active.
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
) -> int:
    """Add adapter ``name`` of ``method``, activate it, and freeze everything else; return trainable count.

    Only the adapter's weights train: every base weight and the MLM head (dense, LayerNorm, decoder,
    bias) are frozen, which ``train_adapter`` alone does not do. ``full``: nothing is added and every
    weight trains. The model's train/eval mode is left as it was.
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
    for param_name, param in model.named_parameters():
        param.requires_grad = is_adapter_parameter(param_name, name)
    if spec.invertible:
        ensure_inverse_hook(model)
    model.train(was_training)
    count = trainable_parameters(model)
    if count == 0:
        raise ModelError(f"adapter '{name}' added no trainable weights to this model")
    return count


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
    if local.exists() or _looks_like_path(name):
        return find_adapter_dir(local)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelError(f"'{name}' is neither a folder nor a valid hub id", hint="check the path") from None
    return find_adapter_dir(_hub_download(name, revision, HUB_ADAPTER_FILES, "adapter"))


def read_adapter_config(folder: Path) -> dict[str, Any]:
    data = _read_json(folder / ADAPTER_CONFIG)
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
    if saved_type is not None and _FAMILY.get(saved_type, saved_type) != _FAMILY.get(model_type, model_type):
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


def save_adapter(model: Any, name: str, out_dir: str | Path) -> None:
    """Write adapter ``name`` to ``out_dir`` (created or replaced atomically), without any head.

    The folder holds adapter_config.json, adapter.safetensors (what lrltool reads) and
    pytorch_adapter.bin (the same tensors; what plain ``model.load_adapter(dir)`` of adapters 1.3.0 reads,
    with ``torch.load(weights_only=True)``). No embedding matrix: a few MB for a base-size model.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_adapter(str(tmp), name, with_head=False, use_safetensors=True)
        _write_pickle_copy(tmp)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_pickle_copy(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(folder / ADAPTER_SAFETENSORS))
    torch.save(tensors, folder / ADAPTER_PICKLE)


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``, replacing an old one only once the new one is complete."""
    os.chmod(tmp, 0o755)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


# ---------------------------------------------------------------------------------------------------
# Task models (finetune, eval --task tc|sa|ner): classification heads, task adapters, fusion

TASK_HEADS: tuple[str, ...] = ("sequence-classification", "token-classification")
HEAD_CONFIG = "head_config.json"
HEAD_SAFETENSORS = "model_head.safetensors"
HEAD_PICKLE = "pytorch_model_head.bin"
FUSION_CONFIG = "adapter_fusion_config.json"
FUSION_SAFETENSORS = "model_adapter_fusion.safetensors"
FUSION_PICKLE = "pytorch_model_adapter_fusion.bin"


def checkpoint_parameter_names(source: ModelSource) -> set[str]:
    """Names of the tensors stored in the model folder's safetensors weights (read from headers only)."""
    from safetensors import safe_open

    names: set[str] = set()
    for file in sorted(source.path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            names.update(handle.keys())
    return names


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


def adapters_warnings_off() -> contextlib.AbstractContextManager[None]:
    """Silence the adapters library's warnings (its spurious "none are activated", see add_adapter)."""
    return _adapters_log_level(logging.ERROR)


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

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_adapter(str(tmp), name, with_head=True, use_safetensors=True)
        _write_pickle_copy(tmp)
        params = dict(model.named_parameters())
        head = {key: params[key].detach().cpu().contiguous().clone() for key in head_names}
        save_file(head, str(tmp / HEAD_SAFETENSORS))
        torch.save(head, tmp / HEAD_PICKLE)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    saved_class = _read_json(head_config).get("model_class")
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

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_adapter_fusion(str(tmp), ",".join(adapter_names), use_safetensors=True)
        torch.save(load_file(str(tmp / FUSION_SAFETENSORS)), tmp / FUSION_PICKLE)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_fusion(model: Any, path: str | Path, adapter_names: Sequence[str]) -> None:
    """Load a fusion layer written by :func:`save_fusion` over the (already loaded) ``adapter_names``."""
    folder = Path(path)
    if not (folder / FUSION_CONFIG).is_file() or not (folder / FUSION_SAFETENSORS).is_file():
        raise ModelError("no fusion layer in the folder", hint="train it again", path=str(folder))
    saved = _read_json(folder / FUSION_CONFIG).get("adapter_names")
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _method_from_adapter_config(config: dict[str, Any]) -> str:
    inner = config.get("config") or {}
    architecture = inner.get("architecture")
    if architecture == "lora":
        return "lora"
    if architecture in (None, "bottleneck") and "reduction_factor" in inner:
        return "seq_bn_inv" if inner.get("inv_adapter") else "seq_bn"
    return str(architecture or "adapter")


def adapter_info(path: str | Path) -> dict[str, Any]:
    """What a language adapter is: a dict with path, folder, kind ("adapter" or "full"), method, source,
    lang, model (the base model it was trained on, if known), model_type, hidden_size and weights_sha256.

    ``path``: a train-adapter run (its adapter/ or, for ``full``, model/ folder), an adapter folder, or a
    hub repository holding an adapter (see :func:`resolve_adapter`).
    Method, source and language come from the run's training.json when there is one; an adapter folder
    alone gives its method from adapter_config.json and leaves source and language unknown (None).
    """
    folder = resolve_adapter(path).resolve()
    run_dir = folder.parent if folder.name in ("adapter", "model") else folder
    training: dict[str, Any] = {}
    if (run_dir / "training.json").is_file():
        data = _read_json(run_dir / "training.json")
        training = data if isinstance(data, dict) else {}
    if (folder / ADAPTER_CONFIG).is_file():
        config = read_adapter_config(folder)
        kind = "adapter"
        method = training.get("method") or _method_from_adapter_config(config)
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
