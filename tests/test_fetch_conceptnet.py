"""`fetch conceptnet`: the real row shape in, exact triples out at any block boundary; bad dumps refused."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import orjson
import pytest
from fetch_helpers import assert_error, assert_no_output, cn_row, jsonl, write_dump

from lrltool.sources import conceptnet
from tests.paths import EXAMPLES

WIKT_RO = {
    "dataset": "/d/wiktionary/ro",
    "license": "cc:by-sa/4.0",
    "sources": [{"contributor": "/s/resource/wiktionary/ro", "process": "/s/process/wikiparsec/2"}],
    "weight": 2.0,
}
OMCS = {
    "dataset": "/d/conceptnet/4/ro",
    "license": "cc:by/4.0",
    "sources": [{"activity": "/s/activity/omcs/vote", "contributor": "/s/contributor/omcs/user1"}],
    "surfaceEnd": "un animal",
    "surfaceStart": "câinele de pază",
    "surfaceText": "[[câinele de pază]] este [[un animal]]",
    "weight": 1.0,
}
DBPEDIA = {
    "dataset": "/d/dbpedia/en",
    "license": "cc:by-sa/4.0",
    "sources": [{"contributor": "/s/resource/dbpedia/2015/en"}],
    "weight": 0.5,
}

ROWS = [
    # Romanian start, English end with POS and a WordNet sense: kept by start and either.
    cn_row("Synonym", "/c/ro/câine/n", "/c/en/dog/n/wn/animal", WIKT_RO),
    # Both Romanian; a multi-word start with POS, source and sense: the word is the 4th part.
    cn_row("IsA", "/c/ro/câine_de_pază/n/wikt/en_1", "/c/ro/animal", OMCS),
    # English start, Romanian end: only --match either keeps it.
    cn_row("Synonym", "/c/en/test/n/wikt/en_1", "/c/ro/probă", DBPEDIA),
    # ExternalURL from a Romanian node: always dropped.
    cn_row("ExternalURL", "/c/ro/examen", "http://ro.dbpedia.org/resource/Examen", DBPEDIA),
    # Other languages, including one whose code starts like ours.
    cn_row("Antonym", "/c/en/test/n/wikt/en_1", "/c/en/breeze", DBPEDIA),
    cn_row("RelatedTo", "/c/rom/manro", "/c/rom/pani", DBPEDIA),
    # A dbpedia relation between Romanian nodes; a verb POS on the end.
    cn_row("dbpedia/genre", "/c/ro/doină/n", "/c/ro/cânta/v", DBPEDIA),
]

SYNONYM = {
    "id": "/a/[/r/Synonym/,/c/ro/câine/n/,/c/en/dog/n/wn/animal/]",
    "rel": "Synonym",
    "start": "câine",
    "end": "dog",
    "start_lang": "ro",
    "end_lang": "en",
    "start_pos": "n",
    "end_pos": "n",
    "weight": 2.0,
    "dataset": "/d/wiktionary/ro",
    "surface": None,
}
ISA = {
    "id": "/a/[/r/IsA/,/c/ro/câine_de_pază/n/wikt/en_1/,/c/ro/animal/]",
    "rel": "IsA",
    "start": "câine de pază",
    "end": "animal",
    "start_lang": "ro",
    "end_lang": "ro",
    "start_pos": "n",
    "end_pos": None,
    "weight": 1.0,
    "dataset": "/d/conceptnet/4/ro",
    "surface": "[[câinele de pază]] este [[un animal]]",
}
CROSS = {
    "id": "/a/[/r/Synonym/,/c/en/test/n/wikt/en_1/,/c/ro/probă/]",
    "rel": "Synonym",
    "start": "test",
    "end": "probă",
    "start_lang": "en",
    "end_lang": "ro",
    "start_pos": "n",
    "end_pos": None,
    "weight": 0.5,
    "dataset": "/d/dbpedia/en",
    "surface": None,
}
GENRE = {
    "id": "/a/[/r/dbpedia/genre/,/c/ro/doină/n/,/c/ro/cânta/v/]",
    "rel": "dbpedia/genre",
    "start": "doină",
    "end": "cânta",
    "start_lang": "ro",
    "end_lang": "ro",
    "start_pos": "n",
    "end_pos": "v",
    "weight": 0.5,
    "dataset": "/d/dbpedia/en",
    "surface": None,
}


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (None, [SYNONYM, ISA, GENRE]),
        ("start", [SYNONYM, ISA, GENRE]),
        ("either", [SYNONYM, ISA, CROSS, GENRE]),
        ("both", [ISA, GENRE]),
    ],
)
def test_exact_triples_for_each_match_mode(cli, tmp_path, match, expected):
    dump = write_dump(tmp_path / "assertions.csv", ROWS)
    args = ["fetch", "conceptnet", "--lang", "ron", "--input", dump]
    result = cli([*args, "--match", match] if match else args)
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout) == expected


def test_summary_and_stats_count_every_row_by_reason(cli, tmp_path):
    dump = write_dump(tmp_path / "assertions.csv", ROWS)
    stats = tmp_path / "stats.json"
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", dump, "--stats", stats])
    assert result.exit_code == 0
    assert json.loads(stats.read_text()) == {
        "command": "fetch conceptnet",
        "records_in": 7,
        "records_out": 3,
        "dropped": {"other_language": 3, "external_url": 1},
        "code": "ro",
    }
    assert result.stderr.strip() == (
        "fetch conceptnet: 7 in, 3 out; dropped 4 (other_language 3, external_url 1); code ro"
    )


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_plain_gzip_and_zstd_dumps_give_the_same_output(cli, tmp_path, compression):
    dump = write_dump(tmp_path / "dump", ROWS, compression=compression)
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", dump])
    assert jsonl(result.stdout) == [SYNONYM, ISA, GENRE]


def test_folder_input_finds_the_dump_and_output_file_is_compressed(cli, tmp_path):
    folder = tmp_path / "cn"
    folder.mkdir()
    write_dump(folder / "conceptnet-assertions-5.7.0.csv.gz", ROWS, compression="gzip")
    out = tmp_path / "ro.jsonl.zst"
    result = cli(["fetch", "conceptnet", "-l", "Romanian", "-i", folder, "-o", out])
    assert result.exit_code == 0
    from lrltool.streams import read_records

    assert list(read_records(out)) == [SYNONYM, ISA, GENRE]


def test_indonesian_is_read_from_ms_nodes(cli, tmp_path):
    rows = [
        cn_row("IsA", "/c/ms/kucing/n", "/c/ms/haiwan", WIKT_RO),
        cn_row("IsA", "/c/id/kucing/n", "/c/id/hewan", WIKT_RO),  # not in 5.7; never read
    ]
    result = cli(["fetch", "conceptnet", "-l", "zsm", "-i", write_dump(tmp_path / "d.csv", rows)])
    assert [r["end"] for r in jsonl(result.stdout)] == ["haiwan"]


def test_code_option_reads_a_language_outside_the_table(cli, tmp_path):
    rows = [
        cn_row("IsA", "/c/ja/科学者", "/c/ja/人", WIKT_RO),
        cn_row("IsA", "/c/ro/om", "/c/ro/ființă", WIKT_RO),
    ]
    dump = write_dump(tmp_path / "d.csv", rows)
    result = cli(["fetch", "conceptnet", "-l", "jpn", "--code", "ja", "-i", dump])
    assert result.exit_code == 0
    assert [(r["start"], r["end"]) for r in jsonl(result.stdout)] == [("科学者", "人")]


def test_parse_node_takes_the_fourth_part_not_the_last():
    assert conceptnet.parse_node("/c/en/test/n/wikt/en_1") == ("en", "test", "n")
    assert conceptnet.parse_node("/c/ro/câine_de_pază") == ("ro", "câine de pază", None)
    assert conceptnet.parse_node("/c/en/assay/n/wn") == ("en", "assay", "n")
    assert conceptnet.parse_node("http://ro.dbpedia.org/resource/Examen") is None


def _reference_triples(text: str, code: str, match: str) -> list[dict]:
    """An independent, line-by-line reading of the dump (stdlib json, no pre-filter)."""
    out = []
    for line in text.splitlines():
        uri, rel, start, end, meta = line.split("\t")
        if rel == "/r/ExternalURL" or not start.startswith("/c/") or not end.startswith("/c/"):
            continue
        s, e = start.split("/"), end.split("/")
        keep = {"start": s[2] == code, "both": s[2] == code == e[2], "either": code in (s[2], e[2])}[match]
        if not keep:
            continue
        data = json.loads(meta)
        out.append(
            {
                "id": uri,
                "rel": rel.removeprefix("/r/"),
                "start": s[3].replace("_", " "),
                "end": e[3].replace("_", " "),
                "start_lang": s[2],
                "end_lang": e[2],
                "start_pos": s[4] if len(s) > 4 else None,
                "end_pos": e[4] if len(e) > 4 else None,
                "weight": float(data["weight"]),
                "dataset": data.get("dataset"),
                "surface": data.get("surfaceText"),
            }
        )
    return out


def _use_finder(monkeypatch, finder: str) -> None:
    """Make ``conceptnet._hit_finder`` pick ``finder``: hyperscan, memmem, bytes.find or the regex."""
    if finder == "hyperscan":
        assert conceptnet._hyperscan([b"x"]) is not None  # installed wherever it has a wheel (CI: Linux x86)
        return
    monkeypatch.setattr(conceptnet, "HYPERSCAN", False)
    if finder == "memmem":
        assert conceptnet._memmem() is not None  # Linux and macOS have it
    elif finder == "bytes.find":
        monkeypatch.setattr(conceptnet, "_memmem", lambda: None)


@pytest.mark.parametrize(
    ("block", "finder"),
    [pytest.param(b, "hyperscan", id=f"{b}-hyperscan") for b in (1, 7, 100, 4096, conceptnet.BLOCK)]
    + [
        pytest.param(b, f, id=f"{b}-{f}")
        for b in (7, 4096, conceptnet.BLOCK)
        for f in ("memmem", "bytes.find")
    ],
)
@pytest.mark.parametrize("match", ["start", "either", "both"])
def test_matches_a_line_by_line_reference_at_any_block_size(cli, monkeypatch, block, match, finder):
    """Rows cut by block boundaries are still read whole, once (the bundled excerpt: real + written rows),
    with Hyperscan, and without it with the C library's memmem or bytes.find."""
    excerpt = gzip.decompress(next((EXAMPLES / "conceptnet").glob("*.csv.gz")).read_bytes()).decode()
    monkeypatch.setattr(conceptnet, "BLOCK", block)
    _use_finder(monkeypatch, finder)
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", EXAMPLES / "conceptnet", "--match", match])
    expected = _reference_triples(excerpt, "ro", match)
    assert len(expected) > 300
    assert jsonl(result.stdout) == expected


