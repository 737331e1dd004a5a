"""The language registry: any language a source publishes, and the code each data source uses for it.

``resolve_language`` maps an ISO 639-1, 639-2 or 639-3 code, a FLORES/GlotCC code with script (``fra_Latn``,
``uzn-Cyrl``) or an English name (any case) to one :class:`Language` with each source's code, or None where
the source does not have the language:

- the paper's 30 languages (``data/languages.tsv``) first, exactly as the paper used them: their codes,
  names, pre-training sizes and sentence counts are facts of the paper and override the rules below;
- otherwise by rule, with the ISO 639 tables, English names, macrolanguages and likely scripts of
  ``langcodes`` (the library ConceptNet itself uses) and the sources' own lists (package data, see
  ``data/README.md``): FLORES-200 / SIB-200 ``xxx_Scrp`` when listed; GlotCC ``xxx-Scrp`` by its naming rule
  (it publishes no list: a missing folder is reported when downloading); ConceptNet and WikiANN by their
  code (639-1 where one exists, else 639-3; the macrolanguage's code where CLDR or the sources treat the
  language as the macrolanguage's main one), after ConceptNet's merges (``ckb``->``ku``, ``hr``->``sh``, ...)
  and for the language's usual script only (they mark no script); sentiment only for the paper's datasets.

Ambiguity is an error listing the choices (:class:`LanguageError`, exit 2): a macrolanguage whose
individual languages the sources have several of (``msa``, ``ara``, ``kur``, ``zho``), a language the
sources have in several scripts (``kas``: ``kas_Arab``, ``kas_Deva``). The paper's own two-letter codes
(``ku``, ``ms``, ``lv``, ...) keep naming the language the paper meant by them.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

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
#: How messages and tables name each source.
SOURCE_TITLES = {
    "flores": "FLORES-200",
    "sib200": "SIB-200",
    "glotcc": "GlotCC-V1",
    "conceptnet": "ConceptNet",
    "wikiann": "WikiANN",
    "sentiment": "the paper's sentiment data sets",
}


@dataclass(frozen=True)
class Language:
    """One language and each source's code for it (None: the source does not have it)."""

    name: str
    code: str  # canonical: ISO 639-3 + "_" + script (the FLORES code where FLORES has the language)
    flores: str | None  # FLORES-200 and SIB-200
    glotcc: str | None  # by GlotCC's naming rule; whether the folder exists is known only when downloading
    conceptnet: str | None
    wikiann: str | None
    sentiment: str | None = None
    iso1: str | None = None
    mbert_gb: float | None = None
    xlmr_gb: float | None = None
    cn_sents: int | None = None
    glot_lines: int | None = None
    paper: bool = False  # one of the paper's 30 languages (data/languages.tsv)
    overridden: tuple[str, ...] = field(default=(), compare=False)  # sources whose code --code gave

    @property
    def iso3(self) -> str:
        return self.code.split("_")[0]

    @property
    def script(self) -> str:
        return self.code.split("_")[1] if "_" in self.code else ""

    def code_for(self, source: str) -> str | None:
        return getattr(self, SOURCE_FIELDS[source])

    def sources(self) -> list[str]:
        """The sources that have this language, in SOURCE_FIELDS order."""
        return [source for source in SOURCE_FIELDS if self.code_for(source)]

    def pretraining_gb(self, model: str) -> float | None:
        """GB of this language in the model's pre-training data (None: not in it, or not known), by family."""
        family = model_family(model)
        if family == "mbert":
            return self.mbert_gb
        if family == "xlmr":
            return self.xlmr_gb
        return None

    def as_record(self) -> dict[str, object]:
        """What ``lrltool languages --json`` prints: each source's code (null: missing), the paper's facts."""
        return {
            "name": self.name,
            "code": self.code,
            "paper": self.paper,
            "flores": self.flores,
            "sib200": self.flores,
            "glotcc": self.glotcc,
            "conceptnet": self.conceptnet,
            "wikiann": self.wikiann,
            "sentiment": self.sentiment,
            "sources": self.sources(),
            "iso1": self.iso1,
            "iso3": self.iso3,
            "script": self.script or None,
            "mbert_gb": self.mbert_gb,
            "xlmr_gb": self.xlmr_gb,
            "cn_sents": self.cn_sents,
            "glot_lines": self.glot_lines,
        }


