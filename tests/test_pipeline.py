"""The data half as a user runs it: `fetch conceptnet | verbalize | cap` through real pipes."""

from __future__ import annotations

import gzip
import shlex
import subprocess
import sys

import orjson

DUMP = """\
/a/[/r/IsA/,/c/ro/câine/n/,/c/ro/animal/]\t/r/IsA\t/c/ro/câine/n\t/c/ro/animal\t{"dataset": "/d/wiktionary/ro", "license": "cc:by-sa/4.0", "sources": [{"contributor": "/s/resource/wiktionary/ro"}], "weight": 2.0}
/a/[/r/Synonym/,/c/ro/mașină/n/wn/artifact/,/c/ro/automobil/]\t/r/Synonym\t/c/ro/mașină/n/wn/artifact\t/c/ro/automobil\t{"dataset": "/d/wiktionary/ro", "weight": 1.0}
/a/[/r/Synonym/,/c/ro/automobil/,/c/ro/automobil/]\t/r/Synonym\t/c/ro/automobil\t/c/ro/automobil\t{"dataset": "/d/wiktionary/ro", "weight": 1.0}
/a/[/r/ExternalURL/,/c/ro/câine/,/c/en/dog/]\t/r/ExternalURL\t/c/ro/câine\thttp://dbpedia.org/resource/Dog\t{"dataset": "/d/dbpedia/en", "weight": 1.0}
/a/[/r/RelatedTo/,/c/en/dog/,/c/ro/câine/]\t/r/RelatedTo\t/c/en/dog\t/c/ro/câine\t{"dataset": "/d/wiktionary/en", "weight": 1.0}
/a/[/r/RelatedTo/,/c/ro/apă_minerală/n/,/c/ro/apă/]\t/r/RelatedTo\t/c/ro/apă_minerală/n\t/c/ro/apă\t{"dataset": "/d/wiktionary/ro", "weight": 1.0}
/a/[/r/IsA/,/c/ro/câine/n/wn/animal/,/c/ro/animal/]\t/r/IsA\t/c/ro/câine/n/wn/animal\t/c/ro/animal\t{"dataset": "/d/wordnet/ro", "weight": 2.0}
/a/[/r/Entails/,/c/ro/a_dormi/v/,/c/ro/a_sforăi/v/]\t/r/Entails\t/c/ro/a_dormi/v\t/c/ro/a_sforăi/v\t{"dataset": "/d/wiktionary/ro", "weight": 1.0}
/a/[/r/AtLocation/,/c/ro/pește/n/,/c/ro/mare/n/]\t/r/AtLocation\t/c/ro/pește/n\t/c/ro/mare/n\t{"dataset": "/d/conceptnet/4/ro", "surfaceText": "[[peștele]] trăiește în [[mare]]", "weight": 1.0}
"""


def _pipeline(dump, cap_bytes: int) -> subprocess.CompletedProcess[str]:
    tool = f"{shlex.quote(sys.executable)} -m lrltool"
    command = (
        f"{tool} fetch conceptnet --input {shlex.quote(str(dump))} --lang ro"
        f" | {tool} verbalize | {tool} cap --max-bytes {cap_bytes}"
    )
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False
    )


def test_fetch_verbalize_cap_pipeline_exact_output(tmp_path):
    dump = tmp_path / "assertions.csv.gz"
    dump.write_bytes(gzip.compress(DUMP.encode()))
    result = _pipeline(dump, 1000)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    # ExternalURL and the English-start row are dropped by fetch; the self-loop, the second
    # "câine is a type of animal." (another sense, same sentence) and Entails (no template) by verbalize.
    assert [(r["id"], r["text"], r["lang"], r["source"], r["meta"]["rel"]) for r in records] == [
        (
            "/a/[/r/IsA/,/c/ro/câine/n/,/c/ro/animal/]",
            "câine is a type of animal.",
            "ron_Latn",
            "conceptnet",
            "IsA",
        ),
        (
            "/a/[/r/Synonym/,/c/ro/mașină/n/wn/artifact/,/c/ro/automobil/]",
            "mașină is a synonym of automobil.",
            "ron_Latn",
            "conceptnet",
            "Synonym",
        ),
        (
            "/a/[/r/RelatedTo/,/c/ro/apă_minerală/n/,/c/ro/apă/]",
            "apă minerală is related to apă.",
            "ron_Latn",
            "conceptnet",
            "RelatedTo",
        ),
        (
            "/a/[/r/AtLocation/,/c/ro/pește/n/,/c/ro/mare/n/]",
            "pește is a typical location for mare.",
            "ron_Latn",
            "conceptnet",
            "AtLocation",
        ),
    ]
    assert records[3]["meta"]["surface"] == "[[peștele]] trăiește în [[mare]]"
    assert records[0]["meta"]["start_pos"] == "n" and records[0]["meta"]["weight"] == 2.0
    summaries = result.stderr.splitlines()
    assert summaries[0].startswith(
        "fetch conceptnet: 9 in, 7 out; dropped 2 (external_url 1, other_language 1)"
    )
    assert summaries[1].startswith(
        "verbalize: 7 in, 4 out; dropped 3 (duplicate 1, no_template:Entails 1, self_loop 1)"
    )
    assert summaries[2].startswith("cap: 4 in, 4 out;")


def test_pipeline_cap_keeps_records_in_order_until_the_byte_budget(tmp_path):
    dump = tmp_path / "assertions.csv.gz"
    dump.write_bytes(gzip.compress(DUMP.encode()))
    # 27 UTF-8 bytes for the first sentence + 35 for the second = 62: both fit, the third would not.
    result = _pipeline(dump, 62)
    assert result.returncode == 0, result.stderr
    texts = [orjson.loads(line)["text"] for line in result.stdout.splitlines()]
    assert texts == ["câine is a type of animal.", "mașină is a synonym of automobil."]
    assert (
        len("câine is a type of animal.".encode()) + len("mașină is a synonym of automobil.".encode()) == 62
    )


def test_pipeline_cap_stops_before_the_record_that_crosses_the_budget(tmp_path):
    dump = tmp_path / "assertions.csv.gz"
    dump.write_bytes(gzip.compress(DUMP.encode()))
    result = _pipeline(dump, 61)
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["text"] for line in result.stdout.splitlines()] == [
        "câine is a type of animal."
    ]
