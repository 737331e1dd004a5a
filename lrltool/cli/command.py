"""The command class of every lrltool command: what users of the HF scripts expect from a command line.

- ``--config FILE`` (JSON or YAML; keys are option names without dashes, ``-`` and ``_`` alike): the file's
  values become the command's defaults and the command line overrides them, as ``HfArgumentParser`` does;
- the HF example scripts' spellings (``--learning_rate``, ``--per_device_train_batch_size``,
  ``--model_name_or_path``, ...) and the old option names are hidden aliases of the options;
- help: options grouped in panels (data, model, adapter, optimisation, run folder, output), flags shown as
  flags, every default in one style, and examples at the end (the command's ``epilog``).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from typer.core import TyperCommand

from lrltool.errors import InputError, UsageError

#: Hidden aliases: the HF example scripts' spellings and old lrltool names -> the option (and a value).
ALIASES: dict[str, tuple[str, ...]] = {
    "--learning_rate": ("--lr",),
    "--learning-rate": ("--lr",),
    "--per_device_train_batch_size": ("--batch-size",),
    "--per_device_eval_batch_size": ("--batch-size",),
    "--train_batch_size": ("--batch-size",),
    "--model_name_or_path": ("--model",),
    "--train_file": ("--train",),
    "--validation_file": ("--validation",),
    "--output_dir": ("--output",),
    "--num_train_epochs": ("--epochs",),
    "--gradient_accumulation_steps": ("--grad-accum",),
    "--max_seq_length": ("--max-length",),
    "--max-seq-length": ("--max-length",),  # train-adapter before 0.2
    "--bf16": ("--precision", "bf16"),
    "--fp16": ("--precision", "fp16"),
}

#: Help panels of the training and evaluation commands, by option (parameter) name.
PANELS: dict[str, str] = {
    **dict.fromkeys(
        ("train", "validation", "validation_fraction", "max_validation_records", "data", "input_path",
         "task", "lang", "skip_bad_lines", "input_format", "cache_dir", "no_cache", "split", "prompt",
         "shots", "template", "score"),
        "Data",
    ),
    **dict.fromkeys(
        ("model", "revision", "objective", "adapter", "lang_adapter", "fusion", "run", "dtype", "variant",
         "paper_compat", "method", "source"),
        "Model",
    ),
    **dict.fromkeys(
        ("task_method", "reduction_factor", "lora_r", "lora_alpha", "adapter_name", "label_all_subwords",
         "task_head"),
        "Adapter",
    ),
    **dict.fromkeys(
        ("preset", "max_steps", "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_ratio",
         "max_seq_length", "max_length", "mlm_probability", "whole_word_mask", "line_by_line", "eval_steps",
         "eval_every_epoch", "patience", "select_by", "seed", "seeds", "batch_tokens"),
        "Optimisation",
    ),
    **dict.fromkeys(("resume", "force", "config"), "Run folder"),
    **dict.fromkeys(
        ("output", "device", "precision", "report_to", "log_steps", "quiet", "stats", "per_sentence",
         "token_logprobs", "predictions"),
        "Output and hardware",
    ),
}  # fmt: skip
PANELLED = ("train-adapter", "finetune", "eval")
PANEL_ORDER = ("Data", "Model", "Adapter", "Optimisation", "Run folder", "Output and hardware")


def _normal(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_")


def read_config(path: str) -> dict[str, Any]:
    """The settings of a ``--config`` file (JSON, or YAML by a .yaml/.yml name); InputError if unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such config file", hint="check the path of --config", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the config file ({exc})", path=path) from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except (ValueError, Exception) as exc:  # json.JSONDecodeError, yaml.YAMLError
        line = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise InputError(
            "the config file is not valid " + ("YAML" if p.suffix.lower() in (".yaml", ".yml") else "JSON"),
            hint="keys are option names (lr: 1e-4, batch-size: 32)",
            path=f"{path}:{line}" if line else path,
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError("the config file must hold one mapping of option names to values", path=path)
    return values


class LrlCommand(TyperCommand):
    """See the module docstring."""

    def invoke(self, ctx: Any) -> Any:
        from lrltool import streams

        streams.input_format = None  # each command starts from reading by file name (set_input_format)
        return super().invoke(ctx)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if param.param_type_name == "option":
                if param.is_flag:
                    param.metavar = ""  # a flag takes no value: no <bool> placeholder
                if param.help and "[default:" in param.help and "\\[default:" not in param.help:
                    param.help = param.help.replace("[default:", "\\[default:")  # not rich markup
                if self.name in PANELLED and param.name in PANELS:
                    param.rich_help_panel = PANELS[param.name]
        if self.name in PANELLED:  # the panels in a fixed order, the options within each as declared
            params.sort(key=lambda p: PANEL_ORDER.index(PANELS[p.name]) if p.name in PANELS else -1)
        return params

    def _options(self) -> dict[str, Any]:
        return {opt: p for p in self.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}

    def translate(self, args: list[str]) -> list[str]:
        """``args`` with the hidden aliases replaced by the options they stand for."""
        known = self._options()
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                return out + args[i:]
            name, eq, value = arg.partition("=")
            if not name.startswith("--") or name in known:
                out.append(arg)
                continue
            target = ALIASES.get(name) or ("--" + name[2:].replace("_", "-"),)
            if target[0] in known:
                out += [*target[:-1], target[-1] + eq + value] if eq else list(target)
            else:
                out.append(arg)
        return out

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = self.translate(list(args))
        config = _config_path(args)
        if config is not None and "config" in {p.name for p in self.params}:
            ctx.default_map = {**(ctx.default_map or {}), **self.config_defaults(config)}
        return super().parse_args(ctx, args)

    def config_defaults(self, path: str) -> dict[str, Any]:
        """The ``--config`` file's values by parameter name; UsageError for a key that is no option."""
        params = {p.name: p for p in self.params if p.name and p.name != "config"}
        by_option = {_normal(opt): p.name for p in self.params for opt in p.opts if opt.startswith("--")}
        aliases = {_normal(k): _normal(v[0]) for k, v in ALIASES.items() if len(v) == 1}
        values: dict[str, Any] = {}
        for key, value in read_config(path).items():
            name = _normal(str(key))
            name = by_option.get(name) or by_option.get(aliases.get(name, ""), name)
            if name not in params:
                names = {**{k: k for k in by_option}, **{k: v for k, v in aliases.items() if v in by_option}}
                close = difflib.get_close_matches(name, list(names), n=1)
                hint = (
                    f"did you mean '{names[close[0]].replace('_', '-')}'?"
                    if close
                    else f"see 'lrltool {self.name} --help'"
                )
                raise UsageError(f"{path}: '{key}' is not an option of {self.name}", hint=hint)
            param = params[name]
            if getattr(param, "multiple", False) and not isinstance(value, list):
                value = [value]
            values[name] = value
        return values


def _config_path(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--":
            return None
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None
