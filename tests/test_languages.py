"""The language registry: the paper's 30 exactly as before, any other language by rule, ambiguity errors."""

from __future__ import annotations

import orjson
import pytest

from lrltool.errors import LanguageError
from lrltool.languages import all_languages, custom_language, model_family, registry, resolve_language

# What `lrltool languages --json` printed before issue 12 (the table-only registry), one row per language:
# name, flores, glotcc, iso1, conceptnet, wikiann, sentiment, iso3, mbert_gb, xlmr_gb, cn_sents, glot_lines
PAPER_30 = [
    ("Thai", "tha_Thai", "tha-Thai", "th", "th", "th", "thai_sa", "tha", 1.29, 85.24, 123859, 2391253),
    ("Romanian", "ron_Latn", "ron-Latn", "ro", "ro", "ro", "romanian_sa", "ron", 1.22, 83.29, 70236, 8657002),
    (
        "Bulgarian",
        "bul_Cyrl",
        "bul-Cyrl",
        "bg",
        "bg",
        "bg",
        "bulgarian_sa",
        "bul",
        1.5,
        70.37,
        162181,
        5192702,
    ),
    ("Danish", "dan_Latn", "dan-Latn", "da", "da", "da", "danish_sa", "dan", 0.81, 62.39, 66109, 8743767),
    ("Greek", "ell_Grek", "ell-Grek", "el", "el", "el", "greek_sa", "ell", 1.85, 57.3, 89016, 4789519),
    ("Hebrew", "heb_Hebr", "heb-Hebr", "he", "he", "he", "hebrew_sa", "heb", 2.73, 40.87, 41444, 5287428),
    ("Slovak", "slk_Latn", "slk-Latn", "sk", "sk", "sk", "slovak_sa", "slk", 0.61, 31.96, 22460, 9294165),
    (
        "Slovenian",
        "slv_Latn",
        "slv-Latn",
        "sl",
        "sl",
        "sl",
        "slovenian_sa",
        "slv",
        0.67,
        14.16,
        85882,
        9301902,
    ),
    ("Latvian", "lvs_Latn", "lvs-Latn", "lv", "lv", "lv", "latvian_sa", "lvs", 0.33, 11.94, 66408, 8301651),
    ("Malay", "zsm_Latn", "zsm-Latn", "ms", "ms", "ms", "indonesian_sa", "zsm", 0.59, 11.73, 175246, 8024827),
    ("Georgian", "kat_Geor", "kat-Geor", "ka", "ka", "ka", "georgian_sa", "kat", 0.88, 10.55, 35331, 3463631),
    ("Bengali", "ben_Beng", "ben-Beng", "bn", "bn", "bn", "bengali_sa", "ben", 1.22, 10.1, 8782, 2940197),
    (
        "Azerbaijani",
        "azj_Latn",
        "azj-Latn",
        "az",
        "az",
        "az",
        "azerbaijani_sa",
        "azj",
        0.62,
        8.33,
        15149,
        6179152,
    ),
    ("Urdu", "urd_Arab", "urd-Arab", "ur", "ur", "ur", "urdu_sa", "urd", 0.54, 6.97, 13315, 4220566),
    (
        "Macedonian",
        "mkd_Cyrl",
        "mkd-Cyrl",
        "mk",
        "mk",
        "mk",
        "macedonian_sa",
        "mkd",
        0.86,
        5.76,
        38116,
        5037552,
    ),
    ("Telugu", "tel_Telu", "tel-Telu", "te", "te", "te", "telugu_sa", "tel", 0.88, 5.46, 33476, 3162535),
    ("Nepali", "npi_Deva", "npi-Deva", "ne", "ne", "ne", "nepali_sa", "npi", 0.14, 4.32, 4456, 2569572),
    ("Marathi", "mar_Deva", "mar-Deva", "mr", "mr", "mr", "marathi_sa", "mar", 0.32, 3.33, 7232, 402575),
    ("Swahili", "swh_Latn", "swh-Latn", "sw", "sw", "sw", "swahili_sa", "swh", 0.1, 2.15, 12380, 2450753),
    ("Welsh", "cym_Latn", "cym-Latn", "cy", "cy", "cy", "welsh_sa", "cym", 0.39, 1.07, 18313, 3174686),
    ("Uzbek", "uzn_Latn", "uzn-Latn", "uz", "uz", "uz", "uzbek_sa", "uzn", 0.57, 0.95, 4362, 4018172),
    ("Javanese", "jav_Latn", "jav-Latn", "jv", "jv", "jv", "javanese_sa", "jav", 0.1, 0.2, 3448, 367795),
    ("Sundanese", "sun_Latn", "sun-Latn", "su", "su", "su", "sundanese_sa", "sun", 0.06, 0.08, 1880, 323610),
    ("Sinhala", "sin_Sinh", "sin-Sinh", "si", "si", "si", "sinhala_sa", "sin", None, 4.27, 1782, 1655641),
    ("Amharic", "amh_Ethi", "amh-Ethi", "am", "am", "am", "amharic_sa", "amh", None, 1.0, 1814, 667881),
    (
        "Kurdish (Sorani)",
        "ckb_Arab",
        "ckb-Arab",
        "ku",
        "ku",
        "ku",
        "kurdish_sa",
        "ckb",
        None,
        0.52,
        12246,
        376260,
    ),
    ("Uyghur", "uig_Arab", "uig-Arab", "ug", "ug", "ug", "uyghur_sa", "uig", None, 0.43, 1715, 976010),
    ("Maltese", "mlt_Latn", "mlt-Latn", "mt", "mt", "mt", "maltese_sa", "mlt", None, None, 3895, 1389527),
    ("Tibetan", "bod_Tibt", "bod-Tibt", "bo", "bo", "bo", "tibetan_sa", "bod", None, None, 4768, 288847),
    ("Yoruba", "yor_Latn", "yor-Latn", "yo", "yo", "yo", "yoruba_sa", "yor", 0.03, None, 1044, 278003),
]
_FIELDS = ("name", "flores", "glotcc", "iso1", "conceptnet", "wikiann", "sentiment", "iso3")
_FACTS = ("mbert_gb", "xlmr_gb", "cn_sents", "glot_lines")


