"""`lrltool verbalize`: ConceptNet triples -> sentences with the paper's templates or a user's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson
import pytest

from lrltool.corpus.verbalize import (
    default_templates,
    load_templates,
    text_language,
    verbalize_records,
    verbalize_triple,
)
from lrltool.errors import InputError
from lrltool.streams import Stats, read_records

# Table 4 of Gurgurov et al. (2025), written out here independently of data/relations.tsv.
PAPER_SENTENCES = [
    ("Antonym", "cald", "rece", "cald is the opposite of rece."),
    ("DerivedFrom", "câinesc", "câine", "câinesc is derived from câine."),
    ("EtymologicallyDerivedFrom", "apă", "aqua", "apă is etymologically derived from aqua."),
    ("EtymologicallyRelatedTo", "apă", "aqua", "apă is etymologically related to aqua."),
    ("FormOf", "câini", "câine", "câini is a form of câine."),
    ("PartOf", "roată", "mașină", "roată is a part of mașină."),
    ("HasA", "pasăre", "aripă", "pasăre belongs to aripă."),
    ("UsedFor", "cuțit", "tăiat", "cuțit is used for tăiat."),
    ("AtLocation", "carte", "bibliotecă", "carte is a typical location for bibliotecă."),
    ("Causes", "ploaie", "inundație", "ploaie causes inundație."),
    ("CausesDesire", "foame", "mâncare", "foame makes someone want mâncare."),
    ("MadeOf", "pâine", "făină", "pâine is made of făină."),
    ("ReceivesAction", "carte", "citit", "carte receives action of citit."),
    ("HasSubevent", "cină", "mâncat", "cină is a subevent of mâncat."),
    ("HasFirstSubevent", "călătorie", "plecare", "călătorie is an event that begins with subevent plecare."),
    ("HasLastSubevent", "călătorie", "sosire", "călătorie is an event that concludes with subevent sosire."),
    ("HasPrerequisite", "condus", "permis", "condus has prerequisite of permis."),
    ("HasProperty", "zăpadă", "albă", "zăpadă can be described as albă."),
    ("MotivatedByGoal", "studiu", "examen", "studiu is a step toward accomplishing the goal examen."),
    ("ObstructedBy", "somn", "zgomot", "somn is an obstacle in the way of zgomot."),
    ("Desires", "pisică", "lapte", "pisică is a conscious entity that typically wants lapte."),
    ("CreatedBy", "tablou", "pictor", "tablou is a process or agent that creates pictor."),
    ("CapableOf", "pasăre", "zbura", "pasăre is capable of zbura."),
    ("HasContext", "gol", "fotbal", "gol is a word used in the context of fotbal."),
    ("IsA", "câine", "animal", "câine is a type of animal."),
    ("RelatedTo", "mare", "apă", "mare is related to apă."),
    ("SimilarTo", "mare", "uriaș", "mare is similar to uriaș."),
    ("Synonym", "casă", "locuință", "casă is a synonym of locuință."),
    ("SymbolOf", "porumbel", "pace", "porumbel symbolically represents pace."),
    ("DefinedAs", "triunghi", "poligon cu trei laturi",
     "triunghi is a more explanatory version of poligon cu trei laturi."),
    ("DistinctFrom", "zi", "noapte", "zi is distinct from noapte."),
    ("MannerOf", "alerga", "merge", "alerga is a specific way to do merge."),
    ("LocatedNear", "masă", "scaun", "masă is typically found near scaun."),
]  # fmt: skip


def triple(rel="IsA", start="câine", end="animal", n=0, **extra):
    record = {
        "id": f"/a/[/r/{rel}/,/c/ro/{start}/n/,/c/ro/{end}/]#{n}",
        "rel": rel,
        "start": start,
        "end": end,
        "start_lang": "ro",
        "end_lang": "ro",
        "start_pos": "n",
        "end_pos": None,
        "weight": 1.0,
        "dataset": "/d/wiktionary/ro",
        "surface": None,
    }
    record.update(extra)
    return record


def jsonl(records) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def read_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line]


def test_the_paper_has_33_templates():
    assert len(default_templates()) == 33
    assert sorted(default_templates()) == sorted(rel for rel, *_ in PAPER_SENTENCES)


@pytest.mark.parametrize(("rel", "start", "end", "sentence"), PAPER_SENTENCES)
def test_template_sentence(rel, start, end, sentence):
    record, reason = verbalize_triple(triple(rel, start, end), default_templates())
    assert reason is None
    assert record["text"] == sentence


def test_full_record_shape():
    t = triple(surface="[[câine]] is a type of [[animal]]", weight=2.0, mystery={"a": 1}, text="old")
    record, _ = verbalize_triple(t, default_templates())
    assert record == {
        "id": t["id"],
        "text": "câine is a type of animal.",
        "lang": "ron_Latn",
        "source": "conceptnet",
        "meta": {
            "rel": "IsA",
            "edge": t["id"],
            "start": "câine",
            "end": "animal",
            "start_lang": "ro",
            "end_lang": "ro",
            "start_pos": "n",
            "end_pos": None,
            "weight": 2.0,
            "dataset": "/d/wiktionary/ro",
            "surface": "[[câine]] is a type of [[animal]]",
            "text": "old",  # a key the text record uses itself is kept in meta
        },
        "mystery": {"a": 1},  # unknown keys pass through unchanged
    }
    assert list(record) == ["id", "text", "lang", "source", "meta", "mystery"]


def test_minimal_triple_and_relation_uri():
    record, _ = verbalize_triple(
        {"id": "e1", "rel": "/r/PartOf", "start": "roată", "end": "car"}, default_templates()
    )
    assert record == {
        "id": "e1",
        "text": "roată is a part of car.",
        "lang": None,
        "source": "conceptnet",
        "meta": {"rel": "PartOf", "edge": "e1", "start": "roată", "end": "car"},
    }


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("ro", "ron_Latn"),
        ("ms", "zsm_Latn"),
        ("ku", "ckb_Arab"),
        ("mt", "mlt_Latn"),
        ("en", "eng_Latn"),  # any language the sources have
        ("fo", "fao_Latn"),
        ("sh", "sh"),  # Serbo-Croatian: several languages, kept as ConceptNet names it
        ("xx", "xx"),
    ],
)
def test_language_codes(code, lang):
    assert text_language(code) == lang


def test_language_falls_back_to_the_end_node():
    record, _ = verbalize_triple(triple(start_lang=None, end_lang="bg"), default_templates())
    assert record["lang"] == "bul_Cyrl"


def test_drops_self_loops_duplicates_and_missing_templates():
    triples = [
        triple("IsA", "câine", "animal", 0),
        triple("RelatedTo", "apă", "Apă", 1),  # a self-loop, ignoring case
        triple("IsA", "câine", "animal", 2),  # the same sentence again
        triple("Entails", "a dormi", "a visa", 3),
        triple("NotDesires", "pisică", "apă", 4),
        triple("Entails", "a alerga", "a obosi", 5),
        triple("Synonym", "casă", "locuință", 6),
    ]
    stats = Stats("verbalize")
    out = list(verbalize_records(triples, templates=default_templates(), stats=stats))
    assert [r["text"] for r in out] == ["câine is a type of animal.", "casă is a synonym of locuință."]
    assert [r["meta"]["edge"] for r in out] == [triples[0]["id"], triples[6]["id"]]
    assert stats.dropped == {
        "self_loop": 1,
        "duplicate": 1,
        "no_template:Entails": 2,
        "no_template:NotDesires": 1,
    }
    assert stats.records_out == 2
    kept = list(verbalize_records(triples, templates=default_templates(), keep_duplicates=True))
    assert [r["meta"]["edge"] for r in kept] == [triples[0]["id"], triples[2]["id"], triples[6]["id"]]


def test_user_templates(tmp_path):
    path = tmp_path / "ro.tsv"
    path.write_text(  # with a byte order mark, as some editors write
        "# predicates in Romanian\nrelation\tpredicate\nIsA\teste un fel de\n/r/PartOf\t face parte din \n\n",
        encoding="utf-8-sig",
    )
    templates = load_templates(path)
    assert templates == {"IsA": "este un fel de", "PartOf": "face parte din"}
    stats = Stats("verbalize")
    out = list(
        verbalize_records(
            [triple("IsA"), triple("PartOf", "roată", "mașină"), triple("Antonym", "cald", "rece")],
            templates=templates,
            stats=stats,
        )
    )
    assert [r["text"] for r in out] == ["câine este un fel de animal.", "roată face parte din mașină."]
    assert stats.dropped == {"no_template:Antonym": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"IsA\tis a type of\nPartOf is a part of\n",
            "t.tsv:2: expected 2 tab-separated columns (relation, predicate), found 1",
        ),
        (b"IsA\tis a\ttype of\n", "t.tsv:1: expected 2 tab-separated columns (relation, predicate), found 3"),
        (b"# c\nIsA\ta\nIsA\tb\n", "t.tsv:3: relation 'IsA' is given twice (first on line 2)"),
        (b"IsA\t  \n", "t.tsv:1: relation 'IsA' has an empty predicate"),
        (b"Is A\tis a\n", "t.tsv:1: 'Is A' is not a relation name"),
        (b"IsA\tis \xff\n", "t.tsv:1: line is not valid UTF-8"),
        (b"# only a comment\n\n", "t.tsv: no templates in the file"),
    ],
)
def test_bad_template_files(tmp_path, content, message):
    path = tmp_path / "t.tsv"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_templates(path)
    assert str(err.value).startswith(f"{tmp_path}/{message}")


def test_bad_triples_raise():
    for bad, message in [
        ({"rel": "IsA", "start": "a", "end": "b"}, "triple has no 'id' key"),
        ({"id": "e", "start": "a", "end": "b"}, "triple has no 'rel' key"),
        ({"id": "e", "rel": "IsA", "end": "b"}, "triple has no 'start' key"),
        ({"id": "e", "rel": "IsA", "start": "a"}, "triple has no 'end' key"),
        ({"id": "e", "rel": "IsA", "start": "a", "end": 3}, "triple field 'end' is int, expected str"),
        ({"id": "e", "rel": "IsA", "start": " ", "end": "b"}, "triple field 'start' is empty"),
    ]:
        with pytest.raises(InputError, match=message):
            verbalize_triple(bad, default_templates())


# ---------------------------------------------------------------------------------------------------
# The command


def test_cli_writes_text_records_and_a_summary(cli, tmp_path):
    triples = [
        triple("IsA", n=0),
        triple("IsA", n=1),
        triple("Entails", "a", "b", 2),
        triple("HasA", "x", "x", 3),
    ]
    result = cli(["verbalize", "--stats", tmp_path / "s.json"], input=jsonl(triples))
    assert result.exit_code == 0
    assert read_jsonl(result.stdout_bytes) == [verbalize_triple(triples[0], default_templates())[0]]
    assert (
        result.stderr
        == "verbalize: 4 in, 1 out; dropped 3 (duplicate 1, no_template:Entails 1, self_loop 1)\n"
    )
    assert orjson.loads((tmp_path / "s.json").read_bytes())["dropped"] == {
        "duplicate": 1,
        "no_template:Entails": 1,
        "self_loop": 1,
    }


def test_cli_templates_option_and_zst_output(cli, tmp_path):
    (tmp_path / "ro.tsv").write_text("IsA\teste un fel de\n", encoding="utf-8")
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl([triple("IsA"), triple("IsA", "pisică", "animal", 1)]))
    out = tmp_path / "out.jsonl.zst"
    result = cli(["verbalize", src, "-o", out, "--templates", tmp_path / "ro.tsv", "--keep-duplicates", "-q"])
    assert result.exit_code == 0 and result.stderr == ""
    assert [r["text"] for r in read_records(out)] == [
        "câine este un fel de animal.",
        "pisică este un fel de animal.",
    ]


def _assert_one_line_error(result, code, text, folder, files):
    assert result.exit_code == code
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == files


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (
            b'{"id": "e", "rel": "IsA", "start": "a", "end": "b"}\n{"id": \n',
            "in.jsonl:2: line is not valid JSON",
        ),
        (
            b'{"id": "e", "rel": "IsA", "end": "b"}\n',
            "in.jsonl:1: triple has no 'start' key; each line must be",
        ),
        (b'{"id": "e", "rel": "IsA", "start": "a"}\n', "in.jsonl:1: triple has no 'end' key"),
        (b'{"id": "e", "start": "a", "end": "b"}\n', "in.jsonl:1: triple has no 'rel' key"),
        (b"[1]\n", "in.jsonl:1: expected a JSON object, found a JSON list"),
    ],
)
def test_cli_bad_input(cli, tmp_path, content, text):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    result = cli(["verbalize", src, "-o", tmp_path / "out.jsonl"])
    _assert_one_line_error(result, 1, text, tmp_path, ["in.jsonl"])


def test_cli_bad_template_file(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl([triple()]))
    (tmp_path / "t.tsv").write_bytes(b"IsA is a type of\n")
    result = cli(["verbalize", src, "-o", tmp_path / "out.jsonl", "--templates", tmp_path / "t.tsv"])
    _assert_one_line_error(
        result,
        1,
        f"error: {tmp_path}/t.tsv:1: expected 2 tab-separated columns",
        tmp_path,
        ["in.jsonl", "t.tsv"],
    )
    result = cli(["verbalize", src, "-o", tmp_path / "out.jsonl", "--templates", tmp_path / "none.tsv"])
    _assert_one_line_error(result, 1, "none.tsv: no such templates file", tmp_path, ["in.jsonl", "t.tsv"])


def test_cli_skip_bad_lines(cli):
    data = jsonl([triple()]) + b'{"id": "x"}\n' + jsonl([triple("HasA", "pasăre", "aripă", 1)])
    result = cli(["verbalize", "--skip-bad-lines"], input=data)
    assert result.exit_code == 0
    assert [r["text"] for r in read_jsonl(result.stdout_bytes)] == [
        "câine is a type of animal.",
        "pasăre belongs to aripă.",
    ]
    assert result.stderr.splitlines()[-1] == "verbalize: 3 in, 2 out; dropped 1 (bad_line 1)"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_pipeline_verbalize_then_cap(tmp_path):
    """The real console commands in a pipe, as the Makefile chains them."""
    src = tmp_path / "triples.jsonl"
    src.write_bytes(
        jsonl(
            [
                triple("IsA", "câine", "animal", 0),
                triple("IsA", "câine", "animal", 1),
                triple("AtLocation", "carte", "bibliotecă", 2),
                triple("Antonym", "cald", "rece", 3),
                triple("Entails", "a", "b", 4),
            ]
        )
    )
    bin_dir = os.path.dirname(sys.executable)
    out = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"lrltool verbalize {src} | lrltool cap --max-bytes 70 | lrltool cap -q",
        ],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        capture_output=True,
        check=True,
    )
    # "câine is a type of animal." is 27 bytes; the next sentence, 44 more, would make 71 > 70.
    assert [r["text"] for r in read_jsonl(out.stdout)] == ["câine is a type of animal."]
    assert out.stderr.decode().splitlines() == [
        "verbalize: 5 in, 3 out; dropped 2 (duplicate 1, no_template:Entails 1)",
        "cap: 2 in, 1 out; dropped 1 (over_cap 1); bytes 27; max_bytes 70; cap_reached yes",
    ]


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"", "in.jsonl: no records in the input, so no sentences to write; check the input"),
        (
            b'{"id": "a", "rel": "IsA", "start": "x", "end": "x"}\n'
            b'{"id": "b", "rel": "NoSuchRelation", "start": "x", "end": "y"}\n',
            "in.jsonl: no sentences to write: 2 records read, none kept"
            " (dropped: no_template:NoSuchRelation 1, self_loop 1)",
        ),
    ],
)
def test_cli_empty_input_or_result_is_refused_like_every_command(cli, tmp_path, content, text):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    result = cli(["verbalize", src, "-o", tmp_path / "out.jsonl"])
    _assert_one_line_error(result, 1, text, tmp_path, ["in.jsonl"])