def _hits_by_hand(block: bytes, codes: list[str], first: int, cut: int) -> list[tuple[int, int]]:
    """Each offset where ``<TAB>/c/<code>/`` lies wholly in block[first:cut], tried one by one."""
    return [
        (at, index)
        for at in range(first, cut)
        for index, code in enumerate(codes)
        if block.startswith(f"\t/c/{code}/".encode(), at) and at + len(code) + 5 <= cut
    ]


# Codes that are prefixes or suffixes of each other; one code twice (two languages, one ConceptNet code).
_SEVERAL = [["ro", "rom", "bg"], ["rom", "om", "ro"], ["ro", "bg", "ro"]]


@pytest.mark.parametrize(
    ("finder", "codes"),
    [("hyperscan", codes) for codes in [["ro"], *_SEVERAL]]
    + [("memmem", ["ro"]), ("bytes.find", ["ro"])]  # one code
    + [("regex", codes) for codes in _SEVERAL],  # several
)
def test_every_hit_finder_finds_each_node_within_the_bounds(monkeypatch, finder, codes):
    """Codes that are prefixes or suffixes of each other (ro, rom: Romanian, Romani), nodes at the block's
    ends, near misses; every (first, cut) compared with trying each offset by hand."""
    _use_finder(monkeypatch, finder)
    block = (
        b"\t/c/rom/x\t/c/ro/a\t/c/ro/\t/c/ro\t/c/rom/\t/c/ro/\t/c/bg/"
        + b"y" * 50
        + b"\t/c/ro/z\t/c/om/\t/c/r\t/c/bg/"
    )
    finder = conceptnet._hit_finder(codes)

    def hits(first: int, cut: int) -> list[tuple[int, int]]:
        offsets, indexes = finder(block, first, cut)
        assert offsets.dtype == indexes.dtype == np.int64
        return list(zip(offsets.tolist(), indexes.tolist(), strict=True))

    for first in range(0, len(block), 3):
        for cut in range(first, len(block) + 1, 5):
            assert hits(first, cut) == _hits_by_hand(block, codes, first, cut), (first, cut)
    assert hits(0, len(block)) == _hits_by_hand(block, codes, 0, len(block))
    assert sum(index == codes.index("ro") for _, index in hits(0, len(block))) == 4


