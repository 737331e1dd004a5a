"""`fetch --lang ron,mlt -o 'DIR/{lang}...'`: one output per language, each the same as a run for it alone.

conceptnet reads its dump once for all of them and writes every file or none; other sources are read one
language after the other.
"""

from __future__ import annotations

import gzip
import json

import pytest
from fetch_helpers import assert_error, assert_no_output, cn_row, write_dump
from test_fetch_conceptnet import _reference_triples

from lrltool.sources import conceptnet
from lrltool.streams import read_records
from tests.paths import EXAMPLES

# In-table languages with nodes in the bundled excerpt (Romanian: 775 nodes; the others 3 to 5 each).
LANGS = ["ron", "zsm", "slv", "dan", "heb"]
FLORES = ["ron_Latn", "zsm_Latn", "slv_Latn", "dan_Latn", "heb_Hebr"]
CODES = ["ro", "ms", "sl", "da", "he"]
META = {"dataset": "/d/wiktionary/ro", "weight": 1.0}


def _single_runs(cli, tmp_path, match: str) -> dict[str, tuple[bytes, dict]]:
    """Each language fetched alone: its output file's bytes and its --stats."""
    out = {}
    for lang, flores in zip(LANGS, FLORES, strict=True):
        target, stats = tmp_path / "one" / f"{flores}.jsonl.zst", tmp_path / "one" / f"{flores}.json"
        args = ["-l", lang, "-i", EXAMPLES / "conceptnet", "--match", match, "-o", target, "--stats", stats]
        result = cli(["fetch", "conceptnet", *args])
        assert result.exit_code == 0, result.stderr
        out[flores] = (target.read_bytes(), json.loads(stats.read_text()))
    return out


@pytest.mark.parametrize("match", ["either", "start"])
def test_several_languages_in_one_pass_match_single_runs_byte_for_byte(cli, tmp_path, monkeypatch, match):
    langs = LANGS if match == "either" else LANGS[:1]  # with --match start only Romanian starts rows here
    single = _single_runs(cli, tmp_path, match)
    opened = []
    real = conceptnet.InputStream

    def counting(path, *args, **kwargs):
        opened.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(conceptnet, "InputStream", counting)
    many = tmp_path / "many"
    outputs = ["-o", f"{many}/{{lang}}.jsonl.zst", "--stats", f"{many}/{{lang}}.json"]
    args = ["--lang", ",".join(langs), "-i", EXAMPLES / "conceptnet", "--match", match, *outputs]
    result = cli(["fetch", "conceptnet", *args])
    assert result.exit_code == 0, result.stderr
    assert len(opened) == 1  # one pass over the dump for all languages
    for flores in FLORES[: len(langs)]:
        data, stats = single[flores]
        assert (many / f"{flores}.jsonl.zst").read_bytes() == data, flores
        assert json.loads((many / f"{flores}.json").read_text()) == stats, flores
    # ... and what an independent line-by-line reading of the excerpt keeps for each language.
    excerpt = gzip.decompress(next((EXAMPLES / "conceptnet").glob("*.csv.gz")).read_bytes()).decode()
    for flores, code in zip(FLORES[: len(langs)], CODES, strict=False):
        records = list(read_records(many / f"{flores}.jsonl.zst"))
        assert records == _reference_triples(excerpt, code, match), flores
        assert records, flores
    # One summary line per language on stderr, in --lang order.
    lines = result.stderr.strip().splitlines()
    assert [line.rsplit("; code ", 1)[1] for line in lines] == CODES[: len(langs)]