#: The fields of ``Language.as_record`` (``lrltool languages --field``).
RECORD_FIELDS = (
    "name",
    "code",
    "paper",
    "flores",
    "sib200",
    "glotcc",
    "conceptnet",
    "wikiann",
    "sentiment",
    "sources",
    "iso1",
    "iso3",
    "script",
    "mbert_gb",
    "xlmr_gb",
    "cn_sents",
    "glot_lines",
)


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


# ---------------------------------------------------------------------------------------------------
# Package data: the paper's table and the sources' lists


def _number(text: str, kind: type) -> float | int | None:
    return None if text.strip() in {"-", ""} else kind(text)


def _data_rows(name: str) -> list[list[str]]:
    text = resources.files("lrltool.data").joinpath(name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]


@functools.cache
def registry() -> tuple[Language, ...]:
    """The paper's 30 languages of ``data/languages.tsv``, in its order."""
    rows = _data_rows("languages.tsv")
    header, body = rows[0], rows[1:]
    langs = []
    for row in body:
        r = dict(zip(header, row, strict=True))
        langs.append(
            Language(
                name=r["name"],
                code=r["flores"],
                flores=r["flores"],
                glotcc=r["glotcc"],
                conceptnet=r["iso1"],  # ConceptNet 5.7 code (Indonesian merged into 'ms')
                wikiann=r["wikiann"],
                sentiment=r["sentiment"],
                iso1=r["iso1"],
                mbert_gb=_number(r["mbert_gb"], float),
                xlmr_gb=_number(r["xlmr_gb"], float),
                cn_sents=_number(r["cn_sents"], int),
                glot_lines=_number(r["glot_lines"], int),
                paper=True,
            )
        )
    return tuple(langs)


@dataclass(frozen=True)
class _Lists:
    flores: frozenset[str]
    flores_scripts: dict[str, tuple[str, ...]]  # iso3 -> the scripts FLORES has it in
    conceptnet: frozenset[str]
    conceptnet_aliases: dict[str, str]
    wikiann: frozenset[str]
    wikiann_aliases: dict[str, str]  # iso -> WikiANN configuration named otherwise


@functools.cache
def _lists() -> _Lists:
    flores = [row[0] for row in _data_rows("flores200.txt")]
    scripts: dict[str, list[str]] = {}
    for code in flores:
        iso3, script = code.split("_")
        scripts.setdefault(iso3, []).append(script)
    return _Lists(
        flores=frozenset(flores),
        flores_scripts={iso3: tuple(found) for iso3, found in scripts.items()},
        conceptnet=frozenset(row[0] for row in _data_rows("conceptnet.txt")),
        conceptnet_aliases={row[0]: row[1] for row in _data_rows("conceptnet-aliases.tsv")},
        wikiann=frozenset(row[0] for row in _data_rows("wikiann.txt")),
        wikiann_aliases={row[0]: row[1] for row in _data_rows("wikiann-aliases.tsv")},
    )


# ---------------------------------------------------------------------------------------------------
# ISO 639 through langcodes


@functools.cache
def _iso() -> Any:
    """langcodes' tables, with the inverse maps this module needs (imported on first use)."""
    from types import SimpleNamespace

    from langcodes import data_dicts

    members: dict[str, list[str]] = {}
    for individual, macro in data_dicts.MACROLANGUAGES.items():
        members.setdefault(macro, []).append(individual)
    alpha3 = data_dicts.LANGUAGE_ALPHA3  # 639-1 -> 639-3 (T)
    replacements = data_dicts.LANGUAGE_REPLACEMENTS  # deprecated codes
    return SimpleNamespace(
        alpha3=alpha3,
        # 639-3 -> 639-1, skipping 639-1 codes replaced by another (in -> id, iw -> he, mo -> ro)
        alpha2={
            three: two
            for two, three in alpha3.items()
            if len(two) == 2 and len(replacements.get(two, "xxx")) != 2
        },
        bibliographic={b: alpha3[two] for two, b in data_dicts.LANGUAGE_ALPHA3_BIBLIOGRAPHIC.items()},
        replacements=replacements,
        macro_of=data_dicts.MACROLANGUAGES,  # individual (shortest form) -> macrolanguage
        normalized_macro=data_dicts.NORMALIZED_MACROLANGUAGES,  # CLDR: the macrolanguage's main language
        likely=data_dicts.LIKELY_SUBTAGS,
        scripts=frozenset(data_dicts.ALL_SCRIPTS),
        members=members,
    )


