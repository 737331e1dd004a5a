"""Find, validate and load models and tokenizers: models are untrusted input.

:func:`resolve_model` reads and validates ``config.json`` before anything calls ``from_pretrained``
(supported ``model_type`` only; no ``auto_map``, no ``trust_remote_code``, no attention implementation
that names a hub repository, CVE-2026-4372; docs/design.md "Security"), refuses folders without
safetensors weights, and downloads hub models as config + tokenizer + ``*.safetensors`` only.
:func:`load_model` uses the static HF classes with ``use_safetensors=True`` and an explicit
``attn_implementation``, then ``adapters.init``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrltool import startup
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
MODEL_FAMILY = {"xlm-roberta": "roberta", "roberta": "roberta", "bert": "bert", "llama": "llama"}

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
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


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
        return max_positions(self.model_type, self.config)

    @property
    def objective(self) -> str:
        return "clm" if self.is_decoder else "mlm"


def max_positions(model_type: str, config: dict[str, Any]) -> int:
    """The longest input in tokens that a model's position embeddings allow (its config.json values)."""
    positions = int(config.get("max_position_embeddings") or 512)
    if model_type in ("xlm-roberta", "roberta"):
        # RoBERTa positions start after the padding index: 514 embeddings hold 512 tokens.
        pad = config.get("pad_token_id")
        return positions - int(1 if pad is None else pad) - 1
    return positions


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
    """Check a parsed config.json (docs/design.md "Security"); return it or raise ModelError."""
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


def read_json(path: Path) -> Any:
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
    data = read_json(tok_config)
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
    config = validate_config(read_json(config_path), path=str(config_path))
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


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or name.endswith("/")


def hub_download(repo_id: str, revision: str | None, patterns: list[str], what: str) -> Path:
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
    if looks_like_path(name):
        raise ModelError("no such model folder", hint="check the path, or give a hub id", path=name)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelError(
            f"'{name}' is neither a folder nor a valid hub id", hint="check the path or the hub id"
        ) from None
    # config.json first: a hostile config is refused before a byte of weights or tokenizer is fetched.
    folder = hub_download(name, revision, ["config.json"], "model")
    validate_config(read_json(folder / "config.json"), path=f"{name}/config.json")
    commit = _snapshot_revision(folder) or revision  # the rest from the same commit, even if a branch moves
    folder = hub_download(name, commit, HUB_MODEL_FILES, "model")
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
    startup.end()  # the imports are done (lrltool.startup)
    return model


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


def place(model: Any, *, device: Any = None, dtype: Any = None) -> Any:
    """Move every parameter and buffer of ``model`` to ``device`` and ``dtype`` (None: leave as is).

    Call it once every adapter is added: the adapters library creates bottleneck and invertible modules on
    the CPU in float32 whatever the model's device and dtype (only LoRA follows the model).
    """
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model


def trainable_parameters(model: Any) -> int:
    """The number of parameters that will train (requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def checkpoint_parameter_names(source: ModelSource) -> set[str]:
    """Names of the tensors stored in the model folder's safetensors weights (read from headers only)."""
    from safetensors import safe_open

    names: set[str] = set()
    for file in sorted(source.path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            names.update(handle.keys())
    return names


# ---------------------------------------------------------------------------------------------------
# Which model a run used


def default_cache_dir() -> Path:
    """lrltool's cache: $LRLTOOL_CACHE, else $HF_HOME/lrltool (tokenized data, weights hashes)."""
    import os

    if os.environ.get("LRLTOOL_CACHE"):
        return Path(os.environ["LRLTOOL_CACHE"])
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "lrltool"


def model_location(source: ModelSource) -> str:
    """What a run records to load the same model again from any folder: a local model's absolute path, a
    hub model's id (its revision is recorded beside it)."""
    return source.name if source.revision is not None else str(source.path.expanduser().resolve())


def model_fingerprint(source: ModelSource, *, cache_dir: Path | None = None) -> str:
    """``sha256:`` of the model's weights: the sha256 of each ``*.safetensors`` file, with its name, hashed.

    Each file is read once: its sha256 is cached under (real path, inode, size, mtime) in the lrltool cache
    (weights-hashes.json), so a multi-GB model is hashed on its first run only; a copied or rewritten file
    has another mtime and is hashed again (never a stale hash). A hub snapshot's files link to blobs named
    by their sha256, which is used as is.
    """
    import hashlib

    digest = hashlib.sha256()
    files = sorted(source.path.glob("*.safetensors"))
    cache_file = (cache_dir if cache_dir is not None else default_cache_dir()) / "weights-hashes.json"
    cache = _read_hash_cache(cache_file)
    changed = False
    for file in files:
        real = file.resolve()
        if real.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{64}", real.name):
            file_hash = real.name  # the hub cache names LFS blobs by their sha256
        else:
            stat = real.stat()
            key = f"{real}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}"
            file_hash = cache.get(key)
            if file_hash is None:
                file_hash = cache[key] = _sha256_file(real)
                changed = True
        digest.update(f"{file.name}\0{file_hash}\n".encode())
    if changed:
        _write_hash_cache(cache_file, cache)
    return f"sha256:{digest.hexdigest()}"


def _sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _read_hash_cache(path: Path) -> dict[str, str]:
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: hash again
    return {k: v for k, v in cache.items() if isinstance(v, str)} if isinstance(cache, dict) else {}


def _write_hash_cache(path: Path, cache: dict[str, str]) -> None:
    import contextlib

    from lrltool.errors import OutputError
    from lrltool.streams import write_json

    with contextlib.suppress(OSError, OutputError):  # an unwritable cache costs time, not correctness
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, dict(list(cache.items())[-1000:]))
