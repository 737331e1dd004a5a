from __future__ import annotations

import orjson
import pytest

from lrltool.errors import LanguageError
from lrltool.languages import custom_language, model_family, registry, resolve_language


def test_registry_has_the_papers_30_languages():
    langs = registry()
    assert len(langs) == 30
    assert len({lang.flores for lang in langs}) == 30
    assert langs[1].name == "Romanian"


@pytest.mark.parametrize(
    "code", ["ron", "ro", "ron_Latn", "ron-Latn", "Romanian", "ROMANIAN", "RON_LATN", " ro "]
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


def test_special_pairings():
    assert resolve_language("ckb").iso1 == "ku"
    assert resolve_language("ku").flores == "ckb_Arab"
    assert resolve_language("zsm").conceptnet == "ms"
    assert resolve_language("ms").flores == "zsm_Latn"
    assert resolve_language("zsm").sentiment == "indonesian_sa"
    assert resolve_language("lav").flores == "lvs_Latn"  # macrolanguage code
    assert resolve_language("Sorani").flores == "ckb_Arab"


def test_unknown_code_suggests_nearest():
    with pytest.raises(LanguageError) as err:
        resolve_language("ronn")
    assert "unknown language 'ronn' (did you mean ron_Latn?)" in str(err.value)
    assert "lrltool languages" in str(err.value)


def test_unknown_script_is_called_out():
    with pytest.raises(LanguageError, match="did you mean ron_Latn"):
        resolve_language("ron_Cyrl")


def test_language_outside_the_table_with_explicit_codes():
    lang = custom_language("fao", flores="fao_Latn", glotcc="fao-Latn", conceptnet="fo", wikiann="fo")
    assert not lang.in_registry
    assert lang.code_for("conceptnet") == "fo"
    assert lang.code_for("glotcc") == "fao-Latn"
    with pytest.raises(LanguageError):
        custom_language("fao")


def test_override_keeps_registry_row():
    lang = custom_language("ron", sentiment="my_sa")
    assert lang.sentiment == "my_sa"
    assert lang.glotcc == "ron-Latn"


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


def test_languages_command_table_and_unknown(cli):
    result = cli(["languages", "mt"])
    assert result.exit_code == 0
    assert "Maltese" in result.stdout and "mlt_Latn" in result.stdout
    bad = cli(["languages", "xx"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: unknown language 'xx'")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_languages_field_prints_one_code(cli):
    result = cli(["languages", "Romanian", "--field", "flores"])
    assert result.exit_code == 0
    assert result.stdout == "ron_Latn\n"
    assert cli(["languages", "--field", "glotcc"]).stdout.splitlines()[1] == "ron-Latn"
    bad = cli(["languages", "ro", "--field", "nope"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: unknown field 'nope'")