def _short(iso3: str) -> str:
    """ISO 639-1 where the language has one, else the 639-3 code (``sh`` stays Serbo-Croatian's)."""
    return "sh" if iso3 == "hbs" else _iso().alpha2.get(iso3, iso3)


def _to_iso3(subtag: str) -> str | None:
    """The ISO 639-3 code of a 639-1, 639-2 (B or T) or 639-3 language subtag; None if not a language."""
    tables = _iso()
    subtag = subtag.lower()
    if subtag in ("sh", "hbs"):  # langcodes rewrites Serbo-Croatian to sr-Latn; it is a macrolanguage
        return "hbs"
    replaced = tables.replacements.get(subtag)
    if replaced and re.fullmatch(r"[a-z]{2,3}", replaced) and replaced not in ("fil",):
        subtag = replaced  # mo -> ro, iw -> he, fra -> fr (but tl stays Tagalog, as FLORES has it)
    if len(subtag) == 2:
        return tables.alpha3.get(subtag)
    if len(subtag) != 3:
        return None
    subtag = tables.bibliographic.get(subtag, subtag)
    from langcodes import Language as Tag

    valid = Tag.get(subtag).is_valid() and not ("qaa" <= subtag <= "qtz")
    return subtag if valid else None


@functools.cache
def _likely_script(iso3: str) -> str | None:
    """The script the language is usually written in: CLDR's likely subtags (of the language, else of its
    macrolanguage), else the one script FLORES has it in; None if unknown."""
    tables = _iso()
    short = _short(iso3)
    for code in (short, tables.macro_of.get(short)):
        likely = tables.likely.get(code) if code else None
        if likely:
            return likely.split("-")[1]
    scripts = _lists().flores_scripts.get(iso3, ())
    return scripts[0] if len(scripts) == 1 else None


def _english_name(iso3: str, script: str | None) -> str:
    from langcodes import Language as Tag

    name = Tag.get(_short(iso3), normalize=False).language_name("en")
    likely = _likely_script(iso3)
    if script and likely and script != likely:
        name += f" ({Tag.get('und-' + script).script_name('en')})"
    return name


def _macro_members(iso3: str) -> list[str]:
    """The individual languages (639-3) of a macrolanguage; empty for an individual language."""
    members = _iso().members.get(_short(iso3), [])
    return sorted({found for m in members if (found := _to_iso3(m))})


# ---------------------------------------------------------------------------------------------------
# Each source's code for an individual language


def _script_less_candidates(iso3: str) -> list[str]:
    """Codes a source without scripts (ConceptNet, WikiANN) may use for ``iso3``, best first: the
    macrolanguage's where CLDR calls this its main language (arb -> ar), the language's own (639-1 or
    639-3), and the macrolanguage's where FLORES has this as its only individual language (quy -> qu)."""
    tables, lists = _iso(), _lists()
    short = _short(iso3)
    found = []
    if short in tables.normalized_macro or iso3 in tables.normalized_macro:
        found.append(tables.normalized_macro.get(short) or tables.normalized_macro[iso3])
    found.append(short)
    macro = tables.macro_of.get(short)
    if macro and _to_iso3(macro) not in lists.flores_scripts:
        in_flores = [m for m in _macro_members(_to_iso3(macro) or macro) if m in lists.flores_scripts]
        if in_flores == [iso3]:
            found.append(macro)
    return found


def _conceptnet_code(iso3: str, script: str | None) -> str | None:
    lists = _lists()
    aliases = lists.conceptnet_aliases
    if script:
        tag = f"{_short(iso3)}-{script.lower()}"  # ConceptNet merges zh-hant, sr-latn, ... itself
        if tag in aliases:
            return aliases[tag] if aliases[tag] in lists.conceptnet else None
        if script != _likely_script(iso3):
            return None
    for code in _script_less_candidates(iso3):
        code = aliases.get(code, code)
        if code in lists.conceptnet:
            return code
    return None