@pytest.mark.parametrize("row", PAPER_30, ids=[row[1] for row in PAPER_30])
def test_the_papers_30_resolve_exactly_as_before(row):
    expected = dict(zip(_FIELDS + _FACTS, row, strict=True))
    # by each of the codes the table gives, and by name: every source's code and fact as before
    for key in (expected["flores"], expected["glotcc"], expected["iso3"], expected["iso1"], expected["name"]):
        record = resolve_language(key).as_record()
        assert {k: record[k] for k in _FIELDS + _FACTS} == expected, key
        assert record["sib200"] == expected["flores"] and record["code"] == expected["flores"]
        assert record["paper"] is True


def test_registry_is_the_papers_30_in_order():
    assert [lang.code for lang in registry()] == [row[1] for row in PAPER_30]


@pytest.mark.parametrize(
    "code", ["ron", "ro", "ron_Latn", "ron-Latn", "Romanian", "ROMANIAN", "RON_LATN", " ro ", "rum", "mo"]
)
def test_every_spelling_of_romanian_resolves_to_it(code):
    lang = resolve_language(code)
    assert lang.name == "Romanian"
    assert lang.code_for("glotcc") == "ron-Latn"
    assert lang.code_for("flores") == "ron_Latn"
    assert lang.code_for("sib200") == "ron_Latn"
    assert lang.code_for("conceptnet") == "ro"
    assert lang.code_for("wikiann") == "ro"
    assert lang.code_for("sentiment") == "romanian_sa"


# (input, canonical code, FLORES/SIB-200, GlotCC, ConceptNet, WikiANN), as the sources name them
OUTSIDE_THE_PAPER = [
    ("fr", "fra_Latn", "fra_Latn", "fra-Latn", "fr", "fr"),
    ("fre", "fra_Latn", "fra_Latn", "fra-Latn", "fr", "fr"),
    ("French", "fra_Latn", "fra_Latn", "fra-Latn", "fr", "fr"),
    ("fra_Latn", "fra_Latn", "fra_Latn", "fra-Latn", "fr", "fr"),
    ("fao", "fao_Latn", "fao_Latn", "fao-Latn", "fo", "fo"),
    ("fo", "fao_Latn", "fao_Latn", "fao-Latn", "fo", "fo"),
    ("Faroese", "fao_Latn", "fao_Latn", "fao-Latn", "fo", "fo"),
    ("quy", "quy_Latn", "quy_Latn", "quy-Latn", "qu", "qu"),
    ("qu", "quy_Latn", "quy_Latn", "quy-Latn", "qu", "qu"),  # FLORES' one Quechua
    ("Quechua", "quy_Latn", "quy_Latn", "quy-Latn", "qu", "qu"),
    ("bre", "bre_Latn", None, "bre-Latn", "br", "br"),  # no FLORES-200 / SIB-200
    ("Breton", "bre_Latn", None, "bre-Latn", "br", "br"),
    ("uzn-Cyrl", "uzn_Cyrl", None, "uzn-Cyrl", None, None),  # ConceptNet/WikiANN: the usual script only
    ("kas_Deva", "kas_Deva", "kas_Deva", "kas-Deva", None, None),
    ("kmr", "kmr_Latn", "kmr_Latn", "kmr-Latn", "ku", "ku"),
    ("hr", "hrv_Latn", "hrv_Latn", "hrv-Latn", "sh", "hr"),  # ConceptNet merges hr/sr/bs into sh
    ("srp", "srp_Cyrl", "srp_Cyrl", "srp-Cyrl", "sh", "sr"),
    ("id", "ind_Latn", "ind_Latn", "ind-Latn", "ms", "id"),  # ConceptNet 5.7 has Indonesian under ms
    ("als", "als_Latn", "als_Latn", "als-Latn", "sq", "sq"),  # Tosk Albanian; WikiANN's "als" is Alemannic
    ("gsw", "gsw_Latn", None, "gsw-Latn", "gsw", "als"),
    ("yue", "yue_Hant", "yue_Hant", "yue-Hant", "zh", "zh-yue"),
    ("tl", "tgl_Latn", "tgl_Latn", "tgl-Latn", "fil", "tl"),
    ("zho_Hant", "zho_Hant", "zho_Hant", "zho-Hant", "zh", None),
    ("swa", "swh_Latn", "swh_Latn", "swh-Latn", "sw", "sw"),  # the sources have one Swahili: the paper's
]