def test_last_line_without_newline_and_crlf_rows(cli, tmp_path):
    data = ("\r\n".join(ROWS[:2])).encode()  # Windows line ends, no final newline
    dump = tmp_path / "d.csv"
    dump.write_bytes(data)
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", dump])
    assert jsonl(result.stdout) == [SYNONYM, ISA]


# --- bad input ------------------------------------------------------------------------------------


def test_malformed_row_names_file_and_line_and_leaves_no_output(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(conceptnet, "BLOCK", 64)  # the line number survives block boundaries
    rows = [*ROWS[:2], "/a/[/r/IsA/,/c/ro/x/,/c/ro/y/]\t/r/IsA\t/c/ro/x\t/c/ro/y", ROWS[4]]
    dump = write_dump(tmp_path / "d.csv", rows)
    out = tmp_path / "out" / "ro.jsonl"
    out.parent.mkdir()
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", dump, "-o", out])
    line = assert_error(result, f"{dump}:3: expected 5 tab-separated columns, found 4")
    assert line.startswith("error: ")
    assert_no_output(out.parent)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "the 5th column is not valid JSON"),
        ('{"dataset": "/d/x"}', "the JSON column has no numeric 'weight'"),
    ],
)
def test_bad_json_column_is_an_input_error(cli, tmp_path, meta, message):
    row = "/a/[/r/IsA/,/c/ro/x/,/c/ro/y/]\t/r/IsA\t/c/ro/x\t/c/ro/y\t" + meta
    dump = write_dump(tmp_path / "d.csv", [ROWS[0], row])
    assert_error(cli(["fetch", "conceptnet", "-l", "ro", "-i", dump]), f"{dump}:2: {message}")