def _wikiann_code(iso3: str, script: str | None) -> str | None:
    lists = _lists()
    if script and script != _likely_script(iso3):
        return None
    named_otherwise = set(lists.wikiann_aliases.values())  # "als" is Alemannic there, not ISO als
    for code in _script_less_candidates(iso3):
        if code in lists.wikiann and code not in named_otherwise:
            return code
    return lists.wikiann_aliases.get(iso3) or lists.wikiann_aliases.get(_short(iso3))


def _by_rule(iso3: str, script: str | None) -> Language:
    """A language outside the paper's table, each source's code by rule (see the module docstring)."""
    flores = f"{iso3}_{script}" if script and f"{iso3}_{script}" in _lists().flores else None
    short = _short(iso3)
    return Language(
        name=_english_name(iso3, script),
        code=f"{iso3}_{script}" if script else iso3,
        flores=flores,
        glotcc=f"{iso3}-{script}" if script else None,
        conceptnet=_conceptnet_code(iso3, script),
        wikiann=_wikiann_code(iso3, script),
        iso1=short if len(short) == 2 else None,
    )


# ---------------------------------------------------------------------------------------------------
# Resolution


def _norm(code: str) -> str:
    return code.strip().casefold().replace("-", "_")


@functools.cache
def _paper_index() -> dict[str, Language]:
    """The paper's languages by every code and name the paper's table gives them."""
    index: dict[str, Language] = {}
    for lang in registry():
        assert lang.flores and lang.glotcc and lang.iso1 and lang.wikiann and lang.sentiment
        for key in (lang.name, lang.flores, lang.glotcc, lang.iso1, lang.iso3, lang.wikiann, lang.sentiment):
            index.setdefault(_norm(key), lang)
        # "Kurdish (Sorani)" is also typed as "Kurdish" or "Sorani".
        if "(" in lang.name:
            outer, inner = lang.name.rstrip(")").split(" (", 1)
            index.setdefault(_norm(outer), lang)
            index.setdefault(_norm(inner), lang)
    return index


def _paper_language(code: str) -> Language | None:
    """The paper's language with this canonical code, if it is one."""
    return next((lang for lang in registry() if lang.code == code), None)


def _candidates(iso3: str, script: str | None) -> list[tuple[str, str | None]]:
    """The (language, script) pairs a code can mean in the sources: the language itself and, for a
    macrolanguage, its individual languages, in each script FLORES has them (filtered by ``script``)."""
    lists = _lists()
    if script is not None and f"{iso3}_{script}" in lists.flores:
        return [(iso3, script)]
    # A code FLORES has (zho, est, aka) means that language; a macrolanguage code it lacks, its members.
    family = [iso3] if iso3 in lists.flores_scripts else [iso3, *_macro_members(iso3)]
    found = [(lang, s) for lang in family for s in lists.flores_scripts.get(lang, ())]
    if script is not None:
        found = [(lang, s) for lang, s in found if s == script]
    if found:
        return found
    # Not in FLORES: a macrolanguage means its individual languages the other sources have.
    named = [
        lang
        for lang in family[1:]
        if _conceptnet_code(lang, None) not in (None, _short(iso3))
        or _wikiann_code(lang, None) not in (None, _short(iso3))
    ]
    if len(named) > 1:
        return [(lang, script or _likely_script(lang)) for lang in named]
    return [(named[0] if named else iso3, script or _likely_script(named[0] if named else iso3))]


def _parse(text: str) -> tuple[str, str | None] | None:
    """``fra``, ``fr``, ``fra_Latn``, ``uzn-Cyrl`` -> (639-3 code, script or None); None: not such a code."""
    match = re.fullmatch(r"([A-Za-z]{2,3})(?:[_-]([A-Za-z]{4}))?", text.strip())
    if not match:
        return None
    iso3 = _to_iso3(match.group(1))
    script = match.group(2).title() if match.group(2) else None
    if iso3 is None or (script is not None and script not in _iso().scripts):
        return None
    return iso3, script


def _from_name(text: str) -> tuple[str, str | None] | None:
    import langcodes

    try:
        found = langcodes.find(text.strip())
    except LookupError:
        return None
    iso3 = _to_iso3(found.language or "")
    return (iso3, found.script) if iso3 else None