@pytest.mark.parametrize("row", OUTSIDE_THE_PAPER, ids=[row[0] for row in OUTSIDE_THE_PAPER])
def test_languages_outside_the_paper_resolve_as_the_sources_name_them(row):
    code, canonical, flores, glotcc, conceptnet, wikiann = row
    lang = resolve_language(code)
    assert (lang.code, lang.flores, lang.glotcc, lang.conceptnet, lang.wikiann) == (
        canonical,
        flores,
        glotcc,
        conceptnet,
        wikiann,
    )
    assert lang.code_for("sib200") == flores
    assert lang.sentiment is (lang.sentiment if lang.paper else None)


def test_names_come_from_langcodes():
    assert resolve_language("fo").name == "Faroese"
    assert resolve_language("quy").name == "Ayacucho Quechua"
    assert resolve_language("uzn_Cyrl").name == "Northern Uzbek (Cyrillic)"
    assert not resolve_language("fo").paper


@pytest.mark.parametrize(
    ("code", "choices"),
    [
        ("msa", "bjn_Arab (Banjar (Arabic)), bjn_Latn (Banjar), ind_Latn (Indonesian), min_Arab"),
        ("kur", "ckb_Arab (Central Kurdish), kmr_Latn (Northern Kurdish)"),
        ("Kurmanji", None),
        ("zho", "zho_Hans (Chinese), zho_Hant (Chinese (Traditional)); give"),
        ("Chinese", "zho_Hans (Chinese), zho_Hant (Chinese (Traditional)); give"),
        ("ara", "acm_Arab (Mesopotamian Arabic), acq_Arab"),
        ("lav", "ltg_Latn (Latgalian), lvs_Latn (Standard Latvian)"),
        ("sh", "bos_Latn (Bosnian), hrv_Latn (Croatian), srp_Cyrl (Serbian)"),
        ("kas", "kas_Arab (Kashmiri), kas_Deva (Kashmiri (Devanagari))"),
    ],
)
def test_ambiguity_is_an_error_listing_the_choices(code, choices):
    if choices is None:  # an English name of one of them resolves
        assert resolve_language(code).code == "kmr_Latn"
        return
    with pytest.raises(LanguageError) as err:
        resolve_language(code)
    assert f"language '{code}' is ambiguous in the sources: {choices}" in str(err.value)
    assert err.value.exit_code == 2


def test_the_papers_own_codes_keep_their_meaning():
    # two-letter codes of the paper's table name what the paper meant, though the ISO code is wider
    assert resolve_language("ku").code == "ckb_Arab"
    assert resolve_language("ms").code == "zsm_Latn"
    assert resolve_language("lv").code == "lvs_Latn"
    assert resolve_language("Sorani").code == "ckb_Arab"
    assert resolve_language("zsm").conceptnet == "ms"
    assert resolve_language("zsm").sentiment == "indonesian_sa"
    assert resolve_language("nep").code == "npi_Deva"  # the sources have one Nepali


def test_unknown_code_suggests_nearest():
    with pytest.raises(LanguageError) as err:
        resolve_language("ronn")
    assert "unknown language 'ronn' (did you mean ron_Latn?)" in str(err.value)
    assert "lrltool languages --all" in str(err.value)
    with pytest.raises(LanguageError, match="unknown language 'ron_Ltnn'"):
        resolve_language("ron_Ltnn")