def test_skip_bad_lines_counts_the_row_and_goes_on(cli, tmp_path):
    rows = [ROWS[0], "/a/[/r/IsA/,/c/ro/x/]\t/r/IsA\t/c/ro/x", ROWS[1]]
    stats = tmp_path / "s.json"
    dump = write_dump(tmp_path / "d.csv", rows)
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", dump, "--skip-bad-lines", "--stats", stats])
    assert result.exit_code == 0
    assert jsonl(result.stdout) == [SYNONYM, ISA]
    assert json.loads(stats.read_text())["dropped"] == {"bad_line": 1}
    assert "warning: skipped:" in result.stderr and ":2: expected 5 tab-separated columns" in result.stderr


@pytest.mark.parametrize(
    ("compression", "message"),
    [
        ("gzip", "the gzip stream ends early (truncated file)"),
        ("zstd", "the zstd stream ends early (truncated file)"),
    ],
)
def test_truncated_dump_is_refused_and_leaves_no_output(cli, tmp_path, compression, message):
    rows = ROWS * 200
    dump = write_dump(tmp_path / "d.csv.x", rows, compression=compression)
    dump.write_bytes(dump.read_bytes()[:-30])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = cli(["fetch", "conceptnet", "-l", "ro", "-i", dump, "-o", out_dir / "ro.jsonl.zst"])
    assert_error(result, f"{dump}: {message}")
    assert_no_output(out_dir)


def test_missing_dump_and_folder_without_one(cli, tmp_path):
    assert_error(
        cli(["fetch", "conceptnet", "-l", "ro", "-i", tmp_path / "nope.csv.gz"]), "nope.csv.gz: no such file"
    )
    assert_error(
        cli(["fetch", "conceptnet", "-l", "ro", "-i", tmp_path]),
        "expected one ConceptNet assertions file in the folder, found 0",
    )


def test_no_rows_for_the_language_is_an_error_not_an_empty_file(cli, tmp_path):
    out = tmp_path / "out.jsonl"
    result = cli(["fetch", "conceptnet", "-l", "bul", "-i", write_dump(tmp_path / "d.csv", ROWS), "-o", out])
    assert_error(result, "no conceptnet records for code 'bg' (7 rows read)")
    assert not out.exists()


def test_unknown_language_is_a_usage_error(cli, tmp_path):
    result = cli(["fetch", "conceptnet", "-l", "xx", "-i", write_dump(tmp_path / "d.csv", ROWS)])
    assert_error(result, "unknown language 'xx'", code=2)


def test_match_only_applies_to_conceptnet(cli):
    result = cli(["fetch", "glotcc", "-l", "ro", "-i", EXAMPLES / "glotcc", "--match", "both"])
    assert_error(result, "--match applies to conceptnet only", code=2)


def test_head_ends_quietly(tmp_path):
    """`lrltool fetch conceptnet ... | head -1` in a real pipe: one line out, nothing on stderr."""
    rows = [cn_row("IsA", f"/c/ro/cuvânt_{i}/n", "/c/ro/lucru", WIKT_RO) for i in range(20_000)]
    dump = write_dump(tmp_path / "d.csv.gz", rows, compression="gzip")
    command = f"'{sys.executable}' -m lrltool fetch conceptnet --lang ro --input '{dump}' | head -1"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert done.stderr == ""
    assert orjson.loads(done.stdout)["start"] == "cuvânt 0"
    assert done.stdout.count("\n") == 1


def test_dump_on_stdin(cli, tmp_path):
    data = gzip.compress(("\n".join(ROWS) + "\n").encode(), mtime=0)
    from typer.testing import CliRunner

    from lrltool.cli import app

    result = CliRunner().invoke(app, ["fetch", "conceptnet", "-l", "ro", "-i", "-"], input=data)
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout) == [SYNONYM, ISA, GENRE]