def resolve_language(code: str) -> Language:
    """The language ``code`` names (see the module docstring): the paper's, else each source's by rule.

    Raises :class:`LanguageError` for an unknown code or name (with the nearest known codes) and for an
    ambiguous one (listing the codes to choose from).
    """
    key = _norm(code)
    if not key:
        raise LanguageError("empty language code", hint="give a code such as ron, ro or ron_Latn")
    if key in _paper_index():
        return _paper_index()[key]
    # A WikiANN configuration named by Wikipedia (zh-yue, bat-smg; not "als", an ISO code too).
    wikiann = {name: iso for iso, name in _lists().wikiann_aliases.items() if "-" in name}
    config = wikiann.get(code.strip().lower())
    parsed = _parse(config or code) or _from_name(code)
    if parsed is None:
        raise _unknown(code)
    choices = _candidates(*parsed)
    if len(choices) > 1:
        listed = ", ".join(f"{lang}_{script} ({_english_name(lang, script)})" for lang, script in choices)
        raise LanguageError(
            f"language '{code.strip()}' is ambiguous in the sources: {listed}",
            hint="give one of these codes",
        )
    [(iso3, script)] = choices
    canonical = f"{iso3}_{script}" if script else iso3
    return _paper_language(canonical) or _by_rule(iso3, script)


def _unknown(code: str) -> LanguageError:
    key = _norm(code)
    known = {**{_norm(c): c for c in _lists().flores}, **{k: lang.code for k, lang in _paper_index().items()}}
    suggestions = difflib.get_close_matches(key, list(known), n=4, cutoff=0.6)
    names = sorted({known[s] for s in suggestions})
    did_you_mean = f" (did you mean {', '.join(names)}?)" if names else ""
    return LanguageError(
        f"unknown language '{code.strip()}'{did_you_mean}",
        hint="give an ISO 639 code, a FLORES code such as fra_Latn, or an English name"
        " ('lrltool languages --all' lists what the sources have)",
    )


def all_languages() -> list[Language]:
    """Every language some source lists (FLORES-200/SIB-200, ConceptNet, WikiANN) and the paper's 30,
    the paper's first, then by code. A source code that stands for several languages (ConceptNet's ``sh``,
    ``ku``) is listed under each of them, not as a language of its own."""
    lists = _lists()
    found: dict[str, Language] = {lang.code: lang for lang in registry()}
    wikiann_iso = {config: iso for iso, config in lists.wikiann_aliases.items()}
    codes = [
        *sorted(lists.flores),
        *sorted(c for c in lists.conceptnet if c not in lists.conceptnet_aliases),
        *sorted(wikiann_iso.get(c, c) for c in lists.wikiann),
    ]
    for code in codes:
        parsed = _parse(code)
        if parsed is None:
            continue  # WikiANN's "simple", "be-x-old", ...: not a language code
        choices = _candidates(*parsed)
        if len(choices) != 1:
            continue  # a macrolanguage: listed under its individual languages
        [(iso3, script)] = choices
        canonical = f"{iso3}_{script}" if script else iso3
        if canonical not in found:
            found[canonical] = _by_rule(iso3, script)
    paper = [lang for lang in found.values() if lang.paper]
    return paper + sorted((lang for lang in found.values() if not lang.paper), key=lambda lang: lang.code)


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
    """Resolve ``code``; per-source codes given here override the resolved ones, or define a new language.

    A language that does not resolve needs the code of each source it is used with; a source whose
    code is missing has none (``Language.code_for`` returns None).
    """
    given = {
        key: value
        for key, value in dict(
            flores=flores,
            glotcc=glotcc,
            iso1=iso1,
            wikiann=wikiann,
            sentiment=sentiment,
            conceptnet=conceptnet,
        ).items()
        if value
    }
    try:
        base = resolve_language(code)
    except LanguageError:
        if not given:
            raise
        canonical = flores or code.strip().replace("-", "_")
        base = Language(
            name=code.strip(), code=canonical, flores=None, glotcc=None, conceptnet=None, wikiann=None
        )
    return replace(base, **given, overridden=tuple(given))