def test_all_languages_has_every_source_list():
    langs = all_languages()
    codes = [lang.code for lang in langs]
    assert len(codes) == len(set(codes))
    assert codes[:30] == [row[1] for row in PAPER_30]
    flores = {lang.flores for lang in langs if lang.flores}
    assert len(flores) == 205  # every FLORES-200 / SIB-200 code, once
    assert {lang.conceptnet for lang in langs if lang.conceptnet} >= {
        "fo",
        "br",
        "qu",
        "sh",
        "ku",
        "ms",
        "ang",
    }
    by_code = {lang.code: lang for lang in langs}
    assert by_code["bre_Latn"].sources() == ["conceptnet", "glotcc", "wikiann"]
    assert by_code["fao_Latn"].sources() == ["conceptnet", "glotcc", "flores", "sib200", "wikiann"]


def test_language_outside_the_sources_with_explicit_codes():
    lang = custom_language("xyzzy", flores="xyz_Latn", glotcc="xyz-Latn", conceptnet="xy", wikiann="xy")
    assert not lang.paper
    assert lang.code_for("conceptnet") == "xy"
    assert lang.code_for("glotcc") == "xyz-Latn"
    assert lang.code_for("sentiment") is None
    with pytest.raises(LanguageError):
        custom_language("xyzzy")


def test_override_keeps_the_resolved_row():
    lang = custom_language("ron", sentiment="my_sa")
    assert lang.sentiment == "my_sa"
    assert lang.glotcc == "ron-Latn"
    assert lang.overridden == ("sentiment",)


def test_pretraining_sizes_by_model_family():
    mlt = resolve_language("mlt")
    assert mlt.pretraining_gb("xlm-roberta-base") is None
    assert resolve_language("ron").pretraining_gb("bert-base-multilingual-cased") == 1.22
    assert model_family("FacebookAI/xlm-roberta-base") == "xlmr"
    assert model_family("meta-llama/Meta-Llama-3-8B") is None
    assert model_family("/models/xlm-roberta-large/") == "xlmr"
    assert model_family("google-bert/bert-base-multilingual-uncased") == "mbert"
    assert model_family("demo/models/tiny-xlmr") is None  # a tiny model has not seen XLM-R's data


def test_languages_command_json(cli):
    result = cli(["languages", "--json"])
    assert result.exit_code == 0
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 30
    assert rows[1]["glotcc"] == "ron-Latn"
    bre = orjson.loads(cli(["languages", "bre", "--json"]).stdout)
    assert bre["flores"] is None and bre["sib200"] is None and bre["sentiment"] is None
    assert (bre["code"], bre["glotcc"], bre["conceptnet"], bre["wikiann"], bre["paper"]) == (
        "bre_Latn",
        "bre-Latn",
        "br",
        "br",
        False,
    )


def test_languages_command_table_and_errors(cli):
    result = cli(["languages", "mt"])
    assert result.exit_code == 0
    assert "Maltese" in result.stdout and "mlt_Latn" in result.stdout
    fao = cli(["languages", "fo"]).stdout
    assert "Faroese" in fao and "fao-Latn" in fao and "│ fo " in fao
    bad = cli(["languages", "xx"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: unknown language 'xx'")
    assert len(bad.stderr.strip().splitlines()) == 1
    ambiguous = cli(["languages", "kur"])
    assert ambiguous.exit_code == 2
    assert ambiguous.stderr.strip() == (
        "error: language 'kur' is ambiguous in the sources: ckb_Arab (Central Kurdish),"
        " kmr_Latn (Northern Kurdish); give one of these codes"
    )


def test_languages_field_prints_one_code_or_an_empty_line(cli):
    result = cli(["languages", "Romanian", "--field", "flores"])
    assert result.exit_code == 0
    assert result.stdout == "ron_Latn\n"
    assert cli(["languages", "--field", "glotcc"]).stdout.splitlines()[1] == "ron-Latn"
    assert cli(["languages", "bre", "--field", "flores"]).stdout == "\n"
    assert cli(["languages", "fao", "--field", "sentiment"]).stdout == "\n"
    assert cli(["languages", "fao", "--field", "paper"]).stdout == "false\n"
    bad = cli(["languages", "ro", "--field", "nope"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: unknown field 'nope'")


def test_languages_all_lists_every_language_with_a_column_per_source(cli):
    rows = [orjson.loads(line) for line in cli(["languages", "--all", "--json"]).stdout.splitlines()]
    assert len(rows) == len(all_languages()) > 300
    assert {"fao_Latn", "bre_Latn", "quy_Latn", "ron_Latn"} <= {row["code"] for row in rows}
    table = cli(["languages", "--all"])
    assert table.exit_code == 0 and "Breton" in table.stdout
    assert cli(["languages", "fo", "--all"]).exit_code == 2