def test_stats_of_several_languages_in_one_file(cli, tmp_path):
    dump = write_dump(
        tmp_path / "d.csv",
        [
            cn_row("IsA", "/c/ro/câine/n", "/c/mt/kelb", META),
            cn_row("IsA", "/c/mt/qattus", "/c/ro/pisică", META),
            cn_row("IsA", "/c/en/dog", "/c/en/animal", META),
        ],
    )
    stats = tmp_path / "stats.json"
    out = tmp_path / "out"
    result = cli(
        ["fetch", "conceptnet", "-l", "ron,mlt", "-i", dump, "-o", f"{out}/{{lang}}.jsonl", "--stats", stats]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(stats.read_text()) == {
        "command": "fetch conceptnet",
        "languages": {
            "ron_Latn": {
                "command": "fetch conceptnet",
                "records_in": 3,
                "records_out": 1,
                "dropped": {"other_language": 2},
                "code": "ro",
            },
            "mlt_Latn": {
                "command": "fetch conceptnet",
                "records_in": 3,
                "records_out": 1,
                "dropped": {"other_language": 2},
                "code": "mt",
            },
        },
    }
    # A row with nodes in both languages is each language's candidate: the start decides (--match start).
    assert [json.loads(line)["start"] for line in (out / "ron_Latn.jsonl").read_text().splitlines()] == [
        "câine"
    ]
    assert [json.loads(line)["start"] for line in (out / "mlt_Latn.jsonl").read_text().splitlines()] == [
        "qattus"
    ]


def test_a_language_without_rows_writes_no_file_at_all(cli, tmp_path):
    dump = write_dump(tmp_path / "d.csv", [cn_row("IsA", "/c/ro/câine/n", "/c/ro/animal", META)])
    out = tmp_path / "out"
    out.mkdir()
    result = cli(["fetch", "conceptnet", "-l", "ron,bul", "-i", dump, "-o", f"{out}/{{lang}}.jsonl.zst"])
    assert_error(result, "no conceptnet records for code 'bg' (1 rows read)")
    assert_no_output(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", "ron,mlt"], "2 languages need an output name with {lang} in it"),
        (["-l", "ron,mlt", "-o", "x.jsonl"], "2 languages need an output name with {lang} in it"),
        (["-l", "ron,mlt", "-o", "{lang}.jsonl", "--code", "ro"], "--code names one language's code"),
        (["-l", "ron,ro", "-o", "{lang}.jsonl"], "--lang names Romanian twice ('ron' and 'ro')"),
        (["-l", "ron,xx", "-o", "{lang}.jsonl"], "unknown language 'xx'"),
        (["-l", " , "], "--lang is empty"),
    ],
)
def test_misuse_of_several_languages_is_a_usage_error(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = cli(["fetch", "conceptnet", "-i", EXAMPLES / "conceptnet", *args])
    assert_error(result, message, code=2)
    assert_no_output(tmp_path)


def test_lang_field_with_one_language_names_the_file(cli, tmp_path):
    result = cli(
        ["fetch", "flores", "-l", "ro", "-i", EXAMPLES / "flores", "-o", f"{tmp_path}/{{lang}}.jsonl"]
    )
    assert result.exit_code == 0, result.stderr
    assert len((tmp_path / "ron_Latn.jsonl").read_text().splitlines()) == 204


def test_other_sources_fetch_several_languages_one_after_the_other(cli, tmp_path):
    """A FLORES folder with two languages (the Maltese file is the Romanian one, renamed): two outputs."""
    flores = tmp_path / "flores" / "devtest"
    flores.mkdir(parents=True)
    text = (EXAMPLES / "flores" / "devtest" / "ron_Latn.devtest").read_text(encoding="utf-8")
    (flores / "ron_Latn.devtest").write_text(text, encoding="utf-8")
    (flores / "mlt_Latn.devtest").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = cli(
        ["fetch", "flores", "-l", "ron,mlt", "-i", tmp_path / "flores", "-o", f"{out}/{{lang}}.jsonl"]
    )
    assert result.exit_code == 0, result.stderr
    for flores_code in ("ron_Latn", "mlt_Latn"):
        records = [json.loads(line) for line in (out / f"{flores_code}.jsonl").read_text().splitlines()]
        assert len(records) == 204
        assert {r["lang"] for r in records} == {flores_code}
        assert records[0]["text"] == text.splitlines()[0]
