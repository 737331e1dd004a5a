"""Names the report shows, shared by its tables, text and plots: languages (the registry's name, whether a
model saw the language in pre-training and how many GB), short model names, file-name slugs, and any text of
the records as it can be shown (``plain``)."""

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


# C0 and C1 controls (ESC starts terminal escape sequences), DEL, line and paragraph separators, and the
# bidi embeddings, overrides and isolates that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def plain(text: object, *, lines: bool = False) -> str:
    """``text`` with its control characters shown as ``\\xNN`` / ``\\uNNNN`` (terminal-safe, one line);
    with ``lines``, its line breaks stay (a plot's text of several lines)."""
    if lines:
        return "\n".join(_CONTROL.sub(_visible, line) for line in str(text).split("\n"))
    return _CONTROL.sub(_visible, str(text))


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
