"""Names the report shows, shared by its tables, text and plots: languages (the registry's name, whether a
model saw the language in pre-training and how many GB), short model names, and file-name slugs."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from lrltool.errors import LanguageError
from lrltool.languages import Language, model_family, registry, resolve_language


@cache
def language(code: str) -> Language | None:
    """The registry's language that ``code`` names, or None for a language outside the registry."""
    try:
        return resolve_language(code)
    except LanguageError:
        return None


def canonical_lang(code: str) -> str:
    """The language's FLORES code (``ro`` -> ``ron_Latn``); a code outside the registry stays as it is."""
    found = language(code)
    return found.flores if found else code


def language_label(lang: str) -> str:
    """The language's name (``Romanian``), or its code outside the registry."""
    found = language(lang)
    return found.name if found else lang


def language_name(lang: str) -> str:
    """The language's name and code (``Romanian (ron_Latn)``), or its code outside the registry."""
    found = language(lang)
    return f"{found.name} ({lang})" if found else lang


def language_group(lang: str, model: str) -> str:
    """``seen``/``unseen`` in the model's pre-training data, or ``unknown`` (model or language not known)."""
    found = language(lang)
    if model_family(model) is None or found is None or not found.paper:
        return "unknown"  # pre-training sizes are the paper's figures, for its 30 languages
    return "unseen" if found.pretraining_gb(model) is None else "seen"


def pretraining_gb(lang: str, model: str) -> float | None:
    found = language(lang)
    return None if found is None or not found.paper else found.pretraining_gb(model)


def language_rank(lang: str) -> tuple[int, str]:
    """Sort key: the registry's order (the paper's, by pre-training data size); languages outside it last."""
    order = {found.flores: i for i, found in enumerate(registry())}
    return (order.get(lang, len(order)), lang)


def short_model(model: str) -> str:
    return Path(model.rstrip("/")).name or model


def slug(text: str) -> str:
    """``text`` as a file-name stem: runs of other characters than ``A-Za-z0-9._+-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.") or "x"
