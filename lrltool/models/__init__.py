"""Models and adapters: the only code that talks to transformers' and the adapters library's loaders.

- :mod:`lrltool.models.loading`: find a model (folder or hub id), validate its config (models are
  untrusted input), load its tokenizer and the model with a head;
- :mod:`lrltool.models.adapters`: language adapters: the methods, add, save, load, and which method made
  an adapter (one rule);
- :mod:`lrltool.models.heads`: task heads, task adapters and fusion layers (finetune, eval).

The names below are the package's public API; the modules import each other directly, never this file.
"""

from lrltool.models.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_METHODS,
    ADAPTER_PICKLE,
    ADAPTER_SAFETENSORS,
    AdapterMethod,
    adaptation_of,
    adapter_info,
    adapter_method,
    adapters_warnings_off,
    add_adapter,
    ensure_inverse_hook,
    find_adapter_dir,
    is_adapter_parameter,
    load_adapter,
    method_of_config,
    read_adapter_config,
    resolve_adapter,
    save_adapter,
    weights_sha256,
)
from lrltool.models.heads import (
    TASK_HEADS,
    adapter_parameter_names,
    add_task_adapter,
    fusion_parameter_names,
    load_fusion,
    load_task_adapter,
    load_task_model,
    save_fusion,
    save_task_adapter,
    set_trainable,
)
from lrltool.models.loading import (
    BUILTIN_ATTENTION,
    DECODER_MODEL_TYPES,
    HEADS,
    SUPPORTED_MODEL_TYPES,
    ModelSource,
    checkpoint_parameter_names,
    lm_head,
    load_model,
    load_tokenizer,
    resolve_model,
    trainable_parameters,
    validate_config,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_METHODS",
    "ADAPTER_PICKLE",
    "ADAPTER_SAFETENSORS",
    "BUILTIN_ATTENTION",
    "DECODER_MODEL_TYPES",
    "HEADS",
    "SUPPORTED_MODEL_TYPES",
    "TASK_HEADS",
    "AdapterMethod",
    "ModelSource",
    "adaptation_of",
    "adapter_info",
    "adapter_method",
    "adapter_parameter_names",
    "adapters_warnings_off",
    "add_adapter",
    "add_task_adapter",
    "checkpoint_parameter_names",
    "ensure_inverse_hook",
    "find_adapter_dir",
    "fusion_parameter_names",
    "is_adapter_parameter",
    "lm_head",
    "load_adapter",
    "load_fusion",
    "load_model",
    "load_task_adapter",
    "load_task_model",
    "load_tokenizer",
    "method_of_config",
    "read_adapter_config",
    "resolve_adapter",
    "resolve_model",
    "save_adapter",
    "save_fusion",
    "save_task_adapter",
    "set_trainable",
    "trainable_parameters",
    "validate_config",
    "weights_sha256",
]
