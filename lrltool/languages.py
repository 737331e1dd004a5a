"""The language registry: the 30 languages of the paper and the code each data source uses.

``resolve_language`` maps any of ``ron``, ``ro``, ``ron_Latn``, ``ron-Latn``, ``Romanian`` (any case) to
the same :class:`Language`. A language outside the table works when the caller gives the per-source
codes explicitly (``custom_language``).
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import asdict, dataclass, field
from importlib import resources

from lrltool.errors import LanguageError

#: The code each data source uses, by source name (``Language.code_for``).
SOURCE_FIELDS = {
    "conceptnet": "conceptnet",
    "glotcc": "glotcc",
    "flores": "flores",
    "sib200": "flores",
    "wikiann": "wikiann",
    "sentiment": "sentiment",
}

# ISO 639-3 individual codes in the table vs the macrolanguage codes users also type.
_MACRO_ALIASES = {
    "lav": "lvs",
    "msa": "zsm",
    "may": "zsm",
    "aze": "azj",
    "nep": "npi",
    "swa": "swh",
    "uzb": "uzn",
    "kur": "ckb",
}


@dataclass(frozen=True)
class Language:
    """One language and its codes: FLORES/SIB ``ron_Latn``, GlotCC ``ron-Latn``, ConceptNet ``ro``, ..."""

    name: str
    flores: str
    glotcc: str
    iso1: str
    wikiann: str
    sentiment: str
    mbert_gb: float | None = None
    xlmr_gb: float | None = None
    cn_sents: int | None = None
    glot_lines: int | None = None
    in_registry: bool = True
    conceptnet_code: str | None = field(default=None, compare=False)

    @property
    def iso3(self) -> str:
        return self.flores.split("_")[0]

    @property
    def script(self) -> str:
        return self.flores.split("_")[1] if "_" in self.flores else ""

    @property
    def conceptnet(self) -> str:
        # ConceptNet 5.7 uses the ISO 639-1 code where one exists (Indonesian was merged into 'ms').
        return self.conceptnet_code or self.iso1

    def code_for(self, source: str) -> str:
        return getattr(self, SOURCE_FIELDS[source])

    def pretraining_gb(self, model: str) -> float | None:
        """GB of this language in the model's pre-training data (None: not in it), by model family."""
        family = model_family(model)
        if family == "mbert":
            return self.mbert_gb
        if family == "xlmr":
            return self.xlmr_gb
        return None

    def as_record(self) -> dict[str, object]:
        record = asdict(self)
        record.pop("conceptnet_code")
        record["iso3"] = self.iso3
        record["conceptnet"] = self.conceptnet
        return record


def model_family(model: str) -> str | None:
    """``mbert`` or ``xlmr`` when ``model`` (a hub id or a folder) is one of those pre-trained models.

    Decided by the last path component (``FacebookAI/xlm-roberta-base``, ``/models/xlm-roberta-large``,
    ``bert-base-multilingual-cased``), never by a substring elsewhere: a tiny or retrained model named
    ``tiny-xlmr`` has not seen XLM-R's pre-training data. None: unknown pre-training data.
    """
    name = model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()
    if name.startswith(("xlm-roberta-", "xlm_roberta_")):
        return "xlmr"
    if name.startswith("bert-base-multilingual") or name == "mbert":
        return "mbert"
    return None


def _number(text: str, kind: type) -> float | int | None:
    return None if text.strip() in {"-", ""} else kind(text)


@functools.cache
def registry() -> tuple[Language, ...]:
    """The languages of ``data/languages.tsv``, in its order."""
    text = resources.files("lrltool.data").joinpath("languages.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    header, body = rows[0], rows[1:]
    langs = []
    for row in body:
        r = dict(zip(header, row, strict=True))
        langs.append(
            Language(
                name=r["name"],
                flores=r["flores"],
                glotcc=r["glotcc"],
                iso1=r["iso1"],
                wikiann=r["wikiann"],
                sentiment=r["sentiment"],
                mbert_gb=_number(r["mbert_gb"], float),
                xlmr_gb=_number(r["xlmr_gb"], float),
                cn_sents=_number(r["cn_sents"], int),
                glot_lines=_number(r["glot_lines"], int),
            )
        )
    return tuple(langs)


def _norm(code: str) -> str:
    return code.strip().casefold().replace("-", "_")


@functools.cache
def _index() -> dict[str, Language]:
    index: dict[str, Language] = {}
    for lang in registry():
        for key in (lang.name, lang.flores, lang.glotcc, lang.iso1, lang.iso3, lang.wikiann, lang.sentiment):
            index.setdefault(_norm(key), lang)
        # "Kurdish (Sorani)" is also typed as "Kurdish" or "Sorani".
        if "(" in lang.name:
            outer, inner = lang.name.rstrip(")").split(" (", 1)
            index.setdefault(_norm(outer), lang)
            index.setdefault(_norm(inner), lang)
    for alias, target in _MACRO_ALIASES.items():
        index.setdefault(_norm(alias), index[_norm(target)])
    return index


def resolve_language(code: str) -> Language:
    """The registry language that ``code`` names (ISO 639-1/3, FLORES, GlotCC code or English name)."""
    key = _norm(code)
    if not key:
        raise LanguageError("empty language code", hint="give a code such as ron, ro or ron_Latn")
    index = _index()
    if key in index:
        return index[key]
    if "_" in key and key.split("_")[0] in index:
        base = index[key.split("_")[0]]
        raise LanguageError(
            f"unknown language '{code}' (did you mean {base.flores}? the script part differs)",
            hint="run 'lrltool languages' for the known codes",
        )
    suggestions = difflib.get_close_matches(key, list(index), n=4, cutoff=0.6)
    names = sorted({index[s].flores for s in suggestions})
    hint = "run 'lrltool languages' for the known codes, or give each source's code as an option"
    did_you_mean = f" (did you mean {', '.join(names)}?)" if names else ""
    raise LanguageError(f"unknown language '{code}'{did_you_mean}", hint=hint)


def custom_language(
    code: str,
    *,
    flores: str | None = None,
    glotcc: str | None = None,
    iso1: str | None = None,
    wikiann: str | None = None,
    sentiment: str | None = None,
    conceptnet: str | None = None,
) -> Language:
    """Resolve ``code``; per-source codes given here override the registry's, or define a new language.

    A language outside the registry needs the code of each source it is used with; a source whose
    code is missing raises when asked (``Language.code_for``).
    """
    overrides = {
        "flores": flores,
        "glotcc": glotcc,
        "iso1": iso1,
        "wikiann": wikiann,
        "sentiment": sentiment,
    }
    given = {k: v for k, v in overrides.items() if v}
    try:
        base = resolve_language(code)
    except LanguageError:
        if not given and not conceptnet:
            raise
        flores_code = given.get("flores") or code.replace("-", "_")
        return Language(
            name=code,
            flores=flores_code,
            glotcc=given.get("glotcc") or flores_code.replace("_", "-"),
            iso1=given.get("iso1") or conceptnet or code,
            wikiann=given.get("wikiann") or given.get("iso1") or conceptnet or code,
            sentiment=given.get("sentiment") or "",
            in_registry=False,
            conceptnet_code=conceptnet,
        )
    from dataclasses import replace

    return replace(base, **given, conceptnet_code=conceptnet or base.conceptnet_code)
