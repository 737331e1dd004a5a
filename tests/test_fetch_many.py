"""`fetch --lang ron,mlt -o 'DIR/{lang}...'`: one output per language, each the same as a run for it alone.

conceptnet reads its dump once for all of them and writes every file or none; other sources are read one
language after the other.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys

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


@pytest.mark.parametrize("hyperscan", [True, False], ids=["hyperscan", "regex"])
@pytest.mark.parametrize("fork", [True, False], ids=["forked-scan", "one-process"])
@pytest.mark.parametrize("match", ["either", "start"])
def test_several_languages_in_one_pass_match_single_runs_byte_for_byte(
    cli, tmp_path, monkeypatch, match, fork, hyperscan
):
    """Also with the scan in this process (where there is no fork: not Linux), and with the regular
    expression where Hyperscan is missing (the single runs use it or memmem)."""
    langs = LANGS if match == "either" else LANGS[:1]  # with --match start only Romanian starts rows here
    single = _single_runs(cli, tmp_path, match)
    opened = tmp_path / "opened"  # a file: the forked scanning process writes to it too
    real = conceptnet.InputStream

    def counting(path, *args, **kwargs):
        with opened.open("a") as log:
            log.write(f"{os.getpid()}\n")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(conceptnet, "InputStream", counting)
    monkeypatch.setattr(conceptnet, "FORK", fork)
    monkeypatch.setattr(conceptnet, "HYPERSCAN", hyperscan)
    many = tmp_path / "many"
    outputs = ["-o", f"{many}/{{lang}}.jsonl.zst", "--stats", f"{many}/{{lang}}.json"]
    args = ["--lang", ",".join(langs), "-i", EXAMPLES / "conceptnet", "--match", match, *outputs]
    result = cli(["fetch", "conceptnet", *args])
    assert result.exit_code == 0, result.stderr
    readers = opened.read_text().split()
    assert len(readers) == 1  # one pass over the dump for all languages ...
    assert (readers[0] != str(os.getpid())) == (fork and len(langs) > 1)  # ... in a process of its own
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


@pytest.mark.parametrize("hyperscan", [True, False], ids=["hyperscan", "regex"])
@pytest.mark.parametrize("fork", [True, False], ids=["forked-scan", "one-process"])
def test_two_languages_with_one_conceptnet_code_each_get_its_rows(
    cli, tmp_path, monkeypatch, fork, hyperscan
):
    """zho_Hans and zho_Hant are both ``zh`` in ConceptNet: each file is what a run of that language alone
    writes, whichever hit finder and process layout the pass uses."""
    rows = [cn_row("IsA", f"/c/zh/{word}", "/c/zh/动物", META) for word in ("狗", "猫")] + [ROW_RO]
    dump = write_dump(tmp_path / "d.csv", rows)
    alone = {}
    for lang in ("zho_Hans", "zho_Hant"):
        result = cli(["fetch", "conceptnet", "-l", lang, "-i", dump, "-o", tmp_path / f"{lang}.jsonl"])
        assert result.exit_code == 0, result.stderr
        alone[lang] = (tmp_path / f"{lang}.jsonl").read_bytes()
    assert alone["zho_Hans"] == alone["zho_Hant"] and alone["zho_Hans"].count(b"\n") == 2
    monkeypatch.setattr(conceptnet, "FORK", fork)
    monkeypatch.setattr(conceptnet, "HYPERSCAN", hyperscan)
    out = tmp_path / "out"
    result = cli(
        ["fetch", "conceptnet", "-l", "zho_Hans,zho_Hant,ron", "-i", dump, "-o", f"{out}/{{lang}}.jsonl"]
    )
    assert result.exit_code == 0, result.stderr
    for lang in ("zho_Hans", "zho_Hant"):
        assert (out / f"{lang}.jsonl").read_bytes() == alone[lang], lang
    assert len((out / "ron_Latn.jsonl").read_text().splitlines()) == 1


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


# --- the forked scan: errors, stdin and a dead scanning process -------------------------------------

ROW_RO = cn_row("IsA", "/c/ro/câine/n", "/c/ro/animal", META)
ROW_MT = cn_row("IsA", "/c/mt/qattus/n", "/c/mt/annimal", META)


def _bad_dumps(tmp_path):
    rows = [ROW_RO, ROW_MT] * 40
    malformed = [*rows, "/a/[/r/IsA/,/c/ro/x/,/c/ro/y/]\t/r/IsA\t/c/ro/x\t/c/ro/y", ROW_RO]
    truncated = write_dump(tmp_path / "truncated.csv.gz", rows * 50, compression="gzip")
    truncated.write_bytes(truncated.read_bytes()[:-30])
    bad_utf8 = tmp_path / "bad-utf8.csv"
    bad_utf8.write_bytes(
        write_dump(tmp_path / "x.csv", rows).read_bytes() + b"/a/x\t/r/IsA\t/c/ro/\xff\t/c/ro/y\t{}\n"
    )
    return {
        "malformed": write_dump(tmp_path / "malformed.csv", malformed),
        "bad-json": write_dump(tmp_path / "bad-json.csv", [*rows, ROW_RO.rsplit("\t", 1)[0] + "\t{not json"]),
        "bad-utf8": bad_utf8,
        "truncated": truncated,
        "missing": tmp_path / "missing.csv.gz",
    }


@pytest.mark.parametrize("case", ["malformed", "bad-json", "bad-utf8", "truncated", "missing"])
def test_bad_input_read_in_one_pass_is_the_error_of_a_single_run(cli, tmp_path, monkeypatch, case):
    """The scanning process's error reaches the user as the same one line, naming the file and line;
    no output of any language is left."""
    monkeypatch.setattr(conceptnet, "BLOCK", 256)  # line numbers across many blocks
    monkeypatch.setattr(conceptnet, "FORK", True)
    dump = _bad_dumps(tmp_path)[case]
    out = tmp_path / "out"
    out.mkdir()
    single = cli(["fetch", "conceptnet", "-l", "ron", "-i", dump, "-o", out / "one.jsonl.zst"])
    many = cli(["fetch", "conceptnet", "-l", "ron,mlt", "-i", dump, "-o", f"{out}/{{lang}}.jsonl.zst"])
    line = assert_error(many, str(dump))
    assert line == assert_error(single, str(dump))
    if case in ("malformed", "bad-json", "bad-utf8"):
        assert line.startswith(f"error: {dump}:81: ")
    assert_no_output(out)


def test_skipped_bad_lines_in_one_pass_are_counted_and_named_by_line(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(conceptnet, "BLOCK", 256)
    monkeypatch.setattr(conceptnet, "FORK", True)
    dump = _bad_dumps(tmp_path)["malformed"]
    stats = tmp_path / "{lang}.json"
    args = ["-l", "ron,mlt", "-i", dump, "--skip-bad-lines", "--stats", stats]
    result = cli(["fetch", "conceptnet", *args, "-o", f"{tmp_path}/{{lang}}.jsonl"])
    assert result.exit_code == 0, result.stderr
    assert f"warning: skipped: {dump}:81: expected 5 tab-separated columns, found 4" in result.stderr
    ron = json.loads((tmp_path / "ron_Latn.json").read_text())
    assert (ron["records_in"], ron["records_out"], ron["dropped"]) == (
        82,
        41,
        {"bad_line": 1, "other_language": 40},
    )
    assert json.loads((tmp_path / "mlt_Latn.json").read_text())["records_out"] == 40


def test_several_languages_from_stdin(tmp_path):
    """``zcat dump | lrltool fetch conceptnet -i - --lang ron,mlt``: the scanning process reads the pipe."""
    dump = write_dump(tmp_path / "d.csv.gz", [ROW_RO, ROW_MT] * 3000, compression="gzip")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "lrltool", "fetch", "conceptnet", "-l", "ron,mlt", "-i", "-"]
    with dump.open("rb") as stdin:
        done = subprocess.run(
            [*command, "-o", f"{out}/{{lang}}.jsonl"], stdin=stdin, capture_output=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    for name, start in (("ron_Latn", "câine"), ("mlt_Latn", "qattus")):
        records = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        assert [r["start"] for r in records] == [start] * 3000


def test_a_scanning_process_that_dies_is_an_error_not_a_shorter_output(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(conceptnet, "FORK", True)
    monkeypatch.setattr(conceptnet, "_scan_child", lambda *args: os.kill(os.getpid(), signal.SIGKILL))
    dump = write_dump(tmp_path / "d.csv", [ROW_RO, ROW_MT])
    out = tmp_path / "out"
    out.mkdir()
    result = cli(["fetch", "conceptnet", "-l", "ron,mlt", "-i", dump, "-o", f"{out}/{{lang}}.jsonl"])
    assert_error(result, f"{dump}: the scan of the dump ended early (its process was killed by signal 9)")
    assert_no_output(out)


def test_a_bug_in_the_scanning_process_comes_back_with_its_traceback(tmp_path, monkeypatch):
    from lrltool.sources.base import FetchRequest
    from lrltool.streams import Stats

    def broken(codes):
        raise ValueError("a bug")

    monkeypatch.setattr(conceptnet, "FORK", True)
    monkeypatch.setattr(conceptnet, "_hit_finder", broken)
    dump = write_dump(tmp_path / "d.csv", [ROW_RO, ROW_MT])
    requests = [
        FetchRequest(source="conceptnet", language=None, code=c, stats=Stats("fetch")) for c in ("ro", "mt")
    ]
    with pytest.raises(RuntimeError, match=r"(?s)scan failed in its process:.*ValueError: a bug"):
        list(conceptnet.read_languages([dump], requests))


@pytest.mark.skipif(sys.platform != "linux", reason="pipe sizes are Linux's (F_SETPIPE_SZ)")
def test_the_pipe_from_the_scanning_process_is_widened_where_the_system_allows(cli, tmp_path, monkeypatch):
    import fcntl

    read_end, write_end = os.pipe()
    try:
        default = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
        conceptnet._widen(write_end)
        with open("/proc/sys/fs/pipe-max-size") as f:  # root may go beyond it
            allowed = os.geteuid() == 0 or int(f.read()) >= conceptnet.PIPE_BYTES
        assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) == (conceptnet.PIPE_BYTES if allowed else default)
    finally:
        os.close(read_end)
        os.close(write_end)
    with open(tmp_path / "file", "wb") as f:  # not a pipe: the request is refused, quietly
        conceptnet._widen(f.fileno())

    widened = []
    monkeypatch.setattr(conceptnet, "FORK", True)
    monkeypatch.setattr(conceptnet, "_widen", lambda fd: widened.append(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)))
    dump = write_dump(tmp_path / "d.csv", [ROW_RO, ROW_MT])
    out = tmp_path / "out"
    result = cli(["fetch", "conceptnet", "-l", "ron,mlt", "-i", dump, "-o", f"{out}/{{lang}}.jsonl"])
    assert result.exit_code == 0, result.output
    assert widened == [default]  # called once, on the fresh pipe
    assert {p.name: len(p.read_text().splitlines()) for p in out.iterdir()} == {
        "ron_Latn.jsonl": 1,
        "mlt_Latn.jsonl": 1,
    }
